"""One figure of a named kind from stored surfaces, with overlays: what `landscape plot` draws.

``draw(kind, surfaces, ...) -> Figure`` checks the options against the kind (one T or several,
one file or several, 2-D or 3-D) and raises LandscapeError with one clear line otherwise.
"""
from __future__ import annotations

from typing import Sequence

from .. import dynamics
from ..errors import LandscapeError
from .gradients import plot_curvature, plot_gradnorm_pair, plot_quiver
from .loss import plot_compare, plot_contour, plot_panels, plot_slices, plot_surface, plot_wireframe
from .overlays import overlay_basin, overlay_folds
from .scales import check_scale, pick_T

KIND_NAMES = ("contour", "surface", "wireframe", "panels", "slices", "compare", "gradnorm", "quiver",
              "curvature")
ONE_T = ("contour", "surface", "wireframe", "quiver", "curvature")
THREE_D = ("surface", "wireframe")
DOUBLE_WIDTH = ("panels", "compare", "gradnorm", "curvature")
NEEDS = {"gradnorm": "grad_norm_t", "quiver": "grad", "curvature": "hessian_eigvals"}


def check_kind(kind: str) -> str:
    if kind not in KIND_NAMES:
        raise LandscapeError(f"unknown kind {kind!r}; choose from: {', '.join(KIND_NAMES)}")
    return kind


def draw(kind: str, surfaces: Sequence, T: Sequence[int] | None = None, at=None, scale="linear",
         width=None, elev: float | None = None, azim: float | None = None, folds: bool = False,
         basin: float | None = None, title: str | None = None):
    """The Figure of ``kind`` for ``surfaces`` (one, or several for 'compare').

    T: the lengths (one for contour, surface, wireframe, quiver, curvature; default the largest;
    panels/slices default to all, compare to the largest common one); at: 'w=5' for slices and
    gradnorm; folds / basin (x0): overlay the fold curves / the basin boundary of x0 on the 2-D
    (w, b) plots of srnn and pascanu.
    """
    kind = check_kind(kind)
    scale = check_scale(scale)
    if not surfaces:
        raise LandscapeError("no surface file given")
    if kind != "compare" and len(surfaces) > 1:
        raise LandscapeError(f"--kind {kind} plots one file; got {len(surfaces)} (only compare takes several)")
    if T is not None and kind in ONE_T and len(T) > 1:
        raise LandscapeError(f"--kind {kind} shows one T; got {', '.join(map(str, T))}")
    if (folds or basin is not None) and kind in THREE_D + ("slices", "gradnorm"):
        raise LandscapeError(f"--folds and --basin draw on 2-D (w, b) plots: contour, panels, compare, "
                             f"quiver, curvature; not {kind}")
    if at is not None and kind not in ("slices", "gradnorm"):
        raise LandscapeError(f"--at applies to slices and gradnorm, not {kind}")
    s = surfaces[0]
    if kind in NEEDS:
        from .gradients import field

        field(s, NEEDS[kind])  # one line naming the missing field
    for surface in surfaces:  # every requested T must be in every file
        for t in T or ():
            pick_T(surface, t)
    one_T = T[0] if T else None
    width = width or ("double" if kind in DOUBLE_WIDTH else "single")
    view = {k: v for k, v in (("elev", elev), ("azim", azim)) if v is not None}
    if view and kind not in THREE_D:
        raise LandscapeError(f"--elev and --azim set the view of 3-D plots (surface, wireframe), not {kind}")

    if kind == "contour":
        fig, axes = _single(plot_contour(s, T=one_T, scale=scale, width=width))
    elif kind == "surface":
        fig, axes = _single(plot_surface(s, T=one_T, scale=scale, width=width, **view))
    elif kind == "wireframe":
        fig, axes = _single(plot_wireframe(s, T=one_T, scale=scale, width=width, **view))
    elif kind == "quiver":
        fig, axes = _single(plot_quiver(s, T=one_T, scale=scale, width=width))
    elif kind == "slices":
        at = at if at is not None else f"{s.x_name}={float(s.x[len(s.x) // 2])!r}"
        fig, axes = _single(plot_slices(s, at=at, Ts=T, scale=scale, width=width))
    elif kind == "gradnorm":
        fig = plot_gradnorm_pair(s, at=at, width=width)
        axes = []
    elif kind == "panels":
        picks = T if T is not None else None
        fig = plot_panels(s, Ts=picks, scale=scale, width=width)
        axes = fig.axes[:len(picks) if picks else len(s.T)]
    elif kind == "curvature":
        fig = plot_curvature(s, T=one_T, width=width)
        axes = fig.axes[:2]
    else:  # compare
        fig = plot_compare(surfaces, Ts=T, scale=scale, width=width)
        axes = fig.axes[:len(surfaces) * (len(T) if T else 1)]
    if folds or basin is not None:
        owners = [surfaces[n % len(surfaces)] for n in range(len(axes))]  # compare: row-major axes
        _overlay(axes, owners, folds, basin)
    if title:
        fig.suptitle(title)
    return fig


def _single(ax):
    return ax.figure, [ax]


def _overlay(axes, surfaces, folds: bool, basin: float | None) -> None:
    """Fold curves and basin boundaries on every axes (surfaces[n] drawn on axes[n]) whose surface is
    srnn or pascanu over (w, b)."""
    drawn = 0
    for ax, s in zip(axes, surfaces):
        cell = (s.spec or {}).get("cell")
        if cell not in dynamics.DYNAMICS_CELLS or {s.x_name, s.y_name} != {"w", "b"}:
            continue
        names = (s.x_name, s.y_name)
        if folds:
            overlay_folds(ax, cell, axes=names, label="folds" if drawn == 0 else None)
        if basin is not None:
            overlay_basin(ax, cell, basin, axes=names,
                          label=f"basin boundary, x0 = {basin:g}" if drawn == 0 else None)
        drawn += 1
    if not drawn:
        cells = sorted({str((s.spec or {}).get("cell")) for s in surfaces})
        raise LandscapeError(f"--folds/--basin need a surface of srnn or pascanu over (w, b); got "
                             f"{', '.join(cells)} over ({surfaces[0].x_name}, {surfaces[0].y_name})")
    axes[0].legend(loc="upper right", frameon=True, facecolor="white", edgecolor="none", framealpha=0.85)
