"""`landscape reproduce trained-relay --quick`: it writes its files, and its summary's numbers are
those of the files: the model's loss at each T (computed by the cells' own step) is the centre of
the plane grid (computed by the engine), the Hessian eigenvalues are the stored plane's, the loss
range is the grid's, the fixed-point counts are those of the stored points, the test accuracy is
the training store's for the best repeat; and the plane's curvature along a at the centre is its
first eigenvalue (a 3-point stencil on the grid against the stored value)."""
from __future__ import annotations

import csv
import math

import h5py
import numpy as np
import pytest
import torch

from landscape.analyses import get_analysis
from landscape.analyses.trained_relay import CELLS, CONFIGS
from landscape.directions import read_plane
from landscape.train.results import ResultStore

CONFIG = CONFIGS["quick"]
STEM = "trained-relay-quick"


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """The --quick run, on one CPU thread as `landscape reproduce` runs it (two OpenMP threads make
    its small operations several times slower on a shared machine)."""
    out = tmp_path_factory.mktemp("trained-relay")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        paths = get_analysis("trained-relay").run(out, quick=True, device="cpu", progress=False)
    finally:
        torch.set_num_threads(threads)
    with open(out / f"{STEM}-summary.csv") as fh:
        summary = {r["cell"]: r for r in csv.DictReader(fh)}
    return out, paths, summary


def test_it_writes_its_files(quick_run):
    out, paths, summary = quick_run
    expected = [f"{STEM}-train.h5", f"{STEM}-summary.csv"]
    expected += [f"{STEM}-plane-{c}-T{T}.h5" for c in CELLS for T in CONFIG.plane_Ts]
    expected += [f"{STEM}-fixedpoints-{c}.h5" for c in CELLS]
    expected += [f"{STEM}-{fig}.{ext}" for fig in ("planes", "fixedpoints") for ext in ("pdf", "png")]
    assert sorted(p.name for p in paths) == sorted(expected)
    for name in expected:
        assert (out / name).stat().st_size > 0, name
    assert list(summary) == list(CELLS)


def test_the_summary_is_the_files(quick_run):
    out, _, summary = quick_run
    store = ResultStore(out / f"{STEM}-train.h5")
    final = [r for r in store.rows() if int(r["epoch"]) == CONFIG.epochs]
    for cell, row in summary.items():
        # the best repeat: the highest final test accuracy (ties: lowest test loss), as stored
        mine = [r for r in final if r["cell"] == cell]
        assert len(mine) == CONFIG.repeats
        best = min(mine, key=lambda r: (-float(r["test_acc"]), float(r["test_loss"])))
        assert int(row["best_repeat"]) == int(best["repeat"])
        assert float(row["test_acc"]) == pytest.approx(float(best["test_acc"]), abs=1e-12)
        assert float(row["test_acc_mean"]) == pytest.approx(np.mean([float(r["test_acc"]) for r in mine]))
        for T in CONFIG.plane_Ts:
            with h5py.File(out / f"{STEM}-plane-{cell}-T{T}.h5") as f:
                loss, a, b = f["loss"][0], f["a"][()], f["b"][()]
                plane = read_plane(f["plane"])
                spec = f.attrs["spec"]
            i0, j0 = int(np.argmin(np.abs(a))), int(np.argmin(np.abs(b)))
            assert a[i0] == 0.0 and b[j0] == 0.0 and f'"T":[{T}]' in spec
            # the model's loss (the cell's own step) is the grid's centre (the engine)
            assert float(row[f"loss_T{T}"]) == pytest.approx(loss[i0, j0], rel=1e-10)
            assert float(row[f"hessian_l1_T{T}"]) == pytest.approx(float(plane.values[0]), rel=1e-12)
            assert float(row[f"hessian_l2_T{T}"]) == pytest.approx(float(plane.values[1]), rel=1e-12)
            assert float(row[f"hessian_l1_T{T}"]) >= float(row[f"hessian_l2_T{T}"])
            assert float(row[f"plane_min_T{T}"]) == pytest.approx(float(loss.min()), rel=1e-12)
            assert float(row[f"plane_max_T{T}"]) == pytest.approx(float(loss.max()), rel=1e-12)
            assert float(row[f"plane_chance_frac_T{T}"]) == pytest.approx(float(np.mean(loss >= math.log(2))))
            assert 0.0 <= float(row[f"acc_T{T}"]) <= 1.0
        # the fixed-point counts are those of the stored points
        with h5py.File(out / f"{STEM}-fixedpoints-{cell}.h5") as f:
            xs, stab, kind, count = f["x"][()], f["stability"].asstr()[()], f["kind"][()], f["count"][()]
            rho = f["spectral_radius"][()]
            assert f.attrs["model"].endswith(f"{cell}-T{CONFIG.train_T}:{row['best_repeat']}")
        np.testing.assert_array_equal(xs, CONFIG.fp_inputs)
        for i, x in enumerate(xs):
            name = f"{x:+g}" if x != 0 else "0"
            k = count[i]
            for s in ("stable", "unstable", "marginal"):
                assert int(row[f"{s}_x{name}"]) == int((stab[i, :k] == s).sum()), (cell, x, s)
            assert int(row[f"slow_x{name}"]) == int((kind[i, :k] == 2).sum())
            radii = sorted(rho[i, :k][stab[i, :k] == "stable"])
            got = [float(v) for v in row[f"radii_stable_x{name}"].split(";") if v]
            np.testing.assert_allclose(got, radii, rtol=1e-5)
            assert all(r < 1 for r in got)


def test_the_plane_curves_along_a_as_its_first_eigenvalue(quick_run):
    """On the quick grid (step 0.25) a 3-point stencil is only O(h^2) accurate: 10 %."""
    out, _, _ = quick_run
    with h5py.File(out / f"{STEM}-plane-srnn-T{CONFIG.plane_Ts[0]}.h5") as f:
        loss, a = f["loss"][0], f["a"][()]
        plane = read_plane(f["plane"])
    c = len(a) // 2
    h = a[1] - a[0]
    curv = (loss[c - 1, c] - 2 * loss[c, c] + loss[c + 1, c]) / h ** 2
    assert curv == pytest.approx(float(plane.values[0]), rel=0.1)
