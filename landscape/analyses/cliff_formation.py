"""How the cliff forms as T grows (the Cross Validated asker's update, docs/reference.md §1), and how
the cliffs of different cells compare.

First the asker's model, Pascanu's map on the target task (x_t = w sigmoid(x_{t-1}) + b,
x_0 = 0.5, loss (sigmoid(x_T) - 0.7)^2) over w in [4.5, 5.5] x b in [-2.9, -1.9]: a 3 x 3 panel
for T in {1, 2, 3, 5, 7, 10, 30, 50, 100} on one colour scale (contours, and 3-D surfaces as
the asker drew them) and 1-D slices at w = 5. Then the same views for srnn, lstm and gru on the
latch task over each cell's default axes (``Cell.default_axes``), with the optimal
logistic readout at every point (the loss is ln 2 = 0.693 where the first input is forgotten).

Outputs (in OUT), for CELL in pascanu, srnn, lstm, gru:

    CELL-TASK.h5                      the losses at all nine T
    CELL-TASK-panels.pdf/.png         3 x 3 contours, shared colour scale (srnn: fold curves)
    CELL-TASK-slices.pdf/.png         1-D curves at a fixed first parameter (SLICES), all T
    pascanu-target-panels3d.pdf/.png  the 3 x 3 panel as 3-D surfaces (the asker's view; not
                                      with --quick, where it would be most of the time)
    cliff-slices-cells.pdf/.png       the four slices side by side
    cliff-steepness.pdf/.png          the sharpest step between neighbouring grid points, as a
                                      fraction of the surface's loss range, against T
    cliff-pascanu.html                the interactive page: 3-D and contour with a slider over T
                                      (needs plotly: pip install 'rnn-landscape[page]'; skipped without)
    cliff-latch-cells.html            srnn, lstm, gru on latch as linked panels, one slider
    cliff-pascanu.gif                 the contour across T, one frame per T (log colour scale)

Sizes (full / --quick): pascanu 201 x 201 / 31 x 31 (one sequence, under a second);
latch grids 51 x 51 with n = 500 sequences / 11 x 11 with n = 64. The latch grids dominate
the cost (the readout is fitted at every point and T by Newton's method); on a 2-core CPU the
full run takes a few minutes (see README.md for measured times).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

NAME = "cliff-formation"
DESCRIPTION = "the cliff forming as T grows: pascanu (target) then srnn, lstm, gru (latch), panels and slices"

TS = (1, 2, 3, 5, 7, 10, 30, 50, 100)
CELLS = (("pascanu", "target"), ("srnn", "latch"), ("lstm", "latch"), ("gru", "latch"))
# where each cell's slice is taken: a value of its first axis (pascanu as in the asker's update;
# srnn inside the bistable range w > 1; lstm at the learned forget bias of about 2 (docs/reference.md §1);
# gru at a neutral update gate)
SLICES = {"pascanu": ("w", 5.0), "srnn": ("w", 2.0), "lstm": ("b_f", 2.0), "gru": ("b_z", 0.0)}
SIZES = {  # (grid points per axis, sequences n): full, quick
    "target": {False: (201, 1), True: (31, 1)},
    "latch": {False: (51, 500), True: (11, 64)},
}


def spec(cell: str, task: str, quick: bool = False, Ts=TS):
    """The GridSpec of one cell's surface: the cell's default axes at this run's size."""
    from ..cells import cell_class
    from ..spec import Axis, GridSpec

    points, n = SIZES[task][quick]
    xa, ya = (Axis.parse(a) for a in cell_class(cell).default_axes)
    return GridSpec.of(cell=cell, task=task, T=tuple(Ts), n=n,
                    x=Axis(xa.name, xa.lo, xa.hi, points), y=Axis(ya.name, ya.lo, ya.hi, points))


def steepness(surface, points: int = 51) -> np.ndarray:
    """(nT,) the largest loss change between neighbouring grid points (along either axis) at each
    T, divided by the surface's loss range over all T: near 1 when one grid step crosses the whole
    range (a cliff), small on a smooth surface. The grid is first thinned to about ``points`` per
    axis, so that surfaces computed at different resolutions are measured with the same step."""
    sx = max(1, (len(surface.x) - 1) // (points - 1))
    sy = max(1, (len(surface.y) - 1) // (points - 1))
    L = surface.loss[:, ::sx, ::sy]
    L = np.where(np.isfinite(L), L, np.nan)  # (nT, nx', ny')
    span = np.nanmax(L) - np.nanmin(L)
    dx = np.nanmax(np.abs(np.diff(L, axis=1)), axis=(1, 2))
    dy = np.nanmax(np.abs(np.diff(L, axis=2)), axis=(1, 2))
    return np.maximum(dx, dy) / (span if span > 0 else 1.0)


def run(out_dir, quick: bool = False, device: str = "auto", progress: bool | None = None) -> list[Path]:
    from ..figures import new_figure, overlay_folds, plot_panels, plot_slices, use_style
    from .common import grid_and_say, save_pdf_png

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written, surfaces = [], {}
    for cell, task in CELLS:
        sp = spec(cell, task, quick)
        result = grid_and_say(NAME, sp, out / f"{cell}-{task}.h5", f"{cell} on {task}, {sp.x.name} x {sp.y.name}",
                              device, progress)
        s = surfaces[cell] = result.surface
        written.append(result.path)
        with use_style("paper"):
            fig = plot_panels(s, title=f"{cell} on {task}: the loss as T grows (one colour scale)")
            if cell == "srnn":
                for n, ax in enumerate(fig.axes[:len(s.T)]):
                    overlay_folds(ax, "srnn", axes=(s.x_name, s.y_name), label="folds" if n == 0 else None)
                fig.axes[0].legend(loc="lower left", frameon=True, facecolor="white", edgecolor="none")
            written += save_pdf_png(fig, out, f"{cell}-{task}-panels", quick)
            if cell == "pascanu" and not quick:  # nine 3-D axes: the slowest figure to draw
                fig = plot_panels(s, kind="surface", elev=20.0, azim=-22.0,
                                  title=f"{cell} on {task}: the loss as T grows")
                written += save_pdf_png(fig, out, f"{cell}-{task}-panels3d", quick)
            ax = plot_slices(s, at=SLICES[cell])
            written += save_pdf_png(ax.figure, out, f"{cell}-{task}-slices", quick)

    with use_style("paper"):
        fig = new_figure("double", aspect=0.3)
        axes = fig.subplots(1, len(CELLS))
        for ax, (cell, task) in zip(axes, CELLS):
            name, value = SLICES[cell]
            plot_slices(surfaces[cell], at=SLICES[cell], ax=ax, legend=False,
                        title=f"{cell} ({task}), {name} = {value:g}")
        axes[-1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5))
        written += save_pdf_png(fig, out, "cliff-slices-cells", quick)

        fig = new_figure("single", aspect=0.75)
        ax = fig.add_subplot()
        table = {}
        for cell, task in CELLS:
            s = surfaces[cell]
            table[cell] = steepness(s)
            ax.plot(s.T, table[cell], marker="o", markersize=2.5, label=f"{cell} ({task})")
        ax.set_xscale("log")
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("T")
        ax.set_ylabel("sharpest grid step / loss range")  # on a 51 x 51 grid for every cell
        ax.set_title("cliff sharpness against T")
        ax.legend(loc="lower right")
        written += save_pdf_png(fig, out, "cliff-steepness", quick)

    written += _moving_views(surfaces, out, quick)
    print("  sharpest step between neighbouring grid points / loss range (1 = a one-step cliff):")
    print("  " + "T".rjust(9) + "".join(f"{T:>7d}" for T in TS))
    for cell, values in table.items():
        print("  " + cell.rjust(9) + "".join(f"{v:7.2f}" for v in values))
    for path in written:
        print(f"  wrote {path}")
    return written


def _moving_views(surfaces, out: Path, quick: bool) -> list[Path]:
    """The interactive pages (when plotly is installed) and the animation of Pascanu's map."""
    from importlib.util import find_spec

    from ..figures.animation import write_animation

    written = [write_animation(surfaces["pascanu"], out / "cliff-pascanu.gif", log=True, folds=True, basin=0.5,
                               dpi=72.0 if quick else 150.0)]
    if find_spec("plotly") is None:
        print(f"{NAME}: plotly is not installed, so no interactive pages (pip install 'rnn-landscape[page]')")
        return written
    from ..figures.interactive import write_page

    written.append(write_page([surfaces["pascanu"]], out / "cliff-pascanu.html"))
    written.append(write_page([surfaces[c] for c in ("srnn", "lstm", "gru")], out / "cliff-latch-cells.html",
                              title="srnn, lstm, gru on latch: the loss as T grows"))
    return written
