"""Training paths on loss landscapes.

1. Pascanu, Mikolov & Bengio 2013, Fig. 6 (docs/reference.md §2): on the error surface of the one-unit
   sigmoid map x_t = w sigmoid(x_{t-1}) + b (x_0 = 0.5, E_50 = (sigmoid(x_50) - 0.7)^2, cell
   ``pascanu``, task ``target``, w in [4.5, 5.5] x b in [-2.9, -1.9]), plain gradient descent
   takes small steps down the valley to the foot of the wall and is then thrown far off the plot
   by one huge gradient; the same descent with the gradient rescaled to norm <= c (Algorithm 1)
   takes a bounded step at the wall and lands back in the valley. The paper gives no start point,
   learning rate or threshold; this module uses START, LR and CLIP below (the learning rate was
   picked from a scan of 0.05..1 so that the fourth plain step lands on the wall's face), and
   writes them into the output file and the caption.

2. srnn and lstm on their latch landscapes (task latch, T = 50, readout fixed at the base point
   out_w = 4, out_b = 0): each cell's default axes (srnn w x b, lstm b_f x w_z); only those two
   parameters train, every other one stays at the base point, so every step lies in the plotted
   plane and the drawn surface is exactly the one being descended (full-batch training on the
   grid's own sequences: same task, n and data seed). Plain gradient descent and Adam from three
   starts each.

Outputs: fig6-trajectories.csv (every step of every path: figure, cell, optimizer, path, step,
x, y, loss, grad_norm, clip_coef), fig6-surface.h5, latch-srnn.h5, latch-lstm.h5 (the surfaces),
pascanu-fig6-trajectories.pdf/.png, latch-trajectories.pdf/.png.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

NAME = "pascanu-fig6-trajectories"
DESCRIPTION = ("Training paths: Pascanu et al. 2013 Fig. 6 (plain vs clipped gradient descent at the wall), "
               "and srnn vs lstm descending their latch landscapes")

# Pascanu Fig. 6
W_RANGE, B_RANGE, T_PASCANU = (4.5, 5.5), (-2.9, -1.9), 50
START = (4.8, -2.15)  # (w, b) in the valley, above the wall
LR = 0.645  # plain gradient descent; its 4th step lands on the wall's face
CLIP = 0.4  # gradient-norm threshold of the clipped path (its steps are at most LR * CLIP = 0.26)
STEPS = 8

# latch landscapes
LATCH_T = 50
LATCH = {
    "srnn": dict(axes=("w", "b"), x=(-1.0, 3.0), y=(-1.5, 1.5), starts=((1.0, 0.3), (1.4, 0.1), (2.2, 1.0))),
    "lstm": dict(axes=("b_f", "w_z"), x=(-4.0, 6.0), y=(-4.0, 6.0), starts=((0.0, 0.0), (-1.0, 4.5), (3.0, 0.5))),
}
OPTIMIZERS = {"gradient descent": dict(optimizer="sgd", lr=0.3), "Adam": dict(optimizer="adam", lr=0.05)}
SIZES = {False: dict(points=201, latch_points=101, n=500, steps=300),
         True: dict(points=31, latch_points=15, n=32, steps=10)}


def pascanu_paths(steps: int = STEPS, start=START, lr: float = LR, clip: float = CLIP) -> dict:
    """Plain and clipped gradient descent on E_50 from ``start``: {"plain"|"clipped": dict of
    arrays w, b (steps + 1,), loss, grad_norm, clip_coef (steps,)}."""
    from ..train import Member, TrainSpec, train_population

    spec = TrainSpec.of(cell="pascanu", task="target", n=1, batch=1, epochs=steps, optimizer="sgd",
                     trainable=("w", "b"), record_steps=True, dtype="float64")
    members = [Member(T=T_PASCANU, init="base", set=(("w", start[0]), ("b", start[1])), lr=lr, clip=c,
                      protocol="all") for c in (None, clip)]
    r = train_population(spec, members, device="cpu", progress=False)
    out = {}
    for p, name in enumerate(("plain", "clipped")):
        out[name] = {"x": r.step_params["w"][:, p, 0, 0], "y": r.step_params["b"][:, p, 0],
                     "loss": r.step_metrics["loss"][:, p], "grad_norm": r.step_metrics["grad_norm"][:, p],
                     "clip_coef": r.step_metrics["clip_coef"][:, p]}
    return out


def latch_paths(cell: str, n: int, steps: int) -> dict:
    """Full-batch training of the two axis parameters of ``cell`` on the latch grid's data, from
    each start, with each optimiser: {(optimizer, k): arrays x, y (steps + 1,), loss (steps,)}."""
    from ..train import Member, TrainSpec, train_population

    cfg = LATCH[cell]
    names = cfg["axes"]
    out = {}
    for label, opt in OPTIMIZERS.items():
        spec = TrainSpec.of(cell=cell, task="latch", n=n, batch=n, epochs=steps, optimizer=opt["optimizer"],
                         readout="logistic", trainable=names, record_steps=True, dtype="float64")
        members = [Member(T=LATCH_T, init="base", set=((names[0], a), (names[1], b)), lr=opt["lr"],
                          protocol="all", data_seed=0) for a, b in cfg["starts"]]
        r = train_population(spec, members, device="cpu", progress=False)
        for k in range(len(members)):
            out[(label, k)] = {"x": r.step_params[names[0]][:, k].reshape(-1),
                               "y": r.step_params[names[1]][:, k].reshape(-1),
                               "loss": r.step_metrics["loss"][:, k], "grad_norm": r.step_metrics["grad_norm"][:, k],
                               "clip_coef": r.step_metrics["clip_coef"][:, k]}
    return out


def _surface_losses(cell: str, task: str, names, xs, ys, T: int, n: int) -> np.ndarray:
    """The loss at each (x, y) path point (the 3-D view needs the height of every point)."""
    import torch

    from .. import engine
    from ..resolved import resolve
    from ..spec import Axis, GridSpec

    r = resolve(GridSpec.of(cell=cell, task=task, T=(T,), x=Axis(names[0], -1, 1, 2), y=Axis(names[1], -1, 1, 2),
                         n=n, fit="fixed" if task != "target" else "auto"))
    vals = (torch.as_tensor(np.asarray(xs, dtype=float)), torch.as_tensor(np.asarray(ys, dtype=float)))
    params = engine.chunk_params(r.problem.base, r.refs, vals, torch.float64, torch.device("cpu"))
    data = r.problem.task.make(r.Ts, r.n, r.spec.seed).to(torch.float64, torch.device("cpu"))
    return engine.unroll_losses(r.problem, params, data, r.Ts)[0].numpy()


def _rows(figure, cell, paths, extra=None) -> list[dict]:
    rows = []
    for key, p in paths.items():
        optimizer, path = key if isinstance(key, tuple) else ("gradient descent", key)
        for s in range(len(p["x"])):
            rows.append({"figure": figure, "cell": cell, "optimizer": optimizer, "path": path, "step": s,
                         "x": float(p["x"][s]), "y": float(p["y"][s]),
                         "loss": float(p["loss"][s]) if s < len(p["loss"]) else "",
                         "grad_norm": float(p["grad_norm"][s]) if s < len(p["grad_norm"]) else "",
                         "clip_coef": float(p["clip_coef"][s]) if s < len(p["clip_coef"]) else "",
                         **(extra or {})})
    return rows


def run(out_dir, quick: bool = False, device: str = "auto", progress: bool | None = None) -> list[Path]:
    from .common import grid_at
    from ..spec import Axis, GridSpec
    from .report import write_csv

    size = SIZES[quick]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    q = "-quick" if quick else ""
    # 1. Pascanu Fig. 6
    pspec = GridSpec.of(cell="pascanu", task="target", T=(T_PASCANU,), x=Axis("w", *W_RANGE, size["points"]),
                     y=Axis("b", *B_RANGE, size["points"]))
    grids = [grid_at(pspec, out / f"fig6-surface{q}.h5", device=device, progress=progress)]
    ps = grids[0].surface
    pp = pascanu_paths()
    rows = _rows("pascanu-fig6", "pascanu", pp, {"lr": LR, "clip": ""})
    for r in rows:
        r["clip"] = CLIP if r["path"] == "clipped" else ""
    # 2. latch landscapes
    surfaces, lpaths = {}, {}
    for cell, cfg in LATCH.items():
        spec = GridSpec.of(cell=cell, task="latch", T=(LATCH_T,), x=Axis(cfg["axes"][0], *cfg["x"], size["latch_points"]),
                        y=Axis(cfg["axes"][1], *cfg["y"], size["latch_points"]), n=size["n"], fit="fixed")
        grids.append(grid_at(spec, out / f"latch-{cell}{q}.h5", device=device, progress=progress))
        surfaces[cell] = grids[-1].surface
        lpaths[cell] = latch_paths(cell, size["n"], size["steps"])
        for (label, k), p in lpaths[cell].items():
            rows += _rows("latch", cell, {(label, k): p}, {"lr": OPTIMIZERS[label]["lr"], "clip": ""})
    written = [g.path for g in grids] + [write_csv(out / f"fig6-trajectories{q}.csv", rows)]
    info = {"pascanu": {"start": START, "lr": LR, "clip": CLIP, "steps": STEPS, "T": T_PASCANU},
            "latch": {"T": LATCH_T, "n": size["n"], "steps": size["steps"], "optimizers": OPTIMIZERS,
                      "cells": {c: {"axes": v["axes"], "starts": v["starts"]} for c, v in LATCH.items()}}}
    (out / f"fig6-trajectories{q}.json").write_text(json.dumps(info, indent=1))
    written.append(out / f"fig6-trajectories{q}.json")
    written += plot_pascanu(ps, pp, out, quick)
    written += plot_latch(surfaces, lpaths, out, quick, size)
    plain, clipped = pp["plain"], pp["clipped"]
    j = int(np.argmax(plain["grad_norm"]))
    print(f"{NAME}: start (w, b) = {START}, lr {LR}, clip {CLIP}: plain GD reaches the wall at step {j} "
          f"(|g| = {plain['grad_norm'][j]:.3g}) and is thrown to ({plain['x'][j + 1]:.3g}, {plain['y'][j + 1]:.3g}); "
          f"clipped GD lands at ({clipped['x'][j + 1]:.3f}, {clipped['y'][j + 1]:.3f}), "
          f"loss {clipped['loss'][min(j + 1, len(clipped['loss']) - 1)]:.3g}")
    for cell in LATCH:
        for (label, k), p in lpaths[cell].items():
            print(f"  {cell} {label} path {k}: ({p['x'][0]:.2f}, {p['y'][0]:.2f}) -> ({p['x'][-1]:.2f}, {p['y'][-1]:.2f}), "
                  f"loss {p['loss'][0]:.3f} -> {p['loss'][-1]:.3f}")
    for p in written:
        print(f"  wrote {p}")
    return written


def _clip_segment(x0, y0, x1, y1, box):
    """The part of the segment (x0, y0) -> (x1, y1) inside box = (xlo, xhi, ylo, yhi)."""
    xlo, xhi, ylo, yhi = box
    t_hi = 1.0
    for p, d, lo, hi in ((x0, x1 - x0, xlo, xhi), (y0, y1 - y0, ylo, yhi)):
        if d > 0:
            t_hi = min(t_hi, (hi - p) / d)
        elif d < 0:
            t_hi = min(t_hi, (lo - p) / d)
    return x0 + t_hi * (x1 - x0), y0 + t_hi * (y1 - y0)


def _arc(x0, y0, z0, x1, y1, z1, height, num: int = 24):
    """A step drawn as an arc above the surface (as in the paper's figure): (x, y, z) arrays."""
    t = np.linspace(0.0, 1.0, num)
    return x0 + t * (x1 - x0), y0 + t * (y1 - y0), z0 + t * (z1 - z0) + height * 4 * t * (1 - t)


def plot_pascanu(s, pp, out: Path, quick: bool) -> list[Path]:
    from ..figures import new_figure, overlay_trajectory, plot_contour, plot_wireframe, use_style
    from .common import save_pdf_png

    plain, clipped = pp["plain"], pp["clipped"]
    j = int(np.argmax(plain["grad_norm"]))  # the step at the wall
    box = (W_RANGE[0], W_RANGE[1], B_RANGE[0], B_RANGE[1])
    with use_style("paper"):
        fig = new_figure("double", aspect=0.5, layout=None)
        ax3 = fig.add_axes([-0.03, 0.1, 0.56, 0.9], projection="3d")
        ax2 = fig.add_axes([0.64, 0.22, 0.26, 0.68])
        plot_wireframe(s, ax=ax3, T=T_PASCANU, lines=(13, 21), linewidth=0.45, title=False, elev=20.0, azim=-22.0)
        ax3.set_xlabel("value of w")
        ax3.set_ylabel("value of b")
        ax3.set_zlabel("error")
        zlim = ax3.get_zlim()
        for p, height, style in ((plain, 0.05, dict(color="tab:blue", linestyle="-", linewidth=1.3)),
                                 (clipped, 0.025, dict(color="tab:red", linestyle="--", linewidth=1.1))):
            xs, ys = p["x"], p["y"]
            z = _surface_losses("pascanu", "target", ("w", "b"), xs, ys, T_PASCANU, 1)
            last = j if p is plain else len(xs) - 1
            for k in range(last):
                ax3.plot(*_arc(xs[k], ys[k], z[k], xs[k + 1], ys[k + 1], z[k + 1], height), **style)
            if p is plain:  # the thrown step leaves the box through the top, toward its far landing point
                ex, ey = _clip_segment(xs[j], ys[j], xs[j + 1], ys[j + 1], box)
                t = np.linspace(0, 1, 24)
                ax3.plot(xs[j] + t * (ex - xs[j]), ys[j] + t * (ey - ys[j]),
                         z[j] + (zlim[1] - z[j]) * np.sqrt(t), **style)
            ax3.plot([xs[0]], [ys[0]], [z[0]], "o", color=style["color"], markersize=2.5)
        ax3.set_zlim(zlim)
        plot_contour(s, ax=ax2, T=T_PASCANU, title="the same, from above", colorbar=True)
        overlay_trajectory(ax2, clipped["x"], clipped["y"], color="tab:red", linestyle="--", linewidth=1.2,
                           label=f"gradient clipped at {CLIP:g}")
        overlay_trajectory(ax2, plain["x"][:j + 2], plain["y"][:j + 2], color="white", linewidth=0.9,
                           label="plain gradient descent")
        ax2.legend(loc="upper right", frameon=True, facecolor="white", edgecolor="none", framealpha=0.85)
        fig.text(0.5, 0.005, f"E$_{{50}}$ = ($\\sigma$(x$_{{50}}$) - 0.7)$^2$ of x$_t$ = w $\\sigma$(x$_{{t-1}}$) + b, "
                 f"x$_0$ = 0.5. Start (w, b) = ({START[0]:g}, {START[1]:g}), learning rate {LR:g}. Plain gradient "
                 f"descent (solid): step {j + 1} at the wall (|g| = {plain['grad_norm'][j]:.0f}) lands at "
                 f"(w, b) = ({plain['x'][j + 1]:.0f}, {plain['y'][j + 1]:.0f}).\nClipped (dashed): the gradient "
                 f"rescaled to norm {CLIP:g} when larger (Pascanu et al. Algorithm 1), so no step exceeds "
                 f"{LR * CLIP:.2f}; it lands back in the valley. Arcs mark single steps.",
                 ha="center", va="bottom", fontsize=5.5)
        return save_pdf_png(fig, out, "pascanu-fig6-trajectories" + ("-quick" if quick else ""), quick)


def plot_latch(surfaces, lpaths, out: Path, quick: bool, size) -> list[Path]:
    from ..figures import new_figure, overlay_trajectory, plot_contour, use_style
    from .common import save_pdf_png

    colours = ("white", "tab:red", "tab:cyan")
    with use_style("paper"):
        fig = new_figure("double", aspect=0.78)
        axes = fig.subplots(2, 2)
        for i, label in enumerate(OPTIMIZERS):
            for j, cell in enumerate(LATCH):
                ax = axes[i, j]
                plot_contour(surfaces[cell], ax=ax, T=LATCH_T, colorbar=True,
                             title=f"{cell}, {label} (lr {OPTIMIZERS[label]['lr']:g})")
                for k, c in enumerate(colours[:len(LATCH[cell]["starts"])]):
                    p = lpaths[cell][(label, k)]
                    overlay_trajectory(ax, p["x"], p["y"], color=c, linewidth=1.0)
        fig.suptitle(f"Training paths on the latch landscapes (T = {LATCH_T}, {size['n']} sequences, full batch, "
                     f"{size['steps']} steps from the dots).\nOnly the two plotted parameters train; the others and "
                     f"the readout (out_w = 4, out_b = 0) stay at the base point.")
        return save_pdf_png(fig, out, "latch-trajectories" + ("-quick" if quick else ""), quick)
