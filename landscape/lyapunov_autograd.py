"""The finite-time Lyapunov exponents by torch's autograd: the truth the fused kernel
(``kernels.numba.lyapunov``) is checked against, and ``dynamics_map.lyapunov``'s path wherever no
kernel applies (several exponents, another device, a step that does not trace) or the kernel met
something not finite. Below both of them: the kernel's self-check and the dispatch read it here.

lambda_T = mean over the N sequences of (1/T_n) log ||J_{T_n} ... J_1 v||, J_t the Jacobian of the
state map (the full state, S = H x the number of states) at step t with the sequence's own input,
by autograd over S copies of the state (``step_jacobian``); the vectors carried forward and
re-orthonormalised every step (QR; a normalisation for one exponent).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .engine import outputs_at_ends
from .lazy import torch

if TYPE_CHECKING:
    from torch import Tensor

    from .tasks import TaskData


def step_jacobian(cell, params: dict[str, Tensor], s: Tensor, x: Tensor | None, H: int) -> tuple[Tensor, Tensor]:
    """One step of the sequence map at its own input: s (P, N, S), x (N, D) or None ->
    (new state (P, N, S), J (P, N, S, S) = d new / d s), by one backward pass over S copies."""
    P, N, S = s.shape
    with torch.enable_grad():
        se = s.detach().unsqueeze(2).expand(P, N, S, S).reshape(P, N * S, S).clone().requires_grad_(True)
        xe = None if x is None else x.repeat_interleave(S, 0)  # (N S, D)
        new = cell.step(params, tuple(se.split(H, -1)), xe)
        out = torch.cat([v.expand(P, N * S, H) for v in new], -1).reshape(P, N, S, S)  # [p, n, copy j, :]
        (g,) = torch.autograd.grad(out.diagonal(dim1=2, dim2=3).sum(), se, allow_unused=True)
    J = torch.zeros(P, N * S, S, dtype=s.dtype, device=s.device) if g is None else g
    return out[:, :, 0].detach(), J.reshape(P, N, S, S)


def lyapunov_autograd(cell, params: dict[str, Tensor], P: int, H: int, data: TaskData, Ts, v0: Tensor,
                      inputs: Tensor | None) -> np.ndarray:
    """``dynamics_map.lyapunov`` for one block of P members by autograd (``step_jacobian``): (len(Ts), P,
    k); v0 (N, S, k) orthonormal, inputs (T, N, D) float64 or None. The truth the fused kernel is
    checked against, and the path wherever none applies (several exponents, another device)."""
    N, S, k = v0.shape
    state = torch.cat([v.expand(P, N, H) for v in cell.initial_state(params, N, H, data.h0)], -1)  # (P, N, S)
    Q = v0.expand(P, N, S, k)
    logs = torch.zeros(P, N, k, dtype=torch.float64, device=v0.device)

    def advance(t):
        nonlocal state, Q, logs
        state, J = step_jacobian(cell, params, state, None if inputs is None else inputs[t - 1], H)
        v = J @ Q  # (P, N, S, k)
        if k == 1:  # one vector: QR is its normalisation (R = its norm), much cheaper
            norm = torch.linalg.vector_norm(v, dim=-2, keepdim=True)  # (P, N, 1, 1)
            # a product that reached 0 keeps its log at -inf (its old vector carries on, never 0 / 0)
            Q, logs = torch.where(norm > 0, v / norm, Q), logs + torch.log(norm[..., 0, :])
        else:
            Q, R = torch.linalg.qr(v)  # (P, N, S, k), (P, N, k, k)
            logs = logs + torch.log(torch.diagonal(R, dim1=-2, dim2=-1).abs())

    out = np.empty((len(Ts), P, k))
    for i, y in outputs_at_ends(advance, lambda: logs, [data.ends[T] for T in Ts]):
        steps = data.ends[Ts[i]].to(device=v0.device, dtype=torch.float64).reshape(-1, 1)  # (N, 1)
        out[i] = (y / steps).mean(1).cpu().numpy()
    return out


__all__ = ["lyapunov_autograd", "step_jacobian"]
