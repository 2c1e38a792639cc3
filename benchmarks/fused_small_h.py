"""The fused kernels for H units (``kernels.numba.units``) on the plane of an H-unit gru, lstm or srnn,
against the torch path and a JAX ``vmap`` peer, one core each: ``python -m benchmarks.fused_small_h``
prints the rows (``--quick``: a smoke run, gru at H = 2 and 16; ``--cases gru:16,lstm:32`` the
(cell, H) pairs; ``--out F.csv`` also writes them).

The problem: the cell (gru: torch form; sigmoid gates) with H units on latch, fixed readout,
float64, N = 1000 sequences, T = 100, on a 101 x 101 plane through the base point (recurrent
weights I, the rest at their defaults) along two random directions in every parameter
(``--directions random``: each point is a different full set of weights, as around a trained
network). Each side computes the losses of the same first ``POINTS[H]`` points of the plane (101
above H = 8: a few rows; the plane's time is that, scaled):

- fused: ``engine.unroll_losses`` as the grid calls it (the dispatch, ``kernels.fused_losses``: up
  to H = 8 the straight-line kernel, above the register-blocked products of ``numba.matvec``; the
  row says if it fell back, and why: above ``numba.units.MAX_H`` it keeps the torch path);
- torch: ``engine.unroll_losses(..., fast=False)``, ``cell.step`` in torch;
- JAX: a program written here from the cells' equations, not from landscape's code: the step of
  one point under ``lax.scan`` over T (the N sequences a batch), ``jax.vmap`` over the points,
  ``jit``, x64; its losses are checked against the torch path's (the note gives the largest
  relative gap).

Alternated (fused, torch, JAX, fused, ...), medians of CPU time; the load average beside each row;
a side whose CPU time exceeds its wall time by more than 5 % (more than one thread busy) is flagged.
Pinning (this file's own, until ``benchmarks.common`` has one): the process is bound to one core
(``os.sched_setaffinity``), XLA's threads are off (XLA_FLAGS, set before JAX is imported), torch,
numba, OpenMP, MKL and OpenBLAS take one thread.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

NAME = "fused-small-h"
POINTS = {2: 404, 8: 202}  # points timed per H (rows of the 101 x 101 plane; 101 above): a few seconds a side
CASES = (("gru", 2), ("gru", 8), ("gru", 12), ("gru", 16), ("gru", 24), ("gru", 32), ("lstm", 16), ("lstm", 32),
         ("srnn", 16), ("srnn", 32))  # (cell, H) of the default rows
QUICK = (("gru", 2), ("gru", 16))


def plane(cell: str, H: int, num: int, n: int, T: int):
    """The plane's ``common.GridPoints`` with the parameters of every point (base + a d1 + b d2)."""
    import torch

    from landscape import Axis, GridSpec
    from landscape.directions import make_plane

    from .common import GridPoints

    grid = GridPoints(GridSpec.of(cell=cell, task="latch", hidden=H, T=(T,), n=n, fit="fixed", dtype="float64",
                                  directions="random", x=Axis("a", -1, 1, num), y=Axis("b", -1, 1, num)))
    r = grid.r
    flat = make_plane("random", r.problem, r.problem.base, seed=r.spec.direction_seed)
    grid.params = flat.grid_params(r.x.values(), r.y.values(), torch.float64)  # name -> (P, *shape)
    return grid


def jax_losses(cell: str, H: int, params: dict, data, T: int):
    """The JAX peer: a jitted function of the points' parameters -> (P,) losses, and its arguments."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    jax.config.update("jax_enable_x64", True)
    x = jnp.asarray(data.inputs[:T].numpy())  # (T, N, 1)
    sign = jnp.asarray(1.0 - 2.0 * (data.targets[T] > 0.5).double().numpy())  # (N,): -1 where the label is 1
    N = x.shape[1]
    h0 = float(data.h0)

    def pre(p, h, xt, g):  # W_g h + U_g x + b_g, (N, H)
        return h @ p[f"w_{g}"].T + xt @ p[f"u_{g}"].T + p[f"b_{g}"]

    def step(p, s, xt):  # the state s (a tuple of (N, H)), xt (N, 1) -> the next state
        if cell == "srnn":
            return (jnp.tanh(s[0] @ p["w"].T + p["b"] + xt @ p["u"].T),)
        if cell == "lstm":
            h, c = s
            i, f, o = (jax.nn.sigmoid(pre(p, h, xt, g)) for g in "ifo")
            c = f * c + i * jnp.tanh(pre(p, h, xt, "z"))
            return (o * jnp.tanh(c), c)
        (h,) = s  # gru, torch form
        z = jax.nn.sigmoid(pre(p, h, xt, "z"))
        r = jax.nn.sigmoid(pre(p, h, xt, "r"))
        cand = jnp.tanh(xt @ p["u_h"].T + p["b_h"] + r * (h @ p["w_h"].T + p["b_hn"]))
        return (z * h + (1.0 - z) * cand,)

    def one(p):  # the parameters of one point -> its loss
        init = tuple(jnp.full((N, H), h0) for _ in range(2 if cell == "lstm" else 1))
        s, _ = jax.lax.scan(lambda s, xt: (step(p, s, xt), None), init, x)
        logit = s[0] @ p["out_w"] + p["out_b"][0]  # (N,)
        return jnp.mean(jax.nn.softplus(sign * logit))

    P = max(v.shape[0] for v in params.values())
    args = {k: jnp.asarray(np.ascontiguousarray(v.expand(P, *v.shape[1:]).numpy())) for k, v in params.items()}
    fn = jax.jit(jax.vmap(one))
    return lambda: fn(args).block_until_ready()


def run(s) -> list:
    """``python -m benchmarks --only fused-small-h``: the ``CASES`` rows at the settings ``s`` (``QUICK``'s
    when quick)."""
    num, n, T = (6, 40, 10) if s.quick else (101, 1000, 100)
    return measure(QUICK if s.quick else CASES, num, n, T, s.repeats, s.quick)[0]


def measure(cases, num: int, n: int, T: int, repeats: int, quick: bool):
    """The rows of each (cell, H) in cases: fused against torch, and against JAX where it is installed."""
    import numpy as np
    import torch

    from landscape import engine, kernels

    from . import jax_baseline
    from .common import Row, Settings, speedup_row, timed
    from .fused_cpu import _rel

    have_jax = jax_baseline.available()  # without jax (the optional extra 'bench'): no JAX rows, a note says so

    torch.set_num_threads(1)
    kernels.set_threads(1)
    s = Settings(quick=quick, repeats=repeats)
    rows: list[Row] = []
    for cell, H in cases:
        grid = plane(cell, H, num, n, T)
        m = min(grid.P, POINTS.get(H, num))
        sub, r = grid.subset(m), grid.r
        scale = grid.P / m  # the plane's time from the subset's

        def fused(r=r, sub=sub, data=grid.data):  # the engine's default: the dispatch, or its fallback
            with torch.no_grad():
                return engine.unroll_losses(r.problem, sub, data, r.Ts)

        def plain(r=r, sub=sub, data=grid.data):
            with torch.no_grad():
                return engine.unroll_losses(r.problem, sub, data, r.Ts, fast=False)

        want = plain()[0]
        with torch.no_grad():  # builds (or loads) the kernel, untimed; why: None, or why it fell back
            why = kernels.fused_losses(r.problem, sub, grid.data, r.Ts)[1]
        got = fused()
        sides = {"fused": fused, "torch": plain}
        if have_jax:
            sides["jax"] = jax_losses(cell, H, sub, grid.data, T)
            gap_jax = f"JAX within {_rel(torch.from_numpy(np.array(sides['jax']())), want):.1e}"
        else:
            gap_jax = "no JAX side: jax is not installed (pip install -e '.[bench]')"
        gap_fused = _rel(got[0], want)
        res = timed(s, {name: (lambda fn=fn, scale=scale: (fn(), scale)[1])  # timed reads the scale
                        for name, fn in sides.items()})
        load = os.getloadavg()[0]
        flagged = [k for k, v in res.items() if v["median"] > 1.05 * v["wall_median"]]
        steps = grid.steps
        per_step = " / ".join(f"{k} {v['median'] / steps * 1e9:.2f}" for k, v in res.items())
        note = (f"{per_step} ns per cell-step (the JAX goal: fused <= 0.8 x its time); "
                f"fused within {gap_fused:.1e} relative of torch, {gap_jax}; load {load:.2f}"
                + (f"; CPU > 1.05 x wall: {', '.join(flagged)}" if flagged else "")
                + ("" if why is None else f"; NOT FUSED: {why}"))
        case = f"{cell} H={H} latch {num}x{num} random directions N={n} T={T} float64 fixed ({m} points timed)"
        rows.append(speedup_row(NAME, case, "fused (numba.units)", "torch (cell.step)", res, "fused", "torch",
                                note=note))
        if have_jax:
            rows.append(speedup_row(NAME, case, "fused (numba.units)", "JAX (jit, vmap, lax.scan)", res, "fused",
                                    "jax", target=">= 1.25", note=note))
        print(f"  {cell} H={H}: done", file=sys.stderr, flush=True)
    return rows, s


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.fused_small_h", description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", help="cell:H pairs, comma-separated (default: " + ",".join(f"{c}:{h}" for c, h in CASES)
                   + "; --quick: " + ",".join(f"{c}:{h}" for c, h in QUICK) + ")")
    p.add_argument("--quick", action="store_true", help="tiny sizes, one repeat (a smoke run)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, help="also write the rows as CSV")
    args = p.parse_args(argv)
    from .common import CORE, pin, table, write_csv

    pin()  # every side on common.CORE, one thread per library (XLA's included)
    num, n, T = (6, 40, 10) if args.quick else (101, 1000, 100)
    cases = (QUICK if args.quick else CASES) if args.cases is None else [
        (c, int(h)) for c, h in (pair.split(":") for pair in args.cases.split(","))]
    rows, s = measure(cases, num, n, T, 1 if args.quick else args.repeats, args.quick)
    print(f"pinned to core {CORE}; XLA, torch, numba one thread each", flush=True)
    print(table(rows), flush=True)
    if args.out:
        write_csv(rows, args.out, s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
