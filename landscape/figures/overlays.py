"""Overlays on a (w, b) plot: fold curves and basin boundaries of the one-unit srnn / pascanu
maps (from ``landscape.dynamics``), and training trajectories; on any plot over the grid plane of
a surface computed with --dynamics, its bifurcation lines and lambda_T (from its stored dynamics
fields): on a 2-D plot as lines and labelled contours, on a 3-D plot as lines on the floor of the
box and as the colour of the surface (``lyapunov_colour``, passed to the 3-D plot when it draws).

Each overlay keeps the axes limits it found (a trajectory step thrown far off the plot leaves
the plot, as in Pascanu et al.'s Fig. 6, instead of rescaling it) and returns its artists.
``axes`` names the parameters on the horizontal and vertical axis: ('w', 'b') or ('b', 'w').
"""
from __future__ import annotations

import numpy as np
from matplotlib import patheffects

from .. import dynamics
from ..errors import LandscapeError
from .labels import param_label

FOLD_STYLE = dict(color="white", linestyle="--", linewidth=1.0,  # white with a dark edge: visible on
                  path_effects=[patheffects.withStroke(linewidth=2.0, foreground="0.15")])  # any colour map
BASIN_STYLE = dict(color="tab:red", linestyle=":", linewidth=1.2)
BIFURCATION_STYLE = dict(colors="magenta", linewidths=1.1, capstyle="round",  # a colour no loss map uses
                         path_effects=[patheffects.withStroke(linewidth=2.2, foreground="white")])
LYAPUNOV_STYLE = dict(colors="0.1", linewidths=0.6)
LYAPUNOV_CMAP = "RdBu_r"  # lambda_T as a colour: contracting blue, 0 white, expanding red
DYNAMICS_OVERLAYS = ("bifurcations", "lyapunov")  # `landscape plot --overlay`


def _orientation(ax, axes) -> bool:
    """True when w is on the horizontal axis. ``axes`` None: read the axis labels (the names as
    ``labels.param_label`` draws them, or plain)."""
    if axes is None:
        names = {param_label(n): n for n in ("w", "b")}
        axes = tuple(names.get(label, label) for label in (ax.get_xlabel(), ax.get_ylabel()))
        if set(axes) != {"w", "b"}:
            axes = ("w", "b")
    if tuple(axes) not in (("w", "b"), ("b", "w")):
        raise LandscapeError(f"fold curves and basin boundaries live in the (w, b) plane; this plot has "
                             f"axes {tuple(axes)}")
    return tuple(axes) == ("w", "b")


def _w_range(ax, w_first: bool) -> tuple[float, float]:
    lo, hi = ax.get_xlim() if w_first else ax.get_ylim()
    return min(lo, hi), max(lo, hi)


def _draw(ax, w, b, w_first: bool, **style):
    xs, ys = (w, b) if w_first else (b, w)
    return ax.plot(xs, ys, **style)


class _KeepLimits:
    def __init__(self, ax):
        self.ax = ax

    def __enter__(self):
        self.lims = self.ax.get_xlim(), self.ax.get_ylim()

    def __exit__(self, *exc):
        self.ax.set_xlim(self.lims[0])
        self.ax.set_ylim(self.lims[1])


def overlay_folds(ax, cell, axes=None, c: float = 0.0, num: int = 400, label: str | None = "folds",
                  **style) -> list:
    """The saddle-node (fold) curves of ``cell`` ('srnn' or 'pascanu') over the plotted w range.

    Between the two branches two attractors coexist. Nothing is drawn where the plotted w range
    lies below the cusp (w = 1 srnn, 4 pascanu). Returns the Line2D artists.
    """
    m = dynamics.one_unit_map(cell)
    w_first = _orientation(ax, axes)
    w_lo, w_hi = _w_range(ax, w_first)
    cusp = m.w_cusp
    if w_hi <= cusp:
        return []
    w = np.linspace(max(w_lo, cusp), w_hi, num)  # (num,)
    f = dynamics.fold_points(m, w, c)
    kw = {**FOLD_STYLE, **style}
    with _KeepLimits(ax):
        # one line through the cusp: upper branch (b2) reversed, then the lower one (b1)
        ww = np.concatenate([w[::-1], w])
        bb = np.concatenate([f.b2[::-1], f.b1])
        return _draw(ax, ww, bb, w_first, label=label, **kw)


def overlay_basin(ax, cell, x0: float, axes=None, c: float = 0.0, num: int = 400,
                  label: str | None = None, **style) -> list:
    """The basin boundary of the initial state x0: where x0 is the unstable fixed point, so that a
    small change of (w, b) across it sends x_t to the other attractor (the wall of the loss).
    Returns the Line2D artists."""
    m = dynamics.one_unit_map(cell)
    w_first = _orientation(ax, axes)
    w = np.linspace(*_w_range(ax, w_first), num)  # (num,)
    bb = dynamics.basin_boundary(m, x0, w, c)
    kw = {**BASIN_STYLE, **style}
    with _KeepLimits(ax):
        return _draw(ax, w, bb.b, w_first, label=label if label is not None else f"basin boundary of x0 = {x0:g}",
                     **kw)


def overlay_trajectory(ax, xs, ys, zs=None, label: str | None = None, color: str = "tab:blue",
                       linestyle: str = "-", marker: str | None = None, arrows: bool = True,
                       start: bool = True, linewidth: float = 1.3, keep_limits: bool = True, **style) -> list:
    """A path through parameter space (e.g. training steps): xs, ys (n,) in the plotted axes'
    units, zs (n,) on a 3-D axes. Arrow heads mark each step's direction; the start is a dot.

    Steps that leave the plotted window are drawn leaving it (limits are kept). Returns the artists.
    """
    xs, ys = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    if xs.shape != ys.shape or xs.ndim != 1 or (zs is not None and np.shape(zs) != xs.shape):
        raise LandscapeError(f"trajectory coordinates must be 1-D arrays of one length; got shapes "
                             f"{xs.shape}, {ys.shape}" + (f", {np.shape(zs)}" if zs is not None else ""))
    three_d = zs is not None
    lims = (ax.get_xlim(), ax.get_ylim()) + ((ax.get_zlim(),) if three_d else ())
    coords = (xs, ys) if not three_d else (xs, ys, np.asarray(zs, dtype=float))
    artists = ax.plot(*coords, color=color, linestyle=linestyle, marker=marker, linewidth=linewidth,
                      label=label, **style)
    if start and len(xs):
        artists += ax.plot(*[c[:1] for c in coords], "o", color=color, markersize=3)
    if arrows and len(xs) > 1 and not three_d:
        every = max(1, (len(xs) - 1) // 40)  # at most about 40 heads
        for k in range(0, len(xs) - 1, every):
            if (xs[k], ys[k]) == (xs[k + 1], ys[k + 1]):
                continue
            artists.append(ax.annotate("", xy=(xs[k + 1], ys[k + 1]), xytext=(xs[k], ys[k]),
                                       arrowprops=dict(arrowstyle="-|>", color=color, lw=0, shrinkA=0,
                                                       shrinkB=0, mutation_scale=7)))
    if keep_limits:
        ax.set_xlim(lims[0])
        ax.set_ylim(lims[1])
        if three_d:
            ax.set_zlim(lims[2])
    return artists


def dynamics_field(surface, name: str) -> np.ndarray:
    """A dynamics field of the surface (``landscape grid --dynamics``), or one LandscapeError."""
    fields = getattr(surface, "fields", {}) or {}
    if name not in fields:
        raise LandscapeError(f"{getattr(surface, 'path', 'the surface')} has no dynamics fields ({name!r}); "
                             f"compute it with `landscape grid ... --dynamics`")
    return np.asarray(fields[name])


def _x_first(ax, surface) -> bool:
    """True when the surface's x axis is the plot's horizontal one (read from the axis labels)."""
    return ax.get_ylabel() != surface.x_name or ax.get_xlabel() == surface.x_name


def overlay_bifurcations(ax, surface, label: str | None = "bifurcation lines", **style) -> list:
    """The bifurcation lines of a --dynamics surface: the faces between neighbouring grid points
    whose numbers of cycles of each period, or of stable ones, differ
    (``dynamics_map.stored_bifurcation_segments``). Returns the LineCollection (in a list)."""
    from matplotlib.collections import LineCollection

    from ..dynamics_map import stored_bifurcation_segments
    from ..store.format import PERIOD_FIELDS

    segments = stored_bifurcation_segments({n: dynamics_field(surface, n) for n in PERIOD_FIELDS},
                                           surface.x, surface.y)  # (L, 2, 2) in (x, y)
    if ax.name == "3d":
        return _floor_lines(ax, segments, label, style)
    if not _x_first(ax, surface):
        segments = segments[..., ::-1]
    with _KeepLimits(ax):
        lines = LineCollection(segments, label=label if len(segments) else None, **{**BIFURCATION_STYLE, **style})
        ax.add_collection(lines)
    return [lines]


def _floor_lines(ax, segments, label, style) -> list:
    """(L, 2, 2) segments in the 3-D axes' (x, y) plane drawn on the floor of its box (the lowest
    z shown): a map of where the counts change under the surface, not cut up by its walls."""
    from mpl_toolkits.mplot3d.art3d import Line3DCollection

    zlim = ax.get_zlim()
    floor = np.full(segments.shape[:2] + (1,), min(zlim))  # (L, 2, 1)
    kw = {**BIFURCATION_STYLE, **style}
    kw.pop("path_effects", None)  # a 3-D collection has no stroke outline
    with _KeepLimits(ax):
        lines = Line3DCollection(np.concatenate([segments, floor], -1), label=label if len(segments) else None, **kw)
        ax.add_collection3d(lines)
    ax.set_zlim(zlim)  # the floor stays the floor
    return [lines]


def lyapunov_colour(surface, T: int):
    """lambda_T of a --dynamics surface at length T as a ``ColourField`` for the 3-D plots: one
    diverging scale centred at 0 over every stored T (so the frames of an animation share it)."""
    from matplotlib import colors

    from .loss import ColourField
    from .scales import pick_T

    k, T = pick_T(surface, T)
    lam = dynamics_field(surface, "lyapunov")  # (nT, nx, ny)
    finite = np.abs(lam[np.isfinite(lam)])
    top = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    return ColourField(np.where(np.isfinite(lam[k]), lam[k], np.nan), LYAPUNOV_CMAP, colors.Normalize(-top, top),
                       f"lambda_T at T = {T}")


def overlay_lyapunov(ax, surface, T: int, levels: int = 6, label: str | None = "lambda_T", **style) -> list:
    """Contour lines of the largest finite-time Lyapunov exponent lambda_T of a --dynamics surface
    at length T, labelled (lambda_T = 0, where nearby states stop contracting, dashed). Returns the
    contour set (in a list; empty where lambda_T has no finite values)."""
    from matplotlib.ticker import MaxNLocator

    from .scales import pick_T

    k, _ = pick_T(surface, T)
    lam = dynamics_field(surface, "lyapunov")[k]  # (nx, ny)
    finite = lam[np.isfinite(lam)]
    if not finite.size or finite.min() == finite.max():
        return []
    Z = np.where(np.isfinite(lam), lam, np.nan)
    X, Y = np.meshgrid(surface.x, surface.y, indexing="ij")
    if not _x_first(ax, surface):
        X, Y = Y, X
    marks = MaxNLocator(levels).tick_values(finite.min(), finite.max())
    marks = marks[(marks > finite.min()) & (marks < finite.max())]
    if not marks.size:
        return []
    kw = {**LYAPUNOV_STYLE, "linestyles": ["--" if m == 0 else "-" for m in marks], **style}
    with _KeepLimits(ax):
        cs = ax.contour(X, Y, Z, levels=marks, **kw)
        ax.clabel(cs, fontsize="x-small", fmt="%g", inline=True)
    if label:
        ax.plot([], [], color=kw["colors"], linewidth=kw["linewidths"], label=label)
    return [cs]


def overlay_dynamics(axes, surfaces, Ts, overlay) -> None:
    """A --dynamics file's bifurcation lines and / or lambda_T contours (``overlay``: names of
    ``DYNAMICS_OVERLAYS``) on every axes: surfaces[n] at length Ts[n] on axes[n]; one legend.
    On 3-D axes the lines go on the floor of the box; lambda_T is the surface's colour there,
    given to the 3-D plot when it drew (``lyapunov_colour``)."""
    for n, (ax, s, T) in enumerate(zip(axes, surfaces, Ts)):
        if "lyapunov" in overlay and ax.name != "3d":
            overlay_lyapunov(ax, s, T, label="lambda_T" if n == 0 else None)
        if "bifurcations" in overlay:
            overlay_bifurcations(ax, s, label="bifurcation lines" if n == 0 else None)
    if axes[0].get_legend_handles_labels()[0]:  # a 3-D plot with only lambda_T (its colour) has none
        axes[0].legend(loc="upper right", frameon=True, facecolor="white", edgecolor="none", framealpha=0.85)


__all__ = ["DYNAMICS_OVERLAYS", "dynamics_field", "lyapunov_colour", "overlay_basin", "overlay_bifurcations",
           "overlay_dynamics", "overlay_folds", "overlay_lyapunov", "overlay_trajectory"]
