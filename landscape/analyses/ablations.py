"""Gate ablations on the two tasks of ``relay``: which part of the LSTM matters for latching?

Cells (docs/reference.md §4, §5; ``landscape cells``): lstm (forget bias initialised to 0, as the
baseline of Jozefowicz et al. 2015), lstm-b (forget bias 1), lstm-i / lstm-o / lstm-f (input /
output / forget gate removed, fixed at 1), lstm1997 (Hochreiter & Schmidhuber 1997: no forget
gate, squashings 4s-2 and 2s-1), gru (torch form), mut1, mut2, mut3 (Jozefowicz et al.'s evolved
cells). Logistic-sigmoid gates throughout (as in those papers); otherwise the training of
``relay``: Keras 2 initialisers (the lstm's Keras forget bias of 1 is set back to 0),
Dense(2, softmax), Adam 1e-3 in Keras' form, batch 16, stratified split.

Tasks: latch with 1 unit; relay with 8 units, where mut1 and mut2 are left out (their equations
add the input to the hidden state, so they need input size = hidden size, and the relay input
has one component).

Sizes: default N = 2000, T in (10, 40), 5 repeats, 5 epochs; exact (run(exact=True) or
LANDSCAPE_EXACT=1): N = 10000, T in (5, 10, 20, 40, 80), 10 repeats, 10 epochs.

What the default run shows (docs/results/ablations-summary.csv; success = final validation accuracy
> 0.9, 95 % Wilson intervals): on latch at T = 40 lstm-f and lstm1997 latch 5 of 5 (0.57-1);
lstm and lstm-b 0 of 5 each (0-0.43), which cannot separate them. ``forget_bias_check`` reruns
that pair with 100 models each (docs/results/ablations-forget-bias-T40.csv; the default run's
five are the first five): lstm-b latches 9 of 100 (0.05-0.16), lstm 0 of 100 (0-0.04). The
forget bias of 1 helps, in the direction of Jozefowicz et al.'s headline ("adding a bias of 1 to
the LSTM's forget gate closes the gap between the LSTM and the GRU", their abstract), which was
measured on other tasks (arithmetic, XML, language modelling); both stay far below the cells
without a forget gate. The MUT1-3 equations are unchecked at the source (``cells.gated._Mutant``
says what they rest on).

Outputs: ablations.csv (one row per model and epoch; resumable per (task, cell, T) group),
ablations-summary.csv, ablations.pdf/.png (final validation accuracy per cell, one panel per task,
one bar group per T).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

NAME = "ablations"
DESCRIPTION = "Gate ablations (lstm -b -i -o -f, lstm1997, gru, mut1-3) on latching and bit relay"

CELLS = ("lstm", "lstm-b", "lstm-i", "lstm-o", "lstm-f", "lstm1997", "gru", "mut1", "mut2", "mut3")
TASKS = {"latch": 1, "relay": 8}
NEEDS_D_EQ_H = ("mut1", "mut2")
SUCCESS = 0.9


@dataclass(frozen=True)
class Config:
    lengths: tuple[int, ...]
    n: int
    repeats: int
    epochs: int
    compile: bool = False


CONFIGS = {
    "quick": Config(lengths=(3, 6), n=96, repeats=2, epochs=1),
    "default": Config(lengths=(10, 40), n=2000, repeats=5, epochs=5),
    "exact": Config(lengths=(5, 10, 20, 40, 80), n=10000, repeats=10, epochs=10, compile=True),
}


def cells_for(task: str) -> tuple[str, ...]:
    return tuple(c for c in CELLS if not (TASKS[task] > 1 and c in NEEDS_D_EQ_H))


def jobs(config: Config) -> list:
    from ..train import Member, TrainSpec

    out = []
    for task, H in TASKS.items():
        for cell in cells_for(task):
            opts = (("form", "torch"),) if cell == "gru" else ()
            spec = TrainSpec.of(cell=cell, cell_options=opts, task=task, hidden=H, n=config.n, epochs=config.epochs,
                             batch=16, optimizer="adam-keras", readout="dense2", loss_clip=1e-7, dtype="float32")
            sets = (("b_f", 0.0),) if cell == "lstm" else ()
            out.append((spec, [Member(T=T, seed=1000 * T + r, data_seed=T, init="keras", protocol="stratified",
                                      set=sets, group=f"{task}/{cell}/T{T}",
                                      labels=(("task_name", task), ("repeat", r)))
                               for T in config.lengths for r in range(config.repeats)]))
    return out


def forget_bias_check(repeats: int = 100, T: int = 40, config: Config = CONFIGS["default"],
                      device: str = "auto") -> list[dict]:
    """lstm (forget bias 0) against lstm-b (forget bias 1) on latch at length T with ``repeats``
    models each, trained as the default run trains them (its models are repeats 0-4: the same
    seeds 1000 T + r, the one data set of seed T). One row per cell: models, latched (final
    validation accuracy > SUCCESS), the rate with its 95 % Wilson interval, mean final validation
    and test accuracy."""
    from ..train.paths import wilson
    from ..train.results import run_groups
    from ..train.summary import final_rows

    cfg = replace(config, lengths=(T,), repeats=repeats)
    picked = [(spec, members) for spec, members in jobs(cfg)
              if spec.model.task == "latch" and spec.model.cell in ("lstm", "lstm-b")]
    last = final_rows(run_groups(picked, device=device))
    out = []
    for cell in ("lstm", "lstm-b"):
        sel = [r for r in last if r["cell"] == cell]
        k = sum(float(r["val_acc"]) > SUCCESS for r in sel)
        lo, hi = wilson(k, len(sel))
        out.append({"task": "latch", "cell": cell, "T": T, "forget_bias": 0.0 if cell == "lstm" else 1.0,
                    "models": len(sel), "epochs": cfg.epochs, "n": cfg.n, "latched": k, "rate": k / len(sel),
                    "rate_lo": round(lo, 4), "rate_hi": round(hi, 4),
                    "val_acc_mean": float(np.mean([float(r["val_acc"]) for r in sel])),
                    "test_acc_mean": float(np.mean([float(r["test_acc"]) for r in sel]))})
    return out


def run(out_dir, quick: bool = False, device: str = "auto", progress: bool | None = None,
        exact: bool | None = None) -> list[Path]:
    from .report import run_size, run_task_reproduction

    size = run_size(quick, exact)
    config = CONFIGS[size]
    keys = [(task, cell) for task in TASKS for cell in cells_for(task)]
    return run_task_reproduction(NAME, size, config, jobs(config), plot, keys, out_dir, quick, device, progress,
                                 SUCCESS, widths=(5, 8))


def plot(summary, config: Config, out: Path, stem: str, quick: bool) -> list[Path]:
    from ..figures import new_figure, use_style
    from .common import save_pdf_png

    titles = {"latch": "latching (1 unit)", "relay": "bit relay (8 units; mut1, mut2 need D = H)"}
    Ts = list(config.lengths)
    shades = [str(v) for v in np.linspace(0.75, 0.15, len(Ts))]
    with use_style("paper"):
        fig = new_figure("double", aspect=0.36)
        axes = fig.subplots(1, 2, sharey=True, width_ratios=[len(cells_for(t)) for t in TASKS])
        for ax, task in zip(axes, TASKS):
            cells = cells_for(task)
            width = 0.8 / len(Ts)
            for k, (T, shade) in enumerate(zip(Ts, shades)):
                vals, errs = [], []
                for cell in cells:
                    r = [x for x in summary if x["task"] == task and x["cell"] == cell and int(x["T"]) == T]
                    vals.append(r[0]["val_acc_mean"] if r else np.nan)
                    errs.append(r[0]["val_acc_sd"] if r else 0.0)
                x = np.arange(len(cells)) + (k - (len(Ts) - 1) / 2) * width
                ax.bar(x, vals, width, yerr=errs, color=shade, label=f"T = {T}", error_kw=dict(lw=0.6, capsize=1))
            ax.set_xticks(np.arange(len(cells)))
            ax.set_xticklabels(cells, rotation=40, ha="right")
            ax.axhline(0.5, color="k", linewidth=0.5, linestyle=":")
            ax.set_ylim(0, 1.05)
            ax.set_title(titles[task])
        axes[0].set_ylabel("final val. accuracy (mean ± sd)")
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=len(Ts))
        fig.suptitle(f"Gate ablations: {config.repeats} repeats, {config.epochs} epochs, N = {config.n}, "
                     f"sigmoid gates, Adam 1e-3 (Keras form), stratified split")
        return save_pdf_png(fig, out, stem, quick)
