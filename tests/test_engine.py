"""The grid engine against a slow per-point loop: torch.nn modules, plain Python, scipy."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import scipy.optimize
import torch

import landscape
from landscape import Axis, GridSpec
from landscape.plan import plan_chunk
from landscape.errors import LandscapeError


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LANDSCAPE_CACHE", str(tmp_path / "cache"))


def run(spec, tmp_path, chunk_size=None, name="s.h5"):
    return landscape.grid(spec, out=tmp_path / name, chunk_size=chunk_size, progress=False, device="cpu").surface


# --------------------------------------------------------------------------------------------
# the slow truth: one grid point at a time


def bce(logit, y):
    return np.mean(np.logaddexp(0, logit) - y * logit)


def optimal_readout_loss(h, y, l2):
    """min over (a, c) of mean BCE(a h + c) + l2/2 |a|^2 by scipy, reported without the penalty."""
    h = np.atleast_2d(np.asarray(h, dtype=np.float64).T).T  # (N, H)

    def f(theta):
        z = h @ theta[:-1] + theta[-1]
        return bce(z, y) + 0.5 * l2 * np.sum(theta[:-1] ** 2)

    def g(theta):
        z = h @ theta[:-1] + theta[-1]
        e = 1 / (1 + np.exp(-z)) - y
        return np.concatenate([h.T @ e / len(y) + l2 * theta[:-1], [e.mean()]])

    def hess(theta):
        z = h @ theta[:-1] + theta[-1]
        s = 1 / (1 + np.exp(-z))
        phi = np.hstack([h, np.ones((len(y), 1))])
        return (phi.T * (s * (1 - s))) @ phi / len(y) + np.diag([l2] * h.shape[1] + [0.0])

    res = scipy.optimize.minimize(f, np.zeros(h.shape[1] + 1), jac=g, hess=hess, method="trust-exact",
                                  options={"gtol": 1e-13, "maxiter": 1000})
    theta = res.x
    return bce(h @ theta[:-1] + theta[-1], y)


def f64(values):
    """A float64 tensor (a Python list would give float32 and lose 1e-8)."""
    return torch.as_tensor(np.asarray(values, dtype=np.float64))


def task_arrays(task, Ts, n, seed=0):
    data = landscape.get_task(task).make(tuple(Ts), n, seed)
    x = None if data.inputs is None else data.inputs[..., 0].T.numpy()  # (N, T)
    return data, x


def slow_srnn(w, u, b, x, Ts, H=1, w_mat=None, u_mat=None, b_vec=None):
    """h at each T via torch.nn.RNN, one grid point: returns {T: (N, H)}."""
    rnn = torch.nn.RNN(1, H, batch_first=True).double()
    with torch.no_grad():
        rnn.weight_hh_l0.copy_(f64(w_mat if w_mat is not None else [[w]]))
        rnn.weight_ih_l0.copy_(f64(u_mat if u_mat is not None else [[u]]))
        rnn.bias_ih_l0.copy_(f64(b_vec if b_vec is not None else [b]))
        rnn.bias_hh_l0.zero_()
        out, _ = rnn(f64(x).unsqueeze(-1))  # (N, T, H)
    return {T: out[:, T - 1].numpy() for T in Ts}


def slow_lstm(params, x, Ts):
    """h at each T via torch.nn.LSTM (H = 1), our parameter names."""
    lstm = torch.nn.LSTM(1, 1, batch_first=True).double()
    with torch.no_grad():
        lstm.weight_hh_l0.copy_(f64([[params[f"w_{g}"]] for g in "ifzo"]))
        lstm.weight_ih_l0.copy_(f64([[params[f"u_{g}"]] for g in "ifzo"]))
        lstm.bias_ih_l0.copy_(f64([params[f"b_{g}"] for g in "ifzo"]))
        lstm.bias_hh_l0.zero_()
        out, _ = lstm(f64(x).unsqueeze(-1))
    return {T: out[:, T - 1].numpy() for T in Ts}


def slow_pascanu_target(w, b, T, x0=0.5, target=0.7):
    x = x0
    for _ in range(T):
        x = w / (1 + math.exp(-x)) + b
    return (1 / (1 + math.exp(-x)) - target) ** 2


# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("nx,ny", [(3, 7), (7, 3)])
@pytest.mark.parametrize("chunk", [1, 7, None])
def test_srnn_latch_fixed_readout_equals_per_point_loop(tmp_path, nx, ny, chunk):
    Ts = (1, 4, 9)
    spec = GridSpec.of(cell="srnn", task="latch", T=Ts, n=40, fit="fixed",
                    x=Axis("w", -1.0, 3.0, nx), y=Axis("b", -1.0, 0.5, ny), set=(("u", 0.7), ("out_w", 3.0),
                                                                              ("out_b", 0.2)))
    s = run(spec, tmp_path, chunk)
    assert s.loss.shape == (3, nx, ny)
    data, x = task_arrays("latch", Ts, 40)
    y = data.targets[1].numpy()
    for i, w in enumerate(s.x):
        for j, b in enumerate(s.y):
            hs = slow_srnn(w, 0.7, b, x, Ts)
            for k, T in enumerate(Ts):
                assert s.loss[k, i, j] == pytest.approx(bce(3.0 * hs[T][:, 0] + 0.2, y), rel=1e-9, abs=1e-12)


def test_optimal_readout_equals_scipy_per_point(tmp_path):
    Ts = (2, 6)
    spec = GridSpec.of(cell="srnn", task="latch", T=Ts, n=60, fit="optimal", readout_l2=1e-3,
                    x=Axis("w", -0.5, 2.5, 3), y=Axis("b", -0.6, 0.6, 4))
    s = run(spec, tmp_path, 5)
    data, x = task_arrays("latch", Ts, 60)
    y = data.targets[2].numpy()
    for i, w in enumerate(s.x):
        for j, b in enumerate(s.y):
            hs = slow_srnn(w, 1.0, b, x, Ts)
            for k, T in enumerate(Ts):
                # Both solvers reach the penalised optimum to 1e-16, which pins out_w only to ~1e-8
                # (the objective is flat there); the reported data loss is not stationary (slope
                # -l2 * out_w), so it is determined to ~1e-10 absolute: compare at 1e-9.
                assert s.loss[k, i, j] == pytest.approx(optimal_readout_loss(hs[T], y, 1e-3), rel=0, abs=1e-9)


@pytest.mark.parametrize("chunk", [1, 7, None])
def test_pascanu_target_equals_python_loop(tmp_path, chunk):
    Ts = (1, 3, 20)
    spec = GridSpec.of(cell="pascanu", task="target", T=Ts, n=1, x=Axis("w", 4.5, 5.5, 7), y=Axis("b", -2.9, -1.9, 3))
    s = run(spec, tmp_path, chunk)
    for i, w in enumerate(s.x):
        for j, b in enumerate(s.y):
            for k, T in enumerate(Ts):
                assert s.loss[k, i, j] == pytest.approx(slow_pascanu_target(w, b, T), rel=1e-12, abs=1e-15)


def test_lstm_latch_equals_torch_lstm(tmp_path):
    Ts = (3, 8)
    spec = GridSpec.of(cell="lstm", task="latch", T=Ts, n=30, fit="fixed",
                    x=Axis("b_f", -2.0, 3.0, 3), y=Axis("w_z", -1.0, 2.0, 7), set=(("u_i", 0.5), ("b_o", 0.3)))
    s = run(spec, tmp_path, 4)
    data, x = task_arrays("latch", Ts, 30)
    y = data.targets[3].numpy()
    base = {n: float(v.reshape(-1)[0]) for n, v in landscape.resolve(spec).problem.base.items()}
    for i, bf in enumerate(s.x):
        for j, wz in enumerate(s.y):
            hs = slow_lstm({**base, "b_f": bf, "w_z": wz}, x, Ts)
            for k, T in enumerate(Ts):
                expect = bce(base["out_w"] * hs[T][:, 0] + base["out_b"], y)
                assert s.loss[k, i, j] == pytest.approx(expect, rel=1e-9, abs=1e-12)


def test_matrix_elements_on_axes_for_H_3(tmp_path):
    """Axes on elements of matrices (w[0,1], u[2,0]) for an 8-unit-style cell, relay task."""
    Ts = (2, 5)
    spec = GridSpec.of(cell="srnn", task="relay", hidden=3, T=Ts, n=16, fit="fixed",
                    x=Axis("w[0,1]", -1.0, 1.0, 3), y=Axis("u[2,0]", 0.0, 2.0, 4), set=(("w", 0.5), ("out_w", 2.0)))
    s = run(spec, tmp_path, 5)
    assert (s.x_name, s.y_name) == ("w[0,1]", "u[2,0]")
    data, x = task_arrays("relay", Ts, 16)
    y = data.targets[2].numpy()
    for i, a in enumerate(s.x):
        for j, c in enumerate(s.y):
            w = np.full((3, 3), 0.5)
            w[0, 1] = a
            u = np.ones((3, 1))
            u[2, 0] = c
            hs = slow_srnn(None, None, None, x, Ts, H=3, w_mat=w, u_mat=u, b_vec=np.zeros(3))
            for k, T in enumerate(Ts):
                assert s.loss[k, i, j] == pytest.approx(bce(hs[T] @ np.full(3, 2.0), y), rel=1e-9)


def test_two_sequence_variable_lengths_read_each_sequence_at_its_end(tmp_path):
    Ts = (5, 20)
    spec = GridSpec.of(cell="srnn", task="two-sequence", T=Ts, n=24, fit="fixed",
                    x=Axis("w", 0.5, 1.5, 3), y=Axis("b", -0.2, 0.2, 2))
    s = run(spec, tmp_path)
    data = landscape.get_task("two-sequence").make(Ts, 24, 0)
    assert len(set(data.ends[20].tolist())) > 1  # lengths really vary
    x = data.inputs[..., 0].T.numpy()
    for i, w in enumerate(s.x):
        for j, b in enumerate(s.y):
            h_all = slow_srnn(w, 1.0, b, x, range(1, data.steps + 1))
            for k, T in enumerate(Ts):
                h_end = np.array([h_all[int(e)][n, 0] for n, e in enumerate(data.ends[T])])
                assert s.loss[k, i, j] == pytest.approx(bce(4.0 * h_end, data.targets[T].numpy()), rel=1e-9)


def test_each_T_equals_a_separate_run(tmp_path):
    together = run(GridSpec.of(cell="gru", task="latch", T=(1, 3, 12), n=50, x=Axis("w_h", 0.0, 2.0, 4),
                            y=Axis("b_z", -0.5, 0.5, 5)), tmp_path, name="a.h5")
    for k, T in enumerate((1, 3, 12)):
        alone = run(GridSpec.of(cell="gru", task="latch", T=(T,), n=50, x=Axis("w_h", 0.0, 2.0, 4),
                             y=Axis("b_z", -0.5, 0.5, 5)), tmp_path, name=f"t{T}.h5")
        np.testing.assert_allclose(together.loss[k], alone.loss[0], rtol=1e-12, atol=0)


def test_float32_close_to_float64(tmp_path):
    kw = dict(cell="pascanu", task="target", T=(5, 30), n=1, x=Axis("w", 4.5, 5.5, 9), y=Axis("b", -2.9, -1.9, 6))
    a = run(GridSpec.of(**kw), tmp_path, name="64.h5")
    b = run(GridSpec.of(**kw, dtype="float32"), tmp_path, name="32.h5")
    np.testing.assert_allclose(b.loss, a.loss, rtol=1e-4, atol=1e-6)


def test_set_and_base_file_change_the_base_point(tmp_path):
    import h5py

    with h5py.File(tmp_path / "base.h5", "w") as f:
        f.create_dataset("params/u", data=np.array([[0.3]]))
        f.create_dataset("params/out_b", data=np.array([0.1]))
    kw = dict(cell="srnn", task="latch", T=(4,), n=20, fit="fixed", x=Axis("w", 0, 1, 2), y=Axis("b", 0, 1, 2))
    from_file = landscape.resolve(GridSpec.of(**kw, base_file=str(tmp_path / "base.h5"))).problem.base
    from_set = landscape.resolve(GridSpec.of(**kw, set=(("u", 0.3), ("out_b", 0.1)))).problem.base
    for name in from_set:
        assert torch.equal(from_file[name], from_set[name])
    assert float(from_set["u"]) == 0.3


def test_resolve_model_owns_the_readout_fit():
    """auto is optimal on a task with classes and fixed on one whose loss is on the state; an unknown
    fit is one line naming the choices, not a silently fixed readout."""
    from landscape import ModelSpec, resolve_model

    assert resolve_model(ModelSpec(task="latch"), fit="auto").readout.fit == "optimal"
    assert resolve_model(ModelSpec(cell="pascanu", task="target"), fit="auto").readout.fit == "fixed"
    with pytest.raises(LandscapeError) as err:
        resolve_model(ModelSpec(task="latch"), fit="bogus")
    assert str(err.value) == "unknown readout fit 'bogus'; choose from: auto, fixed, optimal"
    with pytest.raises(LandscapeError, match="unknown readout fit 'bogus'"):
        landscape.resolve(GridSpec.of(cell="srnn", T=(4,), fit="bogus"))


def test_plan_chunk_refuses_a_point_over_budget_and_gives_the_size():
    with pytest.raises(LandscapeError, match=r"needs about 1\.0 MiB but the memory budget is 1\.0 KiB"):
        plan_chunk(100, 1 << 20, 1024)
    assert plan_chunk(100, 10, 55) == 5
    assert plan_chunk(3, 10, 10_000) == 3


@pytest.mark.parametrize("cell,names", [("srnn", ("w", "b")), ("lstm", ("w_z", "b_z")), ("gru", ("w_h", "b_h")),
                                        ("mut2", ("w_h", "b_h"))])
def test_block_axes_name_each_cells_block_input(cell, names):
    """--x block_w --y block_b put every cell on its declared block-input plane: the same spec (key)
    as naming the parameters."""
    alias = landscape.resolve(GridSpec.of(cell=cell, T=(5,), n=8, x="block_w:-1:5:4", y="block_b:-1.5:1.5:3"))
    named = landscape.resolve(GridSpec.of(cell=cell, T=(5,), n=8, x=f"{names[0]}:-1:5:4", y=f"{names[1]}:-1.5:1.5:3"))
    assert (alias.x.name, alias.y.name) == names and alias.key() == named.key()
    with pytest.raises(LandscapeError, match="declares no block_input"):
        landscape.resolve(GridSpec.of(cell=str(Path(__file__).parent / "no_block_cell.py") + ":NoBlock", T=(5,), n=8,
                                   x="block_w:0:1:2", y="b:0:1:2"))
