"""The engine's fast paths against the plain path (``cell.step``, allocating, one op per term):

- the CPU in-place steppers (``landscape.kernels.cpu``) for srnn, pascanu, lstm, lstm-b, gru;
- the engine's grouping of members into blocks that share parameters;
- the one-unit readout fit against the general (H + 1)-parameter Newton fit, and the in-place
  logistic loss against its allocating form;
- the fused Triton kernels (``landscape.kernels.fused``) under Triton's interpreter on CPU tensors
  (skipped without triton), and compiled on a real GPU (marked ``cuda``, skipped without one).
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
from landscape.kernels.cpu import cpu_stepper

F64 = torch.float64
FAST = [("srnn", {}), ("pascanu", {}), ("lstm", {}), ("lstm-b", {}), ("gru", {}), ("gru", {"form": "reset_before"})]
TOL = {torch.float64: dict(rtol=1e-12, atol=1e-13), torch.float32: dict(rtol=2e-5, atol=2e-6)}


def random_params(cell, D, P, seed, shared=(), dtype=F64, scale=1.5):
    """N(0, scale^2) parameters (P, *shape); the names in ``shared`` are (1, *shape)."""
    g = torch.Generator().manual_seed(seed)
    return {k: scale * torch.randn((1 if k in shared else P, *s), generator=g, dtype=F64).to(dtype)
            for k, s in cell.param_shapes(1, D).items()}


def plain_outputs(cell, params, x, n, h0, steps):
    """y (steps, P, N) from cell.step and cell.output: the reference."""
    state = cell.initial_state(params, n, 1, h0)
    out = []
    for t in range(steps):
        state = cell.step(params, state, None if x is None else x[t].unsqueeze(-1))
        out.append(cell.output(state)[..., 0].expand(max(v.shape[0] for v in params.values()), -1))
    return torch.stack(out)


def stepper_outputs(cell, params, x, n, h0, steps):
    make = cpu_stepper(cell, 1, 0 if x is None else 1)
    run = make(params, x, n, h0)
    out = []
    for t in range(steps):
        run.step(t)
        out.append(run.output().clone())
    return torch.stack(out)


# --------------------------------------------------------------------------------------------
# CPU in-place steppers


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name,opts", FAST)
@pytest.mark.parametrize("layout", ["per_member", "shared_bias_input", "all_shared_but_w", "no_input_N1",
                                    "no_input_N4"])
def test_cpu_stepper_equals_cell_step(name, opts, layout, dtype):
    cell = get_cell(name, **opts)
    D = 0 if layout.startswith("no_input") else 1
    n = 1 if layout == "no_input_N1" else 7
    names = list(cell.param_shapes(1, D))
    shared = {"per_member": (), "shared_bias_input": tuple(k for k in names if k[0] in "ub"),
              "all_shared_but_w": tuple(k for k in names if not k.startswith("w"))}.get(layout, ())
    params = random_params(cell, D, 6, seed=len(name) + len(layout), shared=shared, dtype=dtype)
    g = torch.Generator().manual_seed(1)
    x = None if D == 0 else torch.randn((9, n), generator=g, dtype=F64).to(dtype)
    expect = plain_outputs(cell, params, x, n, 0.3, 9)
    got = stepper_outputs(cell, params, x, n, 0.3, 9)
    torch.testing.assert_close(got, expect, **TOL[dtype])


def test_no_stepper_where_the_plain_path_must_run():
    assert cpu_stepper(get_cell("srnn"), 2, 1) is None  # H > 1
    assert cpu_stepper(get_cell("srnn"), 1, 3) is None  # D > 1
    assert cpu_stepper(get_cell("lstm", gate="hard_sigmoid"), 1, 1) is None
    for name in ("lstm-i", "lstm-o", "lstm-f", "lstm1997", "mut1", "mut2", "mut3"):
        assert cpu_stepper(get_cell(name), 1, 1) is None, name


# --------------------------------------------------------------------------------------------
# the engine: grouped blocks, fast path = plain path


def grid_params(cell, task, axes, nx, ny, n, fit="fixed", extra=()):
    import landscape

    spec = landscape.GridSpec(cell=cell, task=task, T=(4, 11) if task == "two-sequence" else (1, 4, 11), n=n,
                              fit=fit,
                              x=landscape.Axis(axes[0], -1.0, 2.0, nx), y=landscape.Axis(axes[1], -1.5, 1.0, ny),
                              set=tuple(extra))
    r = landscape.resolve(spec)
    data = r.problem.task.make(r.Ts, r.n, 0).to(F64, torch.device("cpu"))
    xs, ys = torch.as_tensor(r.x.values()), torch.as_tensor(r.y.values())
    flat = torch.arange(nx * ny)
    params = engine.chunk_params(r.problem.base, r.refs, (xs[flat // ny], ys[flat % ny]), F64, torch.device("cpu"))
    return r, data, params


def plain_losses(r, data, params, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(engine, "cpu_stepper", lambda *a: None)
        return engine.unroll_losses(r.problem, params, data, r.Ts, fused=False)


@pytest.mark.parametrize("cell,task,axes,readout", [
    ("srnn", "latch", ("w", "b"), "fixed"),  # b varies: blocks of equal b
    ("srnn", "latch", ("b", "w"), "optimal"),
    ("srnn", "latch", ("u", "w"), "fixed"),  # u varies: blocks of equal u
    ("srnn", "latch", ("u", "b"), "fixed"),  # both: runs of one member, mixed blocks
    ("srnn", "two-sequence", ("w", "b"), "optimal"),  # lengths vary
    ("pascanu", "target", ("w", "b"), "none"),
    ("lstm", "latch", ("b_f", "w_z"), "optimal"),
    ("gru", "latch", ("b_z", "w_h"), "fixed"),
])
@pytest.mark.parametrize("block_elems", [None, 64])
def test_engine_fast_path_equals_plain_path(cell, task, axes, readout, block_elems, monkeypatch):
    monkeypatch.setattr(engine, "MIN_GROUP_ELEMS", 1)  # group even these small blocks
    n = 1 if task == "target" else 30
    r, data, params = grid_params(cell, task, axes, 7, 5, n, readout if readout != "none" else "auto")
    fast = engine.unroll_losses(r.problem, params, data, r.Ts, fused=False,
                                block_elems=block_elems)
    plain = plain_losses(r, data, params, monkeypatch)
    torch.testing.assert_close(fast, plain, rtol=1e-11, atol=1e-13)


def test_blocks_share_the_grouped_parameters_and_cover_every_member(monkeypatch):
    monkeypatch.setattr(engine, "MIN_GROUP_ELEMS", 1)
    r, data, params = grid_params("srnn", "latch", ("w", "b"), 9, 6, 30)
    make = cpu_stepper(r.problem.cell, 1, 1)
    blocks = list(engine._blocks(params, 54, 30, 1, 8, make, 8 * 30, torch.device("cpu")))
    seen = torch.cat([torch.arange(54)[idx] for idx, _ in blocks])
    assert sorted(seen.tolist()) == list(range(54))
    for idx, sub in blocks:
        assert sub["b"].shape[0] == 1  # 9 members share each b: a block of equal b
        assert torch.all(params["b"][idx] == sub["b"][0])
        assert len(torch.arange(54)[idx]) <= 8
    assert sum(engine.block_plan(r.problem.cell, params, 30, 1, 1, 8 * 30)) == 54
    monkeypatch.setattr(engine, "MIN_GROUP_ELEMS", 10 * 30)  # runs of 9 members are now too short
    blocks = list(engine._blocks(params, 54, 30, 1, 8, make, 8 * 30, torch.device("cpu")))
    assert all(isinstance(idx, slice) for idx, _ in blocks) and len(blocks) == 7


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
# fused Triton kernels under the interpreter (CPU tensors)


def _interpreter():
    """Triton imported with its interpreter on, or a skip."""
    if "triton" not in sys.modules:
        os.environ["TRITON_INTERPRET"] = "1"  # read when triton and its language are imported
    pytest.importorskip("triton")
    from landscape.kernels import fused

    if not fused.interpreting():
        pytest.skip("triton was imported without TRITON_INTERPRET=1 in this process")
    return fused


FUSED = [("srnn", {}, "latch", ("w", "b")), ("pascanu", {}, "target", ("w", "b")), ("pascanu", {}, "target-x0", ("w", "b")),
         ("pascanu", {}, "latch", ("u", "b")), ("lstm", {}, "latch", ("b_f", "w_z")),
         ("lstm-b", {}, "latch", ("u_i", "w_o")), ("gru", {}, "latch", ("b_z", "w_h")),
         ("gru", {"form": "reset_before"}, "latch", ("b_h", "w_r")), ("srnn", {}, "two-sequence", ("w", "b")),
         ("srnn", {}, "target", ("w", "b"))]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name,opts,task,axes", FUSED)
def test_fused_kernel_equals_plain_path_in_the_interpreter(name, opts, task, axes, dtype):
    fused = _interpreter()
    import landscape

    task, options = ("target", (("x0", 0.3),)) if task == "target-x0" else (task, ())  # x0 not exact in fp32
    n = 1 if task == "target" else 37
    Ts = (4, 9, 23) if task == "two-sequence" else (1, 2, 9, 23)
    spec = landscape.GridSpec(cell=name, task=task, T=Ts, n=n, fit="fixed" if task != "target" else "auto",
                              x=landscape.Axis(axes[0], -1.0, 2.0, 5), y=landscape.Axis(axes[1], -2.5, 1.0, 3),
                              cell_options=tuple(opts.items()), task_options=options)
    r = landscape.resolve(spec)
    data = r.problem.task.make(r.Ts, r.n, 0).to(dtype, torch.device("cpu"))
    xs, ys = torch.as_tensor(r.x.values()), torch.as_tensor(r.y.values())
    flat = torch.arange(15)
    params = engine.chunk_params(r.problem.base, r.refs, (xs[flat // 3], ys[flat % 3]), dtype, torch.device("cpu"))
    got = fused.outputs(r.problem.cell, params, data, r.Ts, 1)
    assert got is not None and got.shape == (len(Ts), 15, n)
    expect = torch.stack([y[..., 0].clone() for _, y in engine._block_outputs(r.problem.cell, params, data, r.Ts, 1)])
    torch.testing.assert_close(got, expect, **TOL[dtype])
    # the loss from the kernel's outputs equals the engine's
    losses = torch.stack([r.problem.readout.loss(got[k].unsqueeze(-1), data.targets[T], params)
                          for k, T in enumerate(r.Ts)])
    torch.testing.assert_close(losses, engine.unroll_losses(r.problem, params, data, r.Ts, fused=False),
                               **TOL[dtype])


def test_fused_kernel_declines_what_it_does_not_cover():
    fused = _interpreter()
    data = get_task("latch").make((3,), 4, 0)
    # H > 1 (other one-unit cells, e.g. mut1, get a generated kernel: tests/test_triton_codegen.py)
    for cell, H in ((get_cell("srnn"), 2), (get_cell("lstm", gate="hard_sigmoid"), 2)):
        params = {k: torch.zeros(1, *s, dtype=F64) for k, s in cell.param_shapes(H, 1).items()}
        assert fused.outputs(cell, params, data, (3,), H) is None
    params = {k: torch.zeros(1, *s, dtype=torch.float16) for k, s in get_cell("srnn").param_shapes(1, 1).items()}
    assert fused.outputs(get_cell("srnn"), params, data.to(torch.float16, "cpu"), (3,), 1) is None


# --------------------------------------------------------------------------------------------
# compiled: for a GPU architecture (no GPU needed), and run on a real GPU

COMPILE_CHECK = textwrap.dedent("""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from landscape.kernels import fused
    for arch in (80, 90):
        for name, kernel in fused._kernels(False).items():
            for dt in ("fp64", "fp32"):
                sig = {"packed": f"*{dt}", "x": f"*{dt}", "ends": "*i32", "flags": "*i32", "out": f"*{dt}",
                       "h0_ptr": f"*{dt}", "P": "i64", "N": "i32", "K": "i32", "steps": "i32"}
                cons = {"HAS_X": dt == "fp64", "BLOCK": fused.BLOCK, "LIBDEVICE": True}
                if name == "gru":
                    cons["RESET_AFTER"] = dt == "fp64"
                sig.update({c: "constexpr" for c in cons})
                triton.compile(ASTSource(fn=kernel, signature=sig, constexprs=cons),
                               target=GPUTarget("cuda", arch, 32), options={"enable_fp_fusion": True})
    print("compiled")
""")


@pytest.mark.slow
def test_fused_kernels_compile_for_cuda_without_a_gpu():
    """Triton compiles to PTX and cubin (with the ptxas in its wheel) without a GPU: every kernel,
    both dtypes, for sm_80 and sm_90. A fresh process: this one may run Triton's interpreter."""
    pytest.importorskip("triton")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    res = subprocess.run([sys.executable, "-c", COMPILE_CHECK], env=env, capture_output=True, text=True, timeout=600)
    if res.returncode != 0 and "ptxas" in res.stderr and "not found" in res.stderr:
        pytest.skip("Triton's CUDA toolchain (ptxas) is not available here")
    assert res.returncode == 0 and "compiled" in res.stdout, res.stderr[-3000:]


CUDA_CHECK = textwrap.dedent("""
    import json, torch, landscape
    from landscape import engine
    from landscape.kernels import fused
    out = {}
    for name, task, axes in [("srnn", "latch", ("w", "b")), ("pascanu", "target", ("w", "b")),
                             ("lstm", "latch", ("b_f", "w_z")), ("gru", "latch", ("b_z", "w_h")),
                             ("srnn", "two-sequence", ("w", "b"))]:
        for dtype in (torch.float64, torch.float32):
            n = 1 if task == "target" else 300
            spec = landscape.GridSpec(cell=name, task=task, T=(5, 17, 60), n=n,
                                      x=landscape.Axis(axes[0], -1.0, 2.0, 33), y=landscape.Axis(axes[1], -2.5, 1.0, 31))
            r = landscape.resolve(spec)
            xs, ys = torch.as_tensor(r.x.values()), torch.as_tensor(r.y.values())
            flat = torch.arange(33 * 31)
            res = []
            for dev in ("cuda", "cpu"):
                data = r.problem.task.make(r.Ts, r.n, 0).to(dtype, torch.device(dev))
                p = engine.chunk_params(r.problem.base, r.refs, (xs[flat // 31], ys[flat % 31]), dtype, torch.device(dev))
                if dev == "cuda":
                    y = fused.outputs(r.problem.cell, p, data, r.Ts, 1)
                    assert y is not None, "fused kernel declined on CUDA"
                    res.append(y.cpu())
                else:
                    res.append(torch.stack([o[..., 0].clone() for _, o in engine._block_outputs(r.problem.cell, p, data, r.Ts, 1)]))
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
