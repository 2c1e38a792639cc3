"""The question's second experiment (Cross Validated 340898, update of 2018-04-19; docs/reference.md §1):

    Task 1: information latching (1 unit; 10 repeats; 10 epochs)
    Task 2: bit relay (8 units; 10 repeats; 10 epochs)

for srnn, lstm and gru, mean +- sd of the final validation accuracy against T. The asker reported
that on task 2 the GRU did better while SRNN and LSTM were equally bad. The text of that
experiment is lost, so this module fixes what it does not say:

  bit relay   our definition (DESIGN.md, task ``relay``): the first input is the bit (+-1), every
              later input a fresh random +-1 distractor of the same size, the label is the bit
  training    as in the latching experiment (``latching``): Keras 2 initialisers, hard-sigmoid
              gates (GRU reset_before), Dense(2, softmax), Adam 1e-3 in Keras' form, batch 16
  protocol    stratified (shuffled stratified 80/20 split; the asker had randomised the labels
              by then, and keras-split's one-class validation set says nothing)
  sizes       default: N = 2000 sequences, T in (5, 10, 20, 40, 80); exact (run(exact=True)
              or LANDSCAPE_EXACT=1): N = 10000 as in the latching experiment, same lengths
              (about 15 minutes on one CPU core)

Outputs: relay.csv (one row per model and epoch; resumable per (task, cell, T) group),
relay-summary.csv, relay.pdf/.png.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .latching import CELLS  # srnn, lstm, gru with Keras 2's gates, as in the latching experiment

NAME = "relay"
DESCRIPTION = "Latching (1 unit) and bit relay (8 units), 10 repeats x 10 epochs: srnn vs lstm vs gru"

TASKS = {"latch": 1, "relay": 8}  # task -> hidden units
SUCCESS = 0.9


@dataclass(frozen=True)
class Config:
    lengths: tuple[int, ...]
    n: int
    repeats: int = 10
    epochs: int = 10
    compile: bool = True


CONFIGS = {
    "quick": Config(lengths=(3, 8), n=160, repeats=2, epochs=2, compile=False),
    "default": Config(lengths=(5, 10, 20, 40, 80), n=2000),
    # the latching experiment's N = 10000 (its 25 lengths would take hours on one CPU core)
    "exact": Config(lengths=(5, 10, 20, 40, 80), n=10000),
}


def jobs(config: Config) -> list:
    from ..train import Member, TrainSpec

    out = []
    for task, H in TASKS.items():
        for cell, opts in CELLS.items():
            spec = TrainSpec(cell=cell, cell_options=opts, task=task, hidden=H, n=config.n, epochs=config.epochs,
                             batch=16, optimizer="adam-keras", readout="dense2", loss_clip=1e-7, dtype="float32")
            members = [Member(T=T, seed=1000 * T + r, data_seed=T, init="keras", protocol="stratified",
                              group=f"{task}/{cell}/T{T}", labels=(("task_name", task), ("repeat", r)))
                       for T in config.lengths for r in range(config.repeats)]
            out.append((spec, members))
    return out


def run(out_dir, quick: bool = False, device: str = "auto", progress: bool | None = None,
        exact: bool | None = None) -> list[Path]:
    from .report import run_size, run_task_reproduction

    size = run_size(quick, exact)
    config = CONFIGS[size]
    keys = [(task, cell) for task in TASKS for cell in CELLS]
    return run_task_reproduction(NAME, size, config, jobs(config), plot, keys, out_dir, quick, device, progress,
                                 SUCCESS, widths=(5, 4))


def plot(summary, config: Config, out: Path, stem: str, quick: bool) -> list[Path]:
    from ..figures import new_figure, use_style
    from .common import save_pdf_png
    from ..figures.training import COLOURS, plot_vs_T

    titles = {"latch": "Task 1: information latching (1 unit)", "relay": "Task 2: bit relay (8 units)"}
    with use_style("paper"):
        fig = new_figure("double", aspect=0.36)
        axes = fig.subplots(1, 2, sharey=True)
        for ax, task in zip(axes, TASKS):
            sel = sorted((r for r in summary if r["task"] == task), key=lambda r: list(CELLS).index(r["cell"]))
            plot_vs_T(ax, sel, "cell", "val_acc", COLOURS, offset=0.04, log=True)
            ax.set_title(titles[task])
            ax.set_xscale("log")
            ax.set_xticks(list(config.lengths))
            ax.set_xticklabels([str(t) for t in config.lengths])
            ax.minorticks_off()
        axes[0].set_ylabel("final val. accuracy (mean ± sd)")
        axes[0].legend(loc="lower left")
        fig.suptitle(f"{config.repeats} repeats, {config.epochs} epochs, N = {config.n}, stratified split; "
                     f"error bars: standard deviations")
        return save_pdf_png(fig, out, stem, quick)
