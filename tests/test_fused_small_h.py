"""The fused kernels for 1 < H <= 32 (landscape.kernels.numba.units, traced per unit by
kernels.trace.trace_units; straight-line code up to H = 8, the register-blocked products of
kernels.numba.matvec above) against the truth: the engine's ``cell.step`` path in torch
(``engine.unroll_losses(..., fast=False)``), on non-square grids, fixed and optimal readouts,
float64 and float32; the tracer's own checks (what mixes members or sequences falls back, with
its reason); the dispatch.

Every built-in cell at H = 2, 3, 8 and 16, and srnn, gru, lstm, MUT1 and MUT3 at 32, is the slow
matrix (a kernel per (cell, H) compiles in seconds, up to about a minute at H = 32; the kernel
cache, $LANDSCAPE_KERNELS, keeps them for the next run); srnn, gru, lstm at H = 2 and 16, MUT3 at H = 10 (products of products, a partial
tile), a user cell (examples/cells/mgu.py) at H = 3 run always.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

pytest.importorskip("numba")

import landscape  # noqa: E402
from landscape import Axis, GridSpec, engine  # noqa: E402
from landscape.cells import CELLS, get_cell  # noqa: E402
from landscape.cells.base import Cell, ParamDecl, bias, linear  # noqa: E402
from landscape.kernels import fused_losses  # noqa: E402
from landscape.kernels.numba import units  # noqa: E402
from landscape.kernels.trace import Unsupported, trace_units  # noqa: E402
from landscape.directions import make_plane  # noqa: E402

CPU = torch.device("cpu")
ROOT = Path(__file__).resolve().parents[1]
BUILTIN = ("srnn", "pascanu", "linear", "irnn", "lstm", "lstm-b", "lstm-i", "lstm-o", "lstm-f", "lstm1997", "gru",
           "mut1", "mut2", "mut3")


def grid(spec, dtype=torch.float64):
    """The resolved spec, its task's data and the parameters of every grid point (P = x * y)."""
    r = landscape.resolve(spec)
    data = r.problem.task.make(r.Ts, r.n, spec.seed).to(dtype, CPU)
    if r.on_plane:  # every parameter moves: base + a d1 + b d2
        plane = make_plane(spec.directions, r.problem, r.problem.base, seed=spec.direction_seed)
        return r, data, plane.grid_params(r.x.values(), r.y.values(), dtype)
    xs, ys = torch.as_tensor(r.x.values()), torch.as_tensor(r.y.values())
    flat = torch.arange(len(xs) * len(ys))
    params = engine.chunk_params(r.problem.base, r.refs, (xs[flat // len(ys)], ys[flat % len(ys)]), dtype, CPU)
    return r, data, params


def spec_for(cell: str, H: int, fit: str, **extra) -> GridSpec:
    """A 5 x 3 plane through an off-diagonal recurrent weight and a bias of unit 1 (the units
    interact), random directions elsewhere being the trained-network case the kernels are for.
    mut1 and mut2 need D = H or no input: the 'target' task (no input, one sequence, identity
    readout: ``fit`` does not apply)."""
    c = get_cell(cell)
    w, b = c.block_input or ("w", "b")
    if cell in ("mut1", "mut2"):
        task, n, fit = "target", 1, "fixed"
    else:
        task, n = "latch", 37
    return GridSpec.of(cell=cell, task=task, hidden=H, T=(4, 23), n=n, fit=fit, x=Axis(f"{w}[1,0]", -1.5, 2, 5),
                       y=Axis(f"{b}[1]", -1, 1, 3), **extra)


def check(spec, dtype=torch.float64):
    r, data, params = grid(spec, dtype)
    with torch.no_grad():
        want = engine.unroll_losses(r.problem, params, data, r.Ts, fast=False)
        got, why = fused_losses(r.problem, params, data, r.Ts)
    assert why is None and got is not None, why
    assert got.shape == want.shape and got.dtype == want.dtype
    tol = dict(rtol=1e-12, atol=1e-14) if dtype == torch.float64 else dict(rtol=2e-4, atol=1e-6)
    torch.testing.assert_close(got, want, **tol)


@pytest.mark.parametrize("cell", ["srnn", "gru", "lstm"])
@pytest.mark.parametrize("fit", ["fixed", "optimal"])
def test_h2_equals_the_torch_path(cell, fit):
    check(spec_for(cell, 2, fit))


@pytest.mark.parametrize("cell", ["srnn", "gru", "lstm"])
def test_h16_equals_the_torch_path(cell):
    """Above H = 8 the register-blocked products (kernels.numba.matvec)."""
    check(spec_for(cell, 16, "fixed"))


def test_products_of_products():
    """MUT3's W_h (r h) needs W_r h first: three products (W_z tanh(h) and W_r h, then W_h (r h)),
    values kept between passes (tanh(h), r h); 10 rows each, a partial tile of 2."""
    check(spec_for("mut3", 10, "optimal"))


# every built-in cell at 2, 3, 8 (straight-line code) and 16 (the products' tiles); at 32, the same
# generator with twice the tiles, the cells of each kind of product (W h, W [x, h], MUT's W (r h))
EVERY = [(cell, H) for cell in BUILTIN for H in (2, 3, 8, 16)] + [(cell, 32) for cell in ("srnn", "gru", "lstm", "mut1",
                                                                                          "mut3")]


@pytest.mark.slow
@pytest.mark.parametrize("cell, H", EVERY)
def test_every_builtin_cell(cell, H):
    if cell in ("mut1", "mut2") and H > units.STRAIGHT_H:  # their grids have one sequence: the kernel itself
        check_kernel(get_cell(cell), H, 0)
    else:
        check(spec_for(cell, H, "optimal" if H in (3, 16) else "fixed"))


def check_kernel(cell, H, D, N=70):
    """The kernel's outputs against ``cell.step`` unrolled in torch (``units.reference_outputs``)."""
    kernel = units.unit_kernel(cell, H, D, torch.float64)
    assert kernel is not None, units.why_not(cell, H, D, torch.float64)
    g = torch.Generator().manual_seed(5)
    params = {k: torch.randn((3, *s), generator=g, dtype=torch.float64) / H ** 0.5
              for k, s in cell.param_shapes(H, D).items()}
    x = torch.randn((7, N, D), generator=g, dtype=torch.float64) if D else None
    ends = [torch.full((N,), 7), torch.randint(1, 8, (N,), generator=g)]
    want = units.reference_outputs(cell, H, params, x, ends, 0.2)
    torch.testing.assert_close(kernel.outputs(params, x, ends, 0.2), want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("H", [3, 8, 16])
def test_float32(H):
    check(spec_for("gru", H, "fixed"), torch.float32)


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["srnn", "lstm", "gru"])
def test_float32_h32(cell):
    check(spec_for(cell, 32, "fixed"), torch.float32)


def test_random_directions_move_every_parameter():
    """--directions random: every element of every matrix varies over the plane (the trained
    network case); one kernel serves it."""
    spec = GridSpec.of(cell="gru", task="latch", hidden=3, T=(9,), n=20, fit="fixed", directions="random",
                       x=Axis("a", -1, 1, 4), y=Axis("b", -1, 1, 3))
    params = grid(spec)[2]
    assert all(v.shape[0] == 12 for v in params.values())
    check(spec)


def test_a_user_cell_file():
    mgu = CELLS.get(f"{ROOT / 'examples/cells/mgu.py'}:MGU")
    check(GridSpec.of(cell=f"{ROOT / 'examples/cells/mgu.py'}:MGU", task="latch", hidden=3, T=(6, 15), n=25,
                      fit="fixed", x=Axis(f"{mgu.block_input[0]}[0,2]", -1, 2, 4), y=Axis(f"{mgu.block_input[1]}[2]",
                                                                                         -1, 1, 3)))


@pytest.mark.parametrize("H", [3, 12])
def test_a_sum_over_units_and_a_constant_vector(H):
    """A step that sums over the units (a reduction of size H) and adds a constant vector that
    differs per unit traces too (the sum k ascending, as torch adds H values); at H = 12 every
    elementwise function of the matvec kernel computes the sum (each reads every unit's row)."""
    cell = _Summing()
    kernel = units.unit_kernel(cell, H, 1, torch.float64)
    assert kernel is not None, units.why_not(cell, H, 1, torch.float64)
    g = torch.Generator().manual_seed(3)
    params = {k: torch.randn((4, *s), generator=g, dtype=torch.float64) / H ** 0.5
              for k, s in cell.param_shapes(H, 1).items()}
    x = torch.randn((9, 37, 1), generator=g, dtype=torch.float64)
    ends = [torch.full((37,), 9), torch.randint(1, 10, (37,), generator=g)]
    want = units.reference_outputs(cell, H, params, x, ends, 0.1)
    torch.testing.assert_close(kernel.outputs(params, x, ends, 0.1), want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("H", [3, 10])
def test_a_function_beyond_tanh_and_sigmoid(H):
    """A step that calls sin (mathfn's vectorised form, imported by the module only where used)
    runs fused in both forms, straight-line (H = 3) and matvec (H = 10)."""
    check_kernel(_Sine(), H, 1)


@dataclass(frozen=True)
class _Sine(Cell):
    name = "sine"
    params = (ParamDecl("w", "recurrent"), ParamDecl("u", "input"), ParamDecl("b", "bias"))

    def step(self, p, state, x):
        (h,) = state
        return (torch.sin(linear(h, p["w"]) + linear(x, p["u"]) + bias(p["b"])),)


@dataclass(frozen=True)
class _Summing(Cell):
    name = "summing"
    params = (ParamDecl("w", "recurrent"), ParamDecl("u", "input"), ParamDecl("b", "bias"))

    def step(self, p, state, x):
        (h,) = state
        pre = linear(h, p["w"]) + linear(x, p["u"]) + bias(p["b"])
        offset = torch.arange(h.shape[-1], dtype=h.dtype) / 4  # (H,) a different constant per unit
        return (torch.tanh(pre + offset) * 0.5 + 0.5 * torch.tanh(pre.sum(-1, keepdim=True)),)


@dataclass(frozen=True)
class _MixesSequences(Cell):
    """h' = tanh(w h + b) plus the mean over the sequences: not one formula per sequence."""
    name = "mixer"
    params = (ParamDecl("w", "recurrent"), ParamDecl("b", "bias"))

    def step(self, p, state, x):
        (h,) = state
        return (torch.tanh(linear(h, p["w"]) + bias(p["b"]) + h.mean(-2, keepdim=True)),)


def test_what_mixes_sequences_falls_back_with_its_reason():
    with pytest.raises(Unsupported, match="size > 1|mixes"):
        trace_units(_MixesSequences(), 3, 0)
    assert units.unit_kernel(_MixesSequences(), 3, 0, torch.float64) is None
    assert "mixes" in units.why_not(_MixesSequences(), 3, 0, torch.float64)


def test_the_dispatch():
    """H = 2..32 runs fused on the CPU (above H = 8 from 16 sequences); H = 33, fewer sequences,
    gradients and LANDSCAPE_FAST=0 take the torch path."""
    spec = spec_for("srnn", 2, "fixed")
    r, data, params = grid(spec)
    with torch.no_grad():
        assert fused_losses(r.problem, params, data, r.Ts)[1] is None
        assert fused_losses(r.problem, params, data, r.Ts, fast=False)[0] is None
    grad = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    assert "gradients" in fused_losses(r.problem, grad, data, r.Ts)[1]
    big = landscape.resolve(GridSpec.of(cell="srnn", task="latch", hidden=33, T=(3,), n=4, fit="fixed",
                                        x=Axis("w[0,1]", -1, 1, 2), y=Axis("b[1]", -1, 1, 2)))
    assert fused_losses(big.problem, params, data, r.Ts) == (None, "the fused kernels take H = 1 to 32 (H = 33)")
    for n, why in [(15, "15 sequences: the fused kernels for H > 8 compute blocks of 64 (torch is faster below 16)"),
                   (16, None)]:  # above H = 8, fewer than a quarter of a block of 64 sequences falls back
        r10, data10, params10 = grid(GridSpec.of(cell="srnn", task="latch", hidden=10, T=(3,), n=n, fit="fixed",
                                                 x=Axis("w[0,1]", -1, 1, 2), y=Axis("b[1]", -1, 1, 2)))
        with torch.no_grad():
            assert fused_losses(r10.problem, params10, data10, r10.Ts)[1] == why
    kernel = units.unit_kernel(get_cell("srnn"), 2, 1, torch.float64)
    wrong = {k: v[:, :1] if v.dim() > 1 else v for k, v in params.items()}
    with pytest.raises(ValueError, match="elements"):
        kernel.outputs(wrong, data.inputs, [data.ends[4]], 0.0)
