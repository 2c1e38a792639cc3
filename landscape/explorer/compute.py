"""What the explorer shows, computed by the library: the surface (``landscape.grid``, with the cache
behind it), the fold overlays (``figures.interactive.dynamics_curves``), the per-timestep gradient
norms and Jacobian factors at a clicked point (``points.analyse_points``) and training paths from it
(``gradients.loss_grad_hessian`` for the gradient in the plane, ``train.optim`` for the steps).

Only the two plotted parameters train, on the surface's own data (same task, n and seed) at the
shown length T, so every step of a path lies on the drawn surface: the loss recorded at a step is
the surface's value there. No dash or plotly here.
"""
from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass, replace

import numpy as np

from ..lazy import torch
from .state import ExploreState

KEEP_SURFACES = 16  # surfaces held in memory (a revisit of one is instant; the disk cache holds them all)


@dataclass(frozen=True)
class SurfaceView:
    """The surface of a state and how it was obtained: ``surface`` (store.Surface, loss (nT, nx, ny)),
    its file, whether it came from the cache, and the seconds this call took."""

    surface: object
    path: object
    cached: bool
    seconds: float


_surfaces: OrderedDict = OrderedDict()  # surface_key -> SurfaceView


def surface(state: ExploreState) -> SurfaceView:
    """The loss surface at every T of ``state.T`` (one unroll): held in memory, else read from the
    cache, else computed into it."""
    from ..surface import grid

    key = state.surface_key()
    if key in _surfaces:
        _surfaces.move_to_end(key)
        return replace(_surfaces[key], cached=True, seconds=0.0)
    start = time.perf_counter()
    result = grid(state.grid_spec(), progress=False)
    view = SurfaceView(result.surface, result.path, result.cached, time.perf_counter() - start)
    _surfaces[key] = view
    while len(_surfaces) > KEEP_SURFACES:
        _surfaces.popitem(last=False)
    return view


def curves(surf) -> tuple:
    """The fold curves and basin boundary of a one-unit srnn / pascanu surface over (w, b) (() else):
    ``figures.interactive.Curve`` (name, kind, x, y) in the surface's (x, y) order."""
    from ..figures.interactive import dynamics_curves

    return dynamics_curves(surf)


def _resolved(state: ExploreState):
    from ..resolved import resolve

    return resolve(state.grid_spec())


@dataclass(frozen=True)
class PointAnalysis:
    """At one (x, y) and length T: the loss, the per-timestep gradient norms ||dL_T/ds_t|| per state
    (name -> (steps,)) and the mean Jacobian factor |ds_t/ds_{t-1}| and log10 |ds_t/ds_0| (steps,),
    t = 1..steps (means over the sequences)."""

    x: float
    y: float
    T: int
    loss: float
    norms: dict
    factor: np.ndarray
    log10_product: np.ndarray

    @property
    def t(self) -> np.ndarray:
        return np.arange(1, len(self.factor) + 1)


def point_analysis(state: ExploreState, x: float, y: float) -> PointAnalysis:
    """``points.analyse_points`` at (x, y) of the state's plane, at the shown T, on the surface's data."""
    from ..points import analyse_points

    r = _resolved(state)
    at = ((r.x.name, float(x)), (r.y.name, float(y)))
    result = analyse_points(r.spec.model, state.t, points=[(f"{at[0][0]}={x:g},{at[1][0]}={y:g}", at)],
                            n=r.n, seed=r.spec.seed, dtype=r.spec.dtype, fit=r.spec.fit,
                            readout_l2=r.spec.readout_l2, device="cpu")
    rows = result.table()[0]  # per t: the CSV columns of `landscape grads`
    norms = {k: result.norms[k][0].detach().cpu().numpy() for k in result.norms}  # state -> (steps,)
    return PointAnalysis(float(x), float(y), state.t, float(result.loss[0]), norms,
                         np.array([row["factor_mean"] for row in rows]),
                         np.array([row["log10_product_mean"] for row in rows]))


@dataclass(frozen=True)
class Path:
    """A training path: x, y (k + 1,) the parameters before each step and after the last, loss
    (k + 1,) the loss there, grad_norm (k,) ||grad L|| before clipping, clip_coef (k,) the factor
    applied (1 where not clipped). k = the steps taken: fewer than asked when the path left the
    finite numbers (an overflow at the wall)."""

    optimizer: str
    x: np.ndarray
    y: np.ndarray
    loss: np.ndarray
    grad_norm: np.ndarray
    clip_coef: np.ndarray


def paths(state: ExploreState, x: float, y: float) -> dict[str, Path]:
    """Train the two axis parameters from (x, y) at length ``state.t`` with each of ``state.optimizers``,
    ``state.steps`` full-batch steps: optimizer -> Path. The gradient is the exact one in the plane
    (one batched forward and backward for all optimisers per step); SGD and clipped SGD use ``lr``,
    Adam ``adam_lr``; clipping is Pascanu et al.'s Algorithm 1 with threshold ``clip``."""
    from ..gradients import loss_grad_hessian
    from ..train.optim import PopulationOptimizer, clip_grads, grad_norms

    names = state.optimizers
    if not names:
        return {}
    r = _resolved(state)
    dt, dev = torch.float64, torch.device("cpu")
    data = r.problem.task.make(r.Ts, r.n, r.spec.seed).to(dt, dev)  # the surface's data
    P = len(names)
    xy = {"x": torch.full((P,), float(x), dtype=dt), "y": torch.full((P,), float(y), dtype=dt)}
    clip = torch.tensor([state.clip if o == "sgd-clip" else math.inf for o in names], dtype=dt)  # (P,)
    # one PopulationOptimizer per update rule, over its rows of the population
    groups = []
    for rule, lr in (("sgd", state.lr), ("adam", state.adam_lr)):
        rows = [p for p, o in enumerate(names) if o.split("-")[0] == rule]
        if rows:
            own = {k: v[rows].clone() for k, v in xy.items()}
            groups.append((rows, own, PopulationOptimizer(rule, own, torch.full((len(rows),), lr, dtype=dt))))
    xs, ys, losses, gnorms, coefs = [], [], [], [], []
    for step in range(state.steps + 1):
        for rows, own, _ in groups:
            for k in xy:
                xy[k][rows] = own[k]
        params = _params(r, xy, dt, dev)
        loss, grad, _ = loss_grad_hessian(r.problem, params, data, (state.t,), r.refs, hessian=False)
        xs.append(xy["x"].clone())
        ys.append(xy["y"].clone())
        losses.append(loss[0])  # (P,)
        if step == state.steps:
            break
        g = {"x": grad[0, :, 0].clone(), "y": grad[0, :, 1].clone()}  # (P,) each
        norms = grad_norms(g)
        gnorms.append(norms)
        coefs.append(clip_grads(g, norms, clip))
        for rows, _, opt in groups:
            opt.step({k: v[rows] for k, v in g.items()})
    X, Y, L = (torch.stack(v).numpy() for v in (xs, ys, losses))  # (steps + 1, P)
    G, C = (torch.stack(v).numpy() for v in (gnorms, coefs))  # (steps, P)
    out = {}
    for p, name in enumerate(names):
        k = _finite_steps(X[:, p], Y[:, p], L[:, p])
        out[name] = Path(name, X[:k + 1, p], Y[:k + 1, p], L[:k + 1, p], G[:k, p], C[:k, p])
    return out


def _params(r, xy: dict, dt, dev) -> dict:
    """The model's parameters with the two axis elements set to xy['x'], xy['y'] (each (P,))."""
    from ..engine import chunk_params

    return chunk_params(r.problem.base, r.refs, (xy["x"], xy["y"]), dt, dev)


def _finite_steps(x, y, loss) -> int:
    """The steps a path took before a parameter or its loss left the finite numbers."""
    bad = ~(np.isfinite(x) & np.isfinite(y) & np.isfinite(loss))
    return max(int(np.argmax(bad)) - 1, 0) if bad.any() else len(x) - 1
