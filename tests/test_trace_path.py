"""Which path computed a surface: ``engine.computing_path``, the line ``landscape grid`` prints on
stderr, and the file's ``path`` / ``path_reason`` attributes (which ``landscape check`` and ``load``
accept; the numbers, key and spec are those of either path)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import pytest
import torch

pytest.importorskip("numba")

import landscape  # noqa: E402
from landscape import engine  # noqa: E402
from landscape.resolved import resolve  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MEANFIELD = str(ROOT / "tests" / "test_fused_cpu.py") + ":MeanField"  # couples the sequences: does not trace
ONE_OP = str(ROOT / "examples" / "cells" / "one_op.py") + ":OneOp"


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LANDSCAPE_CACHE", str(tmp_path / "cache"))


def small(cell, **opts):
    return landscape.GridSpec.of(cell=cell, cell_options=opts, T=(3,), n=6, x=landscape.Axis("w", -1, 1, 3),
                                 y=landscape.Axis("b", -1, 1, 2))


def path_of(spec):
    r = resolve(spec)
    data = r.problem.task.make(r.Ts, r.n, spec.seed).to(r.torch_dtype, "cpu")
    return engine.computing_path(r.problem, data, r.Ts, r.torch_dtype, torch.device("cpu"))


@pytest.mark.parametrize("cell,opts,want", [
    ("srnn", {}, ("fused-numba", "")),
    (ONE_OP, {"op": "elu"}, ("fused-numba", "")),
    (MEANFIELD, {}, ("torch", "not elementwise")),
    (ONE_OP, {"op": "tan"}, ("torch", "the self-check failed")),
], ids=["builtin", "user-elu", "does-not-trace", "fails-self-check"])
def test_computing_path(cell, opts, want):
    path, reason = path_of(small(cell, **opts))
    assert path == want[0]
    assert (want[1] in reason) if want[1] else reason == ""


def test_fast_off_is_torch(monkeypatch):
    monkeypatch.setenv("LANDSCAPE_FAST", "0")
    assert path_of(small("srnn")) == ("torch", "fused kernels are turned off (LANDSCAPE_FAST=0)")


@pytest.mark.parametrize("cell,path,line", [
    ("srnn", "fused-numba", "srnn latch: computed by the fused numba kernel"),
    (MEANFIELD, "torch", "meanfield latch: computed by torch: mean over a dimension of size > 1 (not elementwise)"),
], ids=["fused", "torch"])
def test_grid_says_which_path_and_stores_it(tmp_path, cell, path, line):
    out = tmp_path / "s.h5"
    notes = []
    landscape.grid(small(cell), out=out, on_message=notes.append, progress=False)
    assert [n for n in notes if "computed by" in n] == [line]
    with h5py.File(out, "r") as f:
        assert f.attrs["path"] == path
        assert (f.attrs["path_reason"] == "") == (path != "torch")
    s = landscape.load(out)  # the reader takes the attributes
    assert s.attrs["path"] == path
    check = subprocess.run([sys.executable, "-m", "landscape", "check", str(out)], capture_output=True, text=True,
                           timeout=120)
    assert check.returncode == 0 and check.stdout.startswith("ok:"), check.stdout + check.stderr


def test_cli_line_on_stderr(tmp_path):
    out = tmp_path / "s.h5"
    r = subprocess.run([sys.executable, "-m", "landscape", "grid", "--cell", ONE_OP, "--cell-opt", "op=softplus",
                        "--T", "3", "--n", "6", "--x", "w:-1:1:3", "--y", "b:-1:1:2", "--out", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "one-op latch: computed by the fused numba kernel" in r.stderr.splitlines()
    assert "computed by" not in r.stdout
