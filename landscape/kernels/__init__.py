"""Fast paths of the engine for one-unit cells (H = 1), equal to ``cell.step`` up to float rounding.

- ``fused_cpu`` (with ``trace``, ``codegen``, ``mathfn``, ``fit``, ``fast_path``): every one-unit
  cell whose step traces into a scalar program (every built-in one and a user's cell written as a
  pure step) as a generated, numba-compiled unroll on the CPU, the loss and the optimal readout's
  fit fused too; on every core by default (``set_threads``).
- ``cpu``: in-place torch steps over preallocated (P, N) buffers (srnn, pascanu, lstm, lstm-b,
  gru): the CPU path where numba is missing or LANDSCAPE_FAST=0.
- ``fused``: Triton kernels that run all T with the state in registers, one program per block of
  (member, sequence) pairs, writing only the outputs at the requested T: hand-written for srnn,
  pascanu, lstm, lstm-b and gru with sigmoid gates, generated from the same traced program
  (``triton_codegen``) for every other cell the tracer accepts. Used on CUDA when Triton is
  installed; ``TRITON_INTERPRET=1`` runs them on CPU tensors (slowly: for tests).
"""
from __future__ import annotations

from .cpu import cpu_stepper


def set_threads(n: int | None) -> None:
    """Worker threads of the fused CPU path, each single-threaded (None: every core this process
    may run on, the default)."""
    from . import fused_cpu

    if n is not None and int(n) < 1:
        raise ValueError(f"threads must be >= 1 or None, got {n}")
    fused_cpu.THREADS = None if n is None else int(n)


def fused_kernel(cell, D: int, dtype):
    """The fused CPU kernel of a one-unit cell (``fused_cpu.fused_kernel``), or None."""
    from .fused_cpu import fused_kernel as build

    return build(cell, D, dtype)


def fused_outputs(cell, params, data, Ts, H):
    """The outputs (K, P, N) at each requested T from the fused kernel, or None where it does not
    apply (H > 1, a cell without a kernel, Triton not installed)."""
    from . import fused

    return fused.outputs(cell, params, data, Ts, H)


__all__ = ["cpu_stepper", "fused_kernel", "fused_outputs", "set_threads"]
