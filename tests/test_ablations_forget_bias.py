"""ablations.forget_bias_check: lstm against lstm-b on latch with more members than the default run;
its first models are the reproduction's own (same seeds, same data), so at the reproduction's size
it counts what the reproduction's summary counts."""
from __future__ import annotations

import csv

import pytest

from landscape.analyses import ablations


def test_forget_bias_check_counts_the_reproductions_models(tmp_path, monkeypatch):
    config = ablations.Config(lengths=(3,), n=32, repeats=2, epochs=1)
    monkeypatch.setitem(ablations.CONFIGS, "quick", config)
    ablations.run(tmp_path, quick=True, progress=False)
    with open(tmp_path / "ablations-quick-summary.csv", newline="") as fh:
        summary = {(r["task"], r["cell"]): r for r in csv.DictReader(fh)}
    rows = ablations.forget_bias_check(repeats=2, T=3, config=config, device="cpu")
    assert [r["cell"] for r in rows] == ["lstm", "lstm-b"]
    for r in rows:
        mine = summary[("latch", r["cell"])]
        assert r["models"] == int(mine["n"]) == 2
        assert r["rate"] == pytest.approx(float(mine["success"]))
        assert r["val_acc_mean"] == pytest.approx(float(mine["val_acc_mean"]), abs=1e-6)
        assert 0.0 <= r["rate_lo"] <= r["rate"] <= r["rate_hi"] <= 1.0
