"""The optimal readout fit: the ridge-regularised logistic readout that minimises the loss of each
population member, by batched damped Newton steps (the grid's ``--readout optimal``).

``fit_logistic_readout(h, y, l2)`` returns, per member, the minimiser of
mean BCE + (l2 / 2) |out_w|^2: the ridge keeps the optimum finite when the classes are separable,
which they are wherever the cell latches. One hidden unit has its own closed-form 2 x 2 Newton
system (``_fit_logistic_readout_1``), fitted block by block with members leaving as they converge.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .lazy import torch

if TYPE_CHECKING:
    from torch import Tensor


def softplus(x: Tensor) -> Tensor:
    """log(1 + e^x), exact for large |x| and +-inf (torch's softplus is linear above 20)."""
    return torch.clamp(x, min=0) + torch.log1p(torch.exp(-x.abs()))


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
        step = _newton_step(curv + 1e-12 * eye, grad)  # (P, K)
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


def _newton_step(curv: Tensor, grad: Tensor) -> Tensor:
    """curv^-1 grad per member: (P, K, K), (P, K) -> (P, K). A member whose curvature is singular
    (its states saturated to one constant with no ridge: the readout is then not determined) takes
    the least-norm step (the pseudo-inverse's) instead of failing the whole fit."""
    step, info = torch.linalg.solve_ex(curv, grad)
    singular = info != 0  # (P,)
    if bool(singular.any()):
        step[singular] = (torch.linalg.pinv(curv[singular]) @ grad[singular].unsqueeze(-1)).squeeze(-1)
    return step


FIT_BLOCK_ELEMS = 1 << 18  # CPU: members x sequences fitted together (the work arrays stay near the cache)


def _fit_logistic_readout_1(h: Tensor, y: Tensor, l2: float, iters: int, tol: float
                            ) -> tuple[Tensor, Tensor]:
    """fit_logistic_readout for one unit: h (P, N); the 2 x 2 Newton system in closed form.

    On the CPU the members are fitted in blocks of about ``FIT_BLOCK_ELEMS`` values (on a GPU all
    at once), and within a block only the members still iterating are carried on: a member leaves
    once its Newton step is below tol.
    """
    P, N = h.shape
    a, c = h.new_zeros(P), h.new_zeros(P)
    rows = max(1, FIT_BLOCK_ELEMS // max(N, 1)) if h.device.type == "cpu" else max(P, 1)  # a GPU takes all
    for start in range(0, P, rows):
        stop = min(P, start + rows)
        _fit_block_1(h[start:stop], y, l2, iters, tol, a[start:stop], c[start:stop])
    return a.unsqueeze(-1), c.unsqueeze(-1)


def _fit_block_1(h: Tensor, y: Tensor, l2: float, iters: int, tol: float, a_out: Tensor, c_out: Tensor
                 ) -> None:
    """Damped Newton for the members of one block, h (m, N) -> a_out, c_out (m,), written in place.

    An iteration needs five sums over the sequences, of s h, s, r h^2, r h and r with
    s = sigmoid(a h + c), r = s (1 - s): they are written into one buffer (k, 5, N) and summed by
    one reduction, with no temporaries of the block's size. A member whose Newton decrement is
    above 0.01 takes a backtracking line search on the penalised objective; below, a full step
    (the quadratic phase, where it is safe).
    """
    m, N = h.shape
    hh = h.contiguous()  # (k, N) the outputs of the k members still iterating
    act = torch.arange(m, device=h.device)  # their rows in the block
    a, c = h.new_zeros(m), h.new_zeros(m)  # their iterate
    yh = torch.mv(hh, y)  # (k,) sum_n y_n h_n: the gradient is sum (s - y) h = sum s h - yh
    y_sum = y.sum()
    sign = 1.0 - 2.0 * (y > 0.5).to(h.dtype)  # (N,): the BCE of logit z is softplus(sign z)
    z = h.new_zeros(m, N)  # logits a h + c of the members still iterating
    work = h.new_empty(m, 5, N)  # s h, s, r h^2, r h, r
    value = _bce_with_logits(h.new_zeros(1, N), y).expand(m).clone()  # the objective at (a, c)
    known = torch.ones(m, dtype=torch.bool, device=h.device)  # where ``value`` is up to date

    def objective(zz, aa):  # mean BCE + l2/2 a^2 at logits zz (j, N), as _bce_with_logits
        q = torch.mul(zz, sign)
        u = torch.abs(q).neg_().exp_().add_(1.0).log_()  # log(1 + e^-|q|)
        return q.clamp_(min=0).add_(u).mean(-1) + 0.5 * l2 * aa * aa

    for it in range(iters):
        k = hh.shape[0]
        if it == 0:  # a = c = 0: s = 1/2 and r = 1/4 everywhere
            sum_h = hh.sum(-1)
            sums = torch.stack([0.5 * sum_h, torch.full_like(sum_h, 0.5 * N),
                                0.25 * torch.linalg.vecdot(hh, hh), 0.25 * sum_h,
                                torch.full_like(sum_h, 0.25 * N)], -1)
        else:
            w = work[:k]
            s = torch.sigmoid(z, out=w[:, 1])  # (k, N)
            torch.mul(s, hh, out=w[:, 0])
            r = torch.addcmul(s, s, s, value=-1.0, out=w[:, 4])  # s (1 - s)
            torch.mul(r, hh, out=w[:, 3])
            torch.mul(w[:, 3], hh, out=w[:, 2])
            sums = w.sum(-1)  # (k, 5)
        sums = sums / N
        g_a = sums[:, 0] - yh / N + l2 * a
        g_c = sums[:, 1] - y_sum / N
        H_aa = sums[:, 2] + l2
        H_ac = sums[:, 3]
        H_cc = sums[:, 4] + 1e-12
        det = H_aa * H_cc - H_ac * H_ac
        d_a = (H_cc * g_a - H_ac * g_c) / det
        d_c = (H_aa * g_c - H_ac * g_a) / det
        done = torch.maximum(d_a.abs(), d_c.abs()) <= tol * (1 + torch.maximum(a.abs(), c.abs()))
        if bool(done.any()):  # these members are fitted: record them and carry on without them
            a_out[act[done]], c_out[act[done]] = a[done], c[done]
            if bool(done.all()):
                return
            keep = (~done).nonzero().squeeze(-1)
            act, a, c, d_a, d_c, g_a, g_c = (v[keep] for v in (act, a, c, d_a, d_c, g_a, g_c))
            value, known, yh = value[keep], known[keep], yh[keep]
            hh, z = hh.index_select(0, keep), z.index_select(0, keep)
        a_new, c_new = a - d_a, c - d_c
        torch.addcmul(c_new.unsqueeze(-1), hh, a_new.unsqueeze(-1), out=z)  # the full steps' logits
        damped = (g_a * d_a + g_c * d_c > 1e-2).nonzero().squeeze(-1)  # Newton decrement^2 > 0.01
        if len(damped):
            stale = damped[~known[damped]]
            if len(stale):  # the objective at the current iterate (unknown after full steps)
                value[stale] = objective(torch.addcmul(c[stale].unsqueeze(-1), hh[stale], a[stale].unsqueeze(-1)),
                                         a[stale])
            new = objective(z[damped], a_new[damped])
            t = torch.ones_like(new)
            idx = damped
            for trial in range(40):  # backtracking: halve the step where the objective rose
                rose = new > value[idx] + 1e-13 * (1 + value[idx].abs())
                value[idx[~rose]] = new[~rose]
                idx, t = idx[rose], 0.5 * t[rose]
                if not len(idx) or trial == 39:
                    break
                a_new[idx], c_new[idx] = a[idx] - t * d_a[idx], c[idx] - t * d_c[idx]
                z_idx = torch.addcmul(c_new[idx].unsqueeze(-1), hh[idx], a_new[idx].unsqueeze(-1))
                z[idx] = z_idx
                new = objective(z_idx, a_new[idx])
            if len(idx):  # no descent within the trials: these members keep their iterate
                a_new[idx], c_new[idx] = a[idx], c[idx]
                z[idx] = torch.addcmul(c[idx].unsqueeze(-1), hh[idx], a[idx].unsqueeze(-1))
            known[:] = False
            known[damped] = True
        else:
            known[:] = False
        a, c = a_new, c_new
    a_out[act], c_out[act] = a, c
