"""Fused CPU kernels for the one-unit readout: the logistic and identity losses, and the optimal
(ridge-regularised) logistic readout fit.

``fit_logistic_readout_1`` is ``landscape.readouts._fit_logistic_readout_1`` / ``_fit_block_1``
(the same damped Newton steps, the same stopping rule, the same backtracking line search, the
same constants) run one member at a time: a member's N outputs stay in L1 while it iterates, and
an iteration is one pass over them (the five sums of the 2 x 2 Newton system, from one sigmoid per
sequence) plus one pass per line-search trial, instead of the batched torch version's several
passes over every active member. Members run on worker threads, GIL-free.

The losses are ``readouts.logistic_loss`` (one unit: mean softplus(sign (w h + b))) and
``identity_loss`` (scale * mean (h - y)^2) in one pass per member, in float64 whatever the input
dtype (the result is cast back to it).

numba is imported on first use; ``available()`` says whether it can be.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .fused_cpu import _run_split, default_threads, enabled


def available() -> bool:
    return enabled()


def _kernels():
    """(logistic, identity, fit): the numba kernels (``fit_numba``, compiled or read from numba's
    cache on first use)."""
    from . import fit_numba

    return fit_numba.logistic, fit_numba.identity, fit_numba.fit


def _split(fn, args, P, threads):
    _run_split(fn, args, P, 1, 0, threads or default_threads(), 1 << 12)


def logistic_losses(y: Tensor, target: Tensor, out_w: Tensor, out_b: Tensor, threads: int | None = None) -> Tensor:
    """Mean BCE of the one-unit logistic readout per member: y (P, N), target (N,) in {0, 1},
    out_w, out_b (P or 1) -> (P,) in y's dtype (``readouts.logistic_loss``)."""
    logistic, _, _ = _kernels()
    P, N = y.shape
    yc = y.contiguous()
    sign = (1.0 - 2.0 * (target > 0.5).to(torch.float64)).contiguous()  # -1 where the label is 1
    w = out_w.reshape(-1).to(torch.float64).expand(P).contiguous()
    b = out_b.reshape(-1).to(torch.float64).expand(P).contiguous()
    out = torch.empty(P, dtype=torch.float64)
    _split(logistic, (yc.numpy(), sign.numpy(), w.numpy(), b.numpy(), out.numpy()), P, threads)
    return out.to(y.dtype)


def identity_losses(y: Tensor, target: Tensor, scale: float = 1.0, threads: int | None = None) -> Tensor:
    """scale * mean (y - target)^2 per member: y (P, N), target (N,) -> (P,) (``identity_loss``)."""
    _, identity, _ = _kernels()
    P, N = y.shape
    out = torch.empty(P, dtype=torch.float64)
    tg = target.to(torch.float64).contiguous()
    _split(identity, (y.contiguous().numpy(), tg.numpy(), float(scale), out.numpy()), P, threads)
    return out.to(y.dtype)


def fit_logistic_readout_1(h: Tensor, y: Tensor, l2: float, iters: int = 60, tol: float = 1e-10,
                           threads: int | None = None) -> tuple[Tensor, Tensor]:
    """The optimal one-unit logistic readout of each member, in float64: h (P, N), y (N,) in {0, 1}
    -> out_w (P, 1), out_b (P, 1), the minimiser of mean BCE + (l2 / 2) out_w^2 (as
    ``readouts.fit_logistic_readout`` for H = 1)."""
    _, _, fit = _kernels()
    hh = h.detach().to(torch.float64).contiguous()
    yy = y.to(torch.float64).contiguous()
    P, N = hh.shape
    sign = (1.0 - 2.0 * (yy > 0.5).to(torch.float64)).contiguous()
    a = torch.zeros(P, dtype=torch.float64)
    c = torch.zeros(P, dtype=torch.float64)
    _split(fit, (hh.numpy(), yy.numpy(), sign.numpy(), float(l2), int(iters), float(tol), a.numpy(), c.numpy()), P,
           threads)
    return a.unsqueeze(-1), c.unsqueeze(-1)
