"""Fused kernels of the engine for one-unit cells (H = 1, input size D <= 1), equal to ``cell.step``
up to float rounding, and the one dispatch that picks them: ``fused_losses``.

Every cell whose step traces into a scalar program (``trace``: every built-in one-unit cell and a
user's cell written as a pure step) gets a kernel generated from that program and checked against
``cell.step`` when it is built (``runtime.self_check``):

- on the CPU, ``numba``: the unroll compiled by numba, the loss and the optimal readout's fit
  fused too, on every core by default (``set_threads``);
- on CUDA, ``triton``: one Triton program per block of (member, sequence) pairs runs all T with the
  state in registers and writes the outputs at the requested T; the loss is then taken in torch.
  ``TRITON_INTERPRET=1`` runs it on CPU tensors in Triton's interpreter (slowly: for tests).

What both share (the kernel cache, the worker threads, the self-check) is ``runtime``. Anything
else (H > 1, a cell that does not trace, parameters that need gradients, another dtype, numba or
Triton missing, $LANDSCAPE_FAST=0) gets no kernel: the engine then unrolls ``cell.step`` in torch.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .. import settings
from .runtime import set_threads

if TYPE_CHECKING:
    from torch import Tensor


def fused_losses(problem, params: dict[str, Tensor], data, Ts: tuple[int, ...], fast: bool | None = None
                 ) -> tuple[Tensor | None, str | None]:
    """(losses, None) with the losses (len(Ts), P) from a fused kernel, as ``engine.unroll_losses``
    gives them, or (None, why not). The backend follows the parameters' device: numba on the CPU,
    Triton on CUDA. fast: False turns every fused kernel off (None: ``settings.fast()``,
    $LANDSCAPE_FAST)."""
    if not (settings.fast() if fast is None else fast):
        return None, "fused kernels are turned off (LANDSCAPE_FAST=0)"
    from .trace import Unsupported

    device = next(iter(params.values())).device
    try:
        if device.type == "cpu":
            from .numba.losses import losses
        elif device.type == "cuda":
            from .triton.launch import losses
        else:
            return None, f"no fused kernel runs on {device.type}"
        return losses(problem, params, data, Ts), None
    except Unsupported as err:
        return None, str(err)


def unavailable(device_type: str = "cpu") -> str | None:
    """Why no fused kernel can run on this kind of device ('cpu' or 'cuda') in this process, or None."""
    if not settings.fast():
        return "LANDSCAPE_FAST=0"
    if device_type == "cpu":
        from .numba import available

        return None if available() else "numba is not importable"
    if device_type == "cuda":
        from .triton.launch import available

        return None if available() else "Triton is not installed"
    return f"no fused kernel runs on {device_type}"


__all__ = ["fused_losses", "set_threads", "unavailable"]
