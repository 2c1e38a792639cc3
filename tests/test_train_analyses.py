"""The training reproductions end to end on tiny settings (seconds), and `landscape train`.

Each analysis must: be found by the registry under its NAME, write a tidy CSV and PDF + PNG
figures, and (for the long ones) resume from its CSV without retraining saved groups.
"""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner

from landscape.analyses import analyses


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def figures_ok(paths, stem):
    names = {p.name for p in paths}
    assert f"{stem}.pdf" in names and f"{stem}.png" in names
    for p in paths:
        assert p.exists() and p.stat().st_size > 0


def test_registry_names():
    table = analyses()
    for name in ("latching", "bengio-fig2", "relay", "ablations", "pascanu-fig6-trajectories"):
        assert name in table and table[name].DESCRIPTION


def test_latching_quick_and_resume(tmp_path, monkeypatch):
    import landscape.train.results as store_mod
    from landscape.analyses import latching

    monkeypatch.setitem(latching.CONFIGS, "quick", latching.Config(
        lengths=(2, 4), repeats=2, n=48, epochs=1, var_lengths=(2,), var_repeats=1, var_epochs=2, compile=False))
    paths = latching.run(tmp_path, quick=True, progress=False)
    figures_ok(paths, "latching-quick")
    figures_ok(paths, "latching-variations-quick")
    rows = read_csv(tmp_path / "latching-quick.csv")
    for col in ("cell", "protocol", "T", "repeat", "epoch", "val_acc", "test_acc", "train_loss", "variant", "run_key"):
        assert col in rows[0]
    main = [r for r in rows if r["variant"] == "main"]
    assert {r["cell"] for r in main} == {"srnn", "lstm", "gru"}
    assert {r["protocol"] for r in main} == {"keras-split", "stratified"}
    assert len(main) == 3 * 2 * 2 * 2 * 2  # cells x lengths x repeats x protocols x (epoch 0, 1)
    # the question's flaw: keras-split validation rows are all label 0 -> no test set there
    assert all(r["test_acc"] == "nan" for r in main if r["protocol"] == "keras-split")
    summary = read_csv(tmp_path / "latching-quick-summary.csv")
    assert {"variant", "cell", "protocol", "T", "n", "val_acc_mean", "val_acc_sd", "success"} <= set(summary[0])
    # a rerun finds every group saved and trains nothing (checked on the jobs, without re-plotting)
    calls = []
    real = store_mod.train_population
    monkeypatch.setattr(store_mod, "train_population", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = store_mod.run_groups(latching.jobs(latching.CONFIGS["quick"]), out=tmp_path / "latching-quick.csv",
                                 device="cpu")
    assert calls == [] and len(again) == len(rows)
    # the run record keeps the first run's populations when a rerun trains nothing
    info = json.loads((tmp_path / "latching-quick-run.json").read_text())
    assert len(info["runs"]) == 1 and len(info["runs"][0]["populations"]) == len(latching.jobs(
        latching.CONFIGS["quick"]))
    latching.run(tmp_path, quick=True, progress=False)
    again_info = json.loads((tmp_path / "latching-quick-run.json").read_text())
    assert again_info["runs"] == info["runs"]


def test_bengio_quick(tmp_path, monkeypatch, capsys):
    from landscape.analyses import bengio_fig2 as bf

    monkeypatch.setitem(bf.CONFIGS, "quick", bf.Config(T_b=(5, 8), runs_b=2, w0_a=(1.0, 2.0), s_a=(0.1,), runs_a=2,
                                                       epochs=5, M=2))
    paths = bf.run(tmp_path, quick=True)
    figures_ok(paths, "bengio-fig2-quick")
    rows = read_csv(tmp_path / "bengio-fig2-quick.csv")
    assert {r["panel"] for r in rows} == {"a", "b"} and {r["w_trained"] for r in rows} == {"0", "1"}
    out = capsys.readouterr().out  # other lengths and epochs than the paper's: no paper number beside them
    assert "no paper numbers shown" in out and "| paper" not in out


def test_bengio_convergence_extremes():
    """Noise-free short sequences with a strong latch converge; long noisy ones with w fixed at
    0.5 (no bistability) cannot."""
    from landscape.analyses.bengio_fig2 import Config, simulate

    cfg = Config(M=3, epochs=200)
    easy = simulate(np.array([5, 5]), np.array([2.0, 2.0]), np.array([0.0, 0.0]), False, cfg, seed=1)
    hard = simulate(np.array([40, 40]), np.array([0.5, 0.5]), np.array([1.0, 1.0]), False, cfg, seed=1)
    assert easy["converged"].all() and not hard["converged"].any()
    assert (easy["epochs"] < cfg.epochs).all()


def test_relay_and_ablations_quick(tmp_path, monkeypatch):
    from landscape.analyses import ablations, relay

    tiny = relay.Config(lengths=(3,), n=48, repeats=2, epochs=1, compile=False)
    monkeypatch.setitem(relay.CONFIGS, "quick", tiny)
    paths = relay.run(tmp_path, quick=True, progress=False)
    figures_ok(paths, "relay-quick")
    rows = read_csv(tmp_path / "relay-quick.csv")
    assert {r["task"] for r in rows} == {"latch", "relay"} and {r["cell"] for r in rows} == {"srnn", "lstm", "gru"}
    monkeypatch.setitem(ablations.CONFIGS, "quick", ablations.Config(lengths=(3,), n=32, repeats=1, epochs=1))
    paths = ablations.run(tmp_path, quick=True, progress=False)
    figures_ok(paths, "ablations-quick")
    rows = read_csv(tmp_path / "ablations-quick.csv")
    latch_cells = {r["cell"] for r in rows if r["task"] == "latch"}
    relay_cells = {r["cell"] for r in rows if r["task"] == "relay"}
    assert latch_cells == set(ablations.CELLS) and relay_cells == set(ablations.CELLS) - {"mut1", "mut2"}
    lstm0 = [r for r in rows if r["cell"] == "lstm" and r["epoch"] == "0"]
    assert all(float(r["p:b_f"]) == 0.0 for r in lstm0 if "p:b_f" in r and r["p:b_f"] != "")


def test_trajectories_quick(tmp_path):
    from landscape.analyses import trajectories as tr

    paths = tr.run(tmp_path, quick=True, progress=False)
    figures_ok(paths, "pascanu-fig6-trajectories-quick")
    figures_ok(paths, "latch-trajectories-quick")
    rows = read_csv(tmp_path / "fig6-trajectories-quick.csv")
    fig6 = [r for r in rows if r["figure"] == "pascanu-fig6"]

    def inside(r):
        return tr.W_RANGE[0] <= float(r["x"]) <= tr.W_RANGE[1] and tr.B_RANGE[0] <= float(r["y"]) <= tr.B_RANGE[1]

    plain = [r for r in fig6 if r["path"] == "plain"]
    clipped = [r for r in fig6 if r["path"] == "clipped"]
    assert not inside(plain[-1]) and max(float(r["grad_norm"]) for r in plain if r["grad_norm"]) > 10 * tr.CLIP
    assert all(inside(r) for r in clipped)  # the clipped path stays in the window (lands in the valley)
    steps = np.hypot(np.diff([float(r["x"]) for r in clipped]), np.diff([float(r["y"]) for r in clipped]))
    assert steps.max() <= tr.LR * tr.CLIP * (1 + 1e-9)
    latch = [r for r in rows if r["figure"] == "latch"]
    assert {r["cell"] for r in latch} == {"srnn", "lstm"} and {r["optimizer"] for r in latch} == set(tr.OPTIMIZERS)


# ---------------------------------------------------------------------------------------------
# landscape train


@pytest.fixture()
def cli():
    from landscape.cli import Group
    from landscape.cli.train import command

    group = Group(commands={"train": command})
    return lambda *args: CliRunner().invoke(group, ["train", *args])


def test_cli_train_summary_and_resume(tmp_path, cli):
    out = tmp_path / "runs.csv"
    args = ["--cell", "lstm", "--cell-opt", "gate=hard_sigmoid", "--T", "3,5", "--repeats", "2", "--n", "48",
            "--epochs", "1", "--out", str(out), "-q"]
    first = cli(*args)
    assert first.exit_code == 0, first.output
    assert "val_acc mean" in first.output and first.output.count("\n") >= 4
    lines = {line.split()[0]: line for line in first.output.splitlines() if line.strip()[:1].isdigit()}
    assert set(lines) == {"3", "5"}
    second = cli(*args, "--threads", "2")  # everything saved (threads are not part of a run's key)
    assert second.exit_code == 0 and "trained" not in second.output
    assert [l for l in second.output.splitlines() if l.strip()[:1].isdigit()] == \
           [l for l in first.output.splitlines() if l.strip()[:1].isdigit()]


@pytest.mark.parametrize("args,message", [
    (["--optimizer", "adamw"], "unknown optimizer 'adamw'; choose from: adam, adam-keras, sgd"),
    (["--T", "0,5"], "T must be positive integers; got 0"),
    (["--batch", "64", "--n", "40"], "batch 64 is larger than the 32 training rows"),
    (["--out", "x.txt"], "end the file name in .csv, .h5 or .hdf5"),
    (["--threads", "-2"], "must be a positive count, not -2"),
])
def test_cli_train_errors(cli, args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("--n", "40", "--T", "3", "--repeats", "1", "--epochs", "1", "-q", *args)
    assert result.exit_code == 2
    assert message in result.output and result.output.count("\n") == 1
