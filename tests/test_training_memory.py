"""plan.training_bytes against what a population's training measurably holds.

The recorded steps (``--record-steps K``) are the part of a run's memory that grows with its length:
the estimate must count the steps a run records every K (0, K, 2K, ... and the last), and it must
bound the memory those records really take, measured with tracemalloc (numpy's arrays and Python's
objects; the torch tensors behind the recorded metrics are not traced, hence the estimate's margin).
"""
from __future__ import annotations

import tracemalloc

import pytest

from landscape import plan
from landscape.train import Member, TrainSpec, population, train_population
from landscape.train.population import recorded_steps

RECORD_EVERY = 13  # the argument of training_bytes that takes K


def _estimate_args(monkeypatch, spec, members) -> tuple:
    """The arguments the trainer passes to plan.training_bytes for this run (it is trained)."""
    seen = []

    def spy(*args):
        seen.append(args)
        return plan.training_bytes(*args)

    monkeypatch.setattr(population, "training_bytes", spy)
    train_population(spec, members, device="cpu")
    monkeypatch.undo()
    return seen[0]


def _recording_bytes(args, K: int) -> int:
    """The estimate's bytes for recording every K steps: the estimate with K less the one without."""
    return (plan.training_bytes(*args[:RECORD_EVERY], K, *args[RECORD_EVERY + 1:])
            - plan.training_bytes(*args[:RECORD_EVERY], 0, *args[RECORD_EVERY + 1:]))


def _lstm_run(K):
    spec = TrainSpec.of(cell="lstm", task="latch", n=800, epochs=2, batch=4, dtype="float64", record_steps=K)
    return spec, [Member(T=3, seed=s, data_seed=3, lr=1e-2, protocol="stratified") for s in range(32)]


def test_estimate_counts_the_steps_recorded_every_k(monkeypatch):
    """The trainer passes K, and the estimate's recording bytes are proportional to the number of
    steps train.population.recorded_steps keeps (a run of S steps: ceil(S / K) + 1)."""
    spec, members = _lstm_run(7)
    args = _estimate_args(monkeypatch, spec, members)
    assert args[RECORD_EVERY] == 7
    S = args[11] * args[12]  # epochs x steps per epoch
    per_step = _recording_bytes(args, S)  # K = S records the steps 0 and S
    assert len(recorded_steps(S, S)) == 2 and per_step % 2 == 0
    per_step //= 2
    for K in (1, 2, 7, 10, S - 1, S):
        assert _recording_bytes(args, K) == len(recorded_steps(S, K)) * per_step, K
    assert _recording_bytes(args, 10) < _recording_bytes(args, 1) / 9


@pytest.mark.parametrize("K", [1, 10])
def test_estimate_bounds_the_measured_recording_peak(monkeypatch, K):
    """The traced peak of a run recording every K steps, less that of the same run recording
    nothing, is at most the estimate's recording bytes, and not less than a third of them."""
    args = _estimate_args(monkeypatch, *_lstm_run(K))
    peaks = []
    for k in (K, False):
        tracemalloc.start()
        result = train_population(*_lstm_run(k), device="cpu")
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert (result.steps is None) == (k is False)
    measured = peaks[0] - peaks[1]
    estimate = _recording_bytes(args, K)
    assert measured > 0
    assert measured <= estimate <= 3 * measured, (K, measured, estimate, estimate / measured)
