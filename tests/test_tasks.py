"""Each task's data against its definition (docs/reference.md §1-§5), the prefix property the engine
relies on (a sequence of length T is the prefix of the longest one, across the 64-step blocks of the
noise), the tasks' declared facts, and the one-unit maps of ``dynamics`` against the cells' steps."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from landscape import dynamics
from landscape.cells import get_cell
from landscape.errors import LandscapeError
from landscape.tasks import BLOCK, TASKS, get_task

N = 4000  # enough sequences for the moments to be tight


def test_latch_first_value_labels_and_noise():
    """Cross Validated 340898: first value +1 (label 1, first half of the rows) or -1, N(0, 0.1^2)
    noise on every value."""
    d = get_task("latch").make((30,), N, 0)
    x, y = d.inputs[..., 0], d.targets[30]
    assert x.shape == (30, N) and d.inputs.shape[-1] == 1
    assert torch.equal(y, torch.cat([torch.ones(N // 2), torch.zeros(N - N // 2)]).double())
    first = x[0] - (2 * y - 1)  # the noise on the first value
    for noise in (first, x[1:].flatten()):
        assert abs(float(noise.mean())) < 4 * 0.1 / math.sqrt(noise.numel())
        assert float(noise.std()) == pytest.approx(0.1, rel=0.03)
    assert (torch.sign(x[0]) == 2 * y - 1).all()  # sd 0.1 never flips a +-1
    sd = get_task("latch", noise=0.3).make((5,), N, 0).inputs[1:, :, 0].std()
    assert float(sd) == pytest.approx(0.3, rel=0.05)


def test_bengio_class_inputs_variance_and_targets():
    """Bengio et al. 1994: L = 3 class inputs +-h, then noise of VARIANCE s = 0.2; targets +-0.8."""
    d = get_task("bengio").make((20,), N, 1)
    x, y = d.inputs[..., 0], d.targets[20]
    sign = torch.cat([torch.ones(N // 2), -torch.ones(N - N // 2)]).double()
    assert torch.equal(x[:3], torch.ones(3, 1, dtype=torch.float64) * sign)  # h = 1
    assert float(x[3:].var()) == pytest.approx(0.2, rel=0.03)
    assert torch.equal(y, 0.8 * sign)
    d = get_task("bengio", L=5, s=0.5, h=0.25).make((20,), N, 1)
    assert torch.equal(d.inputs[:5, :, 0], 0.25 * sign.expand(5, -1)) and float(d.inputs[5:].var()) == pytest.approx(0.5, rel=0.03)
    with pytest.raises(LandscapeError, match="bengio needs 1 <= L < T"):
        get_task("bengio", L=20).make((20,), 10, 0)


def test_two_sequence_lengths_and_class_inputs():
    """Hochreiter & Schmidhuber Exp. 3a: first k = 3 inputs +-1 (class), noise of variance 0.2, lengths
    uniform integers in [T, 1.1 T]."""
    task = get_task("two-sequence")
    d = task.make((40, 100), N, 2)
    for T in (40, 100):
        e = d.ends[T]
        assert int(e.min()) == T and int(e.max()) == T + math.floor(0.1 * T) == task.steps(T)
        counts = torch.bincount(e - T).double()
        assert len(counts) == math.floor(0.1 * T) + 1 and float(counts.min()) > 0.6 * N / len(counts)
    x, y = d.inputs[..., 0], d.targets[40]
    assert torch.equal(x[:3], (2 * y - 1).expand(3, -1)) and 0.45 < float(y.mean()) < 0.55
    assert float(x[3:].var()) == pytest.approx(0.2, rel=0.03)
    # one uniform draw u per sequence serves every T: e_T = T + floor(u (floor(0.1 T) + 1)), so the
    # intervals of u that the ends at T = 40 and T = 100 allow must overlap for every sequence
    k40, k100 = 5, 11
    lo = torch.maximum((d.ends[40] - 40) / k40, (d.ends[100] - 100) / k100)
    hi = torch.minimum((d.ends[40] - 39) / k40, (d.ends[100] - 99) / k100)
    assert (lo < hi).all()


def test_relay_labels_are_the_first_bit_or_the_lagged_input():
    d = get_task("relay").make((10, 30), N, 3)
    x = d.inputs[..., 0]
    assert set(x.unique().tolist()) == {-1.0, 1.0}
    for T in (10, 30):
        assert torch.equal(d.targets[T], (x[0] > 0).double())
    d = get_task("relay", lag=2).make((10, 30), N, 3)
    for T in (10, 30):
        assert torch.equal(d.targets[T], (d.inputs[T - 3, :, 0] > 0).double())
    assert abs(float(x[1:].mean())) < 0.05  # the distractors are fair coins


def test_target_has_no_input_and_one_sequence():
    d = get_task("target", x0=0.25, target=0.9).make((5, 50), 1, 0)
    assert d.inputs is None and d.h0 == 0.25 and torch.equal(d.targets[50], torch.tensor([0.9], dtype=torch.float64))
    with pytest.raises(LandscapeError, match="task target has no randomness: use n = 1"):
        get_task("target").check_n(2)


@pytest.mark.parametrize("name", ["latch", "bengio", "two-sequence", "relay"])
def test_a_sequence_of_length_T_is_the_prefix_of_the_longest(name):
    """T = 63, 64, 65, 130 straddle the 64-step blocks in which the noise is drawn."""
    assert BLOCK == 64
    Ts = (63, 64, 65, 130)
    alone = {T: get_task(name).make((T,), 50, 7) for T in Ts}
    together = get_task(name).make(Ts, 50, 7)
    for T in Ts:
        a, b = alone[T], together
        steps = a.inputs.shape[0]
        assert torch.equal(a.inputs, b.inputs[:steps]), (name, T)
        assert torch.equal(a.targets[T], b.targets[T]) and torch.equal(a.ends[T], b.ends[T])


@pytest.mark.parametrize("name", TASKS.builtins)
def test_declared_facts_hold(name):
    task = get_task(name)
    Ts = (12,) if name == "temporal-order" else (5, 12)  # its marked steps scale with T: one T per data set
    n = 1 if name == "target" else 64
    d = task.make(Ts, n, 0)
    assert (d.inputs is None) == (task.input_size == 0)
    if d.inputs is not None:
        assert d.inputs.shape[1:] == (n, task.input_size) and d.inputs.shape[0] >= d.steps
    for T in Ts:
        assert int(d.ends[T].max()) <= task.steps(T) and int(d.ends[T].min()) >= T
        assert d.targets[T].shape == (n,)
        if task.readout == "logistic":
            assert set(d.targets[T].unique().tolist()) <= set(map(float, range(task.classes)))


@pytest.mark.parametrize("name,params,message", [
    ("latch", {"noise": -1}, "noise=-1.0 must be >= 0"),
    ("latch", {"noise": "nan"}, "noise=nan is not finite"),
    ("target", {"x0": "inf"}, "x0=inf is not finite"),
    ("bengio", {"s": -0.1}, "s=-0.1 must be >= 0"),
    ("two-sequence", {"spread": -1}, "spread=-1.0 must be >= 0"),
    ("relay", {"lag": -1}, "lag=-1 must be >= 0"),
    ("relay", {"lag": "1.5"}, "task parameter lag='1.5' is not an int"),
])
def test_parameters_outside_their_domain_are_refused(name, params, message):
    with pytest.raises(LandscapeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        get_task(name, **params)


@pytest.mark.parametrize("cell", ["srnn", "pascanu"])
def test_dynamics_maps_equal_the_cells_step(cell):
    """The one-unit maps of landscape.dynamics (a drive c for the input) are the cells' own step."""
    c = get_cell(cell)
    m = dynamics.one_unit_map(cell)
    rng = np.random.default_rng(4)
    P, N = 50, 30
    w, b, u = rng.uniform(-3, 6, P), rng.uniform(-3, 1, P), rng.uniform(-2, 2, P)
    state = rng.uniform(-0.99, 0.99, (P, N)) if cell == "srnn" else rng.uniform(-6, 6, (P, N))
    x = rng.normal(0, 1, N)
    params = {"w": torch.tensor(w).view(P, 1, 1), "u": torch.tensor(u).view(P, 1, 1), "b": torch.tensor(b).view(P, 1)}
    (new,) = c.step(params, (torch.tensor(state).unsqueeze(-1),), torch.tensor(x).view(N, 1))
    expect = dynamics.map_step(cell, state, w[:, None], b[:, None], u[:, None] * x[None, :])
    np.testing.assert_allclose(new[..., 0].numpy(), expect, rtol=1e-14, atol=1e-15)
    # the multiplier F' equals the step's derivative
    s = torch.tensor(state).unsqueeze(-1).requires_grad_(True)
    (out,) = c.step(params, (s,), torch.tensor(x).view(N, 1))
    (slope,) = torch.autograd.grad(out.sum(), s)
    np.testing.assert_allclose(slope[..., 0].numpy(), m.slope(state, w[:, None], b[:, None], u[:, None] * x[None, :]),
                               rtol=1e-12, atol=1e-15)
    # the output of a state is the cell's output
    np.testing.assert_allclose(c.output((torch.tensor(state).unsqueeze(-1),))[..., 0].numpy(), m.output(state),
                               rtol=1e-15)
    assert dynamics.check_cell(cell) == cell


def test_cells_without_a_map_have_no_dynamics():
    with pytest.raises(LandscapeError, match="no one-unit dynamics for cell 'lstm'; choose from: srnn, pascanu"):
        dynamics.fixed_points("lstm", 2.0, 0.0)


def test_the_bengio_task_reads_s_as_the_variance_or_as_the_sd():
    var = get_task("bengio", s=0.25).make((40,), 4000, 0).inputs[3:, :, 0]
    sd = get_task("bengio", s=0.25, reading="sd").make((40,), 4000, 0).inputs[3:, :, 0]
    assert abs(float(var.std()) - 0.5) < 0.01 and abs(float(sd.std()) - 0.25) < 0.005
    assert torch.equal(var, 2 * sd)  # the same draws, scaled
