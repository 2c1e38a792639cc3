"""The fused Jacobian of the state map (landscape.kernels.numba.jacobian, the forward-mode rules of
landscape.kernels.derivative) against the truth: torch's autograd (``StateMap.autograd_jacobian``,
S copies of each point and one backward pass), and the dynamics a search finds with autograd alone
($LANDSCAPE_FAST=0).

Every built-in cell at H = 1, 2 and 4 (the LSTM family with its two states, S = 2H; srnn, gru and
lstm always, the others marked slow: each (cell, H) compiles a kernel, kept in $LANDSCAPE_KERNELS); a user cell
that uses every operation with a derivative rule; members with infinite and NaN parameters and
states (those points are autograd's, bit for bit); and the fall-backs: an operation without a rule,
a step that does not trace, LANDSCAPE_FAST=0.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

pytest.importorskip("numba")

from landscape.cells import Cell, ParamDecl, bias, get_cell, linear
from landscape.dynamics_map import DynamicsOptions, dynamics_map
from landscape.fixedpoints import StateMap, find_fixed_points
from landscape.kernels import derivative
from landscape.kernels.numba import jacobian
from landscape.kernels.trace import trace_units
from landscape.model import ModelSpec
from landscape.problem import resolve_model
from landscape.store.format import COUNT_FIELDS, PERIOD_FIELDS

DT = torch.float64
BUILTIN = ("srnn", "pascanu", "linear", "irnn", "lstm", "lstm-b", "lstm-i", "lstm-o", "lstm-f", "lstm1997", "gru",
           "mut1", "mut2", "mut3")
TOL = {"rtol": 1e-12, "atol": 1e-12}


def population(cell, H: int, D: int, P: int = 5, seed: int = 0):
    """N(0, 1) parameters (P, *shape) and a constant input (P, D) (None for D = 0)."""
    g = torch.Generator().manual_seed(seed)
    params = {k: torch.randn((P, *s), generator=g, dtype=DT) for k, s in cell.param_shapes(H, D).items()}
    x = torch.randn((P, D), generator=g, dtype=DT) if D else None
    return params, x


def states(F: StateMap, M: int = 7, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand((F.P, M, F.S), generator=g, dtype=DT) * 4 - 2  # (P, M, S) in [-2, 2]


def fused(F: StateMap):
    kernel = F._kernel()
    assert kernel is not None, jacobian.why_not(F.cell, F.H, F.D)
    return kernel


def same_values(got, want):
    """Equal to rounding where finite; inf and NaN at the same places (inf of the same sign)."""
    assert torch.equal(torch.isnan(got), torch.isnan(want))
    assert torch.equal(torch.isinf(got), torch.isinf(want))
    assert torch.equal(got[torch.isinf(got)], want[torch.isinf(want)])
    finite = torch.isfinite(want)
    torch.testing.assert_close(got[finite], want[finite], **TOL)


ALWAYS = ("srnn", "gru", "lstm")  # the rest of BUILTIN is the slow matrix (a kernel compiles in seconds)


@pytest.mark.parametrize("H", [1, 2, 4])
@pytest.mark.parametrize("name", [n if n in ALWAYS else pytest.param(n, marks=pytest.mark.slow) for n in BUILTIN])
def test_every_builtin_cell_equals_autograd(name, H):
    cell = get_cell(name)
    D = 0 if name in ("mut1", "mut2") else 1  # those two take D = H or no input
    F = StateMap(cell, *population(cell, H, D))
    fused(F)
    s = states(F)
    got_F, got_J = F.jacobian(s)
    want_F, want_J = F.autograd_jacobian(s)
    assert got_J.shape == (F.P, 7, F.S, F.S) and F.S == H * len(cell.state_names)
    torch.testing.assert_close(got_F, want_F, **TOL)
    torch.testing.assert_close(got_J, want_J, **TOL)
    assert torch.equal(got_F, F(s))  # F is the map itself


def test_the_jacobian_is_the_derivative():
    """J[p, m, j, :] = dF_j / ds, against central differences (an independent truth for the layout)."""
    cell = get_cell("lstm")
    F = StateMap(cell, *population(cell, 2, 1, P=3))
    s = states(F, M=2)
    _, J = F.jacobian(s)
    eps = 1e-6
    for k in range(F.S):
        e = torch.zeros(F.S, dtype=DT)
        e[k] = eps
        column = (F(s + e) - F(s - e)) / (2 * eps)  # (P, M, S): dF / ds_k
        torch.testing.assert_close(J[..., k], column, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", ["gru", "lstm", "irnn", "srnn"])
def test_infinite_and_nan_members_are_autograds(name):
    """Members with a parameter at +-inf or NaN, and states at inf or NaN: F and J as autograd's,
    non-finite entries in the same places (forward mode alone would put the NaNs of 0 * inf
    elsewhere: irnn's relu gives 0 where autograd gives NaN)."""
    cell = get_cell(name)
    params, x = population(cell, 2, 1, P=8)
    names = list(params)
    params[names[0]].view(8, -1)[4, 0] = float("inf")
    params[names[-1]].view(8, -1)[5, -1] = float("nan")
    params[names[0]].view(8, -1)[6, 0] = float("-inf")
    params[names[1]].view(8, -1)[7, 0] = float("inf")
    F = StateMap(cell, params, x)
    fused(F)
    s = states(F)
    s[3, 0, 0], s[3, 1, -1] = float("nan"), float("inf")
    got_F, got_J = F.jacobian(s)
    want_F, want_J = F.autograd_jacobian(s)
    same_values(got_F, want_F)
    same_values(got_J, want_J)
    assert not bool(torch.isfinite(want_J[4:]).all())  # the test has non-finite points to follow


@dataclass(frozen=True)
class EveryOp(Cell):
    """A step through every operation with a derivative rule (away from the kinks on [-2, 2])."""

    name = "every-op"
    params = (ParamDecl("w", "recurrent"), ParamDecl("u", "input"), ParamDecl("b", "bias"))

    def step(self, p, state, x):
        (h,) = state
        a = linear(h, p["w"]) + linear(x, p["u"]) + bias(p["b"])  # (P, N, H)
        h2 = h * h
        terms = (torch.sin(a) * torch.cos(h) - torch.tan(0.3 * torch.tanh(a)),
                 torch.log1p(h2) + torch.log(1 + torch.exp(-a.abs())) + torch.log2(2 + h2),
                 torch.sqrt(1 + h2) * torch.rsqrt(2 + a * a) + torch.reciprocal(3 + a * a) + a / (2 + h2),
                 torch.atan(a) + torch.asinh(h) + torch.erf(a / 3) + torch.exp2(-(a * a)) + torch.expm1(-h2),
                 torch.maximum(a, h) - torch.minimum(a, 0.5 * h),
                 torch.clamp(a, -1 - h2, 1 + h2) + torch.clamp(h, min=-0.5) + torch.relu(a),
                 torch.where(a > 0, a * h, torch.sigmoid(a)),
                 torch.pow(1.5 + torch.sigmoid(a), h) + h ** 3,
                 torch.floor(3 * h) * 0.1 + torch.round(a) * 0.01 + torch.sign(h) * 0.02)
        return (torch.tanh(0.1 * sum(terms)),)


def test_every_rule_against_autograd():
    cell = EveryOp()
    assert {nd.op for nd in trace_units(cell, 3, 1).nodes} >= {
        "sin", "cos", "tan", "log1p", "log", "exp", "abs", "log2", "sqrt", "rsqrt", "reciprocal", "div", "atan",
        "asinh", "erf", "exp2", "expm1", "max", "min", "clamp", "where", "sigmoid", "pow", "floor", "round", "dot"}
    F = StateMap(cell, *population(cell, 3, 1))
    fused(F)
    s = states(F)
    got_F, got_J = F.jacobian(s)
    want_F, want_J = F.autograd_jacobian(s)
    torch.testing.assert_close(got_F, want_F, **TOL)
    torch.testing.assert_close(got_J, want_J, **TOL)


@dataclass(frozen=True)
class NoRule(Cell):
    """tanh, whose rule test_an_op_without_a_rule_falls_back removes."""

    name = "no-rule"
    params = (ParamDecl("w", "recurrent"), ParamDecl("b", "bias"))

    def step(self, p, state, x):
        (h,) = state
        return (torch.tanh(linear(h, p["w"]) + bias(p["b"])),)


def test_an_op_without_a_rule_falls_back(monkeypatch):
    monkeypatch.delitem(derivative._RULES, "tanh")
    cell = NoRule()
    assert jacobian.jacobian_kernel(cell, 2, 0) is None
    assert "no derivative rule for the operation tanh" in jacobian.why_not(cell, 2, 0)
    F = StateMap(cell, *population(cell, 2, 0))
    s = states(F)
    for got, want in zip(F.jacobian(s), F.autograd_jacobian(s)):
        assert torch.equal(got, want)  # autograd's, bit for bit


@dataclass(frozen=True)
class MixesStarts(Cell):
    """h' = tanh(w h + b) + the mean over the starts: not one formula per point (does not trace)."""

    name = "mixes-starts"
    params = (ParamDecl("w", "recurrent"), ParamDecl("b", "bias"))

    def step(self, p, state, x):
        (h,) = state
        return (torch.tanh(linear(h, p["w"]) + bias(p["b"])) + 0.1 * h.mean(-2, keepdim=True),)


def test_a_step_that_does_not_trace_falls_back():
    cell = MixesStarts()
    F = StateMap(cell, *population(cell, 2, 0))
    assert F._kernel() is None and jacobian.why_not(cell, 2, 0)
    s = states(F)
    for got, want in zip(F.jacobian(s), F.autograd_jacobian(s)):
        assert torch.equal(got, want)


def test_fast_off_is_autograd(monkeypatch):
    monkeypatch.setenv("LANDSCAPE_FAST", "0")
    cell = get_cell("gru")
    F = StateMap(cell, *population(cell, 2, 1))
    assert F._kernel() is None
    s = states(F)
    for got, want in zip(F.jacobian(s), F.autograd_jacobian(s)):
        assert torch.equal(got, want)


def plane(cell: str, H: int, num: int = 5):
    """The problem and a num x num grid through a recurrent weight and a bias of unit 0 (P = num^2)."""
    problem = resolve_model(ModelSpec(cell=cell, task="latch", hidden=H))
    w, b = problem.cell.block_input or ("w", "b")
    params = {k: v.to(DT).unsqueeze(0).clone() for k, v in problem.base.items()}
    X, Y = np.meshgrid(np.linspace(-3, 4, num), np.linspace(-1.5, 1.5, num), indexing="ij")
    P = X.size
    params[w] = params[w].repeat(P, *([1] * (params[w].dim() - 1)))
    params[b] = params[b].repeat(P, *([1] * (params[b].dim() - 1)))
    params[w][:, 0, 0] = torch.tensor(X.ravel())
    params[b][:, 0] = torch.tensor(Y.ravel())
    return problem, params


@pytest.mark.parametrize("cell,H", [("gru", 2), ("lstm", 2), ("srnn", 3)])
def test_dynamics_counts_equal_autograds(cell, H, monkeypatch):
    """The counts of dynamics_map on a small grid: the same with the kernel and with autograd alone."""
    problem, params = plane(cell, H)
    P = max(v.shape[0] for v in params.values())
    opts = DynamicsOptions()
    fast = dynamics_map(problem, params, 0.0, opts, members=np.arange(P))
    monkeypatch.setenv("LANDSCAPE_FAST", "0")
    slow = dynamics_map(problem, params, 0.0, opts, members=np.arange(P))
    for name in (*COUNT_FIELDS, *PERIOD_FIELDS):
        np.testing.assert_array_equal(getattr(fast, name), getattr(slow, name), err_msg=name)
    assert int(np.asarray(fast.n_fixed).sum()) > 0


def test_fixed_point_counts_equal_autograds(monkeypatch):
    """find_fixed_points (Levenberg-Marquardt and Newton on the Jacobian): the same points and kinds."""
    problem, params = plane("gru", 2, num=4)
    cell_params = {k: params[k] for k in problem.cell.param_shapes(2, 1)}
    fast = find_fixed_points(problem.cell, cell_params, x=torch.zeros(1, dtype=DT))
    monkeypatch.setenv("LANDSCAPE_FAST", "0")
    slow = find_fixed_points(problem.cell, cell_params, x=torch.zeros(1, dtype=DT))
    np.testing.assert_array_equal(fast.kind, slow.kind)
    np.testing.assert_array_equal(fast.count, slow.count)
    np.testing.assert_array_equal(fast.stable, slow.stable)
    np.testing.assert_allclose(fast.points, slow.points, rtol=0, atol=1e-9)
