"""Directions in parameter space around one model, and the plane they span.

A model is ``params``: name -> tensor of the cell's shapes (one member, no population axis). The
parameters are laid out in one flat float64 vector of n numbers, in the order of ``params``; a
direction is such a vector. Every constructor returns a ``Plane``: an origin and two directions,

    theta(a, b) = origin + a d1 + b d2,

what made them (``kind``, ``info``) and what they measure (``values``: Hessian eigenvalues or PCA
explained-variance ratios; ``coords``: the plane coordinates of the models or trajectory that
defined it). ``Plane.params_at(a, b)`` gives the parameters at a whole population of plane points
at once, name -> (P, *shape), ready for the engine; ``Plane.to_arrays`` / ``from_arrays`` store and
rebuild it exactly.

Constructors:

- ``random_plane``     two Gaussian directions, normalised per row ("filter normalisation", Li et
                       al. 2018) or per tensor;
- ``hessian_plane``    the top two eigenvectors of the loss Hessian at the model (exact Hessian +
                       eigh up to ``EXACT_HESSIAN_MAX`` parameters, 64, or 256 with a batched
                       closure; Lanczos on Hessian-vector products above);
- ``pca_plane``        the first two principal components of a trajectory of models (Li et al.'s
                       training-path plane), with the trajectory's coordinates; ``path_plane``
                       the same over every parameter of one member's recorded path, with the
                       fraction of the path's variance it captures (``variance_captured``);
- ``models_plane``     the plane through three models; ``models_line`` the line through two;
- ``axes_plane``       unit vectors along two named scalars: today's named-axis grid.

``make_plane`` builds the plane a grid spec's ``directions`` names around a resolved model (the
other models of ``models`` and ``line`` as loaded by ``landscape.basemodel.load_model``).

A loss closure is ``loss_fn(params) -> scalar`` for one member, or with ``batched=True`` a
population closure ``loss_fn(params (P, *shape)) -> (P,)``, such as ``task_loss``: it lets the
exact Hessian take all its Hessian-vector products in one batched double backward.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import numpy as np

from .basemodel import grid_readout
from .cells import parse_param_ref
from .errors import LandscapeError
from .lazy import torch

if TYPE_CHECKING:
    from torch import Tensor

    from .problem import Problem

PLANE_KINDS = ("random", "hessian", "pca", "path", "models", "line", "axes")
NORMS = ("filter", "layer", "none")
WHICH = ("algebraic", "magnitude")
# method='auto': the exact Hessian (m Hessian-vector products and a dense eigh) up to this many
# moving parameters m, Lanczos above (20-40 sequential products whatever m). Measured (GRU on relay,
# T = 10, n = 128, one thread): a one-member closure pays one backward pass per product, so exact
# costs m / 30 times Lanczos (m = 257: 1.0 s against 0.15 s); a batched closure takes the m
# products in m / 64 passes over 64 copies, so exact matches Lanczos at m = 257 (0.2 s each) and
# costs 4x at m = 529, 13x at m = 897
EXACT_HESSIAN_MAX = 64
EXACT_HESSIAN_MAX_BATCHED = 256
HVP_CHUNK = 64  # Hessian rows per batched double backward (exact Hessian with a batched closure)


# ---------------------------------------------------------------------------------------------
# the plane


@dataclass(frozen=True, eq=False)
class Plane:
    """theta(a, b) = origin + a d1 + b d2 over the flat parameter layout (names, shapes).

    origin, d1, d2  (n,) float64
    values          (2,) Hessian eigenvalues of d1, d2 (hessian), explained-variance ratios
                    (pca, path), else None
    coords          (M, 2) plane coordinates of the models (models, line) or of the trajectory
                    (pca, path), else None
    info            what made it, JSON-able pairs (seed, normalisation, method, products, ...)
    """

    kind: str
    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    origin: Tensor
    d1: Tensor
    d2: Tensor
    values: Tensor | None = None
    coords: Tensor | None = None
    info: tuple[tuple[str, object], ...] = field(default=())

    @property
    def n(self) -> int:
        return int(self.origin.numel())

    def origin_params(self) -> dict[str, Tensor]:
        return unflatten(self.origin, self.names, self.shapes)

    def directions(self) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """d1 and d2 as name -> tensor (the cell's shapes)."""
        return (unflatten(self.d1, self.names, self.shapes), unflatten(self.d2, self.names, self.shapes))

    def params_at(self, a, b, dtype=None, device=None) -> dict[str, Tensor]:
        """The parameters at plane points (a_p, b_p): a, b (P,) -> name -> (P, *shape).

        Computed in float64 as origin + a d1 + b d2, then cast; a direction component that is
        zero leaves the origin's value exactly (so an axes plane reproduces a named-axis grid)."""
        dtype = torch.float64 if dtype is None else dtype
        a = torch.as_tensor(a, dtype=torch.float64).reshape(-1, 1)  # (P, 1)
        b = torch.as_tensor(b, dtype=torch.float64).reshape(-1, 1)
        flat = self.origin + a * self.d1 + b * self.d2  # (P, n)
        out = unflatten(flat, self.names, self.shapes)
        return {k: v.to(dtype=dtype, device=device) for k, v in out.items()}

    def grid_params(self, x_values, y_values, dtype=None, device=None) -> dict[str, Tensor]:
        """Parameters over an "ij" grid: point (i, j) is member i * ny + j -> name -> (nx ny, *shape)."""
        X, Y = torch.meshgrid(torch.as_tensor(x_values, dtype=torch.float64),
                              torch.as_tensor(y_values, dtype=torch.float64), indexing="ij")
        return self.params_at(X.reshape(-1), Y.reshape(-1), dtype, device)

    def project(self, params: dict[str, Tensor]) -> Tensor:
        """Plane coordinates (..., 2) of models given as name -> (..., *shape): the least-squares
        (a, b) of theta - origin on d1, d2 (the dot products when they are orthonormal)."""
        v = flatten(params, self.names, self.shapes) - self.origin  # (..., n)
        D = torch.stack([self.d1, self.d2])  # (2, n)
        G = D @ D.T  # (2, 2)
        rhs = v @ D.T  # (..., 2)
        if float(self.d2.abs().max()) == 0.0:  # a line: b = 0
            return torch.stack([rhs[..., 0] / G[0, 0], torch.zeros_like(rhs[..., 0])], -1)
        return torch.linalg.solve(G, rhs.unsqueeze(-1)).squeeze(-1)

    def describe(self) -> str:
        extra = ", ".join(f"{k}={v}" for k, v in self.info)
        vals = "" if self.values is None else f"; values {[float(v) for v in self.values]}"
        return f"{self.kind} plane over {self.n} parameters ({extra}){vals}"

    # --- storage ---------------------------------------------------------------------------
    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        """(datasets, attributes) that rebuild this plane exactly with ``Plane.from_arrays``:
        datasets origin, d1, d2 (n,) float64 [values (2,), coords (M, 2)]; attributes kind,
        layout (JSON [[name, shape], ...]) and info (JSON)."""
        arrays = {"origin": self.origin.numpy(), "d1": self.d1.numpy(), "d2": self.d2.numpy()}
        if self.values is not None:
            arrays["values"] = self.values.numpy()
        if self.coords is not None:
            arrays["coords"] = self.coords.numpy()
        attrs = {"kind": self.kind,
                 "layout": json.dumps([[k, list(s)] for k, s in zip(self.names, self.shapes)]),
                 "info": json.dumps(dict(self.info), sort_keys=True)}
        return arrays, attrs

    @classmethod
    def from_arrays(cls, arrays, attrs) -> Plane:
        layout = json.loads(_text(attrs["layout"]))
        kind = _text(attrs["kind"])
        if kind not in PLANE_KINDS:
            raise LandscapeError(f"unknown plane kind {kind!r}; choose from: {', '.join(PLANE_KINDS)}")

        def get(k):
            return None if k not in arrays else torch.as_tensor(np.asarray(arrays[k]), dtype=torch.float64)

        return cls(kind, tuple(k for k, _ in layout), tuple(tuple(s) for _, s in layout),
                   get("origin"), get("d1"), get("d2"), get("values"), get("coords"),
                   tuple(sorted(json.loads(_text(attrs.get("info", "{}"))).items())))


def write_plane(group, plane: Plane) -> None:
    """Store a plane in an h5py group: datasets origin, d1, d2 [values, coords], attributes
    kind, layout, info (see ``Plane.to_arrays``)."""
    arrays, attrs = plane.to_arrays()
    for k, v in arrays.items():
        group.create_dataset(k, data=v)
    for k, v in attrs.items():
        group.attrs[k] = v


def read_plane(group) -> Plane:
    """The plane ``write_plane`` stored in an h5py group."""
    return Plane.from_arrays({k: group[k][()] for k in group.keys()}, dict(group.attrs))


def _f64(v) -> Tensor:
    """A float64 tensor from a tensor or an array."""
    return (v if isinstance(v, torch.Tensor) else torch.as_tensor(np.asarray(v))).to(torch.float64)


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


# ---------------------------------------------------------------------------------------------
# flat layout


def flatten(params: dict[str, Tensor], names, shapes) -> Tensor:
    """name -> (..., *shape) -> (..., n) float64 in the layout's order (leading axes kept)."""
    parts = []
    for k, s in zip(names, shapes):
        if k not in params:
            raise LandscapeError(f"parameter {k!r} is missing; the layout has: {', '.join(names)}")
        v = torch.as_tensor(params[k]).to(torch.float64)
        lead = v.shape[:v.ndim - len(s)]
        if tuple(v.shape[v.ndim - len(s):]) != tuple(s):
            raise LandscapeError(f"parameter {k!r} has shape {tuple(v.shape)}; "
                                 f"expected (..., {', '.join(map(str, s))})")
        parts.append(v.reshape(*lead, math.prod(s)))
    lead = torch.broadcast_shapes(*(p.shape[:-1] for p in parts))
    return torch.cat([p.expand(*lead, p.shape[-1]) for p in parts], -1)


def unflatten(flat: Tensor, names, shapes) -> dict[str, Tensor]:
    """(..., n) -> name -> (..., *shape) (views into flat)."""
    out, i = {}, 0
    for k, s in zip(names, shapes):
        m = math.prod(s)
        out[k] = flat[..., i:i + m].reshape(*flat.shape[:-1], *s)
        i += m
    return out


def layout(params: dict[str, Tensor]) -> tuple[tuple[str, ...], tuple[tuple[int, ...], ...]]:
    """(names, shapes) of a model given as name -> tensor (no population axis)."""
    return tuple(params), tuple(tuple(v.shape) for v in params.values())


def _moving_mask(names, shapes, exclude) -> Tensor:
    """(n,) bool: the elements of parameters not in ``exclude``."""
    unknown = sorted(set(exclude) - set(names))
    if unknown:
        raise LandscapeError(f"cannot exclude unknown parameter {unknown[0]!r}; "
                             f"choose from: {', '.join(names)}")
    return torch.cat([torch.full((math.prod(s),), k not in exclude) for k, s in zip(names, shapes)])


# ---------------------------------------------------------------------------------------------
# (a) random directions


def normalize_direction(d: Tensor, origin: Tensor, names, shapes, norm: str = "filter") -> Tensor:
    """Scale a direction d (n,) to the model's own scale (Li et al. 2018).

    filter  each row r of a matrix (torch's (out, in) layout: the weights into one unit) gets
            d_r ||theta_r|| / ||d_r||, and a vector (a bias (H,), a readout out_w (H,)) counts as
            one row. A row of ONE element carries no direction under this rule: it becomes
            +-|theta_r|, so its magnitude is no longer random, and it is 0 when theta_r = 0. For
            a one-unit cell every parameter is such a row (w, u, b are (1, 1) or (1,)), so filter
            normalisation would leave only a random sign per parameter: with srnn's three
            parameters the two directions are then parallel with probability 1/4, and a zero
            bias never moves. So all one-element rows (of every tensor, e.g. all of an H = 1
            cell, or the (H, 1) input weights of a D = 1 cell) are pooled and normalised
            together, as one row: d_S ||theta_S|| / ||d_S||, which keeps their random direction.
    layer   each tensor as a whole: d_k ||theta_k|| / ||d_k||
    none    d unchanged

    A row (or pool, or tensor) whose theta is zero gets a zero direction, as in Li et al. (its
    scale is zero); excluded parameters should be zero in d already.
    """
    if norm not in NORMS:
        raise LandscapeError(f"unknown normalisation {norm!r}; choose from: {', '.join(NORMS)}")
    if norm == "none":
        return d.clone()
    out = d.clone()
    dp, tp = unflatten(out, names, shapes), unflatten(origin, names, shapes)
    pooled = []  # (tensor name, row index) of one-element rows
    for k, s in zip(names, shapes):
        dk, tk = dp[k], tp[k]
        if norm == "layer":
            _scale_rows(dk.reshape(1, -1), tk.reshape(1, -1))
            continue
        rows_d = dk.reshape(-1, s[-1]) if len(s) >= 2 else dk.reshape(1, -1)  # (rows, elements)
        rows_t = tk.reshape(-1, s[-1]) if len(s) >= 2 else tk.reshape(1, -1)
        if rows_d.shape[1] == 1:
            pooled.append(k)
        else:
            _scale_rows(rows_d, rows_t)
    if pooled:
        pd = torch.cat([dp[k].reshape(-1) for k in pooled])
        pt = torch.cat([tp[k].reshape(-1) for k in pooled])
        _scale_rows(pd.reshape(1, -1), pt.reshape(1, -1))
        i = 0
        for k in pooled:
            m = dp[k].numel()
            dp[k].reshape(-1).copy_(pd[i:i + m])
            i += m
    return out


def _scale_rows(d: Tensor, t: Tensor) -> None:
    """In place: each row of d (rows, m) -> d_r ||t_r|| / ||d_r|| (0 where either norm is 0)."""
    nd = d.norm(dim=-1, keepdim=True)
    nt = t.norm(dim=-1, keepdim=True)
    d.mul_(torch.where(nd > 0, nt / torch.where(nd > 0, nd, 1.0), 0.0))


def random_plane(params: dict[str, Tensor], seed: int = 0, norm: str = "filter", exclude=(),
                 orthogonal: bool = False) -> Plane:
    """Two random Gaussian directions around ``params``, normalised by ``norm`` (see
    ``normalize_direction``; 'filter' is Li et al.'s filter normalisation).

    exclude: names that do not move (zero components, e.g. a readout fitted at every point).
    orthogonal: make d2 orthogonal to d1 (Gram-Schmidt, then d2 rescaled to its normalised
    length); Li et al. do not, relying on the near-orthogonality of random vectors in many
    dimensions, which fails for the few parameters of small cells: info holds their cosine."""
    names, shapes = layout(params)
    origin = flatten(params, names, shapes)
    moving = _moving_mask(names, shapes, exclude).to(torch.float64)
    g = torch.Generator().manual_seed(int(seed))
    draws = [torch.randn(origin.shape, generator=g, dtype=torch.float64) * moving for _ in range(2)]
    d = [normalize_direction(v, origin, names, shapes, norm) for v in draws]
    if not (float(d[0].norm()) > 0 and float(d[1].norm()) > 0):
        raise LandscapeError("the random directions are zero: every moving parameter is zero, and "
                             "normalisation scales a direction to the parameters' size; use norm='none'")
    if orthogonal:
        length = d[1].norm()
        d[1] = d[1] - (d[1] @ d[0]) / (d[0] @ d[0]) * d[0]
        d[1] = d[1] * (length / d[1].norm())
    cos = float(d[0] @ d[1] / (d[0].norm() * d[1].norm()))
    return Plane("random", names, shapes, origin, d[0], d[1],
                 info=(("cos", cos), ("exclude", sorted(exclude)), ("norm", norm),
                       ("orthogonal", bool(orthogonal)), ("seed", int(seed))))


# ---------------------------------------------------------------------------------------------
# (b) Hessian eigenvectors


@dataclass(frozen=True)
class HessianTop:
    """The top eigenpairs: values (k,), vectors (k, m) over the moving parameters, products (how
    many Hessian-vector products), method 'exact' or 'lanczos'."""

    values: Tensor
    vectors: Tensor
    products: int
    method: str


def _flat_loss(loss_fn, params, names, shapes, moving, batched):
    """f(flat_m (..., m)) -> loss (...,) over the moving elements, the rest at the model."""
    origin = flatten(params, names, shapes)
    idx = torch.nonzero(moving).reshape(-1)

    def f(x):  # x (m,) or (P, m) when batched
        full = origin.expand(*x.shape[:-1], origin.numel()).index_copy(-1, idx, x)  # (..., n)
        p = unflatten(full, names, shapes)
        out = loss_fn(p)
        return out.reshape(x.shape[:-1]) if batched else out.reshape(())

    return f, origin[idx].clone()


def hessian_matrix(loss_fn: Callable, params: dict[str, Tensor], exclude=(), batched: bool = False
                   ) -> Tensor:
    """The exact Hessian (m, m) of the loss over the moving parameters (all but ``exclude``, in the
    flat layout's order), symmetrised. A batched closure gives it from ceil(m / HVP_CHUNK)
    double backward passes over populations of HVP_CHUNK copies of the model (row p of the
    gradient of copy p is differentiated once more along e_p); a one-member closure uses
    torch.autograd.functional.hessian (m passes)."""
    names, shapes = layout(params)
    moving = _moving_mask(names, shapes, exclude)
    f, x0 = _flat_loss(loss_fn, params, names, shapes, moving, batched)
    m = x0.numel()
    if not batched:
        Hm = torch.autograd.functional.hessian(f, x0)
    else:
        rows = []
        for start in range(0, m, HVP_CHUNK):
            j = torch.arange(start, min(m, start + HVP_CHUNK))
            X = x0.expand(len(j), m).clone().requires_grad_(True)  # (c, m): one copy per row
            (g,) = torch.autograd.grad(f(X).sum(), X, create_graph=True)  # (c, m): each copy's gradient
            (h,) = torch.autograd.grad(g[torch.arange(len(j)), j].sum(), X)  # row j of H per copy
            rows.append(h.detach())
        Hm = torch.cat(rows)
    return 0.5 * (Hm + Hm.T)


def hessian_top(loss_fn: Callable, params: dict[str, Tensor], k: int = 2, which: str = "algebraic",
                method: str = "auto", exclude=(), batched: bool = False, tol: float = 1e-10,
                seed: int = 0) -> HessianTop:
    """The k eigenpairs of the loss Hessian at ``params`` that come first by ``which``:

    algebraic  the largest eigenvalues (default): the directions in which the loss curves up
               most steeply, the "sharpness" directions that PyHessian and the flat/sharp
               minimum literature mean by top eigenvalues; at a trained minimum (Hessian about
               positive semidefinite) they are also the largest in magnitude.
    magnitude  the largest |lambda|: near a saddle or on a cliff's face, where a strongly
               negative curvature matters as much as a positive one.

    method  exact: the Hessian (``hessian_matrix``) and torch.linalg.eigh; lanczos: scipy's
            ARPACK (implicitly restarted Lanczos, ``eigsh``) on Hessian-vector products (double
            backward through one gradient graph kept for all products), to relative
            accuracy ``tol``; auto: exact up to EXACT_HESSIAN_MAX moving parameters
            (EXACT_HESSIAN_MAX_BATCHED with a batched closure), else lanczos.
    Eigenvectors are unit vectors over the moving parameters, signed so that their largest
    component is positive."""
    if which not in WHICH:
        raise LandscapeError(f"unknown eigenvalue order {which!r}; choose from: {', '.join(WHICH)}")
    names, shapes = layout(params)
    moving = _moving_mask(names, shapes, exclude)
    m = int(moving.sum())
    if method == "auto":
        method = "exact" if m <= (EXACT_HESSIAN_MAX_BATCHED if batched else EXACT_HESSIAN_MAX) else "lanczos"
    if method not in ("exact", "lanczos"):
        raise LandscapeError(f"unknown Hessian method {method!r}; choose from: auto, exact, lanczos")
    if not 1 <= k <= m:
        raise LandscapeError(f"asked for {k} eigenvectors of a Hessian over {m} parameters")
    if method == "lanczos" and k >= m:
        method = "exact"  # ARPACK needs k < m
    if method == "exact":
        Hm = hessian_matrix(loss_fn, params, exclude, batched)
        vals, vecs = torch.linalg.eigh(Hm)  # ascending
        key = vals if which == "algebraic" else vals.abs()
        order = torch.argsort(key, descending=True)[:k]
        return HessianTop(vals[order], _sign(vecs[:, order].T), m, "exact")
    return _lanczos(loss_fn, params, names, shapes, moving, k, which, batched, tol, seed)


def _lanczos(loss_fn, params, names, shapes, moving, k, which, batched, tol, seed):
    from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

    f, x0 = _flat_loss(loss_fn, params, names, shapes, moving, batched)
    m = x0.numel()
    x = x0.clone().requires_grad_(True)
    loss = f(x.unsqueeze(0)).sum() if batched else f(x)
    (g,) = torch.autograd.grad(loss, x, create_graph=True)  # (m,), its graph kept for every product
    count = [0]

    def hvp(v):
        count[0] += 1
        vt = torch.as_tensor(np.asarray(v).reshape(-1), dtype=torch.float64)
        (hv,) = torch.autograd.grad(g, x, grad_outputs=vt, retain_graph=True)
        return hv.detach().numpy()

    op = LinearOperator((m, m), matvec=hvp, dtype=np.float64)
    v0 = np.random.default_rng(seed).standard_normal(m)
    try:
        vals, vecs = eigsh(op, k=k, which="LA" if which == "algebraic" else "LM", tol=tol, v0=v0,
                           ncv=min(m, max(2 * k + 1, 20)), maxiter=100 * m)
    except ArpackNoConvergence as err:
        raise LandscapeError(f"Lanczos did not converge to tol={tol} after {count[0]} products; "
                             f"use method='exact' or a larger tol") from err
    vals, vecs = torch.as_tensor(vals, dtype=torch.float64), torch.as_tensor(vecs, dtype=torch.float64)
    key = vals if which == "algebraic" else vals.abs()
    order = torch.argsort(key, descending=True)
    return HessianTop(vals[order], _sign(vecs[:, order].T), count[0], "lanczos")


def _sign(vectors: Tensor) -> Tensor:
    """Each row (k, m) signed so that its largest-magnitude component is positive."""
    idx = vectors.abs().argmax(-1, keepdim=True)
    s = torch.sign(vectors.gather(-1, idx))
    return vectors * torch.where(s == 0, 1.0, s)


def hessian_plane(loss_fn: Callable, params: dict[str, Tensor], which: str = "algebraic",
                  method: str = "auto", exclude=(), batched: bool = False, tol: float = 1e-10) -> Plane:
    """The plane of the top two Hessian eigenvectors at ``params`` (unit vectors, zero on the
    excluded parameters); values are their eigenvalues. See ``hessian_top``."""
    names, shapes = layout(params)
    moving = _moving_mask(names, shapes, exclude)
    top = hessian_top(loss_fn, params, 2, which, method, exclude, batched, tol)
    origin = flatten(params, names, shapes)
    d = torch.zeros(2, origin.numel(), dtype=torch.float64)
    d[:, moving] = top.vectors
    return Plane("hessian", names, shapes, origin, d[0], d[1], values=top.values,
                 info=(("exclude", sorted(exclude)), ("method", top.method), ("products", top.products),
                       ("which", which)))


# ---------------------------------------------------------------------------------------------
# (c) PCA of a trajectory


def pca_plane(trajectory: dict[str, Tensor], base: dict[str, Tensor] | None = None,
              member: int | None = None, kind: str = "pca") -> Plane:
    """The plane of the first two principal components of a trajectory of models (Li et al.
    2018, Sec. 7): origin the LAST model (the trained one); the components of the trajectory's
    points about their mean (centred, as sklearn's PCA in their code); coords (S, 2) each
    point's projection theta_s - origin on them; values the explained-variance ratios
    s_k^2 / sum s^2 of the centred points.

    trajectory  name -> (S, *shape), or (S, P, *shape) with ``member`` (e.g. a TrainResult's
                step_params, which hold the trainable parameters only)
    base        values of parameters that are not in the trajectory (they stay fixed:
                zero components), name -> (*shape); a TrainResult's final params for instance
    kind        the plane's kind: pca, or path (``path_plane``)
    """
    traj = {k: _f64(v) for k, v in trajectory.items()}
    if member is not None:
        traj = {k: v[:, member] for k, v in traj.items()}
    S = next(iter(traj.values())).shape[0]
    if S < 3:
        raise LandscapeError(f"a trajectory needs at least 3 models for two principal components, got {S}")
    params = {k: v[-1] for k, v in traj.items()}
    for k, v in (base or {}).items():
        if k not in params:
            params[k] = _f64(v)
    names, shapes = layout(params)
    origin = flatten(params, names, shapes)
    pts = flatten({**{k: params[k].expand(S, *params[k].shape) for k in params if k not in traj}, **traj},
                  names, shapes)  # (S, n)
    centred = pts - pts.mean(0)
    _, s, vh = torch.linalg.svd(centred, full_matrices=False)
    if not float(s[1]) > 1e-12 * max(float(s[0]), 1e-300):
        raise LandscapeError("the trajectory moves along fewer than two directions; use a line instead")
    d = _sign(vh[:2])
    var = s ** 2
    coords = (pts - origin) @ d.T  # (S, 2)
    values = var[:2] / var.sum()
    info = (("member", member), ("steps", S))
    if kind == "path":
        info += (("variance_captured", float(values.sum())),)
    return Plane(kind, names, shapes, origin, d[0], d[1], values=values, coords=coords, info=info)


def path_plane(path: dict[str, Tensor], base: dict[str, Tensor] | None = None) -> Plane:
    """The plane of a member's recorded path (``landscape train --record-steps``): its first two
    principal components through its END point (Li et al. 2018, Sec. 7), as ``pca_plane``, kind
    "path", with info ``variance_captured``: the fraction of the path's variance about its mean
    that the plane's two directions hold, (s_1^2 + s_2^2) / sum_k s_k^2 = values.sum().

    path  name -> (R, *shape) the parameters at the recorded steps (the end point last)
    base  the values of parameters the path does not hold (fixed)"""
    return pca_plane(path, base=base, kind="path")


# ---------------------------------------------------------------------------------------------
# (d) models, (e) named axes


def models_plane(m0: dict[str, Tensor], m1: dict[str, Tensor], m2: dict[str, Tensor]) -> Plane:
    """The plane through three models: origin m0, d1 = (m1 - m0) / |m1 - m0|, d2 the unit part of
    m2 - m0 orthogonal to d1 (Gram-Schmidt); coords (3, 2) the models' plane coordinates:
    (0, 0), (|m1 - m0|, 0), (<m2 - m0, d1>, <m2 - m0, d2>)."""
    names, shapes = layout(m0)
    o = flatten(m0, names, shapes)
    v1 = flatten(m1, names, shapes) - o
    v2 = flatten(m2, names, shapes) - o
    n1 = v1.norm()
    if not float(n1) > 0:
        raise LandscapeError("the first two models are the same; a plane needs three distinct models")
    d1 = v1 / n1
    r = v2 - (v2 @ d1) * d1
    r = r - (r @ d1) * d1  # a second pass keeps d2 orthogonal to rounding
    if not float(r.norm()) > 1e-12 * max(float(n1), float(v2.norm())):
        raise LandscapeError("the three models lie on one line; use models_line for two of them")
    d2 = r / r.norm()
    zero = torch.zeros((), dtype=torch.float64)
    coords = torch.stack([torch.stack([zero, zero]), torch.stack([n1, zero]), torch.stack([v2 @ d1, v2 @ d2])])
    return Plane("models", names, shapes, o, d1, d2, coords=coords)


def models_line(m0: dict[str, Tensor], m1: dict[str, Tensor]) -> Plane:
    """The line through two models as a degenerate plane: origin m0, d1 = m1 - m0 (not unit: a = 0
    is m0, a = 1 is m1, as in linear interpolation), d2 = 0; coords (0, 0) and (1, 0)."""
    names, shapes = layout(m0)
    o = flatten(m0, names, shapes)
    d1 = flatten(m1, names, shapes) - o
    if not float(d1.norm()) > 0:
        raise LandscapeError("the two models are the same; a line needs two distinct models")
    coords = torch.tensor([[0.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    return Plane("line", names, shapes, o, d1, torch.zeros_like(d1), coords=coords,
                 info=(("distance", float(d1.norm())),))


def axes_plane(base: dict[str, Tensor], x: str, y: str, centred: bool = False) -> Plane:
    """Unit vectors along two named scalars (``w``, ``b_f``, ``w[0,1]``): the named-axis grid.

    centred=False: the two elements are 0 in the origin, so plane coordinates are the
    parameters' values, exactly as ``engine.chunk_params`` sets them; centred=True: the origin
    is ``base`` and the coordinates are offsets from it."""
    names, shapes = layout(base)
    shp = dict(zip(names, shapes))
    refs = [parse_param_ref(r, shp, "the plane") for r in (x, y)]
    if refs[0] == refs[1]:
        raise LandscapeError(f"the same parameter {x!r} is on both axes; choose two different ones")
    origin = flatten(base, names, shapes).clone()
    d = torch.zeros(2, origin.numel(), dtype=torch.float64)
    offsets = np.cumsum([0] + [math.prod(s) for s in shapes])
    for k, (name, idx) in enumerate(refs):
        i = names.index(name)
        pos = int(offsets[i]) + (int(np.ravel_multi_index(idx, shapes[i])) if shapes[i] else 0)
        d[k, pos] = 1.0
        if not centred:
            origin[pos] = 0.0
    return Plane("axes", names, shapes, origin, d[0], d[1],
                 info=(("centred", bool(centred)), ("x", x), ("y", y)))


# ---------------------------------------------------------------------------------------------
# a loss closure from a task


def task_loss(problem: Problem, T: int, n: int | None = None, seed: int = 0) -> Callable:
    """A population loss closure for the Hessian and for checks: params name -> (P, *shape) -> (P,),
    float64, differentiable to every order.

    problem  the resolved model (``landscape.problem.resolve_model``): its cell, task, H and readout
             (identity, or the fixed logistic / dense2 readout from the params, or the optimal fit,
             differentiated implicitly: ``Readout.differentiable_loss(implicit=True)``, so the
             derivatives are those of the loss the grid reports; keep the fitted readout's
             parameters out of a plane with ``exclude``)
    T, n, seed  the length, the number of sequences (default the task's) and the data seed
    The unroll is the cells' own ``step`` (no in-place kernels), read at each sequence's end; its
    value equals ``engine.unroll_losses`` to rounding."""
    from .engine import outputs_at_ends

    cell, task, H, readout = problem.cell, problem.task, problem.H, problem.readout
    n = task.default_n if n is None else int(n)
    T = int(T)
    data = task.make((T,), n, seed).to(torch.float64, torch.device("cpu"))

    def loss(params: dict[str, Tensor]) -> Tensor:
        P = max(v.shape[0] for v in params.values())
        state = tuple(s.expand(P, n, H) for s in cell.initial_state(params, n, H, data.h0))

        def advance(t):
            nonlocal state
            state = cell.step(params, state, None if data.inputs is None else data.inputs[t - 1])

        ((_, y),) = outputs_at_ends(advance, lambda: cell.output(state), [data.ends[T]])
        return readout.differentiable_loss(y.expand(P, n, H), data.targets[T], params, implicit=True)  # (P,)

    return loss


__all__ = ["EXACT_HESSIAN_MAX", "EXACT_HESSIAN_MAX_BATCHED", "HessianTop", "PLANE_KINDS", "NORMS", "Plane", "WHICH",
           "axes_plane", "flatten",
           "hessian_matrix", "hessian_plane", "hessian_top", "layout", "models_line", "models_plane",
           "normalize_direction", "path_plane", "pca_plane", "random_plane", "read_plane", "task_loss", "unflatten",
           "write_plane"]


# ---------------------------------------------------------------------------------------------
# the plane of a grid around a resolved model (GridSpec.directions)

DIRECTIONS = ("random", "hessian", "pca", "path", "models", "line")  # GridSpec.directions (the CLI's --directions)
PLANE_AXES = ("a", "b")  # the axis names of a plane grid


def make_plane(kind: str, problem, base: dict, models: tuple = (), seed: int = 0, T: int = 50, n: int | None = None,
               data_seed: int = 0, trajectory: dict | None = None):
    """The plane of ``kind`` around the base point ``base`` (name -> tensor) of a resolved model.

    random   two filter-normalised Gaussian directions (seed)
    hessian  the top two eigenvectors of the loss Hessian at T (the grid's largest T)
    pca      the first two principal components of the model's training trajectory
    path     the same (``path_plane``), with the fraction of the path's variance it captures
    models   the plane through the base and two more models (``models``: two loaded
             ``basemodel.BaseModel``)
    line     the line through the base and one more model (b is a zero direction)
    The readout is left out of the directions when the grid fits it at every point."""
    exclude = tuple(problem.readout.params(problem.H)) if problem.readout.optimal else ()
    params = {k: v.to(torch.float64) for k, v in base.items()}
    if kind == "random":
        return random_plane(params, seed=seed, exclude=exclude)
    if kind == "hessian":
        loss = task_loss(problem, T, n, data_seed)
        moving = sum(v.numel() for k, v in params.items() if k not in exclude)
        # the exact Hessian costs a batched double backward of n T steps per 64 of its rows (4 GB and
        # a minute for 249 parameters at n = 500, T = 40); Lanczos 20-40 products whatever the size
        method = "exact" if moving <= EXACT_HESSIAN_MAX else "lanczos"
        return hessian_plane(loss, params, method=method, exclude=exclude, batched=True)
    if kind in ("pca", "path"):
        if not trajectory:
            raise LandscapeError(f"--directions {kind} needs a training trajectory: a --base-model RUN.h5:GROUP[:REPEAT] "
                                 f"from `landscape train --record-steps [K] --out RUN.h5`")
        path = dict(trajectory)
        if "dense_w" in path:  # the training readout Dense(2) as the grid's logistic one
            W, b = path.pop("dense_w"), path.pop("dense_b")  # (S, 2, H), (S, 2)
            path["out_w"], path["out_b"] = W[:, 1] - W[:, 0], (b[:, 1] - b[:, 0]).unsqueeze(-1)
        return pca_plane({k: v for k, v in path.items() if k in params}, base=params, kind=kind)
    others = [_same_layout(model, params, model.source["ref"]) for model in models]
    if kind == "models":
        if len(others) != 2:
            raise LandscapeError(f"--directions models needs two more models (--models A --models B); got {len(others)}")
        return models_plane(params, others[0], others[1])
    if kind == "line":
        if len(others) != 1:
            raise LandscapeError(f"--directions line needs one more model (--models A); got {len(others)}")
        return models_line(params, others[0])
    raise LandscapeError(f"unknown directions {kind!r}; choose from: {', '.join(DIRECTIONS)}")


def _same_layout(model, params: dict, ref: str) -> dict:
    """Another model's parameters in the base point's layout (a readout it lacks: the base's)."""
    other = {k: v.to(torch.float64) for k, v in model.params.items()}
    other.update(grid_readout(model, 0))
    for k in ("out_w", "out_b"):
        if k in params and k not in other:
            other[k] = params[k]
    out = {}
    for k, v in params.items():
        if k not in other or tuple(other[k].shape) != tuple(v.shape):
            raise LandscapeError(f"--models {ref}: its parameters do not match the base model's ({k} "
                                 f"{tuple(v.shape)} against {tuple(other[k].shape) if k in other else 'absent'})")
        out[k] = other[k]
    return out
