"""Fused kernels of the engine (one-unit cells with input size D <= 1; on the CPU also cells of 2 to
32 units with any D), equal to ``cell.step`` up to float rounding, and the one dispatch that picks
them: ``fused_losses``.

Every cell whose step traces into a scalar program (``trace``: every built-in one-unit cell and a
user's cell written as a pure step) gets a kernel generated from that program and checked against
``cell.step`` when it is built (``runtime.self_check``):

- on the CPU, ``numba``: the unroll compiled by numba, the loss and the optimal readout's fit
  fused too, on every core by default (``set_threads``); for 1 < H <= 32, ``numba.units``: the
  step traced per unit (``trace.trace_units``, every matrix-vector product written out), each
  member's matrices in registers (up to H = 8: straight-line code) or in L1 (``numba.matvec``:
  register-blocked products over a block of sequences), the readout's loss taken in torch;
- on CUDA, ``triton``: one Triton program per block of (member, sequence) pairs runs all T with the
  state in registers and writes the outputs at the requested T; the loss is then taken in torch.
  ``TRITON_INTERPRET=1`` runs it on CPU tensors in Triton's interpreter (slowly: for tests).

What both share (the kernel cache, the worker threads, the self-check) is ``runtime``. Anything
else (H > 1 on CUDA or H > 32, fewer than 16 sequences (32 in float32) above H = 8, a cell that
does not trace, parameters that need gradients, another dtype, numba or Triton missing,
$LANDSCAPE_FAST=0) gets no kernel: the engine then unrolls ``cell.step`` in torch.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .. import settings
from .runtime import set_threads

if TYPE_CHECKING:
    from torch import Tensor

# The backends, by the device type they run on: each is a module with ``losses(problem, params, data,
# Ts)`` -> (K, P) (raising ``trace.Unsupported`` where it has no kernel) and ``available()`` (whether its
# compiler can be imported). A new backend is a subpackage with such a module and one line here.
BACKENDS = {"cpu": "numba.losses", "cuda": "triton.launch"}
UNITS_BACKEND = "numba.units"  # the CPU backend for 1 < H <= numba.units.MAX_H (the same interface)


def backend(device_type: str):
    """The backend module for a device type ('cpu', 'cuda'), imported on first use; None if none runs there."""
    name = BACKENDS.get(device_type)
    return None if name is None else importlib.import_module(f"{__name__}.{name}")


def fused_losses(problem, params: dict[str, Tensor], data, Ts: tuple[int, ...], fast: bool | None = None,
                 math: str = "exact") -> tuple[Tensor | None, str | None]:
    """(losses, None) with the losses (len(Ts), P) from a fused kernel, as ``engine.unroll_losses``
    gives them, or (None, why not). The backend follows the parameters' device (``BACKENDS``: numba on
    the CPU, Triton on CUDA). fast: False turns every fused kernel off (None: ``settings.fast()``,
    $LANDSCAPE_FAST). math: the accuracy class (``GridSpec.math``), 'exact' or 'fast'."""
    if not (settings.fast() if fast is None else fast):
        return None, "fused kernels are turned off (LANDSCAPE_FAST=0)"
    if data.path is not None:
        return None, "the task's loss is over every step of a path (the kernels read it at the end)"
    from .trace import Unsupported

    device = next(iter(params.values())).device
    module = backend(device.type)
    if module is None:
        return None, f"no fused kernel runs on {device.type}"
    if problem.H > 1 and device.type == "cpu":  # H units: the matrix-vector products written out
        module = importlib.import_module(f"{__name__}.{UNITS_BACKEND}")
    try:
        return module.losses(problem, params, data, Ts, math_class=math), None
    except Unsupported as err:
        return None, str(err)


def unavailable(device_type: str = "cpu") -> str | None:
    """Why no fused kernel can run on this kind of device ('cpu' or 'cuda') in this process, or None."""
    if not settings.fast():
        return "LANDSCAPE_FAST=0"
    if device_type not in BACKENDS:
        return f"no fused kernel runs on {device_type}"
    if backend(device_type).available():
        return None
    return f"{BACKENDS[device_type].split('.')[0]} is not importable"


__all__ = ["BACKENDS", "backend", "fused_losses", "set_threads", "unavailable"]
