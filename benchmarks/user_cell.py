"""A user's own cell against a built-in cell of the same size, both on the fused CPU path
(``--only user-cell``; in the default run).

The user's cell is the MGU of ``examples/cells/mgu.py`` (Zhou et al. 2016: two gates' worth of
parameters, written once as a pure torch ``step`` in a file, given as ``--cell FILE.py:Class``);
the built-in is ``gru`` (three gates). Both on latch over their default axes, 101 x 101, N = 1000,
T = 100, the fixed and the optimal readout, float64, one core, compute only (``kernels.numba.losses.losses``
after a warm-up call that builds the kernels). The target: the user's cell within 2x of the
built-in's time (ratio = gru time / mgu time >= 0.5). The MGU's losses are checked against its
own ``cell.step`` in torch (``engine.unroll_losses(..., fast=False)``).
"""
from __future__ import annotations

from pathlib import Path

from .common import GridPoints, Row, Settings, speedup_row, timed
from .fused_cpu import _quiet, _rel, engine_losses, fused_losses, latch_spec

NAME = "user-cell"
MGU = str(Path(__file__).resolve().parents[1] / "examples" / "cells" / "mgu.py") + ":MGU"


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
    return rows
