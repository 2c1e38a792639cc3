"""lambda_T of `landscape grid --dynamics` (a 4-unit GRU) with the fused Lyapunov kernel
(``landscape/kernels/numba/lyapunov.py``) against the same from before it (``dynamics_map.lyapunov``
by torch's autograd: S x S Jacobians per step).

The command (issue 27, item 3; ``dynamics_jacobian.ARGS``):

    landscape grid --cell gru --hidden 4 --task latch --x w_h[0,0]:-4:4:11 --y b_h[0]:-2:2:11 --T 10,50
                   --dynamics --out F.h5

Row 1, in this process (pinned to one core, ``common.pin``): ``lyapunov`` on the command's 121 points
and its ``GRID_SEQUENCES`` sequences, with the kernel and with $LANDSCAPE_FAST=0 (autograd),
alternated, CPU time, medians; its note gives the largest relative difference of lambda_T (the
kernel rounds differently: about 1e-13, not bit for bit). Row 1b: the same at the straight-line
code's largest H, an 8-unit LSTM (S = 16) on 121 random members.

Row 2: the whole command, this checkout against the commit before the kernel was added
(``--baseline-rev`` to name another), exported with ``git archive``; fresh processes with fresh
$LANDSCAPE_CACHE, started alternately and pinned to one core (``dynamics_jacobian.run``'s way), CPU
time, medians of ``--repeats`` (3), both sides run once first to fill the kernel cache. Its note says
whether the counts are bit-identical and how far lambda_T is.

Rows 1c-1f (``wide``): the kernel in matrix form (``lyapunov.generate_wide``, above
``jacobian.STRAIGHT_H`` units) against autograd, as row 1: gru and lstm at H = 16 and 32, 64
members of N(0, 1.5^2 / H) parameters (a trained network's scale), the latch task's first
``GRID_SEQUENCES`` sequences, T = 10, 50. With ``--wide``, these rows alone.

With ``--builds``: instead, the cold build time of the kernel (trace, generate, numba's compilation,
the self-check: ``lyapunov_kernel(cell, H, 1)`` in a fresh process with a fresh $LANDSCAPE_KERNELS, one
core, CPU time) for gru and lstm at H = 1, 4, 8 (straight-line code), 16 and 32 (matrix form; the
imports before it not counted), one line each.

    python -m benchmarks.dynamics_lyapunov [--baseline-rev REV] [--repeats N] [--builds | --wide]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np

from .common import Settings, pin, speedup_row, table, timed
from .dynamics_jacobian import ARGS, FIELDS, export
from .process import ROOT, alternate, child, process_row

NAME = "dynamics-lyapunov"
KERNEL = "landscape/kernels/numba/lyapunov.py"


def baseline_rev() -> str:
    """The parent of the commit that added the fused Lyapunov kernel."""
    added = subprocess.run(["git", "log", "--format=%H", "--diff-filter=A", "--", KERNEL],
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    if not added:
        raise SystemExit(f"{KERNEL} has no commit here: give --baseline-rev")
    return f"{added[-1]}^"


def furthest(a: np.ndarray, b: np.ndarray) -> str:
    """The largest relative difference of two lambda_T arrays (their non-finite entries must agree)."""
    if not np.array_equal(np.isfinite(a), np.isfinite(b)) or not np.array_equal(a[~np.isfinite(a)],
                                                                                b[~np.isfinite(b)]):
        return "lambda_T: NON-FINITE VALUES DIFFER"
    ok = np.isfinite(a)
    rel = np.abs(a[ok] - b[ok]) / np.maximum(np.abs(b[ok]), 1e-300)
    return f"lambda_T within {rel.max(initial=0.0):.1e} relative"


def in_process(s: Settings) -> list:
    """Row 1 (the command's points), row 1b: an 8-unit LSTM (S = 16), 121 members of N(0, 1 / H)
    parameters, the latch task's first 100 sequences, T = 10, 50, and rows 1c-1f (``wide``) (not with
    --quick)."""
    import torch

    from landscape import engine, resolve
    from landscape.dynamics_map import GRID_SEQUENCES, first_sequences
    from landscape.model import ModelSpec
    from landscape.problem import resolve_model
    from landscape.spec import GridSpec

    r = resolve(GridSpec.of(cell="gru", hidden=4, task="latch", x="w_h[0,0]:-4:4:11", y="b_h[0]:-2:2:11", T=(10, 50),
                            dynamics=True))
    xs, ys = torch.as_tensor(r.x.values()), torch.as_tensor(r.y.values())
    flat = torch.arange(len(xs) * len(ys))
    params = engine.chunk_params(r.problem.base, r.refs, (xs[flat // len(ys)], ys[flat % len(ys)]), torch.float64,
                                 torch.device("cpu"))
    data = first_sequences(r.problem.task.make(r.Ts, r.n, r.spec.seed), GRID_SEQUENCES)  # as surface.grid makes it
    rows = [_row(s, f"gru H=4, 121 points x {data.n} sequences, T=10,50: lyapunov (in process)", r.problem, params,
                 data, r.Ts)]
    if s.quick:  # the smoke run: the 8-unit LSTM's kernel build (about 14 s) left out
        return rows
    lstm = resolve_model(ModelSpec(cell="lstm", task="latch", hidden=8))
    g = torch.Generator().manual_seed(0)
    params = {k: torch.randn((121, *shape), generator=g, dtype=torch.float64) / 8 ** 0.5
              for k, shape in lstm.cell.param_shapes(8, 1).items()}
    data = lstm.task.make((10, 50), GRID_SEQUENCES, 0)
    rows.append(_row(s, f"lstm H=8, 121 N(0, 1/H) members x {data.n} sequences, T=10,50: lyapunov (in process)",
                     lstm, params, data, (10, 50)))
    return rows + wide(s)


def wide(s: Settings, Hs=(16, 32), cells=("gru", "lstm"), P: int = 64) -> list:
    """Rows 1c-1f: the matrix form (see the module docstring)."""
    import torch

    from landscape.dynamics_map import GRID_SEQUENCES
    from landscape.model import ModelSpec
    from landscape.problem import resolve_model

    rows = []
    for H in Hs:
        for cell in cells:
            problem = resolve_model(ModelSpec(cell=cell, task="latch", hidden=H))
            g = torch.Generator().manual_seed(0)
            params = {k: torch.randn((P, *shape), generator=g, dtype=torch.float64) * 1.5 / H ** 0.5
                      for k, shape in problem.cell.param_shapes(H, problem.D).items()}
            data = problem.task.make((10, 50), GRID_SEQUENCES, 0)
            rows.append(_row(s, f"{cell} H={H}, {P} N(0, 1.5^2/H) members x {data.n} sequences, T=10,50: "
                                "lyapunov, matrix form (in process)", problem, params, data, (10, 50)))
    return rows


def _row(s: Settings, case: str, problem, params, data, Ts):
    """lyapunov with the kernel and with $LANDSCAPE_FAST=0, alternated: the speedup row."""
    from landscape.dynamics_map import lyapunov

    got = {}

    def side(fast: str):
        def go():
            os.environ["LANDSCAPE_FAST"] = fast
            got[fast] = lyapunov(problem, params, data, Ts)
        return go

    before = os.environ.get("LANDSCAPE_FAST")
    try:
        res = timed(s, {"fused": side("1"), "autograd": side("0")}, warmup={"fused": side("1")})
    finally:
        os.environ.pop("LANDSCAPE_FAST", None) if before is None else os.environ.update(LANDSCAPE_FAST=before)
    return speedup_row(NAME, case, "fused lambda_T", "autograd (LANDSCAPE_FAST=0)", res, "fused", "autograd",
                       note=f"{furthest(got['1'], got['0'])}; load {os.getloadavg()[0]:.1f}")


def whole(s: Settings, rev: str) -> list:
    with tempfile.TemporaryDirectory(prefix="landscape-bench-") as tmp:
        tmp = Path(tmp)
        base = export(rev, tmp / "baseline")
        count = iter(range(1 << 30))

        def side(tree: Path):
            def go():
                i = next(count)
                out = tmp / f"out{i}.h5"
                got = child([sys.executable, "-P", "-m", "landscape", *ARGS, "--out", str(out)],
                            {"PYTHONPATH": str(tree), "LANDSCAPE_CACHE": str(tmp / f"cache{i}")})
                got["file"] = out
                return got
            return go

        sides = {"fused": side(ROOT), "autograd": side(base)}
        for fn in sides.values():  # the kernel cache filled (numba's compilation is not the subject)
            fn()
        res = alternate(s, sides)
        with h5py.File(res["fused"]["last"]["file"]) as a, h5py.File(res["autograd"]["last"]["file"]) as b:
            counts = all(np.array_equal(a[k][()], b[k][()]) for k in FIELDS if k != "lyapunov")
            lam = furthest(a["lyapunov"][()], b["lyapunov"][()])
        note = ("counts bit-identical" if counts else "COUNTS DIFFER") + f"; {lam}; baseline {rev}"
        return [process_row("gru H=4 11x11 --dynamics, T=10,50 (whole process)", "fused lambda_T",
                            "autograd lambda_T", res, "fused", "autograd", note=note, benchmark=NAME)]


BUILD = """
import sys, time
from landscape.cells import get_cell
from landscape.kernels.numba import lyapunov
cell, H = get_cell(sys.argv[1]), int(sys.argv[2])
c0, w0 = time.process_time(), time.perf_counter()
if lyapunov.lyapunov_kernel(cell, H, 1) is None:
    raise SystemExit(lyapunov.why_not(cell, H, 1))
print(time.process_time() - c0, time.perf_counter() - w0)
"""


def builds(Hs=(1, 4, 8, 16, 32), cells=("gru", "lstm")) -> None:
    """Print the cold build time of each (cell, H) (see the module docstring)."""
    for H in Hs:
        for cell in cells:
            with tempfile.TemporaryDirectory(prefix="landscape-kernels-") as folder:
                got = child([sys.executable, "-c", BUILD, cell, str(H)], {"LANDSCAPE_KERNELS": folder})
            cpu, wall = map(float, got["stdout"].split())  # the build alone (not the imports)
            print(f"{cell} H={H}: {cpu:.1f} s CPU, {wall:.1f} s wall (load {os.getloadavg()[0]:.1f})", flush=True)


def run(s: Settings, rev: str | None = None) -> list:
    """Both rows (``python -m benchmarks --only dynamics-lyapunov``): the whole command, then lyapunov
    in this process, pinned to one core."""
    rows = whole(s, rev or baseline_rev())
    pin()
    return rows + in_process(s)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline-rev", default=None, help="the git revision to compare with (default: before the kernel)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--builds", action="store_true", help="print the kernel's cold build times instead")
    ap.add_argument("--wide", action="store_true", help="only the rows of the matrix form (H = 16, 32)")
    a = ap.parse_args(argv)
    if a.builds:
        builds()
        return 0
    if a.wide:
        pin()
        rows = wide(Settings(repeats=a.repeats))
    else:
        rows = run(Settings(repeats=a.repeats), a.baseline_rev)
    print(table(rows))
    return 0 if all(r.meets != "FLAG" and "DIFFER" not in r.note for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
