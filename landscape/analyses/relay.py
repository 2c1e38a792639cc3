"""The question's second experiment (Cross Validated 340898, update of 2018-04-19; docs/reference.md §1):

    Task 1: information latching (1 unit; 10 repeats; 10 epochs)
    Task 2: bit relay (8 units; 10 repeats; 10 epochs)

for srnn, lstm and gru, mean +- sd of the final validation accuracy against T. The asker reported
that on task 2 the GRU did better while SRNN and LSTM were equally bad. The text of that
experiment is lost, so this module fixes what it does not say:

  bit relay   our definition (task ``relay``, landscape/tasks/builtin.py): the first input is the bit (+-1), every
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

More readings of the bit relay (``landscape reproduce relay-readings``, module ``relay_readings``;
``READINGS`` here): the same training on other tasks that "bit relay" may have meant, each OUR
reading, none the asker's (docs/reference.md §1):

  first       ``relay``: the definition above (the first input, through T - 1 +-1 distractors)
  delay       ``relay lag=T//2``: a k-step delayed copy of a random +-1 stream, the label the input
              k = T // 2 steps before the last (the middle of the stream); k is fixed for each T
  pulse       ``relay-pulse``: one +-1 pulse at a random step s < 16 of a quiet (all-zero) stream,
              reported T steps after it (the sequence ends at s + T)
  pulse-noisy ``relay-pulse noise=0.1``: the same over the latch's N(0, 0.1^2) noise
  flipflop    ``relay-flipflop``: a latching relay; +-1 pulses at random steps (rate 0.1, step 0
              always), the label the last one
  flipflop-sparse  ``relay-flipflop rate=0.02 noise=0.1``: rare pulses (a gap of 50 steps on
              average) over the latch's noise

Outputs: relay-readings.csv (resumable per (reading, cell, T) group), relay-readings-summary.csv
(reading, cell, T, task options, n, mean and sd of the final validation accuracy, success
fraction, test accuracy), relay-readings.pdf/.png (one panel per reading). Sizes as for relay
(``READINGS_CONFIGS``): default N = 2000 (about 20 minutes for the six readings on a shared
2-core CPU), exact N = 10000 (about 46 minutes there); ``run_readings(..., readings=(...))`` trains
a subset.

Results (docs/results/relay-readings-exact-summary.csv, N = 10000): only flipflop-sparse gives
the thread's "GRU better, SRNN and LSTM equally bad", and only at T = 80 (gru 0.97 +- 0.02, srnn
0.87 +- 0.13, lstm 0.85 +- 0.09; at T = 40 0.99, 0.94, 0.98). A side check with another data set
at T = 80 (0.97, 0.94, 0.84) and at T = 160 (0.96, 0.87, 0.78; docs/results/
relay-readings-flipflop-sparse-check.csv) keeps the gru ahead, but not srnn = lstm. On first,
pulse and pulse-noisy the gru is the first to fall (to chance by T = 20 or 40) and the srnn the
last (pulse: 1.00 at T = 80): at Keras 2's initialisation a +-1 pulse's trace after 40 quiet
steps (``pulse_trace``) is 0.68 in the srnn (orthogonal recurrent matrix), 3e-5 in the lstm
(forget gate 0.7) and 3e-9 in the gru (update gate 0.5), medians over 200 models of 8 units.
delay: all three hold lag 10 (T = 20: 0.94 - 0.99) and are at chance at T = 80 (T = 40: lstm
0.73, srnn 0.63, gru 0.53); flipflop (rate 0.1) is solved by all three at every T.
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
            spec = TrainSpec.of(cell=cell, cell_options=opts, task=task, hidden=H, n=config.n, epochs=config.epochs,
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


# ---------------------------------------------------------------------------------------------
# the readings (``landscape reproduce relay-readings``)

READINGS_NAME = "relay-readings"
READINGS_HIDDEN = 8


@dataclass(frozen=True)
class Reading:
    """One reading of "bit relay": a task, its options, and what the figure says about it.

    task       a task name (``landscape tasks``)
    options    task options shared by every T
    half_lag   also set lag = T // 2 at each T (the delayed copy: the label is the middle input)
    title      the panel's title
    chance     what a model that knows nothing but the class frequencies gets (0.5 for all here)
    """

    task: str
    options: tuple[tuple[str, object], ...] = ()
    half_lag: bool = False
    title: str = ""
    chance: float = 0.5

    def task_options(self, T: int) -> tuple[tuple[str, object], ...]:
        return self.options + ((("lag", T // 2),) if self.half_lag else ())


READINGS = {
    "first": Reading("relay", title="first  (relay)\nthe 1st input, then ±1 distractors"),
    "delay": Reading("relay", half_lag=True, title="delay  (relay lag=T//2)\nthe input T//2 before the last, ±1 stream"),
    "pulse": Reading("relay-pulse", title="pulse  (relay-pulse)\none ±1 at a step < 16 of zeros, T steps on"),
    "pulse-noisy": Reading("relay-pulse", (("noise", 0.1),),
                           title="pulse-noisy  (relay-pulse noise=0.1)\nthe same over N(0, 0.1²) noise"),
    "flipflop": Reading("relay-flipflop", title="flipflop  (relay-flipflop)\nthe last of ±1 pulses (rate 0.1)"),
    "flipflop-sparse": Reading("relay-flipflop", (("rate", 0.02), ("noise", 0.1)),
                               title="flipflop-sparse  (rate=0.02 noise=0.1)\nrare ±1 pulses over N(0, 0.1²) noise"),
}

READINGS_CONFIGS = {
    "quick": Config(lengths=(3, 8), n=64, repeats=2, epochs=1, compile=False),
    "default": Config(lengths=(5, 10, 20, 40, 80), n=2000),
    "exact": Config(lengths=(5, 10, 20, 40, 80), n=10000),
}


def _options_label(options) -> str:
    return ";".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in options)


def readings_jobs(config: Config, readings: dict[str, Reading] | None = None) -> list:
    """[(TrainSpec, [Member])]: one population per (reading, cell, task options) -- per (reading,
    cell) unless the options change with T (delay). Seeds as in ``jobs``: model r at length T has
    seed 1000 T + r and data seed T in every reading and cell."""
    from ..train import Member, TrainSpec

    out = []
    for name, reading in (readings or READINGS).items():
        for cell, opts in CELLS.items():
            by_options: dict = {}
            for T in config.lengths:
                by_options.setdefault(reading.task_options(T), []).append(T)
            for options, lengths in by_options.items():
                spec = TrainSpec.of(cell=cell, cell_options=opts, task=reading.task, task_options=options,
                                 hidden=READINGS_HIDDEN, n=config.n, epochs=config.epochs, batch=16,
                                 optimizer="adam-keras", readout="dense2", loss_clip=1e-7, dtype="float32")
                label = (("reading", name), ("task_options", _options_label(options)))
                members = [Member(T=T, seed=1000 * T + r, data_seed=T, init="keras", protocol="stratified",
                                  group=f"{name}/{cell}/T{T}", labels=label + (("repeat", r),))
                           for T in lengths for r in range(config.repeats)]
                out.append((spec, members))
    return out


def summarise_readings(rows: list[dict]) -> list[dict]:
    """Per (reading, cell, T): n, mean and sd of the final validation accuracy, the fraction above
    SUCCESS, the mean test accuracy, and the task and its options."""
    from ..train.summary import final_rows, summarise

    final = final_rows(rows)
    summary = summarise(final, ("reading", "cell", "T"), "val_acc", SUCCESS, extra=("test_acc",))
    tasks = {(r["reading"], r["cell"], r["T"]): (r["task"], r["task_options"]) for r in final}
    for row in summary:
        task, options = tasks[(row["reading"], row["cell"], row["T"])]
        row["task"], row["task_options"] = task, "" if options is None else options
    order = list(READINGS)
    cells = list(CELLS)
    return sorted(summary, key=lambda r: (order.index(r["reading"]) if r["reading"] in order else len(order),
                                          str(r["reading"]), cells.index(r["cell"]), int(r["T"])))


def select_readings(names=None) -> dict[str, Reading]:
    """READINGS, or those named (in READINGS' order); LandscapeError for an unknown name."""
    from ..errors import LandscapeError

    if names is None:
        return dict(READINGS)
    unknown = [n for n in names if n not in READINGS]
    if unknown:
        raise LandscapeError(f"unknown relay reading {unknown[0]!r}; choose from: {', '.join(READINGS)}")
    return {n: r for n, r in READINGS.items() if n in names}


def run_readings(out_dir, quick: bool = False, device: str = "auto", progress: bool | None = None,
                 exact: bool | None = None, readings=None) -> list[Path]:
    """Train srnn, lstm and gru (8 units, Keras 2 gates) on every reading in READINGS (or on those
    named in ``readings``); write relay-readings.csv (resumable), relay-readings-summary.csv and the
    figure; print the table. The summary and the figure hold the readings of this call only."""
    import time

    from .report import run_size, train_jobs, write_csv

    chosen = select_readings(readings)
    size = run_size(quick, exact)
    config = READINGS_CONFIGS[size]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{READINGS_NAME}-quick" if quick else READINGS_NAME
    start = time.perf_counter()
    rows = train_jobs(READINGS_NAME, readings_jobs(config, chosen), out / f"{stem}.csv", device, progress,
                      config.compile)
    summary = summarise_readings(rows)
    paths = [out / f"{stem}.csv", write_csv(out / f"{stem}-summary.csv", summary)]
    paths += plot_readings(summary, config, out, stem, quick)
    print(f"{READINGS_NAME}: {time.perf_counter() - start:.0f} s ({size}); final validation accuracy, mean (sd):")
    for name in chosen:
        for cell in CELLS:
            sel = [r for r in summary if r["reading"] == name and r["cell"] == cell]
            print(f"  {name:<15} {cell:<4}  " + "  ".join(f"T={r['T']}: {r['val_acc_mean']:.2f} ({r['val_acc_sd']:.2f})"
                                                        for r in sel))
    for path in paths:
        print(f"  wrote {path}")
    return paths


def plot_readings(summary, config: Config, out: Path, stem: str, quick: bool) -> list[Path]:
    """One panel per reading in the summary: final validation accuracy (mean +- sd over the
    repeats) against T, one line per cell, the chance level dashed."""
    import math

    from ..figures import new_figure, use_style
    from .common import save_pdf_png

    n = max(1, len({r["reading"] for r in summary}))
    rows = math.ceil(n / min(3, n))
    with use_style("paper"):
        fig = new_figure("double", aspect=0.31 * rows + (0.06 if rows == 1 else 0.0))
        draw_readings(fig, summary, config)
        return save_pdf_png(fig, out, stem, quick)


def draw_readings(fig, summary, config: Config):
    """The readings' panels on ``fig``, three to a row, in READINGS' order; the legend in the last
    row's spare place (below the panels when there is none); returns {reading: axes}."""
    import math

    import numpy as np

    from ..figures.training import COLOURS, plot_vs_T

    names = [n for n in READINGS if any(r["reading"] == n for r in summary)]
    cols = min(3, max(1, len(names)))
    rows = math.ceil(max(1, len(names)) / cols)
    grid = np.atleast_2d(fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False))
    flat = list(grid.flat)
    axes = {}
    for ax, name in zip(flat, names):
        sel = sorted((r for r in summary if r["reading"] == name), key=lambda r: list(CELLS).index(r["cell"]))
        ax.axhline(READINGS[name].chance, color="0.6", linestyle="--", linewidth=0.6)
        plot_vs_T(ax, sel, "cell", "val_acc", COLOURS, offset=0.04, log=True)
        ax.set_title(READINGS[name].title)
        ax.set_xscale("log")
        ax.set_xticks(list(config.lengths))
        ax.set_xticklabels([str(t) for t in config.lengths])
        ax.minorticks_off()
        ax.tick_params(labelbottom=True)
        axes[name] = ax
    spare = flat[len(names):]
    for ax in spare:
        ax.set_axis_off()
    for ax in grid[:, 0]:
        ax.set_ylabel("final val. accuracy\n(mean ± sd)")
    for ax in flat[:len(names)]:
        below = flat.index(ax) + cols
        if below < len(names):  # another panel below: its x label says it
            ax.set_xlabel("")
    handles, labels = next(iter(axes.values())).get_legend_handles_labels() if axes else ([], [])
    legend_title = f"{READINGS_HIDDEN} units, Keras 2 gates"
    if spare and handles:
        spare[-1].legend(handles, labels, loc="center", title=legend_title)
    elif handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), title=legend_title)
    epochs = f"{config.epochs} epoch{'s' if config.epochs != 1 else ''}"
    fig.suptitle(f"Readings of the thread's bit relay (ours; the asker's text is lost)\n{config.repeats} repeats, "
                 f"{epochs}, N = {config.n}, stratified split; error bars: sd; dashed: chance")
    return axes


def pulse_trace(cell: str, steps: tuple[int, ...], models: int = 200, hidden: int = READINGS_HIDDEN,
                seed: int = 0) -> dict[int, float]:
    """How much of a +-1 pulse survives k quiet steps at Keras 2's initialisation (CELLS' gates):
    {k: the median over ``models`` models of |h_k(+1) - h_k(-1)|}, h_k the state k steps after
    the pulse (k = 0: right after it) with zero input since. The models are drawn together from
    one generator seeded by ``seed``."""
    from ..cells import get_cell
    from ..lazy import torch

    c = get_cell(cell, **dict(CELLS[cell]))
    g = torch.Generator().manual_seed(seed)
    p = c.init_params("keras", hidden, 1, models, g)  # (P, ...) each
    state = c.initial_state(p, 2, hidden)
    state = c.step(p, state, torch.tensor([[1.0], [-1.0]], dtype=torch.float64).expand(models, 2, 1))
    zero = torch.zeros((models, 2, 1), dtype=torch.float64)
    out = {}
    for k in range(max(steps) + 1):
        if k in steps:
            h = c.output(state)  # (P, 2, H)
            out[k] = float((h[:, 0] - h[:, 1]).norm(dim=-1).median())
        state = c.step(p, state, zero)
    return out
