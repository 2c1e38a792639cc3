"""Every elementwise function the tracer (landscape.kernels.trace) accepts, in a user's cell
(examples/cells/one_op.py: h' = op(domain(w h + u x + b))): it runs on the fused kernel, and the
kernel's outputs match the cell's own ``step`` in torch (float64 to 1e-12 relative; float32 within a
few times torch's own float32 distance to the float64 truth). Over one and two steps: what is
compared is the function, not a trajectory (a chaotic map such as sin(1.5 h) turns an ulp into any
difference within a few dozen steps, whichever of the two is the more accurate).

Two kernels fail their self-check (``runtime.self_check``), so the engine keeps torch for them:
tan, whose map is chaotic on the check's random parameters (11 steps, rtol 1e-9; so it was with libm's
tan before), and gelu in float32, where torch's own float32 gelu gives NaN at +inf (float64: inf).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("numba")

from landscape.cells import cell_class, get_cell  # noqa: E402
from landscape.kernels.numba.unroll import fused_kernel, why_not  # noqa: E402
from test_fused_cpu import F32, F64, check_f32, problem, unroll  # noqa: E402

ONE_OP = str(Path(__file__).resolve().parents[1] / "examples" / "cells" / "one_op.py") + ":OneOp"
OPS = sorted(sys.modules[cell_class(ONE_OP).__module__].OPS)
FALLS_BACK = {("tan", F64): "self-check failed: wide: outputs differ", ("tan", F32): "self-check failed",
              ("gelu", F32): "self-check failed: wide: NaN where torch has none"}


def check_f64_rel(got, want):
    """float64: 1e-12 relative, or 1e-15 absolute (outputs are O(1)): where w h + u x + b cancels, its
    one rounding (the kernel contracts it into FMAs, torch does not) is a larger relative change of a
    small output; and torch's gelu_tanh formula, 0.5 x (1 + tanh(..)) near tanh = -1, turns one ulp of
    tanh into a relative error of up to 1e-5 in either implementation. mathfn's own accuracy is
    tested in ulps (tests/test_mathfn.py)."""
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-15, equal_nan=True)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("dtype", [F64, F32], ids=["float64", "float32"])
def test_every_op_runs_fused_and_matches_its_step(op, dtype):
    cell = get_cell(ONE_OP, op=op)
    kernel = fused_kernel(cell, 1, dtype)
    if (op, dtype) in FALLS_BACK:
        assert kernel is None and FALLS_BACK[op, dtype] in why_not(cell, 1, dtype)
        return
    assert kernel is not None, why_not(cell, 1, dtype)
    params, x, ends = problem(cell, 1, P=7, N=200, T=2, seed=3, dtype=dtype, scale=1.5)
    got = kernel.outputs(params, x, ends, 0.3, threads=1)
    if dtype == F64:
        check_f64_rel(got, unroll(cell, params, x, ends, 0.3))
    else:
        check_f32(cell, params, x, ends, 0.3, got)


@pytest.mark.parametrize("op", ["sin", "cos", "atan", "log1p", "expm1", "asinh", "floor", "round"])
def test_no_libm_call_is_left(op):
    """The functions with a vectorisable form in mathfn leave no scalar libm call in the kernel."""
    cell = get_cell(ONE_OP, op=op)
    kernel = fused_kernel(cell, 1, F64)
    source = Path(kernel.path).read_text()
    assert "math." not in "\n".join(line for line in source.splitlines() if line.startswith("        "))


# ---------------------------------------------------------------------------------------------
# the ops that still call libm per value: the fused kernel or torch, by measurement


def _grid(op):
    import landscape
    from landscape.resolved import resolve

    spec = landscape.GridSpec.of(cell=ONE_OP, cell_options={"op": op}, T=(3,), n=8, x=landscape.Axis("w", -1, 1, 3),
                                 y=landscape.Axis("b", -1, 1, 2))
    r = resolve(spec)
    data = r.problem.task.make(r.Ts, r.n, 0)
    from landscape import engine

    params = engine.chunk_params(r.problem.base, r.refs, (torch.zeros(4, dtype=F64), torch.ones(4, dtype=F64)), F64,
                                 "cpu")
    return r, data, params


@pytest.mark.parametrize("op,calls", [("erf", {"erf"}), ("pow", {"pow"}), ("sin", set()), ("atan", set()), ("gelu", {"erf"})])
def test_scalar_calls(op, calls):
    from landscape.kernels.numba.codegen import scalar_calls

    assert scalar_calls(fused_kernel(get_cell(ONE_OP, op=op), 1, F64).program) == calls


@pytest.mark.parametrize("fused_s,torch_s,path", [(1.0, 2.0, "fused"), (2.0, 1.0, "torch")])
def test_measured_choice_is_kept_and_cached(tmp_path, monkeypatch, fused_s, torch_s, path):
    """A program with a scalar libm call takes the path measured faster; the measurement is made
    once and read back from the kernel cache by a later process (here: a cleared memo)."""
    from landscape.kernels.numba import choice, losses

    from landscape.kernels import runtime

    monkeypatch.setattr(runtime, "note_path", lambda name: tmp_path / f"{name}.json")
    monkeypatch.setattr(choice, "_DECIDED", {})
    measured = []
    monkeypatch.setattr(choice, "_measure", lambda *a: measured.append(1) or {"fused_s": fused_s, "torch_s": torch_s})
    r, data, params = _grid("erf")
    for _ in range(2):
        if path == "fused":
            got = losses.losses(r.problem, params, data, r.Ts, threads=1)
            from landscape import engine

            torch.testing.assert_close(got, engine.unroll_losses(r.problem, params, data, r.Ts, fast=False),
                                       rtol=1e-12, atol=0)
        else:
            from landscape.kernels.trace import Unsupported

            with pytest.raises(Unsupported, match="torch measured faster for this cell .* for erf"):
                losses.losses(r.problem, params, data, r.Ts, threads=1)
        choice._DECIDED.clear()  # as a new process: the file beside the kernel answers
    assert measured == [1]
    assert len(list(tmp_path.glob("choice_*-1.json"))) == 1


def test_vectorised_ops_are_never_measured(monkeypatch):
    from landscape.kernels.numba import choice, losses

    monkeypatch.setattr(choice, "_measure", lambda *a: pytest.fail("measured a program without a libm call"))
    r, data, params = _grid("softplus")
    losses.losses(r.problem, params, data, r.Ts, threads=1)
