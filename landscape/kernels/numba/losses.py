"""The CPU backend's losses for one-unit cells: the fused unroll (``unroll``), then the loss at each
T from the fused readout kernels (``readout``). One call, ``losses(...)``, returns what
``engine.unroll_losses`` returns (the loss of every member at every T, (K, P)), or raises
``Unsupported`` (with the reason) where no fused kernel applies; the dispatch
(``kernels.fused_losses``) calls it for CPU tensors.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ...lazy import torch
from . import available

if TYPE_CHECKING:
    from torch import Tensor

BLOCK_BYTES = 1 << 21  # outputs of a block of members (K x members x N values): about an L2


def losses(problem, params: dict[str, Tensor], data, Ts: tuple[int, ...], threads: int | None = None,
           math_class: str = "exact") -> Tensor:
    """(len(Ts), P) losses, as ``engine.unroll_losses(problem, params, data, Ts)``. Raises
    Unsupported where no fused kernel applies: H > 1, not the CPU, parameters that need gradients, a
    dtype other than float32/64, more than one input, numba missing, a cell without a fused kernel
    (``unroll.why_not``). The loss follows ``problem.readout``: on the output (identity, scaled by
    the task's loss_scale), through the fixed readout of params (logistic; dense2 as its logit
    difference), or through the ridge-regularised fit per member and T, in float64.
    threads: worker threads (default ``runtime.default_threads``: every core this process may use).
    math_class: 'exact' (default) or the opt-in 'fast' accuracy class (``unroll.fused_kernel``).
    """
    from ..trace import Unsupported  # the tracer imports torch: not on unroll_losses_arrays' path

    cell, H = problem.cell, problem.H
    ref = next(iter(params.values()))
    D = 0 if data.inputs is None else data.inputs.shape[-1]
    if H != 1 or D > 1:
        raise Unsupported(f"the fused kernels take one unit and at most one input (H = {H}, D = {D})")
    if ref.device.type != "cpu":
        raise Unsupported(f"the numba kernels run on the CPU, not {ref.device.type}")
    if ref.dtype not in (torch.float32, torch.float64):
        raise Unsupported(f"dtype {ref.dtype} (the fused kernels take float32 and float64)")
    if torch.is_grad_enabled() and any(v.requires_grad for v in params.values()):
        raise Unsupported("parameters that need gradients (the fused kernels have no backward)")
    if not available():
        raise Unsupported("numba is not importable")
    from .unroll import fused_kernel, why_not

    kernel = fused_kernel(cell, D, ref.dtype, math_class)
    if kernel is None:
        raise Unsupported(why_not(cell, D, ref.dtype) or f"no fused kernel for {cell.describe()}")
    from ...engine import unroll_losses
    from .choice import torch_is_faster

    slower = torch_is_faster(  # only where the kernel calls libm per value
        kernel, params, data, threads,
        run_fused=lambda sample, Ts, workers: run_kernel(kernel, problem, sample, data, Ts, workers),
        run_torch=lambda sample, Ts: unroll_losses(problem, sample, data, Ts, fast=False))
    if slower is not None:
        raise Unsupported(slower)
    return run_kernel(kernel, problem, params, data, Ts, threads)


def run_kernel(kernel, problem, params: dict[str, Tensor], data, Ts: tuple[int, ...], threads: int | None) -> Tensor:
    """``losses`` with this kernel (checked by the caller): (len(Ts), P), on the arrays of
    ``unroll_losses_arrays``."""
    readout = problem.readout
    if readout.kind == "dense2" and not readout.optimal:  # Dense(2) as its logit difference
        from ...readouts import READOUT_KINDS

        out_w, out_b = READOUT_KINDS["dense2"].logit_difference(params)
        params = {**params, "out_w": out_w, "out_b": out_b}
    arrays = {k: v.detach().numpy() for k, v in params.items()}
    x = None if data.inputs is None else data.inputs[..., 0]
    inputs = kernel.prepare(x, [data.ends[T] for T in Ts], data.h0)
    targets = [data.targets[T].numpy() for T in Ts]
    return torch.from_numpy(unroll_losses_arrays(kernel, readout, arrays, inputs, targets, threads))


def unroll_losses_arrays(kernel, readout, params: dict, inputs, targets: list, threads: int | None):
    """The loss of every member at every prepared T, (K, P) in the kernel's dtype, on numpy arrays
    and without torch: the kernel (``unroll.CompiledUnroll``) unrolls blocks of members whose
    outputs stay in cache while each T's loss is taken by the fused readout kernels.

    readout  kind ('identity', 'logistic'; a fixed 'dense2' as its logit difference in params'
             out_w, out_b), scale, optimal, l2 (``readouts.Readout``)
    params   name -> (P or 1, *shape) arrays, the kernel's parameters and a fixed readout's
    inputs   ``kernel.prepare``'s, for the K lengths; targets: K arrays (N,), as the task made them
             in the computation's dtype"""
    dtype = kernel.np_dtype
    P = max(v.shape[0] for v in params.values())
    K, N = inputs.ends.shape
    block = max(1, min(P, BLOCK_BYTES // max(1, K * N * dtype.itemsize)))
    buf = np.empty(K * block * N, dtype=dtype)
    out = np.empty((K, P), dtype=dtype)
    shared = all(params[k].shape[0] == 1 for k in kernel.params if k in params)  # only the readout varies
    for s in range(0, P, block):  # blocks of members: their outputs stay in cache for the loss
        e = min(P, s + block)
        sub = {k: v[s:e] if v.shape[0] == P else v for k, v in params.items()}
        packed = kernel.pack(sub)
        if shared:  # one unroll serves every member: its outputs, repeated
            outs = kernel.run_arrays(packed, inputs, threads, out=buf[:K * N].reshape(K, 1, N))
            outs = np.ascontiguousarray(np.broadcast_to(outs, (K, e - s, N)))
        else:
            outs = kernel.run_arrays(packed, inputs, threads, out=buf[:K * (e - s) * N].reshape(K, e - s, N))
        for k in range(K):
            out[k, s:e] = _loss(outs[k], targets[k], sub, readout, threads)
    return out


def _loss(y, target, params, readout, threads):
    """The loss of outputs y (P, N) against one T's targets: (P,) in y's dtype."""
    from . import readout as fused_readout

    if readout.kind == "identity":
        return fused_readout.identity_losses(y, target, readout.scale, threads=threads)
    if readout.optimal:
        w, b = fused_readout.fit_logistic_readout_1(y, target, readout.l2, threads=threads)
        return fused_readout.logistic_losses(y.astype(np.float64), target, w, b, threads=threads).astype(y.dtype)
    return fused_readout.logistic_losses(y, target, params["out_w"], params["out_b"], threads=threads)
