"""`python -m benchmarks --quick` runs every benchmark end to end and writes its CSV (no timing
assertions: the quick sizes measure nothing; CI only checks that the benchmarks still run)."""
from __future__ import annotations

import csv
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HAVE_NUMBA = importlib.util.find_spec("numba") is not None
HAVE_JAX = importlib.util.find_spec("jax") is not None


def bench(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "benchmarks", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.slow  # every benchmark at its quick size: about 40 s of CPU
def test_quick_run_writes_every_benchmark_to_csv(tmp_path):
    res = bench("--quick", "--out", str(tmp_path))
    assert res.returncode == 0, res.stderr[-3000:]
    with open(tmp_path / "latest.csv") as f:
        rows = list(csv.DictReader(f))
    stamped = [p for p in tmp_path.glob("*.csv") if p.name != "latest.csv"]
    assert len(stamped) == 1
    names = {r["benchmark"] for r in rows}
    assert {"grid-vs-loop", "floor", "training", "memory", "process", "dynamics-map"} <= names
    if HAVE_NUMBA:
        assert "fused-cpu" in names and "user-cell" in names
        if len(os.sched_getaffinity(0)) > 1:
            assert "scaling" in names
    assert "fusion" not in names  # it compiles C: run only on request
    for r in rows:
        assert float(r["candidate_value"]) >= 0 and float(r["baseline_value"]) > 0 and float(r["ratio"]) > 0
        assert r["meets"] in ("yes", "no", "", "FLAG")
        assert r["quick"] == "True"
    cases = {r["case"] for r in rows if r["benchmark"] == "grid-vs-loop"}
    assert {c.split()[0] for c in cases} == {"srnn", "lstm", "gru", "pascanu"}
    process = [r for r in rows if r["benchmark"] == "process"]
    assert {r["candidate"] for r in process if r["case"] == "start-up"} == {
        "landscape --help", "landscape cells", "landscape tasks", "landscape cache ls"}
    assert any(r["case"].startswith("headline:") and "LANDSCAPE_FAST=0" in r["baseline"] for r in process)
    if HAVE_NUMBA:
        fused = [r for r in rows if r["benchmark"] == "fused-cpu"]
        readouts = {(r["case"].split()[0], r["case"].rsplit("readout=", 1)[-1]) for r in fused if "latch" in r["case"]}
        assert {(c, f) for c in ("srnn", "lstm", "gru") for f in ("fixed", "optimal")} <= readouts
        if HAVE_JAX:  # the JAX baseline, the optimal fit's check among its notes
            jax_rows = [r for r in fused if r["baseline"].startswith("jax")]
            assert {r["case"].split()[0] for r in jax_rows} == {"srnn", "lstm", "gru", "pascanu"}
            assert all("JAX fit's losses are within" in r["note"] for r in jax_rows if "optimal" in r["case"])
            assert any(r["baseline"].startswith("python benchmarks/jax_grid.py") for r in process)
    assert "ratio" in res.stdout and "wrote" in res.stdout


def test_a_row_whose_cpu_time_exceeds_its_wall_time_is_flagged():
    from benchmarks.common import Row

    def row(cpu, wall):
        return Row("b", "c", "cand", "base", 1.0, 2.0, "s", 2.0, "speedup (baseline / candidate)", ">= 1.5",
                   note="n", extra={"candidate_cpu_s": cpu, "candidate_wall_s": wall, "baseline_cpu_s": 2.0,
                                    "baseline_wall_s": 2.0}).check()

    assert row(1.04, 1.0).meets == "yes" and row(1.04, 1.0).note == "n"  # within 5 %
    flagged = row(1.2, 1.0)
    assert flagged.meets == "FLAG" and flagged.note.startswith("candidate: CPU 1.2 s > wall 1 s") and "n" in flagged.note


def test_one_thread_env_turns_every_pool_to_one_thread_and_keeps_other_xla_flags():
    from benchmarks.common import one_thread_env

    env = one_thread_env({"XLA_FLAGS": "--xla_dump_to=/tmp/x --xla_cpu_multi_thread_eigen=true", "OMP_NUM_THREADS": "8",
                          "HOME": "/h"})
    assert env["XLA_FLAGS"].split() == ["--xla_dump_to=/tmp/x", "--xla_cpu_multi_thread_eigen=false",
                                        "intra_op_parallelism_threads=1"]
    assert env["HOME"] == "/h" and all(env[k] == "1" for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                                                "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"))


def test_unknown_benchmark_is_one_clear_error(tmp_path):
    res = bench("--only", "floor,nope", "--out", str(tmp_path), timeout=120)
    assert res.returncode == 2
    assert ("unknown benchmark 'nope'; choose from: grid-vs-loop, floor, training, memory, fused-cpu, fused-small-h, user-cell, "
            "scaling, process, dynamics-map, dynamics-jacobian-wide, dynamics-lyapunov, fusion") in res.stderr
    assert not list(tmp_path.glob("*.csv"))


@pytest.mark.slow  # compiles C with torch.compile: about 25 s on two cores
def test_fusion_runs_on_request_and_its_kernels_match_the_eager_step(tmp_path):
    res = bench("--only", "fusion", "--quick", "--out", str(tmp_path), timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    if "fusion: skipped (" in res.stdout:  # no compiler, no MKL or not x86-64: said, and no rows
        return
    with open(tmp_path / "latest.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["benchmark"] == "fusion"]
    assert len(rows) in (6, 7)  # 6 where torch.compile has no C++ compiler
    for r in rows:
        assert float(r["ratio"]) > 0
        diff = float(r["note"].rsplit("eager step ", 1)[1])
        assert diff < 1e-12, r
