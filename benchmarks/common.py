"""Shared pieces of the benchmarks: settings, side-by-side timing, result rows, the table, the CSV.

Every ratio is measured within one run: the baseline and the candidate are timed alternately
(candidate, baseline, candidate, baseline, ...) and each side's median is taken, so a slow spell on
a shared machine hits both. The default clock is the CPU time of this process (``process_time``):
with one thread it counts the work done, not the time other processes held the core; with more
threads (where CPU time would count idle spinning) the wall clock is used.

Every side runs on one core (``pin``: this process and, by inheritance, every child it starts,
on the first core it may use; XLA's, OpenMP's, BLAS's and numba's thread pools at one thread;
torch and the fused kernels on one thread). Both clocks are read for every timing, and a row
whose CPU time exceeds its wall time by more than 5 % (``CPU_OVER_WALL``: more than one thread was
busy, so CPU time is not the work done) is flagged: ``ok`` says FLAG and the note says which side.
A benchmark that measures several cores widens the set for its own timings (``cores``).
"""
from __future__ import annotations

import csv
import math
import os
import platform
import statistics
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch

import landscape
from landscape import GridSpec, engine

# ---------------------------------------------------------------------------------------------
# one core per side

ONE_THREAD_ENV = {  # read by each library when it starts its thread pools: set before they start
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
    "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1",
}
CPU_OVER_WALL = 1.05  # CPU time above this times the wall time: more than one thread was busy
ALLOWED = frozenset(os.sched_getaffinity(0))  # the cores this run was given (before ``pin``)
CORE = min(ALLOWED)  # the one every side runs on


def one_thread_env(env: dict | None = None) -> dict:
    """``env`` (default os.environ) with ONE_THREAD_ENV set: XLA_FLAGS keeps its other flags, the
    threading ones are replaced by ours."""
    given = os.environ if env is None else env
    ours = ONE_THREAD_ENV["XLA_FLAGS"].split()
    names = {f.split("=")[0] for f in ours}
    kept = [f for f in given.get("XLA_FLAGS", "").split() if f.split("=")[0] not in names]
    return {**given, **ONE_THREAD_ENV, "XLA_FLAGS": " ".join([*kept, *ours])}


def pin(threads: int = 1) -> None:
    """This process (and every process it starts later, which inherit both) on one core, ``CORE``,
    with one thread per library: ONE_THREAD_ENV into os.environ, torch and the fused kernels on
    ``threads`` threads (more than one: the first ``threads`` cores of ``ALLOWED``, wall clock)."""
    import torch

    from landscape.kernels import set_threads

    os.environ.update(one_thread_env())
    os.sched_setaffinity(0, sorted(ALLOWED)[:threads])
    torch.set_num_threads(threads)
    set_threads(threads)


@contextmanager
def cores(n: int):
    """Within the block, this process (and the processes it starts) may run on the first ``n``
    cores of ``ALLOWED``: for the benchmarks that measure several cores (scaling, Dask)."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, sorted(ALLOWED)[:n])
    try:
        yield min(n, len(ALLOWED))
    finally:
        os.sched_setaffinity(0, before)


def pin_child() -> None:
    """``preexec_fn`` of a child process: on ``CORE`` alone, whatever this process may use."""
    os.sched_setaffinity(0, {CORE})


def busy(side: str, cpu: float, wall: float) -> str:
    """The flag of a side whose CPU time exceeds its wall time by more than CPU_OVER_WALL ("" if not)."""
    if wall > 0 and cpu > CPU_OVER_WALL * wall:
        return f"{side}: CPU {cpu:.3g} s > wall {wall:.3g} s (x{cpu / wall:.2f}: more than one thread busy)"
    return ""


@dataclass(frozen=True)
class Settings:
    quick: bool = False  # tiny sizes, one repeat: a smoke run (CI), no meaningful ratios
    repeats: int = 3  # timings per side; medians are reported
    threads: int = 1
    clock: str = "cpu"  # cpu (process CPU time) or wall

    def now(self) -> float:
        return time.process_time() if self.clock == "cpu" else time.perf_counter()


@dataclass
class Row:
    """One line of the table.

    ``ratio`` is what the benchmark is about, with its meaning in ``ratio_is``: a speedup
    (baseline time / candidate time), the candidate over a floor (candidate time / floor time), or
    the peak memory over the budget. ``target`` is the goal written as text (">= 5", "<= 1.2")."""

    benchmark: str
    case: str
    candidate: str
    baseline: str
    candidate_value: float
    baseline_value: float
    unit: str
    ratio: float
    ratio_is: str
    target: str = ""
    meets: str = ""  # yes / no / "" (no target)
    note: str = ""
    extra: dict = field(default_factory=dict)

    def check(self) -> Row:
        """``meets`` from the target; FLAG (and why, in the note) where a one-core side's CPU time
        exceeds its wall time (``busy``: the extras ``<side>_cpu_s`` and ``<side>_wall_s``)."""
        if self.target:
            op, value = self.target.split()
            ok = self.ratio >= float(value) if op == ">=" else self.ratio <= float(value)
            self.meets = "yes" if ok else "no"
        flags = [busy(side, self.extra[f"{side}_cpu_s"], self.extra[f"{side}_wall_s"])
                 for side in ("candidate", "baseline") if f"{side}_cpu_s" in self.extra and f"{side}_wall_s" in self.extra]
        flags = [f for f in flags if f]
        if flags:
            self.meets = "FLAG"
            self.note = "; ".join([*flags, *([self.note] if self.note else [])])
        return self


def timed(settings: Settings, funcs: dict, repeats: int | None = None, warmup: dict | None = None) -> dict[str, dict]:
    """Run the callables alternately ``repeats`` times each; name -> {median, times, wall,
    wall_median, cpu_median, threads}: ``times`` by the settings' clock, ``wall`` and ``cpu`` both
    read every time (``cpu_median`` is checked against ``wall_median`` on one thread: ``busy``).

    Each callable may return a number: a scale applied to its time (for a subset timed and
    extrapolated to the whole). ``warmup``: callables run once first, untimed (a small version of
    the work: first calls pay for lazy imports and initialisation)."""
    repeats = repeats or settings.repeats
    for fn in (warmup or {}).values():
        fn()
    out = {name: {"times": [], "wall": [], "cpu": []} for name in funcs}
    for _ in range(repeats):
        for name, fn in funcs.items():
            t0, w0, c0 = settings.now(), time.perf_counter(), time.process_time()
            scale = fn()
            t1, w1, c1 = settings.now(), time.perf_counter(), time.process_time()
            scale = 1.0 if scale is None else float(scale)
            out[name]["times"].append((t1 - t0) * scale)
            out[name]["wall"].append((w1 - w0) * scale)
            out[name]["cpu"].append((c1 - c0) * scale)
    for v in out.values():
        v["median"] = statistics.median(v["times"])
        v["wall_median"] = statistics.median(v["wall"])
        v["cpu_median"] = statistics.median(v["cpu"])
        v["threads"] = settings.threads
    return out


def speedup_row(benchmark, case, candidate, baseline, res, cand_key, base_key, target="", note="") -> Row:
    """A speedup row from ``timed``'s result (``clock_extras``)."""
    c, b = res[cand_key]["median"], res[base_key]["median"]
    return Row(benchmark, case, candidate, baseline, c, b, "s", b / c, "speedup (baseline / candidate)",
               target, note=note, extra=clock_extras(res, cand_key, base_key)).check()


def clock_extras(res, cand_key, base_key) -> dict:
    """A row's extras from ``timed``'s result: both sides' wall times, the repeats, the load, and on
    one thread both sides' CPU times (which ``Row.check`` holds against the wall times)."""
    extra = {"candidate_wall_s": res[cand_key]["wall_median"], "baseline_wall_s": res[base_key]["wall_median"],
             "repeats": len(res[cand_key]["times"]), "load": os.getloadavg()[0]}
    for side, key in (("candidate", cand_key), ("baseline", base_key)):
        if res[key].get("threads", 1) == 1 and "cpu_median" in res[key]:
            extra[f"{side}_cpu_s"] = res[key]["cpu_median"]
    return extra


# ---------------------------------------------------------------------------------------------
# output

COLUMNS = ("benchmark", "case", "candidate", "baseline", "candidate_value", "baseline_value", "unit", "ratio",
           "ratio_is", "target", "meets", "note")


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version()}


def write_csv(rows: list[Row], path: Path, settings: Settings) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    info = machine()
    extra_keys = sorted({k for r in rows for k in r.extra})
    header = [*COLUMNS, *extra_keys, "threads", "clock", "quick", "cpu", "cores", "torch", "date"]
    date = time.strftime("%Y-%m-%d %H:%M:%S")
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for r in rows:
            d = asdict(r)
            w.writerow([_fmt(d[c]) for c in COLUMNS] + [_fmt(r.extra.get(k, "")) for k in extra_keys]
                       + [settings.threads, settings.clock, settings.quick, info["cpu"], info["cores"],
                          info["torch"], date])


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.6g}" if math.isfinite(v) else str(v)
    return v


def table(rows: list[Row]) -> str:
    """A plain-text table of the rows (the numbers a reader wants; the CSV has the rest)."""
    head = ("benchmark", "case", "candidate", "baseline", "cand", "base", "ratio", "target", "ok")
    body = []
    for r in rows:
        unit = r.unit
        body.append((r.benchmark, r.case, r.candidate, r.baseline, f"{r.candidate_value:.4g} {unit}",
                     f"{r.baseline_value:.4g} {unit}", _ratio(r), r.target, r.meets))
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(head, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(x).ljust(w) for x, w in zip(row, widths)) for row in body]
    notes = [f"  [{i + 1}] {r.benchmark} / {r.case}: {r.note}" for i, r in enumerate(rows) if r.note]
    return "\n".join(lines + ([""] + ["notes:"] + notes if notes else []))


def _ratio(r: Row) -> str:
    if r.ratio_is.startswith("speedup"):
        return f"{r.ratio:,.1f}x faster" if r.ratio >= 10 else f"{r.ratio:.2f}x faster"
    if r.ratio_is.startswith("candidate / floor"):
        return f"{r.ratio:.3f}x floor"
    if r.ratio_is.startswith("candidate / baseline"):
        return f"{r.ratio:.2f}x its time"
    return f"{r.ratio:.3f} of allowed"


def row_fields() -> list[str]:
    return [f.name for f in fields(Row)]


# ---------------------------------------------------------------------------------------------
# the grids the benchmarks compute


class GridPoints:
    """A resolved grid on the CPU in its dtype: ``r`` (the ResolvedGrid), ``data`` (the task's), ``params``
    name -> (P, *shape) at every one of its P points (one chunk), ``steps`` = P N T_max cell-steps."""

    def __init__(self, spec: GridSpec):
        r = landscape.resolve(spec)
        self.r, self.spec = r, spec
        self.dtype = getattr(torch, spec.dtype)
        self.data = r.problem.task.make(r.Ts, r.n, spec.seed).to(self.dtype, torch.device("cpu"))
        xs, ys = torch.as_tensor(r.x.values()), torch.as_tensor(r.y.values())
        flat = torch.arange(len(xs) * len(ys))
        self.params = engine.chunk_params(r.problem.base, r.refs, (xs[flat // len(ys)], ys[flat % len(ys)]),
                                          self.dtype, torch.device("cpu"))
        self.P = len(flat)
        self.steps = self.P * r.n * max(r.Ts)

    def subset(self, m: int) -> dict:
        return {k: v[:m] if v.shape[0] == self.P else v for k, v in self.params.items()}
