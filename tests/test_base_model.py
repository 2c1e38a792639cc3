"""A trained model as the base point of a grid, and planes of directions around it: against torch's
own forward pass, against the training code's loss at the same parameters, and the plane stored in
the file rebuilding the grid."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner

import landscape
from landscape import Axis, GridSpec
from landscape.cli import main
from landscape.directions import read_plane
from landscape.errors import LandscapeError
from landscape.tasks import get_task

F64 = torch.float64


@pytest.fixture
def gru_file(tmp_path):
    torch.manual_seed(0)
    rnn, head = torch.nn.GRU(1, 4), torch.nn.Linear(4, 2)
    sd = {**{f"rnn.{k}": v for k, v in rnn.state_dict().items()}, **{f"head.{k}": v for k, v in head.state_dict().items()}}
    path = tmp_path / "gru.pt"
    torch.save(sd, path)
    return path, rnn.double(), head.double()


def test_a_torch_model_is_the_base_point_and_its_loss_is_torchs(gru_file, tmp_path):
    path, rnn, head = gru_file
    T, n = 12, 64
    w = rnn.weight_hh_l0[2 * 4, 0].item()  # torch's (r, z, n) rows: the candidate's first row, unit 0 -> w_h[0,0]
    s = landscape.grid(GridSpec.of(base_model=str(path), task="relay", T=(T,), n=n, fit="fixed",
                                x=Axis("w_h[0,0]", w - 0.5, w + 0.5, 3), y=Axis("b_z[1]", -1.0, 1.0, 4)),
                       out=tmp_path / "g.h5", device="cpu").surface
    assert s.spec["cell"] == "gru" and s.spec["hidden"] == 4 and s.spec["base_model"]["sha256"]
    # the middle row is the model's own w_h[0,0]; b_z[1] = the model's value is not on the axis, so
    # compare through torch at the axis values
    data = get_task("relay").make((T,), n, 0)
    x = data.inputs.to(F64)  # (T, N, 1)
    y = data.targets[T].long()
    for j, bz in enumerate(s.y):
        m = torch.nn.GRU(1, 4).double()
        m.load_state_dict(rnn.state_dict())
        with torch.no_grad():
            m.bias_ih_l0[4 + 1] = bz - m.bias_hh_l0[4 + 1]  # merged b_z[1] = b_ih + b_hh
            out, _ = m(x)
            loss = torch.nn.functional.cross_entropy(head(out[-1]), y)
        assert s.loss[0, 1, j] == pytest.approx(float(loss), rel=1e-12)


def test_a_training_run_member_gives_the_plane_centre_its_training_loss(tmp_path):
    out = tmp_path / "run.h5"
    r = CliRunner().invoke(main, ["train", "--cell", "srnn", "--T", "8", "--repeats", "2", "--n", "200", "--epochs", "2",
                                  "--protocol", "all", "--optimizer", "sgd", "--lr", "0.5", "--dtype", "float64",
                                  "--task", "latch", "--record-steps", "--out", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    from landscape.train.results import ResultStore

    arrays = ResultStore(out).arrays("srnn-T8")
    final = {k: torch.as_tensor(v[-1, 1]) for k, v in arrays["params"].items()}  # repeat 1
    # the training code's own loss at those parameters, on the run's data (data seed = seed + T = 8)
    from landscape.readouts import READOUT_KINDS
    from landscape.train.population import unroll_outputs

    data = get_task("latch").make((8,), 200, 8)
    cell = landscape.get_cell("srnn")
    p = {k: v.unsqueeze(0) for k, v in final.items()}
    h = unroll_outputs(cell, p, data.inputs.to(F64), torch.full((1, 200), 8), 1)
    expect, _ = READOUT_KINDS["dense2"].train_loss(p, h, data.targets[8].unsqueeze(0))
    for directions in ("random", "pca"):
        g = landscape.grid(GridSpec.of(base_model=f"{out}:srnn-T8:1", task="latch", T=(8,), n=200, seed=8, fit="fixed",
                                    directions=directions, x=Axis("a", -1, 1, 5), y=Axis("b", -1, 1, 3)),
                           out=tmp_path / f"{directions}.h5", device="cpu").surface
        assert g.loss[0, 2, 1] == pytest.approx(float(expect[0]), rel=1e-12), directions  # (a, b) = (0, 0)
        assert g.spec["directions"]["kind"] == directions
        with h5py.File(tmp_path / f"{directions}.h5") as f:  # the stored plane rebuilds the grid's parameters
            plane = read_plane(f["plane"])
        rebuilt = plane.grid_params(g.x, g.y)
        assert torch.allclose(rebuilt["w"][2 * 3 + 1], final["w"], rtol=0, atol=1e-15)
    # a resumed plane grid reads its plane back: identical numbers
    again = landscape.grid(GridSpec.of(base_model=f"{out}:srnn-T8:1", task="latch", T=(8,), n=200, seed=8, fit="fixed",
                                    directions="random", x=Axis("a", -1, 1, 5), y=Axis("b", -1, 1, 3)),
                           out=tmp_path / "random.h5", device="cpu", force=True).surface
    np.testing.assert_array_equal(again.loss, landscape.load(tmp_path / "random.h5").loss)


def test_the_hessian_plane_is_around_a_minimum_of_a_trained_model(gru_file, tmp_path):
    path, _, _ = gru_file
    s = landscape.grid(GridSpec.of(base_model=str(path), task="relay", T=(6,), n=64, directions="hessian",
                                x=Axis("a", -0.02, 0.02, 5), y=Axis("b", -0.02, 0.02, 5)), out=tmp_path / "h.h5",
                       device="cpu").surface
    with h5py.File(tmp_path / "h.h5") as f:
        plane = read_plane(f["plane"])
    assert plane.kind == "hessian" and plane.values is not None and plane.values[0] >= plane.values[1]
    # the second derivative along d1 at the centre is the top eigenvalue (the readout is fitted: excluded)
    c = s.loss[0]
    h = float(s.x[1] - s.x[0])
    curv = (-c[0, 2] + 16 * c[1, 2] - 30 * c[2, 2] + 16 * c[3, 2] - c[4, 2]) / (12 * h ** 2)  # O(h^4)
    assert curv == pytest.approx(float(plane.values[0]), rel=1e-4)
    curv_b = (-c[2, 0] + 16 * c[2, 1] - 30 * c[2, 2] + 16 * c[2, 3] - c[2, 4]) / (12 * h ** 2)
    assert curv_b == pytest.approx(float(plane.values[1]), rel=1e-3)


@pytest.mark.parametrize("extra,message", [
    (dict(base_model="nope.pt"), "model file 'nope.pt' not found"),
    (dict(directions="random", x=Axis("w", -1, 1, 3)), "name the axes a and b"),
    (dict(directions="random", grads=True), "--grads needs named parameter axes"),
    (dict(directions="models"), "--directions models needs two more models"),
    (dict(models=("a.pt",)), "--models names the other models"),
    (dict(directions="pca"), "--directions pca needs a training trajectory"),
])
def test_bad_model_inputs_are_one_clear_line(extra, message, tmp_path):
    spec = GridSpec.of(**{"cell": "srnn", "T": (4,), "n": 8, **extra})
    with pytest.raises(LandscapeError, match=message.replace("(", r"\(")):
        landscape.grid(spec, out=tmp_path / "x.h5", device="cpu")
    assert not (tmp_path / "x.h5").exists()


def test_a_different_cell_than_the_models_is_refused(gru_file):
    path, _, _ = gru_file
    with pytest.raises(LandscapeError, match="the base model is a gru; drop --cell lstm"):
        landscape.resolve(GridSpec.of(base_model=str(path), cell="lstm", task="relay"))
    with pytest.raises(LandscapeError, match="the base model has 4 hidden units"):
        landscape.resolve(GridSpec.of(base_model=str(path), hidden=8, task="relay"))


def test_a_models_input_weights_on_a_task_without_input_are_refused(gru_file):
    """A GRU(1, 4) has input weights; the target task has no input: never dropped silently."""
    path, _, _ = gru_file
    with pytest.raises(LandscapeError, match="it has u_h, u_r, u_z, which cell gru .* on task target"):
        landscape.resolve(GridSpec.of(base_model=str(path), task="target", n=1))


def test_a_resolved_plane_grid_does_no_io_and_loads_each_model_once(gru_file, tmp_path, monkeypatch):
    """The --base-model and every --models file are read and hashed once, at resolve time; the
    resolved grid's canonical() and key() then need none of them (the files may be gone)."""
    from landscape import basemodel

    path, _, _ = gru_file
    torch.manual_seed(1)
    other = tmp_path / "other.pt"
    rnn, head = torch.nn.GRU(1, 4), torch.nn.Linear(4, 2)
    torch.save({**{f"rnn.{k}": v for k, v in rnn.state_dict().items()},
                **{f"head.{k}": v for k, v in head.state_dict().items()}}, other)
    hashed = []
    real = basemodel.file_sha256
    monkeypatch.setattr(basemodel, "file_sha256", lambda p: hashed.append(str(p)) or real(p))
    r = landscape.resolve(GridSpec.of(base_model=str(path), task="relay", T=(4,), n=8, directions="line",
                                      models=(str(other),)))
    assert sorted(hashed) == sorted([str(path), str(other)])
    canonical, key = r.canonical(), r.key()
    path.unlink()
    other.unlink()
    assert r.canonical() == canonical and r.key() == key
    assert len(hashed) == 2
