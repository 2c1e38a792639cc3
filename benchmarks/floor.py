"""srnn against its hardware floor.

The candidate is the engine (``engine.unroll_losses``, fixed readout) on the whole population of a
latch grid. The floor is the least any implementation of h' = tanh(w h + u x + b) must do with
torch's tanh: one in-place ``tanh_`` per cell-step, over the same blocks of (members, sequences)
the engine runs (``engine.block_plan``: the same P N chunking, the same cache footprint), with no
affine part, no input and no loss. candidate / floor is then the price of everything else.
"""
from __future__ import annotations

import torch

import landscape
from landscape import Axis, GridSpec, engine

from .common import Row, Settings, timed

NAME = "floor"


def run(s: Settings) -> list[Row]:
    num, n, T = (8, 50, 10) if s.quick else (101, 1000, 100)
    spec = GridSpec(cell="srnn", task="latch", T=(T,), n=n, readout="fixed",
                    x=Axis("w", -1.0, 3.0, num), y=Axis("b", -1.5, 1.5, num))
    r = landscape.resolve(spec)
    data = r.task.make(r.Ts, r.n, spec.seed).to(torch.float64, torch.device("cpu"))
    xs, ys = torch.as_tensor(r.x.values()), torch.as_tensor(r.y.values())
    flat = torch.arange(num * num)
    params = engine.chunk_params(r.base, (r.x_ref, r.y_ref), (xs[flat // num], ys[flat % num]), torch.float64,
                                 torch.device("cpu"))
    plan = engine.block_plan(r.cell, params, n, 1, 1)
    g = torch.Generator().manual_seed(0)
    starts = [torch.rand((b, n), generator=g, dtype=torch.float64) * 2 - 1 for b in plan]  # values like h's

    def candidate():
        with torch.no_grad():
            engine.unroll_losses(r.cell, params, data, r.task, r.Ts, "fixed", r.spec.readout_l2, 1)

    def floor():
        for h0 in starts:
            h = h0.clone()
            for _ in range(T):
                h.tanh_()

    few = {k: v[:8] if v.shape[0] == num * num else v for k, v in params.items()}
    warm = {"engine": lambda: engine.unroll_losses(r.cell, few, data, r.task, r.Ts, "fixed", r.spec.readout_l2, 1)}
    res = timed(s, {"engine": candidate, "floor": floor}, warmup=warm)
    c, f = res["engine"]["median"], res["floor"]["median"]
    steps = num * num * n * T
    note = (f"{len(plan)} blocks of {min(plan)}-{max(plan)} members x {n} sequences; "
            f"floor {f / steps * 1e9:.2f} ns and engine {c / steps * 1e9:.2f} ns per cell-step")
    return [Row(NAME, f"srnn latch N={n} T={T} {num}x{num} readout=fixed", "engine.unroll_losses",
                "tanh_ floor (same blocks)", c, f, "s", c / f, "candidate / floor (time)", "<= 1.2", note=note,
                extra={"candidate_wall_s": res["engine"]["wall_median"], "baseline_wall_s": res["floor"]["wall_median"],
                       "repeats": len(res["engine"]["times"])}).check()]
