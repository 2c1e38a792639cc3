"""Summaries of training rows: each model's final row, and per setting and T the mean, sd and
success fraction of a metric (what `landscape train` prints and the reproductions tabulate)."""
from __future__ import annotations

from collections import defaultdict

import numpy as np

SUCCESS_METRIC = {"keras-split": "val_acc", "stratified": "test_acc", "all": "train_acc"}  # per protocol


def final_rows(rows, epochs_of=None) -> list[dict]:
    """The rows of each model's last epoch (or of ``epochs_of(row)`` when given)."""
    last: dict = {}
    for r in rows:
        key = (r["group"], r["protocol"], r["T"], r["seed"], r.get("variant", ""))
        if epochs_of is not None:
            if int(r["epoch"]) == epochs_of(r):
                last[key] = r
        elif key not in last or int(r["epoch"]) > int(last[key]["epoch"]):
            last[key] = r
    return list(last.values())


def summarise(rows, by: tuple[str, ...], metric: str, success: float, extra: tuple[str, ...] = ()) -> list[dict]:
    """Group rows by the columns ``by`` (T last, say) and give n, mean, sd (population sd, as
    numpy's default), and the fraction above ``success`` of ``metric``; means of ``extra``."""
    groups = defaultdict(list)
    for r in rows:
        groups[tuple(r[k] for k in by)].append(r)
    out = []
    for key in sorted(groups, key=lambda k: tuple((str(type(v)), v) for v in k)):
        vals = np.array([float(r[metric]) for r in groups[key]])
        row = dict(zip(by, key))
        row.update({"n": len(vals), f"{metric}_mean": float(np.mean(vals)), f"{metric}_sd": float(np.std(vals)),
                    "success": float(np.mean(vals > success))})
        for e in extra:
            vals_e = np.array([float(r[e]) for r in groups[key]])
            row[f"{e}_mean"] = float(np.mean(vals_e[np.isfinite(vals_e)])) if np.isfinite(vals_e).any() else float("nan")
        out.append(row)
    return out


def summary_by_T(rows: list[dict], protocol: str, success: float) -> list[dict]:
    """The final rows of each model summarised per T under the protocol's metric (validation
    accuracy for keras-split, test accuracy for stratified, training accuracy for all) with
    the mean training loss over the members whose loss is finite, and the number whose final
    training loss is NaN or infinite: [{"T", "n", "<metric>_mean", "<metric>_sd", "success",
    "train_loss_mean", "diverged"}]."""
    finals = final_rows(rows)
    summary = summarise(finals, ("T",), SUCCESS_METRIC[protocol], success, extra=("train_loss",))
    for row in summary:
        row["diverged"] = sum(not np.isfinite(float(r["train_loss"])) for r in finals if r["T"] == row["T"])
    return summary
