"""What the training reproductions share: their run sizes, training their jobs resumably, and the
summaries of their rows (mean, sd and success fraction per setting and T) as tidy CSV. The
accuracy-versus-T figures are drawn by ``landscape.figures.training``."""
from __future__ import annotations

import csv
import os
import time
from pathlib import Path

from ..train.summary import final_rows, summarise


def exact_requested(exact: bool | None) -> bool:
    """A reproduction's exact (long) protocol: the argument, else $LANDSCAPE_EXACT=1."""
    if exact is not None:
        return bool(exact)
    return os.environ.get("LANDSCAPE_EXACT", "").strip().lower() in ("1", "true", "yes", "exact")


def run_size(quick: bool, exact: bool | None) -> str:
    """Which of a reproduction's configurations to run: quick, exact or default."""
    return "quick" if quick else ("exact" if exact_requested(exact) else "default")


def train_jobs(name: str, jobs, store: Path, device: str, progress, compile: bool, on_result=None) -> list[dict]:
    """Train a reproduction's jobs [(TrainSpec, [Member])], resuming from the groups saved in
    ``store``, and return the rows of those jobs' groups (the store may hold others)."""
    from ..train.results import run_groups

    rows = run_groups(jobs, out=store, device=device, progress=progress, compile=compile,
                      on_message=lambda m: print(f"{name}: {m}", flush=True), on_result=on_result)
    wanted = {m.group for _, members in jobs for m in members}
    return [r for r in rows if r["group"] in wanted]


def run_task_reproduction(name: str, size: str, config, jobs, plot, keys: list[tuple[str, str]], out_dir,
                          quick: bool, device: str, progress, success: float, widths=(5, 8)) -> list[Path]:
    """The run of a reproduction that trains ``jobs`` and reports the final validation accuracy per
    (task, cell, T): NAME.csv (resumable), NAME-summary.csv, the figure ``plot(summary, config,
    out, stem, quick)`` and a printed table over ``keys`` = [(task, cell)]; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{name}-quick" if quick else name
    start = time.perf_counter()
    rows = train_jobs(name, jobs, out / f"{stem}.csv", device, progress, config.compile)
    summary = summarise(final_rows(rows), ("task", "cell", "T"), "val_acc", success, extra=("test_acc",))
    paths = [out / f"{stem}.csv", write_csv(out / f"{stem}-summary.csv", summary)]
    paths += plot(summary, config, out, stem, quick)
    print(f"{name}: {time.perf_counter() - start:.0f} s ({size}); final validation accuracy, mean (sd):")
    print_accuracy_by_T(summary, keys, widths)
    for path in paths:
        print(f"  wrote {path}")
    return paths


def print_accuracy_by_T(summary: list[dict], keys: list[tuple[str, str]], widths=(5, 8)) -> None:
    """One line per (task, cell) in ``keys``: the mean (sd) final validation accuracy at each T."""
    for task, cell in keys:
        sel = sorted((r for r in summary if r["task"] == task and r["cell"] == cell), key=lambda r: int(r["T"]))
        print(f"  {task:<{widths[0]}} {cell:<{widths[1]}}  "
              + "  ".join(f"T={r['T']}: {r['val_acc_mean']:.2f} ({r['val_acc_sd']:.2f})" for r in sel))


def write_csv(path, rows: list[dict]) -> Path:
    path = Path(path)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=columns, restval="")
        w.writeheader()
        w.writerows(rows)
    return path
