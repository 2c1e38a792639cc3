"""Training paths on the landscape (issue 21): the path plane, cliff hits, fixed points along paths,
fates, and the run file that holds the recorded steps."""
from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest
import torch

from landscape.directions import path_plane
from landscape.dynamics import fixed_points
from landscape.model import ModelSpec
from landscape.problem import resolve_model
from landscape.train.paths import (CliffThresholds, MemberPath, bifurcation_rows, cliff_bifurcations, cliff_hits, fate,
                                   feature_table, load_paths, path_dynamics, result_paths, wilson)


def test_projection_of_a_path_in_a_plane_is_exact():
    rng = np.random.default_rng(0)
    n, R = 7, 30
    end = rng.normal(size=n)
    v1, v2 = rng.normal(size=n), rng.normal(size=n)
    a, b = np.cumsum(rng.normal(size=R)), np.sin(np.linspace(0, 3, R))
    pts = end + (a - a[-1])[:, None] * v1 + (b - b[-1])[:, None] * v2  # (R, n), in a plane through the end
    path = {"x": torch.as_tensor(pts[:, :4]), "y": torch.as_tensor(pts[:, 4:].reshape(R, 3, 1))}
    plane = path_plane(path)
    coords = plane.project(path)  # (R, 2)
    back = plane.params_at(coords[:, 0], coords[:, 1])
    np.testing.assert_allclose(back["x"].numpy(), pts[:, :4], atol=1e-12)
    np.testing.assert_allclose(back["y"].numpy().reshape(R, 3), pts[:, 4:], atol=1e-12)
    np.testing.assert_allclose(coords.numpy(), plane.coords.numpy(), atol=1e-12)
    np.testing.assert_allclose(plane.origin.numpy(), end, atol=0)  # through the END point
    assert plane.kind == "path" and dict(plane.info)["variance_captured"] == pytest.approx(1.0, abs=1e-12)


def test_variance_fraction_equals_a_direct_pca():
    rng = np.random.default_rng(1)
    pts = np.cumsum(rng.normal(size=(40, 6)) * np.array([3, 2, 1, 0.5, 0.3, 0.1]), axis=0)
    plane = path_plane({"p": torch.as_tensor(pts)})
    s = np.linalg.svd(pts - pts.mean(0), compute_uv=False)
    want = (s[0] ** 2 + s[1] ** 2) / (s ** 2).sum()
    assert dict(plane.info)["variance_captured"] == pytest.approx(want, rel=1e-12)
    np.testing.assert_allclose(plane.values.numpy(), s[:2] ** 2 / (s ** 2).sum(), rtol=1e-12)


def test_cliff_hit_where_pascanu_plain_descent_hits_the_wall():
    """reproduce pascanu-fig6-trajectories: the plain path is at the wall at step 4 and its update to
    step 5 has |g| = 65 (its README row); the clipped path hits no cliff."""
    from landscape.analyses.trajectories import CLIP, LR, START, T_PASCANU, STEPS
    from landscape.train import Member, TrainSpec, train_population

    spec = TrainSpec.of(cell="pascanu", task="target", n=1, batch=1, epochs=STEPS, optimizer="sgd",
                        trainable=("w", "b"), record_steps=True, dtype="float64")
    members = [Member(T=T_PASCANU, init="base", set=(("w", START[0]), ("b", START[1])), lr=LR, clip=c,
                      protocol="all") for c in (None, CLIP)]
    plain, clipped = result_paths(train_population(spec, members, device="cpu", progress=False))
    hits = cliff_hits(plain)
    assert [h["step"] for h in hits] == [5]
    assert hits[0]["grad_norm"] == pytest.approx(65, abs=1) and hits[0]["param"] in ("w", "b")
    # the wall is the basin boundary of x0 = 0.5, b = 0.5 - w sigma(0.5) (closed form): the hit is the update
    # leaving the first recorded point past it
    w, b = plain.params["w"].reshape(-1), plain.params["b"].reshape(-1)
    past = np.sign(b + w / (1 + np.exp(-0.5)) - 0.5) != np.sign(b[0] + w[0] / (1 + np.exp(-0.5)) - 0.5)
    assert hits[0]["step"] - 1 == plain.steps[np.argmax(past)] == 4
    assert cliff_hits(clipped) == []
    assert cliff_hits(plain, CliffThresholds(grad_factor=1e4)) == []  # the thresholds are honoured


def _path(cell, task, ws, bs, u=0.0):
    R = len(ws)
    params = {"w": np.asarray(ws, float).reshape(R, 1, 1), "u": np.full((R, 1, 1), u), "b": np.asarray(bs, float).reshape(R, 1)}
    return MemberPath("g", 0, {}, 10, np.arange(R), params, np.zeros(R - 1), np.ones(R - 1), np.zeros(2), 0.9,
                      {"cell": cell, "task": task})


@pytest.mark.parametrize("cell,task,w,b", [("srnn", "latch", (0.3, 2.5), (-0.4, 0.3)),
                                           ("pascanu", "target", (3.0, 8.0), (-4.0, -1.0))])
def test_fixed_points_along_a_path_equal_the_closed_form(cell, task, w, b):
    R = 13
    ws, bs = np.linspace(*w, R), np.linspace(*b, R)
    problem = resolve_model(ModelSpec(cell=cell, task=task, hidden=1))
    path = _path(cell, task, ws, bs)
    dyn = path_dynamics([path, _path(cell, task, ws[::-1], bs[::-1])], problem, input=0.0 if problem.D else None)
    for m, (wm, bm) in enumerate(((ws, bs), (ws[::-1], bs[::-1]))):
        for r in range(R):
            exact = fixed_points(cell, wm[r], bm[r])
            assert dyn.n_fixed[m, r] == len(exact), (m, r, wm[r], bm[r])
            found = np.sort(dyn.fixed[m, r][np.isfinite(dyn.fixed[m, r])])
            np.testing.assert_allclose(found, [fp.state for fp in exact], atol=1e-7)
            assert dyn.n_stable_fixed[m, r] == sum(fp.stable for fp in exact)
    changes = dyn.bifurcations()[0]
    assert changes.any()  # the path crosses a fold
    j = int(np.flatnonzero(changes)[0])  # between recorded steps j and j + 1
    (near,) = cliff_bifurcations([{"segment": j + 1}], 0, dyn, reach=0)
    assert f"step {j}->{j + 1}" in near["bifurcation"] and "fixed point" in near["bifurcation"]
    assert dyn.describe(0, j) != dyn.describe(0, j + 1)
    # a row for each change of the closed-form fixed points' count or stability between recorded steps, and
    # no other: both paths (repeats 0 and 1), in member then step order
    backwards = dataclasses.replace(_path(cell, task, ws[::-1], bs[::-1]), index=1)
    rows = bifurcation_rows([path, backwards], dyn)
    want = [(m, r) for m, (wm, bm) in enumerate(((ws, bs), (ws[::-1], bs[::-1]))) for r in range(R - 1)
            if [fp.stable for fp in fixed_points(cell, wm[r], bm[r])]
            != [fp.stable for fp in fixed_points(cell, wm[r + 1], bm[r + 1])]]
    assert want and [(row["repeat"], row["recorded_from"]) for row in rows] == want
    assert all(row["recorded_to"] == row["recorded_from"] + 1 == row["step_to"] for row in rows)
    assert rows[0]["before"] == dyn.describe(0, want[0][1]) and rows[0]["after"] == dyn.describe(0, want[0][1] + 1)


def test_fates_and_wilson():
    assert fate([0.5, 0.95, 0.97], 0.9) == "learned"
    assert fate([0.5, 0.95, 0.6], 0.9) == "learned then lost"
    assert fate([0.95, 0.5, 0.6], 0.9) == "never learned"  # the initial point does not count
    lo, hi = wilson(44, 44)
    assert hi == pytest.approx(1.0) and lo == pytest.approx(0.9197, abs=1e-3)  # 1 - z^2 / (n + z^2)
    lo, hi = wilson(11, 56)  # by hand: centre (p + z^2/2n) / (1 + z^2/n), the half width likewise
    z, n, p = 1.959963984540054, 56, 11 / 56
    c = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert (lo, hi) == pytest.approx((c - h, c + h))


def test_run_file_with_recorded_steps_passes_check_and_reads_back(tmp_path):
    out = tmp_path / "run.h5"
    env_cmd = [sys.executable, "-m", "landscape"]
    done = subprocess.run(env_cmd + ["train", "--cell", "srnn", "--T", "6", "--repeats", "3", "--epochs", "2",
                                     "--n", "64", "--protocol", "stratified", "--record-steps", "3", "-q",
                                     "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "cliff hits" in done.stdout and "members: learned" in done.stdout
    check = subprocess.run(env_cmd + ["check", str(out)], capture_output=True, text=True)
    assert check.returncode == 0 and "ok" in check.stdout, check.stdout + check.stderr
    paths = load_paths(out, "srnn-T6")
    assert len(paths) == 3 and list(paths[0].steps) == [0, 3, 6, 8]  # 51 rows / 16: 4 steps x 2 epochs, and the last
    assert [p.repeat for p in paths] == [0, 1, 2] and len(paths[0].loss) == 3
    rows = feature_table(paths, [{"w": float(p.params["w"][0].item())} for p in paths])
    assert sum(r["n"] for r in rows) == 3


@pytest.mark.parametrize("omega", [0.0, 4.0])
def test_recorded_population_with_omega_equals_each_model_alone(omega):
    """--omega with --record-steps K on the batched path (the CLI's default, eager; --compile is
    tests/test_train.py::test_compiled_unroll_matches_eager): member k's recorded parameters,
    batch losses and gradient norms are those of the same model trained alone; Omega changes them."""
    from landscape.train import Member, TrainSpec, train_population

    spec = TrainSpec.of(cell="srnn", task="temporal-order", hidden=3, n=60, epochs=2, batch=10, dtype="float64",
                        optimizer="sgd", omega=omega, record_steps=3)
    members = [Member(T=T, seed=s, data_seed=T, lr=0.05, clip=c, protocol="stratified")
               for T, s, c in ((10, 0, 1.0), (10, 1, None), (12, 2, 1.0))]
    together = train_population(spec, members, device="cpu")
    assert list(together.steps) == [0, 3, 6, 9, 10]  # 48 training rows / 10: 5 steps x 2 epochs
    for p in range(len(members)):
        alone = train_population(spec, [members[p]], device="cpu")
        for k in together.step_params:
            np.testing.assert_allclose(alone.step_params[k][:, 0], together.step_params[k][:, p], rtol=0, atol=1e-12)
        for k in together.step_metrics:
            np.testing.assert_allclose(alone.step_metrics[k][:, 0], together.step_metrics[k][:, p], rtol=0, atol=1e-12)
    if omega:
        plain = train_population(TrainSpec.of(**{**spec.canonical(), "omega": 0.0}), members, device="cpu")
        assert not np.allclose(plain.step_params["w"][1:], together.step_params["w"][1:])


def test_paths_on_a_named_parameter_grid_are_the_members_own_and_exact_where_the_rest_is_the_base(tmp_path):
    """On a grid over srnn's (w, b) the drawn path is each member's (w_t, b_t); members that start at the
    cell's base point and train only w and b differ from the grid's point nowhere else, so the loss at
    the projection equals the loss at the real parameters, and at the start the surface's own value."""
    from landscape.figures.paths import project_paths
    from landscape.spec import Axis, GridSpec
    from landscape.surface import grid
    from landscape.train import Member, TrainSpec, train_population

    spec = TrainSpec.of(cell="srnn", task="latch", n=64, epochs=2, batch=8, dtype="float64", readout="logistic",
                        optimizer="sgd", trainable=("w", "b"), record_steps=2)
    run = train_population(spec, [Member(T=6, seed=s, data_seed=6, lr=lr, init="base", protocol="all")
                                  for s, lr in ((0, 0.5), (1, 0.1))], device="cpu")
    surface = grid(GridSpec.of(cell="srnn", task="latch", T=(6,), x=Axis("w", -1, 3, 9), y=Axis("b", -1.5, 1.5, 7),
                               n=64, fit="fixed"), out=tmp_path / "g.h5").surface
    projected, note = project_paths(surface, result_paths(run), 6)
    assert "(w, b)" in note and "out_w=4" in note and "u=1" in note
    for m, p in enumerate(projected):
        own = np.stack([run.step_params["w"][:, m, 0, 0], run.step_params["b"][:, m, 0]], -1)  # (R, 2)
        np.testing.assert_array_equal(p.coords, own)
        np.testing.assert_allclose(p.loss_proj, p.loss_real, rtol=1e-12, atol=0)
        assert p.coords[0].tolist() == [1.0, 0.0]  # the base point: w = 1 (x[4]), b = 0 (y[3])
        assert p.loss_real[0] == pytest.approx(float(surface.loss[0, 4, 3]), rel=1e-9)
    assert not np.allclose(projected[0].coords, projected[1].coords)


def test_path_plane_grid_and_plot_paths_from_the_command_line(tmp_path):
    """train --record-steps, then grid --base-model RUN.h5:GROUP:REPEAT --directions path (the plane
    through the path's END point, its variance fraction printed and stored), then plot --paths: the
    member's last recorded point projects onto the plane's centre, where the surface's loss is its
    real loss."""
    from click.testing import CliRunner

    from landscape.cli import main
    from landscape.directions import read_plane
    from landscape.figures.paths import project_paths
    from landscape.store import load
    from landscape.store.integrity import open_file

    run, plane_file, figure = tmp_path / "run.h5", tmp_path / "plane.h5", tmp_path / "paths.png"
    runner = CliRunner()
    done = runner.invoke(main, ["train", "--cell", "srnn", "--T", "6", "--repeats", "2", "--epochs", "2", "--n", "64",
                                "--protocol", "stratified", "--record-steps", "3", "-q", "--out", str(run)])
    assert done.exit_code == 0, done.output
    done = runner.invoke(main, ["grid", "--base-model", f"{run}:srnn-T6:1", "--directions", "path", "--x", "a:-1:1:5",
                                "--y", "b:-1:1:5", "--T", "6", "--out", str(plane_file)])
    assert done.exit_code == 0, done.output
    with open_file(plane_file) as f:
        plane = read_plane(f["plane"])
    captured = dict(plane.info)["variance_captured"]
    assert plane.kind == "path" and 0 < captured <= 1 and f"holds {captured:.1%} of the path's variance" in done.output
    surface = load(plane_file)
    member = load_paths(run, "srnn-T6")[1]
    (p,), note = project_paths(surface, [member], 6)
    assert "path plane" in note
    np.testing.assert_allclose(p.coords[-1], [0, 0], atol=1e-9)  # the plane passes through the end point
    assert p.loss_proj[-1] == pytest.approx(p.loss_real[-1], rel=1e-9)
    assert p.loss_real[-1] == pytest.approx(float(surface.loss[0, 2, 2]), rel=1e-6)  # the grid's centre
    done = runner.invoke(main, ["plot", str(plane_file), "--kind", "contour", "--paths", f"{run}:srnn-T6",
                                "--out", str(figure)])
    assert done.exit_code == 0, done.output
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    done = runner.invoke(main, ["check", str(plane_file), str(run)])  # both files verify (Trust every file)
    assert done.exit_code == 0 and done.output.count("ok") == 2, done.output
