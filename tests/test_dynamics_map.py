"""The dynamics map (landscape.dynamics_map). Truths, each independent of the code under test:
the closed-form fixed points and fold curves of landscape.dynamics (srnn, pascanu) and the flip
line w (1 - h*^2) = -1 derived here; one-unit maps written in numpy, whose periodic points are
counted by sign changes of F^k(h) - h on a dense grid; long simulations from a dense set of
starts, cycles detected by return; exact enumeration of the piecewise-linear RNN's region
sequences (linear solves); per-step Jacobians from torch.autograd.functional.jacobian multiplied
in a Python loop; log|w| for the linear cell."""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.special import expit

from landscape import dynamics
from landscape.dynamics_map import (
    DynamicsOptions,
    bifurcation_edges,
    bifurcation_segments,
    default_input,
    dynamics_map,
    lyapunov,
)
from landscape.errors import LandscapeError
from landscape.model import ModelSpec
from landscape.problem import resolve_model

DT = torch.float64
ROOT = Path(__file__).resolve().parents[1]
PLRNN = f"{ROOT / 'examples' / 'cells' / 'plrnn.py'}:PLRNN"


def problem(cell, task="latch", hidden=None):
    return resolve_model(ModelSpec(cell=cell, task=task, hidden=hidden))


def plane(ws, bs, **fixed):
    """One-unit params on the "ij" grid ws x bs: w, b (P, ...), the others from ``fixed``."""
    W, B = np.meshgrid(ws, bs, indexing="ij")
    P = W.size
    out = {"w": torch.tensor(W.reshape(P, 1, 1)), "b": torch.tensor(B.reshape(P, 1))}
    out.update({k: torch.full((1, *np.shape(v)), 0.0, dtype=DT) + torch.tensor(v, dtype=DT) for k, v in fixed.items()})
    return out


# ---------------------------------------------------------------------------------------------
# srnn and pascanu against the closed forms


@pytest.mark.parametrize("cell,ws,bs", [("srnn", np.linspace(0.0, 3.0, 31), np.linspace(-1.5, 1.5, 31)),
                                        ("pascanu", np.linspace(3.05, 7.05, 31), np.linspace(-4.5, -0.5, 31))])
def test_fixed_points_equal_closed_form(cell, ws, bs):
    """(The pascanu grid avoids its cusp w = 4, b = -2 exactly, where the closed form's multiplier
    is 1 to rounding and its stable flag a coin toss; the map calls it marginal.)"""
    dm = dynamics_map(problem(cell), plane(ws, bs, u=[[1.0]]), input=0.0)
    truth = dynamics.fixed_point_grid(cell, ws, bs)
    n = len(ws), len(bs)
    assert np.array_equal(dm.n_fixed.reshape(n), truth.n_fixed)
    assert np.array_equal(dm.n_stable_fixed.reshape(n), truth.n_stable)
    assert not dm.n_cycles[:, 1:].any()  # monotone increasing maps: no cycles
    fixed = np.where(dm.period == 1, dm.points[:, :, 0, 0], np.nan)  # (P, M)
    true_fixed, true_mult = truth.fixed.reshape(-1, 3), truth.multiplier.reshape(-1, 3)
    for f in range(dm.P):
        there = np.isfinite(true_fixed[f])
        order = np.argsort(true_fixed[f][there])
        want, want_mult = true_fixed[f][there][order], true_mult[f][there][order]
        got = fixed[f][np.isfinite(fixed[f])]
        got_mult = dm.multipliers[f, dm.period[f] == 1, 0].real[np.argsort(got)]
        simple = np.abs(want_mult - 1) > 1e-3  # a root of multiplicity 3 (the cusp) is found to ~1e-7
        np.testing.assert_allclose(np.sort(got)[simple], want[simple], rtol=0, atol=1e-10)
        np.testing.assert_allclose(got_mult[simple], want_mult[simple], rtol=0, atol=1e-8)


@pytest.mark.parametrize("cell,ws,bs", [("srnn", np.linspace(0.0, 3.0, 41), np.linspace(-1.5, 1.5, 41)),
                                        ("pascanu", np.linspace(3.05, 7.05, 41), np.linspace(-4.5, -0.5, 41))])
def test_bifurcation_lines_lie_on_the_fold_curves(cell, ws, bs):
    """Every face the neighbour rule marks lies within one grid step of a fold (b1 or b2 of
    dynamics.fold_points), and every fold crossing of a grid column is marked."""
    dm = dynamics_map(problem(cell), plane(ws, bs, u=[[1.0]]), input=0.0)
    across_x, across_y = bifurcation_edges(dm.signature().reshape(len(ws), len(bs), -1))
    db, dw = bs[1] - bs[0], ws[1] - ws[0]
    fine = np.linspace(ws[0], ws[-1], 4001)
    folds = dynamics.fold_points(cell, fine)
    curve = np.stack([np.r_[fine, fine], np.r_[folds.b1, folds.b2]], -1)
    curve = curve[np.isfinite(curve[:, 1])]
    segs = bifurcation_segments(across_x, across_y, ws, bs)
    assert len(segs)
    mid = segs.mean(1)  # (L, 2)
    dist = np.abs((mid[:, None, :] - curve[None]) / [dw, db]).max(-1).min(-1)  # in grid steps
    assert dist.max() <= 1.0
    # and every face where the closed-form counts change is marked
    truth = dynamics.fixed_point_grid(cell, ws, bs)
    want_x, want_y = bifurcation_edges(truth.n_fixed, truth.n_stable)
    assert np.array_equal(across_x, want_x) and np.array_equal(across_y, want_y)


def test_srnn_flip_line_and_two_cycles():
    """For w < -1 the fixed point flips: a stable 2-cycle appears where w (1 - h*^2) < -1. The
    line w (1 - h*^2) = -1 with h* = tanh(w h* + b): h* = +-sqrt(1 + 1/w), b = artanh(h*) - w h*."""
    ws, bs = np.linspace(-3.0, -0.5, 26), np.linspace(-1.5, 1.5, 31)
    dm = dynamics_map(problem("srnn"), plane(ws, bs, u=[[1.0]]), input=0.0)
    truth = dynamics.fixed_point_grid("srnn", ws, bs)
    n = len(ws), len(bs)
    assert np.array_equal(dm.n_fixed.reshape(n), truth.n_fixed)
    flipped = np.abs(truth.multiplier[..., 0]) > 1  # the one fixed point is unstable
    assert np.array_equal(dm.n_cycles[:, 1].reshape(n), flipped.astype(int))
    assert np.array_equal(dm.n_stable_cycles[:, 1].reshape(n), flipped.astype(int))
    across_x, across_y = bifurcation_edges(dm.signature().reshape(*n, -1))
    w = np.linspace(-3.0, -1.0, 2001)[:-1]
    hs = np.sqrt(1 + 1 / w)
    line = np.concatenate([np.stack([w, np.arctanh(s * hs) - w * s * hs], -1) for s in (1, -1)])
    mid = bifurcation_segments(across_x, across_y, ws, bs).mean(1)
    steps = np.array([ws[1] - ws[0], bs[1] - bs[0]])
    assert np.abs((mid[:, None] - line[None]) / steps).max(-1).min(-1).max() <= 1.0


# ---------------------------------------------------------------------------------------------
# one-unit cells against a brute-force count


def numpy_gru(h, p):
    z = expit(p["w_z"] * h + p["b_z"])
    r = expit(p["w_r"] * h + p["b_r"])
    cand = np.tanh(p["b_h"] + r * (p["w_h"] * h + p["b_hn"]))
    return z * h + (1 - z) * cand


def numpy_srnn(h, p):
    return np.tanh(p["w"] * h + p["b"])


def brute_force_cycles(F, p, lo, hi, K, n=400001):
    """Cycles of a 1-D map by period: sign changes of F^k(h) - h on n points of [lo, hi],
    minimal period by return, each cycle once; stable when |prod F'| < 1 (central differences)."""
    h = np.linspace(lo, hi, n) + np.pi * 1e-7  # no node exactly on a root
    counts, stable = np.zeros(K, int), np.zeros(K, int)
    seen = []
    for k in range(1, K + 1):
        g = h.copy()
        for _ in range(k):
            g = F(g, p)
        gap = g - h
        for i in np.flatnonzero(np.sign(gap[:-1]) * np.sign(gap[1:]) < 0):
            a, b = h[i], h[i + 1]
            for _ in range(60):  # bisection
                m = 0.5 * (a + b)
                gm = m
                for _ in range(k):
                    gm = F(gm, p)
                if np.sign(gm - m) == np.sign(gap[i]):
                    a = m
                else:
                    b = m
            orbit = [0.5 * (a + b)]
            for _ in range(k):
                orbit.append(F(orbit[-1], p))
            d = next(d for d in range(1, k + 1) if abs(orbit[d] - orbit[0]) < 1e-8)
            key = (d, round(min(orbit[:d]), 6))
            if key in seen:
                continue
            seen.append(key)
            slope = np.prod([(F(x + 1e-7, p) - F(x - 1e-7, p)) / 2e-7 for x in orbit[:d]])
            counts[d - 1] += 1
            stable[d - 1] += abs(slope) < 1
    return counts, stable


def test_one_unit_srnn_and_gru_cycles_equal_brute_force():
    K = 4
    srnn = [{"w": w, "b": b} for w, b in [(-2.5, 0.1), (-1.2, 0.0), (2.5, 0.05), (-4.0, 0.6), (0.5, 0.3)]]
    dm = dynamics_map(problem("srnn"), {"w": torch.tensor([[[c["w"]]] for c in srnn]), "u": torch.ones(1, 1, 1, dtype=DT),
                                        "b": torch.tensor([[c["b"]] for c in srnn])},
                      input=0.0, options=DynamicsOptions(max_period=K))
    for f, c in enumerate(srnn):
        counts, stable = brute_force_cycles(numpy_srnn, c, -1.0, 1.0, K)
        assert np.array_equal(dm.n_cycles[f], counts), (c, dm.n_cycles[f], counts)
        assert np.array_equal(dm.n_stable_cycles[f], stable), (c, dm.n_stable_cycles[f], stable)

    gru = [{"w_z": 0.5, "b_z": 0.0, "w_r": 1.0, "b_r": 0.0, "w_h": 3.0, "b_h": 0.1, "b_hn": 0.0},
           {"w_z": -1.0, "b_z": -2.0, "w_r": 0.5, "b_r": 1.0, "w_h": -5.0, "b_h": 0.2, "b_hn": 0.0},
           {"w_z": 0.0, "b_z": -3.0, "w_r": 2.0, "b_r": 0.0, "w_h": -6.0, "b_h": -0.3, "b_hn": 0.5},
           {"w_z": 1.0, "b_z": 0.0, "w_r": 1.0, "b_r": 0.0, "w_h": 1.0, "b_h": 0.0, "b_hn": 0.0}]
    pr = problem("gru")
    params = {k: torch.tensor([c.get(k, 0.0) for c in gru], dtype=DT).reshape(len(gru), *v.shape)
              for k, v in pr.base.items() if k in pr.cell.param_shapes(1, 1)}
    dm = dynamics_map(pr, params, input=0.0, options=DynamicsOptions(max_period=K))
    for f, c in enumerate(gru):
        counts, stable = brute_force_cycles(numpy_gru, {**c, "u": 0}, -1.0, 1.0, K)
        assert np.array_equal(dm.n_cycles[f], counts), (c, dm.n_cycles[f], counts)
        assert np.array_equal(dm.n_stable_cycles[f], stable), (c, dm.n_stable_cycles[f], stable)
        inside = dm.period[f] > 0
        assert np.all(np.abs(dm.points[f][inside & ~dm.at_bound[f]][:, 0]) < 1.0)


def test_gru_roots_at_the_bound_are_flagged_not_counted():
    """An update gate that rounds to 1 for large h makes |F(h) - h| tiny far out (the issue's
    ghosts): those roots are reported at the bound, never as fixed points."""
    pr = problem("gru")
    p = {k: v.unsqueeze(0).clone() for k, v in pr.base.items() if k in pr.cell.param_shapes(1, 1)}
    p.update(w_z=torch.tensor([[[6.0]]]), b_z=torch.tensor([[0.0]]), w_h=torch.tensor([[[0.5]]]),
             b_h=torch.tensor([[0.0]]))
    p = {k: v.to(DT) for k, v in p.items()}
    dm = dynamics_map(pr, p, input=0.0, options=DynamicsOptions(max_period=2))
    c = {k: float(v.reshape(-1)[0]) for k, v in p.items()}
    counts, _ = brute_force_cycles(numpy_gru, c, -1.0, 1.0, 2)
    assert np.array_equal(dm.n_cycles[0], counts)
    assert dm.n_at_bound[0] + dm.n_degenerate[0] >= 1  # reported, not counted
    at = dm.at_bound[0]
    assert np.all(np.abs(dm.points[0][at][:, 0]).max(-1) >= dm.bound[0] - 1e-12)
    assert np.all(np.abs(dm.points[0][(dm.period[0] > 0) & ~at][:, 0]) < 1.0)


def test_lstm_two_state_fixed_points_and_attractors_equal_brute_force():
    """LSTM, H = 1, state (h, c): at a fixed point c = i z / (1 - f) with the gates functions of h
    alone, so the fixed points are the roots of o(h) tanh(i z / (1 - f)) - h (a dense sign-change
    count); the attractors are where a long simulation from a dense grid of (h, c) settles."""
    pr = problem("lstm")
    cases = [{"w_i": 1.0, "w_f": 2.0, "w_z": 4.0, "w_o": 1.0, "b_i": 0.0, "b_f": 1.0, "b_z": 0.0, "b_o": 1.0},
             {"w_i": 0.5, "w_f": -1.0, "w_z": -5.0, "w_o": 2.0, "b_i": 1.0, "b_f": 0.0, "b_z": 0.2, "b_o": 0.0},
             {"w_i": 1.0, "w_f": 0.0, "w_z": 0.8, "w_o": 1.0, "b_i": 0.0, "b_f": -1.0, "b_z": 0.3, "b_o": 0.0}]
    names = pr.cell.param_shapes(1, 1)
    params = {k: torch.tensor([c.get(k, 1.0 if k.startswith("u") else 0.0) for c in cases], dtype=DT)
              .reshape(len(cases), *names[k]) for k in names}
    dm = dynamics_map(pr, params, input=0.0, options=DynamicsOptions(max_period=4))
    for f, c in enumerate(cases):
        g = {q: (lambda h, q=q, c=c: c[f"w_{q}"] * h + c[f"b_{q}"]) for q in "ifzo"}

        def fixed_gap(h, g=g):
            i, fg, z, o = expit(g["i"](h)), expit(g["f"](h)), np.tanh(g["z"](h)), expit(g["o"](h))
            return o * np.tanh(i * z / (1 - fg)) - h

        h = np.linspace(-1, 1, 200001) + np.pi * 1e-7  # no node exactly on a root
        gap = fixed_gap(h)
        n_fixed = int((np.sign(gap[:-1]) * np.sign(gap[1:]) < 0).sum())
        assert dm.n_fixed[f] == n_fixed
        # attractors by simulation from a dense grid of starts
        H0, C0 = np.meshgrid(np.linspace(-1, 1, 41) + 1e-3, np.linspace(-4, 4, 41) + 1e-3, indexing="ij")  # off (0, 0)
        h, cc = H0.ravel(), C0.ravel()
        for _ in range(3000):
            i, fg, z, o = expit(g["i"](h)), expit(g["f"](h)), np.tanh(g["z"](h)), expit(g["o"](h))
            cc = fg * cc + i * z
            h = o * np.tanh(cc)
        ends = np.unique(np.round(np.stack([h, cc], -1), 6), axis=0)  # (E, 2): every phase reached
        stable = dm.points[f][dm.stability[f] == 2]  # (m, K, 2) the stable objects, NaN-padded phases
        near = np.abs(ends[:, None, None] - stable[None]).max(-1) < 1e-5  # (E, m, K)
        assert near.any((1, 2)).all()  # every end lies on a stable object
        assert near.any(2).any(0).all()  # every stable object is reached
        assert len(stable) == dm.n_stable_cycles[f].sum()


# ---------------------------------------------------------------------------------------------
# the piecewise-linear RNN against exact enumeration


def plrnn_exact(a, w, h, K, bound=np.inf):
    """Every cycle of minimal period <= K of z' = diag(a) z + W relu(z) + h inside |z_i| < bound:
    for each sequence of sign patterns (d_0 .. d_{k-1}) the affine maps compose to z_k = Phi z_0 + c;
    the cycle is the solution of (I - Phi) z_0 = c when every z_j has the pattern d_j.
    -> counts, stable (K,)."""
    pats = list(itertools.product((0, 1), repeat=2))
    M = np.stack([np.diag(a) + w * np.asarray(d, float) for d in pats])  # (4, 2, 2)
    counts, stable = np.zeros(K, int), np.zeros(K, int)
    for k in range(1, K + 1):
        seen = []
        for seq in itertools.product(range(4), repeat=k):
            Phi, c = np.eye(2), np.zeros(2)
            for j in seq:
                Phi, c = M[j] @ Phi, M[j] @ c + h
            if abs(np.linalg.det(np.eye(2) - Phi)) < 1e-12:
                continue
            z = np.linalg.solve(np.eye(2) - Phi, c)
            orbit = [z]
            for j in seq:
                if not np.array_equal(orbit[-1] > 0, np.asarray(pats[j]) > 0):
                    break
                orbit.append(M[j] @ orbit[-1] + h)
            else:
                o = np.array(orbit[:k])
                if np.abs(o).max() >= bound:
                    continue  # beyond the search bound
                if any(np.abs(o[d] - o[0]).max() < 1e-9 for d in range(1, k)):
                    continue  # a lower period
                first = np.lexsort(o.T[::-1])[0]
                canon = np.roll(o, -first, 0)
                if not any(np.abs(canon - s).max() < 1e-9 for s in seen):
                    seen.append(canon)
                    counts[k - 1] += 1
                    stable[k - 1] += np.abs(np.linalg.eigvals(Phi)).max() < 1
    return counts, stable


def plrnn_population(a, w, h):
    return {"a": torch.tensor(a, dtype=DT), "w": torch.tensor(w, dtype=DT), "h": torch.tensor(h, dtype=DT)}


def test_plrnn_eisenmann_plane_equals_exact_enumeration():
    pr = problem(PLRNN, task="target", hidden=2)
    base = {k: v.numpy() for k, v in pr.base.items()}
    da = np.linspace(-1, 1, 7)
    A = np.stack(np.meshgrid(base["a"][0] + da, base["a"][1] + da, indexing="ij"), -1).reshape(-1, 2)
    K = 4
    dm = dynamics_map(pr, plrnn_population(A, base["w"][None], base["h"][None]), options=DynamicsOptions(max_period=K))
    for f, a in enumerate(A):
        counts, stable = plrnn_exact(a, base["w"], base["h"], K, dm.bound[f])  # inside the search bound
        assert np.array_equal(dm.n_cycles[f], counts), (a, dm.n_cycles[f], counts)
        assert np.array_equal(dm.n_stable_cycles[f], stable), (a, dm.n_stable_cycles[f], stable)


def test_plrnn_cycles_equal_exact_enumeration():
    """Random PLRNNs, many with 2-, 3- and 4-cycles, stable and unstable. A PLRNN's fixed points
    can lie anywhere (one here sits at z = (-5.6, 14.9)): the map reports those inside its search
    bound, so the enumeration is cut there."""
    rng = np.random.default_rng(1)
    n, K = 40, 4
    a, w, h = rng.uniform(-0.9, 0.9, (n, 2)), rng.normal(0, 1.2, (n, 2, 2)), rng.normal(0, 1, (n, 2))
    dm = dynamics_map(problem(PLRNN, task="target", hidden=2), plrnn_population(a, w, h),
                      options=DynamicsOptions(max_period=K))
    total = np.zeros(K, int)
    for f in range(n):
        counts, stable = plrnn_exact(a[f], w[f], h[f], K, dm.bound[f])  # the map searches inside its bound
        total += counts
        assert np.array_equal(dm.n_cycles[f], counts), (f, dm.n_cycles[f], counts)
        assert np.array_equal(dm.n_stable_cycles[f], stable), (f, dm.n_stable_cycles[f], stable)
    assert total[1:].sum() >= 5  # the population does have cycles


# ---------------------------------------------------------------------------------------------
# Lyapunov exponents


def test_lyapunov_linear_cell_is_log_abs_w():
    pr = problem("linear")
    data = pr.task.make((7, 40), 16, 0)
    w = torch.tensor([0.3, -0.9, 1.5, -2.0], dtype=DT)
    got = lyapunov(pr, {"w": w.view(-1, 1, 1), "u": torch.ones(1, 1, 1, dtype=DT), "b": torch.zeros(1, 1, dtype=DT)},
                   data, (7, 40))
    np.testing.assert_allclose(got[..., 0], np.broadcast_to(np.log(np.abs(w.numpy())), (2, 4)), rtol=0, atol=1e-12)


@pytest.mark.parametrize("cell,H", [("lstm", 2), ("gru", 2), ("srnn", 3)])
def test_lyapunov_equals_products_of_autograd_jacobians(cell, H):
    pr = problem(cell, hidden=H)
    T, N = 25, 3
    data = pr.task.make((T,), N, 1)
    g = torch.Generator().manual_seed(0)
    params = pr.cell.init_params("torch", H, 1, 2, g)
    params = {k: 2.0 * v for k, v in params.items()}  # away from the contracting regime
    S = H * len(pr.cell.state_names)
    v = torch.randn(N, S, 1, generator=g, dtype=DT)
    got = lyapunov(pr, params, data, (T,), vectors=v)[0, :, 0]  # (P,)
    for m in range(2):
        p = {k: t[m:m + 1] for k, t in params.items()}
        want = []
        for n in range(N):
            x = data.inputs[:, n:n + 1]  # (T, 1, D)
            s = torch.zeros(S, dtype=DT)
            prod = torch.eye(S, dtype=DT)

            def step(s, t, p=p, x=x):
                new = pr.cell.step(p, tuple(s.view(1, 1, S).split(H, -1)), x[t])
                return torch.cat([q.reshape(H) for q in new])

            for t in range(T):
                J = torch.autograd.functional.jacobian(lambda s, t=t: step(s, t), s)
                prod = J @ prod
                s = step(s, t).detach()
            u = v[n, :, 0] / v[n, :, 0].norm()
            want.append(float(torch.log((prod @ u).norm())) / T)
        np.testing.assert_allclose(got[m], np.mean(want), rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# bifurcation lines, inputs


def test_bifurcation_segments_geometry():
    x, y = np.array([0.0, 1.0, 2.0]), np.array([10.0, 20.0])
    field = np.array([[0, 0], [1, 1], [1, 2]])  # differs between x0|x1 everywhere, and y0|y1 at x2
    across_x, across_y = bifurcation_edges(field)
    assert across_x.tolist() == [[True, True], [False, True]]
    assert across_y.tolist() == [[False], [False], [True]]
    segs = bifurcation_segments(across_x, across_y, x, y)
    want = {((0.5, 5.0), (0.5, 15.0)), ((0.5, 15.0), (0.5, 25.0)), ((1.5, 15.0), (1.5, 25.0)),
            ((1.5, 15.0), (2.5, 15.0))}
    assert {tuple(map(tuple, s)) for s in segs} == want


def test_default_input_and_errors():
    assert default_input(problem("srnn", "latch").task) == 0.0
    assert default_input(resolve_model(ModelSpec(cell="linear", task="teacher", task_options=(("mu", 0.3),))).task) == 0.3
    assert default_input(problem("pascanu", "target").task) is None
    pr = problem("srnn")
    with pytest.raises(LandscapeError, match="input has shape"):
        dynamics_map(pr, pr.initial(2), input=np.zeros((3, 1)))
    with pytest.raises(LandscapeError, match="max_period"):
        dynamics_map(pr, pr.initial(1), options=DynamicsOptions(max_period=0))
