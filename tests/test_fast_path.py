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
    data = r.problem.task.make(r.Ts, r.n, spec.seed).to(dtype, CPU)
    xs, ys = torch.as_tensor(r.x.values()), torch.as_tensor(r.y.values())
    flat = torch.arange(len(xs) * len(ys))
    params = engine.chunk_params(r.problem.base, r.refs, (xs[flat // len(ys)], ys[flat % len(ys)]), dtype, CPU)
    return r, data, params


@pytest.mark.parametrize("spec", [
    GridSpec.of(cell="srnn", task="latch", T=(5, 40, 70), n=64, fit="fixed", x=Axis("w", -1, 3, 7), y=Axis("b", -1, 1, 5)),
    GridSpec.of(cell="srnn", task="latch", T=(20,), n=80, fit="optimal", x=Axis("w", -1, 3, 6), y=Axis("b", -1, 1, 4)),
    GridSpec.of(cell="gru", task="two-sequence", T=(10, 30), n=50, fit="optimal", x=Axis("b_z", -3, 3, 5),
             y=Axis("w_h", -2, 4, 3)),
    GridSpec.of(cell="pascanu", task="target", T=(1, 5, 50), n=1, x=Axis("w", 4.5, 5.5, 9), y=Axis("b", -2.9, -1.9, 8)),
    GridSpec.of(cell="lstm", task="bengio", T=(15,), n=40, x=Axis("b_f", -2, 4, 5), y=Axis("w_z", -2, 4, 4)),
], ids=["srnn-fixed", "srnn-optimal", "gru-two-sequence-optimal", "pascanu-target", "lstm-bengio"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_losses_equal_the_engines(spec, dtype):
    r, data, params = grid(spec, dtype)
    with torch.no_grad():
        want = engine.unroll_losses(r.problem, params, data, r.Ts, fused=False)
    got = fast_path.losses(r.problem, params, data, r.Ts, threads=2)
    assert got is not None and got.shape == want.shape and got.dtype == want.dtype
    tol = dict(rtol=1e-12, atol=1e-14) if dtype == torch.float64 else dict(rtol=2e-4, atol=1e-6)
    torch.testing.assert_close(got, want, **tol)


def test_not_applicable():
    spec = GridSpec.of(cell="srnn", task="latch", T=(5,), n=8, fit="fixed", x=Axis("w", -1, 3, 3), y=Axis("b", -1, 1, 2))
    r, data, params = grid(spec)
    wide = landscape.resolve(GridSpec.of(cell="srnn", task="latch", hidden=2, T=(5,), n=8, fit="fixed",
                                      x=Axis("w[0,0]", -1, 3, 3), y=Axis("b[0]", -1, 1, 2)))
    assert fast_path.losses(wide.problem, params, data, r.Ts) is None  # H = 2
    grad = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    assert fast_path.losses(r.problem, grad, data, r.Ts) is None


def test_a_grid_over_the_readout_alone_unrolls_once():
    """Axes on out_w, out_b only: every member shares the cell's parameters, so one unroll serves
    them all; the losses equal the torch path's."""
    spec = GridSpec.of(cell="srnn", task="latch", T=(3, 12), n=40, fit="fixed", x=Axis("out_w", -4, 4, 6),
                    y=Axis("out_b", -1, 1, 5))
    r, data, params = grid(spec)
    with torch.no_grad():
        want = engine.unroll_losses(r.problem, params, data, r.Ts, fused=False)
    torch.testing.assert_close(fast_path.losses(r.problem, params, data, r.Ts), want, rtol=1e-12, atol=1e-14)
