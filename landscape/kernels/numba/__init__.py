"""The CPU backend: kernels generated from a cell's traced step and compiled by numba.

- ``unroll``: the fused unroll of a one-unit cell (``fused_kernel``), its source written by
  ``codegen`` from the traced program, its elementary functions ``mathfn`` (coefficients from
  ``remez``, not imported by the library);
- ``units``: the fused unroll of a cell of 2 to 32 units, each unit's step traced
  (``trace.trace_units``), the products written out up to 8 units, register-blocked above
  (``matvec``);
- ``jacobian``: the step and its Jacobian dF/ds for the dynamics maps (forward-mode rules per op:
  ``kernels.derivative``);
- ``lyapunov``: the largest finite-time Lyapunov exponent lambda_T of the dynamics maps, the step
  and J v as one forward-mode tangent seeded by v (``derivative.state_jvp``);
- ``readout``: the one-unit readout's losses and the optimal readout's fit, fused too;
- ``losses``: the unroll and the readout together, the losses (K, P) the engine asks for;
- ``choice``: for a program that still calls libm per value (erf, a general pow), the kernel or
  torch, whichever measured faster (once per kernel, kept beside it: ``runtime.read_note``).

numba itself is imported when a kernel is first built (``available()`` says whether it can be).
"""
from __future__ import annotations

import functools


@functools.lru_cache(maxsize=1)
def available() -> bool:
    """Whether numba can be imported."""
    try:
        import numba  # noqa: F401  (the installed package: imports are absolute)
    except Exception:  # pragma: no cover - depends on the environment
        return False
    return True
