"""Fixed points of n-unit cells. Truths: landscape.dynamics (closed-form-backed brentq for the
one-unit maps) and its fold points (the slow point of a map just past a fold sits at the fold
state, with residual |b - b_fold|); for H = 2, a brute-force root scan (scipy.optimize.root from
every node of a fine grid) of maps written independently in numpy from the published equations;
torch.nn.LSTMCell for the LSTM's fixed points; central finite differences for the Jacobians."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import root
from scipy.special import expit

from landscape import dynamics
from landscape.cells import get_cell
from landscape.errors import LandscapeError
from landscape.fixedpoints import FixedPointOptions, find_fixed_points, state_pca, visited_states
from landscape.torch_models import model_from_params, to_modules

DT = torch.float64


def one_unit(ws, bs, us=None):
    P = len(ws)
    return {"w": torch.tensor(ws, dtype=DT).view(P, 1, 1),
            "u": torch.tensor(us if us is not None else [1.0] * P, dtype=DT).view(P, 1, 1),
            "b": torch.tensor(bs, dtype=DT).view(P, 1)}


@pytest.mark.parametrize("cell_name,cases", [
    ("srnn", [(2.0, 0.1, 0.0), (0.5, 0.3, 0.2), (-2.0, 0.2, 0.0), (3.0, -0.5, 0.4), (1.5, 0.0, 0.0),
              (5.0, 0.0, 0.0), (1.2, 0.05, -0.1)]),
    ("pascanu", [(5.0, -2.4, 0.0), (5.0, -2.0, 0.0), (3.0, -1.0, 0.0), (6.0, -3.0, 0.1), (-4.0, 1.0, 0.0),
                 (5.0, -2.6, 0.0), (8.0, -4.0, -0.2)]),
])
def test_one_unit_points_equal_dynamics(cell_name, cases):
    """Every fixed point of dynamics.fixed_points, the unstable middle one included, for a
    population of (w, b, c) in one call; same stability, eigenvalue = the multiplier F'."""
    params = one_unit([c[0] for c in cases], [c[1] for c in cases])
    x = torch.tensor([[c[2]] for c in cases], dtype=DT)  # c = u x with u = 1
    res = find_fixed_points(cell_name, params, x=x)
    for p, (w, b, c) in enumerate(cases):
        truth = dynamics.fixed_points(cell_name, w, b, c)
        m = res.member(p)
        pts = m.points[m.fixed, 0]
        assert len(pts) == len(truth), (w, b, c, pts)
        np.testing.assert_allclose(pts, [f.state for f in truth], rtol=0, atol=1e-9)
        assert list(m.stable[m.fixed]) == [f.stable for f in truth]
        np.testing.assert_allclose(m.eigenvalues[m.fixed, 0].real, [f.multiplier for f in truth], rtol=1e-8)
        assert np.all(m.residual[m.fixed] < 1e-10)
    assert res.n_fixed.tolist() == [len(dynamics.fixed_points(cell_name, *c)) for c in cases]


@pytest.mark.parametrize("side", ["b1", "b2"])
@pytest.mark.parametrize("past", [1e-3, 5e-3])
def test_slow_point_past_a_fold_is_the_fold_state(side, past):
    """Just past a fold the two points that met are gone; q = G^2 / 2 keeps a local minimum at
    the fold state, with |F(x) - x| = the distance past the fold in b."""
    f = dynamics.fold_points("pascanu", 5.0)
    b = f.b1 + past if side == "b1" else f.b2 - past
    state = f.state1 if side == "b1" else f.state2
    res = find_fixed_points("pascanu", one_unit([5.0], [b]))
    m = res.member(0)
    assert m.fixed.sum() == 1 and m.slow.sum() == 1
    np.testing.assert_allclose(m.points[m.slow, 0], [state], atol=1e-6)
    np.testing.assert_allclose(m.residual[m.slow], [past], rtol=1e-6)
    assert not m.stable[m.slow].any()
    far = find_fixed_points("pascanu", one_unit([5.0], [b]), options=FixedPointOptions(slow_max=past / 2))
    assert far.member(0).slow.sum() == 0  # above slow_max: not reported


# --- H = 2: brute force ----------------------------------------------------------------------


def srnn_map(p, x):
    W, U, b = p["w"], p["u"], p["b"]
    return lambda h: np.tanh(W @ h + U @ x + b)


def gru_map(p, x):
    """torch.nn.GRU's equations (docs/reference.md §7), written out in numpy."""
    def F(h):
        r = expit(p["w_r"] @ h + p["u_r"] @ x + p["b_r"])
        z = expit(p["w_z"] @ h + p["u_z"] @ x + p["b_z"])
        n = np.tanh(p["u_h"] @ x + p["b_h"] + r * (p["w_h"] @ h + p["b_hn"]))
        return (1 - z) * n + z * h
    return F


def brute_force_roots(F, lo=-1.05, hi=1.05, num=41, tol=1e-10, dedupe=1e-7):
    """Every root of F(h) - h in [-1, 1]^2 reached by scipy's hybr from a num x num grid of starts.

    [-1, 1]^H holds every state a sequence can reach (tanh; the GRU's h' is a convex combination
    of h and a tanh), and outside it a GRU whose update gate saturates (z = 1 to rounding) has
    spurious numerical roots far away (|h| ~ 800 with |F(h) - h| < 1e-10)."""
    found = []
    for a in np.linspace(lo, hi, num):
        for c in np.linspace(lo, hi, num):
            sol = root(lambda h: F(h) - h, np.array([a, c]), method="hybr", tol=1e-14)
            if sol.success and np.abs(sol.x).max() <= 1 and np.linalg.norm(F(sol.x) - sol.x) < tol:
                if not any(np.abs(sol.x - q).max() < dedupe for q in found):
                    found.append(sol.x)
    return np.array(found)


def numpy_jacobian(F, h, eps=1e-6):
    return np.stack([(F(h + eps * e) - F(h - eps * e)) / (2 * eps) for e in np.eye(len(h))], -1)


def members(params, p):
    return {k: v[p].numpy() for k, v in params.items()}


def h2_params(cell_name):
    """Two members each, chosen to have many fixed points (up to 9: each unit bistable)."""
    if cell_name == "srnn":
        return {"w": torch.tensor([[[2.0, 0.3], [0.2, 2.5]], [[1.8, -0.6], [0.7, 1.6]]], dtype=DT),
                "u": torch.tensor([[[0.5], [-0.3]], [[1.0], [0.2]]], dtype=DT),
                "b": torch.tensor([[0.05, -0.1], [0.0, 0.02]], dtype=DT)}
    g = torch.Generator().manual_seed(3)
    shapes = get_cell("gru").param_shapes(2, 1)
    p = {k: 0.3 * torch.randn((2, *s), generator=g, dtype=DT) for k, s in shapes.items()}
    p["w_h"] = torch.tensor([[[3.0, 0.4], [-0.3, 2.5]], [[3.0, -0.5], [0.2, 3.0]]], dtype=DT)
    p["b_r"] = torch.tensor([[2.0, 2.0], [3.0, 3.0]], dtype=DT)  # reset gate mostly open
    return p


@pytest.mark.parametrize("cell_name,F_of", [("srnn", srnn_map), ("gru", gru_map)])
def test_two_units_find_every_brute_force_root(cell_name, F_of):
    params = h2_params(cell_name)
    x = torch.tensor([[0.3], [-0.5]], dtype=DT)
    res = find_fixed_points(cell_name, params, x=x)
    for p in range(2):
        F = F_of(members(params, p), x[p].numpy())
        truth = brute_force_roots(F)
        m = res.member(p)
        ours = m.points[m.fixed]
        assert len(truth) >= 3, len(truth)
        for q in truth:  # every brute-force root is found
            assert np.abs(ours - q).max(-1).min() < 1e-8, (p, q)
        for q in ours:  # and nothing else: ours are roots the scan also reaches
            assert np.abs(truth - q).max(-1).min() < 1e-8, (p, q)
        for q, ev, stable in zip(ours, m.eigenvalues[m.fixed], m.stable[m.fixed]):
            assert np.linalg.norm(F(q) - q) < 1e-10  # residual in an independent implementation
            fd = np.sort_complex(np.linalg.eigvals(numpy_jacobian(F, q)))
            np.testing.assert_allclose(np.sort_complex(ev), fd, atol=1e-7)
            assert stable == (np.abs(fd).max() < 1)


def saturating_gru():
    """A one-unit GRU whose update gate z = sigmoid(2.5 h) rounds towards 1 as h grows: its one
    fixed point is h = 0 (n = tanh(0.5 r h) = 0 there), and far out F(h) - h = (1 - z)(n - h) is
    below 1e-7 (at h = 8) though no root is there; sequences of inputs u_h = 1 visit |h| < 1."""
    p = {k: torch.zeros((1, *s), dtype=DT) for k, s in get_cell("gru").param_shapes(1, 1).items()}
    p["w_z"][:], p["w_h"][:], p["u_h"][:] = 2.5, 0.5, 1.0
    return p


def test_points_at_the_search_bound_are_never_slow_points():
    """Issue 22's ghosts: a trained GRU's update gate rounds to 1 far from the states it visits, and
    the search ran out to its bound and reported slow points there. The default bound is now
    BOUND_FACTOR x the largest |h| visited, as documented, and a point at a bound is kind
    'bound', counted apart. Truth: the GRU's equations in numpy (gru_map)."""
    from landscape.fixedpoints import AT_BOUND, BOUND_FACTOR

    p = saturating_gru()
    F = gru_map(members(p, 0), np.zeros(1))
    g = torch.Generator().manual_seed(0)
    tr = visited_states("gru", p, torch.randn((30, 20, 1), generator=g, dtype=DT))  # (1, T, N, 1)
    reach = float(tr.abs().max())
    assert 0.5 < reach < 1.0
    res = find_fixed_points("gru", p, x=torch.zeros(1, 1, dtype=DT), trajectories=tr)
    assert res.bound[0] == pytest.approx(BOUND_FACTOR * 1.0)  # 4 x max(1, the largest visited)
    m = res.member(0)
    assert m.kind.tolist() == ["fixed"] and m.points[0, 0] == pytest.approx(0.0, abs=1e-12)
    assert abs(F(m.points[0])[0] - m.points[0, 0]) < 1e-12
    wide = find_fixed_points("gru", p, x=torch.zeros(1, 1, dtype=DT), trajectories=tr,
                             options=FixedPointOptions(bound=8.0))
    m = wide.member(0)
    assert m.kind.tolist() == ["fixed", "bound"] and not m.slow.any() and wide.n_at_bound.tolist() == [1]
    h = m.points[m.at_bound, 0]
    assert h[0] >= AT_BOUND * 8.0 and not m.stable[m.at_bound].any()
    assert 0 < abs(F(h)[0] - h[0]) < 1e-6  # no root: F(h) - h is small only because z is near 1
    assert wide.n_fixed.tolist() == [1] and wide.bound.tolist() == [8.0]


def test_lstm_fixed_points_are_fixed_points_of_torch_lstmcell():
    cell = get_cell("lstm")
    g = torch.Generator().manual_seed(5)
    p = {k: torch.randn(s, generator=g, dtype=DT) for k, s in cell.param_shapes(2, 1).items()}
    p["w_z"] = torch.tensor([[3.0, 0.0], [0.0, 3.0]], dtype=DT)
    p["b_f"] = torch.full((2,), 2.0, dtype=DT)
    x = torch.tensor([0.2], dtype=DT)
    res = find_fixed_points(cell, p, x=x)
    m = res.member(0)
    assert m.fixed.sum() >= 1 and res.state_names == ("h", "c") and m.points.shape[1] == 4
    torch_cell, _ = to_modules(model_from_params(cell, p), cell=True)
    for s, stable, ev in zip(m.points[m.fixed], m.stable[m.fixed], m.eigenvalues[m.fixed]):
        h, c = torch.as_tensor(s[:2]).view(1, 2), torch.as_tensor(s[2:]).view(1, 2)
        with torch.no_grad():
            h2, c2 = torch_cell(x.view(1, 1), (h, c))
        assert float(torch.cat([h2 - h, c2 - c], -1).norm()) < 1e-10
        assert stable == (np.abs(ev).max() < 1)


def test_starts_from_visited_states_and_shapes():
    cell = get_cell("gru")
    params = h2_params("gru")
    xs = torch.randn(30, 16, 1, generator=torch.Generator().manual_seed(0), dtype=DT)
    tr = visited_states(cell, params, xs)
    assert tr.shape == (2, 30, 16, 2)
    state = cell.initial_state(params, 16, 2)
    for t in range(30):  # the same unroll, by hand
        state = cell.step(params, state, xs[t])
    torch.testing.assert_close(tr[:, -1], state[0].expand(2, 16, 2), rtol=0, atol=0)
    only_visited = find_fixed_points(cell, params, x=torch.tensor([0.0]), trajectories=tr,
                                     options=FixedPointOptions(n_random=0))
    both = find_fixed_points(cell, params, x=torch.tensor([0.0]), trajectories=tr)
    assert only_visited.points.shape[-1] == 2 and np.all(only_visited.n_fixed >= 1)
    assert np.all(both.n_fixed >= only_visited.n_fixed)
    for p in range(2):
        m = both.member(p)
        assert np.all(m.residual[m.fixed] < 1e-10)
        assert list(m.kind) == sorted(m.kind, key=["fixed", "slow"].index)  # fixed points first


def test_single_member_without_population_axis_and_no_input():
    cell = get_cell("pascanu")
    one = {"w": torch.tensor([[5.0]], dtype=DT), "b": torch.tensor([-2.4], dtype=DT)}  # D = 0, no P axis
    res = find_fixed_points(cell, one)
    assert res.P == 1 and res.n_fixed.tolist() == [3] and res.x is None
    truth = [f.state for f in dynamics.fixed_points("pascanu", 5, -2.4)]
    np.testing.assert_allclose(res.member(0).points[:, 0], truth, atol=1e-9)
    with pytest.raises(LandscapeError, match="no input weights"):
        find_fixed_points(cell, {"w": torch.tensor([[5.0]]), "b": torch.tensor([-2.4])}, x=torch.tensor([1.0]))
    with pytest.raises(LandscapeError, match="constant input x has shape"):
        find_fixed_points("srnn", one_unit([1.0, 2.0], [0.0, 0.0]), x=torch.zeros(3, 1))


def test_state_pca_recovers_a_known_plane():
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.standard_normal((6, 2)))[0]  # (6, 2)
    X = rng.standard_normal((500, 2)) * [3.0, 1.0] @ basis.T + 0.5
    pca = state_pca(X)
    np.testing.assert_allclose(pca.components.T @ pca.components, basis @ basis.T, atol=1e-12)
    np.testing.assert_allclose(pca.explained.sum(), 1.0, atol=1e-12)
    assert state_pca(X[:, :1]).components.shape == (2, 1)  # one state number: one component
