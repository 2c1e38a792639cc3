"""landscape.kernels.fast_path.losses (fused unroll + fused readout kernels) against the engine's
own torch paths (engine.unroll_losses), for each readout and the task with variable lengths."""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("numba")

import landscape  # noqa: E402
from landscape import Axis, GridSpec, engine  # noqa: E402
from landscape.kernels import fast_path  # noqa: E402

CPU = torch.device("cpu")


def grid(spec, dtype=torch.float64):
    r = landscape.resolve(spec)
    data = r.task.make(r.Ts, r.n, spec.seed).to(dtype, CPU)
    xs, ys = torch.as_tensor(r.x.values()), torch.as_tensor(r.y.values())
    flat = torch.arange(len(xs) * len(ys))
    params = engine.chunk_params(r.base, (r.x_ref, r.y_ref), (xs[flat // len(ys)], ys[flat % len(ys)]), dtype, CPU)
    return r, data, params


@pytest.mark.parametrize("spec", [
    GridSpec(cell="srnn", task="latch", T=(5, 40, 70), n=64, readout="fixed", x=Axis("w", -1, 3, 7), y=Axis("b", -1, 1, 5)),
    GridSpec(cell="srnn", task="latch", T=(20,), n=80, readout="optimal", x=Axis("w", -1, 3, 6), y=Axis("b", -1, 1, 4)),
    GridSpec(cell="gru", task="two-sequence", T=(10, 30), n=50, readout="optimal", x=Axis("b_z", -3, 3, 5),
             y=Axis("w_h", -2, 4, 3)),
    GridSpec(cell="pascanu", task="target", T=(1, 5, 50), n=1, x=Axis("w", 4.5, 5.5, 9), y=Axis("b", -2.9, -1.9, 8)),
    GridSpec(cell="lstm", task="bengio", T=(15,), n=40, x=Axis("b_f", -2, 4, 5), y=Axis("w_z", -2, 4, 4)),
], ids=["srnn-fixed", "srnn-optimal", "gru-two-sequence-optimal", "pascanu-target", "lstm-bengio"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_losses_equal_the_engines(spec, dtype):
    r, data, params = grid(spec, dtype)
    with torch.no_grad():
        want = engine.unroll_losses(r.cell, params, data, r.task, r.Ts, r.readout, r.spec.readout_l2, r.H)
    got = fast_path.losses(r.cell, params, data, r.task, r.Ts, r.readout, r.spec.readout_l2, r.H, threads=2)
    assert got is not None and got.shape == want.shape and got.dtype == want.dtype
    tol = dict(rtol=1e-12, atol=1e-14) if dtype == torch.float64 else dict(rtol=2e-4, atol=1e-6)
    torch.testing.assert_close(got, want, **tol)


def test_not_applicable():
    spec = GridSpec(cell="srnn", task="latch", T=(5,), n=8, readout="fixed", x=Axis("w", -1, 3, 3), y=Axis("b", -1, 1, 2))
    r, data, params = grid(spec)
    assert fast_path.losses(r.cell, params, data, r.task, r.Ts, r.readout, 1e-4, H=2) is None
    grad = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    assert fast_path.losses(r.cell, grad, data, r.task, r.Ts, r.readout, 1e-4) is None
