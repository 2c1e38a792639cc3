"""The CPU backend's losses (landscape.kernels.numba.losses: fused unroll + fused readout kernels)
against the engine's ``cell.step`` path (``engine.unroll_losses(..., fast=False)``), for each
readout and the task with variable lengths; the dispatch (``kernels.fused_losses``): what it
declines, and the switch."""
from __future__ import annotations

import pytest
import torch


pytest.importorskip("numba")

import landscape  # noqa: E402
from landscape import Axis, GridSpec, engine  # noqa: E402
from landscape.kernels import fused_losses  # noqa: E402
from landscape.kernels.numba import losses as numba_losses  # noqa: E402
from landscape.kernels.trace import Unsupported  # noqa: E402

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
        want = engine.unroll_losses(r.problem, params, data, r.Ts, fast=False)
    got = numba_losses.losses(r.problem, params, data, r.Ts, threads=2)
    assert got is not None and got.shape == want.shape and got.dtype == want.dtype
    tol = dict(rtol=1e-12, atol=1e-14) if dtype == torch.float64 else dict(rtol=2e-4, atol=1e-6)
    torch.testing.assert_close(got, want, **tol)


def test_not_applicable():
    spec = GridSpec.of(cell="srnn", task="latch", T=(5,), n=8, fit="fixed", x=Axis("w", -1, 3, 3), y=Axis("b", -1, 1, 2))
    r, data, params = grid(spec)
    wide = landscape.resolve(GridSpec.of(cell="srnn", task="latch", hidden=2, T=(5,), n=8, fit="fixed",
                                      x=Axis("w[0,0]", -1, 3, 3), y=Axis("b[0]", -1, 1, 2)))
    with pytest.raises(Unsupported, match="one unit"):
        numba_losses.losses(wide.problem, params, data, r.Ts)  # H = 2
    grad = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    with pytest.raises(Unsupported, match="gradients"):
        numba_losses.losses(r.problem, grad, data, r.Ts)
    big = landscape.resolve(GridSpec.of(cell="srnn", task="latch", hidden=33, T=(5,), n=8, fit="fixed",
                                        x=Axis("w[0,0]", -1, 3, 3), y=Axis("b[0]", -1, 1, 2)))
    assert fused_losses(big.problem, params, data, r.Ts) == (None, "the fused kernels take H = 1 to 32 (H = 33)")


def test_the_switch_turns_the_dispatch_off_and_the_engine_takes_cell_step(monkeypatch):
    """fast=False, or LANDSCAPE_FAST=0 when fast is None: no fused kernel; the engine's losses are
    then cell.step's (equal to the fused ones up to rounding, not bit for bit)."""
    spec = GridSpec.of(cell="lstm", task="latch", T=(4, 11), n=30, fit="fixed", x=Axis("b_f", -1, 2, 4),
                    y=Axis("w_z", -1.5, 1, 3))
    r, data, params = grid(spec)
    with torch.no_grad():
        fused, why = fused_losses(r.problem, params, data, r.Ts)
        assert why is None and fused is not None
        assert fused_losses(r.problem, params, data, r.Ts, fast=False) == (
            None, "fused kernels are turned off (LANDSCAPE_FAST=0)")
        plain = engine.unroll_losses(r.problem, params, data, r.Ts, fast=False)
        monkeypatch.setenv("LANDSCAPE_FAST", "0")
        assert fused_losses(r.problem, params, data, r.Ts)[0] is None
        assert torch.equal(engine.unroll_losses(r.problem, params, data, r.Ts), plain)
        monkeypatch.setenv("LANDSCAPE_FAST", "1")
        assert torch.equal(engine.unroll_losses(r.problem, params, data, r.Ts), fused)
    torch.testing.assert_close(fused, plain, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("readout", ["fixed", "optimal"])
def test_the_cell_step_path_does_not_depend_on_its_blocks(readout):
    """engine.unroll_losses(fast=False) in blocks of 64 state elements (2 members) equals the
    default blocks (every member in one block) up to rounding: torch's vectorised loops may round
    a block's tail elements differently."""
    spec = GridSpec.of(cell="gru", task="two-sequence", T=(4, 11), n=30, fit=readout, x=Axis("b_z", -1, 2, 7),
                    y=Axis("w_h", -1.5, 1, 5))
    r, data, params = grid(spec)
    with torch.no_grad():
        whole = engine.unroll_losses(r.problem, params, data, r.Ts, fast=False)
        blocks = engine.unroll_losses(r.problem, params, data, r.Ts, fast=False, block_elems=64)
    torch.testing.assert_close(blocks, whole, rtol=1e-13, atol=1e-15)


def test_a_grid_over_the_readout_alone_unrolls_once():
    """Axes on out_w, out_b only: every member shares the cell's parameters, so one unroll serves
    them all; the losses equal the torch path's."""
    spec = GridSpec.of(cell="srnn", task="latch", T=(3, 12), n=40, fit="fixed", x=Axis("out_w", -4, 4, 6),
                    y=Axis("out_b", -1, 1, 5))
    r, data, params = grid(spec)
    with torch.no_grad():
        want = engine.unroll_losses(r.problem, params, data, r.Ts, fast=False)
    torch.testing.assert_close(numba_losses.losses(r.problem, params, data, r.Ts), want, rtol=1e-12, atol=1e-14)
