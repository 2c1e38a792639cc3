"""A grid on a Dask LocalCluster of two workers, as processes (``--scheduler local:2``) and as
threads of one process (``--scheduler threads:2``), against the same grid in one process.

Both sides compute the same spec into a fresh file (``force``), the same chunks (the memory
budget's), one thread per task (torch's and the fused kernels'); the cluster side includes everything a user waits for:
starting the cluster (local:2: two spawned worker processes that import torch and numba; threads:2:
two worker threads here), sending the resolved grid and the data (pickled to the processes; as they
are to the threads), and closing it. Timed by the wall clock (the work happens in other processes or
threads, so this process's CPU time would not count it), alternately, medians.

Cases (each for both kinds):
  process the large grid as a user runs it: ``landscape grid ... --scheduler KIND:2`` (a process on
          two cores, its workers with it) against ``landscape grid ... --threads 1`` (a process on
          one core), whole processes (all import torch; the cluster side starts, uses and closes
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
          sending the inputs and gathering the chunk.

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
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # .common imports torch: local:2's spawned workers re-import this module (__mp_main__)
    from .common import Row, Settings

NAME = "distributed"
WORKERS = 2
LARGE = 601  # points per axis of the large case
KINDS = ("local", "threads")  # --scheduler local:2 (worker processes) and threads:2 (worker threads here)
MAKESPAN = {"local": "max(worker process), (sum of the workers' + this process's) / cores",
            "threads": "max(worker thread), this process's (its worker threads' included) / cores"}


def _spec(num: int, n: int, T: int):
    from landscape import Axis, GridSpec

    return GridSpec.of(cell="srnn", task="latch", T=(T,), x=Axis.parse(f"w:-1:3:{num}"), y=Axis.parse(f"b:-1:1:{num}"),
                    n=n, fit="fixed")


def run(s: Settings, large_num: int = LARGE) -> list[Row]:
    from dataclasses import replace

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
    from .common import cores, speedup_row, timed

    large, small = ((_spec(41, 100, 20), _spec(11, 100, 20)) if s.quick else
                    (_spec(large_num, 1000, 100), _spec(51, 1000, 100)))
    rows = []
    with tempfile.TemporaryDirectory(prefix="landscape-bench-dask-") as tmp:
        out = Path(tmp) / "g.h5"
        cpu = {side: [] for side in ("here", *KINDS)}  # per repeat: CPU seconds here / the ideal makespan

        def here(spec):
            def go():
                c0 = time.process_time()
                grid(spec, out=out, force=True, device="cpu", progress=False)
                cpu["here"].append(time.process_time() - c0)
            return go

        def cold(kind, spec):
            """What --scheduler KIND:2 does (start, compute, close), with the CPU time it took
            read before the workers go."""
            def go():
                c0, before = time.process_time(), _descendants_cpu()
                with cores(WORKERS):
                    sched = connect(f"{kind}:{WORKERS}")
                    try:
                        grid(spec, out=out, force=True, device="cpu", progress=False, scheduler=sched)
                        # each worker's CPU time: a process's since it started, a thread's (threads:2)
                        workers = list(sched.client.run(_thread_cpu if sched.in_process else time.process_time)
                                       .values())
                        after = _descendants_cpu()  # local:2: the forkserver's and the workers' (before they go)
                    finally:
                        sched.close()
                        _stop_forkserver()  # each start pays its own, as a command does
                here_cpu = time.process_time() - c0  # threads:2: the workers' included
                others = sum(cpu_s - before.get(pid, 0.0) for pid, cpu_s in after.items())
                cpu[kind].append(_makespan(workers, here_cpu + others))
            return go

        rows += processes(s, large.x.num if not s.quick else 41, Path(tmp))
        for case, spec in (("large", large), ("small", small)):
            for times in cpu.values():
                times.clear()
            load0 = os.getloadavg()
            res = timed(wall, {**{kind: cold(kind, spec) for kind in KINDS}, "here": here(spec)},
                        warmup={"here": here(small)})
            load1 = os.getloadavg()
            cpu["here"].pop(0)  # the warm-up
            b = res["here"]["median"]
            points = spec.x.num * spec.y.num
            label = f"{spec.x.num}x{spec.y.num} grid, N={spec.n}, T={spec.T[0]}"
            target = ">= 1.7" if case == "large" and not s.quick else ""
            for kind in KINDS:
                c = res[kind]["median"]
                note = (f"wall clock; cluster start included; {'overhead' if c > b else 'saved'} {abs(c - b):.2f} s; "
                        f"here {points / b:,.0f} points/s; load average {load0[0]:.1f} -> {load1[0]:.1f} on "
                        f"{os.cpu_count()} cores")
                rows.append(speedup_row(NAME, f"{case}: {label}", f"--scheduler {kind}:{WORKERS}", "one process", res,
                                        kind, "here", target=target, note=note))
            for kind in KINDS:
                by_cpu = {side: {"median": statistics.median(cpu[side]), "wall_median": res[side]["wall_median"],
                                 "times": cpu[side]} for side in (kind, "here")}
                rows.append(speedup_row(NAME, f"{case} by CPU time: {label}", f"--scheduler {kind}:{WORKERS}",
                                        "one process", by_cpu, kind, "here", target=target,
                                        note=f"CPU seconds: here, this process; cluster, the makespan on {WORKERS} "
                                             f"free cores its CPU time implies ({MAKESPAN[kind]})"))
        for kind in KINDS:
            rows.append(_warm(wall, kind, small, out, grid, connect, here(small)))
    return rows


def _warm(wall: Settings, kind: str, small, out: Path, grid, connect, here) -> Row:
    """The ``warm`` case (module docstring) on ``kind``:2."""
    from .common import cores, speedup_row, timed

    with cores(WORKERS):  # the workers keep the two cores; the client's writes go back to one
        sched = connect(f"{kind}:{WORKERS}")  # kept running across the calls, as a use() block keeps it
    try:
        sched.client.run(_import_landscape)  # a worker process's first task would import torch

        def warm():
            grid(small, out=out, force=True, device="cpu", progress=False, scheduler=sched)

        load0 = os.getloadavg()
        res = timed(wall, {"cluster": warm, "here": here})
        load1 = os.getloadavg()
    finally:
        sched.close()
    c, b = res["cluster"]["median"], res["here"]["median"]
    return speedup_row(NAME, f"warm: {small.x.num}x{small.y.num} grid on a running cluster", f"use('{kind}:{WORKERS}')",
                       "one process", res, "cluster", "here",
                       note=f"wall clock; one chunk; per-grid overhead {c - b:+.3f} s; load average "
                            f"{load0[0]:.1f} -> {load1[0]:.1f}")


def processes(s: Settings, num: int, tmp: Path) -> list[Row]:
    """The ``process`` case (module docstring) on a num x num grid, for each of KINDS."""
    import resource

    from .common import cores
    from .process import alternate, child, landscape_cmd, process_row

    if not _subreaper():
        print("  distributed: the process rows' CPU times miss local:2's forkserver (no PR_SET_CHILD_SUBREAPER here)")
    n, T = (100, 20) if s.quick else (1000, 100)
    args = ["grid", "--cell", "srnn", "--task", "latch", "--x", f"w:-1:3:{num}", "--y", f"b:-1:1:{num}", "--T", str(T),
            "--n", str(n), "--readout", "fixed", "--quiet", "--force"]
    env = {"LANDSCAPE_CACHE": str(tmp / "process-cache")}

    def cluster(kind):
        def go():
            with cores(WORKERS):  # the process and the workers it spawns: two cores
                res = child(landscape_cmd(*args, "--out", str(tmp / f"{kind}.h5"), "--scheduler", f"{kind}:{WORKERS}"),
                            env, one_core=False)
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            _reap_orphans()  # local:2's forkserver outlives the command by a moment; its CPU time counts
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            return {**res, "cpu": res["cpu"] + (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)}
        return go

    def here():
        return child(landscape_cmd(*args, "--out", str(tmp / "here.h5"), "--threads", "1"), env)

    if not s.quick:
        here()  # untimed: the kernel cache warm, the files in the OS cache
    load0 = os.getloadavg()
    res = alternate(s, {**{kind: cluster(kind) for kind in KINDS}, "here": here})
    load1 = os.getloadavg()
    case = f"process: `landscape grid` srnn latch {num}x{num} N={n} T={T} readout=fixed, whole processes"
    rows = []
    for kind in KINDS:
        note = (f"wall clock; load average {load0[0]:.1f} -> {load1[0]:.1f} on {os.cpu_count()} cores; "
                f"`landscape grid ... --scheduler {kind}:{WORKERS}` on {WORKERS} cores against `--threads 1` on one")
        rows.append(process_row(case, f"--scheduler {kind}:{WORKERS}", "one process", res, kind, "here",
                                ">= 1.7" if not s.quick else "", note, clock="wall", one_core=False, benchmark=NAME))
    for kind in KINDS:
        by_cpu = {kind: {**res[kind], "cpu": res[kind]["cpu"] / WORKERS}, "here": res["here"]}
        rows.append(process_row(f"{case}, by CPU time", f"--scheduler {kind}:{WORKERS} (CPU / {WORKERS})",
                                "one process", by_cpu, kind, "here", note="CPU seconds: the cluster process's, its "
                                f"workers' included, over {WORKERS} cores (the wall time on {WORKERS} free cores), "
                                "against the one process's", one_core=False, benchmark=NAME))
    return rows


def _descendants_cpu() -> dict[int, float]:
    """CPU seconds (user + system) of every live descendant of this process, by process id."""
    import psutil  # a dependency of Dask's

    out = {}
    for proc in psutil.Process().children(recursive=True):
        try:
            t = proc.cpu_times()
        except psutil.Error:  # gone meanwhile
            continue
        out[proc.pid] = t.user + t.system
    return out


def _stop_forkserver(timeout: float = 30.0) -> None:
    """Stop local:2's forkserver (its workers gone) and wait for it, so that the next start pays
    for a new one; a note where it would not stop."""
    import threading
    from multiprocessing import forkserver

    stop = threading.Thread(target=forkserver._forkserver._stop, daemon=True)  # multiprocessing's own
    stop.start()
    stop.join(timeout)
    if stop.is_alive():
        print(f"  distributed: the forkserver did not stop within {timeout:g} s")


def _reap_orphans(timeout: float = 30.0) -> None:
    """Wait for the processes orphaned under this one (``_subreaper``): local:2's forkserver, which
    ends once its client has, and whose CPU time, its workers' included, then counts as this
    process's children's (``getrusage``, as ``process.child`` reads it)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.02)


def _subreaper() -> bool:
    """Make this process adopt its orphaned descendants (Linux's PR_SET_CHILD_SUBREAPER); False
    where it cannot."""
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def _makespan(workers: list[float], total: float) -> float:
    """The shortest wall time the measured CPU seconds allow on WORKERS free cores: no worker can
    finish before its own CPU time, and all of it (``total``: the workers' and this process's)
    shares the cores."""
    return max(max(workers), total / WORKERS)


def _thread_cpu(dask_worker) -> float:
    """CPU seconds of a threads:N worker's task threads (``client.run`` passes the worker)."""
    return sum(time.clock_gettime(time.pthread_getcpuclockid(t.ident))
               for t in list(dask_worker.executor._threads) if t.is_alive())


def _import_landscape() -> None:
    import landscape.surface  # noqa: F401


if __name__ == "__main__":
    import argparse

    from .common import Settings, pin, table, write_csv

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
