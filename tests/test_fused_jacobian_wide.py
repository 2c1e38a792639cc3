"""The fused Jacobian of the state map above ``jacobian.STRAIGHT_H`` units, in matrix form
(landscape.kernels.numba.jacobian_wide), against the truth: torch's autograd (``jacobian.reference``,
what ``StateMap.autograd_jacobian`` computes), and the dynamics a search finds with autograd alone
($LANDSCAPE_FAST=0).

srnn, gru, lstm and mut3 at H = 9 and 16 (with no input, one and three inputs), lstm at 32, mut1
and mut2 (the second stage of products: W (r h)), a user cell through every operation with a
derivative rule; the count of non-finite points with infinite and NaN parameters, input and states;
the code written once per unit (its length does not grow with H); the fall-back where the units
compute different formulas.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

pytest.importorskip("numba")

from landscape.cells import Cell, ParamDecl, bias, get_cell, linear
from landscape.dynamics_map import DynamicsOptions, dynamics_map
from landscape.fixedpoints import StateMap
from landscape.kernels.numba import jacobian, jacobian_wide
from landscape.kernels.trace import trace_units
from landscape.model import ModelSpec
from landscape.problem import resolve_model
from landscape.store.format import COUNT_FIELDS, PERIOD_FIELDS
from tests.test_fused_jacobian import EveryOp, population, same_values, states

DT = torch.float64
TOL = {"rtol": 1e-9, "atol": 1e-12}  # as jacobian.self_check


def wide_kernel(cell, H: int, D: int):
    assert H > jacobian.STRAIGHT_H  # the matrix form, not the straight-line code
    kernel = jacobian.jacobian_kernel(cell, H, D)
    assert kernel is not None, jacobian.why_not(cell, H, D)
    return kernel


def check_against_autograd(cell, H: int, D: int, P: int = 4, M: int = 5):
    kernel = wide_kernel(cell, H, D)
    params, x = population(cell, H, D, P=P)
    params = {k: v / H ** 0.5 for k, v in params.items()}  # N(0, 1 / H): gates away from saturation
    s = states(StateMap(cell, params, x), M=M)
    got_F, got_J, bad = kernel(kernel.pack(params), kernel.inputs(x), s)
    want_F, want_J = jacobian.reference(cell, H, params, x, s)
    assert got_J.shape == (P, M, H * len(cell.state_names), H * len(cell.state_names)) and bad == 0
    torch.testing.assert_close(got_F, want_F, **TOL)
    torch.testing.assert_close(got_J, want_J, **TOL)
    assert float(want_J.abs().max()) > 0.1  # a Jacobian with something in it


@pytest.mark.parametrize("H", [9, 16])
@pytest.mark.parametrize("name,D", [("srnn", 1), ("srnn", 0), ("gru", 1), ("gru", 3), ("lstm", 1), ("mut3", 1)])
def test_wide_kernel_equals_autograd(name, D, H):
    check_against_autograd(get_cell(name), H, D)


@pytest.mark.parametrize("name,D", [("mut1", 0), ("mut2", 9)])
def test_second_stage_products(name, D):
    """MUT's W (r h): products of values the units compute, one per unit (D = H: an input per unit)."""
    check_against_autograd(get_cell(name), 9, D)


def test_wide_kernel_at_32_units():
    check_against_autograd(get_cell("lstm"), 32, 1, P=2, M=3)


def test_every_rule_in_matrix_form():
    check_against_autograd(EveryOp(), 9, 1)


def test_the_code_is_written_once_per_unit():
    """The generated module at H = 32 has as many lines as at H = 9 (the units' tables grow, not the code)."""
    for name in ("gru", "lstm", "mut3"):
        lines = [len(jacobian_wide.generate(trace_units(get_cell(name), H, 1)).splitlines()) for H in (9, 32)]
        assert lines[0] == lines[1]


@pytest.mark.parametrize("name", ["gru", "lstm", "srnn"])
def test_non_finite_points_are_counted_and_autograds(name):
    """Members with a parameter at +-inf or NaN, an infinite input, states at inf or NaN: the kernel
    counts exactly the points where s, F, J or the member's parameters or input are not finite, and
    StateMap.jacobian takes those from autograd (non-finite entries where autograd has them)."""
    cell, H, P = get_cell(name), 9, 8
    params, x = population(cell, H, 1, P=P)
    names = list(params)
    params[names[0]].view(P, -1)[4, 0] = float("inf")
    params[names[-1]].view(P, -1)[5, -1] = float("nan")
    params[names[1]].view(P, -1)[6, 3] = float("-inf")
    x[7, 0] = float("inf")
    F = StateMap(cell, params, x)
    kernel = wide_kernel(cell, H, 1)
    s = states(F)
    s[3, 0, 0], s[3, 1, -1] = float("nan"), float("inf")
    packed, xs = kernel.pack(params), kernel.inputs(x)
    got_F, got_J, bad = kernel(packed, xs, s)
    ok = jacobian.finite_points(s, got_F, got_J) & kernel.finite(packed, xs).unsqueeze(1)
    assert bad == int((~ok).sum()) and bad >= 4 * 7 + 2  # members 4..7 and two states of member 3
    got_F, got_J = F.jacobian(s)
    want_F, want_J = F.autograd_jacobian(s)
    same_values(got_F, want_F)
    same_values(got_J, want_J)


@dataclass(frozen=True)
class UnitZeroDiffers(Cell):
    """h' = tanh(c * (W h + b)) with c = 2 for unit 0 and 1 for the others: two formulas."""

    name = "unit-zero-differs"
    params = (ParamDecl("w", "recurrent"), ParamDecl("b", "bias"))

    def step(self, p, state, x):
        (h,) = state
        c = torch.tensor([2.0] + [1.0] * (h.shape[-1] - 1), dtype=h.dtype)
        return (torch.tanh(c * (linear(h, p["w"]) + bias(p["b"]))),)


def test_units_with_different_formulas_fall_back():
    cell = UnitZeroDiffers()
    assert jacobian.jacobian_kernel(cell, 9, 0) is None
    assert "unit 1 computes another formula than unit 0" in jacobian.why_not(cell, 9, 0)
    F = StateMap(cell, *population(cell, 9, 0, P=2))
    s = states(F, M=2)
    for got, want in zip(F.jacobian(s), F.autograd_jacobian(s)):
        assert torch.equal(got, want)  # autograd's, bit for bit


def test_dynamics_counts_equal_autograds(monkeypatch):
    """dynamics_map of a few members of a 16-unit gru with weights at a trained network's scale
    (N(0, 1.5^2 / H)): the same counts with the kernel and with autograd alone."""
    H, P = 16, 3
    problem = resolve_model(ModelSpec(cell="gru", task="latch", hidden=H))
    g = torch.Generator().manual_seed(3)
    params = {k: v.to(DT).unsqueeze(0).repeat(P, *([1] * v.dim())) for k, v in problem.base.items()}
    for k in problem.cell.param_shapes(H, problem.D):
        params[k] = torch.randn(params[k].shape, generator=g, dtype=DT) * 1.5 / H ** 0.5
    wide_kernel(problem.cell, H, problem.D)
    opts = DynamicsOptions(max_period=2, n_simulate=4, simulate_steps=64)
    fast = dynamics_map(problem, params, 0.0, opts, members=np.arange(P))
    monkeypatch.setenv("LANDSCAPE_FAST", "0")
    slow = dynamics_map(problem, params, 0.0, opts, members=np.arange(P))
    for name in (*COUNT_FIELDS, *PERIOD_FIELDS):
        np.testing.assert_array_equal(getattr(fast, name), getattr(slow, name), err_msg=name)
    assert int(np.asarray(fast.n_fixed).sum()) > 0
