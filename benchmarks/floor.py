"""srnn against its hardware floor.

The floor is the least any implementation of h' = tanh(w h + u x + b) must do with torch's tanh:
one in-place ``tanh_`` per cell-step (MKL's vmdTanh on x86 builds of torch), over the blocks of
(members, sequences) the engine's ``cell.step`` path runs (``engine._blocks``: the same P N
chunking, the same cache footprint), with no affine part, no input and no loss. Candidates on the
whole population of a latch grid:

- the engine's unroll, the fused kernel (``kernels.numba``: the outputs at T, one thread), where
  numba is importable: the row that carries the <= 1.2 target, since the floor counts cell-steps;
- ``cell.step`` unrolled in torch over the same blocks (``engine.step_outputs``, the outputs at T
  read and dropped): the path from before the fused kernels, allocating, a few passes per step;
- the whole ``engine.unroll_losses(..., fast=False)`` (fixed readout): that unroll plus the loss at
  T, which is one pass of a softplus per (member, sequence), not per cell-step; its share is given
  in the note.

candidate / floor is then the price of everything beside the tanh.
"""
from __future__ import annotations

import torch

from landscape import Axis, GridSpec, engine

from .common import GridPoints, Row, Settings, clock_extras, timed

NAME = "floor"


def run(s: Settings) -> list[Row]:
    from landscape.kernels import unavailable

    num, n, T = (8, 50, 10) if s.quick else (101, 1000, 100)
    spec = GridSpec.of(cell="srnn", task="latch", T=(T,), n=n, fit="fixed",
                    x=Axis("w", -1.0, 3.0, num), y=Axis("b", -1.5, 1.5, num))
    grid = GridPoints(spec)
    r, data, params = grid.r, grid.data, grid.params
    cpu = torch.device("cpu")
    blocks = list(engine._blocks(params, num * num, n, 1, None, cpu))  # (slice, params of the block)
    plan = [b.stop - b.start for b, _ in blocks]
    g = torch.Generator().manual_seed(0)
    starts = [torch.rand((b, n), generator=g, dtype=torch.float64) * 2 - 1 for b in plan]  # values like h's

    def candidate():
        with torch.no_grad():
            engine.unroll_losses(r.problem, params, data, r.Ts, fast=False)

    def unroll():  # cell.step over every block, the outputs at T read and dropped
        with torch.no_grad():
            for _, sub in blocks:
                for _ in engine.step_outputs(r.problem.cell, sub, data, r.Ts, 1):
                    pass

    def floor():
        for h0 in starts:
            h = h0.clone()
            for _ in range(T):
                h.tanh_()

    funcs = {"engine": candidate, "unroll": unroll, "floor": floor}
    few = {k: v[:8] if v.shape[0] == num * num else v for k, v in params.items()}
    warm = {"engine": lambda: engine.unroll_losses(r.problem, few, data, r.Ts, fast=False)}
    if unavailable("cpu") is None:
        from landscape.kernels.numba.unroll import fused_kernel

        kernel = fused_kernel(r.problem.cell, 1, grid.dtype)
        x, ends = data.inputs[..., 0], [data.ends[T] for T in r.Ts]

        def fused():  # returns nothing: ``timed`` reads a returned value as a scale
            kernel.outputs(params, x, ends, data.h0, threads=1)

        funcs["fused"] = fused
        warm["fused"] = lambda: kernel.outputs(few, x, ends, data.h0, threads=1)
    res = timed(s, funcs, warmup=warm)
    f = res["floor"]["median"]
    steps = num * num * n * T
    rows = []
    loss_share = (res["engine"]["median"] - res["unroll"]["median"]) / f
    for key, name, target in (("fused", "the fused kernel's unroll (one thread)", "<= 1.2"),
                              ("unroll", "cell.step unrolled in torch", ""),
                              ("engine", "engine.unroll_losses(fast=False)", "")):
        if key not in res:
            continue
        c = res[key]["median"]
        note = (f"{len(plan)} blocks of {min(plan)}-{max(plan)} members x {n} sequences; "
                f"floor {f / steps * 1e9:.2f} ns and candidate {c / steps * 1e9:.2f} ns per cell-step")
        if key == "engine":
            note += f"; the loss at T adds {loss_share:.2f} of the floor"
        rows.append(Row(NAME, f"srnn latch N={n} T={T} {num}x{num} readout=fixed", name, "tanh_ floor (same blocks)",
                        c, f, "s", c / f, "candidate / floor (time)", target, note=note,
                        extra=clock_extras(res, key, "floor")).check())
    return rows
