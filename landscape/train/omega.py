"""Pascanu, Mikolov & Bengio 2013's regulariser Omega (§3.3, eq. 9), batched over a population.

For each model, with E its mean batch loss and x_k the state after step k (all of a cell's state
tensors, concatenated)::

    Omega = mean over sequences of  sum_k ( |v_{k+1} . dx_{k+1}/dx_k| / |v_{k+1}| - 1 )^2,
    v_{k+1} = dE/dx_{k+1}

It asks that the error signal keep its norm as it travels one step back (neither vanish nor
explode). We follow the paper's equation with norms (ICML and arXiv alike; the official Theano
code squares both norms) and its simplification: v_{k+1} is treated as a constant, and so is
x_k, so the gradient of Omega is its immediate derivative through the one-step Jacobian
dx_{k+1}/dx_k at the recorded states. As in the paper and the official code, that gradient is
added to the recurrent weights only (the parameters a cell declares with role ``recurrent``:
srnn's ``w``); the other parameters get the loss's gradient alone. The sum runs over every step
k = 0 .. T - 1 of a sequence (x_0 the initial state); steps where v_{k+1} = 0 (after a model's
own end) are left out.

Shapes: parameters (P, *shape); states (P, N, H) per state tensor; inputs (S, P, N, D).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..engine import outputs_at_ends
from ..lazy import torch

if TYPE_CHECKING:
    from torch import Tensor


def unroll_states(cell, params: dict[str, Tensor], x: Tensor | None, ends: Tensor, H: int,
                  h0: float = 0.0, n: int | None = None) -> tuple[Tensor, list[tuple[Tensor, ...]]]:
    """``population.unroll_outputs`` that also keeps every state: (outputs at the ends (P, N, H),
    [state after step 0 (the initial one), 1, ..., S], each a tuple of (P, N, H) tensors)."""
    P, N = ends.shape[0], (ends.shape[1] if n is None else n)
    states = [tuple(s.expand(P, N, H) for s in cell.initial_state(params, N, H, h0))]

    def advance(t):
        states.append(cell.step(params, states[-1], None if x is None else x[t - 1]))

    ((_, y),) = outputs_at_ends(advance, lambda: cell.output(states[-1]), [ends])
    return y.expand(P, N, H), states


def omega(cell, params: dict[str, Tensor], states: list[tuple[Tensor, ...]], x: Tensor | None,
          v: list[tuple[Tensor, ...]]) -> Tensor:
    """Omega of each model (P,), differentiable in ``params`` (the immediate derivative: the states
    and the error signals are constants).

    states  [x_0, ..., x_S], each a tuple of (P, N, H) (``unroll_states``)
    x       (>= S, P, N, D) the inputs, or None
    v       [v_1, ..., v_S], each a tuple like a state: dE/dx_k (zeros where x_k has no effect on E)
    """
    S = len(v)
    P, N = states[0][0].shape[:2]

    def along_time(ts):  # [(P, N, H)] * S -> (P, S * N, H): every step one more block of rows
        return torch.stack(ts, 1).reshape(P, S * N, -1)

    prev = tuple(along_time([s[i].detach() for s in states[:S]]).requires_grad_(True)
                 for i in range(len(states[0])))
    inputs = None if x is None else along_time(list(x[:S]))  # (P, S * N, D): step k + 1 reads x[k]
    nxt = cell.step(params, prev, inputs)
    back = torch.autograd.grad(nxt, prev, grad_outputs=tuple(along_time([vk[i] for vk in v]) for i in range(len(nxt))),
                               create_graph=True)  # v_{k+1} . dx_{k+1}/dx_k, (P, S * N, H) each
    num = sum(b.pow(2).sum(-1) for b in back).view(P, S, N)
    den = sum(along_time([vk[i] for vk in v]).pow(2).sum(-1) for i in range(len(nxt))).view(P, S, N).detach()
    live = den > 0
    ratio = torch.sqrt(num.clamp(min=0) + (~live).to(num.dtype)) / torch.sqrt(torch.where(live, den, 1.0))
    return torch.where(live, (ratio - 1.0) ** 2, 0.0).sum(1).mean(-1)


def loss_and_omega_grads(cell, params: dict[str, Tensor], names: list[str], loss: Tensor,
                         states: list[tuple[Tensor, ...]], x: Tensor | None, alpha: float
                         ) -> tuple[dict[str, Tensor], Tensor]:
    """The gradient of sum_p (E_p + alpha Omega_p) as training takes it (Omega's on the recurrent
    weights only) for the trainable ``names``, and Omega (P,) (detached)."""
    flat = [t for s in states[1:] for t in s]
    width = len(states[0])
    got = torch.autograd.grad(loss.sum(), [params[k] for k in names] + flat, allow_unused=True)
    grads = dict(zip(names, got[:len(names)]))
    err = [torch.zeros_like(t) if g is None else g for t, g in zip(flat, got[len(names):])]
    v = [tuple(err[k * width:(k + 1) * width]) for k in range(len(states) - 1)]
    recurrent = [k for k in names if k in {d.name for d in cell.params if d.role == "recurrent"}]
    reg = omega(cell, params, states, x, v)
    if recurrent:
        for k, g in zip(recurrent, torch.autograd.grad(reg.sum(), [params[k] for k in recurrent])):
            grads[k] = grads[k] + alpha * g
    return grads, reg.detach()
