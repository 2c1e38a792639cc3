"""Training paths on a stored surface (``landscape plot FILE.h5 --paths RUN.h5[:GROUP]``).

Each member's recorded path (``train.paths.load_paths``) is put in the surface's coordinates:

- a plane grid (``--directions ...``, group /plane): the least-squares plane coordinates of the
  path (``directions.Plane.project``); the parameters the path does not hold are the plane's
  origin's, a Dense(2) readout becomes the grid's logistic one (logit difference);
- a grid over named parameters (srnn's w, b): the member's own values of those two, (w_t, b_t),
  while every other parameter of the surface stays at the grid's base point (the figure says so).

``project_paths`` also computes, with the grid's own loss (its cell, task, data, T and readout),
the loss at the member's real parameters and at its projection (the point of the surface drawn
under it): where the two agree the picture is faithful. ``add_paths`` draws the paths on a figure
of any 2-D kind (start: a dot, end: a square, coloured by fate) and the two losses beside it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import LandscapeError

FATE_COLOURS = {"learned": "tab:green", "learned then lost": "tab:orange", "never learned": "tab:red"}


@dataclass
class ProjectedPath:
    """One member's path on a surface: coords (R, 2) in the surface's axes; loss_real, loss_proj
    (R,) the grid's loss at the real parameters and at the projected point."""

    group: str
    repeat: object
    fate: str
    steps: np.ndarray
    coords: np.ndarray
    loss_real: np.ndarray
    loss_proj: np.ndarray


def _grid_problem(spec: dict):
    """The resolved model of a stored surface's spec: cell, task with its parameters, H, readout."""
    from ..model import ModelSpec
    from ..problem import resolve_model

    label = spec.get("readout", "none")
    model = ModelSpec(cell=spec["cell"], cell_options=tuple(sorted((spec.get("cell_options") or {}).items())),
                      task=spec["task"], task_options=tuple(sorted((spec.get("task_params") or {}).items())),
                      hidden=int(spec["hidden"]))
    if label == "none":
        return resolve_model(model)
    return resolve_model(model, readout="logistic", fit=label, l2=spec.get("readout_l2") or 1e-4)


def _in_grid_layout(params: dict, base: dict) -> dict:
    """A path's parameters name -> (R, *shape) in the grid's layout: a Dense(2) readout as the
    logistic one, the names it lacks at the grid's base values."""
    p = dict(params)
    if "dense_w" in p:
        W, b = p.pop("dense_w"), p.pop("dense_b")  # (R, 2, H), (R, 2)
        p["out_w"], p["out_b"] = W[:, 1] - W[:, 0], (b[:, 1] - b[:, 0])[:, None]
    R = len(next(iter(params.values())))
    return {k: (np.asarray(p[k], dtype=np.float64) if k in p and p[k].shape[1:] == v.shape
                else np.broadcast_to(v, (R, *v.shape)).copy()) for k, v in base.items()}


def _losses(problem, spec: dict, T: int, params: dict) -> np.ndarray:
    """The grid's loss at T of a population, name -> (P, *shape) -> (P,)."""
    from ..engine import unroll_losses
    from ..lazy import torch

    data = problem.task.make((T,), int(spec["n"]), int(spec["seed"])).to(torch.float64, torch.device("cpu"))
    p = {k: torch.as_tensor(v, dtype=torch.float64) for k, v in params.items()}
    return unroll_losses(problem, p, data, (T,))[0].numpy()


def project_paths(surface, paths, T: int | None = None) -> tuple[list[ProjectedPath], str]:
    """The members' paths on ``surface`` (module docstring) and a note on what was held fixed."""
    from ..cells import parse_param_ref
    from ..directions import read_plane
    from ..store.integrity import open_file

    spec = surface.spec
    T = int(max(surface.T) if T is None else T)
    base = {k: np.asarray(v, dtype=np.float64) for k, v in spec["base"].items()}
    problem = _grid_problem(spec)
    cell = spec["cell"]
    if any(p.spec.get("cell") != cell for p in paths):
        raise LandscapeError(f"--paths: the run's cell is not the surface's ({cell})")
    plane = None
    if "directions" in spec:
        with open_file(surface.path) as f:
            plane = read_plane(f["plane"])
        base = {k: v.numpy() for k, v in plane.origin_params().items()}
    out, note = [], ""
    for path in paths:
        full = _in_grid_layout(path.params, base)  # (R, *shape) each
        R = len(path.steps)
        if plane is not None:
            from ..lazy import torch

            coords = plane.project({k: torch.as_tensor(v) for k, v in full.items()}).numpy()  # (R, 2)
            proj = {k: v.numpy() for k, v in plane.params_at(coords[:, 0], coords[:, 1]).items()}
        else:
            shapes = {k: v.shape for k, v in base.items()}
            refs = [parse_param_ref(n, shapes, "the surface") for n in (surface.x_name, surface.y_name)]
            coords = np.stack([full[name][(slice(None), *idx)] for name, idx in refs], -1)  # (R, 2)
            proj = {k: np.broadcast_to(v, (R, *v.shape)).copy() for k, v in base.items()}
            for (name, idx), c in zip(refs, coords.T):
                proj[name][(slice(None), *idx)] = c
            held = ", ".join(f"{k}={v.item():.3g}" if v.size == 1 else k for k, v in base.items()
                             if k not in {r[0] for r in refs} or v.size > 1)
            note = (f"paths: each member's ({surface.x_name}, {surface.y_name}); the surface holds the other "
                    f"parameters at the grid's base point ({held}), while the members' other parameters moved")
        both = {k: np.concatenate([full[k], proj[k]]) for k in base}
        loss = _losses(problem, spec, T, both)
        out.append(ProjectedPath(path.group, path.repeat, path.fate, path.steps, coords, loss[:R], loss[R:]))
    if plane is not None:
        info = dict(plane.info)
        captured = info.get("variance_captured")
        note = (f"paths projected on the {plane.kind} plane"
                + (f" (it holds {captured:.1%} of its own path's variance)" if captured is not None else ""))
    return out, note


def add_paths(fig, surface, paths, T: int | None = None):
    """Draw the projected paths on the 2-D axes of ``fig`` (a figure of any 2-D kind of
    ``surface``) and, in a panel to its right, the grid's loss at the real parameters (solid)
    and at the projection (dashed) against the step. Returns the figure."""
    projected, note = project_paths(surface, paths, T)
    plots = [ax for ax in fig.axes if ax.name != "3d" and ax.get_label() != "<colorbar>"]
    if any(ax.name == "3d" for ax in fig.axes) or not plots:
        raise LandscapeError("--paths draws on 2-D kinds (contour, panels, quiver, ...), not on 3-D views")
    fig.draw_without_rendering()
    if fig.get_layout_engine() is not None:
        fig.set_layout_engine("none")
    w, h = fig.get_size_inches()
    fig.set_size_inches(2 * w, h + 0.4)
    for ax in fig.axes:  # the old figure on the left half
        pos = ax.get_position()
        ax.set_position([pos.x0 / 2, (pos.y0 * h + 0.4) / (h + 0.4), pos.width / 2, pos.height * h / (h + 0.4)])
    for ax in plots:
        if ax.get_label() == "<colorbar>" or not ax.collections and not ax.images:
            continue
        for p in projected:
            c = FATE_COLOURS[p.fate]
            ax.plot(p.coords[:, 0], p.coords[:, 1], color=c, linewidth=0.6, alpha=0.8)
            ax.plot(p.coords[:1, 0], p.coords[:1, 1], "o", color=c, markersize=2.5)
            ax.plot(p.coords[-1:, 0], p.coords[-1:, 1], "s", color=c, markersize=2.5, markeredgecolor="k",
                    markeredgewidth=0.3)
    side = fig.add_axes([0.58, 0.2, 0.38, 0.68])
    for p in projected:
        c = FATE_COLOURS[p.fate]
        side.plot(p.steps, p.loss_real, color=c, linewidth=0.7, alpha=0.8)
        side.plot(p.steps, p.loss_proj, color=c, linewidth=0.7, alpha=0.8, linestyle="--")
    gap = max(float(np.nanmax(np.abs(p.loss_real - p.loss_proj))) for p in projected)
    side.set_xlabel("optimiser step")
    side.set_ylabel("loss (the grid's)")
    side.set_title(f"solid: at the real parameters; dashed: at the projection (max gap {gap:.3g})", fontsize=6)
    from matplotlib.lines import Line2D

    counts = {f: sum(p.fate == f for p in projected) for f in FATE_COLOURS}
    side.legend([Line2D([], [], color=c) for c in FATE_COLOURS.values()],
                [f"{f} ({counts[f]})" for f in FATE_COLOURS], fontsize=5, loc="upper right")
    fig.text(0.01, 0.01, note + "; start o, end \u25a0", fontsize=5, wrap=True)
    return fig
