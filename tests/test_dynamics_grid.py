"""`landscape grid --dynamics`: the dynamics fields in the surface file. Truths: dynamics_map and
lyapunov called directly on parameters built here (not by the grid's chunking), a run that was
never killed, the closed-form fold curves of landscape.dynamics, and tests/data/golden.json."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

from landscape import dynamics, surface
from landscape.dynamics_map import (GRID_SEQUENCES, DynamicsOptions, dynamics_map, first_sequences, lyapunov,
                                    stored_bifurcation_segments)
from landscape.errors import LandscapeError
from landscape.model import ModelSpec
from landscape.problem import resolve_model
from landscape.spec import GridSpec
from landscape.store import load
from landscape.store.format import COUNT_FIELDS, DYNAMICS_FIELD_NAMES, PERIOD_FIELDS
from tests import golden

DT = torch.float64


def small(cell="srnn", **kw):
    x, y = {"srnn": ("w:-1.5:3:10", "b:-1.5:1.5:7"), "gru": ("w_h:-2:4:6", "b_h:-1:1:5")}[cell]
    return GridSpec.of(cell=cell, task="latch", T=(5, 12), n=24, x=x, y=y, dynamics=True, **kw)


@pytest.mark.parametrize("cell", ["srnn", "gru"])
def test_stored_counts_equal_dynamics_map_on_the_same_points(cell, tmp_path):
    r = surface.grid(small(cell), out=tmp_path / "s.h5", chunk_size=9, progress=False)
    s = r.surface
    problem = resolve_model(ModelSpec(cell=cell, task="latch"))
    X, Y = np.meshgrid(s.x, s.y, indexing="ij")  # (nx, ny) each
    params = {k: v.to(DT).unsqueeze(0) for k, v in problem.base.items()}
    params[s.x_name] = torch.tensor(X.reshape(-1, 1, 1))  # one-unit weight (P, 1, 1)
    params[s.y_name] = torch.tensor(Y.reshape(-1, 1))  # bias (P, 1)
    dm = dynamics_map(problem, params, 0.0, DynamicsOptions(), members=np.arange(X.size))
    for name in (*COUNT_FIELDS, *PERIOD_FIELDS):
        want = getattr(dm, name).reshape(*X.shape, *getattr(dm, name).shape[1:])
        np.testing.assert_array_equal(s.fields[name], want, err_msg=name)
    data = first_sequences(problem.task.make((5, 12), 24, 0), GRID_SEQUENCES)
    lam = lyapunov(problem, params, data, (5, 12))[..., 0].reshape(2, *X.shape)
    np.testing.assert_allclose(s.fields["lyapunov"], lam, rtol=1e-12, atol=0)
    with h5py.File(r.path) as f:  # named dimensions
        assert [d.label for d in f["n_cycles"].dims] == [s.x_name, s.y_name, "period"]
        assert [d.label for d in f["n_fixed"].dims] == [s.x_name, s.y_name]
        assert [d.label for d in f["lyapunov"].dims] == ["T", s.x_name, s.y_name]
        assert list(f["period"][()]) == list(range(1, 9))


def test_killed_and_resumed_grid_has_the_same_dynamics(tmp_path, monkeypatch):
    spec = small()
    whole = surface.grid(spec, out=tmp_path / "whole.h5", chunk_size=8, progress=False).surface
    real, calls = surface.compute_chunk, []

    def dies_on_the_fourth(*args, **kw):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(surface, "compute_chunk", dies_on_the_fourth)
    with pytest.raises(KeyboardInterrupt):
        surface.grid(spec, out=tmp_path / "resumed.h5", chunk_size=8, progress=False)
    monkeypatch.setattr(surface, "compute_chunk", real)
    with h5py.File(tmp_path / "resumed.h5") as f:
        assert 0 < f["done"][()].sum() < len(f["done"])
    resumed = surface.grid(spec, out=tmp_path / "resumed.h5", progress=False)
    assert not resumed.cached and resumed.computed_points < len(whole.x) * len(whole.y)
    for name in DYNAMICS_FIELD_NAMES:
        np.testing.assert_array_equal(resumed.surface.fields[name], whole.fields[name], err_msg=name)
    np.testing.assert_array_equal(resumed.surface.loss, whole.loss)


def test_a_tampered_dynamics_field_is_caught(tmp_path):
    path = surface.grid(small(), out=tmp_path / "s.h5", progress=False).path
    with h5py.File(path, "r+") as f:
        f["n_fixed"][0, 0] = 7.0
    with pytest.raises(LandscapeError, match="digest"):
        load(path)


def test_srnn_bifurcation_lines_lie_on_the_fold_curves(tmp_path):
    spec = GridSpec.of(cell="srnn", task="latch", T=(5,), n=8, x="w:0:3:41", y="b:-1.5:1.5:41", dynamics=True)
    s = surface.grid(spec, out=tmp_path / "s.h5", progress=False).surface
    seg = stored_bifurcation_segments(s.fields, s.x, s.y)  # (L, 2, 2)
    assert len(seg) > 20
    step = np.array([s.x[1] - s.x[0], s.y[1] - s.y[0]])
    w = np.linspace(1.0, 3.0, 4001)
    f = dynamics.fold_points("srnn", w)
    curve = np.concatenate([np.stack([w, f.b1], -1), np.stack([w, f.b2], -1)])  # (2 n, 2)
    mids = seg.mean(1)  # (L, 2)
    dist = np.min(np.hypot(*((mids[:, None] - curve[None]) / step).transpose(2, 0, 1)), axis=1)  # grid steps
    assert dist.max() <= 1.0, dist.max()
    # and every fold crossing of the grid has a line beside it: the folds' own points are within a step
    inside = (curve[:, 1] > s.y[0]) & (curve[:, 1] < s.y[-1]) & (curve[:, 0] > s.x[1])
    back = np.min(np.hypot(*((curve[inside][:, None] - mids[None]) / step).transpose(2, 0, 1)), axis=1)
    assert back.max() <= 1.0, back.max()


def test_pascanu_wall_lies_on_the_basin_boundary_inside_the_bifurcation_lines(tmp_path):
    """Issue 22's first proof for pascanu on target (x0 = 0.5, Pascanu et al.'s Fig. 6 plane): the
    stored bifurcation lines lie on the closed-form folds within one grid step, and the loss's wall
    (per w, the largest jump of the loss between neighbouring b) lies on the basin boundary of x0
    (``dynamics.basin_boundary``) within one grid step, and within a grid step of points the stored
    counts call bistable (3 fixed points, 2 stable): inside the bifurcation lines, as the folds
    enclose it (near the cusp the band between the folds is narrower than a grid step)."""
    spec = GridSpec.of(cell="pascanu", task="target", T=(50,), x="w:4.5:5.5:21", y="b:-2.9:-1.9:41", dynamics=True)
    s = surface.grid(spec, out=tmp_path / "p.h5", progress=False).surface
    step = np.array([s.x[1] - s.x[0], s.y[1] - s.y[0]])
    seg = stored_bifurcation_segments(s.fields, s.x, s.y)  # (L, 2, 2)
    f = dynamics.fold_points("pascanu", np.linspace(4.5, 5.5, 2001))
    curve = np.concatenate([np.stack([f.w, f.b1], -1), np.stack([f.w, f.b2], -1)])  # (2 n, 2)
    dist = np.min(np.hypot(*((seg.mean(1)[:, None] - curve[None]) / step).transpose(2, 0, 1)), axis=1)
    assert len(seg) and dist.max() <= 1.0, dist.max()
    basin = dynamics.basin_boundary("pascanu", 0.5, s.x).b  # (nx,)
    rows = np.nonzero((basin > s.y[1]) & (basin < s.y[-2]))[0]  # the w whose boundary is inside the grid
    assert len(rows) >= 15
    j = np.abs(np.diff(s.loss[0, rows], axis=1)).argmax(1)  # the wall between b[j] and b[j + 1], per w
    wall = 0.5 * (s.y[j] + s.y[j + 1])
    assert np.all(np.abs(wall - basin[rows]) <= step[1]), np.abs(wall - basin[rows]).max() / step[1]
    near = np.stack([s.fields["n_fixed"][rows, k] == 3 for k in (j - 1, j, j + 1, j + 2)])  # (4, rows)
    assert near.any(0).all()  # within a grid step of a point the counts call bistable
    assert np.all(s.fields["n_stable_fixed"][rows, j + 1][s.fields["n_fixed"][rows, j + 1] == 3] == 2)


def test_dynamics_off_leaves_key_spec_and_values_as_golden(tmp_path):
    want = json.loads(golden.GOLDEN.read_text())["srnn-latch-fixed"]
    got = golden.make("srnn-latch-fixed", tmp_path)
    assert (got["key"], got["spec"]) == (want["key"], want["spec"])
    assert got["datasets"] == want["datasets"]
    golden.CASES["srnn-latch-fixed-dynamics"] = [*golden.CASES["srnn-latch-fixed"], "--dynamics"]
    try:
        on = golden.make("srnn-latch-fixed-dynamics", tmp_path)
    finally:
        del golden.CASES["srnn-latch-fixed-dynamics"]
    assert on["key"] != want["key"] and "dynamics" in json.loads(on["spec"])
    assert on["datasets"]["loss"] == want["datasets"]["loss"]  # the dynamics leave the loss as it was
    assert set(on["datasets"]) == set(want["datasets"]) | {*DYNAMICS_FIELD_NAMES, "period"}


def test_input_needs_dynamics_and_changes_the_key():
    from landscape.resolved import resolve

    with pytest.raises(LandscapeError, match="--dynamics"):
        resolve(GridSpec.of(cell="srnn", task="latch", input=0.5))
    a, b = (resolve(small(input=v)) for v in (None, 0.5))
    assert json.loads(a.canonical())["dynamics"]["input"] == 0.0 and a.key() != b.key()


def test_the_dynamics_memory_estimate_bounds_the_measured_peak():
    """plan.dynamics_bytes_per_member x P against the peak resident set of grid_fields on a chunk
    of P points, measured in a fresh process (benchmarks/dynamics_memory.py, which prints the
    ratios for larger cases: 1.3 to 3.1)."""
    from benchmarks.dynamics_memory import measure

    for P, spec in ((256, dict(cell="srnn", task="latch", T=(10, 50), n=100, x="w:0:3:16", y="b:-1.5:1.5:16")),
                    (64, dict(cell="gru", task="latch", T=(10, 50), n=100, x="block_w:-1:5:8",
                              y="block_b:-1.5:1.5:8"))):
        m = measure(P, spec, timeout=300)
        assert m["measured"] > 0 and m["estimate"] >= m["measured"], (spec["cell"], m)
