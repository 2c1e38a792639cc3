"""The engine's CPU fast path for one-unit cells: the fused unroll, then the loss at each T from the
fused readout kernels. One call, ``losses(...)``, returns what ``engine.unroll_losses`` returns
(the loss of every member at every T, (K, P)), or None where the fast path does not apply, so the
engine can try it first and keep its torch paths otherwise.
"""
from __future__ import annotations

import torch
from torch import Tensor

BLOCK_BYTES = 1 << 21  # outputs of a block of members (K x members x N values): about an L2


def losses(cell, params: dict[str, Tensor], data, task, Ts: tuple[int, ...], readout: str = "none",
           readout_l2: float = 1e-4, H: int = 1, threads: int | None = None) -> Tensor | None:
    """(len(Ts), P) losses, as engine.unroll_losses, or None (H > 1, not the CPU, parameters that
    need gradients, a dtype other than float32/64, more than one input, a cell without a fused
    kernel, numba missing or LANDSCAPE_FAST=0).

    readout "none" (identity loss on the output, scaled by task.loss_scale), "fixed" (out_w, out_b
            from params) or "optimal" (the ridge-regularised fit per member and T, in float64)
    """
    from .fused_cpu import fused_kernel

    ref = next(iter(params.values()))
    D = 0 if data.inputs is None else data.inputs.shape[-1]
    if (H != 1 or D > 1 or ref.device.type != "cpu" or ref.dtype not in (torch.float32, torch.float64)
            or (torch.is_grad_enabled() and any(v.requires_grad for v in params.values()))):
        return None
    kernel = fused_kernel(cell, D, ref.dtype)
    if kernel is None:
        return None
    from . import fit

    x = None if data.inputs is None else data.inputs[..., 0]
    inputs = kernel.prepare(x, [data.ends[T] for T in Ts], data.h0)
    P = max(v.shape[0] for v in params.values())
    K, N = inputs.ends.shape
    block = max(1, min(P, BLOCK_BYTES // max(1, K * N * ref.element_size())))
    buf = torch.empty(K * block * N, dtype=ref.dtype)
    out = torch.empty(K, P, dtype=ref.dtype)
    for s in range(0, P, block):  # blocks of members: their outputs stay in cache for the loss
        e = min(P, s + block)
        sub = {k: v[s:e] if v.shape[0] == P else v for k, v in params.items()}
        outs = kernel.run(sub, inputs, threads=threads, out=buf[:K * (e - s) * N].view(K, e - s, N))
        for k, T in enumerate(Ts):
            out[k, s:e] = _loss(fit, outs[k], data.targets[T], sub, task, readout, readout_l2, threads)
    return out


def _loss(fit, y, target, params, task, readout, readout_l2, threads):
    """The loss of outputs y (P, N) against one T's targets: (P,) in y's dtype."""
    if readout == "none":
        return fit.identity_losses(y, target, task.loss_scale, threads=threads)
    if readout == "fixed":
        return fit.logistic_losses(y, target, params["out_w"], params["out_b"], threads=threads)
    if readout == "optimal":
        w, b = fit.fit_logistic_readout_1(y, target, readout_l2, threads=threads)
        return fit.logistic_losses(y.to(torch.float64), target, w, b, threads=threads).to(y.dtype)
    raise ValueError(f"unknown readout {readout!r}; choose from: none, fixed, optimal")
