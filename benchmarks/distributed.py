"""A grid on a Dask LocalCluster of two worker processes (``--scheduler local:2``) against the same
grid in one process.

Both sides compute the same spec into a fresh file (``force``), the same chunks (the memory
budget's), one torch thread per process; the cluster side includes everything a user waits for:
starting the cluster (two spawned worker processes that import torch), sending the resolved grid
and the data, and closing it. Timed by the wall clock (the work happens in other processes, so
this process's CPU time would not count it), alternately, medians.

Cases:
  large   601 x 601 points, N = 1000 sequences, T = 100, fixed readout: the start-up is amortised;
          the target is >= 1.7x on two workers (two cores).
  small   51 x 51 points (one chunk): the start-up is all there is; the ratio is below one and
          the note gives the overhead in seconds.
  warm    the small grid on a cluster that is already running (a ``landscape.distributed.use``
          block, as ``reproduce --scheduler`` keeps one for all its grids): the cost per grid of
          scattering the inputs and gathering the chunks.

On a shared machine the two workers compete with everything else for the cores; the note gives
the load average before and after.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import replace
from pathlib import Path

from .common import Row, Settings, speedup_row, timed

NAME = "distributed"
WORKERS = 2


def _spec(num: int, n: int, T: int):
    from landscape import Axis, GridSpec

    return GridSpec(cell="srnn", task="latch", T=(T,), x=Axis.parse(f"w:-1:3:{num}"), y=Axis.parse(f"b:-1:1:{num}"),
                    n=n, fit="fixed")


def run(s: Settings) -> list[Row]:
    from landscape import grid
    from landscape.distributed import connect

    try:
        import distributed  # noqa: F401
    except ImportError:
        print("  distributed: skipped (dask is not installed: pip install landscape[dask])")
        return []
    wall = replace(s, clock="wall")
    large, small = ((_spec(41, 100, 20), _spec(11, 100, 20)) if s.quick else
                    (_spec(601, 1000, 100), _spec(51, 1000, 100)))
    rows = []
    with tempfile.TemporaryDirectory(prefix="landscape-bench-dask-") as tmp:
        out = Path(tmp) / "g.h5"

        def here(spec):
            def go():
                grid(spec, out=out, force=True, device="cpu", progress=False)
            return go

        def cluster(spec, scheduler):
            def go():
                grid(spec, out=out, force=True, device="cpu", progress=False, scheduler=scheduler)
            return go

        for case, spec in (("large", large), ("small", small)):
            load0 = os.getloadavg()
            res = timed(wall, {"cluster": cluster(spec, f"local:{WORKERS}"), "here": here(spec)},
                        warmup={"here": here(small)})
            load1 = os.getloadavg()
            c, b = res["cluster"]["median"], res["here"]["median"]
            points = spec.x.num * spec.y.num
            note = (f"{spec.x.num} x {spec.y.num} points, N = {spec.n}, T = {spec.T[0]}; cluster start included; "
                    f"{'overhead' if c > b else 'saved'} {abs(c - b):.2f} s; here {points / b:,.0f} points/s; "
                    f"load average {load0[0]:.1f} -> {load1[0]:.1f} on {os.cpu_count()} cores")
            rows.append(speedup_row(NAME, f"{case}: {spec.x.num}x{spec.y.num} grid, N={spec.n}, T={spec.T[0]}",
                                    f"--scheduler local:{WORKERS}", "one process", res, "cluster", "here",
                                    target=">= 1.7" if case == "large" and not s.quick else "", note=note))
        sched = connect(f"local:{WORKERS}")  # kept running across the calls, as a use() block keeps it
        try:
            sched.client.run(_import_landscape)  # the workers' first task would import torch
            load0 = os.getloadavg()
            res = timed(wall, {"cluster": cluster(small, sched), "here": here(small)})
            load1 = os.getloadavg()
        finally:
            sched.close()
        c, b = res["cluster"]["median"], res["here"]["median"]
        rows.append(speedup_row(NAME, f"warm: {small.x.num}x{small.y.num} grid on a running cluster",
                                f"use('local:{WORKERS}')", "one process", res, "cluster", "here",
                                note=f"one chunk; per-grid overhead {c - b:+.3f} s; load average {load0[0]:.1f} -> "
                                     f"{load1[0]:.1f}"))
    return rows


def _import_landscape() -> None:
    import landscape.surface  # noqa: F401


if __name__ == "__main__":
    import argparse

    from .common import table

    p = argparse.ArgumentParser(prog="python -m benchmarks.distributed", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes, one repeat: a smoke run")
    p.add_argument("--repeats", type=int, default=3, help="timings per side, medians reported (default 3)")
    args = p.parse_args()
    print(table(run(Settings(quick=args.quick, repeats=1 if args.quick else args.repeats, clock="wall"))))
