"""A grid on a Dask LocalCluster of two worker processes (``--scheduler local:2``) against the same
grid in one process.

Both sides compute the same spec into a fresh file (``force``), the same chunks (the memory
budget's), one thread per process (torch's and the fused kernels'); the cluster side includes everything a user waits for:
starting the cluster (two spawned worker processes that import torch), sending the resolved grid
and the data, and closing it. Timed by the wall clock (the work happens in other processes, so
this process's CPU time would not count it), alternately, medians.

Cases:
  process the large grid as a user runs it: ``landscape grid ... --scheduler local:2`` (a process on
          two cores, its workers with it) against ``landscape grid ... --threads 1`` (a process on
          one core), whole processes (both import torch; the cluster side starts, uses and closes
          its cluster), wall clock, alternated; the target is >= 1.7x. The CPU row divides the
          cluster process's CPU time (its workers' included) by the two cores: what it would
          take on two free cores.
  large   601 x 601 points (LARGE; ``python -m benchmarks.distributed --large 401`` for less),
          N = 1000 sequences, T = 100, fixed readout: the start-up is amortised; the target is
          >= 1.7x on two workers (two cores).
  small   51 x 51 points (one chunk): the start-up is all there is; the ratio is below one and
          the note gives the overhead in seconds.
  warm    the small grid on a cluster that is already running (a ``landscape.distributed.use``
          block, as ``reproduce --scheduler`` keeps one for all its grids): the cost per grid of
          scattering the inputs and gathering the chunks.

The one-process side runs on one core (``common.pin``); the cluster side on two (``common.cores``:
the client and the worker processes it starts, which inherit the set).

On a shared machine the two workers compete with everything else for the cores; the note gives
the load average before and after.
"""
from __future__ import annotations

import os
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from .common import Row, Settings, cores, speedup_row, timed

NAME = "distributed"
WORKERS = 2
LARGE = 601  # points per axis of the large case


def _spec(num: int, n: int, T: int):
    from landscape import Axis, GridSpec

    return GridSpec.of(cell="srnn", task="latch", T=(T,), x=Axis.parse(f"w:-1:3:{num}"), y=Axis.parse(f"b:-1:1:{num}"),
                    n=n, fit="fixed")


def run(s: Settings, large_num: int = LARGE) -> list[Row]:
    from landscape import grid
    from landscape.distributed import connect

    try:
        import distributed  # noqa: F401
    except ImportError:
        print("  distributed: skipped (dask is not installed: pip install 'rnn-landscape[dask]')")
        return []
    from landscape.kernels import runtime, set_threads

    wall = replace(s, clock="wall", threads=WORKERS)  # the wall clock; CPU time here is not the work (no CPU check)
    threads = runtime.THREADS
    set_threads(s.threads)  # the baseline is one process on one thread, as each worker is
    try:
        return _run(s, wall, grid, connect, large_num)
    finally:
        set_threads(threads)


def _run(s: Settings, wall: Settings, grid, connect, large_num: int) -> list[Row]:
    large, small = ((_spec(41, 100, 20), _spec(11, 100, 20)) if s.quick else
                    (_spec(large_num, 1000, 100), _spec(51, 1000, 100)))
    rows = []
    with tempfile.TemporaryDirectory(prefix="landscape-bench-dask-") as tmp:
        out = Path(tmp) / "g.h5"
        cpu = {"here": [], "cluster": []}  # per repeat: CPU seconds here / the ideal makespan on the cluster

        def here(spec):
            def go():
                c0 = time.process_time()
                grid(spec, out=out, force=True, device="cpu", progress=False)
                cpu["here"].append(time.process_time() - c0)
            return go

        def cold(spec):
            """What --scheduler local:N does (start, compute, close), with the workers' CPU time read
            before they go."""
            def go():
                c0 = time.process_time()
                with cores(WORKERS):
                    sched = connect(f"local:{WORKERS}")
                    try:
                        grid(spec, out=out, force=True, device="cpu", progress=False, scheduler=sched)
                        workers = list(sched.client.run(time.process_time).values())  # since each one started
                    finally:
                        sched.close()
                cpu["cluster"].append(_makespan(workers, time.process_time() - c0))
            return go

        rows += processes(s, large.x.num if not s.quick else 41, Path(tmp))
        for case, spec in (("large", large), ("small", small)):
            cpu["here"].clear()
            cpu["cluster"].clear()
            load0 = os.getloadavg()
            res = timed(wall, {"cluster": cold(spec), "here": here(spec)}, warmup={"here": here(small)})
            load1 = os.getloadavg()
            cpu["here"].pop(0)  # the warm-up
            c, b = res["cluster"]["median"], res["here"]["median"]
            points = spec.x.num * spec.y.num
            label = f"{spec.x.num}x{spec.y.num} grid, N={spec.n}, T={spec.T[0]}"
            note = (f"wall clock; cluster start included; {'overhead' if c > b else 'saved'} {abs(c - b):.2f} s; "
                    f"here {points / b:,.0f} points/s; load average {load0[0]:.1f} -> {load1[0]:.1f} on "
                    f"{os.cpu_count()} cores")
            rows.append(speedup_row(NAME, f"{case}: {label}", f"--scheduler local:{WORKERS}", "one process", res,
                                    "cluster", "here", target=">= 1.7" if case == "large" and not s.quick else "",
                                    note=note))
            by_cpu = {"cluster": {"median": statistics.median(cpu["cluster"]), "wall_median": c},
                      "here": {"median": statistics.median(cpu["here"]), "wall_median": b}}
            rows.append(speedup_row(NAME, f"{case} by CPU time: {label}", f"--scheduler local:{WORKERS}", "one process",
                                    {k: {**v, "times": cpu[k]} for k, v in by_cpu.items()}, "cluster", "here",
                                    target=">= 1.7" if case == "large" and not s.quick else "",
                                    note="CPU seconds: here, this process; cluster, the makespan on "
                                         f"{WORKERS} free cores implied by each worker's CPU time since it "
                                         "started (imports included) and this process's "
                                         "(max(worker), (sum + client) / cores)"))
        with cores(WORKERS):  # the workers keep the two cores; the client's writes go back to one
            sched = connect(f"local:{WORKERS}")  # kept running across the calls, as a use() block keeps it
        try:
            sched.client.run(_import_landscape)  # the workers' first task would import torch

            def warm():
                grid(small, out=out, force=True, device="cpu", progress=False, scheduler=sched)

            load0 = os.getloadavg()
            res = timed(wall, {"cluster": warm, "here": here(small)})
            load1 = os.getloadavg()
        finally:
            sched.close()
        c, b = res["cluster"]["median"], res["here"]["median"]
        rows.append(speedup_row(NAME, f"warm: {small.x.num}x{small.y.num} grid on a running cluster",
                                f"use('local:{WORKERS}')", "one process", res, "cluster", "here",
                                note=f"wall clock; one chunk; per-grid overhead {c - b:+.3f} s; load average "
                                     f"{load0[0]:.1f} -> {load1[0]:.1f}"))
    return rows


def processes(s: Settings, num: int, tmp: Path) -> list[Row]:
    """The ``process`` case (module docstring) on a num x num grid."""
    from .process import alternate, child, landscape_cmd, process_row

    n, T = (100, 20) if s.quick else (1000, 100)
    args = ["grid", "--cell", "srnn", "--task", "latch", "--x", f"w:-1:3:{num}", "--y", f"b:-1:1:{num}", "--T", str(T),
            "--n", str(n), "--readout", "fixed", "--quiet", "--force"]
    env = {"LANDSCAPE_CACHE": str(tmp / "process-cache")}

    def cluster():
        with cores(WORKERS):  # the process and the workers it spawns: two cores
            return child(landscape_cmd(*args, "--out", str(tmp / "cluster.h5"), "--scheduler", f"local:{WORKERS}"), env,
                         one_core=False)

    def here():
        return child(landscape_cmd(*args, "--out", str(tmp / "here.h5"), "--threads", "1"), env)

    if not s.quick:
        here()  # untimed: the kernel cache warm, the files in the OS cache
    load0 = os.getloadavg()
    res = alternate(s, {"cluster": cluster, "here": here})
    load1 = os.getloadavg()
    case = f"process: `landscape grid` srnn latch {num}x{num} N={n} T={T} readout=fixed, whole processes"
    note = (f"wall clock; load average {load0[0]:.1f} -> {load1[0]:.1f} on {os.cpu_count()} cores; "
            f"`landscape grid ... --scheduler local:{WORKERS}` on {WORKERS} cores against `--threads 1` on one")
    wall_row = process_row(case, f"--scheduler local:{WORKERS}", "one process", res, "cluster", "here",
                           ">= 1.7" if not s.quick else "", note, clock="wall", one_core=False, benchmark=NAME)
    by_cpu = {"cluster": {**res["cluster"], "cpu": res["cluster"]["cpu"] / WORKERS}, "here": res["here"]}
    cpu_row = process_row(f"{case}, by CPU time", f"--scheduler local:{WORKERS} (CPU / {WORKERS})", "one process",
                          by_cpu, "cluster", "here", note="CPU seconds: the cluster process's, its workers' "
                          f"included, over {WORKERS} cores (the wall time on {WORKERS} free cores), against the "
                          "one process's", one_core=False, benchmark=NAME)
    return [wall_row, cpu_row]


def _makespan(workers: list[float], client: float) -> float:
    """The shortest wall time the measured CPU seconds allow on WORKERS free cores: no worker can
    finish before its own CPU time, and all of it (with this process's) shares the cores."""
    return max(max(workers), (sum(workers) + client) / WORKERS)


def _import_landscape() -> None:
    import landscape.surface  # noqa: F401


if __name__ == "__main__":
    import argparse

    from .common import pin, table, write_csv

    p = argparse.ArgumentParser(prog="python -m benchmarks.distributed", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes, one repeat: a smoke run")
    p.add_argument("--repeats", type=int, default=3, help="timings per side, medians reported (default 3)")
    p.add_argument("--large", type=int, default=LARGE, help=f"points per axis of the large grid (default {LARGE})")
    args = p.parse_args()
    pin()  # as python -m benchmarks does: the baseline is one process on one core, one thread
    settings = Settings(quick=args.quick, repeats=1 if args.quick else args.repeats, clock="wall")
    rows = run(settings, args.large)
    print(table(rows))
    out = Path(__file__).resolve().parent / "results" / "distributed"
    for path in (out / f"{time.strftime('%Y%m%d-%H%M%S')}.csv", out / "latest.csv"):
        write_csv(rows, path, settings)
    print(f"\nwrote {out}/latest.csv")
