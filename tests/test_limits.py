"""Limits the memory plan holds, and inputs that end in one `error:` line (exit 2) instead of an
internal error, a C++ backtrace, numpy warnings or a machine out of memory.

The truth: the peak memory of a process measured in a subprocess (tracemalloc over the final
read, against the budget), the files left (none after a refusal), and the exact stderr."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import landscape
from landscape import Axis, GridSpec, distributed, plan
from landscape.cli import main
from landscape.errors import LandscapeError

ROOT = Path(__file__).resolve().parents[1]


def one_error(*args, status: int = 2) -> str:
    r = CliRunner().invoke(main, [str(a) for a in args])
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert r.exit_code == status and len(lines) == 1 and lines[0].startswith("error: "), (r.exit_code, lines)
    assert "internal error" not in lines[0]
    return lines[0]


def run(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300, **kwargs)


@pytest.fixture(autouse=True)
def _private(tmp_path, monkeypatch):
    monkeypatch.setenv("LANDSCAPE_CACHE", str(tmp_path / "cache"))


# ---------------------------------------------------------------------------------------------
# the final read, the disk, the workers


def test_a_surface_over_the_budget_is_refused_before_computing(tmp_path):
    """4000 x 4000 x 8 T under --memory 64M peaked at 1.6 GiB in the final read; now refused at once."""
    out = tmp_path / "s.h5"
    line = one_error("grid", "--cell", "srnn", "--task", "target", "--n", "1", "--T", "1,2,3,4,5,6,7,8",
                     "--x", "w:0:1:4000", "--y", "b:0:1:4000", "--memory", "64M", "--out", out)
    assert "to be read back" in line and "1.9 GiB" in line and "64.0 MiB" in line
    assert not out.exists() and not list(tmp_path.iterdir())


FINAL_READ = """
import sys, tracemalloc
import landscape
from landscape import Axis, GridSpec
budget = 8 << 20
spec = GridSpec.of(cell="srnn", task="target", n=1, T=tuple(range(1, 9)), x=Axis("w", 0, 1, 200), y=Axis("b", 0, 1, 200))
landscape.grid(spec, out=sys.argv[1], memory=budget, progress=False)  # computed (its chunks are planned)
tracemalloc.start()
landscape.load(sys.argv[1])  # the final read, as grid ends
print(tracemalloc.get_traced_memory()[1], budget)
"""


def test_the_final_read_of_a_planned_grid_fits_the_budget(tmp_path):
    """200 x 200 x 8 T: 2.4 MiB of loss; the plan lets it through under 8 MiB, and the read's
    peak (numpy's allocations, traced in a fresh process) stays under that budget."""
    r = run("-c", FINAL_READ, str(tmp_path / "s.h5"))
    assert r.returncode == 0, r.stderr[-2000:]
    peak, budget = map(int, r.stdout.split())
    assert 200 * 200 * 8 * 8 < peak <= budget


def test_no_disk_for_the_file_is_refused_before_computing(tmp_path, monkeypatch):
    import shutil

    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=1000))
    out = tmp_path / "s.h5"
    spec = GridSpec.of(cell="srnn", task="target", n=1, T=(1, 2), x=Axis("w", 0, 1, 30), y=Axis("b", 0, 1, 30))
    with pytest.raises(LandscapeError, match="needs about 14.1 KiB but its file system has 1000 B free"):
        landscape.grid(spec, out=out, progress=False)
    assert not out.exists()
    assert plan.surface_bytes(landscape.resolve(spec)) == 30 * 30 * 2 * 8


def test_local_workers_beyond_the_cores_are_refused():
    cores = len(os.sched_getaffinity(0))
    with pytest.raises(LandscapeError, match=f"local:200 starts 200 worker processes, but this machine has {cores}"):
        distributed.check_local_workers(200)
    distributed.check_local_workers(cores)  # one per core is fine
    line = one_error("grid", "--cell", "srnn", "--T", "2", "--x", "w:0:1:3", "--y", "b:0:1:3", "--scheduler",
                     "local:200")
    assert "local:200" in line


# ---------------------------------------------------------------------------------------------
# inputs that end in one line


@pytest.mark.parametrize("args, needle", [
    (["fixedpoints", "--starts", "10000000000000", "--input=0"], "fixed-point search"),  # was torch's backtrace
    (["fixedpoints", "--T", "10000000000", "--input=0"], "fixed-point search"),  # was 23 GB and counting
    (["fixedpoints", "--T", "100000000000000000000", "--input=0"], "fixed-point search"),
    (["fixedpoints", "-H", "10000000000000000000", "--input=0"], "--hidden"),  # was an overflow
    (["grid", "-H", "100000000000", "--T", "5"], "--hidden"),
    (["grid", "--T", "100000000000000000000"], "memory budget"),
    (["dynamics", "fixed-points", "--cell", "srnn", "--w=-inf:0:5", "--b", "0"], "finite"),
    (["dynamics", "fixed-points", "--cell", "srnn", "--w=0:1:100000000000000000000", "--b", "0"], "NUM"),
])
def test_huge_and_infinite_inputs_are_one_line(args, needle, tmp_path):
    assert needle in one_error(*args)


def test_plot_width_out_of_range_is_one_line(tmp_path):
    line = one_error("plot", tmp_path / "absent.h5", "--width", "1e5", "--out", tmp_path / "f.png")
    assert "--width 1e5 is out of range" in line


def test_infinite_range_prints_no_numpy_warning():
    r = run("-m", "landscape", "dynamics", "fixed-points", "--cell", "srnn", "--w=-inf:0:5", "--b", "0")
    assert r.returncode == 2 and r.stderr.splitlines() == [
        "error: bad value '-inf:0:5' for --w: values must be finite numbers"], r.stderr


def test_a_user_cell_calling_exit_is_an_error(tmp_path):
    cell = tmp_path / "quits.py"
    cell.write_text("import sys\nfrom dataclasses import dataclass\nfrom landscape.cells.elman import SRNN\n\n\n"
                    "@dataclass(frozen=True)\nclass Quits(SRNN):\n    name = 'quits'\n\n"
                    "    def step(self, p, state, x):\n        sys.exit(0)\n")
    out = tmp_path / "s.h5"
    line = one_error("grid", "--cell", f"{cell}:Quits", "--task", "target", "--n", "1", "--x", "w:0:1:2", "--y",
                     "b:0:1:2", "--T", "2", "--out", out, status=1)
    assert "called exit (0)" in line and not out.exists()


@pytest.mark.slow
def test_ctrl_c_while_starting_is_one_line():
    """SIGINT at several moments of the start-up (the imports): exit 130 and one line, never a
    traceback (the start's length varies with the machine: whatever moment it hits)."""
    for delay in (0.1, 0.25, 0.5):
        p = subprocess.Popen([sys.executable, "-m", "landscape", "cells"], cwd=ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)
        assert "Traceback" not in err, err
        if p.returncode == 130:
            assert err.splitlines() == ["error: interrupted"] or err.startswith("error: interrupted"), err


def test_a_singular_readout_fit_takes_the_least_norm_step():
    """States saturated to one constant with no ridge: the fit's curvature is singular (torch's
    solver failed the whole grid); that member gets the pseudo-inverse's step, the others are
    bit-identical to a fit without it."""
    import torch

    from landscape.readout_fit import fit_logistic_readout

    g = torch.Generator().manual_seed(0)
    h = torch.randn(3, 50, 2, generator=g, dtype=torch.float64)
    y = (torch.rand(50, generator=g) > 0.5).double()
    saturated = h.clone()
    saturated[1] = 1e8
    w, b = fit_logistic_readout(saturated, y, 0.0)
    w0, b0 = fit_logistic_readout(h, y, 0.0)
    assert torch.isfinite(w).all() and torch.isfinite(b).all()
    assert torch.equal(w[[0, 2]], w0[[0, 2]]) and torch.equal(b[[0, 2]], b0[[0, 2]])
    assert torch.allclose(w[1, 0], w[1, 1])  # the least-norm answer splits the weight between the equal units


def test_a_user_cell_raising_late_is_one_line_naming_its_file(tmp_path):
    cell = tmp_path / "late.py"
    cell.write_text("from dataclasses import dataclass\nfrom landscape.cells.elman import SRNN\n\n\n"
                    "@dataclass(frozen=True)\nclass Late(SRNN):\n    name = 'late'\n\n"
                    "    def step(self, p, state, x):\n"
                    "        if float(state[0].abs().max()) > 0.5:\n            raise ValueError('state too large')\n"
                    "        return super().step(p, state, x)\n")
    line = one_error("grid", "--cell", f"{cell}:Late", "--task", "target", "--n", "1", "--x", "w:0:3:3", "--y",
                     "b:0:1:2", "--T", "5", "--out", tmp_path / "s.h5", status=1)
    assert line.startswith("error: ValueError: state too large (raised by ") and f"{cell}:11" in line
