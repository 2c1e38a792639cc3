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
MARGINAL = dict(marker="D", s=16, facecolor="0.75", edgecolor="0.3", linewidth=0.5, zorder=4)
CYCLE = dict(marker="*", s=70, facecolor="#ff7f0e", edgecolor="k", linewidth=0.6, zorder=7)


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
    ``fixedpoints.visited_states``); labels (N,) colour the paths. Points at the search bound are
    not drawn (the title counts them)."""
    bounded = int(result.n_at_bound[member])
    m = _without(result, result.kind == 3).member(member)
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
    if bounded:
        title += f", {bounded} at the search bound (not drawn)"
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


# ---------------------------------------------------------------------------------------------
# the panels of `landscape fixedpoints --plot` (a FixedPointRun of landscape.attractors)


def plot_fixed_point_panels(run, fig=None, title: str | None = None, max_paths: int = 60):
    """One panel per input: the fixed points (stable filled, unstable open, marginal grey diamonds,
    slow points small and grey; points at the search bound only counted in the title) and the sequences' paths in the PCA plane of the visited states
    (the same plane in every panel); run is a ``landscape.attractors.FixedPointRun``. Returns the Figure."""
    from ..attractors import STABILITY, signed, stability
    from .style import new_figure

    at_bound = run.result.n_at_bound  # (I,): not drawn, counted in the titles
    res = _without(run.result, run.result.kind == 3)
    stab = stability(res)
    I = len(run.inputs)
    if fig is None:
        fig = new_figure("double" if I > 1 else "single", aspect=0.36 if I > 2 else 0.5 if I == 2 else 0.85)
    axes = np.atleast_1d(fig.subplots(1, I, sharex=True, sharey=True, squeeze=False)[0])
    views, shown = [], []
    drawn = _without(res, stab == "marginal")  # plot_fixed_points would call them unstable: drawn here
    for i, ax in enumerate(axes):
        plot_fixed_points(drawn, run.trajectories, ax=ax, member=i, labels=run.labels, max_paths=max_paths,
                          legend=False)
        view = fixed_point_view(res, run.trajectories, member=i, labels=run.labels)
        k = int(res.count[i])
        marginal = stab[i, :k] == "marginal"
        if marginal.any():
            ax.scatter(view.points[marginal, 0], view.points[marginal, 1], **MARGINAL)
        cycles = None if run.attractors is None else run.attractors.cycles[i]
        if cycles is not None and len(cycles) and view.pca is not None:
            xy = view.pca.project(cycles)  # (k, 2, 2)
            for pair in xy:
                ax.plot(pair[:, 0], pair[:, 1], color=CYCLE["facecolor"], linestyle=(0, (2, 1.5)), linewidth=1.0,
                        zorder=6)
            ax.scatter(xy[..., 0].ravel(), xy[..., 1].ravel(), **CYCLE)
        c = {s: int((stab[i, :k] == s).sum()) for s in STABILITY}
        slow = int((res.kind[i, :k] == 2).sum())
        n_cyc = 0 if cycles is None else len(cycles)
        head = "no input" if not run.has_input else f"x = {signed(run.inputs[i])}"
        ax.set_title(f"{head}: {c['stable']} stable, {c['unstable']} unstable"
                     + (f", {c['marginal']} marginal" if c["marginal"] else "") + (f", {slow} slow" if slow else "")
                     + (f", {at_bound[i]} at bound" if at_bound[i] else "")
                     + (f", {n_cyc} 2-cycle{'s' if n_cyc != 1 else ''}" if n_cyc else ""), fontsize="small")
        ax.set_xlabel(ax.get_xlabel(), fontsize="small")
        ax.set_ylabel(ax.get_ylabel(), fontsize="small")
        if i > 0:
            ax.set_ylabel("")
        views.append(view)
        if cycles is not None and len(cycles) and view.pca is not None:
            shown.append(view.pca.project(cycles).reshape(-1, 2))
    _focus(axes, views, shown)
    present = set(stab[res.kind == 1]) | ({"slow"} if (res.kind == 2).any() else set())
    if run.attractors is not None and any(len(c) for c in run.attractors.cycles):
        present.add("cycle")
    handles = [axes[0].scatter([], [], label=label, **style) for name, label, style in (
        ("stable", "stable", _style("stable")), ("unstable", "unstable", _style("unstable")),
        ("marginal", "marginal (rho = 1)", MARGINAL), ("slow", "slow point", _style("slow")),
        ("cycle", "stable 2-cycle (simulated)", CYCLE)) if name in present]
    if run.labels is not None:
        for lab in np.unique(run.labels[:max_paths]):
            handles += axes[0].plot([], [], color=PATH_COLORS[int(lab) % len(PATH_COLORS)], linewidth=0.8,
                                    label=f"sequences, label {lab:g}")
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize="small", frameon=False)
    if title:
        fig.suptitle(title)
    return fig


def _without(result, drop: np.ndarray):
    """The FixedPoints with the points where ``drop`` (P, K) is True removed (each member's
    remaining points kept in order, padding after them)."""
    from dataclasses import replace

    keep = (result.kind > 0) & ~drop
    order = np.argsort(~keep, axis=1, kind="stable")  # kept points first, in their order
    kept = np.take_along_axis(keep, order, 1)  # (P, K)

    def take(a, fill):
        extra = (1,) * (a.ndim - 2)
        return np.where(kept.reshape(kept.shape + extra), np.take_along_axis(a, order.reshape(order.shape + extra), 1),
                        fill)

    return replace(result, points=take(result.points, np.nan), residual=take(result.residual, np.nan),
                   eigenvalues=take(result.eigenvalues, complex(np.nan, np.nan)), stable=take(result.stable, False),
                   kind=take(result.kind, 0).astype(np.int8), count=keep.sum(1))


def _focus(axes, views, extra=(), margin: float = 0.15) -> None:
    """Limit the (shared) axes to the sequences' paths and the stable points, widened by
    ``margin`` of their span, so that far points (e.g. marginal ones where a hard gate saturates)
    do not shrink the paths to a line; each panel says how many of its points lie outside."""
    if any(v.paths is None or v.pca is None for v in views):
        return
    keep = [v.paths.reshape(-1, 2) for v in views] + [v.points[v.stable] for v in views] + list(extra)
    xy = np.concatenate([k for k in keep if len(k)])
    lo, hi = np.nanmin(xy, 0), np.nanmax(xy, 0)
    span = np.maximum(hi - lo, 1e-9)
    lo, hi = lo - margin * span, hi + margin * span
    axes[0].set_xlim(lo[0], hi[0])
    axes[0].set_ylim(lo[1], hi[1])
    for ax, v in zip(axes, views):
        out = int((~((v.points >= lo) & (v.points <= hi)).all(-1)).sum())
        if out:
            ax.set_title(f"{ax.get_title()}\n({out} outside the view)", fontsize="small")


def _style(name: str) -> dict:
    return {"stable": STABLE, "unstable": UNSTABLE, "slow": SLOW}[name]


