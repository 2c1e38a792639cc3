"""The fused lambda_T above ``jacobian.STRAIGHT_H`` units, in matrix form (``lyapunov.generate_wide``:
the products and their derivatives along v, one unit's formula and its local partials in a loop over
the units), against the truth: ``lyapunov``'s autograd path ($LANDSCAPE_FAST=0), to the tolerance of
test_fused_lyapunov (rtol 1e-10; -inf and NaN at the same places).

srnn, gru, lstm, mut1 (the second stage of products: W (r h)) and mut3 at H = 9 and 16, lstm at 32;
members with a NaN or infinite parameter (flagged, autograd's); sequences of different lengths
(two-sequence); the fall-back where the units compute different formulas; the code written once per
unit (its length does not grow with H).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

pytest.importorskip("numba")

from landscape.cells import get_cell
from landscape.dynamics_map import lyapunov
from landscape.kernels.numba import jacobian
from landscape.kernels.numba import lyapunov as fused
from landscape.kernels.trace import trace_units
from tests.test_fused_jacobian_wide import UnitZeroDiffers
from tests.test_fused_lyapunov import autograd, problem, same_values

DT = torch.float64


def wide_kernel(pr) -> fused.LyapunovKernel:
    assert pr.H > jacobian.STRAIGHT_H  # the matrix form, not the straight-line code
    kernel = fused.lyapunov_kernel(pr.cell, pr.H, pr.D)
    assert kernel is not None, fused.why_not(pr.cell, pr.H, pr.D)
    return kernel


def population(pr, P: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    """P members of N(0, 1.5^2 / H) parameters (P, *shape): a trained network's scale, some members
    chaotic (lambda_T > 0), some contracting."""
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn((P, *shape), generator=g, dtype=DT) * 1.5 / pr.H ** 0.5
            for k, shape in pr.cell.param_shapes(pr.H, pr.D).items()}


def check_against_autograd(pr, monkeypatch, P: int = 4, N: int = 5, Ts=(6, 20)):
    wide_kernel(pr)
    data = pr.task.make(Ts, N, 1)
    params = population(pr, P)
    got = lyapunov(pr, params, data, Ts)
    assert got.shape == (len(Ts), P, 1) and np.isfinite(got).all()
    same_values(got, autograd(monkeypatch, pr, params, data, Ts))
    return got


@pytest.mark.parametrize("H", [9, 16])
@pytest.mark.parametrize("name", ["srnn", "gru", "lstm", "mut1", "mut3"])
def test_wide_kernel_equals_autograd(name, H, monkeypatch):
    pr = problem(name, task="target" if name == "mut1" else "latch", hidden=H)  # mut1: D = H or 0
    check_against_autograd(pr, monkeypatch)


def test_wide_kernel_at_32_units(monkeypatch):
    got = check_against_autograd(problem("lstm", hidden=32), monkeypatch, P=2, N=3, Ts=(5, 12))
    assert got.std() > 0  # members that differ


def test_non_finite_parameters_are_flagged_and_autograds(monkeypatch):
    pr = problem("gru", hidden=9)
    kernel = wide_kernel(pr)
    data = pr.task.make((5, 15), 6, 2)
    params = population(pr, P=5)
    params["w_h"][1, 0, 3] = float("nan")
    params["b_z"][2, 4] = float("inf")
    params["u_r"][3, 0, 0] = float("-inf")
    v0 = torch.nn.functional.normalize(torch.randn(6, 9, dtype=DT), dim=-1)
    lam, bad = kernel(params, data.inputs, data.h0, v0, [data.ends[5], data.ends[15]])
    assert bad.tolist() == [False, True, True, True, False]
    assert np.isfinite(lam[:, [0, 4]]).all()
    got = lyapunov(pr, params, data, (5, 15))
    assert np.isnan(got[:, 1]).all()
    same_values(got, autograd(monkeypatch, pr, params, data, (5, 15)))


def test_sequences_of_different_lengths(monkeypatch):
    pr = problem("lstm", task="two-sequence", hidden=9)
    wide_kernel(pr)
    data = pr.task.make((10, 30), 12, 3)
    for T in (10, 30):
        assert len(set(data.ends[T].tolist())) > 1  # the sequences do end at different steps
    params = population(pr, P=3)
    same_values(lyapunov(pr, params, data, (10, 30)), autograd(monkeypatch, pr, params, data, (10, 30)))


def test_units_with_different_formulas_fall_back(monkeypatch):
    monkeypatch.setattr(fused, "_BUILDS", fused._BUILDS.fresh())
    base = problem("srnn", hidden=9)
    pr = dataclasses.replace(base, cell=UnitZeroDiffers(), D=0)
    assert fused.lyapunov_kernel(pr.cell, 9, 0) is None
    assert "unit 1 computes another formula than unit 0" in fused.why_not(pr.cell, 9, 0)
    data = dataclasses.replace(base.task.make((7,), 4, 0), inputs=None)
    params = population(pr, P=3)
    got = lyapunov(pr, params, data, (7,))
    assert np.isfinite(got).all() and np.array_equal(got, autograd(monkeypatch, pr, params, data, (7,)))


def test_the_code_is_written_once_per_unit():
    """The generated module at H = 32 has as many lines as at H = 9 (the units' tables grow, not the code)."""
    for name, D in (("gru", 1), ("lstm", 1), ("mut1", 0), ("mut3", 1)):
        lines = [len(fused.generate_wide(trace_units(get_cell(name), H, D)).splitlines()) for H in (9, 32)]
        assert lines[0] == lines[1]
