"""Fast paths of the engine for one-unit cells (H = 1), equal to ``cell.step`` up to float rounding.

- ``cpu``: in-place steps over preallocated (P, N) buffers (srnn, pascanu, lstm, lstm-b, gru).
- ``fused``: a Triton kernel per cell (srnn, pascanu, lstm) that runs all T with the state in
  registers, one program per block of (member, sequence) pairs, writing only the outputs at the
  requested T. Used on CUDA when Triton is installed; ``TRITON_INTERPRET=1`` runs it on CPU
  tensors (slowly: for tests).
"""
from __future__ import annotations

from .cpu import cpu_stepper


def fused_outputs(cell, params, data, Ts, H):
    """The outputs (K, P, N) at each requested T from the fused kernel, or None where it does not
    apply (H > 1, a cell without a kernel, Triton not installed)."""
    from . import fused

    return fused.outputs(cell, params, data, Ts, H)


__all__ = ["cpu_stepper", "fused_outputs"]
