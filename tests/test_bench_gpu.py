"""benchmarks/gpu.py without a GPU: the dry run (imports, the list of steps, "no CUDA device"), the
refusal to measure without a device, and one grid's rows computed on the CPU with Triton's
interpreter standing in for the device (no timing assertions: the sizes measure nothing)."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour without a CUDA device")


def gpu(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "benchmarks.gpu", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env)


@NO_GPU
def test_dry_run_lists_the_steps_and_says_no_cuda_device(tmp_path):
    res = gpu("--dry-run", "--out", str(tmp_path))
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout
    assert "no CUDA device" in out
    marked = sorted(p.name for p in (ROOT / "tests").glob("test_*.py")
                    if any(line.startswith("@pytest.mark.cuda") for line in p.read_text().splitlines()))
    assert marked  # the CUDA tests exist, and the run's first step runs each of their files
    first = next(line for line in out.splitlines() if line.strip().startswith("1."))
    assert "pytest" in first and "-m cuda" in first and all(name in first for name in marked)
    assert "test_bench_gpu.py" not in first  # this file names the marker but marks nothing
    for cell in ("srnn", "lstm", "gru"):
        for dtype in ("float32", "float64"):
            assert any(cell in line and dtype in line and "cuDNN" in line for line in out.splitlines()), (cell, dtype)
    assert str(tmp_path / "gpu.csv") in out
    assert list(tmp_path.iterdir()) == []  # a dry run writes nothing


@NO_GPU
def test_without_a_device_nothing_is_measured(tmp_path):
    res = gpu("--skip-tests", "--out", str(tmp_path))
    assert res.returncode == 1 and "no CUDA device" in res.stdout and "needs a CUDA device" in res.stderr
    assert list(tmp_path.iterdir()) == []


GRID_ON_CPU = r"""
import sys, types, torch
from benchmarks import gpu
from benchmarks.common import Settings
args = types.SimpleNamespace(num=3, n=8, T=4)
rows = gpu.grid_rows(Settings(repeats=1, clock="wall"), sys.argv[1], "float32", args, 1e9, sys.argv[2] == "1",
                     torch.device("cpu"))
for r in rows:
    print(r.baseline, "|", r.ratio, "|", r.note)
"""


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="needs triton (its interpreter)")
def test_one_grid_runs_on_the_cpu_under_the_triton_interpreter():
    import os

    with_jax = "1" if importlib.util.find_spec("jax") is not None else "0"
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-c", GRID_ON_CPU, "gru", with_jax], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 2 + (with_jax == "1")
    for line in lines:
        baseline, ratio, note = line.split(" | ")
        assert float(ratio) > 0
        if "cuDNN" in baseline:  # the loop's losses are the Triton kernel's (float32 both)
            assert float(note.split("within ")[1].split(" ")[0]) < 1e-5
        if "jax" in baseline:
            assert float(note.split("within ")[1].split(" ")[0]) < 1e-4
        if "roof" in baseline:
            assert "cell-steps/s" in note
