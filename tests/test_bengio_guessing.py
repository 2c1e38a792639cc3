"""Bengio et al.'s Fig. 2 study (populations of training runs, the sensitivity study) and random
weight guessing.

Truths: a slow loop that trains one run at a time with plain torch ops (no cell, no population
optimiser); numpy unrolls of the guessed nets; closed forms of the noise conventions.
"""
from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch

from landscape.analyses import bengio_fig2 as bf
from landscape.analyses import guessing as rg
from landscape.errors import LandscapeError


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


# ---------------------------------------------------------------------------------------------
# Bengio: the population against one run at a time


def slow_run(T, w0, sd, train_w, lr, M, epochs, config, noise, h0):
    """One run by hand: x_t = tanh(w x_{t-1} + in_t), summed cost, plain SGD; returns the first
    epoch each criterion holds and the final w."""
    L = config.L
    d = config.target * torch.cat([torch.ones(M), -torch.ones(M)]).double()
    h = h0.clone().requires_grad_()
    w = torch.tensor(float(w0), dtype=torch.float64, requires_grad=True)
    first = {}
    for epoch in range(epochs + 1):
        outs = []
        for n in range(2 * M):
            x = torch.zeros((), dtype=torch.float64)
            for t in range(T):
                inp = h[0 if n < M else 1, t] if t < L else noise[t - L, n]
                x = torch.tanh(w * x + inp)
            outs.append(x)
        out = torch.stack(outs)
        err = out - d
        met = {("sign", 0.0): bool((out * torch.sign(d) > 0).all()),
               ("margin", 0.4): bool((err.abs() < 0.4).all()),
               ("cost", 0.05): bool((0.5 * err ** 2).mean() < 0.05)}
        for k, v in met.items():
            if v and k not in first:
                first[k] = epoch
        if epoch == epochs:
            break
        cost = 0.5 * (err ** 2).sum()
        gh, gw = torch.autograd.grad(cost, [h, w])
        with torch.no_grad():
            h -= lr * gh
            if train_w:
                w -= lr * gw
    return {k: first.get(k, -1) for k in met}, float(w.detach())


def test_population_matches_one_run_at_a_time():
    config = bf.Config(M=2)
    crits = [("sign", 0.0), ("margin", 0.4), ("cost", 0.05)]
    T = np.array([6, 9, 9, 12])
    w0 = np.array([1.25, 1.5, 0.9, 2.0])
    sd = np.array([0.2, 0.45, 0.1, 0.3])
    tw = np.array([False, True, True, False])
    lr = np.array([0.1, 1.0, 0.3, 0.1])
    res = bf.train_runs(T, w0, sd, tw, lr, 2, 30, crits, config, seed=3)
    # the same draws as train_runs makes them
    g = torch.Generator().manual_seed(3)
    noise = torch.randn((int(T.max()) - 3, 4, 4, 1), generator=g, dtype=torch.float64)
    h = (torch.rand((4, 2, 3), generator=g, dtype=torch.float64) * 2 - 1) * config.h_init
    for p in range(4):
        first, w_end = slow_run(int(T[p]), w0[p], sd[p], tw[p], lr[p], 2, 30, config, noise[:, p, :, 0] * sd[p], h[p])
        for c in crits:
            assert res["first"][c][p] == first[c], (p, c)
        assert res["w"][p] == pytest.approx(w_end, abs=1e-9)
    assert any(res["first"][("sign", 0.0)] > 0)  # some runs needed training (the test can fail)


def test_noise_conventions_and_errors():
    assert bf.noise_sd(0.2, "sd") == pytest.approx(0.2)
    assert bf.noise_sd(0.2, "variance") == pytest.approx(math.sqrt(0.2))
    with pytest.raises(LandscapeError, match="noise convention 'std'.*variance, sd"):
        bf.Config(noise="std")
    with pytest.raises(LandscapeError, match="criterion 'loss'"):
        bf.Config(criterion="loss")


def test_keep_sign_against_quadrature():
    """P(x_T > 0 | x_L = 1): one step is Phi(w / sd) in closed form; two steps the Gauss-Hermite
    integral of Phi(w tanh(w + n) / sd) over n ~ N(0, sd^2)."""
    w, sd = 1.25, math.sqrt(0.2)

    def phi(z):
        return 0.5 * (1 + math.erf(z / math.sqrt(2)))

    assert bf.keep_sign(4, sd, w, n=400_000) == pytest.approx(phi(w / sd), abs=0.003)
    z, wt = np.polynomial.hermite_e.hermegauss(80)
    two = sum(q * phi(w * math.tanh(w + sd * x) / sd) for x, q in zip(z, wt)) / math.sqrt(2 * math.pi)
    assert bf.keep_sign(5, sd, w, n=400_000) == pytest.approx(two, abs=0.003)
    assert two < phi(w / sd) < 1  # the test separates the lengths


def test_paper_comparison_is_like_with_like():
    """The paper's numbers sit beside (b) only at the paper's lengths and at the default's setting;
    quick runs those lengths."""
    assert bf.CONFIGS["quick"].T_b == tuple(bf.PAPER_B)
    assert bf.describe(bf.CONFIGS["quick"]) == bf.describe(bf.CONFIGS["default"])

    def summary(Ts):
        return [{"panel": "b", "T": T, "runs": 4, "frequency": 0.5} for T in Ts] + [{"panel": "a", "T": 12}]

    got = bf.paper_comparison(summary((5, 12, 30, 45)), bf.CONFIGS["quick"])
    assert [(c["T"], c["paper"]) for c in got] == [(12, bf.PAPER_B[12]), (45, bf.PAPER_B[45])]
    assert bf.paper_comparison(summary((5, 15, 30)), bf.CONFIGS["quick"]) == []
    assert bf.paper_comparison(summary(bf.PAPER_B), bf.Config(epochs=60)) == []
    assert bf.paper_comparison(summary(bf.PAPER_B), bf.Config(noise="variance")) == []
    assert bf.max_dev({12: 0.5, 20: 0.8, 7: 0.0}) == pytest.approx(abs(0.5 - bf.PAPER_B[12]))
    assert math.isnan(bf.max_dev({7: 0.0}))


def test_simulate_stops_converged_runs():
    cfg = bf.Config(M=2, epochs=100)
    r = bf.simulate(np.array([5, 5, 40]), np.array([2.0, 2.0, 0.5]), np.array([0.0, 0.0, 1.0]), False, cfg, seed=2)
    assert list(r["converged"]) == [True, True, False]
    assert r["epochs"][2] == cfg.epochs and r["epochs"][0] < cfg.epochs


def test_sensitivity_rows():
    study = bf.Sensitivity(M=(1, 2), noise=("variance", "sd"), lr=(0.1,), train_w=(False, True), epochs=(5, 10),
                           T=(12, 20), runs=3)
    rows = bf.sensitivity(study, bf.Config())
    assert len(rows) == 2 * 2 * 1 * 2 * len(study.criteria) * 2 * 2
    for r in rows:
        assert 0 <= r["frequency"] <= 1
    # max_dev_vs_paper is the largest distance to the paper over the setting's T in PAPER_B
    def key(r):
        return (r["M"], r["noise"], r["lr"], r["w_trained"], r["criterion"], r["threshold"], r["epochs"])

    groups = {}
    for r in rows:
        groups.setdefault(key(r), []).append(r)
    for rs in groups.values():
        want = max(abs(r["frequency"] - bf.PAPER_B[r["T"]]) for r in rs)
        assert all(r["max_dev_vs_paper"] == pytest.approx(want) for r in rs)
    # a larger epoch budget never lowers a frequency (first-hit epochs read off the same runs)
    freq = {(key(r), r["T"]): r["frequency"] for r in rows}
    for (k, T), f in freq.items():
        if k[-1] == 5:
            assert freq[(k[:-1] + (10,), T)] >= f
    assert bf.best_settings(rows, 2)[0]["max_dev"] == min(r["max_dev_vs_paper"] for r in rows)


def test_guess_converged_against_numpy():
    cfg = bf.Config(M=2, criterion="sign")
    g = torch.Generator().manual_seed(4)
    ok = bf.guess_converged(15, 64, cfg, 100.0, g)
    g = torch.Generator().manual_seed(4)
    noise = cfg.s_b * torch.randn((12, 4, 1), generator=g, dtype=torch.float64).numpy()[..., 0]
    h = ((2 * torch.rand((64, 2, 3), generator=g, dtype=torch.float64) - 1) * 100).numpy()
    want = []
    for p in range(64):
        good = True
        for n in range(4):
            x = 0.0
            for t in range(15):
                x = math.tanh(cfg.w0_b * x + (h[p, 0 if n < 2 else 1, t] if t < 3 else noise[t - 3, n]))
            good &= (x > 0) == (n < 2)
        want.append(good)
    assert ok.tolist() == want and 0 < sum(want) < 64


# ---------------------------------------------------------------------------------------------
# random guessing


def test_latch_nets_against_numpy():
    cfg = rg.Config(n_train=10, lengths=(20, 30))
    g = torch.Generator().manual_seed(1)
    for problem in (*rg.PROBLEMS, rg.PARITY):
        x, label, ends = rg.make_data(problem, 10, cfg.lengths, rg.noise_sd(problem, cfg), g)
        guesses = rg.draw_guesses(problem, 8, cfg, g)
        if problem.name == "latch-1":  # make sure some guesses succeed and some fail
            guesses["w"][:4] = 50.0
            guesses["h"][:4] = torch.tensor([60.0, -60.0])
        got = rg.correct(problem, guesses, x, label, ends, cfg.hidden).numpy()
        X = x[..., 0].numpy()
        for p in range(8):
            v = {k: t[p].numpy() for k, t in guesses.items()}
            for n in range(10):
                T, cls = int(ends[n]), bool(label[n])
                if problem.name.startswith("latch"):
                    s = 0.0
                    for t in range(T):
                        inp = (v["h"][0] if cls else v["h"][1]) if (problem.name == "latch-1" and t == 0) else X[t, n]
                        u = 1.0 if problem.name == "latch-1" or (problem.into == "net" and t > 0) else v["u"][0, 0]
                        b = 0.0 if problem.name == "latch-1" else v["b"][0]
                        s = math.tanh(v["w"][0, 0] * s + u * inp + b)
                    want = (s > 0) == cls if problem.name == "latch-1" else abs(s - (1 if cls else -1)) < 0.1
                else:  # A1: logistic units, activations 0 at the start, output = the last unit
                    y = np.zeros(cfg.hidden + 1)
                    for t in range(T):
                        y = 1 / (1 + np.exp(-(v["w"] @ y + v["u"][:, 0] * X[t, n] + v["b"])))
                    want = abs(y[-1] - float(cls)) < 0.1
                assert got[p, n] == want, (problem, p, n)
        if problem.name == "latch-1":
            assert got[:4].all() and not got.all()


def test_parity_data():
    """Every element +-1 (plus the uniform noise), label 1 exactly when the number of +1s to the
    sequence's end is odd, half the rows of each class."""
    g = torch.Generator().manual_seed(2)
    for noise in (0.0, 0.2):
        x, label, ends = rg.make_data(rg.PARITY, 40, (7, 12), noise, g)
        X = x[..., 0].numpy()
        assert np.abs(np.abs(X) - 1).max() <= noise + 1e-12
        for n in range(40):
            ones = int((X[: int(ends[n]), n] > 0).sum())
            assert ones % 2 == int(label[n])
        assert int(label.sum()) == 20 and len(set(ends.tolist())) > 1


def test_success_rate():
    """latch-1 at one fixed length: a guess succeeds when h_+ and h_- have opposite signs matching
    the classes and w's sign keeps them (w > 0) or flips them an even number of times (w < 0, even
    T): p = 1/4 (the weights are huge, so the noise cannot flip the saturated unit)."""
    cfg = rg.Config(n_train=10, lengths=(20, 20), max_batch=1024)
    r = rg.success_rate(rg.PROBLEMS[0], cfg, 4096, seed=3)
    assert r["guesses"] == 4096 and r["rate"] == pytest.approx(0.25, abs=0.03)
    assert r["rate"] < r["rate_upper95"] < r["rate"] + 0.03 and math.isnan(r["published_rate"])
    z = 1.959964
    assert rg.wilson_upper(0, 100) == pytest.approx(z * z / (100 + z * z))


def test_published_counts_only_beside_the_pages_setup():
    assert rg.comparable(rg.CONFIGS["default"]) and not rg.comparable(rg.CONFIGS["quick"])
    assert rg.published("latch-2", "noise sd 0.2") == 22 and rg.published("parity", rg.PARITY.variant) == 2906
    assert math.isnan(rg.published("two-sequence", "N=1")) and math.isnan(rg.published("latch-1", "T sweep"))


def test_two_sequence_inputs_and_output_bias():
    cfg = rg.Config()
    g = torch.Generator().manual_seed(0)
    prob = rg.PROBLEMS[3]  # N = 3
    x, label, ends = rg.make_data(prob, 6, (10, 12), 0.2, g)
    np.testing.assert_array_equal(x[:3, :, 0].numpy(), np.repeat((2 * label - 1).numpy()[None], 3, 0))
    assert 10 <= int(ends.min()) and int(ends.max()) <= 12
    guesses = rg.draw_guesses(prob, 5, cfg, g)
    assert guesses["w"].shape == (5, 2, 2) and bool((guesses["b"][:, -1] == 0).all())
    assert float(guesses["w"].abs().max()) <= 100


def test_trials_count_the_first_success(monkeypatch):
    """Guess k (0-based, counted over the doubling populations) is the first to succeed -> k + 1."""
    cfg = rg.Config(n_train=4, n_test=4, lengths=(5, 5), first_batch=4, max_batch=8, max_trials=40)
    calls = {"n": 0}
    target = 13

    def fake_correct(problem, guesses, x, label, ends, hidden):
        P = guesses["w"].shape[0]
        start = calls["n"]
        calls["n"] += P
        idx = torch.arange(start, start + P)
        return (idx >= target).unsqueeze(-1).expand(P, label.shape[0])

    monkeypatch.setattr(rg, "correct", fake_correct)
    assert rg.trials_to_success(rg.PROBLEMS[0], cfg, seed=0)["trials"] == target + 1
    calls["n"] = 0
    never = rg.Config(n_train=4, n_test=4, lengths=(5, 5), first_batch=4, max_batch=8, max_trials=12)
    assert math.isnan(rg.trials_to_success(rg.PROBLEMS[0], never, seed=0)["trials"])


def test_guessing_quick(tmp_path):
    paths = rg.run(tmp_path, quick=True)
    names = {p.name for p in paths}
    assert {"guessing-quick.csv", "guessing-quick-summary.csv", "guessing-quick.pdf", "guessing-quick.png"} <= names
    summary = read_csv(tmp_path / "guessing-quick-summary.csv")
    for col in ("problem", "runs", "mean_trials", "median_trials", "T", "criterion", "published_mean_trials"):
        assert col in summary[0]
    assert {"latch-1", "latch-2", "two-sequence"} <= {r["problem"] for r in summary}
    latch = next(r for r in summary if r["problem"] == "latch-1" and r["variant"] == "")
    assert float(latch["mean_trials"]) >= 1
    # quick is not the pages' setup: no published count beside it
    assert all(math.isnan(float(r["published_mean_trials"])) for r in summary)
