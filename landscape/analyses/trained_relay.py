"""Trained networks end to end: srnn, lstm and gru trained on the 8-unit bit relay, then for each
cell's best model the loss plane along its Hessian's top two eigenvectors at T = 10, 20, 40 and its
fixed points under the relay's constant inputs -1, 0, +1 (docs/reference.md §1: the thread's
"bit relay" is lost; ``relay`` is our reconstruction, see `landscape tasks`).

Training (``landscape.analyses.relay``'s protocol at one length): Keras 2 initialisers, hard-sigmoid
gates (GRU reset_before), Dense(2, softmax), Adam 1e-3 in Keras' form, batch 16, float32; stratified
protocol (shuffled stratified 80/20 split and a fresh test set); T = 10 (all three cells learn
it), N = 2000 sequences, 10 epochs, 5 repeats per cell (seeds 1000 T + r, data seed T: the same
members as the relay reproduction's at T = 10). Every repeat is then evaluated on 500 fresh
sequences (data seed 1) at T = 10, 20, 40 and at the odd lengths 11, 21, 41 next to them: a model
that keeps the bit in the phase of a period-2 oscillation is right at one parity and wrong at the
other. The best model of a cell: the highest final test accuracy, then the highest mean accuracy
over those six lengths, then the lowest test loss.

Planes (``landscape.grid`` with ``base_model=RUN.h5:GROUP:REPEAT``, ``directions="hessian"``,
readout fixed at the model's own): one grid per T, each along the top two eigenvectors of the
Hessian of the loss at that T (the same model, a different plane per T: the sharpest directions
at that length), a, b in [-0.3, 0.3] (unit directions: a Euclidean distance in parameter space;
the walls of the trained models lie 0.05 - 0.4 away), 41 x 41 points, the 500 sequences above.
The Hessian covers every parameter, the readout included. The summary compares the distance to
the nearest point of the plane at chance loss (ln 2) with what the quadratic model at the
minimum predicts, sqrt(2 (ln 2 - loss) / lambda_1).

Fixed points (``landscape.attractors``, what ``landscape fixedpoints`` computes): the best
model's map h -> step(h, x) at x = -1, 0, +1, from 512 starts per input (256 from the states of 200
relay sequences of T = 40, data seed 2, 256 random), classified stable / marginal (spectral radius
1 to 1e-6: a hard gate saturated exactly) / unstable; the map also run 1000 steps from the 256
visited starts (where it settles: fixed points, 2-cycles, or nowhere); drawn in the PCA plane of
those sequences' states with their paths.

Outputs (in out_dir; ``-quick`` in the names with --quick):
  trained-relay-train.h5 the training run (resumable); trained-relay-plane-CELL-TT.h5 the planes;
  trained-relay-fixedpoints-CELL.h5 the points; trained-relay-summary.csv one row per cell;
  trained-relay-planes.pdf/.png; trained-relay-fixedpoints.pdf/.png.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .latching import CELLS  # srnn, lstm, gru with Keras 2's gates, as in the latching experiment

NAME = "trained-relay"
DESCRIPTION = ("srnn / lstm / gru trained on the 8-unit bit relay: loss planes along the Hessian at T = 10, 20, 40 "
               "and fixed points at inputs -1, 0, +1")

TASK = "relay"
HIDDEN = 8
CHANCE = math.log(2.0)  # the loss of a readout that says 1/2


@dataclass(frozen=True)
class Config:
    train_T: int = 10
    repeats: int = 5
    n: int = 2000
    epochs: int = 10
    plane_Ts: tuple[int, ...] = (10, 20, 40)
    plane_n: int = 500
    plane_num: int = 41
    plane_span: float = 0.3
    plane_seed: int = 1
    fp_inputs: tuple[float, ...] = (-1.0, 0.0, 1.0)
    fp_T: int = 40
    fp_n: int = 200
    fp_starts: int = 512
    fp_seed: int = 2
    compile: bool = False


CONFIGS = {
    "quick": Config(train_T=5, repeats=2, n=200, epochs=3, plane_Ts=(5, 10), plane_n=64, plane_num=9, fp_T=8,
                    fp_n=24, fp_starts=32),
    "default": Config(),
}


def jobs(config: Config) -> list:
    """[(TrainSpec, [Member])]: one population per cell, ``repeats`` models at ``train_T``."""
    from ..train import Member, TrainSpec

    out = []
    T = config.train_T
    for cell, opts in CELLS.items():
        spec = TrainSpec.of(cell=cell, cell_options=opts, task=TASK, hidden=HIDDEN, n=config.n, epochs=config.epochs,
                         batch=16, optimizer="adam-keras", readout="dense2", loss_clip=1e-7, dtype="float32")
        members = [Member(T=T, seed=1000 * T + r, data_seed=T, init="keras", protocol="stratified",
                          group=f"{cell}-T{T}", labels=(("repeat", r),)) for r in range(config.repeats)]
        out.append((spec, members))
    return out


# ---------------------------------------------------------------------------------------------
# compute


def check_lengths(config: Config) -> tuple[int, ...]:
    """The lengths at which every repeat is evaluated: the planes' T and T + 1 (an odd length next
    to each even one: a model that keeps the bit in the phase of a period-2 oscillation is right
    at one parity and wrong at the other)."""
    return tuple(sorted(set(config.plane_Ts) | {T + 1 for T in config.plane_Ts}))


def best_members(rows: list[dict], metrics: dict, config: Config) -> dict[str, dict]:
    """cell -> the final-epoch row of its best repeat: the highest test accuracy at the training
    length, then the highest mean accuracy over ``check_lengths``, then the lowest test loss."""
    final = [r for r in rows if int(r["epoch"]) == config.epochs]
    out = {}
    for cell in CELLS:
        mine = [r for r in final if r["cell"] == cell]
        general = np.mean([metrics[cell][T][1] for T in check_lengths(config)], 0)  # (R,)
        out[cell] = min(mine, key=lambda r: (-float(r["test_acc"]), -float(general[int(r["repeat"])]),
                                             float(r["test_loss"]), int(r["repeat"])))
    return out


def model_metrics(problem, params: dict, T: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(loss (P,), accuracy (P,)) of P models (params name -> (P, *shape), the logistic readout
    out_w (P, H), out_b (P, 1)) on the task's sequences of length T (n, data seed): the cell's own
    step, read at T, the mean binary cross-entropy and the fraction of right signs of the logit."""
    from ..lazy import torch
    from ..readouts import logistic_loss, logits

    cell, H = problem.cell, problem.H
    data = problem.task.make((int(T),), int(n), int(seed))
    P = next(iter(params.values())).shape[0]
    state = tuple(s.expand(P, int(n), H) for s in cell.initial_state(params, int(n), H, data.h0))
    with torch.no_grad():
        for t in range(int(T)):
            state = cell.step(params, state, data.inputs[t].to(torch.float64))
        y = cell.output(state)  # (P, N, H)
        target = data.targets[int(T)].to(torch.float64)
        loss = logistic_loss(y, params["out_w"], params["out_b"], target)  # (P,)
        z = logits(y, params["out_w"], params["out_b"])  # (P, N)
        acc = ((z > 0).to(torch.float64) == target).to(torch.float64).mean(-1)
    return loss.numpy(), acc.numpy()


def resolve_member(ref: str):
    """The Problem of a trained member RUN.h5:GROUP:REPEAT on the relay, its readout the model's
    own (the Dense(2) head as a logistic readout)."""
    from ..attractors import resolve_fixed_point_model
    from ..model import ModelSpec

    problem, _ = resolve_fixed_point_model(ModelSpec(task=TASK), ref)
    return problem


def repeat_metrics(train_file: Path, cell: str, config: Config) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """T -> (loss (R,), accuracy (R,)) of every repeat of a cell on the planes' sequences (data
    seed ``plane_seed``) at every T of ``check_lengths``, all repeats as one population."""
    from ..lazy import torch

    group = f"{cell}-T{config.train_T}"
    problems = [resolve_member(f"{train_file}:{group}:{r}") for r in range(config.repeats)]
    params = {k: torch.stack([p.base[k] for p in problems]) for k in problems[0].base}  # (R, *shape)
    return {T: model_metrics(problems[0], params, T, config.plane_n, config.plane_seed) for T in check_lengths(config)}


def plane_spec(ref: str, T: int, config: Config):
    from ..spec import Axis, GridSpec

    s = float(config.plane_span)
    return GridSpec.of(base_model=ref, task=TASK, T=(int(T),), n=config.plane_n, seed=config.plane_seed, fit="fixed",
                    directions="hessian", x=Axis("a", -s, s, config.plane_num), y=Axis("b", -s, s, config.plane_num))


def compute(out_dir: Path, stem: str, config: Config, device: str = "auto", progress=None) -> dict:
    """Train, pick the best models, compute their planes and fixed points; returns
    {"rows", "best", "planes": {(cell, T): (GridResult, Plane)}, "fixed": {cell: FixedPointRun},
    "metrics": {cell: {T: (loss (R,), acc (R,))}}, "paths": [...]}."""
    import h5py

    from ..attractors import compute_fixed_points, search_options, write_fixed_points
    from ..directions import read_plane
    from .common import grid_at
    from .report import train_jobs

    train_file = out_dir / f"{stem}-train.h5"
    rows = train_jobs(NAME, jobs(config), train_file, device, progress, config.compile)
    metrics = {cell: repeat_metrics(train_file, cell, config) for cell in CELLS}
    best = best_members(rows, metrics, config)
    planes, fixed, paths = {}, {}, [train_file]
    for cell, row in best.items():
        ref = f"{train_file}:{row['group']}:{int(row['repeat'])}"
        for T in config.plane_Ts:
            path = out_dir / f"{stem}-plane-{cell}-T{T}.h5"
            result = grid_at(plane_spec(ref, T, config), path, device=device, progress=progress)
            with h5py.File(path, "r") as f:
                planes[cell, T] = (result, read_plane(f["plane"]))
            paths.append(path)
        run = compute_fixed_points(resolve_member(ref), np.asarray(config.fp_inputs, float), config.fp_T, config.fp_n,
                                   config.fp_seed, search_options(config.fp_starts, config.fp_seed), source=ref)
        fixed[cell] = run
        paths.append(write_fixed_points(run, out_dir / f"{stem}-fixedpoints-{cell}.h5"))
    return {"rows": rows, "best": best, "planes": planes, "fixed": fixed, "metrics": metrics, "paths": paths}


def chance_distance(surface) -> float:
    """The distance sqrt(a^2 + b^2) from the model (the plane's centre) to the nearest grid point
    whose loss is at least ln 2 (chance); NaN when the whole plane is below chance. The
    directions are unit vectors, so this is a Euclidean distance in parameter space."""
    A, B = np.meshgrid(surface.x, surface.y, indexing="ij")
    above = surface.loss[0] >= CHANCE
    return float(np.sqrt(A ** 2 + B ** 2)[above].min()) if above.any() else math.nan


def quadratic_distance(loss0: float, lam1: float) -> float:
    """How far the quadratic model at the minimum, loss0 + lam1 d^2 / 2 along the top
    eigenvector, has to go to reach ln 2: sqrt(2 (ln 2 - loss0) / lam1) (the nearest any
    direction gets, since lam1 is the largest curvature)."""
    if not (lam1 > 0 and loss0 < CHANCE):
        return math.nan
    return math.sqrt(2.0 * (CHANCE - loss0) / lam1)


def _x_name(x: float) -> str:
    return f"{x:+g}" if x != 0 else "0"


def summary_rows(data: dict, config: Config) -> list[dict]:
    """One row per cell. Training: best_repeat, its test_acc and test_loss at the training
    length, test_acc_mean / test_acc_min / success (> 0.9) over the repeats, parity_locked (the
    repeats right at every plane T and wrong at every T + 1). Per length T of ``check_lengths``:
    loss_T, acc_T of the best model (its loss is the plane's centre), acc_T_mean, acc_T_min over
    the repeats. Per plane T: hessian_l1_T, hessian_l2_T (the top two eigenvalues at the model),
    plane_min_T, plane_max_T, plane_chance_frac_T (the fraction of the plane at or above ln 2),
    chance_distance_T (to the nearest such point; NaN: none on the plane) and
    quadratic_distance_T (what the quadratic model predicts). Per input x: stable_x, unstable_x,
    marginal_x, slow_x, radii_stable_x (the stable points' spectral radii), radius_max_x,
    attractor_fixed_x and attractor_cycles_x (the distinct fixed points and 2-cycles the visited
    starts settle on), unsettled_x (starts that settle on neither)."""
    from ..attractors import counts, spectral_radius, stability

    final = [r for r in data["rows"] if int(r["epoch"]) == config.epochs]
    out = []
    for cell, row in data["best"].items():
        mine = [float(r["test_acc"]) for r in final if r["cell"] == cell]
        s = {"cell": cell, "cell_options": ";".join(f"{k}={v}" for k, v in CELLS[cell]), "train_T": config.train_T,
             "repeats": len(mine), "best_repeat": int(row["repeat"]), "test_acc": float(row["test_acc"]),
             "test_loss": float(row["test_loss"]), "test_acc_mean": float(np.mean(mine)),
             "test_acc_min": float(np.min(mine)), "success": float(np.mean(np.asarray(mine) > 0.9))}
        r = int(row["repeat"])
        acc_all = {T: data["metrics"][cell][T][1] for T in check_lengths(config)}  # T -> (R,)
        even, odd = config.plane_Ts, [T + 1 for T in config.plane_Ts]
        locked = np.all([acc_all[T] > 0.9 for T in even], 0) & np.all([acc_all[T] < 0.1 for T in odd], 0)
        s["parity_locked"] = int(locked.sum())
        for T in check_lengths(config):
            loss, acc = data["metrics"][cell][T]
            s.update({f"loss_T{T}": float(loss[r]), f"acc_T{T}": float(acc[r]),
                      f"acc_T{T}_mean": float(acc.mean()), f"acc_T{T}_min": float(acc.min())})
        for T in config.plane_Ts:
            result, plane = data["planes"][cell, T]
            grid = result.surface.loss[0]
            s.update({f"hessian_l1_T{T}": float(plane.values[0]), f"hessian_l2_T{T}": float(plane.values[1]),
                      f"hessian_method_T{T}": dict(plane.info).get("method", ""),
                      f"plane_min_T{T}": float(np.nanmin(grid)), f"plane_max_T{T}": float(np.nanmax(grid)),
                      f"plane_chance_frac_T{T}": float(np.mean(grid >= CHANCE)),
                      f"chance_distance_T{T}": chance_distance(result.surface),
                      f"quadratic_distance_T{T}": quadratic_distance(float(s[f"loss_T{T}"]), float(plane.values[0]))})
        run = data["fixed"][cell]
        rho, stab = spectral_radius(run.result), stability(run.result)
        for i, c in enumerate(counts(run)):
            x = _x_name(c["input"])
            k = int(run.result.count[i])
            radii = sorted(float(v) for v in rho[i, :k][stab[i, :k] == "stable"])
            s.update({f"stable_x{x}": c["stable"], f"unstable_x{x}": c["unstable"], f"marginal_x{x}": c["marginal"],
                      f"slow_x{x}": c["slow"], f"radii_stable_x{x}": ";".join(f"{v:.6g}" for v in radii),
                      f"radius_max_x{x}": c["radius_max"], f"attractor_fixed_x{x}": c["fixed_attractors"],
                      f"attractor_cycles_x{x}": c["cycles"], f"unsettled_x{x}": c["unsettled"]})
        out.append(s)
    return out


# ---------------------------------------------------------------------------------------------
# figures


def plot_planes(data: dict, config: Config, fig=None):
    """Rows: cells; columns: T. Each panel the loss over its own Hessian plane (a along the top
    eigenvector, b the second), the model at the centre (+), the chance loss ln 2 as a white
    line; ONE logarithmic colour scale for every panel, so that colours compare across cells and
    lengths. Returns the Figure."""
    from ..figures import new_figure
    from ..figures.loss import draw_field
    from ..figures.scales import add_colorbar, annotate, finite_range, make_norm, mask

    cells, Ts = list(CELLS), list(config.plane_Ts)
    if fig is None:
        fig = new_figure("double", height=1.9 * len(cells) + 0.45)
    masks = {key: mask(res.surface.loss[0], "log") for key, (res, _) in data["planes"].items()}
    lo, hi = finite_range(list(masks.values()), "log")
    norm = make_norm("log", lo, hi)
    axes = fig.subplots(len(cells), len(Ts), sharex=True, sharey=True, squeeze=False)
    for r, cell in enumerate(cells):
        for c, T in enumerate(Ts):
            ax = axes[r, c]
            res, plane = data["planes"][cell, T]
            s = res.surface
            X, Y = np.meshgrid(s.x, s.y, indexing="ij")
            filled = draw_field(ax, X, Y, masks[cell, T], norm, levels=25)
            loss = s.loss[0]
            if np.nanmin(loss) < CHANCE < np.nanmax(loss):
                ax.contour(X, Y, loss, levels=[CHANCE], colors="white", linewidths=1.0)
            ax.plot([0], [0], marker="+", color="white", markersize=7, mew=1.2)
            ax.text(0.03, 0.04, f"$\\lambda_1$ = {float(plane.values[0]):.3g}\n$\\lambda_2$ = {float(plane.values[1]):.3g}",
                    transform=ax.transAxes, fontsize="x-small", color="white", va="bottom",
                    bbox=dict(boxstyle="round,pad=0.25", facecolor="black", alpha=0.55, linewidth=0))
            annotate(ax, masks[cell, T].note())
            if r == 0:
                ax.set_title(f"T = {T}")
            if r == len(cells) - 1:
                ax.set_xlabel("a (top Hessian eigenvector)")
            if c == 0:
                ax.set_ylabel(f"{cell}\nb (second eigenvector)")
            ax.set_aspect("equal")
    add_colorbar(fig, filled, axes.ravel().tolist(), "loss (cross-entropy)", shrink=0.9, aspect=35)
    fig.suptitle(f"Best of {config.repeats} models trained at T = {config.train_T}: loss around it along its Hessian's "
                 f"top two eigenvectors at each T (white: ln 2, chance)", fontsize="small")
    return fig


def plot_fixed_points_figure(data: dict, config: Config, fig=None):
    """One row per cell: its best model's fixed points at each input, with the sequences' paths."""
    from ..figures.fixedpoints import plot_fixed_point_panels
    from ..figures import new_figure

    cells = list(CELLS)
    if fig is None:
        fig = new_figure("double", height=2.6 * len(cells))
    subs = fig.subfigures(len(cells), 1)
    for sub, cell in zip(np.atleast_1d(subs), cells):
        run = data["fixed"][cell]
        plot_fixed_point_panels(run, fig=sub, title=f"{run.problem.cell.describe()}: best model "
                                f"(repeat {int(data['best'][cell]['repeat'])}), {config.fp_n} relay sequences "
                                f"of T = {config.fp_T}")
    return fig


# ---------------------------------------------------------------------------------------------
# the run


def verdict(summary: list[dict], config: Config) -> list[str]:
    """What the numbers say about the thread's claim (GRU better on the relay, SRNN and LSTM
    equally bad), as printed lines."""
    by = {r["cell"]: r for r in summary}
    lengths = check_lengths(config)
    lines = [f"trained at T = {config.train_T}: mean test accuracy over {config.repeats} repeats "
             + ", ".join(f"{c} {by[c]['test_acc_mean']:.3f}" for c in by) + "; success (> 0.9) "
             + ", ".join(f"{c} {by[c]['success']:.2f}" for c in by)]
    for T in lengths:
        line = (f"at T = {T}: mean (min) accuracy of the T = {config.train_T} models "
                + ", ".join(f"{c} {by[c][f'acc_T{T}_mean']:.3f} ({by[c][f'acc_T{T}_min']:.2f})" for c in by))
        lines.append(line)
        if T in config.plane_Ts:
            lines.append(f"  best models at T = {T}: top Hessian eigenvalue "
                         + ", ".join(f"{c} {by[c][f'hessian_l1_T{T}']:.3g}" for c in by)
                         + "; distance to the chance loss on the plane (what the quadratic model says) "
                         + ", ".join(f"{c} {by[c][f'chance_distance_T{T}']:.3g} "
                                     f"({by[c][f'quadratic_distance_T{T}']:.3g})" for c in by))
    lines.append("repeats right at even and wrong at odd lengths (the bit in the phase of a 2-cycle): "
                 + ", ".join(f"{c} {by[c]['parity_locked']}" for c in by))
    worst = {c: min(by[c][f"acc_T{T}_mean"] for T in lengths) for c in by}
    learned = any(by[c]["success"] > 0 for c in by)
    gru_better = all(worst["gru"] > worst[c] + 0.05 for c in by if c != "gru")
    others_bad = all(worst[c] < 0.9 for c in by if c != "gru")
    alike = abs(worst["srnn"] - worst["lstm"]) <= 0.05
    if not learned:
        word = f"undecided: no cell learned the relay at T = {config.train_T} (a --quick run is too short to train)"
    elif gru_better and others_bad and alike:
        word = "supported"
    else:
        word = "not supported"
    lines.append("the thread: 'GRU did better on task 2, SRNN and LSTM equally bad'. Here: " + word
                 + f" (lowest mean accuracy over T = {', '.join(map(str, lengths))}: "
                 + ", ".join(f"{c} {worst[c]:.3f}" for c in by) + ")")
    return lines


def run(out_dir, quick: bool = False, device: str = "auto", progress: bool | None = None) -> list[Path]:
    from ..figures import use_style
    from .common import save_pdf_png
    from .report import write_csv

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{NAME}-quick" if quick else NAME
    config = CONFIGS["quick" if quick else "default"]
    start = time.perf_counter()
    data = compute(out, stem, config, device, progress)
    summary = summary_rows(data, config)
    paths = list(data["paths"]) + [write_csv(out / f"{stem}-summary.csv", summary)]
    with use_style("paper"):
        paths += save_pdf_png(plot_planes(data, config), out, f"{stem}-planes", quick)
        paths += save_pdf_png(plot_fixed_points_figure(data, config), out, f"{stem}-fixedpoints", quick)
    print(f"{NAME}: {time.perf_counter() - start:.0f} s ({'quick' if quick else 'default'})")
    for line in verdict(summary, config):
        print(f"  {line}")
    for row in summary:
        print(f"  {row['cell']} (best repeat {row['best_repeat']}): fixed points, and where {config.fp_starts // 2} "
              f"visited states settle in 1000 steps")
        for x in map(_x_name, config.fp_inputs):
            print(f"    x = {x}: {row[f'stable_x{x}']} stable (radii {row[f'radii_stable_x{x}'] or '-'}), "
                  f"{row[f'unstable_x{x}']} unstable, {row[f'marginal_x{x}']} marginal, {row[f'slow_x{x}']} slow; "
                  f"settle on {row[f'attractor_fixed_x{x}']} fixed point(s) and {row[f'attractor_cycles_x{x}']} "
                  f"2-cycle(s), {row[f'unsettled_x{x}']} unsettled")
    for path in paths:
        print(f"  wrote {path}")
    return paths
