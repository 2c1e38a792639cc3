"""The fused CPU unroll (landscape.kernels.numba.unroll: traced from the cell's step, generated as
numba code) against the truth: the cell's own ``step`` unrolled in torch, one step at a time.

Every built-in one-unit cell and option, float64 and float32, several population shapes, lengths
crossing 64 and 130, variable ends, h0 != 0, no input (D = 0); a user cell written only as a torch
step (MGU); the cases that must fall back to torch (None) with their reason; the threaded runner.

Compiled kernels live in the kernel cache ($LANDSCAPE_KERNELS or ~/.cache/landscape/kernels),
so a second run loads them instead of compiling; within a run each (cell, D, dtype) is built once.
"""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

pytest.importorskip("numba")

from landscape.cells import get_cell  # noqa: E402
from landscape.cells.base import Cell, ParamDecl, bias, linear  # noqa: E402
from landscape import settings  # noqa: E402
from landscape.kernels import runtime  # noqa: E402
from landscape.kernels.numba.unroll import fused_kernel, why_not  # noqa: E402

F64, F32 = torch.float64, torch.float32
ROOT = Path(__file__).resolve().parents[1]

GATED = ("lstm", "lstm-b", "lstm-i", "lstm-o", "lstm-f", "lstm1997", "mut1", "mut2", "mut3")
BUILTIN = ([("srnn", {}), ("pascanu", {})]
           + [(name, {"gate": g}) for name in GATED for g in ("sigmoid", "hard_sigmoid")]
           + [("gru", {"gate": g, "form": f}) for g in ("sigmoid", "hard_sigmoid") for f in ("torch", "reset_before")])


def unroll(cell, params, x, ends, h0):
    """The truth: cell.step one step at a time in torch; (K, P, N) outputs at each sequence's end."""
    P = max(v.shape[0] for v in params.values())
    E = torch.stack(ends)
    K, N = E.shape
    state = cell.initial_state(params, N, 1, h0)
    out = torch.zeros(K, P, N, dtype=next(iter(params.values())).dtype)
    for t in range(1, int(E.max()) + 1):
        state = cell.step(params, state, None if x is None else x[t - 1].unsqueeze(-1))
        y = cell.output(state)[..., 0].expand(P, N)
        for k in range(K):
            here = E[k] == t
            out[k][:, here] = y[:, here]
    return out


def problem(cell, D, P, N, T, seed, dtype=F64, scale=1.0, shared=()):
    """Random parameters (P, *shape) ((1, *shape) for the names in shared), input (T, N), and two
    sets of ends: all T, and random lengths in 1..T."""
    g = torch.Generator().manual_seed(seed)
    params = {k: (scale * torch.randn((1 if k in shared else P, *s), generator=g, dtype=F64)).to(dtype)
              for k, s in cell.param_shapes(1, D).items()}
    x = torch.randn((T, N), generator=g, dtype=F64).to(dtype) if D else None
    ends = [torch.full((N,), T, dtype=torch.int64), torch.randint(1, T + 1, (N,), generator=g)]
    return params, x, ends


def check_f64(got, want):
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-13, equal_nan=True)


def check_f32(cell, params, x, ends, h0, got):
    """float32 within float32 rounding: the kernel's distance to the float64 truth is no more than
    a few times torch's own float32 distance to it (plus a few ulp of the output)."""
    p64 = {k: v.double() for k, v in params.items()}
    want = unroll(cell, p64, None if x is None else x.double(), ends, h0)
    torch32 = unroll(cell, params, x, ends, h0).double()
    ours = (got.double() - want).abs()
    theirs = (torch32 - want).abs()
    allowed = 4 * theirs + 8 * torch.finfo(F32).eps * (1 + want.abs())
    assert bool((ours <= allowed).all()), f"worst excess {(ours - allowed).max().item():.3g}"


# ---------------------------------------------------------------------------------------------
# every built-in cell


@pytest.mark.parametrize("name,opts", BUILTIN, ids=[f"{n}-{'-'.join(map(str, o.values())) or 'default'}"
                                                     for n, o in BUILTIN])
@pytest.mark.parametrize("dtype", [F64, F32])
def test_builtin_cell_matches_its_step(name, opts, dtype):
    cell = get_cell(name, **opts)
    kernel = fused_kernel(cell, 1, dtype)
    assert kernel is not None, why_not(cell, 1, dtype)
    params, x, ends = problem(cell, 1, P=5, N=37, T=70, seed=len(name) + 3 * len(opts))
    params = {k: v.to(dtype) for k, v in params.items()}
    x = x.to(dtype)
    got = kernel.outputs(params, x, ends, 0.2, threads=1)  # N >= 32: the wide loop
    assert got.shape == (2, 5, 37) and got.dtype == dtype
    if dtype == F64:
        check_f64(got, unroll(cell, params, x, ends, 0.2))
    else:
        check_f32(cell, params, x, ends, 0.2, got)


@pytest.mark.parametrize("name,opts", [("srnn", {}), ("lstm", {"gate": "hard_sigmoid"}), ("gru", {"form": "reset_before"}),
                                       ("mut1", {})])
@pytest.mark.parametrize("dtype", [F64, F32])
def test_lanes_loop_for_few_sequences(name, opts, dtype):
    """N = 1 and N = 3 (the lanes loop: members side by side), T crossing 130, members not a
    multiple of the block."""
    cell = get_cell(name, **opts)
    kernel = fused_kernel(cell, 1, dtype)
    for N in (1, 3):
        params, x, ends = problem(cell, 1, P=1031, N=N, T=131, seed=N, dtype=dtype)
        got = kernel.outputs(params, x, ends, -0.4, threads=1)
        assert kernel.checked.get("lanes") is None and "lanes" in kernel.checked
        if dtype == F64:
            check_f64(got, unroll(cell, params, x, ends, -0.4))
        else:
            check_f32(cell, params, x, ends, -0.4, got)


@pytest.mark.parametrize("name", ["pascanu", "srnn", "lstm", "gru"])
@pytest.mark.parametrize("dtype", [F64, F32])
def test_no_input(name, dtype):
    """D = 0 (the target task): pascanu's output is sigmoid of its state; N = 1, shared parameters."""
    cell = get_cell(name)
    kernel = fused_kernel(cell, 0, dtype)
    assert kernel is not None, why_not(cell, 0, dtype)
    names = list(cell.param_shapes(1, 0))
    params, x, ends = problem(cell, 0, P=257, N=1, T=65, seed=7, dtype=dtype, shared=names[1:])
    assert x is None
    got = kernel.outputs(params, None, ends, 0.5, threads=1)
    if dtype == F64:
        check_f64(got, unroll(cell, params, None, ends, 0.5))
    else:
        check_f32(cell, params, None, ends, 0.5, got)


@pytest.mark.parametrize("P,N,T", [(1, 40, 1), (3, 64, 64), (17, 33, 65), (2, 130, 130), (64, 1, 3)])
def test_shapes_and_lengths(P, N, T):
    """Populations and lengths around the block sizes; a leading 1 broadcasts; several outputs."""
    cell = get_cell("lstm")
    kernel = fused_kernel(cell, 1, F64)
    params, x, ends = problem(cell, 1, P=P, N=N, T=T, seed=P + N + T, shared=("b_f", "u_z"))
    ends = ends + [torch.full((N,), max(1, T // 2), dtype=torch.int64)]
    got = kernel.outputs(params, x, ends, 0.0, threads=1)
    assert got.shape == (3, P, N)
    check_f64(got, unroll(cell, params, x, ends, 0.0))


def test_both_loop_orders_and_threads_agree_bit_for_bit():
    cell = get_cell("gru")
    kernel = fused_kernel(cell, 1, F64)
    params, x, ends = problem(cell, 1, P=300, N=50, T=20, seed=3)
    one = kernel.outputs(params, x, ends, 0.1, threads=1, mode="wide")
    assert torch.equal(one, kernel.outputs(params, x, ends, 0.1, threads=1, mode="lanes"))
    assert torch.equal(one, kernel.outputs(params, x, ends, 0.1, threads=2))


def test_overflow_and_nan_follow_torch():
    """Parameters at +-inf and NaN, and an overflowing pre-activation: the same infinities and NaN
    as cell.step (tanh(+-inf) = +-1, NaN stays NaN)."""
    for name in ("srnn", "pascanu", "lstm", "gru"):
        cell = get_cell(name)
        kernel = fused_kernel(cell, 1, F64)
        params, x, ends = problem(cell, 1, P=6, N=40, T=9, seed=11)
        first, last = list(params)[0], list(params)[-1]
        params[first][1] = float("inf")
        params[first][2] = float("-inf")
        params[last][3] = float("nan")
        params[first][4] = 1e308
        got = kernel.outputs(params, x, ends, 0.3, threads=1)
        want = unroll(cell, params, x, ends, 0.3)
        assert torch.equal(torch.isnan(got), torch.isnan(want)), name
        check_f64(got, want)


# ---------------------------------------------------------------------------------------------
# a user's cell: written once as a torch step


@dataclass(frozen=True)
class MGU(Cell):
    """Minimal gated unit (Zhou et al. 2016)."""

    name = "mgu"
    summary = "minimal gated unit"
    equations = "f = sigmoid(w_f h + u_f x + b_f);  h~ = tanh(w_h (f h) + u_h x + b_h);  h' = (1 - f) h + f h~"
    params = (ParamDecl("w_f", "recurrent", "f", 1.0), ParamDecl("w_h", "recurrent", "h", 1.0),
              ParamDecl("u_f", "input", "f", 1.0), ParamDecl("u_h", "input", "h", 1.0),
              ParamDecl("b_f", "bias", "f"), ParamDecl("b_h", "bias", "h"))

    def step(self, p, state, x):
        (h,) = state
        f = torch.sigmoid(linear(h, p["w_f"]) + linear(x, p["u_f"]) + bias(p["b_f"]))
        cand = torch.tanh(linear(f * h, p["w_h"]) + linear(x, p["u_h"]) + bias(p["b_h"]))
        return ((1 - f) * h + f * cand,)


@pytest.mark.parametrize("dtype", [F64, F32])
def test_user_cell_gets_the_fast_path(dtype):
    cell = MGU()
    kernel = fused_kernel(cell, 1, dtype)
    assert kernel is not None, why_not(cell, 1, dtype)
    params, x, ends = problem(cell, 1, P=9, N=45, T=66, seed=5, dtype=dtype)
    got = kernel.outputs(params, x, ends, 0.25, threads=1)
    if dtype == F64:
        check_f64(got, unroll(cell, params, x, ends, 0.25))
    else:
        check_f32(cell, params, x, ends, 0.25, got)


@dataclass(frozen=True)
class Exotic(Cell):
    """Operations beyond the built-ins: in-place, where, clamp, softplus, lerp, matmul over a
    length-one contraction, a constant tensor, a bool -> float conversion."""

    name = "exotic"
    summary = "test cell"
    equations = "-"
    params = (ParamDecl("w", "recurrent", default=0.5), ParamDecl("u", "input", default=1.0),
              ParamDecl("b", "bias"))

    def step(self, p, state, x):
        (h,) = state
        a = h @ p["w"].transpose(-1, -2) + bias(p["b"])  # (P, N, 1) @ (P, 1, 1)
        a = a + linear(x, p["u"])
        a = a.clone()
        a.mul_(0.9)
        pos = (a > 0).to(a.dtype)
        s = torch.where(a > 0.5, torch.nn.functional.softplus(a) - 0.5, torch.clamp(a, -2.0, 0.5))
        s = torch.lerp(s, torch.tanh(a), 0.3) + 0.01 * pos + torch.tensor(0.0, dtype=a.dtype)
        return (torch.maximum(s, torch.full_like(s, -1.5)) * torch.sigmoid(h).sqrt(),)


def test_less_common_operations():
    cell = Exotic()
    kernel = fused_kernel(cell, 1, F64)
    assert kernel is not None, why_not(cell, 1, F64)
    params, x, ends = problem(cell, 1, P=4, N=33, T=12, seed=2)
    check_f64(kernel.outputs(params, x, ends, 0.1, threads=1), unroll(cell, params, x, ends, 0.1))


# ---------------------------------------------------------------------------------------------
# where the fused path must not be taken


@dataclass(frozen=True)
class MeanField(Cell):
    """Couples the sequences: not elementwise over (member, sequence)."""

    name = "meanfield"
    summary = "test cell"
    equations = "-"
    params = (ParamDecl("w", "recurrent", default=1.0), ParamDecl("b", "bias"))

    def step(self, p, state, x):
        (h,) = state
        return (torch.tanh(linear(h, p["w"]) + bias(p["b"]) + h.mean(dim=1, keepdim=True)),)


@dataclass(frozen=True)
class Mixer(Cell):
    """Reads another member's parameter: not elementwise either."""

    name = "mixer"
    summary = "test cell"
    equations = "-"
    params = (ParamDecl("w", "recurrent", default=1.0), ParamDecl("b", "bias"))

    def step(self, p, state, x):
        (h,) = state
        return (torch.tanh(linear(h, p["w"].flip(0)) + bias(p["b"])),)


@dataclass(frozen=True)
class Cumulative(Cell):
    name = "cumulative"
    summary = "test cell"
    equations = "-"
    params = (ParamDecl("w", "recurrent", default=1.0),)

    def step(self, p, state, x):
        (h,) = state
        return (torch.cumsum(linear(h, p["w"]), dim=1),)


_CALLS = []


@dataclass(frozen=True)
class Erratic(Cell):
    """Python control flow the trace cannot see (here: a call counter); the self-check catches it."""

    name = "erratic"
    summary = "test cell"
    equations = "-"
    params = (ParamDecl("w", "recurrent", default=1.0),)

    def step(self, p, state, x):
        (h,) = state
        _CALLS.append(1)
        sign = 1.0 if len(_CALLS) == 1 else -1.0  # the trace is the first call
        return (torch.tanh(sign * linear(h, p["w"])),)


@pytest.mark.parametrize("cell,D,dtype,why", [
    (MeanField(), 0, F64, "not elementwise"),
    (Mixer(), 0, F64, "not elementwise"),
    (Cumulative(), 0, F64, "cumsum"),
    (Erratic(), 0, F64, "self-check"),
    (get_cell("srnn"), 2, F64, None),
    (get_cell("srnn"), 1, torch.float16, None),
], ids=["mean-over-sequences", "other-member", "unknown-op", "data-dependent", "two-inputs", "float16"])
def test_falls_back_to_torch(cell, D, dtype, why):
    assert fused_kernel(cell, D, dtype) is None
    if why is not None:
        assert why in why_not(cell, D, dtype)


def test_fast_off_and_without_numba():
    """LANDSCAPE_FAST=0 turns the dispatch off (the engine then steps cell.step); without numba
    the CPU backend builds no kernel and the dispatch says why."""
    code = ("import torch, landscape; from landscape import engine; from landscape.kernels import fused_losses;"
            "from landscape.kernels.numba.unroll import fused_kernel;"
            "r = landscape.resolve(landscape.GridSpec.of(cell='srnn', T=(3,), n=4, x=landscape.Axis('w', 0, 1, 2),"
            " y=landscape.Axis('b', 0, 1, 2)));"
            "d = r.problem.task.make(r.Ts, r.n, 0).to(torch.float64, 'cpu');"
            "p = engine.chunk_params(r.problem.base, r.refs, (torch.zeros(2), torch.ones(2)), torch.float64, 'cpu');"
            "print(fused_losses(r.problem, p, d, r.Ts)[1]); print(fused_kernel(r.problem.cell, 1, torch.float64))")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "LANDSCAPE_FAST": "0"}, cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.splitlines()[0] == "fused kernels are turned off (LANDSCAPE_FAST=0)", out.stderr
    blocked = ("import sys; sys.modules['numba'] = None; " + code)  # numba not importable
    out = subprocess.run([sys.executable, "-c", blocked], env={**os.environ, "LANDSCAPE_FAST": "1"}, cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.splitlines() == ["numba is not importable", "None"], out.stderr


def test_kernel_cache_files(tmp_path, monkeypatch):
    """The generated source is written into the kernel cache under the hash of its text; identical
    programs (lstm and lstm-b differ only in their initialisation) share one file."""
    from landscape.kernels.numba.codegen import generate, source_key
    from landscape.kernels.trace import trace_cell

    monkeypatch.setenv("LANDSCAPE_KERNELS", str(tmp_path / "kernels"))
    monkeypatch.setenv("LANDSCAPE_CACHE", str(tmp_path / "results"))  # the results' cache does not move them
    assert settings.kernel_dir() == tmp_path / "kernels"
    a = generate(trace_cell(get_cell("lstm"), 1, F64), F64)
    b = generate(trace_cell(get_cell("lstm-b"), 1, F64), F64)
    assert a == b and source_key(a) == source_key(b)
    assert source_key(a) != source_key(generate(trace_cell(get_cell("lstm"), 1, F32), F32))
    path = runtime.write_source(a, f"cell_{source_key(a)}")
    assert path == tmp_path / "kernels" / f"cell_{source_key(a)}.py" and path.read_text() == a
    assert runtime.write_source(a, f"cell_{source_key(a)}") == path  # the second write finds it


def test_bad_arguments_are_clear():
    cell = get_cell("srnn")
    kernel = fused_kernel(cell, 1, F64)
    params, x, ends = problem(cell, 1, P=2, N=40, T=5, seed=0)
    with pytest.raises(ValueError, match="every end must be >= 1"):
        kernel.outputs(params, x, [torch.zeros(40, dtype=torch.int64)], 0.0)
    with pytest.raises(ValueError, match="x must be"):
        kernel.outputs(params, x[:3], ends, 0.0)
    with pytest.raises(KeyError, match="'u' missing"):
        kernel.outputs({"w": params["w"], "b": params["b"]}, x, ends, 0.0)
    with pytest.raises(ValueError, match="unknown mode 'fast'; choose from: wide, lanes"):
        kernel.outputs(params, x, ends, 0.0, mode="fast")


def test_staged_step_gives_the_single_loops_bits():
    """An LSTM's and a GRU's step run (run_wide) as two passes over the block (the gates, then the update:
    ``codegen.passes``) and give the bits of the step as one loop (``generate(.., staged=False)``);
    ``unroll._same_bits``, which decides between the two, tells kernels that differ apart."""
    from landscape.kernels.numba import unroll
    from landscape.kernels.numba.codegen import generate

    for name in ("lstm", "gru"):
        kernel = fused_kernel(get_cell(name), 1, F64)
        wide = kernel.path.read_text().split("def run_lanes")[0]
        assert wide.count("for i in range(m):") == 4  # the initial state, two passes, the capture
        single, _ = unroll._load(generate(kernel.program, F64, staged=False))
        assert single is not kernel.module
        assert unroll._same_bits(kernel.module, single, kernel.program, F64)
    exact, fast = fused_kernel(get_cell("lstm"), 1, F32), fused_kernel(get_cell("lstm"), 1, F32, "fast")
    assert not unroll._same_bits(exact.module, fast.module, exact.program, F32)
