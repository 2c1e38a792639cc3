"""Pascanu, Mikolov & Bengio 2013, Fig. 6: the error surface of a one-unit sigmoid map.

x_t = w sigmoid(x_{t-1}) + b, x_0 = 0.5, no input; E_50 = (sigmoid(x_50) - 0.7)^2 over
w in [4.5, 5.5] x b in [-2.9, -1.9] (docs/reference.md §2), cell ``pascanu``, task ``target``.

Outputs (in OUT):

    fig6-surface.h5            the loss at T = 50 on a 201 x 201 grid (quick: 41 x 41)
    fig6-wireframe.pdf/.png    the paper's view: wireframe, elev 20, azim -22 (w in front-left,
                               b along the front, the error axis on the right)
    fig6-contour.pdf/.png      companion: contours with the fold curves (where an attractor is
                               born or dies) and the basin boundary of x_0 = 0.5 (the wall)

The training trajectories of the paper's figure (plain and clipped gradient descent) are added by
the training analysis; ``landscape.figures.overlay_trajectory`` draws them on either view.
The grid costs well under a second at any of these sizes (no input, one sequence).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

NAME = "pascanu-fig6"
DESCRIPTION = "Pascanu et al. 2013 Fig. 6: the wall in the error surface of a one-unit sigmoid map (T = 50)"

W_RANGE = (4.5, 5.5)
B_RANGE = (-2.9, -1.9)
T = 50
X0 = 0.5  # the task's initial state
POINTS = {False: 201, True: 41}  # grid points per axis: full, quick
VIEW = dict(elev=20.0, azim=-22.0)  # close to the paper's crop


def spec(quick: bool = False):
    from ..spec import Axis, GridSpec

    n = POINTS[quick]
    return GridSpec.of(cell="pascanu", task="target", T=(T,), x=Axis("w", *W_RANGE, n), y=Axis("b", *B_RANGE, n))


def wall(surface, k: int, w: float = 5.0) -> dict:
    """Where the loss jumps along b at fixed w (nearest grid row): the largest step between
    neighbouring grid points, and the plateau and valley on either side."""
    i = int(np.argmin(np.abs(surface.x - w)))
    row = surface.loss[k, i]  # (ny,)
    steps = np.abs(np.diff(row))
    j = int(np.nanargmax(steps))
    return {"w": float(surface.x[i]), "b": float(0.5 * (surface.y[j] + surface.y[j + 1])),
            "step": float(steps[j]), "low_side": float(row[j]), "high_side": float(row[j + 1]),
            "b_step": float(surface.y[1] - surface.y[0])}


def run(out_dir, quick: bool = False, device: str = "auto", progress: bool | None = None) -> list[Path]:
    from .. import dynamics
    from ..figures import (overlay_basin, overlay_folds, plot_contour, plot_wireframe, use_style)
    from .common import grid_at, save_pdf_png
    from ..figures.scales import pick_T

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = grid_at(spec(quick), out / "fig6-surface.h5", device=device, progress=progress)
    s = result.surface
    k, _ = pick_T(s, T)
    written = [result.path]
    with use_style("paper"):
        ax = plot_wireframe(s, T=T, lines=(13, 21), linewidth=0.6, title=False, **VIEW)
        ax.set_xlabel("value of w")
        ax.set_ylabel("value of b")
        ax.set_zlabel("error")
        ax.set_zticks([0.05, 0.10, 0.15, 0.20, 0.25, 0.30, 0.35])
        ax.set_xticks([4.6, 4.8, 5.0, 5.2, 5.4])
        ax.set_yticks([-2.8, -2.6, -2.4, -2.2, -2.0])
        written += save_pdf_png(ax.figure, out, "fig6-wireframe", quick)

        ax = plot_contour(s, T=T, title=f"pascanu on target: E$_{{{T}}}$ = ($\\sigma(x_{{{T}}})$ - 0.7)$^2$")
        overlay_folds(ax, "pascanu", label="folds (b$_1$, b$_2$)")
        overlay_basin(ax, "pascanu", X0, label=f"basin boundary of x$_0$ = {X0:g}")
        ax.legend(loc="upper right", frameon=True, facecolor="white", edgecolor="none", framealpha=0.85)
        written += save_pdf_png(ax.figure, out, "fig6-contour", quick)

    wl = wall(s, k)
    folds = dynamics.fold_points("pascanu", wl["w"])
    boundary = float(dynamics.basin_boundary("pascanu", X0, [wl["w"]]).b[0])
    print(f"{NAME}: T = {T}, {len(s.x)} x {len(s.y)} grid, loss from {np.nanmin(s.loss[k]):.3g} (valley) "
          f"to {np.nanmax(s.loss[k]):.3g} (plateau)")
    print(f"  at w = {wl['w']:g} the loss jumps by {wl['step']:.3f} between neighbouring b "
          f"(step {wl['b_step']:.4f}) at b = {wl['b']:.3f}: {wl['low_side']:.3f} below, {wl['high_side']:.3g} "
          f"above; basin boundary of x0 = {X0}: b = {boundary:.3f}; folds b2 = {float(folds.b2):.3f}, "
          f"b1 = {float(folds.b1):.3f}")
    for path in written:
        print(f"  wrote {path}")
    return written
