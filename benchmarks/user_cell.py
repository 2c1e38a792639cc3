"""A user's own cell against a built-in cell of the same size, both on the fused CPU path
(``--only user-cell``; in the default run).

The user's cell is the MGU of ``examples/cells/mgu.py`` (Zhou et al. 2016: two gates' worth of
parameters, written once as a pure torch ``step`` in a file, given as ``--cell FILE.py:Class``);
the built-in is ``gru`` (three gates). Both on latch over their default axes, 101 x 101, N = 1000,
T = 100, the fixed and the optimal readout, float64, one core, compute only (``kernels.numba.losses.losses``
after a warm-up call that builds the kernels). The target: the user's cell within 2x of the
built-in's time (ratio = gru time / mgu time >= 0.5). The MGU's losses are checked against its
own ``cell.step`` in torch (``engine.unroll_losses(..., fast=False)``).

Then one row per elementwise function the tracer accepts (``examples/cells/one_op.py``: h' =
op(domain(w h + u x + b)), float64, latch, 31 x 31, N = 200, T = 50, fixed readout): the fused path
(the generated kernel, what ``landscape grid`` runs) against the torch path (``cell.step``, fast=False),
alternated, medians of CPU time, this process pinned to one core with every thread pool at one.
The goal: fused / torch <= 1.0 on every row (ratio = torch / fused >= 1.0). Where landscape itself
computes with torch (tan: its kernel fails the self-check; erf, gelu and a general pow: torch measured
faster, ``kernels.numba.choice``) both sides are torch: the row says why and has no goal. The notes'
"losses within" compare 50 steps of the map: where it is chaotic (abs, log2, sin with |w| up to 2)
an ulp of difference per step (the kernel contracts w h + u x + b into FMAs) grows to 1e-10 .. 1e-3.
Each row has the load average beside it and flags a CPU time above the wall time by more than 5 % (a
second thread at work). ``python -m benchmarks --only user-cell`` prints a compact fused / torch table too.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from .common import GridPoints, Row, Settings, speedup_row, timed
from .fused_cpu import _quiet, _rel, engine_losses, fused_losses, latch_spec

NAME = "user-cell"
CELLS = Path(__file__).resolve().parents[1] / "examples" / "cells"
MGU = str(CELLS / "mgu.py") + ":MGU"
ONE_OP = str(CELLS / "one_op.py") + ":OneOp"
QUICK_OPS = ("sin", "softplus", "erf", "tan")  # --quick: one of each kind (fused, measured, failing its self-check)


def run(s: Settings) -> list[Row]:
    from landscape.kernels import unavailable

    why = unavailable("cpu")
    if why:
        print(f"  user-cell: skipped ({why})", flush=True)
        return []
    num, n, T = (6, 40, 10) if s.quick else (101, 1000, 100)
    rows = []
    for fit in ("fixed", "optimal"):
        user, builtin = GridPoints(latch_spec(MGU, num, n, T, "float64", fit)), GridPoints(latch_spec("gru", num, n, T,
                                                                                               "float64", fit))
        res = timed(s, {"mgu": _quiet(fused_losses, user, user.params),
                        "gru": _quiet(fused_losses, builtin, builtin.params)},
                    warmup={"mgu": lambda: fused_losses(user, user.subset(4)),
                            "gru": lambda: fused_losses(builtin, builtin.subset(4))})
        off = _rel(fused_losses(user, user.params), engine_losses(user, user.params))
        per = user.steps
        note = (f"mgu {res['mgu']['median'] / per * 1e9:.3f} ns, gru {res['gru']['median'] / per * 1e9:.3f} ns per "
                f"cell-step; the fused MGU's losses within {off:.1e} relative of its cell.step in torch")
        rows.append(speedup_row(NAME, f"latch {num}x{num} N={n} T={T} float64 readout={fit}",
                                "mgu (examples/cells/mgu.py:MGU, fused)", "gru (built-in, fused)", res, "mgu", "gru",
                                target=">= 0.5", note=note))
    return rows + op_rows(s)


@contextmanager
def one_core():
    """This process on one core with every thread pool at one (torch, the fused kernels' workers;
    OMP/MKL/OPENBLAS/NUMBA in the environment), restored afterwards; yields what it did, for the notes.
    A minimal stand-in until the shared pinning helper lands in benchmarks/common.py."""
    import torch

    from landscape.kernels import runtime, set_threads

    saved = ({v: os.environ.get(v) for v in _THREAD_VARS}, torch.get_num_threads(), runtime.THREADS)
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    os.environ.update({v: "1" for v in _THREAD_VARS})
    torch.set_num_threads(1)
    set_threads(1)
    try:
        if affinity:
            core = min(affinity)
            os.sched_setaffinity(0, {core})
        yield f"pinned to core {core}" if affinity else "not pinned (no sched_setaffinity)"
    finally:
        if affinity:
            os.sched_setaffinity(0, affinity)
        for v, old in saved[0].items():
            if old is None:
                os.environ.pop(v, None)
            else:
                os.environ[v] = old
        torch.set_num_threads(saved[1])
        set_threads(saved[2])


_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")


def op_spec(op: str, num: int, n: int, T: int):
    from landscape import Axis, GridSpec

    return GridSpec.of(cell=ONE_OP, cell_options={"op": op}, task="latch", T=(T,), n=n, fit="fixed", dtype="float64",
                       x=replace(Axis.parse("w:-2:2:3"), num=num), y=replace(Axis.parse("b:-2:2:3"), num=num))


def op_rows(s: Settings) -> list[Row]:
    """One row per function of examples/cells/one_op.py: fused / torch time (see the module docstring)."""
    import sys

    ops = QUICK_OPS if s.quick else sys.modules[_one_op_module()].OPS
    num, n, T = (4, 20, 5) if s.quick else (31, 200, 50)
    rows = []
    with one_core() as pinned:
        for op in ops:
            rows.append(_op_row(s, op, num, n, T, pinned))
    return rows


def _op_row(s: Settings, op: str, num: int, n: int, T: int, pinned: str) -> Row:
    from landscape.kernels.trace import Unsupported

    grid = GridPoints(op_spec(op, num, n, T))
    try:
        fused_losses(grid, grid.subset(2))  # builds the kernel (untimed)
        fused_fn, why = _quiet(fused_losses, grid, grid.params), ""
    except Unsupported as err:  # no kernel: landscape computes it with torch too
        fused_fn, why = _quiet(engine_losses, grid, grid.params), str(err)
    res = timed(s, {"fused": fused_fn, "torch": _quiet(engine_losses, grid, grid.params)},
                warmup={"torch": lambda: engine_losses(grid, grid.subset(2))})
    off = 0.0 if why else _rel(fused_losses(grid, grid.params), engine_losses(grid, grid.params))
    load = os.getloadavg()[0]
    threaded = [k for k in res if res[k]["median"] > 1.05 * res[k]["wall_median"]]
    note = (f"{'no fused kernel (' + why + '): torch on both sides; ' if why else ''}"
            f"{res['fused']['median'] / grid.steps * 1e9:.2f} / {res['torch']['median'] / grid.steps * 1e9:.2f} "
            f"ns per cell-step; losses within {off:.1e} of torch's; load {load:.2f}; {pinned}"
            + (f"; CPU > wall by >5 % on {', '.join(threaded)}" if threaded else ""))
    row = speedup_row(NAME, f"op {op}: latch {num}x{num} N={n} T={T} float64 readout=fixed",
                      "fused" if not why else "torch (no fused kernel)", "torch (cell.step)", res, "fused", "torch",
                      target="" if why else ">= 1.0", note=note)  # no kernel: torch against itself, no goal
    ratio = res["fused"]["median"] / res["torch"]["median"]
    print(f"  {op:<12} fused {res['fused']['median'] * 1e3:8.1f} ms  torch {res['torch']['median'] * 1e3:8.1f} ms"
          f"  fused/torch {ratio:5.2f}  {'-- ' if why else 'ok ' if ratio <= 1.0 else 'NO '}"
          f" load {load:.2f}{'  (no kernel: ' + why + ')' if why else ''}"
          + (f"  CPU>wall: {', '.join(threaded)}" if threaded else ""), flush=True)
    return row


def _one_op_module() -> str:
    from landscape.cells import cell_class

    return cell_class(ONE_OP).__module__
