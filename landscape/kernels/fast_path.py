"""The engine's CPU fast path for one-unit cells: the fused unroll, then the loss at each T from the
fused readout kernels. One call, ``losses(...)``, returns what ``engine.unroll_losses`` returns
(the loss of every member at every T, (K, P)), or None where the fast path does not apply, so the
engine can try it first and keep its torch paths otherwise.
"""
from __future__ import annotations

import torch
from torch import Tensor

BLOCK_BYTES = 1 << 21  # outputs of a block of members (K x members x N values): about an L2


def losses(problem, params: dict[str, Tensor], data, Ts: tuple[int, ...], threads: int | None = None
           ) -> Tensor | None:
    """(len(Ts), P) losses, as ``engine.unroll_losses(problem, params, data, Ts)``, or None where the
    fast path does not apply (H > 1, not the CPU, parameters that need gradients, a dtype other than
    float32/64, more than one input, a cell without a fused kernel (``fused_cpu.why_not``), numba
    missing or LANDSCAPE_FAST=0). The loss follows ``problem.readout``: on the output (identity,
    scaled by the task's loss_scale), through the fixed readout of params (logistic; dense2 as its
    logit difference), or through the ridge-regularised fit per member and T, in float64.
    threads: worker threads (default ``fused_cpu.default_threads``: every core this process may use).
    """
    from .fused_cpu import fused_kernel

    cell, H, readout = problem.cell, problem.H, problem.readout
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
    shared = all(params[k].shape[0] == 1 for k in kernel.params if k in params)  # only the readout varies
    for s in range(0, P, block):  # blocks of members: their outputs stay in cache for the loss
        e = min(P, s + block)
        sub = {k: v[s:e] if v.shape[0] == P else v for k, v in params.items()}
        if shared:  # one unroll serves every member: its outputs, repeated
            outs = kernel.run(sub, inputs, threads=threads, out=buf[:K * N].view(K, 1, N))
            outs = outs.expand(K, e - s, N).contiguous()
        else:
            outs = kernel.run(sub, inputs, threads=threads, out=buf[:K * (e - s) * N].view(K, e - s, N))
        for k, T in enumerate(Ts):
            out[k, s:e] = _loss(fit, outs[k], data.targets[T], sub, readout, threads)
    return out


def _loss(fit, y, target, params, readout, threads):
    """The loss of outputs y (P, N) against one T's targets: (P,) in y's dtype."""
    if readout.kind == "identity":
        return fit.identity_losses(y, target, readout.scale, threads=threads)
    if readout.optimal:
        w, b = fit.fit_logistic_readout_1(y, target, readout.l2, threads=threads)
        return fit.logistic_losses(y.to(torch.float64), target, w, b, threads=threads).to(y.dtype)
    if readout.kind == "dense2":  # Dense(2) as its logit difference
        from ..readouts import KINDS

        out_w, out_b = KINDS["dense2"].logit_difference(params)
    else:
        out_w, out_b = params["out_w"], params["out_b"]  # (P|1, 1) each
    return fit.logistic_losses(y, target, out_w, out_b, threads=threads)
