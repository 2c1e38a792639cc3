"""The Cross Validated question 340898, redone exactly: can a one-unit srnn, lstm or gru latch a
bit over T steps of noise? (docs/reference.md §1.)

Protocol of the question, reproduced: N = 10000 sequences (first value +1 for the first half of
the rows, label 1; -1 for the second half, label 0; every value + N(0, 0.1^2) noise); one-unit
SimpleRNN / LSTM / GRU with Keras 2 initialisers (glorot_uniform kernel, orthogonal recurrent,
zero biases, LSTM forget bias 1) and hard-sigmoid gates (GRU reset_before, as Keras 2.1), then
Dense(2, softmax) with glorot_uniform kernel; sparse categorical cross-entropy with Keras'
probability clip (1e-7); Adam lr 1e-3 in Keras 2's form (eps 1e-7 on sqrt(v)); 5 epochs, batch 16,
shuffled every epoch; 30 repeats per length; float32. Lengths [2, 5, 8, 10, 15, 20, 25, 30] +
range(30, 210, 10): the question's list has 30 twice and its dict kept the second run, so each of
the 25 distinct lengths is trained once here.

Two protocols (``landscape.train.splits``):
  keras-split  validation = the LAST 20% of rows before shuffling, all label 0 (the question's
               flaw: "accuracy" there is the fraction of label-0 answers);
  stratified   a shuffled stratified 80/20 split, and a fresh test set of 2000 rows.
The plotted "frequency of success" is, as in the question, the mean final validation accuracy
with sd error bars; the success fraction (final validation accuracy > 0.9) is drawn below it.

Data and seeds: one data set per T (data seed T) shared by its repeats (as in the question, where
the repeats of a length reuse one data set) and by the cells and protocols (a paired design);
model r of length T has seed 1000 T + r in every cell and protocol.

Variations (stratified protocol; fewer lengths and repeats, stated in the output):
  epochs   lstm models trained for 50 epochs: accuracy after 5 and after 50 epochs of the same
           models (exact: srnn and gru too)
  forget   in that 50-epoch population, the lstm forget bias initialised to 0, 1 (Keras'
           unit_forget_bias) or 2: accuracy after 5 and after 50 epochs
  gates    lstm and gru with logistic-sigmoid gates instead of Keras' hard sigmoid, 5 epochs,
           against the main run's hard-sigmoid models of the same seeds

Run sizes (``CONFIGS``): ``quick`` (seconds, CI); ``default``: 10 of the 30 repeats, everything
else exact, variations at T = 10, 50, 100 with 10 repeats; ``exact``: the question's 30 repeats,
variations at T = 10, 30, 50, 100, 200 with 10 repeats and the 50-epoch run for all three cells. Choose exact
with run(..., exact=True) or LANDSCAPE_EXACT=1. Training uses torch.compile (one compilation per
population, about a minute) and one CPU thread. Results are saved per
(variant, cell, T) group in latching.csv: a killed run, rerun, continues where it stopped.

Outputs: latching.csv (one row per model and epoch), latching-summary.csv (per variant, cell,
protocol, T: n, mean and sd of the final accuracy, success fraction), latching-run.json
(configuration and wall times), latching.pdf/.png, latching-variations.pdf/.png.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path


NAME = "latching"
DESCRIPTION = ("Cross Validated 340898: success of one-unit srnn / lstm / gru at latching vs T, "
               "keras-split and stratified protocols, with epoch, forget-bias and gate variations")

QUESTION_LENGTHS = (2, 5, 8, 10, 15, 20, 25, 30) + tuple(range(30, 210, 10))
LENGTHS = tuple(sorted(set(QUESTION_LENGTHS)))  # 25 distinct lengths
CELLS = {
    "srnn": (),
    "lstm": (("gate", "hard_sigmoid"),),
    "gru": (("gate", "hard_sigmoid"), ("form", "reset_before")),
}
PROTOCOLS = ("keras-split", "stratified")
SUCCESS = 0.9
REPORT_T = (10, 50, 100, 200)


@dataclass(frozen=True)
class Config:
    lengths: tuple[int, ...]
    repeats: int
    n: int = 10000
    epochs: int = 5
    var_lengths: tuple[int, ...] = (10, 50, 100)
    var_repeats: int = 10
    var_epochs: int = 50
    var_cells_epochs: tuple[str, ...] = ("lstm",)
    compile: bool = True


CONFIGS = {
    "quick": Config(lengths=(2, 10, 30), repeats=2, n=320, epochs=2, var_lengths=(2, 10), var_repeats=2,
                    var_epochs=4, compile=False),
    # default: 10 of the 30 repeats (about 20 minutes for the main run on one CPU core); the
    # variations at three lengths, 10 repeats, and the 50-epoch run for the lstm only
    "default": Config(lengths=LENGTHS, repeats=10),
    # exact: the question's experiment exactly (30 repeats); the variations at five lengths with 10
    # repeats and the 50-epoch run for all three cells (at 30 repeats they would take over an hour)
    "exact": Config(lengths=LENGTHS, repeats=30, var_lengths=(10, 30, 50, 100, 200), var_repeats=10,
                    var_cells_epochs=("srnn", "lstm", "gru")),
}
FORGET_BIASES = (0.0, 1.0, 2.0)  # 1 = Keras' unit_forget_bias (the main run's lstm)


def _spec(cell: str, options, config: Config, epochs: int):
    from ..train import TrainSpec

    return TrainSpec.of(cell=cell, cell_options=tuple(options), task="latch", hidden=1, n=config.n, epochs=epochs,
                     batch=16, optimizer="adam-keras", readout="dense2", loss_clip=1e-7, dtype="float32")


def _members(variant, cell, lengths, repeats, protocols, label=(), sets=()):
    from ..train import Member

    tag = "".join(f"-{k}{v:g}" for k, v in sets)
    return [Member(T=T, seed=1000 * T + r, data_seed=T, lr=1e-3, init="keras", protocol=prot, set=sets,
                   group=f"{variant}/{cell}{tag}/T{T}", labels=(("variant", variant), ("repeat", r)) + tuple(label))
            for T in lengths for r in range(repeats) for prot in protocols]


def jobs(config: Config) -> list:
    """[(TrainSpec, [Member])]: one population per (variant, cell)."""
    out = []
    for cell, opts in CELLS.items():  # the question's experiment, both protocols
        out.append((_spec(cell, opts, config, config.epochs),
                    _members("main", cell, config.lengths, config.repeats, PROTOCOLS)))
    for cell in config.var_cells_epochs:  # the same models trained for var_epochs; lstm with 3 forget biases
        members = []
        for bf in (FORGET_BIASES if cell == "lstm" else (None,)):
            sets = () if bf in (None, 1.0) else (("b_f", bf),)
            label = () if bf is None else (("forget_bias", bf),)
            members += _members("epochs", cell, config.var_lengths, config.var_repeats, ("stratified",), label, sets)
        out.append((_spec(cell, CELLS[cell], config, config.var_epochs), members))
    for cell in ("lstm", "gru"):  # logistic-sigmoid gates (hard sigmoid is the main run)
        opts = tuple(("gate", "sigmoid") if k == "gate" else (k, v) for k, v in CELLS[cell])
        out.append((_spec(cell, opts, config, config.epochs),
                    _members("gates", cell, config.var_lengths, config.var_repeats, ("stratified",))))
    return out


def _metric_rows(rows, config: Config):
    """Final-epoch rows of the main run, and the variation rows labelled by their setting."""
    from .report import final_rows

    main = final_rows([r for r in rows if r["variant"] == "main"])
    var = []
    sub = [r for r in main if r["protocol"] == "stratified" and int(r["T"]) in config.var_lengths
           and int(r["repeat"]) < config.var_repeats]
    for r in rows:
        if r["variant"] != "epochs" or int(r["epoch"]) not in (config.epochs, config.var_epochs):
            continue
        e = int(r["epoch"])
        bf = r.get("forget_bias", "")
        if bf == "" or float(bf) == 1.0:
            var.append(dict(r, variant="epochs", setting=f"{r['cell']}, {e} epochs"))
        if bf != "":
            var.append(dict(r, variant="forget", setting=f"b_f = {float(bf):g}, {e} epochs"))
    for r in final_rows([r for r in rows if r["variant"] == "gates"]):
        var.append(dict(r, setting=f"{r['cell']}, sigmoid"))
    for r in sub:
        if r["cell"] in ("lstm", "gru"):
            var.append(dict(r, variant="gates", setting=f"{r['cell']}, hard sigmoid"))
    return main, var


def run(out_dir, quick: bool = False, device: str = "auto", progress: bool | None = None,
        exact: bool | None = None) -> list[Path]:
    from .report import run_size, summarise, train_jobs, write_csv

    size = run_size(quick, exact)
    config = CONFIGS[size]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    store = out / ("latching-quick.csv" if quick else "latching.csv")
    timings = []
    start = time.perf_counter()
    rows = train_jobs(NAME, jobs(config), store, device, progress, config.compile,
                      on_result=lambda r: timings.append({"cell": r.spec.model.cell, "options": dict(r.spec.model.cell_options),
                                                          "epochs": r.spec.epochs, "models": len(r.members),
                                                          "seconds": round(r.seconds, 1),
                                                          "eval_seconds": round(r.eval_seconds, 1)}))
    wall = time.perf_counter() - start
    main, var = _metric_rows(rows, config)
    summary = summarise(main, ("variant", "cell", "protocol", "T"), "val_acc", SUCCESS, extra=("test_acc",))
    summary += summarise(var, ("variant", "setting", "protocol", "T"), "val_acc", SUCCESS, extra=("test_acc",))
    stem = "latching-quick" if quick else "latching"
    paths = [store, write_csv(out / f"{stem}-summary.csv", summary)]
    run_info = _run_info(out / f"{stem}-run.json", size, config, wall, timings)
    (out / f"{stem}-run.json").write_text(json.dumps(run_info, indent=1))
    paths.append(out / f"{stem}-run.json")
    paths += plot_main(summary, out, quick, config)
    paths += plot_variations(summary, out, quick, config)
    _print_report(summary, config, wall)
    for p in paths:
        print(f"  wrote {p}")
    return paths


def _run_info(path: Path, size: str, config: Config, wall: float, timings: list[dict]) -> dict:
    """The configuration and the time of every invocation that trained something: a resumed run
    adds its populations to those of the earlier runs recorded in ``path`` (same configuration)."""
    conf = json.loads(json.dumps(asdict(config)))
    runs = []
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except ValueError:
            old = {}
        if old.get("config") == conf:
            runs = old.get("runs", [])
    if timings:
        runs.append({"wall_seconds": round(wall, 1), "populations": timings})
    return {"size": size, "config": conf, "runs": runs,
            "training_seconds_total": round(sum(p["seconds"] for r in runs for p in r["populations"]), 1),
            "success_criterion": f"final val_acc > {SUCCESS}"}


def plot_main(summary, out: Path, quick: bool, config: Config) -> list[Path]:
    from ..figures import new_figure, use_style
    from .common import save_pdf_png
    from ..figures.training import COLOURS, plot_vs_T

    order = list(CELLS)
    rows = sorted((r for r in summary if r["variant"] == "main"), key=lambda r: order.index(r["cell"]))
    with use_style("paper"):
        fig = new_figure("double", aspect=0.62)
        axes = fig.subplots(2, 2, sharex=True, sharey="row")
        for j, prot in enumerate(PROTOCOLS):
            sel = [r for r in rows if r["protocol"] == prot]
            plot_vs_T(axes[0, j], sel, "cell", "val_acc", COLOURS, offset=1.2)
            plot_vs_T(axes[1, j], sel, "cell", "val_acc", COLOURS, what="success", offset=1.2)
            title = ("keras-split: validation = last 20% of rows (all label 0)" if prot == "keras-split"
                     else "stratified: shuffled stratified 20% validation")
            axes[0, j].set_title(title)
            axes[1, j].set_xlabel("sequence length T")
            axes[0, j].set_xlabel("")
        axes[0, 0].set_ylabel("final val. accuracy\n(mean ± sd)")
        axes[1, 0].set_ylabel(f"fraction with\nval. accuracy > {SUCCESS:g}")
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=len(labels))
        fig.suptitle(f"One-unit cells latching a bit (N = {config.n}, {config.repeats} repeats, "
                     f"{config.epochs} epochs, batch 16, Keras 2 Adam 1e-3 and initialisers)")
        return save_pdf_png(fig, out, "latching-quick" if quick else "latching", quick)


def plot_variations(summary, out: Path, quick: bool, config: Config) -> list[Path]:
    from ..figures import new_figure, use_style
    from .common import save_pdf_png
    from ..figures.training import COLOURS, plot_vs_T

    E, E2 = config.epochs, config.var_epochs
    panels = [("epochs", f"{E} vs {E2} epochs (same models)"),
              ("forget", f"lstm forget-bias initialisation ({E} and {E2} epochs)"),
              ("gates", f"gate activation ({E} epochs)")]
    colour, styles = {}, {}
    for cell, c in COLOURS.items():
        colour[f"{cell}, {E} epochs"] = colour[f"{cell}, {E2} epochs"] = c
        styles[f"{cell}, {E} epochs"] = dict(linestyle="--", marker="s")
        colour[f"{cell}, hard sigmoid"] = colour[f"{cell}, sigmoid"] = c
        styles[f"{cell}, sigmoid"] = dict(linestyle="--", marker="s")
    for bf, c in zip(FORGET_BIASES, ("tab:red", "tab:orange", "tab:purple")):
        colour[f"b_f = {bf:g}, {E} epochs"] = colour[f"b_f = {bf:g}, {E2} epochs"] = c
        styles[f"b_f = {bf:g}, {E} epochs"] = dict(linestyle="--", marker="s")
    with use_style("paper"):
        fig = new_figure("double", aspect=0.38)
        axes = fig.subplots(1, 3, sharey=True)
        for ax, (variant, title) in zip(axes, panels):
            sel = [r for r in summary if r.get("variant") == variant and "setting" in r]
            plot_vs_T(ax, sorted(sel, key=lambda r: r["setting"]), "setting", "val_acc", colour, styles=styles,
                      offset=1.0)
            ax.set_title(title)
            ax.legend(loc="lower left", fontsize=5)
        axes[0].set_ylabel("final val. accuracy (mean ± sd)")
        fig.suptitle(f"Variations (stratified protocol, {config.var_repeats} repeats, T = "
                     f"{', '.join(map(str, config.var_lengths))}; b_f = 1 is Keras' unit_forget_bias)")
        return save_pdf_png(fig, out, "latching-variations-quick" if quick else "latching-variations", quick)


def _print_report(summary, config: Config, wall: float) -> None:
    print(f"{NAME}: {wall:.0f} s this run; mean final val. accuracy (success fraction > {SUCCESS:g}):")
    for prot in PROTOCOLS:
        for cell in CELLS:
            items = []
            for T in REPORT_T:
                r = [x for x in summary if x["variant"] == "main" and x["cell"] == cell and x["protocol"] == prot
                     and int(x["T"]) == T]
                if r:
                    items.append(f"T={T}: {r[0]['val_acc_mean']:.2f} ({r[0]['success']:.2f})")
            if items:
                print(f"  {prot:<11} {cell:<4}  " + "  ".join(items))
