"""Launch the Triton kernel generated from a one-unit cell's traced step (H = 1, input size D <= 1).

One program handles a block of BLOCK (member, sequence) pairs of the flattened (P, N) population.
It loads its members' parameters once, keeps the state in registers through all T, reads the
shared input x_t (N,) of each step, and writes only the outputs y at the requested lengths into
out (K, P, N): y_T for each sequence at its own end (``data.ends``), so variable lengths work too.
The loss (and the optimal readout fit) is then taken in torch (``losses``).

The kernel is written by ``codegen`` from the cell's traced program (``kernels.trace.trace_cell``)
for every cell the tracer accepts: every built-in one-unit cell and option, a user's cell
(examples/cells/mgu.py:MGU). It is traced once per (cell, D, dtype), written as a module into the
kernel cache, imported, and checked against ``cell.step`` on random inputs (with an inf and a NaN
member, ``runtime.self_check``) before its first use; a cell the tracer refuses, or whose kernel
fails the check, raises ``Unsupported`` (``why_not`` says why), and the engine keeps the torch path.

Used by the dispatch (``kernels.fused_losses``) on CUDA when Triton is installed. With
TRITON_INTERPRET=1 set before triton is imported, the same kernels run on CPU tensors in Triton's
interpreter (numpy, slow): that is how the tests check them without a GPU (and then CUDA tensors
take the plain path: a process has either compiled or interpreted Triton). tanh is libdevice's on
the GPU and (1 - e^-2|a|) / (1 + e^-2|a|) in the interpreter (libdevice has no interpreter form);
sigmoid is 1 / (1 + e^-a) in both.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import Tensor

from .. import runtime
from ..trace import Unsupported, trace_cell

try:  # Triton is optional: without it the engine keeps the plain path (the installed package: imports are absolute)
    import triton
except ImportError:  # pragma: no cover - depends on the environment
    triton = None

BLOCK = 256  # (member, sequence) pairs per program
DTYPES = (torch.float32, torch.float64)


def available() -> bool:
    """Whether Triton is installed."""
    return triton is not None


def losses(problem, params: dict[str, Tensor], data, Ts: tuple[int, ...], math_class: str = "exact") -> Tensor:
    """(len(Ts), P) losses, as ``engine.unroll_losses(problem, params, data, Ts)``: the kernel's
    outputs (``outputs``), the loss of each T taken in torch by ``problem.readout``. Raises
    Unsupported where no kernel applies, and for the fast math class (the Triton kernels have the
    exact class only)."""
    if math_class != "exact":
        raise Unsupported(f"the Triton kernels have no {math_class!r} math class (torch computes the exact one)")
    outs = outputs(problem.cell, params, data, Ts, problem.H)  # (K, P, N)
    return torch.stack([problem.readout.loss(outs[k].unsqueeze(-1), data.targets[T], params)
                        for k, T in enumerate(Ts)])


def outputs(cell, params: dict[str, Tensor], data, Ts: tuple[int, ...], H: int) -> Tensor:
    """The outputs y (K, P, N) at each requested T from the generated kernel. Raises Unsupported
    (with the reason) where none applies: Triton missing, H > 1 or D > 1, a dtype other than
    float32/64, parameters that need gradients, CUDA tensors under the interpreter or CPU tensors
    without it, a cell the tracer refuses (or whose kernel fails its self-check). CUDA tensors run
    compiled; CPU tensors only in Triton's interpreter (TRITON_INTERPRET=1: for tests)."""
    D = 0 if data.inputs is None else data.inputs.shape[-1]
    ref = next(iter(params.values()))
    if not available():
        raise Unsupported("Triton is not installed")
    if H != 1 or D > 1:
        raise Unsupported(f"the fused kernels take one unit and at most one input (H = {H}, D = {D})")
    if ref.dtype not in DTYPES:
        raise Unsupported(f"dtype {ref.dtype} (the fused kernels take float32 and float64)")
    if torch.is_grad_enabled() and any(v.requires_grad for v in params.values()):
        raise Unsupported("parameters that need gradients (the fused kernels have no backward)")
    if interpreting() != (ref.device.type != "cuda"):  # compiled on CUDA; the interpreter on the CPU
        raise Unsupported(f"{ref.device.type} tensors while Triton runs "
                          f"{'its interpreter' if interpreting() else 'compiled'} in this process")
    built = generated_kernel(cell, D, ref.dtype)
    if built is None:
        raise Unsupported(why_not(cell, D, ref.dtype) or f"no Triton kernel for {cell.describe()}")
    kernel, program = built
    x = None if data.inputs is None else data.inputs[..., 0]
    return _launch(kernel, program.params, params, x, [data.ends[T] for T in Ts], data.h0, data.steps)


def _launch(kernel, columns, params, x, ends, h0, steps) -> Tensor:
    """Run a kernel: params name -> (P|1, ...) packed in the order of ``columns``, x (T, N) or None,
    ends K tensors (N,), the initial state h0; out (K, P, N)."""
    ref = next(iter(params.values()))
    device, dtype = ref.device, ref.dtype
    P = max(v.shape[0] for v in params.values())
    N, K = ends[0].shape[0], len(ends)
    cols = [params[key].reshape(params[key].shape[0]).to(dtype).expand(P)
            for key in columns] or [torch.zeros(P, dtype=dtype, device=device)]
    packed = torch.stack(cols, 1).contiguous()  # (P, G)
    xs = (torch.zeros(1, dtype=dtype, device=device) if x is None else x.to(dtype).contiguous())  # (T, N)
    ends = torch.stack([e.to(device=device, dtype=torch.int32) for e in ends]).contiguous()  # (K, N)
    flags = torch.zeros(steps + 1, dtype=torch.int32, device=device)
    flags[ends.reshape(-1).long()] = 1  # flags[t] = 1 where some sequence ends at step t
    out = torch.empty(K, P, N, dtype=dtype, device=device)
    h0 = torch.full((1,), float(h0), dtype=dtype, device=device)  # in the dtype: a float argument is fp32
    grid = (triton.cdiv(P * N, BLOCK),)
    # compiled: a * b + c as one FMA (Triton's default, stated: it warns otherwise)
    extra = {} if interpreting() else {"enable_fp_fusion": True}
    with torch.cuda.device(device) if device.type == "cuda" else _quiet_numpy():
        kernel[grid](packed, xs, ends, flags, out, h0, P, N, K, steps,
                     HAS_X=x is not None, BLOCK=BLOCK, LIBDEVICE=device.type == "cuda", **extra)
    return out


def _quiet_numpy():
    """The interpreter computes in numpy: overflow to inf and NaN operands are meant (as in torch)."""
    import numpy as np

    return np.errstate(all="ignore")


def why_not(cell, D: int, dtype: torch.dtype) -> str | None:
    """Why ``generated_kernel`` gave None for these arguments (None when it did not)."""
    return _BUILDS.why(cell, D, dtype, interpreting())


def generated_kernel(cell, D: int, dtype: torch.dtype):
    """(kernel, program): the Triton kernel generated from the cell's traced step for input size D
    and dtype, checked against ``cell.step`` when built; None where the tracer refuses the cell,
    the program has an operation without Triton code, or the check fails (``why_not`` says which).
    Built once per (cell, D, dtype, interpreted or compiled) in a process."""
    return _BUILDS.get(cell, D, dtype, interpreting())


def _build_generated(cell, D, dtype, interpret):
    from . import codegen

    def load(program):
        return codegen.load(program, interpret), program

    def check(built):  # on random inputs with an inf and a NaN member (what a single trace cannot see)
        device = torch.device("cpu" if interpret else "cuda")
        return runtime.self_check(_Checked(cell, D, dtype, built[0], built[1].params, device))

    return runtime.build_checked(lambda: trace_cell(cell, D, dtype), load, check)


_BUILDS = runtime.KernelBuilds(_build_generated, lambda cell, D, dtype, interpret: (cell.describe(), D, str(dtype)))


@dataclass
class _Checked:
    """A generated kernel as ``runtime.self_check`` calls it (CPU tensors in and out)."""

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
                       [e.to(dev) for e in ends], h0, steps).cpu()


def interpreting() -> bool:
    """Whether Triton runs its interpreter (TRITON_INTERPRET=1 before triton was imported)."""
    knobs = getattr(triton, "knobs", None)  # Triton >= 3.4; before, the variable is read directly
    if knobs is not None:
        return bool(knobs.runtime.interpret)
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")
