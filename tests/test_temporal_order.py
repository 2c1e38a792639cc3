"""The temporal-order task against its definition, the C-class softmax readout, and Pascanu et al.
2013's regulariser Omega against an independent autograd computation (and in population training:
member k equals that model trained alone)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from landscape.cells import get_cell
from landscape.errors import LandscapeError
from landscape.problem import resolve_model
from landscape.spec import GridSpec
from landscape.tasks import get_task
from landscape.train import Member, TrainSpec, train_population
from landscape.train.omega import omega, unroll_states


@pytest.mark.parametrize("placement,T,first,second", [
    ("code", 50, (5, 9), (25, 29)),  # tempOrder.py: [0.1T, 0.2T) and [0.5T, 0.6T)
    ("code", 23, (2, 3), (11, 12)),
    ("arxiv", 50, (5, 10), (20, 25)),  # the appendix: [T/10, 2T/10] and [4T/10, 5T/10]
    ("arxiv", 23, (3, 4), (10, 11)),
])
def test_temporal_order_data_follow_the_definition(placement, T, first, second):
    n = 4000
    d = get_task("temporal-order", placement=placement).make((T,), n, 3)
    x = d.inputs.numpy()  # (T, N, 6)
    assert x.shape == (T, n, 6) and np.array_equal(x.sum(-1), np.ones((T, n)))  # one-hot
    sym = x.argmax(-1)  # (T, N): 0 = A, 1 = B, 2-5 = c-f
    for i in range(n):
        marked = np.flatnonzero(sym[:, i] < 2)
        assert len(marked) == 2, i  # every other position is a distractor
        p0, p1 = marked
        assert first[0] <= p0 <= first[1] and second[0] <= p1 <= second[1]
        assert d.targets[T][i] == sym[p0, i] + 2 * sym[p1, i]  # the order fixes the class: AA 0, BA 1, AB 2, BB 3
    # every class, every allowed position and every distractor occurs, about equally often
    assert np.bincount(d.targets[T].numpy().astype(int), minlength=4).min() > 0.2 * n
    pos = [np.flatnonzero(sym[:, i] < 2) for i in range(n)]
    assert {p[0] for p in pos} == set(range(first[0], first[1] + 1))
    assert {p[1] for p in pos} == set(range(second[0], second[1] + 1))
    distractors = np.bincount(sym[sym >= 2], minlength=6)[2:]
    assert distractors.min() > 0.23 * distractors.sum()


def test_temporal_order_refuses_what_it_cannot_make():
    task = get_task("temporal-order")
    with pytest.raises(LandscapeError, match="one data set has one length"):
        task.make((20, 40), 10, 0)
    with pytest.raises(LandscapeError, match="needs T >= 10"):
        task.make((9,), 10, 0)
    with pytest.raises(LandscapeError, match="placement='middle'; choose from: code, arxiv"):
        get_task("temporal-order", placement="middle")


def test_a_four_class_task_trains_a_softmax_over_four_logits_and_grids_refuse_it():
    problem = resolve_model(TrainSpec.of(cell="srnn", task="temporal-order", hidden=5).model, readout="dense2")
    assert problem.shapes["dense_w"] == (4, 5) and problem.shapes["dense_b"] == (4,)
    with pytest.raises(LandscapeError, match="readout logistic has two classes; a task with 4 classes"):
        resolve_model(TrainSpec.of(cell="srnn", task="temporal-order").model, readout="logistic")
    from landscape.resolved import resolve

    with pytest.raises(LandscapeError, match="grids take two-class tasks only"):
        resolve(GridSpec.of(cell="srnn", task="temporal-order", T=(10,)))
    # the loss is the softmax cross-entropy of the four logits, checked against torch's
    kind = problem.readout
    from landscape.readouts import readout_kind

    dense = readout_kind("dense2", 4)
    g = torch.Generator().manual_seed(0)
    params = {k: v.unsqueeze(0) for k, v in dense.init("torch", 5, g, torch.float64).items()}
    h = torch.randn(1, 7, 5, dtype=torch.float64)
    y = torch.tensor([[0, 3, 2, 1, 3, 0, 2]], dtype=torch.float64)
    loss, correct = dense.train_loss(params, h, y)
    z = h[0] @ params["dense_w"][0].T + params["dense_b"][0]
    assert torch.allclose(loss[0], torch.nn.functional.cross_entropy(z, y[0].long()), rtol=1e-14)
    assert torch.equal(correct[0], z.argmax(-1) == y[0].long()) and kind.kind == "dense2"


# ---------------------------------------------------------------------------------------------
# Omega


def _srnn_omega_by_hand(W, U, b, x, h0, v):
    """Omega of one srnn written out: J_k = diag(1 - h_{k+1}^2) W with h_{k+1} = tanh(W h_k + U x_k + b)
    recomputed from the (constant) h_k, so the result is differentiable in W as the paper's
    immediate derivative; v[k] = dE/dh_{k+1} constant. x (S, N, D), h0 (N, H) -> scalar."""
    S, N = x.shape[:2]
    total = W.new_zeros(())
    for n in range(N):
        h = h0[n].detach()
        for k in range(S):
            a = torch.tanh(W @ h + U @ x[k, n] + b)
            J = torch.diag(1 - a**2) @ W  # dh_{k+1}/dh_k
            vk = v[k][n]
            if float(vk.norm()) > 0:
                total = total + (torch.linalg.norm(vk @ J) / torch.linalg.norm(vk) - 1) ** 2
            h = a.detach()
    return total / N


def test_omega_and_its_gradient_equal_a_direct_computation():
    torch.manual_seed(0)
    H, D, N, S = 3, 2, 4, 6
    cell = get_cell("srnn")
    W = (0.9 * torch.randn(H, H, dtype=torch.float64)).requires_grad_(True)
    U = torch.randn(H, D, dtype=torch.float64)
    b = 0.1 * torch.randn(H, dtype=torch.float64)
    x = torch.randn(S, N, D, dtype=torch.float64)
    params = {"w": W.unsqueeze(0), "u": U.unsqueeze(0), "b": b.unsqueeze(0)}
    ends = torch.full((1, N), S)
    out, states = unroll_states(cell, params, x.unsqueeze(1), ends, H)
    E = (out[0] ** 2).sum(-1).mean() + out[0, :, 0].mean()  # any loss of the last state
    v = torch.autograd.grad(E, [s[0] for s in states[1:]], retain_graph=True)
    # dE/dh_k by hand: back-propagate through the explicit recursion
    hs = [torch.zeros(N, H, dtype=torch.float64)]
    for k in range(S):
        hs.append(torch.tanh(hs[-1] @ W.detach().T + x[k] @ U.T + b))
    g = (2 * hs[-1] + torch.tensor([1.0, 0, 0], dtype=torch.float64)) / N
    by_hand = [g]
    for k in range(S, 1, -1):
        g = (g * (1 - hs[k] ** 2)) @ W.detach()
        by_hand.insert(0, g)
    for a, c in zip(v, by_hand):
        torch.testing.assert_close(a[0], c, rtol=1e-12, atol=1e-14)
    reg = omega(cell, params, states, x.unsqueeze(1), [(t.detach(),) for t in v])
    direct = _srnn_omega_by_hand(W, U, b, x, hs[0], by_hand)
    torch.testing.assert_close(reg[0], direct, rtol=1e-12, atol=0)
    (g_ours,) = torch.autograd.grad(reg.sum(), W)
    (g_direct,) = torch.autograd.grad(direct, W)
    torch.testing.assert_close(g_ours, g_direct, rtol=1e-10, atol=1e-14)
    assert float(g_direct.norm()) > 1e-3  # the test has something to compare


def test_omega_steps_after_the_end_count_nothing():
    """A model's error signal is zero after its own end: those steps add no term."""
    cell = get_cell("srnn")
    torch.manual_seed(1)
    params = {"w": torch.randn(1, 2, 2, dtype=torch.float64, requires_grad=True), "u": torch.randn(1, 2, 1, dtype=torch.float64),
              "b": torch.zeros(1, 2, dtype=torch.float64)}
    x = torch.randn(8, 1, 3, 1, dtype=torch.float64)
    short, s_states = unroll_states(cell, params, x, torch.full((1, 3), 5), 2)
    _, l_states = unroll_states(cell, params, x, torch.full((1, 3), 8), 2)
    v = torch.autograd.grad(short.sum(), [s[0] for s in s_states[1:]])
    zeros = [torch.zeros_like(v[0])] * 3
    a = omega(cell, params, s_states, x, [(t,) for t in v])
    b = omega(cell, params, l_states, x, [(t,) for t in list(v) + zeros])
    torch.testing.assert_close(a, b, rtol=1e-14, atol=0)


def test_population_with_omega_equals_each_model_trained_alone():
    spec = TrainSpec.of(cell="srnn", task="temporal-order", hidden=4, n=60, epochs=2, batch=10, dtype="float64",
                        optimizer="sgd", omega=4.0)
    members = [Member(T=T, seed=s, data_seed=T, lr=0.05, clip=c, protocol="stratified")
               for T, s, c in ((10, 0, 1.0), (10, 1, None), (12, 2, 1.0))]
    together = train_population(spec, members, device="cpu")
    plain = train_population(TrainSpec.of(**{**spec.canonical(), "omega": 0.0}), members, device="cpu")
    assert not np.allclose(together.params["w"], plain.params["w"])  # Omega changes the training
    for p in range(len(members)):
        alone = train_population(spec, [members[p]], device="cpu")
        for k in together.params:
            np.testing.assert_allclose(alone.params[k][:, 0], together.params[k][:, p], rtol=0, atol=1e-12)
    assert spec.canonical()["omega"] == 4.0 and "omega" not in plain.spec.canonical()
    with pytest.raises(LandscapeError, match="omega .* must be a finite number >= 0"):
        train_population(TrainSpec.of(**{**spec.canonical(), "omega": -1.0}), members, device="cpu")
