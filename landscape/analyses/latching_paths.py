"""What training did on the latch landscape, member by member (issue 21; the Cross Validated
question 340898 asked whether the failures were "related to the landscape (e.g. Cliffs)").

Setup (as ``latching``: Keras 2 initialisers, hard-sigmoid gates, Dense(2) softmax readout, Keras 2
Adam 1e-3, batch 16, float32) on latch at T = 50 with the stratified split (a shuffled stratified 80/20
split and a fresh test set): srnn, lstm and gru, ``members`` models each (member r: seed 1000 T + r,
data seed T), every member's path recorded every ``record`` steps (``landscape train --record-steps``).

For every member (``landscape.train.paths``): its fate (learned: final test accuracy > 0.9; learned
then lost; never learned), its cliff hits (default thresholds: a batch-loss change > 10 x its running
median with a gradient norm > 5 x its running median), the fixed points and 2-cycles of its map at
input 0 at the recorded steps with their stability, and whether each cliff hit lies at a bifurcation
(a change of those counts within one recorded segment). The initial point's features against fate:
the alignment: whether the readout direction (dense_w[1] - dense_w[0], the logit of label 1, whose first
input is +1) points the way the first input pushes h_T (srnn: sign(u w^(T-1)), a negative w flips h each
step; lstm: sign(u_z); gru: sign(u_h); ``train.paths.initial_features``), the
initial fixed-point count, and the signs and sizes of the recurrent weight, input weight and readout
(counts with Wilson 95 % intervals of the learned fraction).

The figure: the srnn members' (w_t, b_t) on the srnn's latch landscape over (w, b) at T = 50 (the grid
holds u = 1 and the fixed readout out_w = 4, out_b = 0 of its base point; the members' own u and
readout moved), beside the loss at the real parameters and at the projection; then per cell each
member's batch loss along its path (cliff hits marked) and the learned fraction of aligned and
misaligned starts.

Outputs: latching-paths.h5 (the run, resumable), latching-paths-fates.csv (per member), -cliffs.csv
(every hit with its bifurcation), -bifurcations.csv (every bifurcation along every path: the recorded
segment, the map before and after), -features.csv (feature x fate table), -population.csv (per cell),
latching-paths-srnn-surface.h5, latching-paths.{pdf,png}, latching-paths-srnn.{pdf,png}.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NAME = "latching-paths"
DESCRIPTION = ("Latch at T = 50: every srnn / lstm / gru member's path on the landscape, its cliff hits, the "
               "bifurcations it crosses, its fate, and the init-alignment table")

T = 50
SUCCESS = 0.9


@dataclass(frozen=True)
class Config:
    members: int
    n: int
    epochs: int
    record: int  # record every this many steps
    dyn_every: int  # analyse the map at every this many recorded steps
    grid_points: int
    grid_n: int


CONFIGS = {"quick": Config(members=4, n=320, epochs=2, record=2, dyn_every=2, grid_points=15, grid_n=64),
           "default": Config(members=100, n=10000, epochs=5, record=25, dyn_every=1, grid_points=61, grid_n=500)}


def jobs(config: Config) -> list:
    from ..train import Member, TrainSpec
    from .latching import CELLS

    out = []
    for cell, options in CELLS.items():
        spec = TrainSpec.of(cell=cell, cell_options=tuple(options), task="latch", hidden=1, n=config.n,
                            epochs=config.epochs, batch=16, optimizer="adam-keras", readout="dense2", loss_clip=1e-7,
                            dtype="float32", record_steps=config.record)
        members = [Member(T=T, seed=1000 * T + r, data_seed=T, lr=1e-3, init="keras", protocol="stratified",
                          group=f"{cell}-T{T}", labels=(("repeat", r),)) for r in range(config.members)]
        out.append((spec, members))
    return out


def analyse(paths, config: Config) -> dict:
    """Fates, cliff hits beside bifurcations and the feature table of one cell's paths."""
    from ..train.paths import (CANDIDATE_INPUT, RECURRENT, CliffThresholds, bifurcation_rows, cliff_bifurcations,
                               cliff_hits, fate_rows, feature_table, initial_features, path_dynamics,
                               population_rows)

    cell = paths[0].spec["cell"]
    dyn = path_dynamics(paths, input=0.0, every=config.dyn_every)
    hits = []
    for m, p in enumerate(paths):
        hits += cliff_bifurcations(cliff_hits(p), m, dyn)
    feats = [initial_features(p, int(dyn.n_fixed[m, 0])) for m, p in enumerate(paths)]
    names = [n for n in ("alignment", "fixed points", RECURRENT[cell], CANDIDATE_INPUT[cell], "readout")
             if n in feats[0]]
    fates = fate_rows(paths, CliffThresholds())
    for m, row in enumerate(fates):
        row.update(cell=cell, alignment=feats[m].get("alignment", ""), initial_fixed_points=int(dyn.n_fixed[m, 0]),
                   final_fixed_points=int(dyn.n_fixed[m, -1]), bifurcations=int(dyn.bifurcations()[m].sum()))
    return {"cell": cell, "dyn": dyn, "hits": [dict(h, cell=cell) for h in hits], "fates": fates,
            "bifurcations": [dict(r, cell=cell) for r in bifurcation_rows(paths, dyn)],
            "features": [dict(r, cell=cell) for r in feature_table(paths, feats, names)],
            "population": [dict(r, cell=cell) for r in population_rows(paths)]}


def run(out_dir, quick: bool = False, device: str = "auto", progress: bool | None = None) -> list[Path]:
    from ..spec import Axis, GridSpec
    from ..train.paths import load_paths
    from .common import grid_at
    from .report import train_jobs, write_csv

    config = CONFIGS["quick" if quick else "default"]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    q = "-quick" if quick else ""
    store = out / f"latching-paths{q}.h5"
    start = time.perf_counter()
    train_jobs(NAME, jobs(config), store, device, progress, compile=False)
    results = {}
    for spec, members in jobs(config):
        paths = load_paths(store, members[0].group, success=SUCCESS)
        results[spec.model.cell] = (paths, analyse(paths, config))
    grid = grid_at(GridSpec.of(cell="srnn", task="latch", T=(T,), x=Axis("w", -2.5, 3.0, config.grid_points),
                               y=Axis("b", -1.5, 1.5, config.grid_points), n=config.grid_n, fit="fixed"),
                   out / f"latching-paths-srnn-surface{q}.h5", device=device, progress=progress)
    written = [store, grid.path]
    for part in ("fates", "hits", "bifurcations", "features", "population"):
        rows = [r for _, a in results.values() for r in a[part]]
        name = "cliffs" if part == "hits" else part
        written.append(write_csv(out / f"latching-paths{q}-{name}.csv", rows or [{"none": ""}]))
    written += plot_srnn(grid.surface, results["srnn"][0], out, quick)
    written += plot_cells(results, out, quick, config)
    _print_report(results, time.perf_counter() - start)
    for p in written:
        print(f"  wrote {p}")
    return written


def plot_srnn(surface, paths, out: Path, quick: bool) -> list[Path]:
    from ..figures import use_style
    from ..figures.kinds import draw
    from ..figures.paths import add_paths
    from .common import save_pdf_png

    with use_style("paper"):
        fig = draw("contour", [surface], T=(T,))
        add_paths(fig, surface, paths, T)
        fig.axes[0].set_title(f"srnn members' (w, b), latch, T = {T}")
        return save_pdf_png(fig, out, f"latching-paths-srnn{'-quick' if quick else ''}", quick)


def plot_cells(results: dict, out: Path, quick: bool, config: Config) -> list[Path]:
    from ..figures import new_figure, use_style
    from ..figures.paths import FATE_COLOURS
    from .common import save_pdf_png

    with use_style("paper"):
        fig = new_figure("double", aspect=0.62)
        axes = fig.subplots(2, len(results), squeeze=False)
        for j, (cell, (paths, a)) in enumerate(results.items()):
            ax = axes[0, j]
            for p in paths:
                ax.plot(p.steps[:-1], p.loss, color=FATE_COLOURS[p.fate], linewidth=0.4, alpha=0.6)
            for h in a["hits"]:
                ax.plot([h["step"]], [h["loss_after"]], "x", color="k" if h["bifurcation"] else "tab:purple",
                        markersize=3)
            ax.set_yscale("log")
            pop = a["population"][0]
            ax.set_title(f"{cell}: {pop['learned']} learned, {pop['learned then lost']} lost,\n"
                         f"{pop['never learned']} never; {pop['hits']} cliff hits")  # two lines: a column's width
            ax.set_xlabel("optimiser step")
            ax = axes[1, j]
            rows = [r for r in a["features"] if r["feature"] in ("alignment", "fixed points")]
            y = np.arange(len(rows))
            rate = np.array([r["rate"] for r in rows])
            err = np.clip(np.array([[r["rate"] - r["ci_low"], r["ci_high"] - r["rate"]] for r in rows]).T, 0, None)
            ax.errorbar(rate, y, xerr=err, fmt="o", color="tab:blue", markersize=3, capsize=2)
            ax.set_yticks(y, [f"{r['level'].split('= ')[-1]}{' fixed pt.' if r['feature'] == 'fixed points' else ''} "
                              f"({r['learned']}/{r['n']})" for r in rows])
            ax.set_ylim(-0.7, len(rows) - 0.3)
            ax.set_xlim(-0.05, 1.05)
            ax.set_xlabel("fraction learned (95% CI)")
        axes[0, 0].set_ylabel("batch loss")
        axes[1, 0].set_ylabel("initial point")
        fig.suptitle(f"One-unit cells on latch, T = {T}: {config.members} members each, {config.epochs} epochs, "
                     f"stratified split\ngreen learned, orange learned then lost, red never learned; x cliff hit "
                     f"(black: at a bifurcation)")
        return save_pdf_png(fig, out, f"latching-paths{'-quick' if quick else ''}", quick)


def _print_report(results: dict, wall: float) -> None:
    print(f"{NAME}: {wall:.0f} s; latch at T = {T}, stratified split, success = final test accuracy > {SUCCESS:g}")
    for cell, (paths, a) in results.items():
        pop = a["population"][0]
        at_bif = sum(bool(h["bifurcation"]) for h in a["hits"])
        print(f"  {cell}: learned {pop['learned']}/{pop['members']} (rate {pop['rate']:.2f}, 95% CI "
              f"{pop['ci_low']:.2f}-{pop['ci_high']:.2f}), learned then lost {pop['learned then lost']}, never "
              f"{pop['never learned']}; {pop['hits']} cliff hits in {pop['members_hit']} members, {at_bif} at a "
              f"bifurcation")
        for r in a["features"]:
            if r["feature"] in ("alignment", "fixed points"):
                print(f"    {r['level']:<28} learned {r['learned']:>3}/{r['n']:<3} ({r['rate']:.2f}, "
                      f"{r['ci_low']:.2f}-{r['ci_high']:.2f})")
