"""Plots of the loss surface: contour, 3-D surface and wireframe, panels across T, 1-D slices,
and several surfaces side by side.

Orientation: ``loss[k, i, j]`` is the loss at T_k, x_i, y_j ("ij"). The x parameter is on the
horizontal axis and y on the vertical one; the (nx, ny) arrays are drawn with "ij" meshgrids
(contourf, plot_surface) or transposed (pcolormesh), never with an implicit row/column swap.
Every function takes a ``Surface`` (``landscape.load``) and draws; none computes a landscape.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
from matplotlib import colors
from matplotlib.ticker import MaxNLocator

from ..errors import LandscapeError
from .scales import (Masked, add_colorbar, annotate, check_scale, describe, finite_range, levels_for, make_norm,
                     mask, merge_notes, pick_T, pick_Ts, resolve_at)
from .labels import param_label
from .style import figure_of, new_figure

LOSS_CMAP = "viridis"


def loss_label(surface, T: int | None = None) -> str:
    return "loss" if T is None else f"loss at T = {T}"


def _meshgrid(surface):
    return np.meshgrid(surface.x, surface.y, indexing="ij")  # (nx, ny) each, like loss[k]


def draw_field(ax, X, Y, m: Masked, norm: colors.Normalize, levels: int = 21, lines: bool = True,
               cmap: str = LOSS_CMAP, line_color: str = "k", extend: str = "neither"):
    """Filled contours of a masked (nx, ny) field on "ij" meshgrids X, Y; contour lines on top.

    Masked points stay empty (the axes face shows through, hatched light grey), never clipped.
    extend: 'min', 'max' or 'both' fills values beyond the norm's range with the end colours (for
    a range capped on purpose, said on the figure by the caller). Returns the filled ContourSet.
    """
    lv = levels_for(norm, levels)
    if m.values.mask.any():
        ax.set_facecolor("0.88")
        ax.add_patch(_hatch(ax))
    filled = ax.contourf(X, Y, m.values, levels=lv, norm=norm, cmap=cmap, extend=extend)
    if lines:
        ax.contour(X, Y, m.values, levels=lv[::2], colors=line_color, linewidths=0.25, alpha=0.45)
    return filled


def _hatch(ax):
    from matplotlib.patches import Rectangle

    return Rectangle((0, 0), 1, 1, transform=ax.transAxes, fill=False, hatch="////", ec="0.7", lw=0,
                     zorder=-1)


def _label_axes(ax, surface, zlabel: str | None = None):
    ax.set_xlabel(param_label(surface.x_name))
    ax.set_ylabel(param_label(surface.y_name))
    if zlabel is not None:
        ax.set_zlabel(zlabel)


# ---------------------------------------------------------------------------------------------
# one surface, one T


def plot_contour(surface, ax=None, T: int | None = None, scale="linear", levels: int = 21,
                 lines: bool = True, cmap: str = LOSS_CMAP, vmin: float | None = None,
                 vmax: float | None = None, colorbar: bool = True, title: bool | str = True,
                 width="single"):
    """Filled contours (and contour lines) of the loss at length T (default: the largest).

    scale: 'linear', 'log' or 'symlog' colour scale. Non-finite values are masked and counted in
    a note on the axes. Returns the Axes.
    """
    scale = check_scale(scale)
    k, T = pick_T(surface, T)
    fig, ax = figure_of(ax, width)
    m = mask(surface.loss[k], scale)  # (nx, ny)
    lo, hi = finite_range([m], scale)
    norm = make_norm(scale, lo if vmin is None else vmin, hi if vmax is None else vmax, items=[m])
    X, Y = _meshgrid(surface)
    filled = draw_field(ax, X, Y, m, norm, levels, lines, cmap)
    _label_axes(ax, surface)
    if colorbar:
        add_colorbar(fig, filled, ax, loss_label(surface), shrink=0.95)
    if title:
        ax.set_title(title if isinstance(title, str) else f"{describe(surface)}, T = {T}".lstrip(", "))
    annotate(ax, m.note())
    return ax


def _surface_z(surface, k: int, scale: str):
    """(Z with NaN where masked, z label, Masked) for a 3-D plot; log scale plots log10(loss)."""
    m = mask(surface.loss[k], scale)
    if scale == "log":
        return np.log10(m.values.filled(np.nan)), "log10 loss", m
    if scale == "symlog":
        raise LandscapeError("a 3-D plot has no symlog z axis; use --log or a linear scale")
    return m.values.filled(np.nan), "loss", m


def _grid_lines(n: int, target: int) -> int:
    return max(2, min(n, target))


@dataclass(frozen=True)
class ColourField:
    """A field that colours a 3-D plot instead of its height (e.g. lambda_T, ``overlays.
    lyapunov_colour``): values (nx, ny) "ij" like loss[k], NaN drawn grey; its colour map, norm
    and colorbar label."""

    values: np.ndarray
    cmap: str
    norm: colors.Normalize
    label: str

    def rgba(self, v: np.ndarray) -> np.ndarray:
        """(..., 4) colours of values v (any shape); NaN grey."""
        from matplotlib import colormaps

        cm = colormaps[self.cmap].with_extremes(bad="0.6")
        return cm(self.norm(np.ma.masked_invalid(v)))

    def colorbar(self, ax) -> None:
        from matplotlib.cm import ScalarMappable

        add_colorbar(ax.figure, ScalarMappable(self.norm, self.cmap), ax, self.label, shrink=0.55, pad=0.22)


def plot_surface(surface, ax=None, T: int | None = None, scale="linear", elev: float | None = None,
                 azim: float | None = None, cmap: str = LOSS_CMAP, resolution: int = 80, zlim=None,
                 vmin: float | None = None, vmax: float | None = None, title: bool | str = True,
                 width="single", colour: ColourField | None = None):
    """The loss at T as a shaded 3-D surface (``resolution`` samples per axis at most), coloured
    by height (vmin/vmax fix the colour range, e.g. to share it between panels), or by
    ``colour`` (a field over the grid, with its colorbar).

    Masked points (+-inf, NaN) leave holes. Log scale: the z axis is log10(loss). elev, azim: the
    view in degrees; each one not given is ``view_from_low_side``'s (looking from the valley at the
    wall). Returns the Axes.
    """
    scale = check_scale(scale)
    k, T = pick_T(surface, T)
    fig, ax = figure_of(ax, width, aspect=0.85, projection="3d")
    Z, zlabel, m = _surface_z(surface, k, scale)
    elev, azim = view_from_low_side(surface, Z, elev, azim)
    X, Y = _meshgrid(surface)
    finite = Z[np.isfinite(Z)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    lo, hi = lo if vmin is None else vmin, hi if vmax is None else vmax
    rows = _samples(len(surface.x), resolution)
    cols = _samples(len(surface.y), resolution)
    sub = np.ix_(rows, cols)
    ax.add_collection3d(wall_faithful_mesh(X[sub], Y[sub], Z[sub], cmap, lo, hi,
                                           colour=None if colour is None else replace(colour, values=colour.values[sub])))
    if zlim is None and finite.size:
        ax.set_zlim(lo, hi)
    _finish_3d(ax, surface, zlabel, elev, azim, zlim, title, T, m)
    if colour is not None:
        colour.colorbar(ax)
    return ax


WALL_SPAN = 0.1  # a facet rising more than this fraction of the colour range is part of a wall
WALL_SHADE = 0.8  # a wall's facets are drawn this much darker than the top edge's colour


def wall_faithful_mesh(X, Y, Z, cmap: str, vmin: float, vmax: float, colour: ColourField | None = None):
    """A triangle mesh of the (nx, ny) field Z (NaN: holes) on "ij" meshgrids X, Y that draws a cliff
    as one wall. Each grid cell is split along the diagonal whose ends are closer in height, so no
    facet folds across the cliff; a facet that rises more than ``WALL_SPAN`` of the colour range takes
    the colour of its top edge, shaded, instead of its mean height (the mean alternates between 1/3 and
    2/3 of the step from one facet to the next, which drew the wall as vertical stripes). ``colour``:
    a ColourField over the same (nx, ny) points that colours each facet by its vertices' mean
    (walls shaded alike) instead of the height. Returns a Poly3DCollection for ``ax.add_collection3d``."""
    from matplotlib import colormaps
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    nx, ny = Z.shape
    idx = np.arange(nx * ny).reshape(nx, ny)
    a, b, c, d = (idx[:-1, :-1].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel(), idx[:-1, 1:].ravel())
    z = Z.ravel()
    with np.errstate(invalid="ignore"):
        along_ac = ~(np.abs(z[a] - z[c]) > np.abs(z[b] - z[d]))  # NaN: either diagonal will do
    first = np.where(along_ac[:, None], np.c_[a, b, c], np.c_[a, b, d])
    second = np.where(along_ac[:, None], np.c_[a, c, d], np.c_[b, c, d])
    tris = np.concatenate([first, second])  # (F, 3) vertex indices
    zt = z[tris]
    tris, zt = tris[np.isfinite(zt).all(1)], zt[np.isfinite(zt).all(1)]  # masked points leave holes
    verts = np.stack([X.ravel()[tris], Y.ravel()[tris], zt], axis=-1)  # (F, 3 vertices, xyz)
    steep = (zt.max(1) - zt.min(1)) > WALL_SPAN * max(vmax - vmin, np.finfo(float).tiny)
    if colour is None:
        shade = np.where(steep, zt.max(1), zt.mean(1))
        span = vmax - vmin if vmax > vmin else 1.0
        face = colormaps[cmap](np.clip((shade - vmin) / span, 0.0, 1.0))
    else:
        face = colour.rgba(colour.values.ravel()[tris].mean(1))  # (F, 4)
    face[steep, :3] *= WALL_SHADE
    return Poly3DCollection(verts, facecolors=face, linewidths=0, antialiased=False)


def _samples(n: int, target: int) -> np.ndarray:
    """At most ``target`` indices of 0..n-1, evenly spread, first and last included."""
    return np.unique(np.round(np.linspace(0, n - 1, _grid_lines(n, target))).astype(int))


def plot_wireframe(surface, ax=None, T: int | None = None, scale="linear", elev: float | None = None,
                   azim: float | None = None, lines: int | tuple[int, int] = 20, color: str = "k",
                   linewidth: float = 0.5, zlim=None, title: bool | str = True, width="single",
                   colour: ColourField | None = None):
    """The loss at T as a 3-D wireframe: ``lines`` wires per axis (each wire at full resolution
    along its length, so a wall stays sharp), in ``color`` or, with ``colour`` (a field over the
    grid), each piece of wire in the field's colour at its middle, with a colorbar. Masked points
    break the wires. elev, azim: as for ``plot_surface``. Returns the Axes."""
    scale = check_scale(scale)
    k, T = pick_T(surface, T)
    fig, ax = figure_of(ax, width, aspect=0.85, projection="3d")
    Z, zlabel, m = _surface_z(surface, k, scale)
    elev, azim = view_from_low_side(surface, Z, elev, azim)
    X, Y = _meshgrid(surface)
    nx_lines, ny_lines = (lines, lines) if np.isscalar(lines) else lines
    if colour is None:
        ax.plot_wireframe(X, Y, Z, rcount=_grid_lines(len(surface.x), nx_lines),
                          ccount=_grid_lines(len(surface.y), ny_lines), color=color, linewidth=linewidth)
    else:
        ax.add_collection3d(_coloured_wires(X, Y, Z, colour, _samples(len(surface.x), nx_lines),
                                            _samples(len(surface.y), ny_lines), linewidth))
    _finish_3d(ax, surface, zlabel, elev, azim, zlim, title, T, m)
    if colour is not None:
        colour.colorbar(ax)
    return ax


def _coloured_wires(X, Y, Z, colour: ColourField, rows, cols, linewidth: float):
    """The wires of a wireframe at grid rows ``rows`` (along y) and columns ``cols`` (along x) as
    pieces between neighbouring grid points, each coloured by ``colour`` at its middle; pieces
    touching a masked point are left out. Returns a Line3DCollection."""
    from mpl_toolkits.mplot3d.art3d import Line3DCollection

    P = np.stack([X, Y, Z], axis=-1)  # (nx, ny, 3)
    C = np.asarray(colour.values, dtype=float)  # (nx, ny)
    along_y = (P[rows, :-1], P[rows, 1:], 0.5 * (C[rows, :-1] + C[rows, 1:]))  # (len(rows), ny - 1, ...)
    along_x = (P[:-1, cols], P[1:, cols], 0.5 * (C[:-1, cols] + C[1:, cols]))  # (nx - 1, len(cols), ...)
    a, b, c = (np.concatenate([u.reshape(-1, *u.shape[2:]) for u in pair]) for pair in zip(along_y, along_x))
    keep = np.isfinite(a).all(1) & np.isfinite(b).all(1)
    return Line3DCollection(np.stack([a, b], 1)[keep], colors=colour.rgba(c[keep]), linewidths=linewidth)


def view_from_low_side(surface, Z, elev: float | None = None, azim: float | None = None,
                       low: float = 0.25, min_offset: float = 35.0) -> tuple[float, float]:
    """(elev, azim) of a 3-D view of Z (nx, ny; NaN masked) that puts its low region in front.

    The viewer stands on the side of the grid where the lowest quarter of the z range lies (the
    direction from the grid's centre to that region's centroid, in axes fractions), so the valley
    floor is not hidden behind the plateau and the wall rises behind it, seen face on. The azimuth
    keeps ``min_offset`` degrees from the axes' directions (an axis seen end-on squeezes its
    ticks); when the low region has no side (a bowl in the middle, a flat field) the azimuth is
    matplotlib's -60. elev defaults to 35. Values given are kept.
    """
    elev = 35.0 if elev is None else elev
    if azim is not None:
        return elev, azim
    finite = np.isfinite(Z)
    azim = -60.0
    if finite.any():
        lo, hi = float(Z[finite].min()), float(Z[finite].max())
        X, Y = _meshgrid(surface)
        u = (X - 0.5 * (surface.x[0] + surface.x[-1])) / (0.5 * np.ptp(surface.x) or 1.0)  # (nx, ny), -1..1
        v = (Y - 0.5 * (surface.y[0] + surface.y[-1])) / (0.5 * np.ptp(surface.y) or 1.0)
        sel = finite & (Z <= lo + low * (hi - lo)) if hi > lo else np.zeros_like(finite)
        cu, cv = (float(u[sel].mean()), float(v[sel].mean())) if sel.any() else (0.0, 0.0)
        if np.hypot(cu, cv) > 0.15:
            if abs(cv) < 0.02:  # straight along x: lean to the -y side, as matplotlib's default does
                cv = -0.02
            angle = float(np.degrees(np.arctan2(cv, cu)))  # -180..180, 0 = looking from +x
            quadrant = 90.0 * np.floor(angle / 90.0)
            azim = float(quadrant + np.clip(angle - quadrant, min_offset, 90.0 - min_offset))
    return elev, azim


def _finish_3d(ax, surface, zlabel, elev, azim, zlim, title, T, m):
    ax.set_xlim(surface.x[0], surface.x[-1])
    ax.set_ylim(surface.y[0], surface.y[-1])
    for axis in (ax.xaxis, ax.yaxis):  # at most 6 ticks: a foreshortened axis keeps its labels apart
        axis.set_major_locator(MaxNLocator(5, steps=[1, 2, 5, 10]))
    if zlim is not None:
        ax.set_zlim(*zlim)
    _label_axes(ax, surface, zlabel)
    ax.view_init(elev=elev, azim=azim)
    if title:
        ax.set_title(title if isinstance(title, str) else f"{describe(surface)}, T = {T}".lstrip(", "))
    annotate(ax, m.note())


# ---------------------------------------------------------------------------------------------
# small multiples: one surface across T; several surfaces side by side


def _panel_height(width, nrows: int, ncols: int, aspect: float) -> float:
    """Figure height (inches) for nrows x ncols panels of height ``aspect`` x panel width, with room
    for titles and a colorbar on the right."""
    from .style import width_inches

    panel = 0.86 * width_inches(width) / ncols
    return nrows * panel * aspect + 0.45


def _grid_shape(n: int, ncols: int | None) -> tuple[int, int]:
    ncols = ncols or min(n, 3)
    return -(-n // ncols), ncols


def plot_panels(surface, Ts: Sequence[int] | None = None, fig=None, ncols: int | None = None,
                scale="linear", kind: str = "contour", levels: int = 21, cmap: str = LOSS_CMAP,
                elev: float | None = None, azim: float | None = None, width="double", title: str | None = None):
    """Small multiples of the loss across T with ONE shared colour scale (how the cliff forms).

    kind: 'contour' (filled contours, one colorbar) or 'surface' / 'wireframe' (3-D, shared
    z limits and one view: elev, azim, or ``view_from_low_side`` of the longest T shown). Ts
    default to all lengths in the file. Returns the Figure.
    """
    scale = check_scale(scale)
    picks = pick_Ts(surface, Ts)
    if kind not in ("contour", "surface", "wireframe"):
        raise LandscapeError(f"unknown panel kind {kind!r}; choose from: contour, surface, wireframe")
    nrows, ncols = _grid_shape(len(picks), ncols)
    three_d = kind != "contour"
    if fig is None:
        fig = new_figure(width, height=_panel_height(width, nrows, ncols, 1.1 if three_d else 0.8),
                         layout=None if three_d else "constrained")
    masks = [mask(surface.loss[k], scale) for k, _ in picks]
    lo, hi = finite_range(masks, scale)
    norm = make_norm(scale, lo, hi, items=masks)
    X, Y = _meshgrid(surface)
    if three_d:
        elev, azim = view_from_low_side(surface, _surface_z(surface, max(picks, key=lambda p: p[1])[0], scale)[0],
                                        elev, azim)
    axes = []
    for n, ((k, T), m) in enumerate(zip(picks, masks)):
        if three_d:
            ax = fig.add_subplot(nrows, ncols, n + 1, projection="3d")
            plot = plot_surface if kind == "surface" else plot_wireframe
            z = (np.log10(lo), np.log10(hi)) if scale == "log" else (lo, hi)
            extra = dict(cmap=cmap, vmin=z[0], vmax=z[1]) if kind == "surface" else dict(lines=15)
            plot(surface, ax=ax, T=T, scale=scale, elev=elev, azim=azim, zlim=z, title=f"T = {T}", **extra)
            for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
                axis.set_major_locator(MaxNLocator(3))
            if n % ncols != ncols - 1:
                ax.set_zlabel("")
            if n + ncols < len(picks):  # axis names on the bottom row only: they fell on the titles below
                ax.set_xlabel("")
                ax.set_ylabel("")
        else:
            ax = fig.add_subplot(nrows, ncols, n + 1)
            mappable = draw_field(ax, X, Y, m, norm, levels, True, cmap)
            ax.set_title(f"T = {T}")
            annotate(ax, m.note())
            # labels on the outer panels only
            ax.set_xlabel(param_label(surface.x_name) if n // ncols == nrows - 1 or n + ncols >= len(picks) else "")
            ax.set_ylabel(param_label(surface.y_name) if n % ncols == 0 else "")
        axes.append(ax)
    if not three_d:
        for ax in axes[1:]:
            ax.sharex(axes[0])
            ax.sharey(axes[0])
        for n, ax in enumerate(axes):
            if n % ncols:
                ax.tick_params(labelleft=False)
            if n + ncols < len(axes):
                ax.tick_params(labelbottom=False)
        add_colorbar(fig, mappable, axes, loss_label(surface), shrink=0.9, aspect=30)
    fig.suptitle(title if title is not None else describe(surface))
    return fig


def plot_slices(surface, at, Ts: Sequence[int] | None = None, ax=None, scale="linear",
                cmap: str = "plasma", legend: bool = True, title: bool | str = True, width="single"):
    """1-D loss curves along one axis with the other fixed (``at`` = {'w': 5.0} or 'w=5', nearest
    grid value), one curve per T (default: all). Non-finite points are gaps, counted in a note.
    Returns the Axes."""
    scale = check_scale(scale)
    which, idx, value = resolve_at(surface, at)
    fixed_name, free_name, free = ((surface.x_name, surface.y_name, surface.y) if which == "x"
                                   else (surface.y_name, surface.x_name, surface.x))
    picks = pick_Ts(surface, Ts)
    fig, ax = figure_of(ax, width)
    palette = _length_colours(cmap, [T for _, T in picks])
    masks = []
    for (k, T), color in zip(picks, palette):
        row = surface.loss[k, idx, :] if which == "x" else surface.loss[k, :, idx]  # (ny,) or (nx,)
        m = mask(row, scale)
        masks.append(m)
        ax.plot(free, m.values.filled(np.nan), color=color, label=f"T = {T}")
    if scale != "linear":
        ax.set_yscale(scale, **({"linthresh": make_norm("symlog", *finite_range(masks), items=masks).linthresh}
                                if scale == "symlog" else {}))
    ax.set_xlim(free[0], free[-1])
    ax.xaxis.set_major_locator(MaxNLocator(5))
    ax.set_xlabel(param_label(free_name))
    ax.set_ylabel(loss_label(surface))
    if title:
        default = f"{describe(surface)}, {param_label(fixed_name)} = {value:.4g}".lstrip(", ")
        ax.set_title(title if isinstance(title, str) else default)
    if legend:
        ax.legend(loc="best", ncols=2 if len(picks) > 5 else 1, handlelength=1.2, columnspacing=0.8)
    annotate(ax, merge_notes(masks), loc="upper left")
    return ax


def _length_colours(cmap: str, Ts) -> list:
    """Colours for lengths T along a colormap, spaced by log T (short = dark, long = bright)."""
    from matplotlib import colormaps

    cm = colormaps[cmap]
    logs = np.log(np.asarray(Ts, dtype=float))
    span = logs.max() - logs.min()
    pos = (logs - logs.min()) / span if span > 0 else np.zeros_like(logs)
    return [cm(0.05 + 0.8 * p) for p in pos]


@dataclass(frozen=True)
class Planes:
    """How the surfaces of a comparison relate: ``kind`` is

    'same'       the same parameters over the same window (nothing to say)
    'block'      each cell's declared block-input weight x bias (``Cell.block_input``: srnn w, b;
                 lstm w_z, b_z; gru w_h, b_h; what ``--x block_w --y block_b`` makes), same window
    'different'  different parameters, or different windows: not like for like

    ``text`` is what the figure says ('' for 'same'); ``shared`` whether the panels can share axes.
    """

    kind: str
    text: str = ""

    @property
    def shared(self) -> bool:
        return self.kind in ("same", "block")


def _block_roles(surface) -> tuple[str | None, str | None]:
    """('block_w', 'block_b') (or swapped, or None each) for the axes of a surface whose cell
    declares its block input; an index (w_z[0,0], H > 1) is ignored."""
    from ..cells import cell_class

    try:
        block = cell_class(str((surface.spec or {}).get("cell"))).block_input
    except LandscapeError:
        block = None
    if not block:
        return None, None
    role = {block[0]: "block_w", block[1]: "block_b"}
    return role.get(surface.x_name.split("[")[0]), role.get(surface.y_name.split("[")[0])


def _window(s) -> str:
    return f"{s.x_name} [{s.x[0]:g}, {s.x[-1]:g}] \u00d7 {s.y_name} [{s.y[0]:g}, {s.y[-1]:g}]"


def compare_planes(surfaces: Sequence) -> Planes:
    """Whether the surfaces lie on matching planes (see ``Planes``)."""
    first = surfaces[0]
    who = [describe(s).split(" on ")[0] or f"surface {n + 1}" for n, s in enumerate(surfaces)]
    same_names = all((s.x_name, s.y_name) == (first.x_name, first.y_name) for s in surfaces)
    same_window = all(len(s.x) == len(first.x) and len(s.y) == len(first.y) and np.allclose(s.x, first.x)
                      and np.allclose(s.y, first.y) for s in surfaces)
    roles = [_block_roles(s) for s in surfaces]
    block = len(set(roles)) == 1 and set(roles[0]) == {"block_w", "block_b"}
    if (same_names or block) and same_window:
        if same_names:
            return Planes("same")
        names = ", ".join(f"{c} {s.x_name} \u00d7 {s.y_name}" for c, s in zip(who, surfaces))
        return Planes("block", f"matching planes: each cell's block-input weight \u00d7 bias ({names}), "
                               f"same window")
    why = []
    if not (same_names or block):
        why.append("different parameters (" + ", ".join(f"{c} {s.x_name} \u00d7 {s.y_name}"
                                                        for c, s in zip(who, surfaces)) + ")")
    if not same_window:
        why.append("different windows (" + "; ".join(f"{c} {_window(s)}" for c, s in zip(who, surfaces)) + ")"
                   if same_names or block else "different windows")
    return Planes("different", "not matching planes: " + " and ".join(why)
                  + (" (make them with --x block_w:... --y block_b:...)" if not block else ""))


def plot_compare(surfaces: Sequence, Ts: Sequence[int] | None = None, fig=None, scale="linear",
                 titles: Sequence[str] | None = None, levels: int = 21, cmap: str = LOSS_CMAP,
                 width="double"):
    """Several surfaces side by side (columns) at one or more T (rows), ONE colour scale.

    T is always named: in the titles when there is one row, on the rows otherwise. Ts default to
    the largest T that all surfaces have. The figure says how the planes relate
    (``compare_planes``): on matching block-input planes (each cell's block-input weight x bias,
    same window) it says so and labels every panel with the cell's own names; on planes that do
    not match (different parameters or windows) it warns, in red. Panels share their axes when
    the windows match; otherwise each column keeps its own. Returns the Figure.
    """
    scale = check_scale(scale)
    if not surfaces:
        raise LandscapeError("compare needs at least one surface")
    if Ts is None:
        common = set(np.asarray(surfaces[0].T).astype(int))
        for s in surfaces[1:]:
            common &= set(np.asarray(s.T).astype(int))
        if not common:
            raise LandscapeError("the surfaces have no length T in common; pass Ts")
        Ts = [max(common)]
    picks = [[pick_T(s, T) for s in surfaces] for T in Ts]  # rows of (k, T)
    nrows, ncols = len(Ts), len(surfaces)
    planes = compare_planes(surfaces)
    if fig is None:
        fig = new_figure(width, height=_panel_height(width, nrows, ncols, 0.85) + (0.15 if planes.text else 0.0))
    masks = [[mask(s.loss[k], scale) for s, (k, _) in zip(surfaces, row)] for row in picks]
    flat = [m for row in masks for m in row]
    lo, hi = finite_range(flat, scale)
    norm = make_norm(scale, lo, hi, items=flat)
    same = planes.kind == "same"
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex="all" if planes.shared else "col",
                        sharey="all" if planes.shared else "col")
    for r, T in enumerate(Ts):
        for c, s in enumerate(surfaces):
            ax = axes[r, c]
            X, Y = _meshgrid(s)
            mappable = draw_field(ax, X, Y, masks[r][c], norm, levels, True, cmap)
            annotate(ax, masks[r][c].note())
            if r == 0:
                title = titles[c] if titles else describe(s) or f"surface {c + 1}"
                ax.set_title(f"{title}, T = {T}" if nrows == 1 else title)
            if r == nrows - 1:  # a column is one surface: its name under the bottom row
                ax.set_xlabel(param_label(s.x_name))
            if c == 0 or not same:
                ax.set_ylabel(f"T = {T}\n{param_label(s.y_name)}" if nrows > 1 and c == 0 else param_label(s.y_name))
    add_colorbar(fig, mappable, axes.ravel().tolist(), loss_label(surfaces[0]), shrink=0.9, aspect=30)
    if planes.text:
        fig.supxlabel(planes.text, fontsize="small", wrap=True,
                      color="tab:red" if planes.kind == "different" else "0.25")
    return fig
