"""The Triton kernels generated from a cell's traced step (``landscape.kernels.triton.codegen``,
launched by ``triton.launch.outputs``) against the torch path (``cell.step`` unrolled), in Triton's
interpreter on CPU tensors (skipped without triton, or when it was imported compiled):

- every built-in one-unit cell and option of the registry, plus examples/cells/mgu.py:MGU and a
  test cell using every operation the generator writes; float64 and float32; with input (latch)
  and without (target); variable lengths (two-sequence); a non-square grid of members;
- a cell the tracer refuses (a mean over sequences) and one whose step the trace cannot see
  (Python control flow: the self-check) get ``Unsupported`` from ``launch.outputs``: the torch path;
- the generated source compiles for sm_80 and sm_90 without a GPU (a fresh process; skipped
  without Triton's ptxas).
"""
from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass, fields
from pathlib import Path

import pytest
import torch

from landscape import engine
from landscape.cells import CELLS, Cell, ParamDecl, bias, drive, get_cell, linear
from test_fused_cpu import MeanField  # a cell the tracer refuses
from test_kernels import _interpreter  # the launch module with Triton's interpreter on, or a skip

F64, F32 = torch.float64, torch.float32
ROOT = Path(__file__).resolve().parents[1]
TOL = {F64: dict(rtol=1e-12, atol=1e-13), F32: dict(rtol=2e-5, atol=2e-6)}


def _option_choices():
    """The values of each cell option (a new option must be added here: the test fails otherwise)."""
    from landscape.cells.base import GATE_ACTIVATIONS
    from landscape.cells.gated import GRU_FORMS

    return {"gate": tuple(GATE_ACTIVATIONS), "form": tuple(GRU_FORMS), "observe": ("sigmoid", "state")}


def builtin_cells() -> list[tuple[str, dict]]:
    """Every built-in cell of the registry with every combination of its options."""
    choices, out = _option_choices(), []
    for name, cls in CELLS.items():
        names = [f.name for f in fields(cls)]
        missing = [k for k in names if k not in choices]
        assert not missing, f"cell {name}: list the values of option(s) {missing} in _option_choices"
        out += [(name, dict(zip(names, vals))) for vals in itertools.product(*(choices[k] for k in names))]
    return out


BUILTIN = builtin_cells()
MGU = str(ROOT / "examples" / "cells" / "mgu.py") + ":MGU"
EVERY_OP = str(Path(__file__).resolve()) + ":EveryOp"


@dataclass(frozen=True)
class EveryOp(Cell):
    """Every operation the generator writes (but atan, which the interpreter lacks), kept bounded
    and, where a function jumps (floor, a comparison), applied to what does not depend on the state;
    a second state m with a constant initial value that takes the old h (so the new states must be
    assigned at once), and an output of both."""

    name = "every-op"
    summary = "test cell"
    equations = "-"
    params = (ParamDecl("w", "recurrent", default=0.5), ParamDecl("u", "input", default=1.0),
              ParamDecl("b", "bias"))
    state_names = ("h", "m")

    def initial_state(self, params, N, H, h0=0.0):
        (h,) = super().initial_state(params, N, H, h0)[:1]
        return h, torch.full_like(h, 0.25)

    def output(self, state):
        return state[0] - 0.5 * state[1]

    def step(self, p, state, x):
        h, m = state
        a = linear(h, p["w"]) + drive(x, p, "u") + bias(p["b"])  # (P, N, 1)
        c = drive(x, p, "u") + bias(p["b"])  # no state: jumps are safe here
        s = torch.sqrt(a.abs() + 1) * torch.rsqrt(a * a + 2) + torch.reciprocal(2 + a.abs()) - torch.exp(-a * a)
        s = s + torch.pow(a.abs() + 0.5, torch.tanh(h)) + 0.1 * torch.tanh(a) ** 3 + torch.sigmoid(-a) / 3
        s = s + torch.where(a > 0, torch.expm1(torch.clamp(a, max=2.0)), torch.log1p(a.abs()))
        s = s + torch.sin(a) * torch.cos(h) + torch.erf(a) + torch.tan(0.5 * torch.tanh(a)) + torch.asinh(3 * a)
        s = s + torch.log2(1 + a * a) + torch.exp2(-a.abs()) + torch.floor(2 * c) - torch.ceil(c) + torch.trunc(3 * c)
        s = s + torch.maximum(a, h) - torch.minimum(a, -h) + torch.clamp(h, -0.5, 0.25) + torch.relu(-a)
        logic = torch.logical_or(c > 0.5, torch.logical_not(c)) & torch.logical_not(c <= -0.5) | (c == 0.25) | (c != c)
        s = s + logic.to(a.dtype) - (c >= 0).to(a.dtype) + torch.nn.functional.softplus(-a) + torch.neg(h) / 2
        return torch.tanh(0.1 * s) + 0.1 * m, h  # contracting: rounding does not grow over the steps


@dataclass(frozen=True)
class WithAtan(Cell):
    """atan: libdevice's on the GPU, no form in Triton's interpreter."""

    name = "with-atan"
    summary = "test cell"
    equations = "-"
    params = (ParamDecl("w", "recurrent", default=0.5), ParamDecl("b", "bias"))

    def step(self, p, state, x):
        (h,) = state
        return (torch.atan(linear(h, p["w"]) + bias(p["b"])),)


_CALLS = []


@dataclass(frozen=True)
class Erratic(Cell):
    """Python control flow the trace cannot see (a call counter): the self-check refuses it."""

    name = "erratic"
    summary = "test cell"
    equations = "-"
    params = (ParamDecl("w", "recurrent", default=1.0), ParamDecl("b", "bias"))

    def step(self, p, state, x):
        (h,) = state
        _CALLS.append(1)
        sign = 1.0 if len(_CALLS) == 1 else -1.0  # the trace is the first call
        return (torch.tanh(sign * linear(h, p["w"]) + bias(p["b"])),)


def grid_case(cell_ref, opts, task, dtype, seed=0):
    """A 3 x 2 grid over the first and last parameter, every parameter then moved by N(0, 0.5^2)
    per member (P = 6), N = 7 sequences (target: 1, it has no randomness), lengths up to 9
    (two-sequence: T = 10, 20, lengths in [T, 1.1 T])."""
    import landscape

    cell = get_cell(cell_ref, **opts)
    D = 0 if task == "target" else 1
    names = list(cell.param_shapes(1, D))
    Ts = (10, 20) if task == "two-sequence" else (1, 4, 9)
    N = 1 if task == "target" else 7
    spec = landscape.GridSpec.of(cell=cell_ref, task=task, T=Ts, n=N, fit="auto" if task == "target" else "fixed",
                              x=landscape.Axis(names[0], -1.0, 2.0, 3), y=landscape.Axis(names[-1], -2.5, 1.0, 2),
                              cell_options=tuple(opts.items()))
    r = landscape.resolve(spec)
    data = r.problem.task.make(r.Ts, r.n, seed).to(dtype, torch.device("cpu"))
    xs, ys = torch.as_tensor(r.x.values()), torch.as_tensor(r.y.values())
    flat = torch.arange(6)
    params = engine.chunk_params(r.problem.base, r.refs, (xs[flat // 2], ys[flat % 2]), F64, torch.device("cpu"))
    g = torch.Generator().manual_seed(seed + 17)
    params = {k: (v.expand(6, *v.shape[1:]) + 0.5 * torch.randn((6, *v.shape[1:]), generator=g, dtype=F64)
                  if k in names else v).to(dtype) for k, v in params.items()}
    return r, data, params


def torch_outputs(r, data, params):
    """The reference: cell.step unrolled in torch (the engine's plain path), (K, P, N)."""
    return torch.stack([y[..., 0].clone() for _, y in engine.step_outputs(r.problem.cell, params, data, r.Ts, 1)])


def check_generated(launch, cell_ref, opts, task, dtype):
    r, data, params = grid_case(cell_ref, opts, task, dtype)
    got = launch.outputs(r.problem.cell, params, data, r.Ts, 1)
    assert got.shape == (len(r.Ts), 6, data.n) and got.dtype == dtype
    if task == "two-sequence":
        assert bool((data.ends[20] > 20).any()), "no sequence longer than its nominal T"
    torch.testing.assert_close(got, torch_outputs(r, data, params), **TOL[dtype])


@pytest.mark.parametrize("task", ["latch", "target"])
@pytest.mark.parametrize("dtype", [F64, F32], ids=["f64", "f32"])
@pytest.mark.parametrize("name,opts", BUILTIN, ids=[f"{n}-{'-'.join(o.values()) or 'default'}" for n, o in BUILTIN])
def test_generated_kernel_equals_torch_for_every_builtin_cell(name, opts, dtype, task):
    check_generated(_interpreter(), name, opts, task, dtype)


@pytest.mark.parametrize("dtype", [F64, F32], ids=["f64", "f32"])
@pytest.mark.parametrize("name,opts", [("srnn", {}), ("lstm1997", {"gate": "hard_sigmoid"}), ("mut2", {}),
                                       ("gru", {"form": "reset_before"}), ("pascanu", {"observe": "state"})])
def test_generated_kernel_with_variable_lengths(name, opts, dtype):
    check_generated(_interpreter(), name, opts, "two-sequence", dtype)


@pytest.mark.parametrize("task", ["latch", "target", "two-sequence"])
@pytest.mark.parametrize("dtype", [F64, F32], ids=["f64", "f32"])
@pytest.mark.parametrize("ref", [MGU, EVERY_OP], ids=["mgu", "every-op"])
def test_generated_kernel_for_a_user_cell(ref, dtype, task):
    check_generated(_interpreter(), ref, {}, task, dtype)


@pytest.mark.parametrize("cell,why", [(MeanField(), "not elementwise"), (Erratic(), "self-check"),
                                      (WithAtan(), "interpreter")], ids=["mean-over-sequences", "data-dependent", "atan"])
def test_what_the_generator_refuses_keeps_the_torch_path(cell, why):
    launch = _interpreter()
    from landscape.kernels.trace import Unsupported
    from landscape.tasks import get_task

    data = get_task("latch").make((3,), 4, 0)
    params = {k: torch.zeros(2, *s, dtype=F64) for k, s in cell.param_shapes(1, 1).items()}
    with pytest.raises(Unsupported, match=why):  # the engine then keeps the torch path
        launch.outputs(cell, params, data, (3,), 1)
    assert why in launch.why_not(cell, 1, F64)


def test_generated_source_is_cached_by_its_hash(tmp_path, monkeypatch):
    """The source goes into $LANDSCAPE_KERNELS as cell_triton_<hash>.py; lstm and lstm-b (which
    differ only in their initialisation) share one program, hence one file and module."""
    _interpreter()
    from landscape.kernels import runtime
    from landscape.kernels.trace import trace_cell
    from landscape.kernels.triton import codegen as triton_codegen

    monkeypatch.setenv("LANDSCAPE_KERNELS", str(tmp_path))
    monkeypatch.setattr(runtime, "_MODULES", {})  # as in a fresh process
    a, b = (trace_cell(get_cell(n, gate="hard_sigmoid"), 1, F64) for n in ("lstm", "lstm-b"))
    assert triton_codegen.generate(a) == triton_codegen.generate(b)
    ka, kb = triton_codegen.load(a, True), triton_codegen.load(b, True)
    assert ka is kb
    key = triton_codegen.source_key(triton_codegen.generate(a))
    assert (tmp_path / f"cell_triton_{key}.py").read_text() == triton_codegen.generate(a)


COMPILE_CHECK = textwrap.dedent("""
    import torch, triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from landscape.cells import get_cell
    from landscape.kernels.trace import trace_cell
    from landscape.kernels.triton import codegen as triton_codegen, launch
    assert not launch.interpreting()
    cells = [get_cell("lstm1997", gate="hard_sigmoid"), get_cell("mut1"), get_cell({mgu!r}),
             get_cell({every!r}), get_cell("srnn"), get_cell("pascanu"), get_cell("lstm"),
             get_cell("gru"), get_cell("gru", form="reset_before"), get_cell({atan!r})]
    for arch in (80, 90):
        for i, cell in enumerate(cells):
            for dt, dtype in (("fp64", torch.float64), ("fp32", torch.float32)):
                D = (i + (dt == "fp32")) % 2 if i < len(cells) - 1 else 0  # with and without input
                kernel = triton_codegen.load(trace_cell(cell, D, dtype), False)
                sig = {{"packed": f"*{{dt}}", "x": f"*{{dt}}", "ends": "*i32", "flags": "*i32", "out": f"*{{dt}}",
                       "h0_ptr": f"*{{dt}}", "P": "i64", "N": "i32", "K": "i32", "steps": "i32"}}
                cons = {{"HAS_X": D == 1, "BLOCK": launch.BLOCK, "LIBDEVICE": True}}
                sig.update({{c: "constexpr" for c in cons}})
                triton.compile(ASTSource(fn=kernel, signature=sig, constexprs=cons),
                               target=GPUTarget("cuda", arch, 32), options={{"enable_fp_fusion": True}})
    print("compiled")
""").format(mgu=MGU, every=EVERY_OP, atan=str(Path(__file__).resolve()) + ":WithAtan")


@pytest.mark.slow
def test_generated_kernels_compile_for_cuda_without_a_gpu(tmp_path):
    """Generated kernels (lstm1997 with hard-sigmoid gates, MUT1, MGU, every operation, srnn,
    pascanu, lstm, both GRU forms, atan), both dtypes, with and without input, for sm_80 and sm_90. A fresh process: this one may run Triton's
    interpreter (it loads cells from this file, which imports two other test modules)."""
    pytest.importorskip("triton")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["LANDSCAPE_KERNELS"] = str(tmp_path)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "tests"), *filter(None, [env.get("PYTHONPATH")])])
    res = subprocess.run([sys.executable, "-c", COMPILE_CHECK], env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=600)
    if res.returncode != 0 and "ptxas" in res.stderr and "not found" in res.stderr:
        pytest.skip("Triton's CUDA toolchain (ptxas) is not available here")
    assert res.returncode == 0 and "compiled" in res.stdout, res.stderr[-3000:]
