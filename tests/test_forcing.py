"""The loss over every step of a ground-truth path (task plrnn-path), free-running and teacher-forced,
against direct numpy computations; the fused kernels and the end-of-sequence analyses decline it."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from landscape import engine
from landscape.errors import LandscapeError
from landscape.kernels import fused_losses
from landscape.model import ModelSpec
from landscape.problem import resolve_model
from landscape.tasks import get_task
from landscape.tasks.builtin import EISENMANN_A, EISENMANN_H, EISENMANN_W
from landscape.train import Member, TrainSpec, train_population

CELL = "examples/cells/plrnn.py:PLRNN"


def _step(a, w, h, z):
    """One PLRNN step in numpy: z (2,) -> (2,)."""
    return a * z + w @ np.maximum(z, 0) + h


def _truth(T, x0=0.0):
    z = np.full(2, x0)
    out = [z]
    for _ in range(T):
        z = _step(np.array(EISENMANN_A), np.array(EISENMANN_W), np.array(EISENMANN_H), z)
        out.append(z)
    return np.array(out)  # (T + 1, 2)


def _points(P, seed=0):
    """P PLRNN parameter sets near the ground truth: a (P, 2), w (P, 2, 2), h (P, 2)."""
    rng = np.random.default_rng(seed)
    a = np.array(EISENMANN_A) + rng.uniform(-0.3, 0.3, (P, 2))
    w = np.array(EISENMANN_W) + rng.uniform(-0.2, 0.2, (P, 2, 2))
    h = np.array(EISENMANN_H) + rng.uniform(-0.2, 0.2, (P, 2))
    return a, w, h


def _losses(forcing, Ts, a, w, h, x0=0.0):
    problem = resolve_model(ModelSpec(cell=CELL, task="plrnn-path", task_options=(("forcing", forcing), ("x0", x0))))
    data = problem.task.make(Ts, 1, 0)
    params = {"a": torch.tensor(a), "w": torch.tensor(w), "h": torch.tensor(h), "u": torch.zeros(len(a), 2, 0,
                                                                                           dtype=torch.float64)}
    return engine.unroll_losses(problem, params, data, Ts).numpy(), problem, params, data


@pytest.mark.parametrize("forcing", [0, 1, 3, 7])
def test_the_loss_over_every_step_equals_a_direct_computation(forcing):
    Ts = (5, 40, 123)
    a, w, h = _points(6)
    got, *_ = _losses(forcing, Ts, a, w, h, x0=0.3)
    truth = _truth(max(Ts), 0.3)
    for p in range(len(a)):
        z, errs = truth[0].copy(), []
        for t in range(1, max(Ts) + 1):
            if forcing and (t - 1) % forcing == 0:
                z = truth[t - 1]
            z = _step(a[p], w[p], h[p], z)
            errs.append(np.mean((z - truth[t]) ** 2))
        for k, T in enumerate(Ts):
            np.testing.assert_allclose(got[k, p], np.mean(errs[:T]), rtol=1e-12)


def test_full_forcing_is_the_one_step_ahead_prediction_loss_and_differs_from_free_running():
    T = 500
    a, w, h = _points(5, seed=1)
    forced, *_ = _losses(1, (T,), a, w, h)
    free, *_ = _losses(0, (T,), a, w, h)
    truth = _truth(T)
    for p in range(len(a)):
        pred = np.array([_step(a[p], w[p], h[p], truth[t]) for t in range(T)])  # z_{t+1} from z*_t
        np.testing.assert_allclose(forced[0, p], np.mean((pred - truth[1:]) ** 2), rtol=1e-12)
    assert not np.allclose(forced, free)
    at_truth, *_ = _losses(0, (T,), np.array([EISENMANN_A]), np.array([EISENMANN_W]), np.array([EISENMANN_H]))
    assert at_truth[0, 0] == 0.0  # the ground truth regresses itself exactly


def test_the_path_loss_differentiates_and_the_end_of_sequence_paths_decline_it():
    a, w, h = _points(3, seed=2)
    losses, problem, params, data = _losses(5, (60,), a, w, h)
    params = {k: v.clone().requires_grad_(k == "a") for k, v in params.items()}
    (g,) = torch.autograd.grad(engine.unroll_losses(problem, params, data, (60,)).sum(), [params["a"]])
    eps = 1e-6
    for p in range(3):  # central differences of the direct loss
        for i in range(2):
            up, down = a.copy(), a.copy()
            up[p, i] += eps
            down[p, i] -= eps
            fd = (_losses(5, (60,), up, w, h)[0][0, p] - _losses(5, (60,), down, w, h)[0][0, p]) / (2 * eps)
            np.testing.assert_allclose(g[p, i].item(), fd, rtol=1e-5, atol=1e-9)
    fused, why = fused_losses(problem, params, data, (60,), fast=True)
    assert fused is None and "over every step" in why
    from landscape import gradients

    with pytest.raises(LandscapeError, match="over every step of a path"):
        gradients.grad_norms_t(problem, params, data, 60)
    with pytest.raises(LandscapeError, match="over every step of a path"):
        train_population(TrainSpec.of(cell=CELL, task="plrnn-path", n=1, batch=1, epochs=1),
                         [Member(T=10, protocol="all")], device="cpu")


def test_plrnn_path_refuses_what_it_cannot_do():
    with pytest.raises(LandscapeError, match="forcing=-1 must be >= 0"):
        get_task("plrnn-path", forcing=-1)
    with pytest.raises(LandscapeError, match="use n = 1"):
        get_task("plrnn-path").check_n(3)
    problem = resolve_model(ModelSpec(cell=CELL, task="plrnn-path", hidden=3))
    data = problem.task.make((5,), 1, 0)
    params = {k: v.unsqueeze(0) for k, v in problem.base.items()}
    with pytest.raises(LandscapeError, match="path has 2 units; the model has H=3"):
        engine.unroll_losses(problem, params, data, (5,))
