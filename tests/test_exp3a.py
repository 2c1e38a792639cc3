"""exp3a (Hochreiter & Schmidhuber 1997 Exp. 3a trained): the order-statistic interval of the
median, the end errors of the logistic output unit, and the quick run's tables."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from landscape.analyses import exp3a


def read_csv(path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_median_interval_is_the_binomial_order_statistics():
    # m = 10: P(Bin(10, 1/2) <= 1) = 11/1024 <= 0.025 < P(<= 2) = 56/1024, so x_(2) and x_(9)
    assert exp3a.median_interval(range(10, 110, 10)) == (20.0, 90.0)
    # m = 5: even x_(1), x_(5) cover the median with 1 - 2/32 = 0.94 only
    lo, hi = exp3a.median_interval([1, 2, 3, 4, 5])
    assert np.isnan(lo) and np.isnan(hi)
    # m = 40: the tables' ranks 14 and 27
    assert exp3a.median_interval(range(1, 41)) == (14.0, 27.0)


def test_a_zero_readout_answers_one_half_to_every_sequence():
    """out_w = 0, out_b = 0: the output unit is sigma(0) = 1/2 whatever the state, so |y - d| = 1/2
    for both targets (1 and 0)."""
    spec, members = exp3a.jobs(exp3a.CONFIGS["quick"])[1]  # N = 3, srnn
    from landscape.problem import resolve_model

    problem = resolve_model(spec.model, readout=spec.readout)
    rng = np.random.default_rng(0)
    params = {k: rng.normal(size=(2, *shape)).astype(np.float32) for k, shape in problem.shapes.items()}
    params["out_w"][:] = 0.0
    params["out_b"][:] = 0.0
    err = exp3a.end_errors(spec, params, 10, 64, seed=3)
    assert err.shape == (2, 64) and np.all(err == 0.5)


def test_quick_run_tables(tmp_path):
    paths = exp3a.run(tmp_path, quick=True, progress=False)
    names = {p.name for p in paths}
    assert {"exp3a-quick-members.csv", "exp3a-quick-summary.csv", "exp3a-quick.png"} <= names
    members, summary = read_csv(tmp_path / "exp3a-quick-members.csv"), read_csv(tmp_path / "exp3a-quick-summary.csv")
    config = exp3a.CONFIGS["quick"]
    assert len(members) == len(exp3a.CELLS) * len(config.Ns) * config.repeats
    assert len(summary) == len(exp3a.CELLS) * len(config.Ns)
    for row in summary:
        mine = [m for m in members if m["cell"] == row["cell"] and m["N"] == row["N"]]
        solved = [int(m["st1_presentations"]) for m in mine if m["st1_presentations"]]
        assert int(row["st1_solved"]) == len(solved)
        assert all(p % config.n == 0 and p <= config.budget for p in solved)  # whole epochs, within B
        assert row["paper_st1_mean"] == "nan"  # quick mode (T = 10) prints no published number
