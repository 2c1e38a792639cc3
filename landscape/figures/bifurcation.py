"""The bifurcation diagram of a one-unit map against b (Pascanu et al. 2013, Fig. 3).

``plot_bifurcation(landscape.dynamics.bifurcation_diagram('pascanu', 5.0, b_values))``: the
attractors bold, the unstable branch (the basin boundary) dashed, the two folds b2 < b1 marked,
and grey flow lines with arrow heads pointing the way the map moves the state at each b.
"""
from __future__ import annotations

import numpy as np

from .. import dynamics
from .style import figure_of

ATTRACTOR = dict(color="k", linewidth=2.2, solid_capstyle="round")
UNSTABLE = dict(color="k", linewidth=1.1, linestyle=(0, (3, 2)))


def _branch_curves(d) -> list[tuple[np.ndarray, np.ndarray, bool]]:
    """(b, output, stable) curves of the three branches, each joined to the fold points it ends at,
    so the S-curve is drawn without gaps at the folds."""
    out = []
    f = d.folds
    has_folds = bool(np.isfinite(f.b1)) and bool(np.isfinite(f.b2))
    m = dynamics.one_unit_map(d.cell)
    y1, y2 = m.output(f.state1), m.output(f.state2)
    for k in range(3):
        ok = np.isfinite(d.output[:, k])
        b, y = d.b[ok], d.output[ok, k]
        if not b.size:
            continue
        if has_folds:
            if k == 0 and f.b1 <= d.b.max():  # the lower attractor ends at b1
                b, y = np.append(b, f.b1), np.append(y, y1)
            elif k == 1:  # the unstable branch runs from fold b2 to fold b1
                b, y = np.concatenate([[f.b2], b, [f.b1]]), np.concatenate([[y2], y, [y1]])
            elif k == 2 and f.b2 >= d.b.min():  # the upper attractor starts at b2
                b, y = np.insert(b, 0, f.b2), np.insert(y, 0, y2)
        order = np.argsort(b, kind="stable")
        out.append((b[order], y[order], k != 1 or not has_folds))
    return out


def plot_bifurcation(d, ax=None, flow: bool = True, n_flow: int = 19, folds: bool = True,
                     width="single", title: bool | str = True):
    """Draw a ``BifurcationDiagram``: fixed points in the cell's output space (sigmoid(x) for pascanu,
    h for srnn) against b. Bold = attractors, dashed = unstable (basin boundary), folds b2 < b1 marked
    with dotted verticals; ``flow``: grey verticals whose arrow heads show where the map sends a
    state at that b. Returns the Axes."""
    fig, ax = figure_of(ax, width, aspect=0.62)
    m = dynamics.one_unit_map(d.cell)
    lo_y, hi_y = m.phi_range
    b_lo, b_hi = float(d.b.min()), float(d.b.max())
    if flow:
        _draw_flow(ax, d, np.linspace(b_lo, b_hi, n_flow + 2)[1:-1], lo_y, hi_y)
    labelled = set()
    for b, y, stable in _branch_curves(d):
        key = "attractor" if stable else "unstable fixed point (basin boundary)"
        ax.plot(b, y, label=None if key in labelled else key, zorder=3, **(ATTRACTOR if stable else UNSTABLE))
        labelled.add(key)
    f = d.folds
    if folds and np.isfinite(f.b1):
        for b_f, s_f, name in ((f.b2, f.state2, "b_2"), (f.b1, f.state1, "b_1")):
            if not b_lo <= b_f <= b_hi:
                continue
            y_f = float(m.output(s_f))
            ax.plot([b_f, b_f], [lo_y, y_f], color="k", linestyle=":", linewidth=0.7, zorder=2)
            ax.plot([b_f], [y_f], "o", color="tab:blue", markersize=3.5, zorder=4,
                    label="fold" if "fold" not in labelled else None)
            labelled.add("fold")
            ax.annotate(f"${name}$", xy=(b_f, lo_y), xytext=(0, -14), textcoords="offset points",
                        ha="center", va="top", annotation_clip=False)
    ax.set_xlim(b_lo, b_hi)
    ax.set_ylim(lo_y, hi_y)
    ax.set_xlabel("b", labelpad=9)
    ax.set_ylabel(f"${m.output_tex}$")
    if title:
        ax.set_title(title if isinstance(title, str) else f"{d.cell}: fixed points at w = {d.w:g}", pad=16)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=3, handlelength=1.8, columnspacing=1.0,
              borderaxespad=0.1)
    return ax


def _draw_flow(ax, d, bs, lo_y, hi_y, n_heads: int = 7):
    """Grey vertical lines at each b in bs with heads pointing up or down: the sign of
    output(F(x)) - output(x) at evenly spaced outputs."""
    ys = np.linspace(lo_y, hi_y, n_heads + 2)[1:-1]  # (n_heads,)
    umap = dynamics.one_unit_map(d.cell)
    state = umap.state_of_output(ys)
    up, down = [], []
    for b in bs:
        nxt = umap.output(umap.step(state, d.w, b, d.c))  # (n_heads,)
        move = nxt - ys
        ax.plot([b, b], [lo_y, hi_y], color="0.7", linestyle=(0, (4, 3)), linewidth=0.6, zorder=1)
        for y, m in zip(ys, move):
            if abs(m) > 0.004:
                (up if m > 0 else down).append((b, y))
    for pts, marker in ((up, "^"), (down, "v")):
        if pts:
            arr = np.array(pts)
            ax.plot(arr[:, 0], arr[:, 1], marker, color="0.6", markersize=2.6, linestyle="none", zorder=1)
