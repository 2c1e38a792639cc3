"""srnn against its hardware floor.

The floor is the least any implementation of h' = tanh(w h + u x + b) must do with torch's tanh:
one in-place ``tanh_`` per cell-step (MKL's vmdTanh on x86 builds of torch), over the same blocks of
(members, sequences) the engine runs (``engine.block_plan``: the same P N chunking, the same cache
footprint), with no affine part, no input and no loss. Two candidates on the whole population of a
latch grid:

- the engine's unroll alone (the same blocks, steppers and buffers, ``engine._blocks`` and
  ``engine._block_outputs``, the outputs at T read and dropped): the "plain in-place,
  cache-sized-chunk unroll" of the issue, and the row that carries the <= 1.2 target, since the
  floor counts cell-steps;
- the whole ``engine.unroll_losses`` (fixed readout): the unroll plus the loss at T, which is one
  pass of a softplus per (member, sequence), not per cell-step; its share is given in the note.

A third row times the affine pass of the unroll alone (one ``addcmul`` per step over the same
blocks): the unroll costs about the floor plus this pass, which is what the floor target is about.

candidate / floor is then the price of everything beside the tanh.
"""
from __future__ import annotations

import torch

from landscape import Axis, GridSpec, engine

from .common import GridPoints, Row, Settings, timed

NAME = "floor"


def run(s: Settings) -> list[Row]:
    num, n, T = (8, 50, 10) if s.quick else (101, 1000, 100)
    spec = GridSpec.of(cell="srnn", task="latch", T=(T,), n=n, fit="fixed",
                    x=Axis("w", -1.0, 3.0, num), y=Axis("b", -1.5, 1.5, num))
    grid = GridPoints(spec)
    r, data, params = grid.r, grid.data, grid.params
    plan = engine.block_plan(r.problem.cell, params, n, 1, 1)
    g = torch.Generator().manual_seed(0)
    starts = [torch.rand((b, n), generator=g, dtype=torch.float64) * 2 - 1 for b in plan]  # values like h's

    def candidate():
        with torch.no_grad():
            engine.unroll_losses(r.problem, params, data, r.Ts, fused=False)

    stepper = engine.cpu_stepper(r.problem.cell, 1, 1)
    item = next(iter(params.values())).element_size()

    def unroll():  # the engine's unroll of every block, the outputs at T read and dropped
        pool = engine.Buffers()
        with torch.no_grad():
            for _, sub in engine._blocks(params, num * num, n, 1, item, stepper, None, torch.device("cpu")):
                for _ in engine._block_outputs(r.problem.cell, sub, data, r.Ts, 1, stepper, pool):
                    pass

    x = data.inputs[..., 0]  # (T, N)

    def affine():  # the other pass of each srnn step: w h + (b + u x_t), one addcmul, no tanh
        pool = engine.Buffers()
        for _, sub in engine._blocks(params, num * num, n, 1, item, stepper, None, torch.device("cpu")):
            run = stepper(sub, x, n, data.h0, pool)
            a = run.affine  # the grouped block's case: rows (T of (N,)) shared, w a (P, 1) column
            for t in range(T):
                torch.addcmul(a.rows[t], run.h, a.w, out=run.h)

    def floor():
        for h0 in starts:
            h = h0.clone()
            for _ in range(T):
                h.tanh_()

    few = {k: v[:8] if v.shape[0] == num * num else v for k, v in params.items()}
    warm = {"engine": lambda: engine.unroll_losses(r.problem, few, data, r.Ts, fused=False)}
    res = timed(s, {"engine": candidate, "unroll": unroll, "affine": affine, "floor": floor}, warmup=warm)
    f = res["floor"]["median"]
    steps = num * num * n * T
    rows = []
    loss_share = (res["engine"]["median"] - res["unroll"]["median"]) / f
    for key, name, target in (("unroll", "the engine's unroll alone", "<= 1.2"), ("engine", "engine.unroll_losses", ""),
                              ("affine", "its addcmul pass alone", "")):
        c = res[key]["median"]
        note = (f"{len(plan)} blocks of {min(plan)}-{max(plan)} members x {n} sequences; "
                f"floor {f / steps * 1e9:.2f} ns and candidate {c / steps * 1e9:.2f} ns per cell-step")
        if key == "engine":
            note += f"; the loss at T adds {loss_share:.2f} of the floor"
        if key == "affine":
            note += "; the unroll is about floor + this pass: the tanh_ and the addcmul each stream the block once"
        rows.append(Row(NAME, f"srnn latch N={n} T={T} {num}x{num} readout=fixed", name, "tanh_ floor (same blocks)",
                        c, f, "s", c / f, "candidate / floor (time)", target, note=note,
                        extra={"candidate_wall_s": res[key]["wall_median"], "baseline_wall_s": res["floor"]["wall_median"],
                               "repeats": len(res[key]["times"])}).check())
    return rows
