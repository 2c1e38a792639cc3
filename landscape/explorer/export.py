"""The current view as a paper figure (matplotlib, ``landscape.figures``) from the same data the page
shows: the contour at the shown T, the fold overlays, the clicked point and the training paths, and,
after a click, the point's per-timestep gradient norms beside it. The HDF5 file behind the view is
the surface file itself (``compute.SurfaceView.path``)."""
from __future__ import annotations

import io

import numpy as np

from .state import OPTIMIZER_LABELS, ExploreState
from .views import PATH_COLOURS

FORMATS = ("png", "pdf")


def view_figure(state: ExploreState, view, curves=(), analysis=None, paths=None):
    """A matplotlib Figure of the view (one panel, or two after a click)."""
    from ..figures import (
        new_figure,
        overlay_basin,
        overlay_folds,
        overlay_trajectory,
        plot_contour,
    )

    surf = view.surface
    fig = new_figure("double", aspect=0.42 if analysis is not None else 0.75)
    ax = fig.add_subplot(1, 2 if analysis is not None else 1, 1)
    plot_contour(surf, ax=ax, T=state.t, scale=state.scale)
    axes = (surf.x_name, surf.y_name)
    for c in curves:
        if c.kind == "folds":
            overlay_folds(ax, surf.spec["cell"], axes=axes)
        else:
            overlay_basin(ax, surf.spec["cell"], float(surf.spec["task_params"]["x0"]), axes=axes)
    for name, p in (paths or {}).items():
        overlay_trajectory(ax, p.x, p.y, label=OPTIMIZER_LABELS[name], color=PATH_COLOURS[name], marker=".")
    if paths:
        ax.legend(loc="best", fontsize="small")
    if analysis is not None:
        right = fig.add_subplot(1, 2, 2)
        for name, norm in analysis.norms.items():
            right.semilogy(analysis.t, np.where(norm > 0, norm, np.nan), label=f"state {name}")
        right.set_xlabel("t")
        right.set_ylabel(f"||dL_{analysis.T}/ds_t||")
        right.set_title(f"at ({analysis.x:.4g}, {analysis.y:.4g})")
        right.legend(loc="best", fontsize="small")
    return fig


def figure_bytes(fig, fmt: str) -> bytes:
    """The figure written as png or pdf, in memory."""
    from ..errors import LandscapeError

    if fmt not in FORMATS:
        raise LandscapeError(f"unknown figure format {fmt!r}; choose from: {', '.join(FORMATS)}")
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=200 if fmt == "png" else None)
    return buf.getvalue()


def file_stem(state: ExploreState) -> str:
    """CELL-TASK-T{t}: the name of an exported file (a cell given as FILE.py:Class keeps its class name)."""
    cell = state.cell.rsplit(":", 1)[-1]
    task = state.task.rsplit(":", 1)[-1]
    return f"{cell}-{task}-T{state.t}"
