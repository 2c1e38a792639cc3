"""The same loss landscapes in numpy, cache-blocked, written the way a careful numpy user would:
the grid points in blocks of C members whose (C, N) state fits in the L2 cache, each time step a
few in-place ufunc passes over the block (``out=`` buffers, no temporaries), the loss at T from the
block's last state. One core (numpy's ufuncs are single-threaded).

Cells: srnn, pascanu, lstm, gru (torch.nn.GRU's form, as landscape's default); losses: the fixed
logistic readout (``loss='logistic'``, labels in {0, 1}) and ``identity`` (mean (y_T - target)^2 on
the output, sigmoid(x) for pascanu). The optimal readout is not written here: fitting it per member
in numpy is a Python loop (or a hand-batched Newton solver, the code this project ships), so the
numpy rows are the fixed-readout and target cases.
"""
from __future__ import annotations

import numpy as np

CELLS = ("srnn", "pascanu", "lstm", "gru")
L2_BYTES = 256 * 1024  # the state block of one time step (all state arrays) fits in this


def _sigmoid(a: np.ndarray, out: np.ndarray) -> np.ndarray:
    """sigmoid(a) into out, as 0.5 tanh(a / 2) + 0.5 (one transcendental, no overflow)."""
    np.multiply(a, 0.5, out=out)
    np.tanh(out, out=out)
    out *= 0.5
    out += 0.5
    return out


def make_losses(cell: str, params: dict[str, np.ndarray], x: np.ndarray | None, n: int, T: int, h0: float,
                dtype: str, loss: str, target: np.ndarray, out_w: float = 0.0, out_b: float = 0.0):
    """A ``run()`` -> losses (P,) float64.

    params  name -> (P,) or a scalar: the grid's parameter values (the one-unit cells)
    x       (T, N) the input, or None
    """
    if cell not in CELLS:
        raise ValueError(f"no numpy version of cell {cell!r}; choose from: {', '.join(CELLS)}")
    if loss not in ("logistic", "identity"):
        raise ValueError(f"unknown loss {loss!r}; choose from: logistic, identity")
    dt = np.dtype(dtype)
    P = max(np.size(v) for v in params.values())
    cols = {k: np.broadcast_to(np.asarray(v, dt).reshape(-1, 1), (P, 1)) for k, v in params.items()}  # (P, 1)
    xs = None if x is None else np.ascontiguousarray(x[:T], dt)  # (T, N)
    y = np.asarray(target, np.float64)
    n_state = {"srnn": 1, "pascanu": 1, "lstm": 2, "gru": 1}[cell]
    n_temp = {"srnn": 1, "pascanu": 1, "lstm": 4, "gru": 4}[cell]
    C = max(1, L2_BYTES // ((n_state + n_temp) * n * dt.itemsize))

    def block(p: dict, m: int) -> np.ndarray:
        """The output at T of m members: (m, N)."""
        s = [np.full((m, n), h0, dt) for _ in range(n_state)]
        tmp = [np.empty((m, n), dt) for _ in range(n_temp)]
        for t in range(T):
            xt = None if xs is None else xs[t]
            if cell == "srnn":
                (h,), (a,) = s, tmp
                np.multiply(h, p["w"], out=a)
                a += p["b"]
                if xt is not None:
                    a += p["u"] * xt
                np.tanh(a, out=h)
            elif cell == "pascanu":
                (v,), (a,) = s, tmp
                _sigmoid(v, a)
                a *= p["w"]
                a += p["b"]
                if xt is not None:
                    a += p["u"] * xt
                v[...] = a
            elif cell == "lstm":
                h, c = s
                gi, gf, go, gz = tmp
                for g, buf in (("i", gi), ("f", gf), ("o", go), ("z", gz)):
                    np.multiply(h, p[f"w_{g}"], out=buf)
                    buf += p[f"b_{g}"]
                    if xt is not None:
                        buf += p[f"u_{g}"] * xt
                _sigmoid(gi, gi), _sigmoid(gf, gf), _sigmoid(go, go), np.tanh(gz, out=gz)
                c *= gf
                gi *= gz
                c += gi
                np.tanh(c, out=h)
                h *= go
            else:  # gru, the reset after the recurrent product (torch.nn.GRU)
                (h,) = s
                gz, gr, gn, hn = tmp
                for g, buf in (("z", gz), ("r", gr)):
                    np.multiply(h, p[f"w_{g}"], out=buf)
                    buf += p[f"b_{g}"]
                    if xt is not None:
                        buf += p[f"u_{g}"] * xt
                    _sigmoid(buf, buf)
                np.multiply(h, p["w_h"], out=hn)
                hn += p["b_hn"]
                hn *= gr
                hn += p["b_h"]
                if xt is not None:
                    hn += p["u_h"] * xt
                np.tanh(hn, out=gn)
                h -= gn  # h' = z h + (1 - z) n = n + z (h - n)
                h *= gz
                h += gn
        if cell == "pascanu":
            return _sigmoid(s[0], tmp[0])
        return s[0]

    def run() -> np.ndarray:
        out = np.empty(P)
        sign = np.where(y > 0.5, -1.0, 1.0)
        for start in range(0, P, C):
            stop = min(P, start + C)
            p = {k: v[start:stop] for k, v in cols.items()}
            o = block(p, stop - start).astype(np.float64)  # (m, N)
            if loss == "identity":
                out[start:stop] = np.mean((o - y) ** 2, axis=-1)
            else:
                q = sign * (out_w * o + out_b)  # BCE as softplus of the signed logit
                out[start:stop] = np.mean(np.maximum(q, 0) + np.log1p(np.exp(-np.abs(q))), axis=-1)
        return out

    return run
