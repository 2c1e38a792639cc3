"""Shared pieces of the benchmarks: settings, side-by-side timing, result rows, the table, the CSV.

Every ratio is measured within one run: the baseline and the candidate are timed alternately
(candidate, baseline, candidate, baseline, ...) and each side's median is taken, so a slow spell on
a shared machine hits both. The default clock is the CPU time of this process (``process_time``):
with one thread it counts the work done, not the time other processes held the core; with more
threads (where CPU time would count idle spinning) the wall clock is used.
"""
from __future__ import annotations

import csv
import math
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch

import landscape
from landscape import GridSpec, engine


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
        if self.target:
            op, value = self.target.split()
            ok = self.ratio >= float(value) if op == ">=" else self.ratio <= float(value)
            self.meets = "yes" if ok else "no"
        return self


def timed(settings: Settings, funcs: dict, repeats: int | None = None, warmup: dict | None = None) -> dict[str, dict]:
    """Run the callables alternately ``repeats`` times each; name -> {median, times, wall}.

    Each callable may return a number: a scale applied to its time (for a subset timed and
    extrapolated to the whole). ``warmup``: callables run once first, untimed (a small version of
    the work: first calls pay for lazy imports and initialisation)."""
    repeats = repeats or settings.repeats
    for fn in (warmup or {}).values():
        fn()
    out = {name: {"times": [], "wall": []} for name in funcs}
    for _ in range(repeats):
        for name, fn in funcs.items():
            t0, w0 = settings.now(), time.perf_counter()
            scale = fn()
            t1, w1 = settings.now(), time.perf_counter()
            scale = 1.0 if scale is None else float(scale)
            out[name]["times"].append((t1 - t0) * scale)
            out[name]["wall"].append((w1 - w0) * scale)
    for v in out.values():
        v["median"] = statistics.median(v["times"])
        v["wall_median"] = statistics.median(v["wall"])
    return out


def speedup_row(benchmark, case, candidate, baseline, res, cand_key, base_key, target="", note="") -> Row:
    c, b = res[cand_key]["median"], res[base_key]["median"]
    return Row(benchmark, case, candidate, baseline, c, b, "s", b / c, "speedup (baseline / candidate)",
               target, note=note,
               extra={"candidate_wall_s": res[cand_key]["wall_median"], "baseline_wall_s": res[base_key]["wall_median"],
                      "repeats": len(res[cand_key]["times"])}).check()


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
