"""Fixed points, stability, folds, basin boundaries and bifurcation diagrams of the one-unit maps.

The free-running one-unit maps (constant input drive c, default 0; w, b scalars):

    srnn      h -> F(h) = tanh(w h + b + c)          state h in (-1, 1)
    pascanu   x -> F(x) = w sigmoid(x) + b + c       state x = the pre-activation; Pascanu et al.
                                                     plot the output sigmoid(x) in [0, 1]

Both are conjugate to the pre-activation map  a -> w phi(a) + beta  with beta = b + c and
phi = tanh (srnn, h = tanh(a)) or phi = sigmoid (pascanu, a = x). Fixed points correspond one to
one, with the same multiplier F'(x*) = w phi'(a*), so every computation here runs in the
pre-activation a and reports the cell's own state. G(a) = w phi(a) + beta - a has G' = w phi' - 1,
which vanishes at most at the two points +-a_c(w) where w phi'(a) = 1 (only for w above the cusp
value: 1 for tanh, 4 for sigmoid). They split the state range into at most three monotone pieces,
each holding at most one fixed point: the *branches* lower (0), middle (1) and upper (2).

- ``fixed_points``: all fixed points at one (w, b), found with brentq (the careful reference).
- ``fixed_point_grid``: counts and stable values over a (w, b) grid, vectorised bisection.
- ``fold_points``, ``fold_curve``: the saddle-node curves in closed form.
- ``basin_boundary``, ``attractor_reached``: where a given x0 is the unstable fixed point.
- ``bifurcation_diagram``: fixed points against b at fixed w, organised by branch (Pascanu Fig. 3).

The constant input c is the total drive (u * x for a cell with input weight u); it only ever
appears as b + c. A fixed point with |F'| < 1 is stable; at a fold |F'| = 1 and the (double)
fixed point is reported once and counted as not stable.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from .cells import CELLS, cell_class
from .cells.maps import OneUnitMap
from .errors import LandscapeError

BRANCHES = ("lower", "middle", "upper")


def dynamics_cells() -> tuple[str, ...]:
    """The registered cells that declare a one-unit map (``Cell.one_unit_map``): srnn, pascanu."""
    return tuple(name for name, cls in CELLS.builtins.items() if cls.one_unit_map is not None)


DYNAMICS_CELLS = dynamics_cells()

# |G| at a fold state below this (times 1 + |w| + |b + c|) counts as an exact double root
_FOLD_TOL = 1e-13


def one_unit_map(cell) -> OneUnitMap:
    """The one-unit map of a cell given by name or reference, as a Cell, or a OneUnitMap itself."""
    if isinstance(cell, OneUnitMap):
        return cell
    m = getattr(cell, "one_unit_map", None)
    if m is None and isinstance(cell, str):
        try:
            m = cell_class(cell).one_unit_map
        except LandscapeError:
            m = None
    if m is None:
        name = getattr(cell, "name", cell)
        raise LandscapeError(f"no one-unit dynamics for cell {name!r}; choose from: {', '.join(DYNAMICS_CELLS)}")
    return m


def check_cell(cell) -> str:
    """The name of a cell's one-unit map (srnn, pascanu); LandscapeError for a cell without one."""
    return one_unit_map(cell).name


def map_step(cell, state, w, b, c=0.0):
    """F(state): one step of the free-running map; numpy broadcasting over all arguments."""
    return one_unit_map(cell).step(state, w, b, c)


def map_slope(cell, state, w, b, c=0.0):
    """F'(state), the multiplier of the map at ``state``; broadcasting over all arguments."""
    return one_unit_map(cell).slope(state, w, b, c)


def _state_interval(m: OneUnitMap, w, beta):
    """Pre-activation interval [lo, hi] that holds every fixed point: beta + w * phi_range."""
    lo_phi, hi_phi = m.phi_range
    ends = (beta + w * lo_phi, beta + w * hi_phi)
    return np.minimum(*ends), np.maximum(*ends)


def _gap(m: OneUnitMap, a, w, beta):
    """G(a) = w phi(a) + beta - a: zero exactly at fixed points (pre-activation)."""
    return w * m.phi(a) + beta - a


def _fold_tol(w, beta):
    return _FOLD_TOL * (1.0 + np.abs(w) + np.abs(beta))


# ---------------------------------------------------------------------------------------------
# fixed points at one (w, b)


@dataclass(frozen=True)
class FixedPoint:
    """One fixed point of the map.

    state: the cell's state (srnn h, pascanu x); preactivation: w h + b + c (srnn) or x (pascanu);
    output: phi(preactivation), i.e. h (srnn) or sigmoid(x) (pascanu, Pascanu Fig. 3's axis);
    multiplier: F'(state); stable: |F'| < 1 (False at a fold, where |F'| = 1);
    branch: 0 lower, 1 middle, 2 upper (which monotone piece of F(x) - x holds it).
    """

    state: float
    preactivation: float
    output: float
    multiplier: float
    stable: bool
    branch: int


def fixed_points(cell, w: float, b: float, c: float = 0.0, n_grid: int = 512) -> tuple[FixedPoint, ...]:
    """All fixed points of the one-unit map at (w, b), ascending.

    Sign changes of G(a) = w phi(a) + b + c - a are bracketed on ``n_grid`` points over the
    whole range that can hold a fixed point, merged with the two points where F' = 1 (so that
    every bracket lies in one monotone piece of G and a double root at a fold is not lost), and
    refined with brentq. A fold point where |G| is at rounding level is reported once, as
    not stable. Returns 1 to 3 fixed points (exactly 1 when w is below the cusp or negative);
    each satisfies |F(x*) - x*| < 1e-10 in the cell's state.
    """
    m = one_unit_map(cell)
    w, beta = float(w), float(b) + float(c)
    if not (np.isfinite(w) and np.isfinite(beta)):
        raise LandscapeError(f"w and b + c must be finite; got w={w}, b+c={beta}")
    lo, hi = _state_interval(m, w, beta)
    a_c = m.fold_preactivation(w)
    crit = np.array([-a_c, a_c]) if a_c > 0 else np.empty(0)  # a_c = 0 at the cusp: monotone
    crit = crit[(crit > lo) & (crit < hi)]
    nodes = np.unique(np.concatenate([np.linspace(lo, hi, max(int(n_grid), 2)), crit]))  # (K,)
    g = _gap(m, nodes, w, beta)
    is_fold = np.isin(nodes, crit) & (np.abs(g) <= _fold_tol(w, beta))
    g[is_fold] = 0.0

    roots = [(a, bool(f)) for a, f in zip(nodes[g == 0.0], is_fold[g == 0.0])]
    for k in np.flatnonzero(g[:-1] * g[1:] < 0):
        a = brentq(lambda a: _gap(m, a, w, beta), nodes[k], nodes[k + 1], xtol=1e-15, maxiter=200)
        roots.append((a, False))
    roots.sort()

    out = []
    for a, at_fold in roots:
        mult = float(w * m.dphi(a))
        branch = 0  # a fold's double root at -a_c belongs to the lower branch, at +a_c upper
        if a_c > 0 and a > -a_c:
            branch = 1 if a < a_c else 2
        out.append(FixedPoint(state=float(m.to_state(a)), preactivation=float(a),
                              output=float(m.phi(a)), multiplier=mult,
                              stable=bool(abs(mult) < 1 and not at_fold), branch=branch))
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# vectorised: all fixed points on arrays of (w, beta), by branch


def _solve_branches(m: OneUnitMap, w, beta, iterations: int = 80):
    """Fixed points for broadcast arrays w, beta (shape S) by branch -> (pre (S, 3), fold (S, 3)).

    pre[..., k] is the pre-activation of the fixed point on branch k (NaN where there is none);
    fold marks a double root at a fold. Bisection on each monotone piece, ``iterations`` halvings.
    """
    w, beta = np.broadcast_arrays(np.asarray(w, dtype=float), np.asarray(beta, dtype=float))
    lo, hi = _state_interval(m, w, beta)  # (S,)
    a_c = m.fold_preactivation(w)
    with np.errstate(invalid="ignore"):
        has_fold = a_c > 0  # NaN below the cusp; 0 at the cusp, where G is still monotone
    c_lo = np.where(has_fold, np.clip(-a_c, lo, hi), hi)  # no folds: one piece [lo, hi]
    c_hi = np.where(has_fold, np.clip(a_c, lo, hi), hi)
    tol = _fold_tol(w, beta)
    g_lo_node = _gap(m, c_lo, w, beta)
    g_hi_node = _gap(m, c_hi, w, beta)
    fold_lo = has_fold & (-a_c > lo) & (-a_c < hi) & (np.abs(g_lo_node) <= tol)
    fold_hi = has_fold & (a_c > lo) & (a_c < hi) & (np.abs(g_hi_node) <= tol)
    g_lo_node = np.where(fold_lo, 0.0, g_lo_node)
    g_hi_node = np.where(fold_hi, 0.0, g_hi_node)

    # which piece holds a root (G(lo) > 0 > G(hi); G falls on pieces 0 and 2, rises on piece 1)
    root0 = ((c_lo > lo) | ~has_fold) & (g_lo_node <= 0)
    root1 = has_fold & (g_lo_node < 0) & (g_hi_node > 0)
    root2 = has_fold & (c_hi < hi) & (g_hi_node >= 0)

    left = np.stack([lo, c_lo, c_hi], axis=-1)  # (S, 3)
    right = np.stack([c_lo, c_hi, hi], axis=-1)  # (S, 3)
    falls = np.array([1.0, -1.0, 1.0])  # sign of G at the left end of a piece with a root
    wk, bk = w[..., None], beta[..., None]  # (S, 1)
    for _ in range(iterations):
        mid = 0.5 * (left + right)
        go_right = _gap(m, mid, wk, bk) * falls > 0
        left = np.where(go_right, mid, left)
        right = np.where(go_right, right, mid)
    pick_left = np.abs(_gap(m, left, wk, bk)) < np.abs(_gap(m, right, wk, bk))
    pre = np.where(pick_left, left, right)
    pre[..., 0] = np.where(fold_lo, c_lo, pre[..., 0])
    pre[..., 2] = np.where(fold_hi, c_hi, pre[..., 2])
    found = np.stack([root0, root1, root2], axis=-1)
    fold = np.stack([fold_lo & root0, np.zeros_like(root1), fold_hi & root2], axis=-1)
    return np.where(found, pre, np.nan), fold


def _describe(m: OneUnitMap, pre, fold, w):
    """State, output, multiplier and stability of fixed points given by pre-activation."""
    w = np.asarray(w, dtype=float)[..., None]
    with np.errstate(invalid="ignore"):
        mult = w * m.dphi(pre)
        stable = (np.abs(mult) < 1) & ~fold & np.isfinite(pre)
    return m.to_state(pre), m.phi(pre), mult, stable


@dataclass(frozen=True)
class FixedPointGrid:
    """Fixed points over a (w, b) grid, "ij" indexed: [i, j] is (w_i, b_j).

    w (nw,), b (nb,); n_fixed, n_stable (nw, nb) int; stable_values (nw, nb, 3): the stable fixed
    points (cell state), ascending, NaN-padded; fixed, multiplier (nw, nb, 3): every fixed point
    by branch (lower, middle, upper), NaN where a branch does not exist.
    """

    cell: str
    c: float
    w: np.ndarray
    b: np.ndarray
    n_fixed: np.ndarray
    n_stable: np.ndarray
    stable_values: np.ndarray
    fixed: np.ndarray
    multiplier: np.ndarray


def fixed_point_grid(cell, w_values, b_values, c: float = 0.0) -> FixedPointGrid:
    """Number of fixed points, number of stable ones and the stable values over a (w, b) grid.

    w_values (nw,), b_values (nb,) -> FixedPointGrid with arrays (nw, nb) and (nw, nb, 3);
    vectorised over the grid (bisection on the monotone pieces of F(x) - x).
    """
    m = one_unit_map(cell)
    w_values = np.atleast_1d(np.asarray(w_values, dtype=float))  # (nw,)
    b_values = np.atleast_1d(np.asarray(b_values, dtype=float))  # (nb,)
    W, B = np.meshgrid(w_values, b_values + c, indexing="ij")  # (nw, nb)
    pre, fold = _solve_branches(m, W, B)  # (nw, nb, 3)
    state, _, mult, stable = _describe(m, pre, fold, W)
    stable_values = np.sort(np.where(stable, state, np.nan), axis=-1)  # NaN sorts last
    return FixedPointGrid(cell=m.name, c=float(c), w=w_values, b=b_values,
                          n_fixed=np.isfinite(pre).sum(-1), n_stable=stable.sum(-1),
                          stable_values=stable_values, fixed=state, multiplier=mult)


# ---------------------------------------------------------------------------------------------
# folds (saddle-node bifurcations) in closed form


@dataclass(frozen=True)
class FoldPoints:
    """The two folds at fixed w (arrays of the shape of w; NaN where w is below the cusp).

    b1 > b2: for b2 < b < b1 two attractors coexist. At b1 the lower attractor meets the middle
    (unstable) fixed point at state1; at b2 the upper attractor meets it at state2 (cell state).
    """

    cell: str
    c: float
    w: np.ndarray
    b1: np.ndarray
    b2: np.ndarray
    state1: np.ndarray
    state2: np.ndarray


def _fold_bias(m: OneUnitMap, pre, w, c):
    """b such that pre is a fixed point: pre = w phi(pre) + b + c."""
    return pre - w * m.phi(pre) - c


def fold_points(cell, w, c: float = 0.0) -> FoldPoints:
    """b values of the two folds at recurrent weight w (scalar or array), in closed form.

    srnn: w (1 - h^2) = 1, b = artanh(h) - w h - c; pascanu: w sigmoid'(x) = 1,
    b = x - w sigmoid(x) - c. Folds exist for w >= 1 (srnn) or w >= 4 (pascanu), else NaN.
    """
    m = one_unit_map(cell)
    w = np.asarray(w, dtype=float)
    a_c = m.fold_preactivation(w)
    return FoldPoints(cell=m.name, c=float(c), w=w,
                      b1=np.asarray(_fold_bias(m, -a_c, w, c)), b2=np.asarray(_fold_bias(m, a_c, w, c)),
                      state1=np.asarray(m.to_state(-a_c)), state2=np.asarray(m.to_state(a_c)))


@dataclass(frozen=True)
class FoldBranch:
    """One branch of the fold curve: w, b, state (n,) each; state is the double fixed point."""

    w: np.ndarray
    b: np.ndarray
    state: np.ndarray


@dataclass(frozen=True)
class FoldCurve:
    """The saddle-node curve in the (w, b) plane: two branches that meet at the cusp.

    lower: folds of the lower attractor (the b1 side); upper: of the upper attractor (b2 side).
    """

    cell: str
    c: float
    lower: FoldBranch
    upper: FoldBranch


def fold_curve(cell, w_max: float = 8.0, num: int = 201, c: float = 0.0) -> FoldCurve:
    """Both fold branches for w from the cusp (1 srnn, 4 pascanu) to w_max, ``num`` points each.

    Parametrised by the state at the fold, whose closed form in w is used to space the points
    evenly in w. Each branch is (w, b, state) arrays of shape (num,).
    """
    m = one_unit_map(cell)
    if not w_max > m.w_cusp:
        raise LandscapeError(f"w_max must exceed the cusp at w = {m.w_cusp:g} for {m.name}; got {w_max}")
    w = np.linspace(m.w_cusp, w_max, int(num))  # (num,)
    f = fold_points(m, w, c)
    return FoldCurve(cell=m.name, c=float(c), lower=FoldBranch(w, f.b1, f.state1),
                     upper=FoldBranch(w, f.b2, f.state2))


# ---------------------------------------------------------------------------------------------
# basins


@dataclass(frozen=True)
class BasinBoundary:
    """Where x0 is exactly the unstable fixed point: b (n,) over w (n,), NaN where it cannot be
    (w phi' <= 1 at x0: no bistability with x0 in the middle). Just above the curve (larger b)
    x0 goes to the upper attractor, just below to the lower one."""

    cell: str
    x0: float
    c: float
    w: np.ndarray
    b: np.ndarray
    multiplier: np.ndarray


def basin_boundary(cell, x0: float, w_values, c: float = 0.0) -> BasinBoundary:
    """The basin boundary of initial state x0 in the (w, b) plane, in closed form.

    pascanu: b = x0 - w sigmoid(x0) - c; srnn: b = artanh(x0) - w x0 - c; kept where that fixed
    point is unstable (multiplier w phi' > 1), which is exactly where the map is bistable with
    x0 on the middle branch. w_values (n,) -> b (n,).
    """
    m = one_unit_map(cell)
    x0 = float(m.check_state(x0))
    w = np.atleast_1d(np.asarray(w_values, dtype=float))  # (n,)
    pre0 = m.from_state(x0)
    mult = w * m.dphi(pre0)
    b = np.where(mult > 1, _fold_bias(m, pre0, w, c), np.nan)
    return BasinBoundary(cell=m.name, x0=x0, c=float(c), w=w, b=b, multiplier=mult)


def attractor_reached(cell, x0, w_values, b_values, steps: int = 2000, c: float = 0.0) -> np.ndarray:
    """The state after ``steps`` iterations from x0 at every (w_i, b_j): (nw, nb), "ij" indexed.

    Vectorised over the grid. For a map that settles (w >= 0) this is the attractor reached; for
    negative w it may be a point of a 2-cycle.
    """
    m = one_unit_map(cell)
    x0 = m.check_state(x0)
    W, B = np.meshgrid(np.atleast_1d(np.asarray(w_values, dtype=float)),
                       np.atleast_1d(np.asarray(b_values, dtype=float)) + c, indexing="ij")
    x = np.broadcast_to(x0, W.shape).astype(float)  # (nw, nb)
    for _ in range(int(steps)):
        x = m.step(x, W, B)
    return x


# ---------------------------------------------------------------------------------------------
# bifurcation diagram against b


@dataclass(frozen=True)
class BifurcationDiagram:
    """Fixed points against b at fixed w, by branch: column 0 lower, 1 middle, 2 upper.

    b (nb,); fixed, output, multiplier, stable (nb, 3): cell state, phi of the pre-activation
    (srnn: h itself; pascanu: sigmoid(x), Pascanu Fig. 3's axis), F' and |F'| < 1. NaN (False)
    where a branch does not exist. Without folds (w below the cusp) the single fixed point is
    the lower branch. folds: the fold points at this w.
    """

    cell: str
    w: float
    c: float
    b: np.ndarray
    fixed: np.ndarray
    output: np.ndarray
    multiplier: np.ndarray
    stable: np.ndarray
    folds: FoldPoints

    @property
    def attractors(self) -> np.ndarray:
        """(nb, 3) stable fixed points (state), NaN elsewhere: the bold curves."""
        return np.where(self.stable, self.fixed, np.nan)

    @property
    def unstable(self) -> np.ndarray:
        """(nb, 3) unstable fixed points (state), NaN elsewhere: the dashed curve."""
        return np.where(~self.stable & np.isfinite(self.fixed), self.fixed, np.nan)

    @property
    def attractors_output(self) -> np.ndarray:
        """(nb, 3) stable fixed points in output space (sigmoid(x) for pascanu)."""
        return np.where(self.stable, self.output, np.nan)

    @property
    def unstable_output(self) -> np.ndarray:
        """(nb, 3) unstable fixed points in output space."""
        return np.where(~self.stable & np.isfinite(self.output), self.output, np.nan)

    @property
    def n_stable(self) -> np.ndarray:
        """(nb,) number of attractors at each b."""
        return self.stable.sum(-1)


def bifurcation_diagram(cell, w: float, b_values, c: float = 0.0) -> BifurcationDiagram:
    """Stable and unstable fixed points for each b at fixed w, organised as branches.

    b_values (nb,) -> BifurcationDiagram with (nb, 3) arrays; Pascanu Fig. 3 is
    ``bifurcation_diagram('pascanu', 5.0, np.linspace(-3.2, -1.8, n)).output``.
    """
    m = one_unit_map(cell)
    w = float(w)
    b = np.atleast_1d(np.asarray(b_values, dtype=float))  # (nb,)
    W = np.full_like(b, w)
    pre, fold = _solve_branches(m, W, b + c)  # (nb, 3)
    state, output, mult, stable = _describe(m, pre, fold, W)
    return BifurcationDiagram(cell=m.name, w=w, c=float(c), b=b, fixed=state, output=output,
                              multiplier=mult, stable=stable, folds=fold_points(m, w, c))


__all__ = [
    "BRANCHES", "DYNAMICS_CELLS", "one_unit_map", "dynamics_cells", "BasinBoundary", "BifurcationDiagram", "FixedPoint",
    "FixedPointGrid", "FoldBranch", "FoldCurve", "FoldPoints", "attractor_reached",
    "basin_boundary", "bifurcation_diagram", "check_cell", "fixed_point_grid", "fixed_points", "fold_curve",
    "fold_points", "map_slope", "map_step",
]
