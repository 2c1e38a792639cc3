"""The torch readout and the Triton backend against independent truths:

- the one-unit readout fit against the general (H + 1)-parameter Newton fit, and the in-place
  logistic loss against its allocating form;
- the Triton kernel generated from the traced step (``landscape.kernels.triton.launch``), as the
  engine launches it, against the ``cell.step`` path (outputs and losses) under Triton's interpreter
  on CPU tensors (skipped without triton), and compiled on a real GPU (marked ``cuda``, skipped
  without one). Every built-in cell's generated kernel: tests/test_triton_codegen.py.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from landscape import engine
from landscape.cells import get_cell
from landscape.tasks import get_task
from landscape.readout_fit import fit_logistic_readout
from landscape.readouts import _bce_with_logits, logistic_loss, logits
from landscape.kernels.trace import Unsupported

F64 = torch.float64
TOL = {torch.float64: dict(rtol=1e-12, atol=1e-13), torch.float32: dict(rtol=2e-5, atol=2e-6)}


def test_in_place_logistic_loss_with_one_readout_for_all_members():
    g = torch.Generator().manual_seed(6)
    h = torch.tanh(torch.randn(7, 30, 1, generator=g, dtype=F64))
    y = (torch.arange(30) % 2).to(F64)
    w, b = torch.full((1, 1), 3.0, dtype=F64).expand(7, -1), torch.full((1, 1), -0.2, dtype=F64).expand(7, -1)
    torch.testing.assert_close(logistic_loss(h, w, b, y), _bce_with_logits(logits(h, w, b), y), rtol=1e-15, atol=0)


# --------------------------------------------------------------------------------------------
# the readout fit and the logistic loss


def fit_general(h, y, l2):
    """The same optimum by the general (H + 1)-parameter Newton fit: an extra all-zero unit
    (its weight is penalised, so it stays 0) sends a one-unit problem down the H > 1 path."""
    h2 = torch.cat([h, torch.zeros_like(h)], -1)
    w, b = fit_logistic_readout(h2, y, l2)
    return w[:, :1], b


@pytest.mark.parametrize("l2", [1e-4, 1e-2])
def test_one_unit_fit_equals_the_general_fit(l2):
    g = torch.Generator().manual_seed(3)
    P, N = 70, 200
    y = (torch.arange(N) < N // 2).to(F64)
    sign = 2 * y - 1
    h = torch.empty(P, N, 1, dtype=F64)
    h[:20, :, 0] = torch.tanh(2.0 * sign + 0.5 * torch.randn(20, N, generator=g, dtype=F64))  # nearly separable
    h[20:40, :, 0] = torch.tanh(0.3 * sign + torch.randn(20, N, generator=g, dtype=F64))  # overlapping
    h[40:50, :, 0] = 0.7 * sign  # separable: the ridge keeps out_w finite
    h[50:55, :, 0] = 0.25  # constant: no information
    h[55:, :, 0] = torch.tanh(torch.randn(15, N, generator=g, dtype=F64) - 1.0)
    w1, b1 = fit_logistic_readout(h, y, l2)
    w2, b2 = fit_general(h, y, l2)
    loss1 = logistic_loss(h, w1, b1, y)
    loss2 = logistic_loss(h, w2, b2, y)
    torch.testing.assert_close(loss1, loss2, rtol=0, atol=1e-12)
    torch.testing.assert_close(w1, w2, rtol=1e-7, atol=1e-8)


def test_fit_keeps_nan_members_nan_and_the_others_finite():
    g = torch.Generator().manual_seed(4)
    y = (torch.arange(50) % 2).to(F64)
    h = torch.tanh(torch.randn(5, 50, 1, generator=g, dtype=F64) + y.view(1, -1, 1))
    h[2, 7, 0] = float("nan")
    w, b = fit_logistic_readout(h, y, 1e-4)
    assert torch.isnan(w[2]).all()
    assert torch.isfinite(w[[0, 1, 3, 4]]).all() and torch.isfinite(b[[0, 1, 3, 4]]).all()


def test_in_place_logistic_loss_equals_the_allocating_form():
    g = torch.Generator().manual_seed(5)
    h = torch.randn(9, 40, 1, generator=g, dtype=F64)
    h[0, 0, 0], h[1, 1, 0], h[2, 2, 0] = float("inf"), float("-inf"), 1e6
    y = (torch.arange(40) % 3 == 0).to(F64)
    w = torch.randn(9, 1, generator=g, dtype=F64)
    b = torch.randn(9, 1, generator=g, dtype=F64)
    expect = _bce_with_logits(logits(h, w, b), y)
    assert torch.equal(logistic_loss(h, w, b, y), expect)  # the same operations: bit for bit
    assert torch.equal(logistic_loss(h, w, b, y, torch.empty(2, 9, 40, dtype=F64)), expect)


# --------------------------------------------------------------------------------------------
# the Triton kernels under the interpreter (CPU tensors)


def _interpreter():
    """The Triton backend's launch module with Triton's interpreter on, or a skip."""
    if "triton" not in sys.modules:
        os.environ["TRITON_INTERPRET"] = "1"  # read when triton and its language are imported
    pytest.importorskip("triton")
    from landscape.kernels.triton import launch

    if not launch.interpreting():
        pytest.skip("triton was imported without TRITON_INTERPRET=1 in this process")
    return launch


FUSED = [("srnn", {}, "latch", ("w", "b")), ("pascanu", {}, "target", ("w", "b")), ("pascanu", {}, "target-x0", ("w", "b")),
         ("pascanu", {}, "latch", ("u", "b")), ("lstm", {}, "latch", ("b_f", "w_z")),
         ("lstm-b", {}, "latch", ("u_i", "w_o")), ("gru", {}, "latch", ("b_z", "w_h")),
         ("gru", {"form": "reset_before"}, "latch", ("b_h", "w_r")), ("srnn", {}, "two-sequence", ("w", "b")),
         ("srnn", {}, "target", ("w", "b"))]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name,opts,task,axes", FUSED)
def test_fused_kernel_equals_plain_path_in_the_interpreter(name, opts, task, axes, dtype):
    launch = _interpreter()
    import landscape

    task, options = ("target", (("x0", 0.3),)) if task == "target-x0" else (task, ())  # x0 not exact in fp32
    n = 1 if task == "target" else 37
    Ts = (4, 9, 23) if task == "two-sequence" else (1, 2, 9, 23)
    spec = landscape.GridSpec.of(cell=name, task=task, T=Ts, n=n, fit="fixed" if task != "target" else "auto",
                              x=landscape.Axis(axes[0], -1.0, 2.0, 5), y=landscape.Axis(axes[1], -2.5, 1.0, 3),
                              cell_options=tuple(opts.items()), task_options=options)
    r = landscape.resolve(spec)
    data = r.problem.task.make(r.Ts, r.n, 0).to(dtype, torch.device("cpu"))
    xs, ys = torch.as_tensor(r.x.values()), torch.as_tensor(r.y.values())
    flat = torch.arange(15)
    params = engine.chunk_params(r.problem.base, r.refs, (xs[flat // 3], ys[flat % 3]), dtype, torch.device("cpu"))
    got = launch.outputs(r.problem.cell, params, data, r.Ts, 1)
    assert got is not None and got.shape == (len(Ts), 15, n)
    expect = torch.stack([y[..., 0].clone() for _, y in engine.step_outputs(r.problem.cell, params, data, r.Ts, 1)])
    torch.testing.assert_close(got, expect, **TOL[dtype])
    # the backend's losses (the loss taken in torch from the kernel's outputs) equal the engine's
    losses = launch.losses(r.problem, params, data, r.Ts)
    torch.testing.assert_close(losses, engine.unroll_losses(r.problem, params, data, r.Ts, fast=False),
                               **TOL[dtype])


def test_fused_kernel_declines_what_it_does_not_cover():
    launch = _interpreter()
    data = get_task("latch").make((3,), 4, 0)
    # H > 1 (other one-unit cells, e.g. mut1, get a generated kernel: tests/test_triton_codegen.py)
    for cell, H in ((get_cell("srnn"), 2), (get_cell("lstm", gate="hard_sigmoid"), 2)):
        params = {k: torch.zeros(1, *s, dtype=F64) for k, s in cell.param_shapes(H, 1).items()}
        with pytest.raises(Unsupported, match="one unit"):
            launch.outputs(cell, params, data, (3,), H)
    params = {k: torch.zeros(1, *s, dtype=torch.float16) for k, s in get_cell("srnn").param_shapes(1, 1).items()}
    with pytest.raises(Unsupported, match="float16"):
        launch.outputs(get_cell("srnn"), params, data.to(torch.float16, "cpu"), (3,), 1)


# --------------------------------------------------------------------------------------------
# compiled, on a real GPU (compiled for sm_80 and sm_90 without one: tests/test_triton_codegen.py)

CUDA_CHECK = textwrap.dedent("""
    import json, torch, landscape
    from landscape import engine
    from landscape.kernels.triton import launch
    out = {}
    for name, task, axes in [("srnn", "latch", ("w", "b")), ("pascanu", "target", ("w", "b")),
                             ("lstm", "latch", ("b_f", "w_z")), ("gru", "latch", ("b_z", "w_h")),
                             ("srnn", "two-sequence", ("w", "b"))]:
        for dtype in (torch.float64, torch.float32):
            n = 1 if task == "target" else 300
            spec = landscape.GridSpec.of(cell=name, task=task, T=(5, 17, 60), n=n,
                                      x=landscape.Axis(axes[0], -1.0, 2.0, 33), y=landscape.Axis(axes[1], -2.5, 1.0, 31))
            r = landscape.resolve(spec)
            xs, ys = torch.as_tensor(r.x.values()), torch.as_tensor(r.y.values())
            flat = torch.arange(33 * 31)
            res = []
            for dev in ("cuda", "cpu"):
                data = r.problem.task.make(r.Ts, r.n, 0).to(dtype, torch.device(dev))
                p = engine.chunk_params(r.problem.base, r.refs, (xs[flat // 31], ys[flat % 31]), dtype, torch.device(dev))
                if dev == "cuda":
                    res.append(launch.outputs(r.problem.cell, p, data, r.Ts, 1).cpu())
                else:
                    outs = engine.step_outputs(r.problem.cell, p, data, r.Ts, 1)
                    res.append(torch.stack([o[..., 0].clone() for _, o in outs]))
            out[f"{name}-{task}-{dtype}"] = float((res[0].double() - res[1].double()).abs().max())
    print(json.dumps(out))
""")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_fused_kernel_compiled_on_gpu_equals_plain_path_on_cpu():
    pytest.importorskip("triton")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}  # compiled, in a fresh process
    res = subprocess.run([sys.executable, "-c", CUDA_CHECK], env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    diffs = json.loads(res.stdout.strip().splitlines()[-1])
    for key, diff in diffs.items():
        assert diff < (1e-11 if "float64" in key else 2e-5), (key, diff)
