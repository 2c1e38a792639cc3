"""The readings of the thread's lost bit relay (docs/reference.md §1; landscape.analyses.relay):
relay-pulse and relay-flipflop against their definitions, recomputed by a slow per-sequence loop
over the raw inputs (labels, pulse positions, ends); the prefix property across the 64-step
blocks; the parameters' domains; the delay reading's lag; and relay-readings end to end on tiny
settings."""
from __future__ import annotations

import csv
import math

import pytest
import torch

from landscape.errors import LandscapeError
from landscape.tasks import BLOCK, TASKS, get_task

N = 400


def _pulse_truth(x, window):
    """Per sequence, by a loop: the step of its one input of magnitude > 0.5 (the pulse) and its sign."""
    steps, n = x.shape
    onset, sign = [], []
    for i in range(n):
        big = [t for t in range(steps) if abs(float(x[t, i])) > 0.5]
        assert len(big) == 1, (i, big)
        onset.append(big[0])
        sign.append(1.0 if float(x[big[0], i]) > 0 else 0.0)
    return torch.tensor(onset), torch.tensor(sign, dtype=torch.float64)


def test_pulse_is_one_bit_at_a_random_early_step_of_a_quiet_stream_reported_T_steps_later():
    task = get_task("relay-pulse", window=8)
    Ts = (5, 30)
    d = task.make(Ts, N, 3)
    x = d.inputs[..., 0]  # (steps, N)
    assert d.inputs.shape == (task.steps(30), N, 1) == (37, N, 1)
    onset, bit = _pulse_truth(x, 8)
    assert set(x.abs().unique().tolist()) == {0.0, 1.0}  # quiet: zeros and the +-1 pulse, nothing else
    assert set(onset.tolist()) == set(range(8))  # every step below the window is used, none above
    for T in Ts:
        assert torch.equal(d.targets[T], bit)  # the label is the pulse's sign
        assert torch.equal(d.ends[T], onset + T)  # the last input is T - 1 steps after the pulse
    assert 0.4 < float(bit.mean()) < 0.6  # random bits, about half of each


def test_noisy_pulse_is_the_same_pulse_over_gaussian_noise():
    quiet = get_task("relay-pulse", window=4).make((20,), N, 5)
    noisy = get_task("relay-pulse", window=4, noise=0.1).make((20,), N, 5)
    assert torch.equal(quiet.targets[20], noisy.targets[20]) and torch.equal(quiet.ends[20], noisy.ends[20])
    diff = (noisy.inputs - quiet.inputs)[..., 0]
    assert abs(float(diff.std()) - 0.1) < 0.005 and abs(float(diff.mean())) < 0.005
    onset = quiet.ends[20] - 20
    assert torch.equal(torch.sign(noisy.inputs[onset, torch.arange(N), 0]), 2 * quiet.targets[20] - 1)


def _flipflop_truth(x, T):
    """The relay's state after step T - 1 by a loop: the sign of the last nonzero input."""
    out = []
    for i in range(x.shape[1]):
        state = None
        for t in range(T):
            if float(x[t, i]) != 0.0:
                state = 1.0 if float(x[t, i]) > 0 else 0.0
        assert state is not None  # step 0 always carries a pulse
        out.append(state)
    return torch.tensor(out, dtype=torch.float64)


def test_flipflop_label_is_the_last_pulse_and_pulses_come_at_the_rate():
    task = get_task("relay-flipflop", rate=0.2)
    Ts = (1, 2, 7, 40, 70)
    d = task.make(Ts, N, 11)
    x = d.inputs[..., 0]
    assert x.shape == (70, N)
    assert set(x.unique().tolist()) == {-1.0, 0.0, 1.0}
    assert bool((x[0] != 0).all())  # step 0: every sequence starts with a pulse
    for T in Ts:
        assert torch.equal(d.targets[T], _flipflop_truth(x, T)), T
        assert torch.equal(d.ends[T], torch.full((N,), T))
    hits = (x[1:] != 0).double()
    assert abs(float(hits.mean()) - 0.2) < 0.01  # N * 69 draws: sd of the mean 0.0024
    assert abs(float(x[1:][x[1:] != 0].mean())) < 0.05  # fair signs
    # with T = 1 the label is the first pulse; later labels change (the relay is set and reset)
    assert torch.equal(d.targets[1], (x[0] > 0).double())
    assert 0.05 < float((d.targets[70] != d.targets[1]).double().mean()) < 0.95


def test_flipflop_noise_is_added_to_the_same_pulses():
    a = get_task("relay-flipflop").make((30,), N, 2)
    b = get_task("relay-flipflop", noise=0.1).make((30,), N, 2)
    assert torch.equal(a.targets[30], b.targets[30])
    diff = (b.inputs - a.inputs)[..., 0]
    assert abs(float(diff.std()) - 0.1) < 0.005


@pytest.mark.parametrize("name,params", [("relay-pulse", {}), ("relay-pulse", {"noise": 0.1, "window": 70}),
                                         ("relay-flipflop", {}), ("relay-flipflop", {"noise": 0.1, "rate": 0.5})])
def test_a_sequence_of_length_T_is_the_prefix_of_the_longest(name, params):
    """T = 63, 64, 65, 130 straddle the 64-step blocks (and, with the pulse's window, more blocks)."""
    assert BLOCK == 64
    Ts = (63, 64, 65, 130)
    task = get_task(name, **params)
    together = task.make(Ts, 50, 7)
    for T in Ts:
        alone = task.make((T,), 50, 7)
        steps = alone.inputs.shape[0]
        assert steps >= alone.steps and together.inputs.shape[0] >= together.steps
        assert torch.equal(alone.inputs, together.inputs[:steps]), (name, T)
        assert torch.equal(alone.targets[T], together.targets[T]) and torch.equal(alone.ends[T], together.ends[T])


def test_the_flipflops_streams_are_drawn_block_by_block():
    """The noise of steps 0..63 is the same whether 1 or 3 blocks are drawn: the streams interleave
    per block (drawing all pulses first, then all noise, would shift the noise)."""
    task = get_task("relay-flipflop", noise=1.0)
    short, long = task.make((10,), 20, 4), task.make((150,), 20, 4)
    assert torch.equal(short.inputs, long.inputs[:10])
    assert not torch.equal(long.inputs[:64], long.inputs[64:128])


@pytest.mark.parametrize("name", ["relay-pulse", "relay-flipflop"])
def test_declared_facts(name):
    cls = TASKS.get(name)
    assert name in TASKS.builtins
    assert cls.input_size == 1 and cls.readout == "logistic" and cls.default_hidden == 8
    task = get_task(name)
    assert set(task.param_docs) == set(task.params())
    d = task.make((5, 12), 64, 0)
    for T in (5, 12):
        assert T <= int(d.ends[T].min()) and int(d.ends[T].max()) <= task.steps(T)
        assert set(d.targets[T].unique().tolist()) <= {0.0, 1.0}
    assert d.inputs.shape[0] >= d.steps


@pytest.mark.parametrize("name,params,message", [
    ("relay-pulse", {"window": 0}, "window=0 must be >= 1"),
    ("relay-pulse", {"window": "2.5"}, "task parameter window='2.5' is not an int"),
    ("relay-pulse", {"noise": -0.1}, "noise=-0.1 must be >= 0"),
    ("relay-pulse", {"noise": "nan"}, "noise=nan is not finite"),
    ("relay-flipflop", {"rate": 0}, "rate=0.0 must be > 0"),
    ("relay-flipflop", {"rate": 1.5}, "rate=1.5 must be <= 1"),
    ("relay-flipflop", {"noise": -1}, "noise=-1.0 must be >= 0"),
])
def test_parameters_outside_their_domain_are_refused(name, params, message):
    with pytest.raises(LandscapeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        get_task(name, **params)


def test_lengths_below_one_are_refused():
    for name in ("relay-pulse", "relay-flipflop"):
        with pytest.raises(LandscapeError, match=f"{name} needs T >= 1; got T=0"):
            get_task(name).make((0, 5), 4, 0)


def test_the_delay_reading_is_relay_with_half_lag():
    """delay = relay lag=T//2: the label is the input T//2 steps before the last of a random stream."""
    from landscape.analyses.relay import READINGS, READINGS_CONFIGS, readings_jobs

    reading = READINGS["delay"]
    assert reading.task == "relay" and reading.task_options(9) == (("lag", 4),)
    x = get_task("relay", lag=4).make((9,), N, 1)
    assert torch.equal(x.targets[9], (x.inputs[9 - 1 - 4, :, 0] > 0).double())
    jobs = readings_jobs(READINGS_CONFIGS["quick"], {"delay": reading, "flipflop": READINGS["flipflop"]})
    delay = [(s, m) for s, m in jobs if s.model.task == "relay"]
    assert len(delay) == 3 * 2  # cells x lengths: the lag changes with T, so one population per T
    for spec, members in delay:
        (T,) = {m.T for m in members}
        assert dict(spec.model.task_options) == {"lag": T // 2} and len(members) == 2
        assert spec.model.hidden == 8 and all(m.protocol == "stratified" for m in members)
    flip = [(s, m) for s, m in jobs if s.model.task == "relay-flipflop"]
    assert len(flip) == 3 and all(s.model.task_options == () and {m.T for m in ms} == {3, 8} for s, ms in flip)


def _read(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_relay_readings_runs_end_to_end(tmp_path, monkeypatch):
    from landscape.analyses import analyses, relay

    module = analyses()["relay-readings"]
    assert module.NAME == "relay-readings" and module.DESCRIPTION
    monkeypatch.setitem(relay.READINGS_CONFIGS, "quick", relay.Config(lengths=(3, 6), n=40, repeats=2, epochs=1,
                                                                      compile=False))
    paths = module.run(tmp_path, quick=True, progress=False)
    names = {p.name for p in paths}
    assert {"relay-readings-quick.csv", "relay-readings-quick-summary.csv", "relay-readings-quick.pdf",
            "relay-readings-quick.png"} <= names
    summary = _read(tmp_path / "relay-readings-quick-summary.csv")
    assert {"reading", "cell", "T", "n", "val_acc_mean", "val_acc_sd", "success", "task", "task_options"} <= set(summary[0])
    assert {(r["reading"], r["cell"], r["T"]) for r in summary} == {
        (name, cell, T) for name in relay.READINGS for cell in ("srnn", "lstm", "gru") for T in ("3", "6")}
    rows = _read(tmp_path / "relay-readings-quick.csv")
    finals = [r for r in rows if r["epoch"] == "1"]
    for s in summary:  # the summary is the mean, sd (population) and success fraction of the final rows
        vals = [float(r["val_acc"]) for r in finals
                if (r["reading"], r["cell"], r["T"]) == (s["reading"], s["cell"], s["T"])]
        mean = sum(vals) / len(vals)
        assert len(vals) == int(s["n"]) == 2
        assert float(s["val_acc_mean"]) == pytest.approx(mean)
        assert float(s["val_acc_sd"]) == pytest.approx(math.sqrt(sum((v - mean) ** 2 for v in vals) / len(vals)))
        assert float(s["success"]) == pytest.approx(sum(v > relay.SUCCESS for v in vals) / len(vals))
    delay = {r["T"]: r["task_options"] for r in summary if r["reading"] == "delay"}
    assert delay == {"3": "lag=1", "6": "lag=3"}
    assert {r["task"] for r in summary if r["reading"] == "pulse-noisy"} == {"relay-pulse"}
    assert {r["task_options"] for r in summary if r["reading"] == "pulse-noisy"} == {"noise=0.1"}


def test_a_subset_of_readings_and_unknown_names(tmp_path, monkeypatch):
    from landscape.analyses import relay

    assert list(relay.select_readings(("flipflop", "first"))) == ["first", "flipflop"]  # READINGS' order
    with pytest.raises(LandscapeError, match="unknown relay reading 'bits'; choose from: first, delay, pulse"):
        relay.run_readings(tmp_path, quick=True, readings=("first", "bits"))
    monkeypatch.setitem(relay.READINGS_CONFIGS, "quick", relay.Config(lengths=(4,), n=32, repeats=1, epochs=1,
                                                                      compile=False))
    relay.run_readings(tmp_path, quick=True, progress=False, readings=("pulse",))
    summary = _read(tmp_path / "relay-readings-quick-summary.csv")
    assert {(r["reading"], r["cell"], r["T"]) for r in summary} == {("pulse", c, "4") for c in ("srnn", "lstm", "gru")}


def test_pulse_trace_against_a_scalar_loop_and_the_documented_order():
    """One srnn unit by hand (h' = tanh(w h + u x + b), Keras 2's draws from the same generator
    calls): h_0 = tanh(+-u + b), then h_k = tanh(w h_{k-1} + b); and the docstring's finding at
    8 units, k = 40 (srnn keeps the pulse, lstm and gru lose it, gru most)."""
    from landscape.analyses.relay import pulse_trace
    from landscape.cells import get_cell

    models = 7
    got = pulse_trace("srnn", (0, 3, 12), models=models, hidden=1, seed=5)
    p = get_cell("srnn").init_params("keras", 1, 1, models, torch.Generator().manual_seed(5))
    assert {k: tuple(v.shape) for k, v in p.items()} == {"w": (models, 1, 1), "u": (models, 1, 1), "b": (models, 1)}
    traces = {0: [], 3: [], 12: []}
    for m in range(models):
        w, u, b = (float(p[k][m].reshape(())) for k in ("w", "u", "b"))
        hp, hm = math.tanh(u + b), math.tanh(-u + b)
        for k in range(13):
            if k in traces:
                traces[k].append(abs(hp - hm))
            hp, hm = math.tanh(w * hp + b), math.tanh(w * hm + b)
    for k, vals in traces.items():
        assert got[k] == pytest.approx(sorted(vals)[models // 2], rel=1e-12)
    assert got[0] > got[12] > 0
    at40 = {c: pulse_trace(c, (40,))[40] for c in ("srnn", "lstm", "gru")}
    assert at40["srnn"] > 0.3 and at40["lstm"] < 1e-3 and at40["gru"] < 1e-6 and at40["gru"] < at40["lstm"]
