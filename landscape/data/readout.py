"""Readouts and losses, batched over the population.

A task's readout is either ``identity`` (the loss is on output unit 0: target, bengio) or
``logistic``: logit = out_w . h + out_b, binary cross-entropy (Keras' Dense(2, softmax) with
sparse categorical cross-entropy is the same model: its logit difference is this logit).

``fit_logistic_readout`` finds the best readout per population member: the minimiser of
mean BCE + (l2 / 2) |out_w|^2 (the ridge keeps the optimum finite when the classes are separable,
which they are wherever the cell latches), by batched damped Newton steps with backtracking.
"""
from __future__ import annotations

import torch
from torch import Tensor

READOUT_PARAMS = ("out_w", "out_b")


def readout_shapes(H: int) -> dict[str, tuple[int, ...]]:
    return {"out_w": (H,), "out_b": (1,)}


def readout_defaults(H: int, dtype=torch.float64) -> dict[str, Tensor]:
    """Base point of a fixed readout: out_w = 4 (so h = +-1 gives p = 0.98), out_b = 0."""
    return {"out_w": torch.full((H,), 4.0, dtype=dtype), "out_b": torch.zeros(1, dtype=dtype)}


def logits(h: Tensor, out_w: Tensor, out_b: Tensor) -> Tensor:
    """h (P, N, H), out_w (P, H), out_b (P, 1) -> (P, N)."""
    return (h * out_w.unsqueeze(-2)).sum(-1) + out_b


def softplus(x: Tensor) -> Tensor:
    """log(1 + e^x), exact for large |x| and +-inf (torch's softplus is linear above 20)."""
    return torch.clamp(x, min=0) + torch.log1p(torch.exp(-x.abs()))


def logistic_loss(h: Tensor, out_w: Tensor, out_b: Tensor, y: Tensor) -> Tensor:
    """Mean binary cross-entropy per member: h (P, N, H), y (N,) in {0, 1} -> (P,).

    Written as softplus(-z) for class 1 and softplus(z) for class 0, so an infinite logit gives
    0 on the right side and +inf on the wrong one (never inf - inf = NaN)."""
    return _bce_with_logits(logits(h, out_w, out_b), y)


def identity_loss(h: Tensor, y: Tensor, scale: float = 1.0) -> Tensor:
    """scale * mean (h[..., 0] - y)^2 per member: h (P, N, H), y (N,) -> (P,)."""
    return scale * ((h[..., 0] - y) ** 2).mean(-1)


def _bce_with_logits(z: Tensor, y: Tensor) -> Tensor:
    """Mean BCE over the last axis for labels in {0, 1}: z (P, N), y (N,) -> (P,)."""
    return softplus(torch.where(y > 0.5, -z, z)).mean(-1)


def fit_logistic_readout(h: Tensor, y: Tensor, l2: float, iters: int = 60, tol: float = 1e-10
                         ) -> tuple[Tensor, Tensor]:
    """The ridge-regularised optimal readout for each member, in float64.

    h (P, N, H), y (N,) -> out_w (P, H), out_b (P, 1): the minimiser of
    mean BCE + (l2 / 2) |out_w|^2, found by damped Newton steps with backtracking, each member
    stopping once its Newton step is below ``tol`` (relative to its parameters).
    """
    h = h.detach().to(torch.float64)
    y = y.to(device=h.device, dtype=torch.float64)
    P, N, H = h.shape
    if H == 1:
        return _fit_logistic_readout_1(h[..., 0], y, l2, iters, tol)
    phi = torch.cat([h, torch.ones(P, N, 1, dtype=h.dtype, device=h.device)], -1)  # (P, N, K=H+1)
    ridge = torch.full((H + 1,), l2, dtype=h.dtype, device=h.device)
    ridge[-1] = 0.0  # no penalty on the bias
    eye = torch.eye(H + 1, dtype=h.dtype, device=h.device)

    def objective(th, z):
        return _bce_with_logits(z, y) + 0.5 * (ridge * th * th).sum(-1)

    theta = torch.zeros(P, H + 1, dtype=h.dtype, device=h.device)
    z = torch.zeros(P, N, dtype=h.dtype, device=h.device)
    value = objective(theta, z)
    for _ in range(iters):
        s = torch.sigmoid(z)  # (P, N)
        grad = torch.bmm(phi.transpose(1, 2), (s - y).unsqueeze(-1)).squeeze(-1) / N + ridge * theta
        curv = torch.bmm(phi.transpose(1, 2), phi * (s * (1 - s)).unsqueeze(-1)) / N + torch.diag(ridge)
        step = torch.linalg.solve(curv + 1e-12 * eye, grad)  # (P, K)
        done = step.abs().amax(-1) <= tol * (1 + theta.abs().amax(-1))  # (P,)
        if bool(done.all()):
            break
        t = torch.ones(P, 1, dtype=h.dtype, device=h.device)
        for _ in range(40):  # backtracking: halve the step where the objective rose
            candidate = theta - t * step
            z_new = torch.bmm(phi, candidate.unsqueeze(-1)).squeeze(-1)  # (P, N)
            new = objective(candidate, z_new)
            rose = (new > value + 1e-13 * (1 + value.abs())) & ~done
            if not bool(rose.any()):
                break
            t = torch.where(rose.unsqueeze(-1), 0.5 * t, t)
        keep = (done | rose).unsqueeze(-1)
        theta = torch.where(keep, theta, candidate)
        z = torch.where(keep, z, z_new)
        value = torch.where(keep.squeeze(-1), value, new)
    return theta[:, :H], theta[:, H:]


def _fit_logistic_readout_1(h: Tensor, y: Tensor, l2: float, iters: int, tol: float
                            ) -> tuple[Tensor, Tensor]:
    """fit_logistic_readout for one unit: h (P, N); the 2 x 2 Newton system in closed form."""
    P, N = h.shape
    a = h.new_zeros(P)
    c = h.new_zeros(P)
    z = h.new_zeros(P, N)
    h2 = h * h
    value = _bce_with_logits(z, y)
    for _ in range(iters):
        s = torch.sigmoid(z)  # (P, N)
        r = s * (1 - s)
        e = s - y
        g_a = (e * h).mean(-1) + l2 * a
        g_c = e.mean(-1)
        H_aa = (r * h2).mean(-1) + l2
        H_ac = (r * h).mean(-1)
        H_cc = r.mean(-1) + 1e-12
        det = H_aa * H_cc - H_ac * H_ac
        d_a = (H_cc * g_a - H_ac * g_c) / det
        d_c = (H_aa * g_c - H_ac * g_a) / det
        done = torch.maximum(d_a.abs(), d_c.abs()) <= tol * (1 + torch.maximum(a.abs(), c.abs()))
        if bool(done.all()):
            break
        t = torch.ones_like(a)
        decrement = g_a * d_a + g_c * d_c  # Newton decrement^2: below 0.01 a full step is safe
        if bool((decrement[~done] > 1e-2).any()):
            if value is None:  # stale after full steps
                value = _bce_with_logits(z, y) + 0.5 * l2 * a * a
            for _ in range(40):  # backtracking: halve the step where the objective rose
                a_new, c_new = a - t * d_a, c - t * d_c
                z_new = a_new.unsqueeze(-1) * h + c_new.unsqueeze(-1)
                new = _bce_with_logits(z_new, y) + 0.5 * l2 * a_new * a_new
                rose = (new > value + 1e-13 * (1 + value.abs())) & ~done
                if not bool(rose.any()):
                    break
                t = torch.where(rose, 0.5 * t, t)
            keep = done | rose
            value = torch.where(keep, value, new)
        else:  # the quadratic phase: take full steps, no objective needed
            a_new, c_new = a - d_a, c - d_c
            z_new = a_new.unsqueeze(-1) * h + c_new.unsqueeze(-1)
            keep = done
            value = None
        a, c = torch.where(keep, a, a_new), torch.where(keep, c, c_new)
        z = torch.where(keep.unsqueeze(-1), z, z_new)
    return a.unsqueeze(-1), c.unsqueeze(-1)
