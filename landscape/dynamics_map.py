"""The dynamics of any cell at every grid point: fixed points and k-cycles with their stability, the
largest finite-time Lyapunov exponent on the task's sequences, and the bifurcation lines between
grid points whose dynamics differ.

The map at a constant input x (one per member, ``default_input``: the task's input mean) is

    s -> F(s) = cell.step(params, s, x)     s the full state (h, or (h, c) for the LSTM family),
                                            S = H * len(state_names) numbers (``fixedpoints.StateMap``)

``dynamics_map`` finds, for P members at once (grid points: params name -> (P, *shape) as
``engine.chunk_params`` makes them), every fixed point and every cycle of minimal period k <= K
(``max_period``, default 8) it can reach:

1. forward simulation from ``n_simulate`` starts per member, uniform in [-radius, radius]^S (plus
   states of real sequences when ``visited`` is given), for up to ``simulate_steps`` steps; a start
   whose state returns to within ``settle_tol`` of itself after d <= K steps has found an attractor
   of period d (one state per attractor seeds step 2); the others are counted as ``unsettled`` (a
   longer period, a quasi-periodic or chaotic attractor, a very slow approach, or an escape to
   infinity). Each member's box is the range of the image of the starts (their first step), of the
   attractors found and of the unsettled ends that did not escape (``ESCAPE``), widened by
   ``widen`` times its width on each side; the search bound is ``bound_factor`` times the box's
   largest |s_i| (at least 1);
2. for each period k = 1..K, Newton's method on G(s) = F^k(s) - s, with G' = J_{k-1} ... J_0 - I (the
   product of the step's Jacobians around the orbit: ``StateMap.jacobian``, a fused kernel on the
   CPU up to 32 units, else autograd), from
   n_starts * max(1/2, 4/k) starts per member (a Latin hypercube in the box) plus the
   simulation's period-k states (and, for k = 1, its unsettled ends). Every (member, start) is a
   row of one batch; rows leave it as they finish. A step is capped to ``max_step`` times the box's
   width (a damped Newton flow, which stays in the basin of the root of the start's own monotone
   piece) and clipped to the bound. A row has converged when ||G||_max <= tol (1 + ||s||_max) and
   the Newton step is below step_tol (1 + ||s||_max) (one more step is then taken); rows that
   stall, diverge or push on the bound are dropped (``_newton``);
3. a converged s of F^k has minimal period d = the least d with ||F^d(s) - s||_max <= dedupe
   (1 + ||s||_max) (so a fixed point found by the period-2 search is a fixed point, not a 2-cycle);
   its stability comes from the Floquet multipliers, the eigenvalues of J_{d-1} ... J_0 (for a
   fixed point the Jacobian's eigenvalues): stable when the spectral radius is < 1 - marginal_tol,
   marginal within marginal_tol of 1 (counted, not stable), unstable otherwise. A cycle is one
   object: it is stored from its canonical phase (the lexicographically smallest point) and two
   objects of one member are one when their periods agree and their canonical points lie within
   ``dedupe`` (max-norm, relative to 1 + ||s||_max);
4. a row whose iterate sits on the search bound with ||G|| <= tol is a root at the bound: a gate
   rounded to 1 makes F(s) = s there in floating point (a GRU's |h| ~ 8), which no trajectory
   reaches. It is reported as such (``at_bound``), never counted as a fixed point or a cycle. A
   row that stops where ||G|| <= tol but G' is singular (F^k is the identity there to rounding: a
   hard gate saturated exactly, or a gate rounded to 1 inside the bound) is counted in
   ``n_degenerate``, never as an object.

``lyapunov`` is the largest finite-time Lyapunov exponent on the task's real sequences:
lambda_T = mean over sequences of (1/T) log ||J_T ... J_1 v|| with J_t = dF/ds at step t with the
sequence's own input, by re-normalising the vector each step (QR of several vectors for the first
few exponents; one exponent on the CPU: a fused kernel, ``kernels.numba.lyapunov``, equal to
rounding). For the ``linear`` cell with H = 1 it is log|w| exactly.

``bifurcation_edges`` and ``bifurcation_segments`` give the lines between neighbouring grid points
whose counts or stability types differ (the neighbour rule of SCYFI, Eisenmann et al. 2023), as
boolean masks over the grid's faces or as line segments in data coordinates.

On a grid (``landscape grid --dynamics``) every chunk stores ``grid_fields``: the counts of
``dynamics_map`` and lambda_T at every T over the task's first ``GRID_SEQUENCES`` sequences, as the
surface file's datasets ``store.format.DYNAMICS_FIELD_NAMES`` (shapes: ``grid_field_shapes``);
``stored_bifurcation_segments`` draws the lines from a file's stored counts.

Everything runs in float64 on the CPU or the parameters' device. Arrays come back as numpy with
the dimension names of ``DYNAMICS_DIMS`` ("point" is the population axis: a grid's flat index).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from .engine import flat_chunks
from .errors import LandscapeError
from .fixedpoints import StateMap
from .lazy import torch
from .lyapunov_autograd import lyapunov_autograd
from .store.format import COUNT_FIELDS, PERIOD_FIELDS

if TYPE_CHECKING:
    from torch import Tensor

    from .problem import Problem
    from .tasks import Task, TaskData

# the expected input of each built-in task (every component), over its sequences and steps: the
# class inputs are balanced +-values and the noise has mean zero; teacher's inputs have mean mu
BUILTIN_INPUT_MEANS = {"latch": 0.0, "bengio": 0.0, "two-sequence": 0.0, "relay": 0.0, "relay-pulse": 0.0,
                       "relay-flipflop": 0.0, "teacher": lambda task: float(task.mu)}
STABILITY = ("unstable", "marginal", "stable")  # codes 0, 1, 2 of DynamicsMap.stability
SIMULATION_CHECK = 32  # steps between the simulation's checks for settled starts
HULL_STEPS = 1  # the simulation's first steps, whose states (with the attractors found) give the box
DEDUPE_WINDOW = 4  # a candidate is compared with this many neighbours in sorted order
ESCAPE = 100.0  # an unsettled end beyond this times the first step's range has escaped (not in the box)
MULTIPLE_ROOT_STEP = 1e-5  # after newton_iter, a small ||G|| with a step below this (relative) is a root
SEED_MERGE = 1e-4  # simulated states closer than this (relative) are one attractor (one Newton start)
STALL_ITER, STALL_FACTOR = 6, 0.9  # Newton drops a row whose best ||G|| fell by less than 10% in 6 iterations


@dataclass(frozen=True)
class DynamicsOptions:
    """Settings of ``dynamics_map`` (the module docstring says how each is used).

    max_period      K: cycles of minimal period 1..K are searched
    n_starts        n: Newton starts per member for period k are n * 4 / k, at least n / 2;
                    None: 8 per state number, at most 64
    n_simulate      forward-simulation starts per member
    simulate_steps  the longest simulation
    radius          the simulation starts: uniform in [-radius, radius]^S
    widen           the box: the simulation's range widened by this times its width on each side
    bound_factor    the search bound: this times the box's largest |s_i| (at least 1)
    bound           a fixed search bound instead (state units)
    newton_iter     Newton iterations per period
    tol             ||F^k(s) - s||_max / (1 + ||s||_max) below which s is periodic
    step_tol        the Newton step (same units) below which a row has converged
    dedupe          points closer than this (same units) are one point; also the period test
    settle_tol      a simulated start has settled when its state returns within this (same units)
    marginal_tol    a spectral radius within this of 1 is marginal
    seed            the random starts
    """

    max_period: int = 8
    n_starts: int | None = None
    n_simulate: int = 8
    simulate_steps: int = 256
    radius: float = 1.5
    widen: float = 0.5
    bound_factor: float = 4.0
    bound: float | None = None
    max_step: float = 0.1
    newton_iter: int = 40
    tol: float = 1e-10
    step_tol: float = 1e-9
    dedupe: float = 1e-6
    settle_tol: float = 1e-6
    marginal_tol: float = 1e-6
    seed: int = 0

    def starts(self, S: int, k: int) -> int:
        """Newton starts per member for period k: n = n_starts (None: 8 per state number, at most
        64) times 4 / k, at least n / 2: every period costs about the same (k steps per
        iteration), low periods get more starts (a k-cycle is k roots of F^k(s) - s)."""
        n = int(self.n_starts) if self.n_starts is not None else min(64, 8 * S)
        return max(math.ceil(n / 2), math.ceil(4 * n / k))

    def check(self) -> None:
        for name in ("max_period", "newton_iter"):
            if int(getattr(self, name)) < 1:
                raise LandscapeError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("n_simulate", "simulate_steps"):
            if int(getattr(self, name)) < 0:
                raise LandscapeError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.n_starts is not None and int(self.n_starts) < 1:
            raise LandscapeError(f"n_starts must be >= 1 (or None: 8 per state number), got {self.n_starts}")
        for name in ("radius", "bound_factor", "tol", "step_tol", "dedupe", "settle_tol"):
            if not getattr(self, name) > 0:
                raise LandscapeError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.bound is not None and not (math.isfinite(self.bound) and self.bound > 0):
            raise LandscapeError(f"bound must be a positive number (or None), got {self.bound}")


# named dimensions of every array of a DynamicsMap ("point": the population, a grid's flat index)
DYNAMICS_DIMS = {
    "n_fixed": ("point",), "n_stable_fixed": ("point",),
    "n_cycles": ("point", "period"), "n_stable_cycles": ("point", "period"),
    "n_marginal": ("point",), "n_at_bound": ("point",), "unsettled": ("point",), "n_degenerate": ("point",),
    "bound": ("point",),
    "period": ("point", "object"), "points": ("point", "object", "phase", "state"),
    "multipliers": ("point", "object", "state"), "radius": ("point", "object"),
    "stability": ("point", "object"), "at_bound": ("point", "object"),
}


@dataclass(frozen=True, eq=False)
class DynamicsMap:
    """Fixed points and cycles of P members (see the module docstring), numpy arrays.

    Counts (isolated objects inside the bound; marginal ones are left out of them):
    n_fixed, n_stable_fixed  (P,) fixed points, of which stable
    n_cycles, n_stable_cycles (P, K) cycles of minimal period 1..K, of which stable (column 0 is
                             the fixed points again)
    n_marginal               (P,) objects with a multiplier of modulus 1 (within marginal_tol)
    n_at_bound               (P,) roots found on the search bound (not fixed points; see the docstring)
    unsettled                (P,) simulation starts that found no cycle of period <= K
    n_degenerate             (P,) Newton starts that stopped where F^k(s) = s with a singular
                             Jacobian of F^k(s) - s (a saturated gate: a continuum of points, or a
                             gate rounded to 1 in floating point), never counted as objects
    bound                    (P,) the search bound (state units)

    Objects, padded to the most any member has (period 0, NaN, False in the padding); per member
    sorted by at_bound, period, then the canonical point:
    period       (P, M) int: minimal period (1: a fixed point)
    points       (P, M, K, S) the cycle from its canonical phase; phases >= period are NaN
    multipliers  (P, M, S) complex: eigenvalues of the product of Jacobians around the cycle, by
                 decreasing modulus
    radius       (P, M) the largest modulus; stability (P, M) int8, codes of ``STABILITY``
    at_bound     (P, M) bool: a root on the search bound
    """

    DIMS: ClassVar[dict] = DYNAMICS_DIMS

    cell: str
    state_names: tuple[str, ...]
    H: int
    input: np.ndarray | None
    options: DynamicsOptions
    n_fixed: np.ndarray
    n_stable_fixed: np.ndarray
    n_cycles: np.ndarray
    n_stable_cycles: np.ndarray
    n_marginal: np.ndarray
    n_at_bound: np.ndarray
    unsettled: np.ndarray
    n_degenerate: np.ndarray
    bound: np.ndarray
    period: np.ndarray
    points: np.ndarray
    multipliers: np.ndarray
    radius: np.ndarray
    stability: np.ndarray
    at_bound: np.ndarray

    @property
    def P(self) -> int:
        return self.n_fixed.shape[0]

    def arrays(self) -> dict[str, np.ndarray]:
        """name -> array, for every name of ``DIMS``."""
        return {name: getattr(self, name) for name in self.DIMS}

    def on_grid(self, nx: int, ny: int) -> dict[str, np.ndarray]:
        """The arrays with "point" split into ("x", "y") ("ij" order, as the grid's flat index)."""
        if nx * ny != self.P:
            raise LandscapeError(f"a {nx} x {ny} grid has {nx * ny} points; the map has {self.P}")
        return {name: a.reshape(nx, ny, *a.shape[1:]) for name, a in self.arrays().items()}

    def signature(self) -> np.ndarray:
        """(P, 2K) the numbers the bifurcation lines compare: cycles of each period and the
        stable ones among them."""
        return np.concatenate([self.n_cycles, self.n_stable_cycles], axis=-1)


# ---------------------------------------------------------------------------------------------
# the constant input


def default_input(task: Task, data: TaskData | None = None) -> float | None:
    """The constant input of the dynamics map when none is given: the task's input mean.

    None for a task without input. A built-in task's mean is known (``BUILTIN_INPUT_MEANS``: 0 for
    every task with balanced classes and zero-mean noise, mu for teacher); a user's task may declare
    ``input_mean`` (a number); otherwise the mean of ``data``'s inputs over steps and sequences."""
    if task.input_size == 0:
        return None
    mean = getattr(task, "input_mean", None)
    if mean is None:
        mean = BUILTIN_INPUT_MEANS.get(task.name)
    if callable(mean):
        mean = mean(task)
    if mean is not None:
        return float(mean)
    if data is None or data.inputs is None:
        raise LandscapeError(f"task {task.name} declares no input_mean: give the input or the task's data")
    return float(data.inputs.to(torch.float64).mean())


def _input_tensor(value, P: int, D: int) -> Tensor | None:
    """A constant input (a number for every component, (D,), or (P, D)) -> (P, D), or None."""
    if D == 0:
        if value is not None:
            raise LandscapeError("the cell has no input (D = 0); give no input value")
        return None
    x = torch.as_tensor(0.0 if value is None else value, dtype=torch.float64)
    if x.ndim == 0:
        return x.expand(P, D).clone()
    if x.shape == (D,):
        return x.expand(P, D).clone()
    if x.shape == (P, D):
        return x.clone()
    raise LandscapeError(f"input has shape {tuple(x.shape)}; give a number, ({D},) or ({P}, {D})")


# ---------------------------------------------------------------------------------------------
# rows: (member, start) pairs in one batch


class _Rows:
    """The population's map at its constant inputs, evaluated on rows (one member each)."""

    def __init__(self, cell, params: dict, x):
        self.members = StateMap(cell, params, x)  # checks the parameters; params (P, *shape) float64
        self.cell = cell
        self.P, self.H, self.S = self.members.P, self.members.H, self.members.S

    def map(self, idx: Tensor) -> StateMap:
        """F for the rows of members idx (R,): call it on (R, 1, S)."""
        x = None if self.members.x is None else self.members.x[idx, 0]
        return StateMap(self.cell, {k: v[idx] for k, v in self.members.params.items()}, x)


def _orbit(F: StateMap, s: Tensor, k: int) -> Tensor:
    """s (R, S) -> (R, k + 1, S): s_j = F^j(s), j = 0..k."""
    states = [s]
    with torch.no_grad():
        for _ in range(k):
            states.append(F(states[-1].unsqueeze(1))[:, 0])
    return torch.stack(states, 1)


def _monodromy(F: StateMap, s: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """(F^k(s) (R, S), d F^k / ds (R, S, S) = J_{k-1} ... J_0) for s (R, S), J_j = F'(F^j(s))."""
    cur, prod = s.unsqueeze(1), None
    for _ in range(k):
        cur, J = F.jacobian(cur)  # (R, 1, S), (R, 1, S, S)
        prod = J[:, 0] if prod is None else J[:, 0] @ prod
    return cur[:, 0], prod


def _solve(A: Tensor, g: Tensor) -> Tensor:
    """x with A x = g for A (R, S, S), g (R, S); inf or NaN where A is singular."""
    if A.shape[-1] == 1:
        return g / A[..., 0]
    sol = torch.linalg.solve_ex(A, g.unsqueeze(-1))
    return torch.where((sol.info == 0).unsqueeze(-1), sol.result[..., 0], math.nan)


def _scale(s: Tensor) -> Tensor:
    """1 + ||s||_max over the last axis: tolerances are relative to it."""
    return 1.0 + s.abs().amax(-1)


def _first_return(orbit: Tensor, tol: float, upto: Tensor | int) -> Tensor:
    """(R,) the least d in 1..upto with ||s_d - s_0||_max <= tol (1 + ||s_0||_max); 0 where none.
    orbit (R, k + 1, S)."""
    k = orbit.shape[1] - 1
    close = (orbit[:, 1:] - orbit[:, :1]).abs().amax(-1) <= tol * _scale(orbit[:, 0]).unsqueeze(-1)  # (R, k)
    d = torch.arange(1, k + 1, device=orbit.device)
    close = close & (d <= torch.as_tensor(upto, device=orbit.device).reshape(-1, 1))
    first = torch.argmax(close.to(torch.int8), -1) + 1  # (R,)
    return torch.where(close.any(-1), first, 0)


# ---------------------------------------------------------------------------------------------
# 1. forward simulation: attractors and the reachable box


def _simulate(rows: _Rows, starts: Tensor, idx: Tensor, opts: DynamicsOptions):
    """Run the map from starts (R, S) of members idx (R,), checking every ``SIMULATION_CHECK``
    steps for starts that have settled (``_first_return`` within settle_tol, period <= K).

    Returns (seeds, left, unsettled, lo, hi): seeds = (members (Q,), states (Q, S), periods (Q,))
    of the settled starts; left = (members, states) of the finite unsettled ones at the end;
    unsettled (P,) the starts that did not settle (or left every bound: inf, NaN); lo, hi (P, S)
    the range of the states of the first ``HULL_STEPS`` steps and of the unsettled ends (inf, -inf
    without)."""
    P, S, K = rows.P, rows.S, opts.max_period
    dev = starts.device
    lo = torch.full((P, S), math.inf, dtype=torch.float64, device=dev)
    hi = torch.full((P, S), -math.inf, dtype=torch.float64, device=dev)
    seeds = ([idx[:0]], [starts[:0]], [idx[:0]])
    s, step, lost = starts, 0, []
    with torch.no_grad():
        while idx.numel() and step < opts.simulate_steps:
            F = rows.map(idx)
            for _ in range(min(SIMULATION_CHECK, opts.simulate_steps - step)):
                s = F(s.unsqueeze(1))[:, 0]
                step += 1
                if step <= HULL_STEPS:
                    ok = torch.isfinite(s).all(-1)
                    at = idx[ok].unsqueeze(-1).expand(-1, S)
                    lo.scatter_reduce_(0, at, s[ok], "amin")
                    hi.scatter_reduce_(0, at, s[ok], "amax")
            orbit = _orbit(F, s, K)
            d = _first_return(orbit, opts.settle_tol, K)  # (R,) 0: not settled
            settled = d > 0
            for part, v in zip(seeds, (idx, s, d)):
                part.append(v[settled])
            escaped = ~settled & ~torch.isfinite(s).all(-1)
            lost.append(idx[escaped])
            keep = ~settled & ~escaped
            idx, s = idx[keep], s[keep]
        reach = ESCAPE * torch.maximum(lo.abs(), hi.abs()).nan_to_num(posinf=0.0).amax(-1).clamp(min=opts.radius)
        near = s.abs().amax(-1) <= reach[idx]  # where the unsettled starts went, unless they escape
        at = idx[near].unsqueeze(-1).expand(-1, S)
        lo.scatter_reduce_(0, at, s[near], "amin")
        hi.scatter_reduce_(0, at, s[near], "amax")
    unsettled = torch.bincount(torch.cat([idx, *lost]), minlength=P)
    return tuple(torch.cat(part) for part in seeds), (idx, s), unsettled, lo, hi


# ---------------------------------------------------------------------------------------------
# 2. Newton on F^k(s) - s


def _newton(rows: _Rows, idx: Tensor, s: Tensor, k: int, bound: Tensor, cap: Tensor, opts: DynamicsOptions):
    """Newton's method on G(s) = F^k(s) - s for rows: members idx (R,), starts s (R, S).

    bound, cap (P,): the search bound and the largest step (max-norm) of each member. Returns
    (members (Q,), states (Q, S), on_bound (Q,) bool, err (Q,)) of the rows whose ||G|| fell below
    tol: converged inside the bound, or sitting on it (roots at the bound, see the module
    docstring); err is the last Newton step (max-norm), the point's uncertainty. A row that has not
    met step_tol after newton_iter iterations but has a small ||G|| and a step below
    MULTIPLE_ROOT_STEP (a multiple root, where Newton converges linearly) is kept with its err; a
    small ||G|| with a step that does not shrink is a root at infinity, which the row follows to
    the bound. Also returned: the members (D,) of the rows that stopped where ||G|| is small but
    G' is singular (degenerate: F^k is the identity there to rounding, a gate saturated exactly or
    rounded to 1), which are no isolated roots. Rows are dropped that leave every bound (inf, NaN), push on the
    bound without a small ||G||, or lower their best ||G|| by less than STALL_FACTOR in
    STALL_ITER iterations (a ghost: a minimum of ||G|| that is not a root)."""
    eye = torch.eye(rows.S, dtype=torch.float64, device=s.device)
    out, degenerate = ([], [], [], []), []
    best = torch.full((idx.numel(),), math.inf, dtype=torch.float64, device=s.device)
    mark = best.clone()  # the best ||G|| STALL_ITER iterations ago
    for it in range(opts.newton_iter):
        if not idx.numel():
            break
        end, prod = _monodromy(rows.map(idx), s, k)
        G = end - s  # (R, S)
        step = _solve(prod - eye, -G)
        solved = torch.isfinite(step).all(-1)
        step = torch.where(solved.unsqueeze(-1), step, 0.0)
        norm, b = s.abs().amax(-1), bound[idx]
        scale = 1.0 + norm
        res = G.abs().amax(-1)
        small = res <= opts.tol * scale  # False for NaN
        size = step.abs().amax(-1)
        on_bound = norm >= b
        last = it == opts.newton_iter - 1
        slow = last & (size <= MULTIPLE_ROOT_STEP * scale)  # a multiple root: Newton converges linearly
        converged = small & ~on_bound & solved & ((size <= opts.step_tol * scale) | slow)
        flat = small & ~on_bound & ~solved  # F^k is the identity here to rounding: not an isolated root
        degenerate.append(idx[flat])
        stuck = small & on_bound
        final = torch.where((converged & (size <= opts.step_tol * scale)).unsqueeze(-1), s + step, s)  # one more step
        for part, v in zip(out, (idx, final, on_bound, size)):
            part.append(v[converged | stuck])
        step = step * (cap[idx] / size.clamp(min=1e-300)).clamp(max=1.0).unsqueeze(-1)
        new = torch.maximum(torch.minimum(s + step, b.unsqueeze(-1)), -b.unsqueeze(-1))
        best = torch.minimum(best, torch.where(torch.isfinite(res), res, math.inf))
        stalled = torch.zeros_like(small)
        if (it + 1) % STALL_ITER == 0:
            stalled = ~small & (best > STALL_FACTOR * mark)
            mark = best
        lost = (~torch.isfinite(G).all(-1) | ~torch.isfinite(new).all(-1) | stalled
                | (on_bound & (new.abs().amax(-1) >= b) & ~small))  # diverged, stalled, pushing on the bound
        keep = ~(converged | stuck | lost | flat)
        idx, s, best, mark = idx[keep], new[keep], best[keep], mark[keep]
    return (*(torch.cat(part) for part in out), torch.cat(degenerate))


# ---------------------------------------------------------------------------------------------
# 3. objects: minimal period, canonical phase, de-duplication, Floquet multipliers


def _canonical(orbit: Tensor, period: Tensor) -> Tensor:
    """The cycle from its canonical phase: orbit (Q, >= K, S), period (Q,) -> (Q, K, S) with K =
    the longest period, starting at the lexicographically smallest point (ties within 1e-9
    relative go to the next coordinate), NaN from phase ``period`` on."""
    Q, _, S = orbit.shape
    K = int(period.max()) if Q else 1
    phase = torch.arange(K, device=orbit.device)
    valid = phase < period.unsqueeze(-1)  # (Q, K)
    pts = orbit[:, :K]
    tie = 1e-9 * _scale(orbit[:, 0]).unsqueeze(-1)
    best = valid
    for c in range(S):
        key = torch.where(best, pts[..., c], math.inf)
        best = best & (key <= key.amin(-1, keepdim=True) + tie)
    first = torch.argmax(best.to(torch.int8), -1)  # (Q,)
    roll = (first.unsqueeze(-1) + phase) % period.unsqueeze(-1)  # (Q, K)
    pts = torch.gather(pts, 1, roll.unsqueeze(-1).expand(Q, K, S))
    return torch.where(valid.unsqueeze(-1), pts, math.nan)


def _distinct(keys: list[Tensor], points: Tensor, tol: Tensor) -> tuple[Tensor, Tensor]:
    """(order, keep): sort rows by the integer keys (member first), then by their points (Q, S),
    and keep the first of each group of rows with equal keys whose points lie within tol (Q,)
    (max-norm) of one of the DEDUPE_WINDOW rows before them in that order."""
    Q = points.shape[0]
    group = torch.zeros(Q, dtype=torch.long, device=points.device)
    for k in keys:  # one integer key, in the order of the keys
        group = group * (int(k.max()) + 1 if Q else 1) + k
    order = torch.arange(Q, device=points.device)
    for key in [*points.unbind(-1)[::-1], group]:
        order = order[torch.sort(key[order], stable=True).indices]
    keys = [group[order]]
    pts, tol = points[order], tol[order]
    dup = torch.zeros(Q, dtype=torch.bool, device=points.device)
    for w in range(1, DEDUPE_WINDOW + 1):
        same = (pts[w:] - pts[:-w]).abs().amax(-1) <= torch.maximum(tol[w:], tol[:-w])
        for k in keys:
            same = same & (k[w:] == k[:-w])
        dup[w:] |= same
    return order, ~dup


def _cycles(rows: _Rows, idx: Tensor, s: Tensor, upto: Tensor, tol: Tensor, period_tol: float, K: int,
            flags: tuple[Tensor, ...] = ()) -> tuple[Tensor, Tensor, Tensor]:
    """Minimal period, canonical phase and de-duplication of periodic points s (Q, S) of members
    idx (Q,): the period is the least d <= upto (Q,) with ||F^d(s) - s|| <= period_tol (1 + ||s||)
    (upto where none); rows are one object when member, flags and period agree and their
    canonical points lie within tol (Q,). -> (kept (n,) indices into the rows, period (n,),
    points (n, K, S) from the canonical phase, NaN from phase ``period`` on), sorted by member,
    flags, period and canonical point."""
    orbit = _orbit(rows.map(idx), s, K)  # (Q, K + 1, S)
    period = _first_return(orbit, period_tol, upto)
    period = torch.where(period > 0, period, upto)
    pts = _canonical(orbit, period)  # (Q, <= K, S)
    pts = torch.cat([pts, pts.new_full((pts.shape[0], K - pts.shape[1], pts.shape[2]), math.nan)], 1)
    order, keep = _distinct([idx, *flags, period], pts[:, 0], tol)
    kept = order[keep]
    return kept, period[kept], pts[kept]


def _objects(rows: _Rows, idx: Tensor, s: Tensor, run_period: Tensor, on_bound: Tensor, err: Tensor,
             opts: DynamicsOptions) -> dict:
    """The distinct objects among the roots found (Q rows: members idx, points s (Q, S), the period
    of the search that found them, on_bound, err), sorted by member, on_bound, period and
    canonical point: member, period, points (n, K, S), multipliers (n, S) by decreasing modulus,
    radius, stability (codes of STABILITY), on_bound, over the n objects."""
    K, S = opts.max_period, rows.S
    tol = opts.dedupe * _scale(s) + 2.0 * err
    flags = [idx, on_bound.to(torch.long), run_period]
    order, keep = _distinct(flags, s, tol)  # the same point found from many starts: once
    first = order[keep]
    idx, s, run_period, on_bound, tol = idx[first], s[first], run_period[first], on_bound[first], tol[first]
    kept, period, pts = _cycles(rows, idx, s, run_period, tol, opts.dedupe, K, (on_bound.to(torch.long),))
    idx, on_bound = idx[kept], on_bound[kept]
    n = idx.numel()
    F = rows.map(idx)
    cur = pts[:, 0].unsqueeze(1)  # (n, 1, S)
    prod = torch.eye(S, dtype=torch.float64, device=s.device).expand(n, S, S)
    monodromy = prod
    for j in range(1, int(period.max()) + 1 if n else 1):
        cur, J = F.jacobian(cur)
        prod = J[:, 0] @ prod  # (n, S, S) = J_{j-1} ... J_0
        monodromy = torch.where((period == j).view(n, 1, 1), prod, monodromy)
    ev = torch.linalg.eigvals(monodromy) if n else torch.zeros(0, S, dtype=torch.complex128, device=s.device)
    ev = torch.gather(ev, -1, torch.argsort(ev.abs(), dim=-1, descending=True))
    radius = ev.abs().amax(-1)
    stability = torch.where(radius < 1.0 - opts.marginal_tol, 2,
                            torch.where((radius - 1.0).abs() <= opts.marginal_tol, 1, 0)).to(torch.int8)
    return {"member": idx, "period": period, "points": pts, "multipliers": ev, "radius": radius,
            "stability": stability, "on_bound": on_bound}


# ---------------------------------------------------------------------------------------------
# the map of a population


def cell_params(problem: Problem, params: dict[str, Tensor]) -> dict[str, Tensor]:
    """The cell's parameters among ``params`` (a grid chunk's also holds the readout's), float64."""
    names = problem.cell.param_shapes(problem.H, problem.D)
    missing = [k for k in names if k not in params]
    if missing:
        raise LandscapeError(f"parameter {missing[0]!r} of {problem.where} is missing; have: {', '.join(params)}")
    return {k: torch.as_tensor(params[k]).detach().to(torch.float64) for k in names}


def _unsigned(value: int) -> int:
    """A 64-bit constant as the signed int64 with the same bits."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _shift_right(z: Tensor, k: int) -> Tensor:
    """The logical right shift of int64 bits (torch's >> is arithmetic)."""
    return (z >> k) & ((1 << (64 - k)) - 1)


def hashed_uniform(members: Tensor, stream: int, shape: tuple[int, ...], seed: int = 0) -> Tensor:
    """(P, *shape) float64 uniform in [0, 1): each a function of (seed, member, stream, position)
    alone (the splitmix64 finaliser of their combination), so a member's random starts are the same
    in any population it is computed in: a grid point's dynamics do not depend on its chunk.
    members (P,) int64 (a grid's flat indices), on the CPU."""
    size = math.prod(shape)
    z = (members.to(torch.int64).unsqueeze(-1) * _unsigned(0xD1B54A32D192ED03)
         + torch.tensor(int(seed) * (1 << 20) + int(stream)) * _unsigned(0x8CB92BA72F3D8DD7) + torch.arange(size))
    z = z + _unsigned(0x9E3779B97F4A7C15)
    z = (z ^ _shift_right(z, 30)) * _unsigned(0xBF58476D1CE4E5B9)
    z = (z ^ _shift_right(z, 27)) * _unsigned(0x94D049BB133111EB)
    z = z ^ _shift_right(z, 31)
    return (_shift_right(z, 11).to(torch.float64) / float(1 << 53)).reshape(-1, *shape)


class _PopulationDraws:
    """The random starts of P members from one generator for the whole population: uniform (P,
    *shape) in [0, 1) of dtype, integers (P, *shape) in [0, high)."""

    def __init__(self, P: int, seed: int):
        self.P, self.g = P, torch.Generator().manual_seed(int(seed))

    def uniform(self, shape, dtype=None) -> Tensor:
        return torch.rand((self.P, *shape), generator=self.g, dtype=dtype or torch.float64)

    def integers(self, high: int, shape) -> Tensor:
        return torch.randint(high, (self.P, *shape), generator=self.g)


class _MemberDraws:
    """The random starts of P members, each member's from its own index (``hashed_uniform``, a new
    stream per call): the same whatever population the member is computed in."""

    def __init__(self, members, P: int, seed: int):
        self.ids = torch.as_tensor(members, dtype=torch.int64).cpu().reshape(-1)
        if self.ids.shape != (P,):
            raise LandscapeError(f"members has {self.ids.numel()} indices for a population of {P}")
        self.seed, self.streams = int(seed), iter(range(1 << 20))

    def uniform(self, shape, dtype=None) -> Tensor:
        return hashed_uniform(self.ids, next(self.streams), tuple(shape), self.seed)  # float64 for any dtype

    def integers(self, high: int, shape) -> Tensor:
        return (self.uniform(shape) * high).long().clamp(max=high - 1)


def dynamics_map(problem: Problem, params: dict[str, Tensor], input=None, options: DynamicsOptions | None = None,
                 visited: Tensor | None = None, members=None) -> DynamicsMap:
    """Fixed points and cycles of every member at a constant input (see the module docstring).

    problem  the resolved model (``problem.Problem``): its cell, H, D and task
    params   name -> (P or 1, *shape): the population (a grid chunk's parameters); other names
             (the readout's) are ignored
    input    the constant input: a number (every component), (D,) or (P, D); None: the task's
             input mean (``default_input``); nothing for a cell without input (D = 0)
    visited  optional states of real sequences, (P or 1, M, S): more simulation starts
    members  (P,) the members' indices (a grid's flat indices): each member's random starts are
             drawn from its own index (``hashed_uniform``), so its map does not depend on the others
             computed with it (a grid's chunking); None: one generator for the population
    """
    opts = options or DynamicsOptions()
    opts.check()
    p = cell_params(problem, params)
    P = max(v.shape[0] for v in p.values())
    if input is None and problem.D > 0:
        input = default_input(problem.task)
    rows = _Rows(problem.cell, p, _input_tensor(input, P, problem.D))
    S, K = rows.S, opts.max_period
    dev = next(iter(p.values())).device
    draw = _PopulationDraws(P, opts.seed) if members is None else _MemberDraws(members, P, opts.seed)

    def uniform(lo, hi, n):  # (P, n, S) a Latin hypercube in the box [lo, hi] (P, S): each
        # coordinate's n values fall one in each of n equal slices, in a random order
        rank = torch.argsort(draw.uniform((n, S), torch.float32), dim=1)
        u = ((rank + draw.uniform((n, S))) / n).to(device=dev)
        return lo.unsqueeze(1) + (hi - lo).unsqueeze(1) * u

    # 1. forward simulation
    r = torch.full((P, S), float(opts.radius), dtype=torch.float64, device=dev)
    starts = [uniform(-r, r, opts.n_simulate)]
    if visited is not None:
        v = torch.as_tensor(visited, dtype=torch.float64).to(dev)
        if v.ndim != 3 or v.shape[-1] != S or v.shape[0] not in (1, P):
            raise LandscapeError(f"visited states have shape {tuple(v.shape)}; expected (P or 1, M, {S})")
        pick = draw.integers(v.shape[1], (opts.n_simulate,)).to(dev)
        starts.append(torch.gather(v.expand(P, -1, -1), 1, pick.unsqueeze(-1).expand(P, opts.n_simulate, S)))
    starts = torch.cat(starts, 1)  # (P, n, S)
    members = torch.arange(P, device=dev).repeat_interleave(starts.shape[1])
    seeds, left, unsettled, lo, hi = _simulate(rows, starts.reshape(-1, S), members, opts)
    kept, seed_period, seed_points = _cycles(rows, seeds[0], seeds[1], seeds[2], SEED_MERGE * _scale(seeds[1]),
                                             opts.settle_tol, K)
    seeds = (seeds[0][kept], seed_points[:, 0], seed_period)  # one start per attractor reached
    at = seeds[0].repeat_interleave(K).unsqueeze(-1).expand(-1, S)
    phases = seed_points.reshape(-1, S)
    lo.scatter_reduce_(0, at, torch.nan_to_num(phases, nan=math.inf), "amin")  # the attractors' points
    hi.scatter_reduce_(0, at, torch.nan_to_num(phases, nan=-math.inf), "amax")

    # the box, the bound, the largest step
    seen = torch.isfinite(lo).all(-1, keepdim=True)
    lo, hi = torch.where(seen, lo, -r), torch.where(seen, hi, r)
    pad = opts.widen * (hi - lo) + 1e-3
    lo, hi = lo - pad, hi + pad  # (P, S)
    if opts.bound is None:
        bound = opts.bound_factor * torch.maximum(lo.abs(), hi.abs()).amax(-1).clamp(min=1.0)  # (P,)
    else:
        bound = torch.full((P,), float(opts.bound), dtype=torch.float64, device=dev)
    lo, hi = torch.maximum(lo, -bound.unsqueeze(-1)), torch.minimum(hi, bound.unsqueeze(-1))
    cap = opts.max_step * (hi - lo).amax(-1)  # (P,)

    # 2. Newton for every period
    found = ([], [], [], [], [])
    n_degenerate = torch.zeros(P, dtype=torch.long, device=dev)
    for k in range(1, K + 1):
        n = opts.starts(S, k)
        u = uniform(lo, hi, n)
        mine = seeds[2] == k
        extra = left if k == 1 else (left[0][:0], left[1][:0])  # slow or long transients: near something
        idx = torch.cat([torch.arange(P, device=dev).repeat_interleave(n), seeds[0][mine], extra[0]])
        s = torch.cat([u.reshape(-1, S), seeds[1][mine], extra[1]])
        s = torch.maximum(torch.minimum(s, bound[idx].unsqueeze(-1)), -bound[idx].unsqueeze(-1))
        m, pts, on_bound, err, flat = _newton(rows, idx, s, k, bound, cap, opts)
        n_degenerate += torch.bincount(flat, minlength=P)
        for part, v in zip(found, (m, pts, torch.full_like(m, k), on_bound, err)):
            part.append(v)
    obj = _objects(rows, *(torch.cat(part) for part in found), opts)
    return _collect(problem, rows, obj, unsettled, n_degenerate, bound, _input_tensor(input, P, problem.D), opts)


def _collect(problem, rows: _Rows, obj: dict, unsettled: Tensor, n_degenerate: Tensor, bound: Tensor, x, opts
             ) -> DynamicsMap:
    """Counts per member and the padded object arrays (numpy)."""
    P, K = rows.P, opts.max_period
    m, period, stab, on_bound = obj["member"], obj["period"], obj["stability"], obj["on_bound"]
    counted = ~on_bound

    def per_member_period(mask):  # (P, K) counts of objects by member and period
        return torch.bincount((m * K + period - 1)[mask], minlength=P * K).reshape(P, K)

    n_cycles = per_member_period(counted)
    n_stable = per_member_period(counted & (stab == 2))
    n_marginal = torch.bincount(m[~on_bound & (stab == 1)], minlength=P)
    n_at_bound = torch.bincount(m[on_bound], minlength=P)

    count = torch.bincount(m, minlength=P)  # objects are sorted by member
    M = int(count.max()) if m.numel() else 0
    rank = torch.arange(m.numel(), device=m.device) - (torch.cumsum(count, 0) - count)[m]
    dev = m.device

    def padded(values, fill, dtype):
        out = torch.full((P, M, *values.shape[1:]), fill, dtype=dtype, device=dev)
        out[m, rank] = values.to(dtype)
        return out.cpu().numpy()

    return DynamicsMap(
        cell=problem.cell.name, state_names=tuple(problem.cell.state_names), H=problem.H,
        input=None if x is None else x.cpu().numpy(), options=opts,
        n_fixed=n_cycles[:, 0].cpu().numpy(), n_stable_fixed=n_stable[:, 0].cpu().numpy(),
        n_cycles=n_cycles.cpu().numpy(), n_stable_cycles=n_stable.cpu().numpy(),
        n_marginal=n_marginal.cpu().numpy(), n_at_bound=n_at_bound.cpu().numpy(),
        unsettled=unsettled.cpu().numpy(), n_degenerate=n_degenerate.cpu().numpy(), bound=bound.cpu().numpy(),
        period=padded(period, 0, torch.long), points=padded(obj["points"], math.nan, torch.float64),
        multipliers=padded(obj["multipliers"], complex(math.nan, math.nan), torch.complex128),
        radius=padded(obj["radius"], math.nan, torch.float64), stability=padded(stab, 0, torch.int8),
        at_bound=padded(on_bound, False, torch.bool))


# ---------------------------------------------------------------------------------------------
# the largest finite-time Lyapunov exponent on the task's sequences

LYAPUNOV_DIMS = ("T", "point", "exponent")
LYAPUNOV_BLOCK = 1 << 18  # Jacobian entries (members x sequences x S x S) per block of members


def lyapunov(problem: Problem, params: dict[str, Tensor], data: TaskData, Ts: tuple[int, ...], n_exponents: int = 1,
             vectors: Tensor | None = None, seed: int = 0, block: int = LYAPUNOV_BLOCK) -> np.ndarray:
    """The largest finite-time Lyapunov exponents on the task's sequences: (len(Ts), P, n_exponents),
    dims ``LYAPUNOV_DIMS``.

    lambda_T = mean over the N sequences of (1/T_n) log ||J_{T_n} ... J_1 v||, J_t the Jacobian of
    the state map (the full state) at step t with the sequence's input, T_n the sequence's own end
    at nominal length T (``data.ends``). The vectors are carried forward and re-orthonormalised
    every step (QR; a normalisation for one exponent), the logs of the diagonal of R summed.
    vectors: the initial (S, n_exponents) or (N, S, n_exponents) vectors (orthonormalised here);
    None: Gaussian ones from ``seed``. A product that reaches 0 (a saturated hard gate, a dead
    ReLU) gives -inf. params: name -> (P or 1, *shape); Ts in data.

    One exponent on the CPU in float64 comes from the fused kernel (``kernels.numba.lyapunov``: the
    step and J v in forward mode, generated from the cell's trace) where one applies ($LANDSCAPE_FAST
    not 0, a step that traces, H within its range); it agrees with autograd's path
    (``lyapunov_autograd``, in blocks of ``block`` Jacobian entries) to about 1e-13 relative,
    not bit for bit (its F and J v round differently from torch's). The members where the kernel
    met something not finite (a parameter, an input, a state, J v) are autograd's.
    """
    cell, H = problem.cell, problem.H
    p = cell_params(problem, params)
    P = max(v.shape[0] for v in p.values())
    S, N, k = H * len(cell.state_names), data.n, int(n_exponents)
    if not 1 <= k <= S:
        raise LandscapeError(f"n_exponents must be in 1..{S} (the state's size), got {n_exponents}")
    dev = next(iter(p.values())).device
    if vectors is None:
        g = torch.Generator().manual_seed(int(seed))
        vectors = torch.randn((N, S, k), generator=g, dtype=torch.float64)
    v0 = torch.as_tensor(vectors, dtype=torch.float64).to(dev).expand(N, S, k)
    v0 = torch.linalg.qr(v0).Q  # (N, S, k)
    inputs = None if data.inputs is None else data.inputs.to(dtype=torch.float64, device=dev)
    out = np.empty((len(Ts), P, k))
    todo = np.arange(P)  # the members autograd computes
    kernel = _fused_lyapunov(problem, p, k)
    if kernel is not None:
        out[..., 0], bad = kernel(p, inputs, data.h0, v0[..., 0], [data.ends[T] for T in Ts])
        todo = np.flatnonzero(bad)  # where something was not finite: autograd's values (see the kernel)
    for start, stop in flat_chunks(len(todo), max(1, block // (N * S * S))):
        rows = todo[start:stop]
        pick = slice(rows[0], rows[-1] + 1) if rows[-1] - rows[0] == len(rows) - 1 else torch.as_tensor(rows)
        sub = {name: v[pick] if v.shape[0] == P else v for name, v in p.items()}
        out[:, rows] = lyapunov_autograd(cell, sub, len(rows), H, data, Ts, v0, inputs)
    return out


def _fused_lyapunov(problem: Problem, params: dict[str, Tensor], k: int):
    """The fused kernel of lambda_T where it applies (one exponent, float64 parameters on the CPU,
    $LANDSCAPE_FAST not 0, a kernel that builds), else None."""
    from . import settings

    if k != 1 or not settings.fast() or any(v.device.type != "cpu" or v.dtype != torch.float64
                                             for v in params.values()):
        return None
    from .kernels.numba.lyapunov import lyapunov_kernel

    return lyapunov_kernel(problem.cell, problem.H, problem.D)


# ---------------------------------------------------------------------------------------------
# bifurcation lines


def bifurcation_edges(*fields) -> tuple[np.ndarray, np.ndarray]:
    """The faces between neighbouring grid points whose fields differ (SCYFI's neighbour rule).

    fields: arrays (nx, ny, ...) on one "ij" grid (counts, stability codes, a signature: equal
    NaNs count as equal). Returns (across_x (nx - 1, ny), across_y (nx, ny - 1)) bool: across_x[i, j]
    where points (i, j) and (i + 1, j) differ in any field, across_y[i, j] for (i, j), (i, j + 1)."""
    if not fields:
        raise LandscapeError("bifurcation_edges needs at least one field")
    shape = np.shape(fields[0])[:2]
    across_x = np.zeros((shape[0] - 1, shape[1]), dtype=bool)
    across_y = np.zeros((shape[0], shape[1] - 1), dtype=bool)
    for f in fields:
        f = np.asarray(f)
        if f.shape[:2] != shape:
            raise LandscapeError(f"fields on different grids: {tuple(shape)} and {tuple(f.shape[:2])}")
        f = f.reshape(*shape, -1)
        across_x |= _differ(f[1:], f[:-1])
        across_y |= _differ(f[:, 1:], f[:, :-1])
    return across_x, across_y


def _differ(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    same = a == b
    if np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.complexfloating):
        same |= np.isnan(a) & np.isnan(b)
    return ~same.all(-1)


def _faces(v: np.ndarray) -> np.ndarray:
    """Grid values (n,) -> the n + 1 faces of their cells: midpoints, and half a step beyond the ends."""
    v = np.asarray(v, dtype=float)
    if v.size == 1:
        return np.array([v[0] - 0.5, v[0] + 0.5])
    mid = 0.5 * (v[1:] + v[:-1])
    return np.concatenate([[v[0] - (mid[0] - v[0])], mid, [v[-1] + (v[-1] - mid[-1])]])


def bifurcation_segments(across_x: np.ndarray, across_y: np.ndarray, x, y) -> np.ndarray:
    """The faces of ``bifurcation_edges`` as line segments in data coordinates: (L, 2, 2), each
    [[x0, y0], [x1, y1]] (ready for matplotlib's LineCollection). x (nx,), y (ny,): the grid values."""
    xf, yf = _faces(x), _faces(y)  # (nx + 1,), (ny + 1,)
    i, j = np.nonzero(across_x)  # the face between x_i and x_{i+1}, spanning y_j's cell
    seg_x = np.stack([np.stack([xf[i + 1], yf[j]], -1), np.stack([xf[i + 1], yf[j + 1]], -1)], 1)
    i, j = np.nonzero(across_y)
    seg_y = np.stack([np.stack([xf[i], yf[j + 1]], -1), np.stack([xf[i + 1], yf[j + 1]], -1)], 1)
    return np.concatenate([seg_x, seg_y]).reshape(-1, 2, 2)


def stored_bifurcation_segments(fields: dict[str, np.ndarray], x, y) -> np.ndarray:
    """The bifurcation lines of a surface file's dynamics fields (``grid_fields`` on the grid x
    (nx,), y (ny,)): the faces between neighbouring points whose n_cycles or n_stable_cycles
    (nx, ny, K) differ, as segments (L, 2, 2) (``bifurcation_segments``). Faces beside a point not
    yet computed (NaN) are left out, so an incomplete file draws no lines along its chunks."""
    cycles, stable = (np.asarray(fields[name]) for name in PERIOD_FIELDS)
    across_x, across_y = bifurcation_edges(cycles, stable)
    done = np.isfinite(cycles).all(-1) & np.isfinite(stable).all(-1)  # (nx, ny)
    return bifurcation_segments(across_x & done[1:] & done[:-1], across_y & done[:, 1:] & done[:, :-1], x, y)


# ---------------------------------------------------------------------------------------------
# a grid's dynamics fields

GRID_SEQUENCES = 100  # lambda_T on a grid: the mean over the task's first this many sequences


def grid_field_shapes(options: DynamicsOptions) -> dict[str, tuple]:
    """The SurfaceWriter ``fields`` of a --dynamics surface (``store.SurfaceContents``): the counts
    (nx, ny), the counts per period (nx, ny, K) and lyapunov (nT, nx, ny)."""
    return {**{name: ("grid",) for name in COUNT_FIELDS},
            **{name: ("grid", int(options.max_period)) for name in PERIOD_FIELDS}, "lyapunov": ()}


def first_sequences(data: TaskData, m: int) -> TaskData:
    """The task's data cut to its first m sequences (all of them when it has fewer)."""
    from .tasks import TaskData

    return TaskData(None if data.inputs is None else data.inputs[:, :m], {T: t[:m] for T, t in data.targets.items()},
                    {T: e[:m] for T, e in data.ends.items()}, data.h0)


def grid_fields(problem: Problem, params: dict[str, Tensor], members: np.ndarray, data: TaskData,
                Ts: tuple[int, ...], input, options: DynamicsOptions) -> dict[str, np.ndarray]:
    """The dynamics of one chunk of P grid points, for the surface file: every name of
    ``grid_field_shapes``, float64 numpy arrays: the counts of ``dynamics_map`` at the constant
    ``input`` (P,) and (P, K), and "lyapunov" (nT, P), lambda_T at every T over the task's first
    ``GRID_SEQUENCES`` sequences. params: name -> (P or 1, *shape) (a chunk's: parameters off the
    axes have a leading 1, so a grid over the readout's parameters has one dynamics, broadcast);
    members (P,): the points' flat grid indices (their random starts: ``hashed_uniform``)."""
    P = len(members)
    cell_P = max(v.shape[0] for v in cell_params(problem, params).values())
    dm = dynamics_map(problem, params, input, options, members=members if cell_P == P else members[:1])
    lam = lyapunov(problem, params, first_sequences(data, GRID_SEQUENCES), Ts)[..., 0]  # (nT, P or 1)
    out = {name: np.broadcast_to(getattr(dm, name), (P, *getattr(dm, name).shape[1:]))
           for name in (*COUNT_FIELDS, *PERIOD_FIELDS)}
    out["lyapunov"] = np.broadcast_to(lam, (len(Ts), P))
    return {name: np.ascontiguousarray(v, dtype=np.float64) for name, v in out.items()}


__all__ = [
    "BUILTIN_INPUT_MEANS",
    "DYNAMICS_DIMS",
    "GRID_SEQUENCES",
    "LYAPUNOV_DIMS",
    "STABILITY",
    "DynamicsMap",
    "DynamicsOptions",
    "bifurcation_edges",
    "bifurcation_segments",
    "cell_params",
    "default_input",
    "dynamics_map",
    "first_sequences",
    "grid_field_shapes",
    "grid_fields",
    "lyapunov",
    "stored_bifurcation_segments",
]
