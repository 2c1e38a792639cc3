"""Training summaries drawn: accuracy (or success fraction) against T, one line per series, with
standard-deviation error bars (the reproductions' latching, relay and ablations figures)."""
from __future__ import annotations

import numpy as np


COLOURS = {"srnn": "tab:blue", "lstm": "tab:orange", "gru": "tab:green"}


def plot_vs_T(ax, summary: list[dict], series: str, metric: str, colours=None, labels=None,
              styles=None, what: str = "mean", offset: float = 0.0, log: bool = False) -> None:
    """One line per value of column ``series``: ``metric`` mean with sd error bars (what='mean')
    or the success fraction (what='success') against T. Series are drawn side by side, shifted
    by ``offset`` in T (a factor 1 + offset with ``log``) so that their error bars stay apart."""
    colours = colours or {}
    keys = list(dict.fromkeys(r[series] for r in summary))
    for i, key in enumerate(keys):
        sel = sorted((r for r in summary if r[series] == key), key=lambda r: int(r["T"]))
        T = np.array([int(r["T"]) for r in sel], dtype=float)
        shift = i - (len(keys) - 1) / 2
        T = T * (1 + offset) ** shift if log else T + offset * shift
        style = dict(color=colours.get(key, None), marker="o", markersize=2.5, linewidth=1.0, capsize=1.5,
                     elinewidth=0.6, label=(labels or {}).get(key, key))
        style.update((styles or {}).get(key, {}))
        if what == "mean":
            ax.errorbar(T, [r[f"{metric}_mean"] for r in sel], yerr=[r[f"{metric}_sd"] for r in sel], **style)
        else:
            style.pop("capsize"), style.pop("elinewidth")
            ax.plot(T, [r["success"] for r in sel], **style)
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("sequence length T")
