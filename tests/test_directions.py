"""Directions and planes. Truths: torch.autograd.functional.hessian + torch.linalg.eigh of a
one-member closure (for the batched exact Hessian and for Lanczos), engine.chunk_params (the
named-axis grid), numpy eigh of the covariance of a synthetic trajectory built in a known plane,
and the models a plane was built through."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from torch.testing import assert_close

from landscape import engine
from landscape.cells import get_cell
from landscape.directions import (EXACT_HESSIAN_MAX, EXACT_HESSIAN_MAX_BATCHED, Plane, axes_plane, flatten,
                                  hessian_plane, hessian_top, layout, models_line, models_plane,
                                  normalize_direction, pca_plane, random_plane, read_plane, task_loss,
                                  write_plane)
from landscape.errors import LandscapeError
from landscape.model import ModelSpec
from landscape.problem import resolve_model
from landscape.readouts import READOUT_KINDS

DT = torch.float64


def model(cell_name, H, D=1, seed=0, readout=True, scale=1.0, **options):
    cell = get_cell(cell_name, **options)
    g = torch.Generator().manual_seed(seed)
    p = {k: scale * torch.randn(s, dtype=DT, generator=g) for k, s in cell.param_shapes(H, D).items()}
    if readout:
        p["out_w"] = torch.randn(H, dtype=DT, generator=g)
        p["out_b"] = torch.randn(1, dtype=DT, generator=g)
    return cell, p


def problem(cell_name, task, H, fit="fixed"):
    return resolve_model(ModelSpec(cell=cell_name, task=task, hidden=H), fit=fit)


def one_member(batched_loss):
    return lambda q: batched_loss({k: v.unsqueeze(0) for k, v in q.items()})[0]


def truth_eig(loss1, params, exclude=()):
    """hessian + eigh over the moving parameters, independently of the module."""
    names, shapes = layout(params)
    keep = [k for k in names if k not in exclude]
    x0 = torch.cat([params[k].reshape(-1) for k in keep])
    sizes = [params[k].numel() for k in keep]

    def f(x):
        parts = dict(zip(keep, torch.split(x, sizes)))
        return loss1({k: parts[k].reshape(params[k].shape) if k in parts else params[k] for k in names})

    Hm = torch.autograd.functional.hessian(f, x0)
    return torch.linalg.eigh(0.5 * (Hm + Hm.T))


def same_up_to_sign(a, b, atol):
    s = torch.sign((a * b).sum(-1, keepdim=True))
    assert_close(a * s, b, rtol=0, atol=atol)


@pytest.mark.parametrize("cell_name,task,H,T", [("srnn", "latch", 1, 20), ("lstm", "latch", 1, 15),
                                                ("gru", "relay", 2, 8), ("pascanu", "target", 1, 10)])
def test_exact_hessian_eigenvectors_equal_hessian_plus_eigh(cell_name, task, H, T):
    D = 0 if task == "target" else 1
    cell, p = model(cell_name, H, D, seed=1, readout=task != "target")
    L = task_loss(problem(cell_name, task, H), T, n=1 if task == "target" else 64)
    vals, vecs = truth_eig(one_member(L), p)
    order = torch.argsort(vals, descending=True)[:2]
    plane = hessian_plane(L, p, batched=True)
    assert dict(plane.info)["method"] == "exact"
    assert_close(plane.values, vals[order], rtol=1e-10, atol=1e-12)
    same_up_to_sign(torch.stack([plane.d1, plane.d2]), vecs[:, order].T, atol=1e-9)
    # the one-member closure gives the same
    top = hessian_top(one_member(L), p, method="exact")
    assert_close(top.values, plane.values, rtol=1e-10, atol=1e-12)


def test_hessian_excludes_parameters_and_orders_by_magnitude():
    cell, p = model("srnn", 2, seed=3, scale=1.5)
    L = task_loss(problem(cell.name, "latch", 2), 12, n=64)
    vals, vecs = truth_eig(one_member(L), p, exclude=("out_w", "out_b"))
    plane = hessian_plane(L, p, which="magnitude", exclude=("out_w", "out_b"), batched=True)
    order = torch.argsort(vals.abs(), descending=True)[:2]
    assert_close(plane.values, vals[order], rtol=1e-10, atol=1e-12)
    d1, d2 = plane.directions()
    assert float(d1["out_w"].abs().max()) == 0.0 and float(d2["out_b"].abs().max()) == 0.0
    m = flatten(p, *layout(p)).numel() - 3
    same_up_to_sign(torch.stack([plane.d1, plane.d2])[:, :m], vecs[:, order].T, atol=1e-9)


@pytest.mark.parametrize("H,which", [(3, "algebraic"), (8, "magnitude")])  # H = 8: lambda_2 < 0
def test_lanczos_agrees_with_exact(which, H):
    cell, p = model("gru", H, seed=H, scale=1.2)
    L = task_loss(problem(cell.name, "relay", H), 8, n=64)
    m = sum(v.numel() for v in p.values())
    exact = hessian_top(L, p, which=which, method="exact", batched=True)
    lanczos = hessian_top(L, p, which=which, method="lanczos", batched=True)
    assert lanczos.method == "lanczos" and exact.products == m and lanczos.products < m
    assert_close(lanczos.values, exact.values, rtol=1e-9, atol=1e-11)
    same_up_to_sign(lanczos.vectors, exact.vectors, atol=1e-6)
    assert hessian_top(L, p, which=which, batched=True).method == ("exact" if m <= EXACT_HESSIAN_MAX_BATCHED
                                                                   else "lanczos")
    one = hessian_top(one_member(L), p, which=which)
    assert one.method == ("exact" if m <= EXACT_HESSIAN_MAX else "lanczos")


@pytest.mark.parametrize("cell_name,H,x,y", [("srnn", 1, "w", "b"), ("lstm", 1, "b_f", "w_z"),
                                             ("gru", 3, "w_h[0,1]", "b_z[2]")])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_axes_plane_reproduces_the_named_axis_grid(cell_name, H, x, y, dtype):
    cell = get_cell(cell_name)
    base = {**cell.default_params(H, 1), **READOUT_KINDS["logistic"].base(H)}
    base["b" if cell_name == "srnn" else "b_z"] = torch.full((H,), 0.3, dtype=DT)  # axis not at 0
    shapes = {k: tuple(v.shape) for k, v in base.items()}
    from landscape.cells import parse_param_ref

    refs = (parse_param_ref(x, shapes, "t"), parse_param_ref(y, shapes, "t"))
    xs, ys = torch.linspace(-1.7, 2.3, 7, dtype=DT), torch.linspace(-3.1, 0.9, 5, dtype=DT)  # non-square
    i, j = torch.meshgrid(torch.arange(7), torch.arange(5), indexing="ij")
    want = engine.chunk_params(base, refs, (xs[i.reshape(-1)], ys[j.reshape(-1)]), dtype, torch.device("cpu"))
    got = axes_plane(base, x, y).grid_params(xs, ys, dtype=dtype)
    assert got.keys() == want.keys()
    for k in want:
        assert got[k].dtype == dtype and torch.equal(got[k], want[k].expand_as(got[k])), k
    centred = axes_plane(base, x, y, centred=True)  # coordinates are offsets from the base point
    at0 = centred.params_at(torch.zeros(1), torch.zeros(1))
    for k in base:
        assert torch.equal(at0[k][0], base[k])


def test_pca_recovers_a_known_plane():
    cell, p = model("gru", 4, seed=5)
    names, shapes = layout(p)
    origin = flatten(p, names, shapes)
    n = origin.numel()
    g = torch.Generator().manual_seed(0)
    U, _ = torch.linalg.qr(torch.randn(n, 2, dtype=DT, generator=g))  # (n, 2) orthonormal
    c = torch.cumsum(torch.randn(40, 2, dtype=DT, generator=g) * torch.tensor([1.0, 0.3], dtype=DT), 0)
    c = c - c[-1]  # the last point is the model
    pts = origin + c @ U.T  # (S, n)
    traj = {k: v for k, v in zip(names, [t for t in torch.split(pts, [s.numel() for s in p.values()], -1)])}
    traj = {k: v.reshape(40, *p[k].shape) for k, v in traj.items()}
    plane = pca_plane(traj)
    D = torch.stack([plane.d1, plane.d2])
    assert_close(D @ D.T, torch.eye(2, dtype=DT), rtol=0, atol=1e-12)
    assert_close(D.T @ D, U @ U.T, rtol=0, atol=1e-10)  # the same plane
    assert_close(plane.origin, origin, rtol=0, atol=0)
    assert_close(origin + plane.coords @ D, pts, rtol=0, atol=1e-10)
    assert_close(plane.values.sum(), torch.ones((), dtype=DT), rtol=0, atol=1e-12)
    # explained variance against numpy: eigenvalues of the covariance of the points
    ev = np.linalg.eigvalsh(np.cov(pts.numpy().T))[::-1]
    assert_close(plane.values, torch.as_tensor(ev[:2] / ev.sum()), rtol=1e-8, atol=1e-12)
    # a trajectory with a little noise off the plane: the plane is nearly the same, variance < 1
    noisy = pts + 1e-3 * torch.randn(pts.shape, dtype=DT, generator=g)
    traj_n = {k: v.reshape(40, *p[k].shape) for k, v in
              zip(names, torch.split(noisy, [s.numel() for s in p.values()], -1))}
    pn = pca_plane(traj_n)
    assert float(pn.values.sum()) < 1.0
    Dn = torch.stack([pn.d1, pn.d2])
    assert float((Dn.T @ Dn - U @ U.T).abs().max()) < 1e-3


def test_pca_of_step_params_with_fixed_parameters():
    _, p = model("srnn", 2, seed=2)
    S = 12
    g = torch.Generator().manual_seed(1)
    w = p["w"] + torch.randn(S, 1, 2, 2, dtype=DT, generator=g)  # (S, P=1, 2, 2): only w trains
    plane = pca_plane({"w": w}, base=p, member=0)
    assert plane.names[0] == "w" and set(plane.names) == set(p)
    d1, d2 = plane.directions()
    for k in p:
        if k != "w":
            assert float(d1[k].abs().max()) == 0.0 and torch.equal(plane.origin_params()[k], p[k])


def test_models_plane_and_line_pass_through_the_models():
    ms = [model("lstm", 2, seed=s)[1] for s in range(3)]
    plane = models_plane(*ms)
    D = torch.stack([plane.d1, plane.d2])
    assert_close(D @ D.T, torch.eye(2, dtype=DT), rtol=0, atol=1e-14)
    at = plane.params_at(plane.coords[:, 0], plane.coords[:, 1])
    for i, m in enumerate(ms):
        for k in m:
            assert_close(at[k][i], m[k], rtol=0, atol=1e-13)
    assert_close(plane.project({k: torch.stack([m[k] for m in ms]) for k in ms[0]}), plane.coords,
                 rtol=0, atol=1e-12)
    line = models_line(ms[0], ms[1])
    mid = line.params_at(torch.tensor([0.0, 0.5, 1.0]), torch.zeros(3))
    for k in ms[0]:
        assert torch.equal(mid[k][0], ms[0][k])
        assert_close(mid[k][1], 0.5 * (ms[0][k] + ms[1][k]), rtol=0, atol=1e-14)
        assert_close(mid[k][2], ms[1][k], rtol=0, atol=1e-14)
    with pytest.raises(LandscapeError, match="lie on one line"):
        models_plane(ms[0], ms[1], {k: 2 * ms[1][k] - ms[0][k] for k in ms[0]})


def test_filter_normalisation_rows_and_pooled_scalars():
    cell, p = model("gru", 4, seed=7)  # u_* are (4, 1): one-element rows, pooled with nothing else
    plane = random_plane(p, seed=3)
    d1, _ = plane.directions()
    for k in ("w_z", "w_h"):  # (4, 4): each row has the norm of the model's row
        assert_close(d1[k].norm(dim=-1), p[k].norm(dim=-1), rtol=1e-12, atol=0)
    for k in ("b_z", "out_w"):  # vectors are one row
        assert_close(d1[k].norm(), p[k].norm(), rtol=1e-12, atol=0)
    pooled = [k for k in p if k.startswith("u_")] + ["out_b"]
    got = torch.cat([d1[k].reshape(-1) for k in pooled]).norm()
    assert_close(got, torch.cat([p[k].reshape(-1) for k in pooled]).norm(), rtol=1e-12, atol=0)
    # the single-element rows keep a random direction (not just +-|theta|)
    ratio = (torch.cat([d1[k].reshape(-1) for k in pooled]).abs()
             / torch.cat([p[k].reshape(-1) for k in pooled]).abs())
    assert float(ratio.max() - ratio.min()) > 1e-3


def test_random_plane_for_one_unit_is_not_degenerate():
    cell = get_cell("srnn")
    p = {**cell.default_params(1, 1), **READOUT_KINDS["logistic"].base(1)}  # w = u = 1, b = 0, out_w = 4, out_b = 0
    cos = [abs(dict(random_plane(p, seed=s).info)["cos"]) for s in range(20)]
    assert max(cos) < 0.999  # filter norm alone: +-|theta| of 3 non-zero scalars, parallel 1 time in 4
    d1, _ = random_plane(p, seed=0).directions()
    assert float(d1["b"].abs().max()) > 0  # the zero bias moves (pooled with w, u, out_w, out_b)
    pure = normalize_direction(torch.tensor([0.3, -2.0, 0.7, 1.1, 0.2], dtype=DT), flatten(p, *layout(p)),
                               *layout(p), norm="layer")  # per tensor: the one-element rows are +-|theta|
    assert_close(pure, torch.tensor([1.0, -1.0, 0.0, 4.0, 0.0], dtype=DT), rtol=0, atol=1e-15)
    same = random_plane(p, seed=4)
    again = random_plane(p, seed=4, orthogonal=True)
    assert torch.equal(same.d1, again.d1) and abs(float(again.d1 @ again.d2)) < 1e-14
    assert_close(again.d2.norm(), same.d2.norm(), rtol=1e-14, atol=0)
    ex = random_plane(p, seed=4, exclude=("out_w", "out_b"))
    assert float(ex.directions()[0]["out_w"].abs().max()) == 0.0


def test_plane_round_trips_through_arrays_and_hdf5(tmp_path):
    cell, p = model("gru", 2, seed=9)
    L = task_loss(problem(cell.name, "relay", 2), 6, n=32)
    plane = hessian_plane(L, p, batched=True)
    with h5py.File(tmp_path / "plane.h5", "w") as f:
        write_plane(f.create_group("plane"), plane)
    with h5py.File(tmp_path / "plane.h5", "r") as f:
        back = read_plane(f["plane"])
    assert back.kind == "hessian" and back.names == plane.names and back.shapes == plane.shapes
    assert back.info == plane.info and torch.equal(back.values, plane.values)
    a, b = torch.linspace(-1, 1, 4), torch.linspace(0, 2, 4)
    for k, v in plane.params_at(a, b).items():
        assert torch.equal(back.params_at(a, b)[k], v)
    arrays, attrs = models_line(p, {k: v + 1 for k, v in p.items()}).to_arrays()
    assert Plane.from_arrays(arrays, attrs).coords.shape == (2, 2)
    assert_close(back.project(plane.params_at(a, b)), torch.stack([a, b], -1).to(DT), rtol=0, atol=1e-12)


def test_errors_name_the_choices():
    _, p = model("srnn", 1, seed=0)
    with pytest.raises(LandscapeError, match="choose from: filter, layer, none"):
        random_plane(p, norm="rows")
    with pytest.raises(LandscapeError, match="choose from: algebraic, magnitude"):
        hessian_top(lambda q: q["w"].sum(), p, which="largest")
    with pytest.raises(LandscapeError, match="cannot exclude unknown parameter 'v'"):
        random_plane(p, exclude=("v",))
    with pytest.raises(LandscapeError, match="the same parameter"):
        axes_plane(p, "w", "w[0,0]")


@pytest.mark.parametrize("cell_name,task,H,fit", [
    ("srnn", "latch", 1, "fixed"), ("gru", "relay", 3, "fixed"), ("lstm", "latch", 2, "optimal"),
    ("pascanu", "target", 1, "fixed")])
def test_task_loss_equals_the_engine(cell_name, task, H, fit):
    pr = problem(cell_name, task, H, fit)
    D = pr.D
    g = torch.Generator().manual_seed(4)
    params = {k: torch.randn((5, *s), generator=g, dtype=DT) for k, s in pr.shapes.items()}  # P = 5
    n = 1 if task == "target" else 48
    want = engine.unroll_losses(pr, params, pr.task.make((9,), n, 3).to(DT, torch.device("cpu")), (9,))[0]
    got = task_loss(pr, 9, n=n, seed=3)(params)
    assert_close(got, want, rtol=1e-12, atol=1e-14)
    assert D == (0 if task == "target" else 1)
