"""landscape.gradients against independent truths: finite differences of engine.unroll_losses,
manual unrolls with torch.nn cells and retain_grad, the equations written out here, closed forms,
and the same numbers computed in pieces. All in float64."""
from __future__ import annotations

import csv
import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from landscape import engine
from landscape import gradients as G
from landscape import plan
from landscape.cli import Group
from landscape.cli.grads import command, parse_at
from landscape.readout_fit import fit_logistic_readout
from landscape.errors import LandscapeError
from landscape.resolved import resolve
from landscape.spec import Axis, GridSpec
from landscape.store import SurfaceContents, SurfaceWriter, load

CPU = torch.device("cpu")
F64 = torch.float64


def resolve_point(spec):
    """A ResolvedGrid for a single base point: placeholder axes on the first two scalar elements."""
    from dataclasses import replace

    from landscape.problem import resolve_model

    refs = [name if math.prod(shape) == 1 else f"{name}[{','.join(map(str, idx))}]"
            for name, shape in resolve_model(spec.model).shapes.items() for idx in np.ndindex(*shape)][:2]
    return resolve(replace(spec, x=Axis(refs[0], 0.0, 1.0, 2), y=Axis(refs[1], 0.0, 1.0, 2)))


def setup(cell, task, Ts, n, refs, xs, ys, **spec):
    """A resolved spec, its data and the chunk params at the points (xs[k], ys[k])."""
    r = resolve_point(GridSpec.of(cell=cell, task=task, T=Ts, n=n, **spec))
    r_refs = tuple(_ref(r, name) for name in refs)
    data = r.problem.task.make(r.Ts, r.n, r.spec.seed).to(F64, CPU)
    params = engine.chunk_params(r.problem.base, r_refs, (torch.tensor(xs, dtype=F64), torch.tensor(ys, dtype=F64)), F64, CPU)
    return r, r_refs, data, params


def _ref(r, name):
    from landscape.cells import parse_param_ref

    return parse_param_ref(name, {k: tuple(v.shape) for k, v in r.problem.base.items()}, "test")


def grid_points(xv, yv):
    """Non-square 'ij' grid flattened: x varies slowest."""
    X, Y = np.meshgrid(np.asarray(xv, float), np.asarray(yv, float), indexing="ij")
    return X.ravel().tolist(), Y.ravel().tolist()


def fd_losses(r, refs, data, params, axis, h):
    """4-point central difference of engine.unroll_losses along one axis: (nT, P)."""
    vals = list(G.axis_values(params, refs))

    def at(delta):
        v = list(vals)
        v[axis] = v[axis] + delta
        p = engine.chunk_params(r.problem.base, refs, tuple(v), F64, CPU)
        return engine.unroll_losses(r.problem, p, data, r.Ts)

    return (at(-2 * h) - 8 * at(-h) + 8 * at(h) - at(2 * h)) / (12 * h)


def fd_grad(r, refs, data, params, axis, h):
    """4-point central difference of loss_grad_hessian's gradient along one axis: (nT, P, 2)."""
    vals = list(G.axis_values(params, refs))

    def at(delta):
        v = list(vals)
        v[axis] = v[axis] + delta
        p = engine.chunk_params(r.problem.base, refs, tuple(v), F64, CPU)
        return G.loss_grad_hessian(r.problem, p, data, r.Ts, refs,
                                   hessian=False)[1]

    return (at(-2 * h) - 8 * at(-h) + 8 * at(h) - at(2 * h)) / (12 * h)


# smooth points (away from any wall), non-square point sets
CASES = {
    "pascanu-target": dict(cell="pascanu", task="target", Ts=(5, 20), n=1, refs=("w", "b"),
                           pts=grid_points([4.6, 5.3], [-2.85, -2.0, -1.95])),
    "srnn-latch-fixed": dict(cell="srnn", task="latch", Ts=(3, 12), n=40, refs=("w", "b"),
                             pts=grid_points([0.5, 1.5], [-0.3, 0.2, 0.4]), fit="fixed"),
    "srnn-latch-optimal": dict(cell="srnn", task="latch", Ts=(3, 12), n=40, refs=("w", "b"),
                               pts=grid_points([0.5, 1.5], [-0.3, 0.2, 0.4])),
    "srnn-latch-fixed-readout-axis": dict(cell="srnn", task="latch", Ts=(6,), n=30, refs=("out_w", "w"),
                                          pts=([2.0, 3.0, -1.0], [0.9, 1.2, 0.7]), fit="fixed"),
    "lstm-latch-optimal": dict(cell="lstm", task="latch", Ts=(4, 10), n=30, refs=("b_f", "w_z"),
                               pts=([0.5, 2.0, -1.0], [1.0, 0.3, 1.5])),
    "gru-two-sequence": dict(cell="gru", task="two-sequence", Ts=(6, 10), n=30, refs=("b_z", "w_h"),
                             pts=([0.0, 1.0], [1.0, 2.0]), fit="fixed"),
    "srnn-relay-H8": dict(cell="srnn", task="relay", Ts=(3, 6), n=16, refs=("w[0,1]", "b[2]"),
                          pts=([0.3, -0.5], [0.1, 0.4])),
}


def _case(name):
    c = dict(CASES[name])
    xs, ys = c.pop("pts")
    spec = {k: c.pop(k) for k in ("readout",) if k in c}
    return setup(c["cell"], c["task"], c["Ts"], c["n"], c["refs"], xs, ys, **spec)


@pytest.mark.parametrize("name", list(CASES))
def test_gradient_equals_finite_differences_of_the_engine(name):
    r, refs, data, params = _case(name)
    loss, grad, _ = G.loss_grad_hessian(r.problem, params, data, r.Ts, refs, hessian=False)
    expect = engine.unroll_losses(r.problem, params, data, r.Ts)
    assert torch.allclose(loss, expect, rtol=1e-9, atol=1e-12)
    fd = torch.stack([fd_losses(r, refs, data, params, a, 1e-5) for a in (0, 1)], -1)  # (nT, P, 2)
    err = (grad - fd).norm(dim=-1)
    assert grad.norm(dim=-1).min() > 1e-8  # a test that cannot fail is a defect
    assert (err <= 1e-5 * grad.norm(dim=-1)).all(), (err / grad.norm(dim=-1)).max()


def test_the_optimal_readout_gradient_includes_the_refit():
    """Holding the fitted readout fixed (the envelope argument) misses the term l2 out_w . d out_w/dtheta,
    which is not small where the classes separate (out_w grows); the FD check above sees the refit."""
    r, refs, data, params = _case("srnn-latch-optimal")
    _, grad, _ = G.loss_grad_hessian(r.problem, params, data, r.Ts, refs, hessian=False)
    xy = tuple(v.requires_grad_(True) for v in G.axis_values(params, refs))
    p = G.with_axis_values(params, refs, xy)
    outs, _ = G._unroll(r.problem.cell, p, data, r.Ts, len(xy[0]), r.problem.H)
    L = r.problem.readout.differentiable_loss(outs[12], data.targets[12], p, implicit=False)
    held = torch.stack(torch.autograd.grad(L.sum(), xy), -1)
    gap = (held - grad[1]).norm(dim=-1)
    assert (gap > 1e-6 * grad[1].norm(dim=-1)).all() and (gap > 0.1 * grad[1].norm(dim=-1)).any()


@pytest.mark.parametrize("method", ["autograd", "scalar"])
@pytest.mark.parametrize("implicit", [False, True])
def test_per_step_gradient_is_the_derivative_of_the_loss_along_a_state_perturbation(method, implicit):
    """<dL/dh_t, v> against a finite difference: unroll to t, add eps v to h_t, continue, and take the
    loss with the readout held at its unperturbed fit (implicit=False) or refitted (True)."""
    r, refs, data, params = setup("srnn", "latch", (10,), 20, ("w", "b"), [1.3], [0.1])
    T, t, y = 10, 4, data.targets[10]

    def unroll(perturb):
        """h_T with h_t replaced by perturb(h_t)."""
        (h,) = G._initial_state(r.problem.cell, params, data, 1, 1)
        for s in range(1, T + 1):
            (h,) = r.problem.cell.step(params, (h,), data.inputs[s - 1])
            if s == t:
                h = perturb(h)
        return h

    leaf = []
    with torch.enable_grad():
        h_T = unroll(lambda h: leaf.append(h.detach().requires_grad_(True)) or leaf[0])
        loss = r.problem.readout.differentiable_loss(h_T, y, params, implicit)
        (g,) = torch.autograd.grad(loss.sum(), leaf[0])  # (1, N, 1)
    v = torch.randn(1, 20, 1, generator=torch.Generator().manual_seed(3), dtype=F64)
    w, b = fit_logistic_readout(unroll(lambda h: h), y, 1e-4)  # the unperturbed fit

    def L(eps):
        h = unroll(lambda h: h + eps * v)
        if implicit:  # refitted at every perturbation: the engine's loss
            return float(r.problem.readout.loss(h, y, params)[0])
        return float(F.binary_cross_entropy_with_logits(h[0, :, 0] * w[0, 0] + b[0, 0], y))

    eps = 1e-5
    fd = (-L(2 * eps) + 8 * L(eps) - 8 * L(-eps) + L(-2 * eps)) / (12 * eps)
    assert float((g * v).sum()) == pytest.approx(fd, rel=1e-6)
    norms = G.grad_norms_t(r.problem, params, data, T, method=method,
                           readout_implicit=implicit)["h"]
    assert float(norms[0, t - 1]) == pytest.approx(float(g.norm()), rel=1e-10)


@pytest.mark.parametrize("name", ["pascanu-target", "srnn-latch-optimal", "lstm-latch-optimal", "srnn-relay-H8",
                                  "srnn-latch-fixed-readout-axis"])
def test_hessian_equals_finite_differences_of_the_gradient(name):
    r, refs, data, params = _case(name)
    _, grad, hess = G.loss_grad_hessian(r.problem, params, data, r.Ts, refs)
    fd = torch.stack([fd_grad(r, refs, data, params, a, 1e-4) for a in (0, 1)], -1)  # (nT, P, 2, 2)
    scale = hess.flatten(-2).norm(dim=-1)
    assert scale.min() > 1e-8
    assert ((hess - fd).flatten(-2).norm(dim=-1) <= 1e-5 * scale).all()
    assert torch.equal(hess[..., 0, 1], hess[..., 1, 0])
    eig = G.hessian_eigvals(hess)
    ref = torch.linalg.eigvalsh(hess)  # ascending
    assert torch.allclose(eig, ref, rtol=1e-10, atol=1e-12 * float(scale.max()))
    grad2, eig2 = G.grad_and_hessian(r.problem, params, data, r.Ts, refs)
    assert torch.equal(grad2, grad) and torch.equal(eig2, eig)


# ---------------------------------------------------------------------------------------------
# per-timestep norms against manual unrolls written here


def _per_step_norms(states, loss):
    for s in states:
        s.retain_grad()
    loss.backward()
    return torch.stack([s.grad.norm() for s in states])  # Frobenius over (N, H)


def test_grad_norms_srnn_H8_equal_an_nn_rnncell_unroll_with_retain_grad():
    r, refs, data, params = setup("srnn", "relay", (9,), 25, ("w[0,1]", "b[2]"), [0.3, -0.5, 1.2], [0.1, 0.4, -0.2])
    got = G.grad_norms_t(r.problem, params, data, 9)["h"]
    assert r.problem.readout.optimal and got.shape == (3, 9)
    for p in range(3):
        cell = torch.nn.RNNCell(1, 8, dtype=F64)
        with torch.no_grad():
            cell.weight_hh.copy_(params["w"][p]), cell.weight_ih.copy_(params["u"][0])
            cell.bias_ih.copy_(params["b"][p]), cell.bias_hh.zero_()
        h = torch.zeros(25, 8, dtype=F64)
        states = []
        for t in range(9):
            h = cell(data.inputs[t], h)
            states.append(h)
        y = data.targets[9]
        w, b = fit_logistic_readout(h.detach().unsqueeze(0), y, r.spec.readout_l2)  # held fixed
        loss = F.binary_cross_entropy_with_logits(h @ w[0] + b[0], y)
        expect = _per_step_norms(states, loss)
        assert torch.allclose(got[p], expect, rtol=1e-10, atol=0)


def test_grad_norms_lstm_equal_an_nn_lstmcell_unroll_for_h_and_c():
    r, refs, data, params = setup("lstm", "latch", (12,), 30, ("b_f", "w_z"), [0.5, 2.0], [1.0, -0.3],
                                  fit="fixed", set=(("out_w", 3.0), ("out_b", 0.2)))
    got = G.grad_norms_t(r.problem, params, data, 12)
    assert set(got) == {"h", "c"}
    for p in range(2):
        cell = torch.nn.LSTMCell(1, 1, dtype=F64)
        pick = lambda kind: torch.cat([params[f"{kind}_{g}"][min(p, params[f"{kind}_{g}"].shape[0] - 1)]
                                       .reshape(1, -1) for g in "ifzo"])  # torch rows (i, f, g, o)
        with torch.no_grad():
            cell.weight_hh.copy_(pick("w")), cell.weight_ih.copy_(pick("u"))
            cell.bias_ih.copy_(pick("b").reshape(-1)), cell.bias_hh.zero_()
        h = c = torch.zeros(30, 1, dtype=F64)
        hs, cs = [], []
        for t in range(12):
            h, c = cell(data.inputs[t], (h, c))
            hs.append(h), cs.append(c)
        loss = F.binary_cross_entropy_with_logits(3.0 * h[:, 0] + 0.2, data.targets[12])
        for s in hs + cs:
            s.retain_grad()
        loss.backward()
        assert torch.allclose(got["h"][p], torch.stack([s.grad.norm() for s in hs]), rtol=1e-10)
        assert torch.allclose(got["c"][p], torch.stack([s.grad.norm() for s in cs]), rtol=1e-10)


def test_grad_norms_pascanu_equal_the_chain_rule_written_out():
    w, b, T = np.array([4.7, 5.0, 5.3]), np.array([-2.3, -2.6, -2.9]), 30
    r, refs, data, params = setup("pascanu", "target", (T,), 1, ("w", "b"), w.tolist(), b.tolist())
    got = G.grad_norms_t(r.problem, params, data, T)["x"].numpy()
    sig = lambda v: 1 / (1 + np.exp(-v))
    xs = [np.full(3, 0.5)]
    for _ in range(T):
        xs.append(w * sig(xs[-1]) + b)
    g = 2 * (sig(xs[T]) - 0.7) * sig(xs[T]) * (1 - sig(xs[T]))  # dL/dx_T
    expect = np.empty((3, T))
    for t in range(T, 0, -1):
        expect[:, t - 1] = np.abs(g)
        g = g * w * sig(xs[t - 1]) * (1 - sig(xs[t - 1]))  # dx_t/dx_{t-1}
    np.testing.assert_allclose(got, expect, rtol=1e-10)


@pytest.mark.parametrize("cell,task,refs,xs,ys,spec", [
    ("srnn", "latch", ("w", "b"), [0.5, 1.5, 50.0], [-0.3, 0.2, 0.0], {}),  # w = 50 saturates: factors 0
    ("pascanu", "target", ("w", "b"), [4.6, 5.0, 5.4], [-2.85, -2.5, -1.95], {}),
    ("gru", "two-sequence", ("b_z", "w_h"), [0.0, 1.0], [1.0, 2.0], {}),  # sequences end at different t
    ("mut1", "latch", ("b_z", "w_h"), [0.0, 2.0], [1.0, 3.0], {"fit": "fixed"}),
])
def test_scalar_scheme_equals_autograd(cell, task, refs, xs, ys, spec):
    n = 1 if task == "target" else 30
    r, _, data, params = setup(cell, task, (15,), n, refs, xs, ys, **spec)
    auto = G.grad_norms_t(r.problem, params, data, 15, method="autograd")
    scal = G.grad_norms_t(r.problem, params, data, 15, method="scalar")
    k = r.problem.cell.state_names[0]
    assert auto[k].shape == scal[k].shape == (len(xs), G.grad_norm_steps(data, 15))
    assert torch.allclose(scal[k], auto[k], rtol=1e-10, atol=0)
    if cell == "srnn":
        assert (auto[k][2, :-1] == 0).all() and auto[k][2, -1] > 0  # exact zeros kept exact
    if task == "two-sequence":
        assert auto[k].shape[1] > 15


def test_scalar_scheme_refuses_cells_it_does_not_cover():
    r, _, data, params = setup("lstm", "latch", (3,), 4, ("b_f", "w_z"), [0.0], [1.0])
    with pytest.raises(LandscapeError, match="one-state cell with H = 1"):
        G.grad_norms_t(r.problem, params, data, 3, method="scalar")


# ---------------------------------------------------------------------------------------------
# chunking, non-square grids, the store


def test_results_do_not_depend_on_chunking():
    xs, ys = grid_points([0.5, 1.1], [-0.3, 0.1, 0.4])  # 2 x 3
    for cell, refs in (("srnn", ("w", "b")), ("lstm", ("b_f", "w_z"))):
        r, refs, data, params = setup(cell, "latch", (4, 9), 24, refs, xs, ys)
        whole = G.gradient_fields(r.problem, r.refs, r.Ts, params, data)
        jf = G.jacobian_factors(r.problem, params, data, 9)
        for lo, hi in ((0, 1), (1, 4), (4, 6)):
            part = {k: v[lo:hi] if v.shape[0] == len(xs) else v for k, v in params.items()}
            piece = G.gradient_fields(r.problem, r.refs, r.Ts, part, data)
            for key, arr in piece.items():
                ref = whole[key][:, lo:hi] if key in ("grad", "hessian_eigvals") else whole[key][lo:hi]
                np.testing.assert_allclose(arr, ref, rtol=1e-11, atol=1e-15)
            jp = G.jacobian_factors(r.problem, part, data, 9)
            np.testing.assert_allclose(jp.factor, jf.factor[lo:hi], rtol=1e-12)
            np.testing.assert_allclose(jp.log_product, jf.log_product[lo:hi], rtol=1e-12)


def test_gradient_fields_go_into_the_store_in_ij_order(tmp_path):
    r = resolve(GridSpec.of(cell="lstm", task="latch", T=(3, 6), n=16, x=Axis.parse("b_f:-1:2:3"),
                         y=Axis.parse("w_z:0:2:4"), grads=True))
    data = r.problem.task.make(r.Ts, r.n, 0).to(F64, CPU)
    xs, ys = torch.tensor(r.x.values()), torch.tensor(r.y.values())
    shapes = G.gradient_field_shapes(r.problem, G.grad_norm_steps(data, max(r.Ts)))
    assert shapes == {"grad": (2,), "hessian_eigvals": (2,), "grad_norm_t": ("grid", 6), "grad_norm_c_t": ("grid", 6)}
    assert plan.gradient_bytes_per_member(r.problem, r.n, r.Ts, r.torch_dtype) > 0
    w = SurfaceWriter(tmp_path / "s.h5", SurfaceContents(r.canonical(), r.Ts, r.x.name, r.x.values(), r.y.name,
                                                         r.y.values(), 5, fields=shapes))
    for c in w.missing():
        start, stop = w.chunk_range(c)
        flat = torch.arange(start, stop)
        params = engine.chunk_params(r.problem.base, r.refs, (xs[flat // 4], ys[flat % 4]), F64, CPU)
        with torch.no_grad():  # as in the grid pipeline
            loss = engine.unroll_losses(r.problem, params, data, r.Ts)
            fields = G.gradient_fields(r.problem, r.refs, r.Ts, params, data)
        assert all(v.dtype == np.float64 for v in fields.values())
        w.write_chunk(c, {"loss": loss.numpy(), **fields})
    w.finish(), w.close()
    s = load(tmp_path / "s.h5")
    assert s.fields["grad"].shape == (2, 3, 4, 2) and s.fields["grad_norm_c_t"].shape == (3, 4, 6)
    i, j = 2, 1  # one point, recomputed on its own
    params = engine.chunk_params(r.problem.base, r.refs, (xs[i:i + 1], ys[j:j + 1]), F64, CPU)
    one = G.gradient_fields(r.problem, r.refs, r.Ts, params, data)
    np.testing.assert_allclose(s.fields["grad"][:, i, j], one["grad"][:, 0], rtol=1e-12)
    np.testing.assert_allclose(s.fields["hessian_eigvals"][:, i, j], one["hessian_eigvals"][:, 0], rtol=1e-12)
    np.testing.assert_allclose(s.fields["grad_norm_t"][i, j], one["grad_norm_t"][0], rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# Jacobian factors


def lstm_step(p, h, c, x):
    """The LSTM written out: p holds (H, H) w_*, (H, 1) u_*, (H,) b_* of one member."""
    pre = {g: h @ p[f"w_{g}"].T + x @ p[f"u_{g}"].T + p[f"b_{g}"] for g in "ifzo"}
    i, f, o = (torch.sigmoid(pre[g]) for g in "ifo")
    z = torch.tanh(pre["z"])
    c = f * c + i * z
    return o * torch.tanh(c), c, {"i": i, "f": f, "z": z, "o": o}


@pytest.mark.parametrize("H", [1, 8])
def test_lstm_forget_term_plus_remainder_is_the_jacobian_of_c(H):
    T, n = 6, 5
    r = resolve_point(GridSpec.of(cell="lstm", task="latch", T=(T,), n=n, hidden=H))
    g = torch.Generator().manual_seed(1)
    params = {k: (v.unsqueeze(0) + 0.6 * torch.randn((2, *v.shape), generator=g, dtype=F64)) for k, v in r.problem.base.items()}
    data = r.problem.task.make((T,), n, 0).to(F64, CPU)
    jf = G.jacobian_factors(r.problem, params, data, T)
    assert jf.state == "c" and jf.factor.shape == (2, n, T, H, H) and jf.forget.shape == (2, n, T, H)
    for p in range(2):
        q = {k: v[p] for k, v in params.items()}
        h = c = torch.zeros(n, H, dtype=F64)
        for t in range(1, T + 1):
            x = data.inputs[t - 1]
            if t == 1:
                expect = torch.diag_embed(lstm_step(q, h, c, x)[2]["f"])  # h_0 is fixed: only diag(f)
            else:
                o_prev = gates["o"]

                def c_next(c_prev, k):  # c_t of sequence k as a function of c_{t-1}, h_{t-1} = o tanh(c)
                    return lstm_step(q, o_prev[k] * torch.tanh(c_prev), c_prev, x[k:k + 1])[1][0]

                expect = torch.stack([torch.autograd.functional.jacobian(lambda cc: c_next(cc, k), c[k:k + 1])
                                      .reshape(H, H) for k in range(n)])
            got = torch.from_numpy(jf.forget[p, :, t - 1]).diag_embed() + torch.from_numpy(jf.remainder[p, :, t - 1])
            assert torch.allclose(got, expect, rtol=1e-10, atol=1e-13)
            assert np.array_equal(jf.factor[p, :, t - 1], got.numpy())
            h, c, gates = lstm_step(q, h, c, x)
            for name in "ifzo":
                np.testing.assert_allclose(jf.gates[name][p, :, t - 1], gates[name].numpy(), rtol=1e-12)
            np.testing.assert_allclose(jf.forget[p, :, t - 1], gates["f"].numpy(), rtol=1e-12)
        assert (jf.remainder[p, :, 0] == 0).all() and np.abs(jf.remainder[p, :, 1:]).max() > 1e-3


def test_lstm_without_forget_gate_has_forget_term_one():
    r, _, data, params = setup("lstm-f", "latch", (4,), 6, ("w_z", "b_z"), [1.0], [0.5])
    jf = G.jacobian_factors(r.problem, params, data, 4)
    assert (jf.forget == 1.0).all() and "f" not in jf.gates


def test_one_unit_factors_are_the_closed_forms_and_the_product_their_running_product():
    w, b = [1.5, -2.0, 0.7], [0.1, 0.3, -0.2]
    r, _, data, params = setup("srnn", "latch", (20,), 7, ("w", "b"), w, b)
    jf = G.jacobian_factors(r.problem, params, data, 20)
    h = np.zeros((3, 7))
    W, B, x = np.array(w)[:, None], np.array(b)[:, None], data.inputs[..., 0].numpy()
    fac = []
    for t in range(20):
        h = np.tanh(W * h + x[t] + B)  # u = 1
        fac.append(W * (1 - h ** 2))
    fac = np.stack(fac, -1)  # (P, N, T)
    np.testing.assert_allclose(jf.factor[..., 0, 0], fac, rtol=1e-12)
    np.testing.assert_allclose(jf.log_product, np.cumsum(np.log(np.abs(fac)), -1), rtol=1e-12)
    np.testing.assert_array_equal(jf.product_sign, np.cumprod(np.sign(fac), -1))
    assert jf.gates == {} and jf.forget is None and jf.state == "h"


@pytest.mark.parametrize("cell,refs", [("srnn", ("w[0,1]", "b[2]")), ("gru", ("w_h[1,0]", "b_z[3]"))])
def test_H8_factors_equal_autograd_jacobians_and_the_product_norm(cell, refs):
    T, n = 12, 4
    r, refs, data, params = setup(cell, "relay", (T,), n, refs, [0.4, -0.8], [0.2, 0.5])
    g = torch.Generator().manual_seed(2)
    params = {k: v + 0.5 * torch.randn(v.shape, generator=g, dtype=F64) for k, v in params.items()}
    jf = G.jacobian_factors(r.problem, params, data, T)
    assert jf.factor.shape == (2, n, T, 8, 8) and jf.product_sign is None
    for p in range(2):
        q = {k: v[min(p, v.shape[0] - 1):][:1] for k, v in params.items()}
        h = torch.zeros(1, n, 8, dtype=F64)
        prod = np.broadcast_to(np.eye(8), (n, 8, 8))
        for t in range(T):
            x = data.inputs[t]
            J = torch.stack([torch.autograd.functional.jacobian(
                lambda s: r.problem.cell.step(q, (s.reshape(1, 1, 8),), x[k:k + 1])[0].reshape(8), h[0, k])
                for k in range(n)])
            np.testing.assert_allclose(jf.factor[p, :, t], J.numpy(), rtol=1e-10, atol=1e-14)
            prod = J.numpy() @ prod
            np.testing.assert_allclose(jf.log_product[p, :, t], np.log(np.linalg.norm(prod, 2, axis=(-2, -1))),
                                       rtol=1e-9)
            (h,) = r.problem.cell.step(q, (h,), x)
    assert set(jf.gates) == ({"z", "r", "h"} if cell == "gru" else set())


# ---------------------------------------------------------------------------------------------
# huge and infinite values are kept


def test_huge_and_infinite_gradients_are_stored_as_computed():
    """pascanu with x_0 = 0 and b = -w/2 sits exactly on its unstable fixed point 0 (no rounding):
    every factor is w/4, so dx_T/db = sum_k (w/4)^k and dx_T/dw = dx_T/db / 2 in closed form."""
    w = 1000.0
    for T, finite in ((30, True), (150, False)):
        r = resolve(GridSpec.of(cell="pascanu", task="target", T=(T,), n=1, task_options=(("x0", 0.0),),
                             x=Axis.parse("w:999:1001:3"), y=Axis.parse("b:-501:-499:3")))
        data = r.problem.task.make(r.Ts, 1, 0).to(F64, CPU)
        params = engine.chunk_params(r.problem.base, r.refs, (torch.tensor([w]), torch.tensor([-w / 2])), F64, CPU)
        with torch.no_grad():
            fields = G.gradient_fields(r.problem, r.refs, r.Ts, params, data)
        grad = fields["grad"][0, 0]
        dL_dx = 2 * (0.5 - 0.7) * 0.25
        if finite:
            J = w / 4
            dxdb = (J ** T - 1) / (J - 1)
            np.testing.assert_allclose(grad, [dL_dx * dxdb / 2, dL_dx * dxdb], rtol=1e-12)
            assert np.abs(grad).min() > 1e10
            norms = fields["grad_norm_t"][0]
            np.testing.assert_allclose(norms, abs(dL_dx) * J ** (T - np.arange(1, T + 1)), rtol=1e-12)
        else:  # (w/4)^150 overflows float64: -inf, not clipped, not NaN-ed away
            assert np.isneginf(grad).all()
            assert np.isposinf(fields["grad_norm_t"][0, 0])
            auto = G.grad_norms_t(r.problem, params, data, T, method="autograd")["x"]
            scal = G.grad_norms_t(r.problem, params, data, T, method="scalar")["x"]
            # the scalar scheme is exact up to the float64 range; autograd overflows a little
            # earlier (it forms g * w before multiplying by sigmoid')
            finite = torch.isfinite(auto)
            assert finite.any() and (~finite).any()
            assert torch.allclose(scal[finite], auto[finite], rtol=1e-10)
            assert torch.isinf(auto[torch.isinf(scal)]).all()


# ---------------------------------------------------------------------------------------------
# the CLI


def _invoke(*args):
    group = Group("landscape", commands={"grads": command})
    return CliRunner().invoke(group, ["grads", *args])


def test_cli_prints_and_writes_the_per_t_table(tmp_path):
    out = tmp_path / "g.csv"
    res = _invoke("--cell", "lstm", "--task", "latch", "--T", "20", "--n", "40", "--at", "w_z=1.2,b_f=0.3",
                  "--at", "b_f=2", "--out", str(out))
    assert res.exit_code == 0, res.output
    assert "loss at T=20" in res.output and "|dL/dc_t|" in res.output and "mean f_t" in res.output
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 * 20 and rows[0]["b_f"] == "0.3" and rows[20]["w_z"] == "1.0"
    # the table's values are the library's
    r, _, data, params = setup("lstm", "latch", (20,), 40, ("w_z", "b_f"), [1.2, 1.0], [0.3, 2.0])
    norms = G.grad_norms_t(r.problem, params, data, 20)
    assert float(rows[25]["grad_norm_c"]) == pytest.approx(float(norms["c"][1, 5]), rel=1e-12)
    loss = engine.unroll_losses(r.problem, params, data, (20,))
    assert float(rows[0]["loss_T"]) == pytest.approx(float(loss[0, 0]), rel=1e-12)


def test_cli_one_unit_and_H8():
    res = _invoke("--cell", "pascanu", "--task", "target", "--T", "30", "--at", "w=5,b=-2.6")
    assert res.exit_code == 0 and "|dL/dx_t|" in res.output and "mean |dx_t/dx_t-1|" in res.output
    res = _invoke("--cell", "srnn", "--task", "relay", "--T", "6", "--n", "20", "--at", "w[0,1]=0.5,b=0.1")
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize("args,message", [
    (("--cell", "lstm", "--at", "w_q=1"), "unknown parameter 'w_q'.*choose from: w_i, w_f"),
    (("--at", "w"), "malformed --at 'w'"),
    (("--at", "w=1,,b=2"), "malformed --at"),
    (("--at", "w=abc"), "value of w must be a number"),
    (("--at", "out_w=2"), "fitted with --readout optimal"),
    (("--T", "10000000"), r"T=10000000 needs about .* memory budget"),
    (("--T", "5,6"), "one length"),
    (("--cell", "lstm", "--method", "scalar"), "one-state cell"),
    (("--cell", "lsmt"), "unknown cell 'lsmt'"),
])
def test_cli_bad_inputs_give_one_clear_line(args, message):
    res = _invoke(*args)
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert re.search(message, lines[0]), lines[0]


def test_parse_at_keeps_element_indices_together():
    assert parse_at("w[0,1]=0.5, b=1") == (("w[0,1]", 0.5), ("b", 1.0))


@pytest.mark.parametrize("w", [0.9, 1.1])
def test_the_linear_cell_explodes_exactly_when_w_exceeds_one(w):
    """The blog's linear RNN: dh_t/dh_{t-1} = w, so ||dL_T/dh_t|| = ||dL_T/dh_T|| |w|^(T - t): it
    vanishes for |w| < 1 and explodes for |w| > 1 (docs/reference.md §6)."""
    r, _, data, params = setup("linear", "latch", (30,), 50, ("w", "b"), [w], [0.0], fit="fixed")
    norms = G.grad_norms_t(r.problem, params, data, 30)["h"][0]  # (30,)
    ratios = (norms[:-1] / norms[1:]).numpy()
    np.testing.assert_allclose(ratios, abs(w), rtol=1e-12)
    jf = G.jacobian_factors(r.problem, params, data, 30)
    np.testing.assert_array_equal(jf.factor[..., 0, 0], np.full((1, 50, 30), w))
    assert (norms[0] > norms[-1]) == (abs(w) > 1)


def test_the_irnn_passes_the_gradient_where_its_unit_is_active():
    """ReLU with identity initialisation (Le et al. 2015): the factor is w where w h + u x + b > 0,
    else 0; at w = 1 an active unit carries the gradient unchanged."""
    r, _, data, params = setup("irnn", "latch", (20,), 40, ("w", "b"), [1.0, 0.8], [0.05, 0.05], fit="fixed")
    jf = G.jacobian_factors(r.problem, params, data, 20)
    h = torch.zeros(2, 40, dtype=F64)
    for t in range(20):
        a = params["w"][:, 0, 0].view(2, 1) * h + data.inputs[t, :, 0].view(1, 40) + params["b"].view(2, 1)
        expect = torch.where(a > 0, params["w"][:, 0, 0].view(2, 1).expand(2, 40), torch.zeros(2, 40, dtype=F64))
        np.testing.assert_array_equal(jf.factor[:, :, t, 0, 0], expect.numpy())
        h = torch.relu(a)
    assert set(np.unique(jf.factor[0])) <= {0.0, 1.0} and (jf.factor[0] == 1.0).mean() > 0.5


@pytest.mark.parametrize("cell", ["lstm", "lstm-i", "lstm-o"])
def test_the_remainder_is_the_blogs_three_gate_terms(cell):
    """jacobian_factors splits dc_t/dc_{t-1} into diag(f_t) and the rest; landscape.lstm_terms splits
    the rest into the blog's three paths (through f, z, i): the two agree term by term, and
    `landscape grads` prints them."""
    from landscape.lstm_terms import lstm_jacobian_terms

    r, _, data, params = setup(cell, "latch", (12,), 20, ("w_z", "b_z"), [1.5, 0.5], [0.2, -0.3], fit="fixed")
    jf = G.jacobian_factors(r.problem, params, data, 12)
    terms = lstm_jacobian_terms(r.problem.cell, params, data, 12, 1)
    np.testing.assert_allclose(terms["through_f"] + terms["through_z"] + terms["through_i"], jf.remainder,
                               rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(terms["forget"][..., 0, 0], jf.forget[..., 0], rtol=1e-15)
    res = _invoke("--cell", cell, "--T", "12", "--n", "20", "--readout", "fixed", "--at", "w_z=1.5,b_z=0.2")
    assert res.exit_code == 0 and "|via z|" in res.output and "forget share" in res.output, res.output
