"""Plots of the gradient analysis stored with a surface (field names and shapes as in docs/format.md):

    grad_norm_t      (nx, ny, T_max)   ||d loss_{T_max} / d h_t|| for t = 1..T_max
    grad             (nT, nx, ny, 2)   d loss / d(x, y)
    hessian_eigvals  (nT, nx, ny, 2)   eigenvalues of the 2x2 Hessian in the grid plane, ascending

``plot_gradnorm`` (curves against t on a log axis), ``plot_gradnorm_map`` (a heatmap over
(t, parameter) along one grid row or column), ``plot_quiver`` (descent directions over the loss
contours) and ``plot_curvature`` (both eigenvalues on one symlog diverging scale).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import LandscapeError
from .loss import _meshgrid, draw_field
from .scales import (add_colorbar, annotate, check_scale, describe, finite_range, make_norm, mask, merge_notes,
                     nearest_index, pick_T, resolve_at, tail_scale)
from .labels import param_label
from .style import figure_of, new_figure

FIELDS = {"grad_norm_t": "(nx, ny, T_max)", "grad_norm_c_t": "(nx, ny, T_max)", "grad": "(nT, nx, ny, 2)",
          "hessian_eigvals": "(nT, nx, ny, 2)"}
NORM_FIELDS = ("grad_norm_t", "grad_norm_c_t")  # ||dL/dh_t||, and ||dL/dc_t|| for the LSTM family


def field(surface, name: str) -> np.ndarray:
    """A gradient field of the surface, checked against its documented shape."""
    fields = getattr(surface, "fields", {}) or {}
    if name not in fields:
        have = ", ".join(sorted(fields)) or "none"
        raise LandscapeError(f"{getattr(surface, 'path', 'the surface')} has no {name!r} field (its "
                             f"gradient fields: {have}); compute it with the gradient analysis")
    arr = np.asarray(fields[name])
    nT, nx, ny = surface.loss.shape
    if name not in FIELDS:
        raise LandscapeError(f"unknown gradient field {name!r}; choose from: {', '.join(FIELDS)}")
    want = (nx, ny) if name in NORM_FIELDS else (nT, nx, ny, 2)
    if arr.shape[:len(want)] != want or arr.ndim != (3 if name in NORM_FIELDS else 4):
        raise LandscapeError(f"field {name!r} has shape {arr.shape}; expected {FIELDS[name]} with "
                             f"nT, nx, ny = {nT}, {nx}, {ny}")
    return arr


def _t_max(surface, g) -> int:
    return int(g.shape[-1])


def _gradnorm_label(T_max: int, name: str = "grad_norm_t") -> str:
    state = "c" if name == "grad_norm_c_t" else "h"
    return rf"$\|\partial L_{{{T_max}}}/\partial {state}_t\|$"


def plot_gradnorm(surface, ax=None, at=None, points: Sequence[tuple[float, float]] | None = None,
                  n_lines: int = 6, cmap: str = "viridis", name: str = "grad_norm_t", width="single"):
    """||dL/dh_t|| against t (log y axis) at a few grid points.

    points: (x, y) values (nearest grid points); or at = {'w': 5} for ``n_lines`` points evenly
    spread along the other axis; default: along the middle of the x axis. Zeros (underflow) and
    non-finite values are masked and counted. name: 'grad_norm_t' or (LSTM family) 'grad_norm_c_t'.
    Returns the Axes.
    """
    g = field(surface, name)  # (nx, ny, T_max)
    T_max = _t_max(surface, g)
    t = np.arange(1, T_max + 1)
    fig, ax = figure_of(ax, width)
    if points is not None:
        idx = [(nearest_index(surface.x, px, surface.x_name), nearest_index(surface.y, py, surface.y_name))
               for px, py in points]
        labels = [f"{param_label(surface.x_name)} = {surface.x[i]:.3g}, {param_label(surface.y_name)} = "
                  f"{surface.y[j]:.3g}" for i, j in idx]
    else:
        which, k, value = resolve_at(surface, at if at is not None else
                                     (surface.x_name, float(surface.x[len(surface.x) // 2])))
        free, free_name = (surface.y, surface.y_name) if which == "x" else (surface.x, surface.x_name)
        pick = np.unique(np.linspace(0, len(free) - 1, max(1, n_lines)).round().astype(int))
        idx = [(k, p) if which == "x" else (p, k) for p in pick]
        labels = [f"{param_label(free_name)} = {free[p]:.3g}" for p in pick]
        ax.set_title(f"{describe(surface)}, {param_label(surface.x_name if which == 'x' else surface.y_name)} = "
                     f"{value:.3g}".lstrip(", "))
    from matplotlib import colormaps

    palette = [colormaps[cmap](0.1 + 0.8 * n / max(1, len(idx) - 1)) for n in range(len(idx))]
    masks = []
    for (i, j), label, color in zip(idx, labels, palette):
        m = mask(g[i, j], "log")  # (T_max,)
        masks.append(m)
        ax.plot(t, m.values.filled(np.nan), color=color, label=label)
    ax.set_yscale("log")
    ax.set_xlim(1, T_max)
    ax.set_xlabel("t")
    ax.set_ylabel(_gradnorm_label(T_max, name))
    ax.legend(loc="best", handlelength=1.2)
    annotate(ax, merge_notes(masks), loc="lower left")
    return ax


def plot_gradnorm_map(surface, ax=None, at=None, cmap: str = "magma", colorbar: bool = True,
                      name: str = "grad_norm_t", width="single"):
    """||dL/dh_t|| as a heatmap over (t, parameter) along one grid row or column, log colours.

    at = {'w': 5} fixes w (nearest grid value) and runs along the other axis; default: the middle
    of the x axis. name: 'grad_norm_t' or 'grad_norm_c_t'. Returns the Axes.
    """
    g = field(surface, name)  # (nx, ny, T_max)
    T_max = _t_max(surface, g)
    which, k, value = resolve_at(surface, at if at is not None else
                                 (surface.x_name, float(surface.x[len(surface.x) // 2])))
    if which == "x":
        rows, free, free_name, fixed_name = g[k], surface.y, surface.y_name, surface.x_name  # (ny, T_max)
    else:
        rows, free, free_name, fixed_name = g[:, k], surface.x, surface.x_name, surface.y_name  # (nx, T_max)
    fig, ax = figure_of(ax, width)
    m = mask(rows, "log")
    lo, hi = finite_range([m], "log")
    t = np.arange(1, T_max + 1)
    # C[p, t] is drawn at (t, free[p]): rows of C go up the vertical (parameter) axis
    mesh = ax.pcolormesh(t, free, m.values, norm=make_norm("log", lo, hi), cmap=cmap, shading="nearest")
    if m.values.mask.any():
        ax.set_facecolor("0.85")
    ax.set_xlabel("t")
    ax.set_ylabel(param_label(free_name))
    ax.set_title(f"{describe(surface)}, {param_label(fixed_name)} = {value:.3g}".lstrip(", "))
    if colorbar:
        add_colorbar(fig, mesh, ax, _gradnorm_label(T_max, name))
    annotate(ax, m.note())
    return ax


def plot_gradnorm_pair(surface, at=None, fig=None, name: str = "grad_norm_t", width="double"):
    """Curves (left) and the heatmap (right) of ||dL/dh_t|| along the same row. Returns the Figure."""
    fig = fig or new_figure(width, aspect=0.36)
    left, right = fig.subplots(1, 2)
    plot_gradnorm(surface, ax=left, at=at, name=name)
    plot_gradnorm_map(surface, ax=right, at=at, name=name)
    return fig


def arrow_points(gn: np.ndarray, arrows: int, steep: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """Grid indices (i, j), each (m,), of the arrows of a quiver plot of the (nx, ny) field
    ``gn`` = ||grad L||: one arrow per block of an ``arrows`` x ``arrows`` partition of the grid,
    at the block's centre, or at its steepest point where that is over ``steep`` times steeper
    than the centre and among the steepest 5 % of the grid. A wall one grid cell wide is where
    the gradient explodes, and a regular subsample steps over it; this rule puts an arrow on it in
    every block it crosses and leaves the flat blocks regular. The block of the grid's steepest
    point always shows that point. Non-finite values are never preferred.
    """
    nx, ny = gn.shape
    ni, nj = min(arrows, nx), min(arrows, ny)
    ei, ej = np.linspace(0, nx, ni + 1).round().astype(int), np.linspace(0, ny, nj + 1).round().astype(int)
    bi = np.searchsorted(ei, np.arange(nx), side="right") - 1  # (nx,) block row of each grid row
    bj = np.searchsorted(ej, np.arange(ny), side="right") - 1  # (ny,)
    ci, cj = (ei[:-1] + ei[1:] - 1) // 2, (ej[:-1] + ej[1:] - 1) // 2  # (ni,), (nj,) block centres
    key = np.where(np.isfinite(gn), gn, -np.inf).ravel()  # (nx * ny,)
    block = (bi[:, None] * nj + bj[None, :]).ravel()  # (nx * ny,) block id of each point
    order = np.lexsort((-key, block))  # by block, steepest first
    steepest = order[np.searchsorted(block[order], np.arange(ni * nj))]  # (ni * nj,) flat index
    centre = (ci[:, None] * ny + cj[None, :]).ravel()  # (ni * nj,) flat index
    finite = key[np.isfinite(key)]
    high = np.percentile(finite, 95) if finite.size else np.inf
    top, centre_v = key[steepest], key[centre]
    with np.errstate(invalid="ignore", over="ignore"):
        move = (top > steep * np.maximum(centre_v, 0.0)) & (top >= high) & np.isfinite(top)
    if finite.size:
        move |= steepest == int(np.argmax(key))
    flat = np.where(move, steepest, centre)
    return flat // ny, flat % ny


def plot_quiver(surface, ax=None, T: int | None = None, arrows: int = 17, scale="linear",
                cmap: str = "inferno", width="single"):
    """Descent directions -grad L at T over the loss contours, coloured by ||grad L|| on a log
    scale that spans the whole stored grid (its smallest to its largest nonzero ||grad L||).

    An arrow's drawn length grows with log ||grad L|| (from 0.35 to 1 of the spacing), its
    direction is that of -grad L in the plotted plane. ``arrows`` per axis at most, one per block
    of the grid (``arrow_points``): at the block's centre, or on the wall where a block holds
    a much steeper point, so that the explosion at a cliff is drawn, never stepped over; the
    grid's largest ||grad L|| always has its arrow. Non-finite gradients get no arrow and are
    counted. Returns the Axes.
    """
    from matplotlib.colors import LogNorm

    g = field(surface, "grad")  # (nT, nx, ny, 2)
    k, T = pick_T(surface, T)
    fig, ax = figure_of(ax, width)
    m_loss = mask(surface.loss[k], check_scale(scale))
    lo, hi = finite_range([m_loss], scale)
    X, Y = _meshgrid(surface)
    ax.contour(X, Y, m_loss.values, levels=15, colors="0.55", linewidths=0.4,
               norm=make_norm(scale, lo, hi, items=[m_loss]) if scale != "linear" else None)
    gn = np.hypot(g[k, ..., 0], g[k, ..., 1])  # (nx, ny)
    m_grad = mask(gn)  # counts over the whole grid
    positive = m_grad.values.compressed()
    positive = positive[positive > 0]
    g_lo, g_hi = (float(positive.min()), float(positive.max())) if positive.size else (1e-3, 1.0)
    if g_hi <= g_lo:
        g_lo, g_hi = g_lo / 2, g_hi * 2
    I, J = arrow_points(gn, arrows)  # (m,) each
    gx, gy, mag = g[k, I, J, 0], g[k, I, J, 1], gn[I, J]  # (m,) each
    xspan, yspan = np.ptp(surface.x), np.ptp(surface.y)
    unit = 0.75 / max(min(arrows, len(surface.x)), min(arrows, len(surface.y)))  # longest arrow, axes fraction
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        ax_u, ax_v = -gx / xspan, -gy / yspan  # the descent step in axes fractions
        length = np.hypot(ax_u, ax_v)
        frac = 0.35 + 0.65 * np.clip(np.log(mag / g_lo) / np.log(g_hi / g_lo), 0.0, 1.0)
        U, V = ax_u / length * unit * frac * xspan, ax_v / length * unit * frac * yspan  # data units
    ok = np.isfinite(U) & np.isfinite(V) & np.isfinite(mag) & (mag > 0)
    q = ax.quiver(X[I, J][ok], Y[I, J][ok], U[ok], V[ok], mag[ok], norm=LogNorm(g_lo, g_hi), angles="xy",
                  scale_units="xy", scale=1, cmap=cmap, width=0.007, headwidth=3.5, headlength=4,
                  headaxislength=3.5, pivot="mid", zorder=3)  # over the contour lines
    add_colorbar(fig, q, ax, r"$\|\nabla L\|$ (log scale)")
    ax.set_xlim(surface.x[0], surface.x[-1])
    ax.set_ylim(surface.y[0], surface.y[-1])
    ax.set_xlabel(param_label(surface.x_name))
    ax.set_ylabel(param_label(surface.y_name))
    ax.set_title((f"{describe(surface)}, " if describe(surface) else "") + rf"$-\nabla L$ at T = {T}")
    note = m_grad.note()
    zero = int((m_grad.values == 0).sum())
    if zero:
        note = (note + "; " if note else "") + f"{zero} points with zero gradient"
    annotate(ax, note)
    return ax


def plot_curvature(surface, ax=None, T: int | None = None, which: str = "both", levels: int = 21,
                   cmap: str = "RdBu_r", fig=None, width="double"):
    """Eigenvalues of the 2x2 Hessian at T (default: the largest) on one symmetric-log diverging
    scale (red > 0 > blue), with the zero contour drawn (where the surface stops being convex in
    that direction).

    The scale fits the bulk of the values (``scales.tail_scale``): at a wall a few points one grid
    cell wide reach |lambda| ~ 1e9 while the rest lie below ~1, and a scale up to the largest value
    would leave the map blank. Values beyond the 99.5th percentile of |lambda|, when the largest
    is over ten times it, are drawn in the end colours (arrows on the colorbar) and counted in a
    note on the figure; none is dropped. which: 'min', 'max' (one Axes, ``ax``) or 'both' (two
    panels, returns the Figure).
    """
    if which not in ("min", "max", "both"):
        raise LandscapeError(f"unknown eigenvalue {which!r}; choose from: min, max, both")
    h = field(surface, "hessian_eigvals")  # (nT, nx, ny, 2)
    k, T = pick_T(surface, T)
    picks = {"min": [0], "max": [1], "both": [0, 1]}[which]
    masks = [mask(h[k, :, :, e], "symlog") for e in picks]
    tail = tail_scale(masks)
    norm = make_norm("symlog", -tail.top, tail.top, linthresh=tail.linthresh)
    if which == "both":
        fig = fig or new_figure(width, aspect=0.4)
        axes = list(fig.subplots(1, 2, sharex=True, sharey=True)) if ax is None else list(ax)
    else:
        fig, ax = figure_of(ax, "single" if width == "double" else width)
        axes = [ax]
    X, Y = _meshgrid(surface)
    for a, e, m in zip(axes, picks, masks):
        filled = draw_field(a, X, Y, m, norm, levels, lines=False, cmap=cmap, extend=tail.extend)
        if m.values.count() and m.values.min() < 0 < m.values.max():
            a.contour(X, Y, m.values, levels=[0.0], colors="k", linewidths=0.6)
        a.set_xlabel(param_label(surface.x_name))
        a.set_ylabel(param_label(surface.y_name))
        a.set_title(rf"$\lambda_{{\min}}$, T = {T}" if e == 0 else rf"$\lambda_{{\max}}$, T = {T}")
        annotate(a, "; ".join(n for n in (m.note(), tail.counts(m).note()) if n))
    add_colorbar(fig, filled, axes, "Hessian eigenvalue (symlog)", shrink=0.9)
    if which == "both":
        fig.suptitle(describe(surface))
        return fig
    return axes[0]


__all__ = ["FIELDS", "arrow_points", "field", "plot_curvature", "plot_gradnorm", "plot_gradnorm_map", "plot_gradnorm_pair",
           "plot_quiver"]
