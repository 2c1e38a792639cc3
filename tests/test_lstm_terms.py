"""The four terms of the LSTM's dc_t/dc_{t-1} (landscape.lstm_terms).

Truths: a slow per-(member, sequence, t) loop of torch.autograd.functional.jacobian on one step of
the cell (c_{t-1} -> c_t with h_{t-1} = o_{t-1} squash(c_{t-1})), the hand-derived scalar formulas
for H = 1, and autograd through the whole unroll for d c_T / d c_1.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from landscape.cells import get_cell
from landscape.errors import LandscapeError
from landscape.lstm_terms import (
    TERMS,
    log10_product,
    lstm_jacobian_terms,
    summarise,
    whole_dct_dc1,
)


def random_params(cell, H, D, P, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return {k: scale * (2 * torch.rand((P, *v.shape), generator=g, dtype=torch.float64) - 1)
            for k, v in cell.default_params(H, D).items()}


def inputs(T, N, D, seed):
    g = torch.Generator().manual_seed(seed + 1)
    return torch.randn((T, N, D), generator=g, dtype=torch.float64)


def autograd_step_jacobians(cell, params, x, T, H):
    """(P, N, T, H, H) by a loop over members, sequences and steps (the independent truth)."""
    P = next(iter(params.values())).shape[0]
    N = x.shape[1]
    out = np.zeros((P, N, T, H, H))
    for m in range(P):
        pm = {k: v[m:m + 1] for k, v in params.items()}
        for n in range(N):
            state = tuple(s.clone() for s in cell.initial_state(pm, 1, H))  # (1, 1, H) each
            o_prev = None
            for t in range(T):
                xt = x[t, n:n + 1]  # (1, D)
                # h_{t-1}: the fixed initial state at t = 1, else o_{t-1} squash(c_{t-1})
                def fn(c, pm=pm, xt=xt, h0=state[0], o=o_prev):
                    c = c.reshape(1, 1, H)
                    h = h0 if o is None else o * cell.squash_cell(c)
                    return cell.step(pm, (h, c), xt)[1].reshape(H)

                out[m, n, t] = torch.autograd.functional.jacobian(fn, state[1].reshape(H)).numpy()
                state, gates = cell.step_detail(pm, state, xt)
                o_prev = gates.get("o", torch.ones_like(state[1]))
    return out


@pytest.mark.parametrize("name", ["lstm", "lstm-b", "lstm-i", "lstm-o"])
@pytest.mark.parametrize("H", [1, 3])
def test_terms_sum_to_autograd_jacobian(name, H):
    cell = get_cell(name)
    P, N, T, D = 2, 3, 6, 2
    params = random_params(cell, H, D, P, seed=H, scale=1.5)
    x = inputs(T, N, D, seed=H)
    terms = lstm_jacobian_terms(cell, params, x, T, H)
    assert set(terms) == {*TERMS, "total"}
    for v in terms.values():
        assert v.shape == (P, N, T, H, H) and v.dtype == np.float64
    truth = autograd_step_jacobians(cell, params, x, T, H)
    np.testing.assert_allclose(sum(terms[k] for k in TERMS), truth, rtol=0, atol=1e-12)
    np.testing.assert_allclose(terms["total"], truth, rtol=0, atol=1e-12)
    # the gate terms are nonzero after t = 1 (the test could not pass by dropping them) ...
    for k in ("through_f", "through_z"):
        assert np.abs(terms[k][:, :, 1:]).max() > 1e-3
    # ... and exactly 0 at t = 1, where h_0 is the fixed initial state
    for k in ("through_f", "through_z", "through_i"):
        assert np.all(terms[k][:, :, 0] == 0)
    if name == "lstm-i":  # no input gate: that term is 0
        assert np.all(terms["through_i"] == 0)
    else:
        assert np.abs(terms["through_i"][:, :, 1:]).max() > 1e-3


def test_cells_without_a_forget_gate_carry_the_identity():
    cell = get_cell("lstm-f")
    H, T = 2, 4
    params = random_params(cell, H, 1, 2, seed=5)
    x = inputs(T, 2, 1, seed=5)
    terms = lstm_jacobian_terms(cell, params, x, T, H)
    np.testing.assert_array_equal(terms["forget"], np.broadcast_to(np.eye(H), terms["forget"].shape))
    assert np.all(terms["through_f"] == 0)
    np.testing.assert_allclose(terms["total"], autograd_step_jacobians(cell, params, x, T, H), atol=1e-12, rtol=0)


def test_one_unit_closed_forms():
    """H = 1: each term against its hand-written scalar formula (sigmoid gates, tanh squashings)."""
    cell = get_cell("lstm")
    params = random_params(cell, 1, 1, 1, seed=11, scale=2.0)
    x = inputs(5, 4, 1, seed=11)
    terms = lstm_jacobian_terms(cell, params, x, 5, 1)
    s = {k: float(v.reshape(-1)[0]) for k, v in params.items()}

    def sig(a):
        return 1 / (1 + math.exp(-a))

    for n in range(4):
        h = c = 0.0
        o_prev = None
        for t in range(5):
            xt = float(x[t, n, 0])
            pre = {g: s[f"w_{g}"] * h + s[f"u_{g}"] * xt + s[f"b_{g}"] for g in "ifzo"}
            i, f, o = sig(pre["i"]), sig(pre["f"]), sig(pre["o"])
            z = math.tanh(pre["z"])
            k = 0.0 if o_prev is None else o_prev * (1 - math.tanh(c) ** 2)
            want = {"forget": f,
                    "through_f": c * f * (1 - f) * s["w_f"] * k,
                    "through_z": i * (1 - z * z) * s["w_z"] * k,
                    "through_i": z * i * (1 - i) * s["w_i"] * k}
            for name, value in want.items():
                assert terms[name][0, n, t, 0, 0] == pytest.approx(value, abs=1e-14)
            c = f * c + i * z
            h, o_prev = o * math.tanh(c), o


def test_broadcast_population_and_hard_sigmoid_gate():
    """Parameters with P = 1 broadcast against per-member ones; Keras's hard sigmoid gate works."""
    cell = get_cell("lstm", gate="hard_sigmoid")
    params = random_params(cell, 2, 1, 3, seed=2, scale=2.0)
    params["w_f"] = params["w_f"][:1]  # shared by the population
    x = inputs(5, 2, 1, seed=2)
    terms = lstm_jacobian_terms(cell, params, x, 5, 2)
    full = {k: v.expand(3, *v.shape[1:]) for k, v in params.items()}
    np.testing.assert_allclose(terms["total"], autograd_step_jacobians(cell, full, x, 5, 2), atol=1e-12, rtol=0)


def test_products_and_summary():
    cell = get_cell("lstm")
    H, T = 1, 8
    params = {k: v.unsqueeze(0) for k, v in cell.default_params(H, 1).items()}
    params["b_f"] = torch.tensor([[2.0]], dtype=torch.float64)
    x = inputs(T, 5, 1, seed=3)
    terms = lstm_jacobian_terms(cell, params, x, T, H)
    # H = 1: the running product is the cumulative product of the factors
    lp = log10_product(terms["total"], start=2)
    np.testing.assert_allclose(10 ** lp[..., -1], np.abs(np.prod(terms["total"][:, :, 1:, 0, 0], axis=-1)), rtol=1e-12)
    rows = summarise(terms, whole_dct_dc1(cell, params, x, T, H))
    assert len(rows) == 1
    row = rows[0]
    assert sum(row[f"share_{k}"] for k in TERMS) == pytest.approx(1.0)
    assert row["share_forget"] > 0.5  # b_f = 2 at the base point: the forget term dominates
    # H > 1: the renormalised running product agrees with the plain matrix product
    params3 = random_params(cell, 3, 1, 1, seed=4)
    terms3 = lstm_jacobian_terms(cell, params3, inputs(T, 2, 1, seed=4), T, 3)
    prod = np.eye(3)
    for t in range(1, T):
        prod = terms3["total"][0, 0, t] @ prod
    assert log10_product(terms3["total"], start=2)[0, 0, -1] == pytest.approx(np.log10(np.linalg.norm(prod, 2)))


def test_whole_derivative_against_finite_differences():
    """d c_t / d c_1 at every t (forward mode) against central differences of the unroll."""
    cell = get_cell("lstm")
    H, T = 2, 6
    params = random_params(cell, H, 1, 1, seed=8)
    x = inputs(T, 1, 1, seed=8)
    J = whole_dct_dc1(cell, params, x, T, H)[0, 0]  # (T, H, H)
    assert J.shape == (T, H, H)
    np.testing.assert_array_equal(J[0], np.eye(H))
    (_, c1), g1 = cell.step_detail(params, cell.initial_state(params, 1, H), x[0])

    def c_all(c):
        state = (g1["o"] * torch.tanh(c), c)
        out = [c.reshape(H)]
        for t in range(1, T):
            state = cell.step(params, state, x[t])
            out.append(state[1].reshape(H))
        return torch.stack(out)  # (T, H)

    eps = 1e-6
    for b in range(H):
        d = torch.zeros_like(c1)
        d[..., b] = eps
        fd = (c_all(c1 + d) - c_all(c1 - d)) / (2 * eps)  # (T, H)
        np.testing.assert_allclose(J[:, :, b], fd.numpy(), atol=1e-8)
    # the whole derivative is not the product of the one-step c-path Jacobians (the o path)
    terms = lstm_jacobian_terms(cell, params, x, T, H)
    prod = np.eye(H)
    for t in range(1, T):
        prod = terms["total"][0, 0, t] @ prod
    assert np.abs(prod - J[-1]).max() > 1e-6


def test_only_the_lstm_family():
    with pytest.raises(LandscapeError, match="LSTM family.*gru"):
        lstm_jacobian_terms(get_cell("gru"), {}, None, 3, 1)


def test_reproduce_quick(tmp_path):
    import csv

    from landscape.analyses import analyses

    module = analyses()["lstm-terms"]
    paths = module.run(tmp_path, quick=True)
    names = {p.name for p in paths}
    assert {"lstm-terms-quick.csv", "lstm-terms-quick.pdf", "lstm-terms-quick.png"} <= names
    with open(tmp_path / "lstm-terms-quick.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["init"], float(r["b_f"])) for r in rows] == [(i, b) for i in ("base", "keras") for b in (0, 1, 2)]
    for r in rows:
        shares = sum(float(r[f"share_{k}"]) for k in TERMS)
        assert shares == pytest.approx(1.0)
    # a larger forget bias: a larger forget term (f_t = sigmoid(b_f + ...))
    base = [float(r["mean_abs_forget"]) for r in rows if r["init"] == "base"]
    assert base[0] < base[1] < base[2]
