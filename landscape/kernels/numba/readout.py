"""Fused CPU kernels (numba) for the one-unit readout: the logistic and identity losses, and the optimal
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

The numba kernels are module-level functions, so that numba's on-disk cache (``cache=True``) finds
them again in the next process: defined inside a function they were compiled anew by every process
(2-3 s of the headline command) and each process added another entry to the cache. This module
imports numba: import it where numba is known to be there (``kernels.numba.available()``).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .. import runtime
from .mathfn import fma, maximum, prefer_wide_vectors, radd, sigmoid64, softplus64

OPTS = dict(nogil=True, cache=True, error_model="numpy", boundscheck=False)


@njit(**OPTS)
def logistic_kernel(y, sign, w, b, out, lo, hi, _nb):
    """out[p] = mean_n softplus(sign_n (w_p y_pn + b_p)), p in lo..hi-1."""
    prefer_wide_vectors()
    N = y.shape[1]
    for p in range(lo, hi):
        wp = np.float64(w[p])
        bp = np.float64(b[p])
        acc = 0.0
        for n in range(N):
            q = (wp * np.float64(y[p, n]) + bp) * sign[n]
            acc = radd(acc, softplus64(q))
        out[p] = acc / N
    return 0


@njit(**OPTS)
def identity_kernel(y, target, scale, out, lo, hi, _nb):
    prefer_wide_vectors()
    N = y.shape[1]
    for p in range(lo, hi):
        acc = 0.0
        for n in range(N):
            d = np.float64(y[p, n]) - target[n]
            acc = radd(acc, d * d)
        out[p] = scale * (acc / N)
    return 0


@njit(inline="always")
def objective(h, sign, a, c, l2):
    """mean softplus(sign (c + a h)) + l2 / 2 a^2 (the torch fit's penalised objective)."""
    acc = 0.0
    for n in range(h.shape[0]):
        acc = radd(acc, softplus64(fma(a, h[n], c) * sign[n]))
    return acc / h.shape[0] + 0.5 * l2 * a * a


@njit(**OPTS)
def fit_kernel(h, y, sign, l2, iters, tol, a_out, c_out, lo, hi, _nb):
    """The damped Newton fit of readouts._fit_block_1, member by member (p in lo..hi-1)."""
    prefer_wide_vectors()
    N = h.shape[1]
    y_sum = 0.0
    for n in range(N):
        y_sum += y[n]
    value0 = 0.0  # the objective at a = c = 0: mean softplus(0)
    for n in range(N):
        value0 = radd(value0, softplus64(0.0 * sign[n]))
    value0 = value0 / N
    for p in range(lo, hi):
        hp = h[p]
        yh = 0.0
        sum_h = 0.0
        sum_hh = 0.0
        for n in range(N):
            x = hp[n]
            yh = radd(yh, y[n] * x)
            sum_h = radd(sum_h, x)
            sum_hh = radd(sum_hh, x * x)
        a = 0.0
        c = 0.0
        value = value0
        known = True
        for it in range(iters):
            if it == 0:  # a = c = 0: s = 1/2, r = 1/4 everywhere
                s0, s1, s2, s3, s4 = 0.5 * sum_h, 0.5 * N, 0.25 * sum_hh, 0.25 * sum_h, 0.25 * N
            else:
                s0 = 0.0
                s1 = 0.0
                s2 = 0.0
                s3 = 0.0
                s4 = 0.0
                for n in range(N):
                    x = hp[n]
                    s = sigmoid64(fma(a, x, c))
                    r = s - s * s
                    rx = r * x
                    s0 = radd(s0, s * x)
                    s1 = radd(s1, s)
                    s2 = radd(s2, rx * x)
                    s3 = radd(s3, rx)
                    s4 = radd(s4, r)
            s0, s1, s2, s3, s4 = s0 / N, s1 / N, s2 / N, s3 / N, s4 / N
            g_a = s0 - yh / N + l2 * a
            g_c = s1 - y_sum / N
            h_aa = s2 + l2
            h_ac = s3
            h_cc = s4 + 1e-12
            det = h_aa * h_cc - h_ac * h_ac
            d_a = (h_cc * g_a - h_ac * g_c) / det
            d_c = (h_aa * g_c - h_ac * g_a) / det
            if maximum(abs(d_a), abs(d_c)) <= tol * (1.0 + maximum(abs(a), abs(c))):
                break  # fitted (torch's maximum: a NaN never converges)
            a_new = a - d_a
            c_new = c - d_c
            if g_a * d_a + g_c * d_c > 1e-2:  # Newton decrement^2 > 0.01: backtrack
                if not known:
                    value = objective(hp, sign, a, c, l2)
                new = objective(hp, sign, a_new, c_new, l2)
                t = 1.0
                rose = True
                for trial in range(40):
                    rose = new > value + 1e-13 * (1.0 + abs(value))
                    if not rose:
                        value = new
                        break
                    t = 0.5 * t
                    if trial == 39:
                        break
                    a_new = a - t * d_a
                    c_new = c - t * d_c
                    new = objective(hp, sign, a_new, c_new, l2)
                if rose:  # no descent within the trials: keep the iterate
                    a_new = a
                    c_new = c
                known = True
            else:
                known = False
            a = a_new
            c = c_new
        a_out[p] = a
        c_out[p] = c
    return 0


# ---------------------------------------------------------------------------------------------
# the kernels on numpy arrays (a CPU torch tensor is taken as one: np.asarray), members split over
# the worker threads


def _split(fn, args, P, threads):
    runtime.run_split(fn, args, P, 1, 0, threads, 1 << 12)


def _f64(a) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a), dtype=np.float64)


def _sign(target) -> np.ndarray:
    """-1 where the label is 1, else +1: (N,) float64."""
    return 1.0 - 2.0 * (np.asarray(target) > 0.5).astype(np.float64)


def logistic_losses(y, target, out_w, out_b, threads: int | None = None) -> np.ndarray:
    """Mean BCE of the one-unit logistic readout per member: y (P, N), target (N,) in {0, 1},
    out_w, out_b (P or 1) -> (P,) in y's dtype (``readouts.logistic_loss``)."""
    y = np.asarray(y)
    P, N = y.shape
    w = np.ascontiguousarray(np.broadcast_to(_f64(out_w).reshape(-1), (P,)))
    b = np.ascontiguousarray(np.broadcast_to(_f64(out_b).reshape(-1), (P,)))
    out = np.empty(P, dtype=np.float64)
    _split(logistic_kernel, (np.ascontiguousarray(y), _sign(target), w, b, out), P, threads)
    return out.astype(y.dtype, copy=False)


def identity_losses(y, target, scale: float = 1.0, threads: int | None = None) -> np.ndarray:
    """scale * mean (y - target)^2 per member: y (P, N), target (N,) -> (P,) in y's dtype (``identity_loss``)."""
    y = np.asarray(y)
    P, N = y.shape
    out = np.empty(P, dtype=np.float64)
    _split(identity_kernel, (np.ascontiguousarray(y), _f64(target), float(scale), out), P, threads)
    return out.astype(y.dtype, copy=False)


def fit_logistic_readout_1(h, y, l2: float, iters: int = 60, tol: float = 1e-10,
                           threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The optimal one-unit logistic readout of each member, in float64: h (P, N), y (N,) in {0, 1}
    -> out_w (P, 1), out_b (P, 1), the minimiser of mean BCE + (l2 / 2) out_w^2 (as
    ``readouts.fit_logistic_readout`` for H = 1)."""
    hh, yy = _f64(h), _f64(y)
    P, N = hh.shape
    a = np.zeros(P, dtype=np.float64)
    c = np.zeros(P, dtype=np.float64)
    _split(fit_kernel, (hh, yy, _sign(yy), float(l2), int(iters), float(tol), a, c), P, threads)
    return a[:, None], c[:, None]
