"""`landscape fixedpoints` on a small trained torch GRU. Truths: find_fixed_points called directly
with the same model, sequences and options (the command adds nothing but the batching over
inputs); torch.nn.GRUCell itself (each reported point maps to itself under torch's own cell at
that input, and its eigenvalue moduli are those of torch.autograd's Jacobian of that map); the
CSV holds the HDF5's numbers; bad inputs are one line, exit 2, and write nothing."""
from __future__ import annotations

import csv

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from landscape.cli import main
from landscape.cells import get_cell
from landscape.fixedpoints import FixedPointOptions, find_fixed_points, visited_states
from landscape.store.fixedpoints import read_fixed_point_file
from landscape.tasks import get_task
from landscape.torch_models import load_torch_model

H, T_TRAIN = 3, 6
SMALL = ["--task", "relay", "--starts", "64", "--T", "12", "--n", "40", "--seed", "3"]


@pytest.fixture(scope="module")
def gru_pt(tmp_path_factory):
    """A torch GRU(1, 3) + Linear(3, 2) trained (300 Adam steps) on relay sequences of T = 6 (on one
    CPU thread, as the command runs)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # what every `landscape` command sets (--threads 1)
    torch.manual_seed(0)
    rnn, head = torch.nn.GRU(1, H), torch.nn.Linear(H, 2)
    data = get_task("relay").make((T_TRAIN,), 256, 0)
    x, y = data.inputs.float(), data.targets[T_TRAIN].long()
    opt = torch.optim.Adam([*rnn.parameters(), *head.parameters()], lr=0.03)
    for _ in range(300):
        opt.zero_grad()
        out, _ = rnn(x)
        loss = torch.nn.functional.cross_entropy(head(out[-1]), y)
        loss.backward()
        opt.step()
    torch.set_num_threads(threads)
    acc = float((head(rnn(x)[0][-1]).argmax(-1) == y).float().mean())
    assert acc > 0.95, acc  # it learned the relay at T = 6
    path = tmp_path_factory.mktemp("fp") / "gru.pt"
    torch.save({**{f"rnn.{k}": v for k, v in rnn.state_dict().items()},
                **{f"head.{k}": v for k, v in head.state_dict().items()}}, path)
    return path, rnn.double()


def run_cli(*args):
    return CliRunner().invoke(main, ["fixedpoints", *map(str, args)])


def direct(path, inputs):
    """find_fixed_points as a user would call it on this model: the same options the command makes."""
    model = load_torch_model(path)
    cell = get_cell(model.cell, **dict(model.cell_options))
    params = {k: v for k, v in model.params.items() if k in cell.param_shapes(H, 1)}
    data = get_task("relay").make((12,), 40, 3)
    tr = visited_states(cell, {k: v.unsqueeze(0) for k, v in params.items()}, data.inputs.double())
    I = len(inputs)
    pop = {k: v.unsqueeze(0).expand(I, *v.shape) for k, v in params.items()}
    x = torch.tensor(inputs, dtype=torch.float64).view(I, 1)
    return find_fixed_points(cell, pop, x=x, trajectories=tr, options=FixedPointOptions(n_visited=32, n_random=32, seed=3))


def test_the_command_equals_find_fixed_points_and_torchs_own_cell(gru_pt, tmp_path):
    path, rnn = gru_pt
    out = tmp_path / "fp.h5"
    r = run_cli("--base-model", path, *SMALL, "--input=-1,0,1", "--out", out)
    assert r.exit_code == 0, r.output
    truth = direct(path, [-1.0, 0.0, 1.0])
    with h5py.File(out) as f:
        np.testing.assert_array_equal(f["x"][()], [-1.0, 0.0, 1.0])
        np.testing.assert_array_equal(f["count"][()], truth.count)
        np.testing.assert_array_equal(f["kind"][()], truth.kind)
        np.testing.assert_array_equal(f["points"][()], truth.points)
        np.testing.assert_array_equal(f["residual"][()], truth.residual)
        np.testing.assert_array_equal(f["eigenvalues_real"][()] + 1j * f["eigenvalues_imag"][()], truth.eigenvalues)
        np.testing.assert_array_equal(f["stable"][()], truth.stable)
        points, count, ev_abs = f["points"][()], f["count"][()], f["eigenvalues_abs"][()]
        stability = f["stability"].asstr()[()]
        assert f.attrs["cell"] == "gru" and f.attrs["format"] == "landscape-fixedpoints"
    assert count.min() >= 1
    # torch's own GRUCell: F(h) = h at every point, and the Jacobian's eigenvalue moduli
    cell = torch.nn.GRUCell(1, H).double()
    cell.load_state_dict({k.replace("_l0", ""): v for k, v in rnn.state_dict().items()})
    for i, xv in enumerate([-1.0, 0.0, 1.0]):
        xin = torch.tensor([[xv]], dtype=torch.float64)
        for k in range(count[i]):
            h = torch.tensor(points[i, k], dtype=torch.float64).view(1, H)
            with torch.no_grad():
                assert float((cell(xin, h) - h).abs().max()) < 1e-9
            J = torch.autograd.functional.jacobian(lambda s: cell(xin, s.view(1, H)).view(H), h.view(H))
            moduli = np.sort(np.abs(np.linalg.eigvals(J.numpy())))[::-1]
            np.testing.assert_allclose(ev_abs[i, k], moduli, rtol=1e-8, atol=1e-12)
            rho = moduli[0]
            assert stability[i, k] == ("stable" if rho < 1 - 1e-6 else "unstable" if rho > 1 + 1e-6 else "marginal")
    # the printed table: one line per point, one summary line per input
    lines = r.output.splitlines()
    assert sum(1 for line in lines if " fixed " in f" {line} " and "stable" in line and "x =" not in line) == count.sum()
    for xv in ("-1", "0", "+1"):
        assert any(line.strip().startswith(f"x = {xv}: ") for line in lines), r.output


def test_csv_holds_the_same_points_and_plot_is_written(gru_pt, tmp_path):
    path, _ = gru_pt
    r = run_cli("--base-model", path, *SMALL, "--input", "-1,1", "--out", tmp_path / "fp.csv",
                "--plot", tmp_path / "fp.png")
    assert r.exit_code == 0, r.output
    truth = direct(path, [-1.0, 1.0])
    with open(tmp_path / "fp.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == int(truth.count.sum())
    for i, xv in enumerate([-1.0, 1.0]):
        mine = [r for r in rows if float(r["input"]) == xv]
        m = truth.member(i)
        assert len(mine) == len(m.points)
        for k, row in enumerate(mine):
            np.testing.assert_array_equal([float(row[f"h[{j}]"]) for j in range(H)], m.points[k])
            ev = [complex(float(row[f"re_eig_{j}"]), float(row[f"im_eig_{j}"])) for j in range(H)]
            np.testing.assert_array_equal(ev, m.eigenvalues[k])
            assert float(row["residual"]) == m.residual[k] and row["kind"] == m.kind[k]
    png = (tmp_path / "fp.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


BAD = [
    (["--input", "abc"], "--input abc: 'abc' is not a number"),
    (["--input", "1,,2"], "'' is not a number"),
    (["--input", "1,inf"], "'inf' is not finite"),
    (["--input", "1,1"], "a value is given twice"),
    (["--starts", "1"], "--starts must be an integer >= 2"),
    (["--n", "0"], "--n must be >= 1 sequence"),
    (["--T", "0"], "T must be positive integers; got 0"),
    (["--bound", "-1"], "--bound must be a positive number"),
    (["--out", "fp.txt"], "--out fp.txt: give a file ending in .csv, .h5, .hdf5"),
    (["--plot", "fp.jpg"], "--plot fp.jpg: give a file ending in .png, .pdf, .svg"),
    (["--cell", "lstm"], "the base model is a gru; drop --cell lstm"),
    (["--hidden", "8"], "the base model has 3 hidden units; drop --hidden 8"),
    (["--task", "target"], "which cell gru (H=3, D=0) on task target (input size 0) does not"),
    (["--starts", "many"], "'many' is not a valid integer"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_clear_line_and_writes_nothing(gru_pt, tmp_path, monkeypatch, args, message):
    path, _ = gru_pt
    monkeypatch.chdir(tmp_path)
    r = run_cli("--base-model", path, "--task", "relay", *args, "--out", tmp_path / "never.h5") \
        if "--out" not in args else run_cli("--base-model", path, "--task", "relay", *args)
    assert r.exit_code == 2, r.output
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.output
    assert message in lines[0], lines[0]
    assert list(tmp_path.iterdir()) == []


GHOST = ["--cell", "gru", "--task", "relay", "-H", "1", "--set", "w_z=2.5", "--set", "w_h=0.5", "--set", "u_h=1",
         *[a for name in ("w_r", "u_z", "u_r", "b_z", "b_r", "b_h", "b_hn") for a in ("--set", f"{name}=0")],
         "--input=0", "--steps", "0", "--starts", "64", "--n", "40"]


def test_points_at_the_bound_are_listed_apart_and_the_default_bound_is_what_the_help_says(tmp_path):
    """A GRU whose update gate rounds to 1 far out (tests/test_fixedpoints.py::saturating_gru):
    with --bound 8 the search reaches |h| = 8, where F(h) - h ~ 1e-8; that point is 'at bound',
    counted on its own line and stored as kind 3, never as a slow point. By default the bound is
    4 x the largest |h| visited (under 1 here: 4)."""
    out = tmp_path / "fp.h5"
    r = run_cli(*GHOST, "--bound", "8", "--out", out)
    assert r.exit_code == 0, r.output
    rows = [line.split() for line in r.output.splitlines() if line.strip().startswith("0 ")]
    assert [row[2:4] for row in rows] == [["fixed", "stable"], ["at", "bound"]]
    assert "1 fixed (1 stable, 0 unstable, 0 marginal), 0 slow" in r.output
    assert "1 at the search bound |s| = 8 (" in r.output
    fp = read_fixed_point_file(out)
    assert fp.data["kind"].tolist() == [[1, 3]] and fp.data["bound"].tolist() == [8.0]
    r = run_cli(*GHOST)
    assert r.exit_code == 0 and "at bound" not in r.output and "0 slow" in r.output, r.output
    assert "4 x the largest |state| the sequences visit" in " ".join(run_cli("--help").output.split())


def test_models_without_a_file_and_without_input(tmp_path):
    r = run_cli("--base-model", tmp_path / "nope.pt")
    assert r.exit_code == 2 and "model file" in r.output and "not found" in r.output
    # a cell without input (pascanu on target): no --input, and the one-unit map's three points
    r = run_cli("--cell", "pascanu", "--task", "target", "--set", "w=5", "--set", "b=-2.5", "--starts", "64",
                "--T", "5", "--n", "1")
    assert r.exit_code == 0, r.output
    assert "no input: 3 fixed (2 stable, 1 unstable, 0 marginal)" in r.output
    r = run_cli("--cell", "pascanu", "--task", "target", "--input", "1")
    assert r.exit_code == 2 and "this model has no input (input size 0); drop --input" in r.output


@pytest.mark.parametrize("w", [2.0, -2.0])
def test_simulated_attractors_are_the_closed_form_ones(tmp_path, w):
    """One-unit srnn h -> tanh(w h) at x = 0: w = 2 has the stable fixed points +-h* with
    h* = tanh(2 h*) (and 0 unstable); w = -2 has no stable fixed point but the 2-cycle -h*, +h*
    (h* the same root: tanh(-2 h*) = -h*); every visited start settles on them."""
    from scipy.optimize import brentq

    hstar = brentq(lambda h: np.tanh(2 * h) - h, 0.5, 1.0)
    out = tmp_path / "a.h5"
    r = run_cli("--cell", "srnn", "--task", "latch", "--set", f"w={w}", "--set", "b=0", "--set", "u=1",
                "--input=0", "--starts", "64", "--T", "10", "--n", "20", "--out", out)
    assert r.exit_code == 0, r.output
    with h5py.File(out) as f:
        pts, stab = f["points"][0, :f["count"][0], 0], f["stability"].asstr()[0, :f["count"][0]]
        fixed, cycles, kind = f["attractors/fixed"][0], f["attractors/cycles"][0], f["attractors/kind"].asstr()[0]
    if w > 0:
        np.testing.assert_allclose(np.sort(pts), [-hstar, 0.0, hstar], atol=1e-10)
        assert list(stab[np.argsort(pts)]) == ["stable", "unstable", "stable"]
        assert set(kind) == {"fixed"}
        np.testing.assert_allclose(np.sort(fixed[:, 0]), [-hstar, hstar], atol=1e-8)
        assert np.isnan(cycles).all()
    else:
        np.testing.assert_allclose(pts, [0.0], atol=1e-12)
        assert list(stab) == ["unstable"]
        assert set(kind) == {"period-2"} and np.isnan(fixed).all()
        assert cycles.shape[0] == 1
        np.testing.assert_allclose(cycles[0, :, 0], [-hstar, hstar], atol=1e-8)
    assert "run 1000 steps from 32 visited states" in r.output


@pytest.mark.parametrize("with_input", [True, False])
def test_the_file_opens_in_xarray_with_every_dimension_named(gru_pt, tmp_path, with_input):
    import warnings

    xr = pytest.importorskip("xarray")
    pytest.importorskip("h5netcdf")
    out = tmp_path / "fp.h5"
    if with_input:
        r = run_cli("--base-model", gru_pt[0], *SMALL, "--input=-1,0,1", "--out", out)
    else:  # pascanu on target: no input, x is (1,) NaN
        r = run_cli("--cell", "pascanu", "--task", "target", "--set", "w=5", "--set", "b=-2.5", "--starts", "64",
                    "--T", "5", "--n", "1", "--out", out)
    assert r.exit_code == 0, r.output
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = xr.open_dataset(out, engine="h5netcdf").load()
        att = xr.open_dataset(out, engine="h5netcdf", group="attractors").load()
    assert ds["points"].dims == ("x", "point", "state") and ds["eigenvalues_abs"].dims == ("x", "point", "mode")
    assert ds["trajectories"].dims == ("t", "sequence", "state") and ds["count"].dims == ("x",)
    assert att["ends"].dims == ("x", "start", "state") and att["cycles"].dims == ("x", "cycle", "phase", "state")
    with h5py.File(out) as f:  # the same numbers as plain h5py reads
        for name in ("points", "residual", "eigenvalues_abs", "count", "trajectories"):
            np.testing.assert_array_equal(ds[name].values, f[name][()])
        np.testing.assert_array_equal(ds["x"].values, f["x"][()])
        np.testing.assert_array_equal(ds["t"].values, np.arange(1, f["trajectories"].shape[0] + 1))
