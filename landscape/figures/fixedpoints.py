"""Fixed points of a recurrent network in the plane of its hidden states' first two principal
components, with the paths of real sequences (FixedPointFinder's standard picture).

``plot_fixed_points(landscape.fixedpoints.find_fixed_points(...), trajectories)``: stable fixed
points filled, unstable ones open, slow points small and grey; each sequence's path a thin line
coloured by its label, from an open square (the first state) to a dot (the last). The plane is
that of the trajectories when given (the states the network uses), else of the points. With one
state number (H = 1 srnn, pascanu) there is no plane: the state is the x axis and each path is
drawn against the time step.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..fixedpoints import FixedPoints, StatePCA, state_pca
from .style import figure_of

STABLE = dict(marker="o", s=34, facecolor="k", edgecolor="k", linewidth=0.8, zorder=5)
UNSTABLE = dict(marker="o", s=34, facecolor="white", edgecolor="k", linewidth=1.0, zorder=5)
SLOW = dict(marker="o", s=14, facecolor="0.6", edgecolor="0.45", linewidth=0.5, zorder=4)
PATH_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")  # by label


@dataclass(frozen=True)
class FixedPointView:
    """What the figure draws, in plane coordinates.

    points (K, 2); stable, slow (K,) bool; paths (T, N, 2) or None; labels (N,) or None;
    pca: the plane (None for one state number, where x is the state and y the step)."""

    points: np.ndarray
    stable: np.ndarray
    slow: np.ndarray
    paths: np.ndarray | None
    labels: np.ndarray | None
    pca: StatePCA | None
    title: str


def fixed_point_view(result: FixedPoints, trajectories=None, member: int = 0, labels=None) -> FixedPointView:
    """Project one member's points and paths: trajectories (T, N, S) or (P, T, N, S) states (e.g.
    ``fixedpoints.visited_states``); labels (N,) colour the paths."""
    m = result.member(member)
    paths = None
    if trajectories is not None:
        paths = np.asarray(trajectories, dtype=float)
        if paths.ndim == 4:
            paths = paths[member]
    S = result.points.shape[-1]
    x = "" if result.x is None else f", x = {np.array2string(result.x[member], precision=3)}"
    title = f"{result.cell}, member {member}{x}: {int(m.fixed.sum())} fixed ({int(m.stable.sum())} stable)"
    if m.slow.any():
        title += f", {int(m.slow.sum())} slow"
    lab = None if labels is None else np.asarray(labels)
    if S == 1:
        pts = np.stack([m.points[:, 0], np.zeros(len(m.points))], -1)
        pp = None if paths is None else np.stack(
            [paths[..., 0], np.broadcast_to(np.arange(1, paths.shape[0] + 1)[:, None], paths.shape[:2])], -1)
        return FixedPointView(pts, m.stable, m.slow, pp, lab, None, title)
    pca = state_pca(paths if paths is not None else m.points)
    pts = pca.project(m.points)
    pp = None if paths is None else pca.project(paths)
    return FixedPointView(pts, m.stable, m.slow, pp, lab, pca, title)


def plot_fixed_points(result: FixedPoints, trajectories=None, ax=None, member: int = 0, labels=None,
                      max_paths: int = 60, legend: bool = True):
    """Draw one member's fixed points (stable filled, unstable open, slow points grey) and up to
    ``max_paths`` sequence paths in the PCA plane of the hidden states. Returns the Axes."""
    view = fixed_point_view(result, trajectories, member, labels)
    _, ax = figure_of(ax, "single", 0.9)
    one_d = view.pca is None
    if view.paths is not None:
        N = view.paths.shape[1]
        for n in range(min(N, max_paths)):
            c = "0.5" if view.labels is None else PATH_COLORS[int(view.labels[n]) % len(PATH_COLORS)]
            xy = view.paths[:, n]
            ax.plot(xy[:, 0], xy[:, 1], color=c, linewidth=0.5, alpha=0.45, zorder=1)
            ax.scatter(xy[:1, 0], xy[:1, 1], marker="s", s=6, facecolor="none", edgecolor=c, linewidth=0.4,
                       alpha=0.6, zorder=2)
            ax.scatter(xy[-1:, 0], xy[-1:, 1], marker="o", s=5, color=c, alpha=0.7, zorder=2, linewidth=0)
    fixed = ~view.slow
    groups = ((fixed & view.stable, STABLE, "stable"), (fixed & ~view.stable, UNSTABLE, "unstable"),
              (view.slow, SLOW, "slow point"))
    for mask, style, name in groups:
        if not mask.any():
            continue
        if one_d:  # a vertical line through each point: the paths run along y = step
            for xv in view.points[mask, 0]:
                ax.axvline(xv, color=style["edgecolor"], linewidth=1.2 if name == "stable" else 0.8,
                           linestyle="-" if name == "stable" else (0, (3, 2)), zorder=3)
        ax.scatter(view.points[mask, 0], view.points[mask, 1], label=f"{name} ({int(mask.sum())})", **style)
    if one_d:
        ax.set_xlabel(f"state {result.state_names[0]}")
        ax.set_ylabel("step" if view.paths is not None else "")
    else:
        e = view.pca.explained
        ax.set_xlabel(f"PC 1 ({100 * e[0]:.0f}% of variance)")
        ax.set_ylabel(f"PC 2 ({100 * e[1]:.0f}%)")
    ax.set_title(view.title)
    if legend:
        if view.paths is not None and view.labels is not None:
            for lab in np.unique(view.labels[:max_paths]):
                ax.plot([], [], color=PATH_COLORS[int(lab) % len(PATH_COLORS)], linewidth=0.8,
                        label=f"paths, label {lab:g}")
        ax.legend(loc="best", handletextpad=0.3, borderaxespad=0.3)
    return ax


__all__ = ["FixedPointView", "fixed_point_view", "plot_fixed_points"]
