"""Multi-core scaling of the engine: one worker thread against every core this process may use.

The engine's public path on a large grid (``engine.unroll_losses`` on srnn latch, 201 x 201,
N = 1000, T = 100, fixed readout, float64: the fused kernels, their members split over worker
threads), with ``landscape.kernels.set_threads(1)`` and ``set_threads(cores)``, cores = the cores
the run was given (``common.ALLOWED``; ``python -m benchmarks`` pins the other benchmarks to one of
them, and this one widens it to all of them for its timings, ``common.cores``), timed alternately on the wall clock (CPU time would count every
thread). The target is a speed-up of at least 0.85 x cores.

On a machine shared with other processes the cores are not all ours: the 1-minute load average
before and after the timings is in the note (a load near or above the number of cores means the
extra threads wait for neighbours, and the row measures them). Run it alone when the load is low:
``python -m benchmarks --only scaling``.
"""
from __future__ import annotations

import os

import torch

from landscape import Axis, GridSpec, engine

from .common import ALLOWED, GridPoints, Row, Settings, cores, speedup_row, timed

NAME = "scaling"
EFFICIENCY = 0.85  # the target: speed-up >= EFFICIENCY x cores


def run(s: Settings) -> list[Row]:
    from landscape.kernels import runtime, set_threads, unavailable

    n_cores = len(ALLOWED)
    why = unavailable("cpu")
    if why:
        print(f"  scaling: skipped ({why}: cell.step in torch uses one thread)", flush=True)
        return []
    if n_cores < 2:
        print("  scaling: skipped (this run was given one core only)", flush=True)
        return []
    num, n, T = (16, 100, 20) if s.quick else (201, 1000, 100)
    spec = GridSpec.of(cell="srnn", task="latch", T=(T,), n=n, fit="fixed",
                    x=Axis("w", -1.0, 3.0, num), y=Axis("b", -1.5, 1.5, num))
    grid = GridPoints(spec)
    r, data, params = grid.r, grid.data, grid.params
    out = {}

    def with_threads(k):
        def call():
            old = runtime.THREADS
            set_threads(k)
            try:
                with torch.no_grad():
                    out[k] = engine.unroll_losses(r.problem, params, data, r.Ts)
            finally:
                set_threads(old)
        return call

    few = {k: v[:64] if v.shape[0] == num * num else v for k, v in params.items()}
    wall = Settings(quick=s.quick, repeats=s.repeats, threads=n_cores, clock="wall")
    load_before = os.getloadavg()
    with cores(n_cores):
        res = timed(wall, {"all": with_threads(n_cores), "one": with_threads(1)},
                    warmup={"w": lambda: engine.unroll_losses(r.problem, few, data, r.Ts)})
    load_after = os.getloadavg()
    if not torch.equal(out[1], out[n_cores]):
        raise AssertionError("the losses on one thread and on all cores differ")
    steps = num * num * n * T
    note = (f"target {EFFICIENCY} x {n_cores} cores; 1-minute load average {load_before[0]:.2f} before, "
            f"{load_after[0]:.2f} after (5-minute {load_before[1]:.2f}) on {os.cpu_count()} cores: other processes "
            f"take cores too; one thread {res['one']['median'] / steps * 1e9:.3f} ns per cell-step; "
            f"the same losses bit for bit")
    row = speedup_row(NAME, f"srnn latch {num}x{num} N={n} T={T} float64 readout=fixed (wall clock)",
                      f"engine, {n_cores} threads", "engine, 1 thread", res, "all", "one",
                      target=f">= {EFFICIENCY * n_cores:.3g}", note=note)
    row.extra.update(load_before=load_before[0], load_after=load_after[0], cores_used=n_cores)
    return [row]
