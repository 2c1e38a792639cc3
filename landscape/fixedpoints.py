"""Fixed points and slow points of any cell under a constant input, for a population at once.

The free-running map at a constant input x (a D-vector, one per member, or none) is

    s -> F(s) = cell.step(params, s, x)      s = the cell's state: h (H,), or (h, c) (2H,) for the
                                             LSTM family, concatenated in ``cell.state_names`` order

A fixed point is a root of r(s) = F(s) - s. Following FixedPointFinder (Golub & Sussillo 2018),
``find_fixed_points`` minimises q(s) = 1/2 ||r(s)||^2 from many starts (states visited by real
sequences, see ``visited_states``, plus random ones), every start of every member in one batch:

1. Levenberg-Marquardt on r (P, K starts, S state numbers): step -(A^T A + lambda I)^-1 A^T r with
   A = dF/ds - I, accepted when q falls (lambda / 3), refused otherwise (lambda * 10). It is a
   descent method on q that becomes Newton's method near a root, and it stops at local minima of
   q where there is no root (slow points);
2. Newton steps s <- s - A^-1 r where they lower ||r||, to ||r|| < ``tol`` (1e-10) where possible;
3. classification of the points inside the search bound (``bound``; by default ``BOUND_FACTOR``
   times the largest |state| the sequences visit): ``fixed`` when ||r|| < tol; ``slow`` when
   tol <= ||r|| <= slow_max and q is stationary (||A^T r|| <= grad_tol ||r||): a local minimum
   of q above the tolerance, where the state moves by ||r|| per step (the "ghost" of a fixed
   point just past a fold); ``bound`` for a point that would be either but sits at the bound
   (max |s_i| >= ``AT_BOUND`` bound): where a gate rounds to 1 in floating point (a GRU's update
   gate, |h| large) F(s) - s is tiny everywhere and the search runs out to the bound, so such a
   point is an artefact of rounding far from every state a sequence reaches; it is counted
   apart, never as a fixed or slow point (raise ``bound`` to look past it). The rest (not
   converged, stationary with a large residual, or outside the bound) is dropped and counted;
4. de-duplication per member: fixed points closer than ``dedupe`` (max-norm, state units) are one
   (the one of smaller residual is kept); slow points and points at the bound closer than
   ``slow_dedupe`` to each other (of their kind) or to a fixed point are one.

The Jacobian dF/ds of every point comes from the fused kernel of the step's forward-mode
derivatives where one applies (``kernels.numba.jacobian``), else from one batched backward pass
(S copies of each point, copy j differentiated along component j); its eigenvalues are sorted by decreasing modulus and a
fixed point is ``stable`` when the spectral radius is < 1 (slow points are never marked stable).
The search runs in float64 whatever the parameters' dtype.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from . import settings
from .cells import Cell, get_cell
from .errors import LandscapeError
from .lazy import torch

if TYPE_CHECKING:
    from torch import Tensor

KINDS = ("none", "fixed", "slow", "bound")  # codes 0 (padding), 1, 2, 3 of FixedPoints.kind
LAMBDA_STUCK = 1e10  # a Levenberg-Marquardt damping this large: the start has stopped moving
BOUND_FACTOR = 4.0  # the default search bound: this times the largest |state| visited (at least 1)
AT_BOUND = 0.95  # a point with max |s_i| >= this fraction of the bound sits at the bound


@dataclass(frozen=True)
class FixedPointOptions:
    """Settings of the search (every default documented).

    n_visited    starts drawn per member from the visited states (when trajectories are given)
    noise        Gaussian noise added to those starts, in units of each state number's standard
                 deviation over the visited states
    n_random     random starts per member: half uniform in a box, half the box's image under F
                 (every fixed point lies in the image of F)
    radius       the box: [-radius, radius] per state number; None: the visited states' range
                 widened by half its width on each side, or [-1.5, 1.5] without trajectories
    bound        the largest |s_i| a point may have: steps beyond it are refused, points beyond it
                 dropped, points at it (``AT_BOUND``) reported as kind 'bound'. None:
                 ``BOUND_FACTOR`` (4) max(1, the largest |s_i| of the visited states) per member,
                 or of the random starts' box without trajectories. Needed because a gated cell
                 whose gate saturates has spurious numerical roots far away (a GRU with z = 1 to
                 rounding has |F(h) - h| < 1e-10 at |h| ~ 1e6, which no sequence reaches: its h
                 stays in [-1, 1]); raise it for states that can be large (an LSTM's
                 c = i z / (1 - f) when f is near 1), or pass trajectories that visit them
    max_iter     Levenberg-Marquardt iterations; newton_iter: Newton steps after them
    tol          ||F(s) - s|| below which s is a fixed point
    grad_tol     a slow point has ||grad q|| = ||A^T r|| <= grad_tol * ||r||
    slow_max     the largest ||F(s) - s|| reported as a slow point
    dedupe       fixed points closer than this (max |difference|) are one
    slow_dedupe  the same for slow points (which converge only linearly)
    seed         the starts' random generator
    """

    n_visited: int = 256
    noise: float = 0.05
    n_random: int = 256
    radius: float | None = None
    bound: float | None = None
    max_iter: int = 200
    newton_iter: int = 20
    tol: float = 1e-10
    grad_tol: float = 1e-6
    slow_max: float = 1e-2
    dedupe: float = 1e-7
    slow_dedupe: float = 1e-4
    seed: int = 0


@dataclass(frozen=True, eq=False)
class MemberFixedPoints:
    """One member's points: points (K, S), residual (K,) = ||F(s) - s||, eigenvalues (K, S)
    complex (decreasing modulus), stable (K,) bool, kind (K,) 'fixed', 'slow' or 'bound'."""

    points: np.ndarray
    residual: np.ndarray
    eigenvalues: np.ndarray
    stable: np.ndarray
    kind: np.ndarray

    @property
    def fixed(self) -> np.ndarray:
        return self.kind == "fixed"

    @property
    def slow(self) -> np.ndarray:
        return self.kind == "slow"

    @property
    def at_bound(self) -> np.ndarray:
        return self.kind == "bound"


@dataclass(frozen=True, eq=False)
class FixedPoints:
    """Fixed and slow points of P members, padded to K = the most any member has.

    points       (P, K, S) float64, NaN in padding; S = H * len(state_names)
    residual     (P, K) ||F(s) - s||
    eigenvalues  (P, K, S) complex128: of dF/ds at the point, by decreasing modulus
    stable       (P, K) bool: a fixed point with spectral radius < 1
    kind         (P, K) int8: 0 padding, 1 fixed, 2 slow, 3 at the search bound (``KINDS``); per
                 member fixed points come first, then slow points, then those at the bound, each
                 kind sorted by its first state number
    count        (P,) points per member; dropped (P,) starts that converged to none of them
    bound        (P,) the search bound of each member (state units)
    state_names  ('h',) or ('h', 'c'): the blocks of the state, H numbers each
    x            (P, D) the constant input, or None
    """

    cell: str
    H: int
    state_names: tuple[str, ...]
    points: np.ndarray
    residual: np.ndarray
    eigenvalues: np.ndarray
    stable: np.ndarray
    kind: np.ndarray
    count: np.ndarray
    dropped: np.ndarray
    x: np.ndarray | None
    options: FixedPointOptions
    bound: np.ndarray

    @property
    def P(self) -> int:
        return self.points.shape[0]

    def member(self, p: int) -> MemberFixedPoints:
        k = int(self.count[p])
        kind = np.asarray(KINDS)[self.kind[p, :k]]
        return MemberFixedPoints(self.points[p, :k], self.residual[p, :k], self.eigenvalues[p, :k],
                                 self.stable[p, :k], kind)

    @property
    def n_fixed(self) -> np.ndarray:
        """(P,) fixed points per member."""
        return (self.kind == 1).sum(-1)

    @property
    def n_stable(self) -> np.ndarray:
        return self.stable.sum(-1)

    @property
    def n_at_bound(self) -> np.ndarray:
        """(P,) points at the search bound per member (never counted as fixed or slow)."""
        return (self.kind == 3).sum(-1)


# ---------------------------------------------------------------------------------------------
# the map and its Jacobian


def _population(cell: Cell, params: dict[str, Tensor]) -> tuple[dict[str, Tensor], int, int, int]:
    """(params name -> (P, *shape) float64, P, H, D) from params with or without a population axis."""
    rec = next((p for p in cell.params if p.role == "recurrent"), None)
    if rec is None or rec.name not in params:
        raise LandscapeError(f"cell {cell.name}: no recurrent weight among the parameters "
                             f"({', '.join(params)})")
    w = torch.as_tensor(params[rec.name])
    H = w.shape[-1]
    inp = next((p for p in cell.decls(1) if p.role == "input" and p.name in params), None)
    D = torch.as_tensor(params[inp.name]).shape[-1] if inp is not None else 0
    shapes = cell.param_shapes(H, D)
    out, Ps = {}, set()
    for k, s in shapes.items():
        if k not in params:
            raise LandscapeError(f"parameter {k!r} of cell {cell.name} (H={H}, D={D}) is missing")
        v = torch.as_tensor(params[k]).to(torch.float64)
        if tuple(v.shape) == tuple(s):
            v = v.unsqueeze(0)
        if tuple(v.shape[1:]) != tuple(s):
            raise LandscapeError(f"parameter {k!r} has shape {tuple(v.shape)}; "
                                 f"expected (P, {', '.join(map(str, s))})")
        out[k] = v
        Ps.add(v.shape[0])
    Ps.discard(1)
    if len(Ps) > 1:
        raise LandscapeError(f"parameters disagree on the population size: {sorted(Ps)}")
    P = Ps.pop() if Ps else 1
    return {k: v.expand(P, *v.shape[1:]) for k, v in out.items()}, P, H, D


def _inputs(x, P: int, D: int) -> Tensor | None:
    """The constant input as (P, 1, D) (broadcast over starts), or None when D = 0 / x is None."""
    if D == 0:
        if x is not None and torch.as_tensor(x).numel() > 0:
            raise LandscapeError("the cell has no input weights (D = 0); give no input x")
        return None
    if x is None:
        return torch.zeros(P, 1, D, dtype=torch.float64)  # no input: x = 0
    x = torch.as_tensor(x, dtype=torch.float64)
    if x.ndim == 0:
        x = x.reshape(1)
    if x.shape == (D,):
        return x.expand(P, 1, D)
    if x.shape == (P, D):
        return x.unsqueeze(1)
    raise LandscapeError(f"constant input x has shape {tuple(x.shape)}; expected ({D},) or ({P}, {D})")


class StateMap:
    """F(s) for a population: s (P, M, S) -> (P, M, S) with M starts per member."""

    def __init__(self, cell: Cell, params: dict[str, Tensor], x=None):
        self.cell = cell
        self.params, self.P, self.H, self.D = _population(cell, params)
        self.x = _inputs(x, self.P, self.D)  # (P, 1, D) or None
        self.S = self.H * len(cell.state_names)
        self._jac = None  # the fused Jacobian kernel, False where none applies (``_kernel``)
        self._packed = None  # (the kernel's parameters, its input (P or 1, D)): on first use

    def __call__(self, s: Tensor) -> Tensor:
        state = tuple(s.split(self.H, -1))  # each (P, M, H)
        x = None if self.x is None else self.x.expand(self.P, s.shape[1], self.D)
        new = self.cell.step(self.params, state, x)
        return torch.cat([v.expand(s.shape[0], s.shape[1], self.H) for v in new], -1)

    def jacobian(self, s: Tensor) -> tuple[Tensor, Tensor]:
        """(F(s) (P, M, S), dF/ds (P, M, S, S)), J[p, m, j, :] = dF_j / ds.

        J comes from the fused kernel (``kernels.numba.jacobian``: the step's forward-mode
        derivatives, generated from its trace; above 8 units in matrix form, ``jacobian_wide``)
        where one applies (the CPU, float64 states, H <= 32, a step that traces, and above 8 units
        one formula per unit; $LANDSCAPE_FAST not 0) and F from the map itself (torch, as
        ``__call__``: the kernel's own F differs from torch's tanh and sigmoid in the last bits, and
        a count such as ``n_degenerate`` follows those); else both from autograd
        (``autograd_jacobian``). The two Jacobians agree to rounding. The points where something is
        not finite (the member's parameters or input, the state, F or J) are taken
        from autograd: where 0 * inf arises, forward and reverse mode put their NaNs in different
        places, and the search follows autograd's there."""
        kernel = self._kernel()
        if kernel is None or s.device.type != "cpu" or s.dtype != torch.float64:
            return self.autograd_jacobian(s)
        if self._packed is None:
            self._packed = (kernel.pack(self.params), kernel.inputs(self.x))
        packed, xs = self._packed
        _, J, n_bad = kernel(packed, xs, s, with_F=False)  # n_bad: points where something is not finite
        with torch.no_grad():
            F = self(s)
        if n_bad:
            from .kernels.numba.jacobian import finite_points

            ok = finite_points(s, F, J) & kernel.finite(packed, xs).unsqueeze(1)  # (P, M)
            bad = (~ok).any(1).nonzero()[:, 0]  # the members with such a point
            x = None if self.x is None else self.x[bad, 0]
            sub = StateMap(self.cell, {k: v[bad] for k, v in self.params.items()}, x)
            F_ag, J_ag = sub.autograd_jacobian(s[bad])
            keep = ok[bad]  # (B, M)
            F[bad] = torch.where(keep.unsqueeze(-1), F[bad], F_ag)
            J[bad] = torch.where(keep[..., None, None], J[bad], J_ag)
        return F, J

    def _kernel(self):
        """The fused Jacobian of this map's cell (looked up once per map), or None."""
        if self._jac is None:
            from .kernels.numba import jacobian

            on_cpu = all(v.device.type == "cpu" for v in self.params.values())
            self._jac = (jacobian.jacobian_kernel(self.cell, self.H, self.D) if on_cpu and settings.fast()
                         else False)
        return self._jac or None

    def autograd_jacobian(self, s: Tensor) -> tuple[Tensor, Tensor]:
        """``jacobian`` by one backward pass of autograd (``kernels.derivative.autograd_jacobian``)."""
        from .kernels.derivative import autograd_jacobian

        return autograd_jacobian(self, s)


# ---------------------------------------------------------------------------------------------
# starts


def visited_states(cell: Cell | str, params: dict[str, Tensor], inputs: Tensor | None, steps: int | None = None,
                   h0: float = 0.0, H: int | None = None) -> Tensor:
    """The states a population visits on real sequences: (P, T, N, S), state blocks concatenated.

    inputs (T, N, D) shared or (T, P, N, D) per member (a TaskData's inputs), or None with
    ``steps`` for a cell without input; h0 the initial value of every state number."""
    cell = get_cell(cell) if isinstance(cell, str) else cell
    p, P, H_, _ = _population(cell, params)
    T = inputs.shape[0] if inputs is not None else int(steps)
    N = 1 if inputs is None else inputs.shape[-2]
    state = tuple(s.expand(P, N, H_) for s in cell.initial_state(p, N, H_, h0))
    out = []
    with torch.no_grad():
        for t in range(T):
            x = None if inputs is None else inputs[t].to(torch.float64)
            state = cell.step(p, state, x)
            out.append(torch.cat([v.expand(P, N, H_) for v in state], -1))
    return torch.stack(out, 1)  # (P, T, N, S)


def _starts(F: StateMap, trajectories, opts: FixedPointOptions, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """(P, K0, S) starts: visited states (+ noise), uniform in the box, and the box's image; and
    (P,) the largest |s_i| of the visited states (without trajectories: of the box)."""
    P, S = F.P, F.S
    parts = []
    lo = hi = None
    if trajectories is not None:
        tr = torch.as_tensor(trajectories).to(torch.float64)
        if tr.shape[-1] != S:
            raise LandscapeError(f"trajectories have {tr.shape[-1]} state numbers; cell {F.cell.name} "
                                 f"with H={F.H} has S={S}")
        tr = tr.reshape(-1, S).expand(P, -1, S) if tr.ndim < 4 else tr.reshape(tr.shape[0], -1, S)
        if tr.shape[0] not in (1, P):
            raise LandscapeError(f"trajectories are for {tr.shape[0]} members, the parameters for {P}")
        tr = tr.expand(P, *tr.shape[1:])  # (P, M, S)
        if opts.n_visited > 0:
            pick = torch.randint(tr.shape[1], (P, opts.n_visited), generator=g)
            v = torch.gather(tr, 1, pick.unsqueeze(-1).expand(P, opts.n_visited, S))
            sd = tr.std(1, keepdim=True) if tr.shape[1] > 1 else torch.ones(P, 1, S, dtype=torch.float64)
            parts.append(v + opts.noise * sd * torch.randn(v.shape, generator=g, dtype=torch.float64))
        lo, hi = tr.amin(1, keepdim=True), tr.amax(1, keepdim=True)  # (P, 1, S)
        reach = torch.maximum(lo.abs(), hi.abs()).amax((1, 2))  # (P,)
        lo, hi = lo - 0.5 * (hi - lo) - 1e-3, hi + 0.5 * (hi - lo) + 1e-3
    if opts.radius is not None or lo is None:
        r = 1.5 if opts.radius is None else float(opts.radius)
        lo, hi = torch.full((P, 1, S), -r, dtype=torch.float64), torch.full((P, 1, S), r, dtype=torch.float64)
        if trajectories is None:
            reach = torch.full((P,), r, dtype=torch.float64)
    if opts.n_random > 0:
        n_box = (opts.n_random + 1) // 2
        u = lo + (hi - lo) * torch.rand((P, opts.n_random, S), generator=g, dtype=torch.float64)
        with torch.no_grad():
            image = F(u[:, n_box:]) if opts.n_random > n_box else u[:, :0]
        parts += [u[:, :n_box], image]
    if not parts:
        raise LandscapeError("no starts: give trajectories or n_random > 0")
    return torch.cat(parts, 1), reach


# ---------------------------------------------------------------------------------------------
# the search


def find_fixed_points(cell: Cell | str, params: dict[str, Tensor], x=None, trajectories=None,
                      options: FixedPointOptions | None = None, cell_options: dict | None = None
                      ) -> FixedPoints:
    """Fixed points and slow points of every member at constant input x (see the module docstring).

    params        name -> (P, *shape) (or (*shape) for one member)
    x             (D,) shared, (P, D) per member, or None (x = 0; nothing for a cell without input)
    trajectories  visited states to start from: (..., S) shared or (P, T, N, S) per member
                  (``visited_states``); None: random starts only
    """
    cell = get_cell(cell, **(cell_options or {})) if isinstance(cell, str) else cell
    opts = options or FixedPointOptions()
    F = StateMap(cell, params, x)
    g = torch.Generator().manual_seed(int(opts.seed))
    with torch.no_grad():
        s, reach = _starts(F, trajectories, opts, g)  # (P, K0, S), (P,)
        if opts.bound is None:
            bound = BOUND_FACTOR * reach.clamp(min=1.0).view(-1, 1)  # (P, 1)
        else:
            bound = torch.full((F.P, 1), float(opts.bound), dtype=torch.float64)
        s = s.clamp(-bound.unsqueeze(-1), bound.unsqueeze(-1))
        s, r, J = _levenberg_marquardt(F, s, bound, opts)
        s, r, J = _newton(F, s, r, J, bound, opts)
        return _collect(F, cell, s, r, J, bound, opts)


def _levenberg_marquardt(F: StateMap, s: Tensor, bound: Tensor, opts: FixedPointOptions):
    S = F.S
    eye = torch.eye(S, dtype=torch.float64)
    Fs, J = F.jacobian(s)
    r = Fs - s
    q = 0.5 * (r * r).sum(-1)  # (P, K)
    lam = torch.full_like(q, 1e-3)
    for _ in range(opts.max_iter):
        A = J - eye  # (P, K, S, S)
        grad = (A.transpose(-1, -2) @ r.unsqueeze(-1)).squeeze(-1)  # (P, K, S): A^T r
        done = ((r.norm(dim=-1) < 0.1 * opts.tol) | (grad.norm(dim=-1) <= 1e-3 * opts.grad_tol * r.norm(dim=-1))
                | (lam >= LAMBDA_STUCK))  # no step lowers q any more: a minimum to rounding
        if bool(done.all()):
            break
        M = A.transpose(-1, -2) @ A + lam[..., None, None] * eye
        step = -torch.linalg.solve(M, grad.unsqueeze(-1)).squeeze(-1)
        trial = s + step
        r_try = F(trial) - trial
        q_try = 0.5 * (r_try * r_try).sum(-1)
        ok = torch.isfinite(q_try) & (q_try < q) & ~done & (trial.abs().amax(-1) <= bound)
        if bool(ok.any()):
            Fs_ok, J_ok = F.jacobian(trial)
            s = torch.where(ok[..., None], trial, s)
            r = torch.where(ok[..., None], Fs_ok - trial, r)
            J = torch.where(ok[..., None, None], J_ok, J)
            q = torch.where(ok, 0.5 * (r * r).sum(-1), q)
        lam = torch.where(ok, lam / 3.0, lam * 10.0).clamp(1e-15, 1e15)
    return s, r, J


def _newton(F: StateMap, s: Tensor, r: Tensor, J: Tensor, bound: Tensor, opts: FixedPointOptions):
    """Newton steps on F(s) - s, each kept only where it lowers ||r||."""
    eye = torch.eye(F.S, dtype=torch.float64)
    for _ in range(opts.newton_iter):
        A = J - eye
        sol = torch.linalg.solve_ex(A, -r.unsqueeze(-1))
        step = sol.result.squeeze(-1)
        trial = s + torch.where(torch.isfinite(step), step, 0.0)
        Fs_t, J_t = F.jacobian(trial)
        r_t = Fs_t - trial
        ok = torch.isfinite(r_t).all(-1) & (r_t.norm(dim=-1) < r.norm(dim=-1)) & (trial.abs().amax(-1) <= bound)
        if not bool(ok.any()):
            break
        s = torch.where(ok[..., None], trial, s)
        r = torch.where(ok[..., None], r_t, r)
        J = torch.where(ok[..., None, None], J_t, J)
    return s, r, J


def _collect(F: StateMap, cell: Cell, s, r, J, bound, opts: FixedPointOptions) -> FixedPoints:
    P, K0, S = s.shape
    eye = torch.eye(S, dtype=torch.float64)
    res = r.norm(dim=-1)  # (P, K0)
    grad = ((J - eye).transpose(-1, -2) @ r.unsqueeze(-1)).squeeze(-1).norm(dim=-1)
    size = s.abs().amax(-1)  # (P, K0)
    finite = torch.isfinite(s).all(-1) & torch.isfinite(res) & (size <= bound)
    root = finite & (res < opts.tol)
    ghost = finite & ~root & (res <= opts.slow_max) & (grad <= opts.grad_tol * res)
    at_bound = (root | ghost) & (size >= AT_BOUND * bound)
    fixed, slow = root & ~at_bound, ghost & ~at_bound
    keep_fixed = fixed & ~_duplicates(s, res, fixed, fixed, opts.dedupe)
    keep_slow = slow & ~_duplicates(s, res, slow, slow, opts.slow_dedupe) \
        & ~_near(s, slow, keep_fixed, opts.slow_dedupe)
    keep_bound = at_bound & ~_duplicates(s, res, at_bound, at_bound, opts.slow_dedupe) \
        & ~_near(s, at_bound, keep_fixed, opts.slow_dedupe)
    kind = torch.zeros(P, K0, dtype=torch.int8)
    kind[keep_fixed] = 1
    kind[keep_slow] = 2
    kind[keep_bound] = 3
    # order: fixed points first, then slow points, then those at the bound, each by the first
    # state number; padding last
    first = torch.where(kind > 0, s[..., 0], torch.inf)
    o1 = torch.sort(first, dim=1, stable=True).indices
    rank = torch.where(kind == 0, 4, kind.to(torch.int64))
    o2 = torch.sort(torch.gather(rank, 1, o1), dim=1, stable=True).indices
    order = torch.gather(o1, 1, o2)  # (P, K0)
    count = (kind > 0).sum(-1)
    K = max(int(count.max()), 0)
    order = order[:, :K]
    pts = torch.gather(s, 1, order.unsqueeze(-1).expand(P, K, S))
    kind_k = torch.gather(kind, 1, order)
    Jk = torch.gather(J, 1, order[..., None, None].expand(P, K, S, S))
    ev = torch.linalg.eigvals(Jk) if K else torch.zeros(P, 0, S, dtype=torch.complex128)
    ev = torch.gather(ev, -1, torch.argsort(ev.abs(), dim=-1, descending=True))
    radius = ev.abs().amax(-1) if S else torch.zeros(P, K, dtype=torch.float64)
    pad = kind_k == 0
    stable = (kind_k == 1) & (radius < 1.0)
    pts = torch.where(pad[..., None], torch.nan, pts)
    ev = torch.where(pad[..., None], torch.full_like(ev, complex(math.nan, math.nan)), ev)
    res_k = torch.where(pad, torch.nan, torch.gather(res, 1, order))
    converged = root | ghost
    return FixedPoints(cell.name, F.H, tuple(cell.state_names), pts.numpy(), res_k.numpy(), ev.numpy(),
                       stable.numpy(), kind_k.numpy(), count.numpy(), (~converged).sum(-1).numpy(),
                       None if F.x is None else F.x[:, 0].numpy(), opts, bound[:, 0].numpy())


def _duplicates(s: Tensor, res: Tensor, cand: Tensor, ref: Tensor, tol: float) -> Tensor:
    """(P, K) True where a candidate has another reference point within tol (max-norm) that is
    better (smaller residual, or equal residual and earlier)."""
    d = (s.unsqueeze(2) - s.unsqueeze(1)).abs().amax(-1)  # (P, K, K): [p, k, j]
    K = s.shape[1]
    idx = torch.arange(K)
    better = (res.unsqueeze(1) < res.unsqueeze(2)) | ((res.unsqueeze(1) == res.unsqueeze(2))
                                                      & (idx.view(1, 1, K) < idx.view(1, K, 1)))
    close = (d < tol) & ref.unsqueeze(1) & cand.unsqueeze(2) & better  # j is a better copy of k
    return close.any(-1)


def _near(s: Tensor, cand: Tensor, ref: Tensor, tol: float) -> Tensor:
    """(P, K) True where a candidate lies within tol of a reference point."""
    d = (s.unsqueeze(2) - s.unsqueeze(1)).abs().amax(-1)
    return ((d < tol) & ref.unsqueeze(1) & cand.unsqueeze(2)).any(-1)


# ---------------------------------------------------------------------------------------------
# PCA of states (for the figures)


@dataclass(frozen=True)
class StatePCA:
    """mean (S,), components (k, S) orthonormal rows, explained (k,) variance ratios."""

    mean: np.ndarray
    components: np.ndarray
    explained: np.ndarray

    def project(self, states) -> np.ndarray:
        """(..., S) -> (..., k)."""
        return (np.asarray(states) - self.mean) @ self.components.T


def state_pca(states, k: int = 2) -> StatePCA:
    """The first k principal components of states (..., S) (all leading axes pooled). With fewer
    than k state numbers the missing components are zero rows (explained 0)."""
    X = np.asarray(states, dtype=float).reshape(-1, np.shape(states)[-1])
    X = X[np.isfinite(X).all(-1)]
    mean = X.mean(0)
    _, s, vt = np.linalg.svd(X - mean, full_matrices=False)
    var = s ** 2
    total = var.sum() if var.sum() > 0 else 1.0
    comps = np.zeros((k, X.shape[1]))
    expl = np.zeros(k)
    m = min(k, vt.shape[0])
    comps[:m] = vt[:m] * np.sign(vt[:m, [0]] + (vt[:m, [0]] == 0))  # sign: first entry >= 0
    expl[:m] = var[:m] / total
    return StatePCA(mean, comps, expl)


__all__ = ["AT_BOUND", "BOUND_FACTOR", "FixedPointOptions", "FixedPoints", "KINDS", "MemberFixedPoints", "StateMap", "StatePCA",
           "find_fixed_points", "state_pca", "visited_states"]
