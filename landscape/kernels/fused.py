"""Fused recurrent kernels in Triton for every one-unit cell (H = 1, input size D <= 1).

One program handles a block of BLOCK (member, sequence) pairs of the flattened (P, N) population.
It loads its members' parameters once, keeps the state in registers through all T, reads the
shared input x_t (N,) of each step, and writes only the outputs y at the requested lengths into
out (K, P, N): y_T for each sequence at its own end (``data.ends``), so variable lengths work too.
The loss (and the optimal readout fit) is then taken in torch.

Two kinds of kernel, with one signature and one output contract:

- hand-written and tuned, below: srnn, pascanu (observe=sigmoid), lstm and lstm-b, gru (both
  forms), each with sigmoid gates (``KERNELS``);
- generated from the cell's own step (``triton_codegen``) for every other cell the CPU path's
  tracer accepts (``trace.trace_cell``): lstm-i/-o/-f, lstm1997, mut1-3, linear, irnn, pascanu
  (observe=state), the hard-sigmoid gates, a user's cell (examples/cells/mgu.py:MGU). The program
  is traced once per (cell, D, dtype), written as a module into the kernel cache, imported, and
  checked against ``cell.step`` on random inputs (with an inf and a NaN member) before its first
  use; a cell the tracer refuses, or whose kernel fails the check, gets None (``why_not`` says
  why), and the engine keeps the torch path.

Used by the engine on CUDA when Triton is installed (``LANDSCAPE_FUSED=0`` turns it off). With
TRITON_INTERPRET=1 set before triton is imported, the same kernels run on CPU tensors in Triton's
interpreter (numpy, slow): that is how the tests check them without a GPU (and then CUDA tensors
take the plain path: a process has either compiled or interpreted Triton). tanh is libdevice's on
the GPU and (1 - e^-2|a|) / (1 + e^-2|a|) in the interpreter (libdevice has no interpreter form);
sigmoid is 1 / (1 + e^-a) in both.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import torch
from torch import Tensor

from ..cells.elman import SRNN, Pascanu
from ..cells.gated import GRU, LSTM, LSTMB

try:  # Triton is optional: without it the engine keeps the plain path
    import triton
    import triton.language as tl
    from triton.language.extra import libdevice
except ImportError:  # pragma: no cover - depends on the environment
    triton = None

BLOCK = 256  # (member, sequence) pairs per program
DTYPES = (torch.float32, torch.float64)


@dataclass(frozen=True)
class Coverage:
    """Which cells (exact classes) and options a kernel runs, and the parameter columns it reads in
    order (one (P, G) array; a shared parameter is repeated; an absent one is zero)."""

    cells: tuple[type, ...]
    params: tuple[str, ...]
    options: tuple[tuple[str, tuple], ...] = ()

    def covers(self, cell) -> bool:
        return type(cell) in self.cells and all(getattr(cell, k, None) in v for k, v in self.options)


KERNELS = {
    "srnn": Coverage((SRNN,), ("w", "u", "b")),
    "pascanu": Coverage((Pascanu,), ("w", "u", "b"), (("observe", ("sigmoid",)),)),
    "lstm": Coverage((LSTM, LSTMB), tuple(f"{r}_{g}" for r in "wub" for g in "ifzo"), (("gate", ("sigmoid",)),)),
    "gru": Coverage((GRU,), ("w_z", "w_r", "w_h", "u_z", "u_r", "u_h", "b_z", "b_r", "b_h", "b_hn"),
                    (("gate", ("sigmoid",)), ("form", ("torch", "reset_before")))),
}
KERNEL_PARAMS = {name: k.params for name, k in KERNELS.items()}


def kernel_name(cell, H: int, D: int) -> str | None:
    """Which fused kernel runs this cell, or None (H > 1, D > 1, no kernel covers the cell or option)."""
    if H != 1 or D > 1:
        return None
    return next((name for name, k in KERNELS.items() if k.covers(cell)), None)


def available() -> bool:
    return triton is not None and os.environ.get("LANDSCAPE_FUSED", "1") != "0"


def outputs(cell, params: dict[str, Tensor], data, Ts: tuple[int, ...], H: int,
            generated: bool = False) -> Tensor | None:
    """The outputs y (K, P, N) at each requested T from a fused kernel, or None where none applies:
    Triton missing or turned off, H > 1 or D > 1, a cell the tracer refuses (or whose generated
    kernel fails its self-check), a dtype other than float32/64, parameters that need gradients.
    The hand-written kernel where one covers the cell, else the kernel generated from its traced
    step (``generated=True``: that one always, for tests and comparisons). CUDA tensors run
    compiled; CPU tensors only in Triton's interpreter (TRITON_INTERPRET=1: for tests)."""
    D = 0 if data.inputs is None else data.inputs.shape[-1]
    ref = next(iter(params.values()))
    if (H != 1 or D > 1 or not available() or ref.dtype not in DTYPES
            or (torch.is_grad_enabled() and any(v.requires_grad for v in params.values()))):
        return None
    if interpreting() != (ref.device.type != "cuda"):  # compiled on CUDA; the interpreter on the CPU
        return None
    name = None if generated else kernel_name(cell, H, D)
    if name is not None:
        kernel, columns = _kernels(interpreting())[name], KERNEL_PARAMS[name]
        extra = {"RESET_AFTER": cell.form == "torch"} if name == "gru" else {}
    else:
        built = generated_kernel(cell, D, ref.dtype)
        if built is None:
            return None
        kernel, program = built
        columns, extra = program.params, {}
    x = None if data.inputs is None else data.inputs[..., 0]
    return _launch(kernel, columns, params, x, [data.ends[T] for T in Ts], data.h0, data.steps, extra)


def _launch(kernel, columns, params, x, ends, h0, steps, extra) -> Tensor:
    """Run a kernel: params name -> (P|1, ...) packed in the order of ``columns`` (an absent name:
    zeros), x (T, N) or None, ends K tensors (N,), the initial state h0; out (K, P, N)."""
    ref = next(iter(params.values()))
    device, dtype = ref.device, ref.dtype
    P = max(v.shape[0] for v in params.values())
    N, K = ends[0].shape[0], len(ends)
    cols = [torch.zeros(P, dtype=dtype, device=device) if params.get(key) is None  # no input weights (D = 0), or
            else params[key].reshape(params[key].shape[0]).to(dtype).expand(P)  # the torch-form GRU's b_hn
            for key in columns] or [torch.zeros(P, dtype=dtype, device=device)]
    packed = torch.stack(cols, 1).contiguous()  # (P, G)
    xs = (torch.zeros(1, dtype=dtype, device=device) if x is None else x.to(dtype).contiguous())  # (T, N)
    ends = torch.stack([e.to(device=device, dtype=torch.int32) for e in ends]).contiguous()  # (K, N)
    flags = torch.zeros(steps + 1, dtype=torch.int32, device=device)
    flags[ends.reshape(-1).long()] = 1  # flags[t] = 1 where some sequence ends at step t
    out = torch.empty(K, P, N, dtype=dtype, device=device)
    h0 = torch.full((1,), float(h0), dtype=dtype, device=device)  # in the dtype: a float argument is fp32
    grid = (triton.cdiv(P * N, BLOCK),)
    if not interpreting():
        extra = {**extra, "enable_fp_fusion": True}  # a * b + c as one FMA (Triton's default, stated: it warns otherwise)
    with torch.cuda.device(device) if device.type == "cuda" else _quiet_numpy():
        kernel[grid](packed, xs, ends, flags, out, h0, P, N, K, steps,
                     HAS_X=x is not None, BLOCK=BLOCK, LIBDEVICE=device.type == "cuda", **extra)
    return out


def _quiet_numpy():
    """The interpreter computes in numpy: overflow to inf and NaN operands are meant (as in torch)."""
    import numpy as np

    return np.errstate(all="ignore")


# ---------------------------------------------------------------------------------------------
# kernels generated from the traced step (triton_codegen)

_WHY: dict = {}  # (cell description, D, dtype) -> why generated_kernel gave None (tests, debugging)


def why_not(cell, D: int, dtype: torch.dtype) -> str | None:
    """Why ``generated_kernel`` gave None for these arguments (None when it did not)."""
    return _WHY.get((cell.describe(), D, str(dtype)))


def generated_kernel(cell, D: int, dtype: torch.dtype):
    """(kernel, program): the Triton kernel generated from the cell's traced step for input size D
    and dtype, checked against ``cell.step`` when built; None where the tracer refuses the cell,
    the program has an operation without Triton code, or the check fails (``why_not`` says which).
    Built once per (cell, D, dtype, interpreted or compiled) in a process."""
    try:
        return _cached_generated(cell, D, dtype, interpreting())
    except TypeError:  # an unhashable cell: build without the cache
        return _build_generated(cell, D, dtype, interpreting())


@functools.lru_cache(maxsize=None)
def _cached_generated(cell, D, dtype, interpret):
    return _build_generated(cell, D, dtype, interpret)


def _build_generated(cell, D, dtype, interpret):
    from . import triton_codegen
    from .fused_cpu import self_check
    from .trace import Unsupported, trace_cell

    tag = (cell.describe(), D, str(dtype))
    try:
        program = trace_cell(cell, D, dtype)
        kernel = triton_codegen.load(program, interpret)
    except Unsupported as err:
        _WHY[tag] = str(err)
        return None
    device = torch.device("cpu" if interpret else "cuda")
    try:  # on random inputs with an inf and a NaN member (what a single trace cannot see: control flow)
        problem = self_check(_Checked(cell, D, dtype, kernel, program.params, device), modes=("triton",))
    except Exception as err:  # pragma: no cover - a compile failure of the generated code
        problem = f"{type(err).__name__}: {err}"
    if problem is not None:
        _WHY[tag] = f"the self-check failed: {problem}"
        return None
    _WHY.pop(tag, None)
    return kernel, program


@dataclass
class _Checked:
    """A generated kernel as ``fused_cpu.self_check`` calls it (CPU tensors in and out)."""

    cell: object
    D: int
    dtype: torch.dtype
    kernel: object
    columns: tuple
    device: torch.device

    def outputs(self, params, x, ends, h0, threads=None, mode=None) -> Tensor:
        dev = self.device
        params = {k: v.to(dev) for k, v in params.items()}
        steps = max(int(e.max()) for e in ends)
        return _launch(self.kernel, self.columns, params, None if x is None else x.to(dev),
                       [e.to(dev) for e in ends], h0, steps, {}).cpu()


def interpreting() -> bool:
    """Whether Triton runs its interpreter (TRITON_INTERPRET=1 before triton was imported)."""
    knobs = getattr(triton, "knobs", None)  # Triton >= 3.4; before, the variable is read directly
    if knobs is not None:
        return bool(knobs.runtime.interpret)
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


@functools.lru_cache(maxsize=None)
def _kernels(interpret: bool) -> dict:
    """The kernels, decorated by ``triton.jit``: compiled, or interpreted under TRITON_INTERPRET."""
    return {"srnn": triton.jit(_one_state_kernel_tanh), "pascanu": triton.jit(_one_state_kernel_sigmoid),
            "lstm": triton.jit(_lstm_kernel), "gru": triton.jit(_gru_kernel)}


# ---------------------------------------------------------------------------------------------
# The kernels. Arguments: packed (P, G) parameters, x (T, N) inputs (ignored unless HAS_X), ends
# (K, N) int32 end step of each sequence for each requested length, flags (steps + 1,) int32 with
# 1 where some sequence ends, out (K, P, N), h0_ptr (1,) the initial state in the kernel's dtype.
# Each program: BLOCK consecutive flat indices p N + n.
# Helpers are written inline: a kernel may call only kernels of its own kind (compiled or
# interpreted), and these are built both ways.


def _one_state_kernel_tanh(packed, x, ends, flags, out, h0_ptr, P, N, K, steps,
                           HAS_X: tl.constexpr, BLOCK: tl.constexpr, LIBDEVICE: tl.constexpr):
    """srnn: h' = tanh(w h + u x + b); the output is h."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    PN = tl.cast(P, tl.int64) * N  # out's stride between lengths, in 64 bits
    mask = offs < PN
    p = offs // N
    n = offs % N
    w = tl.load(packed + p * 3, mask=mask, other=0.0)
    u = tl.load(packed + p * 3 + 1, mask=mask, other=0.0)
    b = tl.load(packed + p * 3 + 2, mask=mask, other=0.0)
    h = tl.zeros([BLOCK], dtype=w.dtype) + tl.load(h0_ptr)
    for t in range(steps):
        a = w * h + b
        if HAS_X:
            a = a + u * tl.load(x + t * N + n, mask=mask, other=0.0)
        if LIBDEVICE:
            h = libdevice.tanh(a)
        else:
            e = tl.exp(-2.0 * tl.abs(a))
            th = (1.0 - e) / (1.0 + e)
            h = tl.where(a < 0, -th, th)
        if tl.load(flags + t + 1) != 0:
            for k in range(K):
                end = tl.load(ends + k * N + n, mask=mask, other=0)
                tl.store(out + k * PN + offs, h, mask=mask & (end == t + 1))


def _one_state_kernel_sigmoid(packed, x, ends, flags, out, h0_ptr, P, N, K, steps,
                              HAS_X: tl.constexpr, BLOCK: tl.constexpr, LIBDEVICE: tl.constexpr):
    """pascanu: s' = w sigmoid(s) + u x + b, output sigmoid(s); carries v = sigmoid(s)."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    PN = tl.cast(P, tl.int64) * N  # out's stride between lengths, in 64 bits
    mask = offs < PN
    p = offs // N
    n = offs % N
    w = tl.load(packed + p * 3, mask=mask, other=0.0)
    u = tl.load(packed + p * 3 + 1, mask=mask, other=0.0)
    b = tl.load(packed + p * 3 + 2, mask=mask, other=0.0)
    v = 1.0 / (1.0 + tl.exp(-(tl.zeros([BLOCK], dtype=w.dtype) + tl.load(h0_ptr))))
    for t in range(steps):
        a = w * v + b
        if HAS_X:
            a = a + u * tl.load(x + t * N + n, mask=mask, other=0.0)
        v = 1.0 / (1.0 + tl.exp(-a))
        if tl.load(flags + t + 1) != 0:
            for k in range(K):
                end = tl.load(ends + k * N + n, mask=mask, other=0)
                tl.store(out + k * PN + offs, v, mask=mask & (end == t + 1))


def _lstm_kernel(packed, x, ends, flags, out, h0_ptr, P, N, K, steps,
                 HAS_X: tl.constexpr, BLOCK: tl.constexpr, LIBDEVICE: tl.constexpr):
    """lstm: i, f, o = sigmoid, z = tanh of w h + u x + b; c' = f c + i z; h' = o tanh(c')."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    PN = tl.cast(P, tl.int64) * N  # out's stride between lengths, in 64 bits
    mask = offs < PN
    p = offs // N
    n = offs % N
    base = packed + p * 12
    w_i = tl.load(base, mask=mask, other=0.0)
    w_f = tl.load(base + 1, mask=mask, other=0.0)
    w_z = tl.load(base + 2, mask=mask, other=0.0)
    w_o = tl.load(base + 3, mask=mask, other=0.0)
    u_i = tl.load(base + 4, mask=mask, other=0.0)
    u_f = tl.load(base + 5, mask=mask, other=0.0)
    u_z = tl.load(base + 6, mask=mask, other=0.0)
    u_o = tl.load(base + 7, mask=mask, other=0.0)
    b_i = tl.load(base + 8, mask=mask, other=0.0)
    b_f = tl.load(base + 9, mask=mask, other=0.0)
    b_z = tl.load(base + 10, mask=mask, other=0.0)
    b_o = tl.load(base + 11, mask=mask, other=0.0)
    h = tl.zeros([BLOCK], dtype=w_i.dtype) + tl.load(h0_ptr)
    c = tl.zeros([BLOCK], dtype=w_i.dtype) + tl.load(h0_ptr)
    for t in range(steps):
        a_i = w_i * h + b_i
        a_f = w_f * h + b_f
        a_z = w_z * h + b_z
        a_o = w_o * h + b_o
        if HAS_X:
            xt = tl.load(x + t * N + n, mask=mask, other=0.0)
            a_i = a_i + u_i * xt
            a_f = a_f + u_f * xt
            a_z = a_z + u_z * xt
            a_o = a_o + u_o * xt
        i = 1.0 / (1.0 + tl.exp(-a_i))
        f = 1.0 / (1.0 + tl.exp(-a_f))
        o = 1.0 / (1.0 + tl.exp(-a_o))
        if LIBDEVICE:
            z = libdevice.tanh(a_z)
        else:
            e = tl.exp(-2.0 * tl.abs(a_z))
            th = (1.0 - e) / (1.0 + e)
            z = tl.where(a_z < 0, -th, th)
        c = f * c + i * z
        if LIBDEVICE:
            tc = libdevice.tanh(c)
        else:
            e = tl.exp(-2.0 * tl.abs(c))
            th = (1.0 - e) / (1.0 + e)
            tc = tl.where(c < 0, -th, th)
        h = o * tc
        if tl.load(flags + t + 1) != 0:
            for k in range(K):
                end = tl.load(ends + k * N + n, mask=mask, other=0)
                tl.store(out + k * PN + offs, h, mask=mask & (end == t + 1))


def _gru_kernel(packed, x, ends, flags, out, h0_ptr, P, N, K, steps,
                HAS_X: tl.constexpr, BLOCK: tl.constexpr, LIBDEVICE: tl.constexpr, RESET_AFTER: tl.constexpr):
    """gru: z, r = sigmoid(w h + u x + b); torch form (RESET_AFTER) h~ = tanh(u_h x + b_h + r (w_h h + b_hn)),
    reset_before h~ = tanh(w_h (r h) + u_h x + b_h); h' = z h + (1 - z) h~."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    PN = tl.cast(P, tl.int64) * N  # out's stride between lengths, in 64 bits
    mask = offs < PN
    p = offs // N
    n = offs % N
    base = packed + p * 10
    w_z = tl.load(base, mask=mask, other=0.0)
    w_r = tl.load(base + 1, mask=mask, other=0.0)
    w_h = tl.load(base + 2, mask=mask, other=0.0)
    u_z = tl.load(base + 3, mask=mask, other=0.0)
    u_r = tl.load(base + 4, mask=mask, other=0.0)
    u_h = tl.load(base + 5, mask=mask, other=0.0)
    b_z = tl.load(base + 6, mask=mask, other=0.0)
    b_r = tl.load(base + 7, mask=mask, other=0.0)
    b_h = tl.load(base + 8, mask=mask, other=0.0)
    b_hn = tl.load(base + 9, mask=mask, other=0.0)
    h = tl.zeros([BLOCK], dtype=w_z.dtype) + tl.load(h0_ptr)
    for t in range(steps):
        a_z = w_z * h + b_z
        a_r = w_r * h + b_r
        a_h = b_h
        if HAS_X:
            xt = tl.load(x + t * N + n, mask=mask, other=0.0)
            a_z = a_z + u_z * xt
            a_r = a_r + u_r * xt
            a_h = a_h + u_h * xt
        z = 1.0 / (1.0 + tl.exp(-a_z))
        r = 1.0 / (1.0 + tl.exp(-a_r))
        if RESET_AFTER:
            a_h = a_h + r * (w_h * h + b_hn)
        else:
            a_h = a_h + w_h * (r * h)
        if LIBDEVICE:
            cand = libdevice.tanh(a_h)
        else:
            e = tl.exp(-2.0 * tl.abs(a_h))
            th = (1.0 - e) / (1.0 + e)
            cand = tl.where(a_h < 0, -th, th)
        h = z * h + (1.0 - z) * cand
        if tl.load(flags + t + 1) != 0:
            for k in range(K):
                end = tl.load(ends + k * N + n, mask=mask, other=0)
                tl.store(out + k * PN + offs, h, mask=mask & (end == t + 1))
