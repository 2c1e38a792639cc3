"""The fused lambda_T (landscape.kernels.numba.lyapunov, the seeded forward-mode tangent of
landscape.kernels.derivative.state_jvp) against the truth: ``lyapunov``'s autograd path
($LANDSCAPE_FAST=0: J by one backward pass per step, J @ v, torch's norm), and the linear cell's
closed form log|w|.

The kernel's step and J v round differently from torch's (mathfn's tanh and sigmoid, J v summed as
the rules compose it): lambda_T agrees to ``TOL`` (rtol 1e-10), not bit for bit; -inf (a product that
reaches 0) and NaN (a NaN parameter) at the same places. Every built-in cell at H = 1, 2 and 4
(the LSTM family with its two states; srnn, gru and lstm always, the others marked slow: each
(cell, H) compiles a kernel, kept in $LANDSCAPE_KERNELS); sequences of different lengths
(two-sequence); a grid through ``landscape grid --dynamics`` on a non-square plane; the fall-backs
(an operation without a rule, several exponents, $LANDSCAPE_FAST=0, H above ``MAX_H``).
"""
from __future__ import annotations

from dataclasses import dataclass

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner

pytest.importorskip("numba")

from landscape.cells import Cell, ParamDecl, bias, linear
from landscape.cli import main
from landscape.dynamics_map import GRID_SEQUENCES, first_sequences, lyapunov
from landscape.kernels import derivative
from landscape.kernels.numba import lyapunov as fused
from landscape.model import ModelSpec
from landscape.problem import resolve_model

DT = torch.float64
BUILTIN = ("srnn", "pascanu", "linear", "irnn", "lstm", "lstm-b", "lstm-i", "lstm-o", "lstm-f", "lstm1997", "gru",
           "mut1", "mut2", "mut3")
ALWAYS = ("srnn", "gru", "lstm")  # the rest of BUILTIN is the slow matrix (a kernel compiles in seconds)
TOL = {"rtol": 1e-10, "atol": 1e-12}


def problem(cell, task="latch", hidden=None):
    return resolve_model(ModelSpec(cell=cell, task=task, hidden=hidden))


def population(pr, P: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    """P members of N(0, 1) parameters (P, *shape) (weights of 1 in size: not all contracting); an
    irnn's weights >= 0 and biases >= 2 (its ReLUs active: elsewhere J = 0 at once, lambda_T = -inf)."""
    g = torch.Generator().manual_seed(seed)
    params = {k: torch.randn((P, *shape), generator=g, dtype=DT) for k, shape in pr.cell.param_shapes(pr.H, pr.D).items()}
    if pr.cell.name == "irnn":
        params["w"], params["b"] = params["w"].abs(), params["b"].abs() + 2
    return params


def autograd(monkeypatch, *args, **kw) -> np.ndarray:
    """``lyapunov`` with $LANDSCAPE_FAST=0: the autograd path."""
    with monkeypatch.context() as m:
        m.setenv("LANDSCAPE_FAST", "0")
        return lyapunov(*args, **kw)


def built(pr) -> fused.LyapunovKernel:
    kernel = fused.lyapunov_kernel(pr.cell, pr.H, pr.D)
    assert kernel is not None, fused.why_not(pr.cell, pr.H, pr.D)
    return kernel


def same_values(got: np.ndarray, want: np.ndarray):
    """Equal to TOL where finite; inf (of the same sign) and NaN at the same places."""
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    np.testing.assert_array_equal(got[np.isinf(got)], want[np.isinf(want)])
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], **TOL)


@pytest.mark.parametrize("H", [1, 2, 4])
@pytest.mark.parametrize("name", [n if n in ALWAYS else pytest.param(n, marks=pytest.mark.slow) for n in BUILTIN])
def test_every_builtin_cell_equals_autograd(name, H, monkeypatch):
    pr = problem(name, task="target" if name in ("mut1", "mut2") else "latch", hidden=H)  # those two: D = H or 0
    built(pr)
    data = pr.task.make((6, 30), 5, 1)
    params = population(pr)
    got = lyapunov(pr, params, data, (6, 30))
    assert got.shape == (2, 4, 1) and np.isfinite(got).all()
    same_values(got, autograd(monkeypatch, pr, params, data, (6, 30)))


def test_linear_cell_is_log_abs_w():
    pr = problem("linear")
    built(pr)
    data = pr.task.make((7, 40), 16, 0)
    w = torch.tensor([0.3, -0.9, 1.5, -2.0], dtype=DT)
    got = lyapunov(pr, {"w": w.view(-1, 1, 1), "u": torch.ones(1, 1, 1, dtype=DT), "b": torch.zeros(1, 1, dtype=DT)},
                   data, (7, 40))
    np.testing.assert_allclose(got[..., 0], np.broadcast_to(np.log(np.abs(w.numpy())), (2, 4)), rtol=0, atol=1e-12)


def test_sequences_of_different_lengths(monkeypatch):
    pr = problem("gru", task="two-sequence", hidden=2)
    built(pr)
    data = pr.task.make((10, 30), 12, 3)
    for T in (10, 30):
        assert len(set(data.ends[T].tolist())) > 1  # the sequences do end at different steps
    params = population(pr, P=3)
    got = lyapunov(pr, params, data, (10, 30))
    same_values(got, autograd(monkeypatch, pr, params, data, (10, 30)))
    # each sequence alone: lambda_T is the mean of the sequences' own exponents at their own ends
    v = torch.randn(12, 2, 1, generator=torch.Generator().manual_seed(0), dtype=DT)  # (N, S, 1)
    whole = lyapunov(pr, params, data, (30,), vectors=v)[0, :, 0]
    alone = [lyapunov(pr, params, _one(data, n), (30,), vectors=v[n])[0, :, 0] for n in range(12)]
    np.testing.assert_allclose(whole, np.mean(alone, 0), rtol=1e-12)


def _one(data, n):
    """The task's data of sequence n alone."""
    from landscape.tasks import TaskData

    return TaskData(data.inputs[:, n:n + 1], {T: t[n:n + 1] for T, t in data.targets.items()},
                    {T: e[n:n + 1] for T, e in data.ends.items()}, data.h0)


def test_a_product_that_reaches_zero_and_non_finite_parameters_are_autograds(monkeypatch):
    pr = problem("irnn", hidden=2)
    kernel = built(pr)
    data = pr.task.make((5, 20), 6, 2)
    params = population(pr, P=5)
    params["w"][1] = -3.0  # relu(-3 h + u x + b) with b very negative: h = 0 from the first step, J = 0
    params["b"][1] = -100.0
    params["u"][1] = 0.1
    params["w"][2, 0, 1] = float("nan")
    params["b"][3, 1] = float("inf")  # a state at inf: forward mode's -inf, autograd's finite value
    got = lyapunov(pr, params, data, (5, 20))
    assert np.isneginf(got[:, 1]).all() and np.isnan(got[:, 2]).all() and np.isfinite(got[:, [0, 3, 4]]).all()
    same_values(got, autograd(monkeypatch, pr, params, data, (5, 20)))
    # the -inf is the kernel's own; the non-finite members are flagged (and taken from autograd)
    v0 = torch.nn.functional.normalize(torch.randn(6, 2, dtype=DT), dim=-1)
    lam, bad = kernel(params, data.inputs, data.h0, v0, [data.ends[5], data.ends[20]])
    assert np.isneginf(lam[:, 1]).all() and bad.tolist() == [False, False, True, True, False]


def test_a_grid_through_the_cli_equals_lyapunov_called_directly(tmp_path):
    out = tmp_path / "g.h5"
    args = ["grid", "--cell", "gru", "--hidden", "2", "--task", "latch", "--x", "w_h[0,1]:-3:3:5", "--y",
            "b_h[1]:-1:1:3", "--T", "5,12", "--n", "24", "--dynamics", "--chunk-size", "4", "--out", str(out)]
    res = CliRunner().invoke(main, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    with h5py.File(out) as f:
        stored = f["lyapunov"][()]  # (nT, nx, ny)
    pr = problem("gru", hidden=2)
    built(pr)
    X, Y = np.meshgrid(np.linspace(-3, 3, 5), np.linspace(-1, 1, 3), indexing="ij")  # (5, 3)
    params = {k: v.to(DT).unsqueeze(0).repeat(X.size, *([1] * v.dim())) for k, v in pr.base.items()}
    params["w_h"][:, 0, 1] = torch.tensor(X.reshape(-1))
    params["b_h"][:, 1] = torch.tensor(Y.reshape(-1))
    data = first_sequences(pr.task.make((5, 12), 24, 0), GRID_SEQUENCES)
    want = lyapunov(pr, params, data, (5, 12))[..., 0].reshape(2, *X.shape)
    assert stored.shape == (2, 5, 3)
    np.testing.assert_allclose(stored, want, rtol=1e-12, atol=0)


@dataclass(frozen=True)
class NoRule(Cell):
    """tanh, whose rule test_an_op_without_a_rule_falls_back removes."""

    name = "no-rule-lyapunov"
    params = (ParamDecl("w", "recurrent"), ParamDecl("b", "bias"))

    def step(self, p, state, x):
        (h,) = state
        return (torch.tanh(linear(h, p["w"]) + bias(p["b"])),)


def test_an_op_without_a_rule_falls_back(monkeypatch):
    monkeypatch.delitem(derivative._RULES, "tanh")
    monkeypatch.setattr(fused, "_BUILDS", fused._BUILDS.fresh())
    cell = NoRule()
    assert fused.lyapunov_kernel(cell, 2, 0) is None
    assert "no derivative rule for the operation tanh" in fused.why_not(cell, 2, 0)
    pr = problem("srnn", hidden=2)  # tanh too: lyapunov takes autograd's path, bit for bit
    assert fused.lyapunov_kernel(pr.cell, 2, 1) is None
    data = pr.task.make((9,), 4, 0)
    params = population(pr, P=3)
    assert np.array_equal(lyapunov(pr, params, data, (9,)), autograd(monkeypatch, pr, params, data, (9,)))


def test_several_exponents_fast_off_and_a_large_H_are_autograds(monkeypatch):
    pr = problem("lstm", hidden=2)
    built(pr)
    data = pr.task.make((8,), 4, 0)
    params = population(pr, P=3)
    calls = []
    real = fused.LyapunovKernel.__call__
    monkeypatch.setattr(fused.LyapunovKernel, "__call__", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    assert lyapunov(pr, params, data, (8,), n_exponents=2).shape == (1, 3, 2)
    assert autograd(monkeypatch, pr, params, data, (8,)).shape == (1, 3, 1)
    wide = problem("srnn", hidden=fused.MAX_H + 1)
    assert fused.lyapunov_kernel(wide.cell, wide.H, 1) is None and "H = 1 to" in fused.why_not(wide.cell, wide.H, 1)
    assert lyapunov(wide, population(wide, P=2), data, (8,)).shape == (1, 2, 1)
    assert not calls  # none of them ran the kernel
    lyapunov(pr, params, data, (8,))
    assert calls  # one exponent with $LANDSCAPE_FAST on: the kernel
