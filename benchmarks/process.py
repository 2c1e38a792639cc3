"""Whole processes, as a user runs them: start-up, a grid against a JAX script, the headline command.

Every candidate and its baseline is a fresh ``python`` process, started alternately (candidate,
baseline, candidate, ...) and pinned to one core (``common.pin_child``: the first this run may use;
``common.one_thread_env``: XLA's, OpenMP's, BLAS's and numba's pools at one thread); the time is
the child's CPU time (user + system, ``RUSAGE_CHILDREN``), which on one core is the work done
whoever else holds the machine; the wall time is in the CSV (``*_wall_s``), and a row whose CPU
time exceeds it by more than 5 % is flagged (``common.busy``). landscape runs as
``python -m landscape`` from the checkout (the console script adds only its entry-point lookup).

- ``start-up``: ``landscape --help``, ``landscape cells``, ``landscape tasks``, ``landscape cache ls``
  (a cache holding one surface) against ``python -c "import torch"``; target: at most 0.5x its time.
  Each command is also run once under ``python -X importtime``: the row fails (``ok`` = no, the
  modules in the note) if it imports torch, scipy or matplotlib.
- ``grid vs JAX``, at 51 x 51, 101 x 101 and 151 x 151 (``GRID_SIZES``): ``landscape grid --cell srnn
  --task latch --x w:-1:3:NUM --y b:-1.5:1.5:NUM --T 100 --readout fixed --out F.h5 --threads 1`` (a
  fresh file each time, the kernel cache warm, the problem's recipe written beforehand by a grid
  over other ranges: ``landscape.recipe``, so no torch import) against ``python
  benchmarks/jax_grid.py`` computing the same grid from the same data (written beforehand from
  landscape's task into an .npz the script reads) and writing it with h5py; the ratio is
  landscape's time over JAX's, target at most 0.8. The same against the script with JAX's persistent
  compilation cache warm (``jax_cache_env``: both sides' caches warm; same target). Another row: the
  problem's first grid (LANDSCAPE_RECIPES=0: resolved in full, torch imported). At 101 x 101 a third row: the same command with an empty kernel cache (a fresh
  $LANDSCAPE_KERNELS and $NUMBA_CACHE_DIR each time: trace, generate and compile the kernels
  first); JAX has no persistent compilation cache by default, so it compiles on every run. The two
  files' losses are compared. These rows alone: ``python -m benchmarks.process``.
- ``headline``: ``landscape grid --cell srnn --T 50 --threads 1`` (201 x 201, N = 1000, the optimal
  readout; a fresh $LANDSCAPE_CACHE each time, so it computes and writes its file, from its recipe
  after the first run) against the same
  command with LANDSCAPE_FAST=0 (``cell.step`` in torch: the path from before the fused kernels);
  target: at least 2x.
  A second row against the JAX script on the same grid with its vmapped Newton fit (no target).
- ``fixed cost``: both on a 3 x 3 grid with N = 40, T = 2 (the wide loop, as on the real grids),
  fixed and optimal readout: what a process costs before the grid's work (imports, kernels loaded
  or compiled, data, the file), from the problem's recipe and as its first grid; no target.
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .common import Row, Settings, one_thread_env, pin_child

NAME = "process"
ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "scipy", "matplotlib")
STARTUP = (("landscape --help", ["--help"]), ("landscape cells", ["cells"]), ("landscape tasks", ["tasks"]),
           ("landscape cache ls", ["cache", "ls"]))


GRID_SIZES = (51, 101, 151)  # points per axis of the grid-vs-JAX rows
COLD_AT = 101  # the size whose empty-kernel-cache row is measured too


def sizes(s: Settings) -> dict:
    if s.quick:
        return dict(grid=(11,), T=10, n=100, head=("w:-1:3:11", "b:-1.5:1.5:11"), head_n=100)
    return dict(grid=GRID_SIZES, T=100, n=None, head=None, head_n=None)


def run(s: Settings) -> list[Row]:
    z = sizes(s)
    with tempfile.TemporaryDirectory(prefix="landscape-bench-") as tmp:
        tmp = Path(tmp)
        rows = startup(s, tmp)
        rows += grid_vs_jax(s, z, tmp)
        rows += headline(s, z, tmp)
        rows += fixed_cost(s, tmp)
    return rows


# ---------------------------------------------------------------------------------------------
# running a process


def child(cmd: list[str], env: dict | None = None, one_core: bool = True) -> dict:
    """Run cmd to completion on one core (one_core=False: on the cores this process may use now):
    {cpu, wall} in seconds (its CPU time, user + system, with that of the processes it waited for)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    w0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, env=one_thread_env({**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}),
                         capture_output=True, text=True, timeout=1800, preexec_fn=pin_child if one_core else None)
    wall = time.perf_counter() - w0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}): {out.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"cpu": cpu, "wall": wall, "stdout": out.stdout, "stderr": out.stderr}


def alternate(s: Settings, funcs: dict, repeats: int | None = None) -> dict[str, dict]:
    """Each callable (returning ``child``'s dict) run alternately ``repeats`` times: name -> medians."""
    got = {name: [] for name in funcs}
    for _ in range(repeats or s.repeats):
        for name, fn in funcs.items():
            got[name].append(fn())
    return {name: {"cpu": statistics.median(r["cpu"] for r in runs), "wall": statistics.median(r["wall"] for r in runs),
                   "repeats": len(runs), "last": runs[-1]} for name, runs in got.items()}


def process_row(case, candidate, baseline, res, ck, bk, target="", note="", time_ratio=False, clock="cpu",
                one_core=True, benchmark=NAME) -> Row:
    """A row of two processes' times (``clock``: "cpu" or "wall"): the speedup (baseline /
    candidate), or with time_ratio the candidate's time over the baseline's (the grid-vs-JAX goal is
    written that way: <= 0.8). one_core: both sides ran on one core (their CPU times are checked
    against their wall times, ``Row.check``)."""
    c, b = res[ck][clock], res[bk][clock]
    ratio, ratio_is = (c / b, "candidate / baseline (time)") if time_ratio else (b / c, "speedup (baseline / candidate)")
    extra = {"candidate_wall_s": res[ck]["wall"], "baseline_wall_s": res[bk]["wall"], "repeats": res[ck]["repeats"],
             "load": os.getloadavg()[0]}
    if one_core:
        extra.update(candidate_cpu_s=res[ck]["cpu"], baseline_cpu_s=res[bk]["cpu"])
    return Row(benchmark, case, candidate, baseline, c, b, "s", ratio, ratio_is, target, note=note, extra=extra).check()


def jax_cache_env(folder: Path) -> dict:
    """The environment of a JAX process that reads and writes its persistent compilation cache in
    folder, caching every compiled program (by default only those that took over a second)."""
    return {"JAX_COMPILATION_CACHE_DIR": str(folder), "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
            "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}


def landscape_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "landscape", *args]


# ---------------------------------------------------------------------------------------------
# start-up


def imported(args: list[str], env: dict) -> set[str]:
    """Top-level packages a landscape command imports (``python -X importtime``)."""
    out = child([sys.executable, "-X", "importtime", "-m", "landscape", *args], env)
    names = set()
    for line in out["stderr"].splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name and name != "package":
                names.add(name.split(".")[0])
    return names


def startup(s: Settings, tmp: Path) -> list[Row]:
    cache = tmp / "startup-cache"
    env = {"LANDSCAPE_CACHE": str(cache)}
    child(landscape_cmd("grid", "--cell", "pascanu", "--task", "target", "--x", "w:4.5:5.5:11",
                        "--y", "b:-2.9:-1.9:11", "--T", "5", "--threads", "1", "--quiet"), env)  # one surface to list
    funcs = {"torch": lambda: child([sys.executable, "-c", "import torch"], env)}
    for label, args in STARTUP:
        funcs[label] = (lambda a: lambda: child(landscape_cmd(*a), env))(args)
    for fn in () if s.quick else funcs.values():  # untimed: the files into the OS cache
        fn()
    res = alternate(s, funcs, repeats=s.repeats if s.quick else max(5, s.repeats))  # short: 5 at least
    rows = []
    for label, args in STARTUP:
        mods = imported(args, env)
        heavy = sorted(m for m in HEAVY if m in mods)
        note = (f"imports none of {', '.join(HEAVY)} (python -X importtime: {len(mods)} top-level packages, "
                f"numpy {'yes' if 'numpy' in mods else 'no'}, h5py {'yes' if 'h5py' in mods else 'no'})"
                if not heavy else f"IMPORTS {', '.join(heavy)}")
        row = process_row("start-up", label, 'python -c "import torch"', res, label, "torch", ">= 2", note)
        if heavy:
            row.meets = "no"
        row.extra["heavy_imports"] = " ".join(heavy) or "none"
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------
# a grid against the JAX script


def problem_file(path: Path, cell: str, T: int, n: int | None, readout: str, x: str, y: str) -> Path:
    """landscape's task data and base point for this grid, as jax_grid.py reads them."""
    import landscape
    from landscape import Axis, GridSpec

    spec = GridSpec.of(cell=cell, task="latch", T=(T,), fit=readout, x=Axis.parse(x), y=Axis.parse(y),
                    **({"n": n} if n else {}))
    r = landscape.resolve(spec)
    data = r.problem.task.make(r.Ts, r.n, spec.seed)
    base = {f"param_{k}": float(v.reshape(-1)[0]) for k, v in r.problem.base.items() if v.numel() == 1}
    kind = "optimal" if r.problem.readout.optimal else "logistic"
    np.savez(path, cell=cell, dtype=spec.dtype, T=T, inputs=data.inputs[..., 0].numpy(),
             target=data.targets[T].numpy(), h0=float(data.h0), readout=kind, l2=r.problem.readout.l2, **base)
    return path


def _loss(path: Path) -> np.ndarray:
    import h5py

    with h5py.File(path) as f:
        return f["loss"][()]


def _agree(a: np.ndarray, b: np.ndarray) -> str:
    if a.shape != b.shape:
        raise AssertionError(f"the loss arrays differ in shape: {a.shape} and {b.shape}")
    fin = np.isfinite(a) & np.isfinite(b)
    if not np.array_equal(np.isfinite(a), np.isfinite(b)):
        raise AssertionError("the loss arrays differ in where they are finite")
    rel = float(np.max(np.abs(a - b)[fin] / np.maximum(np.abs(b[fin]), 1e-300))) if fin.any() else 0.0
    if not rel < 1e-6:
        raise AssertionError(f"the losses differ by {rel:.2e} relative")
    return f"{rel:.1e}"


def grid_vs_jax(s: Settings, z: dict, tmp: Path) -> list[Row]:
    """The grid-vs-JAX rows at each size of z["grid"] (points per axis), smallest first."""
    from . import jax_baseline

    if not jax_baseline.available():
        print("  process: grid vs JAX skipped (jax is not installed)", flush=True)
        return []
    rows = []
    for num in z["grid"]:
        got = _grid_vs_jax(s, z, tmp, num, cold=num == COLD_AT or s.quick)
        print(f"  process: {got[0].case}: {got[0].ratio:.2f} of JAX's time (load {os.getloadavg()[0]:.1f})", flush=True)
        rows += got
    return rows


def _grid_vs_jax(s: Settings, z: dict, tmp: Path, num: int, cold: bool) -> list[Row]:
    xa, ya = f"w:-1:3:{num}", f"b:-1.5:1.5:{num}"
    T = z["T"]
    npz = problem_file(tmp / f"srnn-fixed-{num}.npz", "srnn", T, z["n"], "fixed", xa, ya)
    counter = iter(range(10 ** 6))
    results = tmp / "results"  # the result cache: not read, as every --out is a fresh file
    extra = ["--n", str(z["n"])] if z["n"] else []

    def ours(cold: bool, recipes: bool = True, axes=(xa, ya)):
        out = tmp / f"F{num}-{next(counter)}.h5"
        env = {"LANDSCAPE_CACHE": str(results), "LANDSCAPE_RECIPES": "1" if recipes else "0"}
        if cold:
            kdir = Path(tempfile.mkdtemp(dir=tmp, prefix="kernels-"))
            env.update(LANDSCAPE_KERNELS=str(kdir), NUMBA_CACHE_DIR=str(kdir))
        got = child(landscape_cmd("grid", "--cell", "srnn", "--task", "latch", "--x", axes[0], "--y", axes[1],
                                  "--T", str(T),
                                  "--readout", "fixed", *extra, "--out", str(out), "--threads", "1"), env)
        got["file"] = out
        if cold:
            shutil.rmtree(kdir, ignore_errors=True)
        return got

    jax_cache = tmp / f"jax-cache-{num}"  # JAX's persistent compilation cache (its own key: the program)

    def theirs(cached: bool = False):
        out = tmp / f"J{num}-{next(counter)}.h5"
        got = child([sys.executable, str(ROOT / "benchmarks" / "jax_grid.py"), str(npz), "--x", xa, "--y", ya,
                     "--out", str(out)], jax_cache_env(jax_cache) if cached else None)
        got["file"] = out
        return got

    # untimed: the kernel cache warm, the files in the OS cache, the problem's recipe written by a
    # grid over other ranges (landscape.recipe: the next grid of this problem imports no torch), and
    # JAX's compilation cache filled by a run of the same grid
    ours(False, axes=(f"w:-2:2:{num}", f"b:-1:1:{num}"))
    theirs(cached=True)
    if not s.quick:
        theirs()
    funcs = {"warm": lambda: ours(False), "jax": theirs, "first": lambda: ours(False, recipes=False),
             "jax-cache": lambda: theirs(cached=True)}
    if cold:
        funcs["cold"] = lambda: ours(True)
    res = alternate(s, funcs)
    agree = _agree(_loss(res["warm"]["last"]["file"]), _loss(res["jax"]["last"]["file"]))
    case = f"srnn latch {num}x{num} N={z['n'] or 1000} T={T} float64 readout=fixed, whole process, one core"
    cmd = f"landscape grid --cell srnn --task latch --x {xa} --y {ya} --T {T} --readout fixed --out F.h5 --threads 1"
    base = "python benchmarks/jax_grid.py (jit, lax.scan, chunks of 32; h5py)"
    note = (f"`{cmd}`; losses within {agree} relative of JAX's; wall {res['warm']['wall']:.2f} s against "
            f"{res['jax']['wall']:.2f} s")
    rows = [process_row(case, "landscape grid, from the problem's recipe (warm kernel cache)", base, res, "warm",
                        "jax", "<= 0.8", note + "; the recipe written by an earlier grid of other ranges: no torch "
                        "import", time_ratio=True),
            process_row(case, "landscape grid, from the problem's recipe (warm kernel cache)",
                        base + ", with JAX's persistent compilation cache (warm)", res, "warm", "jax-cache",
                        "<= 0.8", time_ratio=True,
                        note=f"both sides' caches warm: JAX_COMPILATION_CACHE_DIR filled by an earlier run "
                             f"(min compile time 0); JAX's wall {res['jax-cache']['wall']:.2f} s, "
                             f"{res['jax']['cpu'] - res['jax-cache']['cpu']:.2f} s CPU less than compiling"),
            process_row(case, "landscape grid, the problem's first grid (no recipe; warm kernel cache)", base, res,
                        "first", "jax", time_ratio=True,
                        note=f"LANDSCAPE_RECIPES=0: resolved in full, torch imported; "
                             f"{res['first']['cpu'] - res['warm']['cpu']:.2f} s CPU more than from the recipe")]
    if cold:
        rows.append(process_row(case, "landscape grid, empty kernel cache", base, res, "cold", "jax", time_ratio=True,
                                note=f"the first run on a machine: the kernels traced, generated and compiled "
                                     f"({res['cold']['cpu'] - res['warm']['cpu']:.2f} s CPU more than warm); JAX "
                                     f"compiles on every run (no persistent cache by default)"))
    return rows


# ---------------------------------------------------------------------------------------------
# the headline command


def headline(s: Settings, z: dict, tmp: Path) -> list[Row]:
    from . import jax_baseline

    axes = ["--x", z["head"][0], "--y", z["head"][1], "--n", str(z["head_n"])] if z["head"] else []
    counter = iter(range(10 ** 6))

    def ours(fast: bool):
        cache = tmp / f"headline-{next(counter)}"
        env = {"LANDSCAPE_CACHE": str(cache)} if fast else {"LANDSCAPE_CACHE": str(cache), "LANDSCAPE_FAST": "0"}
        got = child(landscape_cmd("grid", "--cell", "srnn", "--T", "50", *axes, "--threads", "1"), env)
        files = sorted(cache.glob("*.h5"))
        if len(files) != 1:
            raise RuntimeError(f"the headline command left {len(files)} files in its cache {cache}")
        got["file"] = files[0]
        return got

    funcs = {"now": lambda: ours(True), "before": lambda: ours(False)}
    have_jax = jax_baseline.available()
    if have_jax:
        xa, ya = z["head"] or ("w:-1:3:201", "b:-1.5:1.5:201")
        npz = problem_file(tmp / "srnn-optimal.npz", "srnn", 50, z["head_n"], "optimal", xa, ya)

        def theirs():
            out = tmp / f"H{next(counter)}.h5"
            got = child([sys.executable, str(ROOT / "benchmarks" / "jax_grid.py"), str(npz), "--x", xa, "--y", ya,
                         "--out", str(out)])
            got["file"] = out
            return got

        funcs["jax"] = theirs
    for fn in () if s.quick else funcs.values():  # untimed: warm kernel cache, files in the OS cache
        fn()
    res = alternate(s, funcs)
    now = _loss(res["now"]["last"]["file"])
    agree = _agree(now, _loss(res["before"]["last"]["file"]))
    cmd = "landscape grid --cell srnn --T 50" + (" " + " ".join(axes) if axes else "") + " --threads 1"
    case = f"headline: `{cmd}` (optimal readout), whole process, one core"
    rows = [process_row(case, "landscape grid (fused kernels)", "the same with LANDSCAPE_FAST=0 (cell.step in torch)", res,
                        "now", "before", ">= 2",
                        f"losses within {agree} relative; wall {res['now']['wall']:.2f} s against "
                        f"{res['before']['wall']:.2f} s")]
    if have_jax:
        agree = _agree(now, _loss(res["jax"]["last"]["file"]))
        rows.append(process_row(case, "landscape grid (fused kernels)",
                                f"python benchmarks/jax_grid.py (vmapped Newton x{jax_baseline.NEWTON_ITERS}; h5py)",
                                res, "now", "jax", note=f"losses within {agree} relative of JAX's; wall "
                                                        f"{res['now']['wall']:.2f} s against {res['jax']['wall']:.2f} s"))
    return rows


# ---------------------------------------------------------------------------------------------
# the fixed cost of a process


def fixed_cost(s: Settings, tmp: Path) -> list[Row]:
    from . import jax_baseline

    if not jax_baseline.available():
        return []
    xa, ya = "w:-1:3:3", "b:-1.5:1.5:3"
    counter = iter(range(10 ** 6))
    rows = []
    for readout in ("fixed", "optimal"):
        npz = problem_file(tmp / f"tiny-{readout}.npz", "srnn", 2, 40, readout, xa, ya)

        def ours(recipes: bool = True):
            out = tmp / f"t{next(counter)}.h5"
            return child(landscape_cmd("grid", "--cell", "srnn", "--task", "latch", "--x", xa, "--y", ya, "--T", "2",
                                       "--n", "40", "--readout", readout, "--out", str(out), "--threads", "1"),
                         {"LANDSCAPE_CACHE": str(tmp / "results"), "LANDSCAPE_RECIPES": "1" if recipes else "0"})

        def theirs():
            out = tmp / f"u{next(counter)}.h5"
            return child([sys.executable, str(ROOT / "benchmarks" / "jax_grid.py"), str(npz), "--x", xa, "--y", ya,
                          "--out", str(out)])

        ours()  # untimed: the kernel cache warm, the problem's recipe written
        if not s.quick:
            theirs()
        res = alternate(s, {"ours": ours, "jax": theirs, "first": lambda: ours(recipes=False)})
        case = f"fixed cost: srnn latch 3x3 N=40 T=2 readout={readout}, whole process, one core"
        rows.append(process_row(case, "landscape grid, from the problem's recipe (warm kernel cache)",
                                "python benchmarks/jax_grid.py", res, "ours", "jax",
                                note="the cost of a process before the grid's work: imports (numba, no torch; jax), "
                                     "the kernels loaded (landscape) or compiled (JAX), the data, the file"))
        rows.append(process_row(case, "landscape grid, the problem's first grid (no recipe; warm kernel cache)",
                                "python benchmarks/jax_grid.py", res, "first", "jax",
                                note="LANDSCAPE_RECIPES=0: resolved in full, torch imported"))
    return rows


# ---------------------------------------------------------------------------------------------
# where a process's time goes

PHASES = r"""
import json, sys, time
clock = time.process_time
spent = {}
def lap(name, t0):
    spent[name] = spent.get(name, 0.0) + clock() - t0
t0 = clock(); import torch; lap("import torch", t0)
t0 = clock(); import numba; lap("import numba", t0)
t0 = clock(); import h5py; lap("import h5py", t0)
t0 = clock(); import landscape.cli as cli; lap("import landscape.cli (click, the group)", t0)
t0 = clock()
import landscape.cli.grid
from landscape import surface
from landscape.kernels import runtime
from landscape.kernels.numba import losses, readout, unroll
from landscape.store import writer
from landscape.tasks import builtin
lap("import the grid command's modules", t0)

def timed(owner, attr, name):
    fn = getattr(owner, attr)
    def call(*a, **k):
        t0 = clock()
        try:
            return fn(*a, **k)
        finally:
            lap(name, t0)
    setattr(owner, attr, call)

timed(surface, "resolve", "resolve the spec")
for task in vars(builtin).values():
    if isinstance(task, type) and "make" in vars(task):
        timed(task, "make", "task data")
timed(runtime, "load_module", "kernel module (source written, run)")
timed(runtime, "self_check", "self-check, with numba's cache load at the first call")
timed(surface, "compute_chunk", "compute_chunk (all of the kernel work)")
for attr in ("__init__", "write_chunk", "finish", "close"):
    timed(writer.SurfaceWriter, attr, "HDF5 write")
timed(surface, "load", "HDF5 read back")
kernels = []
check = runtime.self_check
def remember(kernel, *a, **k):
    kernels.append((kernel, a, k))
    return check(kernel, *a, **k)
runtime.self_check = remember
t0 = clock()
cli.main.main(sys.argv[2:], standalone_mode=False)
lap("the command", t0)
t0 = clock()
for kernel, a, k in kernels:  # the check alone, numba's code now loaded
    check(kernel, *a, **k)
spent["self-check alone (the check, again)"] = clock() - t0
spent["process so far"] = clock()
sys.stdout.flush()
print("PHASES " + json.dumps(spent), file=sys.stderr, flush=True)
if sys.argv[1] == "fast":
    cli._exit_now(0)
"""


def phases(s: Settings, num: int = 51) -> dict[str, float]:
    """Where the CPU time of ``landscape grid`` (srnn, latch, num x num, T = 100, fixed readout, one
    core, warm kernel cache, resolved in full: LANDSCAPE_RECIPES=0) goes: phase -> median seconds over ``s.repeats`` processes. The exit
    is the process's CPU time less what it had spent when the command returned, with the
    interpreter's teardown ("exit, interpreter teardown") and with ``landscape.cli._exit_now`` (what
    the program does). The interpreter's start is ``python -c pass``."""
    with tempfile.TemporaryDirectory(prefix="landscape-phases-") as tmp:
        tmp = Path(tmp)
        env = {"LANDSCAPE_CACHE": str(tmp / "results"), "LANDSCAPE_RECIPES": "0"}  # the full path's phases
        args = ["grid", "--cell", "srnn", "--task", "latch", "--x", f"w:-1:3:{num}", "--y", f"b:-1.5:1.5:{num}",
                "--T", "100", "--readout", "fixed", "--threads", "1", "--quiet"]
        counter = iter(range(10 ** 6))
        got: dict[str, list[float]] = {}

        def one(how: str):
            out = child([sys.executable, "-c", PHASES, how, *args, "--out", str(tmp / f"p{next(counter)}.h5")], env)
            spent = json.loads(out["stderr"].rsplit("PHASES ", 1)[1].splitlines()[0])
            ended = spent.pop("process so far")
            if how == "slow":  # only its exit differs
                got.setdefault("exit, interpreter teardown", []).append(out["cpu"] - ended)
                return
            for name, value in (("whole process", out["cpu"]), ("exit, landscape.cli._exit_now", out["cpu"] - ended),
                                *spent.items()):
                got.setdefault(name, []).append(value)

        one("fast")  # untimed: the kernel cache warm, the files in the OS cache
        got.clear()
        for _ in range(s.repeats):
            got.setdefault("interpreter start (python -c pass)", []).append(child([sys.executable, "-c", "pass"])["cpu"])
            one("fast")
            one("slow")
    return {name: statistics.median(v) for name, v in got.items()}


if __name__ == "__main__":
    import argparse

    from .common import pin, table, write_csv

    p = argparse.ArgumentParser(prog="python -m benchmarks.process",
                                description="The grid-vs-JAX rows alone: landscape grid against benchmarks/jax_grid.py, "
                                            "whole processes, one core, alternated, medians of CPU time.")
    p.add_argument("--sizes", default=",".join(map(str, GRID_SIZES)), help="points per axis, a comma list "
                   f"(default {','.join(map(str, GRID_SIZES))})")
    p.add_argument("--repeats", type=int, default=5, help="processes per side and size, medians reported (default 5)")
    p.add_argument("--phases", action="store_true", help="instead: where a 51 x 51 grid process's CPU time goes")
    args = p.parse_args()
    pin()
    settings = Settings(repeats=args.repeats)
    if args.phases:
        for name, seconds in phases(settings).items():
            print(f"{name:58s} {seconds:6.3f} s")
        print(f"(CPU seconds, medians of {settings.repeats} processes, one core, load {os.getloadavg()[0]:.1f})")
        sys.exit(0)
    z = {**sizes(settings), "grid": tuple(int(v) for v in args.sizes.split(","))}
    with tempfile.TemporaryDirectory(prefix="landscape-bench-") as tmp:
        rows = grid_vs_jax(settings, z, Path(tmp))
    print(table(rows))
    out = Path(__file__).resolve().parent / "results" / "process"
    for path in (out / f"{time.strftime('%Y%m%d-%H%M%S')}.csv", out / "latest.csv"):
        write_csv(rows, path, settings)
    print(f"\nwrote {out}/latest.csv")
