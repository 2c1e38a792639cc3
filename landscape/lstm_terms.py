"""The four terms of the LSTM cell-state Jacobian dc_t/dc_{t-1}, each on its own, along a sequence.

The seed blog post "Why are LSTMs better than Elman RNNs?" (docs/reference.md §6) writes, with a_t the
block input (``z`` in this package)::

    dc_t/dc_{t-1} = diag(f_t)                              "forget":    the constant-error path
                  + diag(c_{t-1}) df_t/dc_{t-1}            "through_f": via the forget gate
                  + diag(i_t)     da_t/dc_{t-1}            "through_z": via the block input
                  + diag(a_t)     di_t/dc_{t-1}            "through_i": via the input gate

and argues that the first term, the forget gate itself, carries the gradient: it does not depend
on the weights' spectrum, so gradients survive while f_t stays near 1.

Convention (exact, not an approximation): the map differentiated is c_{t-1} -> c_t of one step of
the cell, c_t = f_t c_{t-1} + i_t z_t with every gate computed from h_{t-1} = o_{t-1} squash(c_{t-1})
and x_t. The output gate o_{t-1} is held fixed, as the blog does; in these cells it is a function
of h_{t-2} and x_{t-1} only, so holding it loses nothing: the sum of the four terms IS the Jacobian
of that step map (tested against autograd). With g_t = sigma'(pre_g,t) for a gate g,
k = o_{t-1} squash'(c_{t-1}) (P, N, H), and W_g the (H, H) recurrent weight of gate g::

    through_f = diag(c_{t-1} f'_t) W_f diag(k)
    through_z = diag(i_t z'_t)     W_z diag(k)
    through_i = diag(z_t i'_t)     W_i diag(k)

At t = 1 the three gate terms are 0: h_0 is the fixed initial state, not a function of c_0. A cell
without a gate has that gate fixed at 1: lstm-i has through_i = 0, lstm-f has forget = I and
through_f = 0, lstm-o has o = 1 (k = squash'(c_{t-1})).

What this is not: the product of these one-step Jacobians over t is the blog's c-path analysis of
gradient flow; the whole backpropagated dc_T/dc_t also has the paths through o (c_{t-2} -> h_{t-2}
-> o_{t-1} -> h_{t-1} -> c_t). ``whole_dct_dc1`` computes that one by autograd for comparison.

Shapes: parameters name -> (P or 1, *shape); inputs (T, N, D) or None; every returned term
(P, N, T, H, H) float64 numpy, [..., t-1, a, b] = d c_t[a] / d c_{t-1}[b].
"""
from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING

import numpy as np

from .cells.base import bias, linear
from .errors import LandscapeError
from .lazy import torch

if TYPE_CHECKING:
    from torch import Tensor

TERMS = ("forget", "through_f", "through_z", "through_i")  # in the blog's order


def check_lstm_cell(cell) -> None:
    """Raise LandscapeError unless ``cell`` is of the LSTM family (states h, c; gates i, f, z, o)."""
    ok = tuple(getattr(cell, "state_names", ())) == ("h", "c") and hasattr(cell, "squash_cell") \
        and hasattr(cell, "squash_input") and hasattr(cell, "removed")
    if not ok:
        from .cells import CELLS

        family = [n for n, c in CELLS.items() if tuple(c.state_names) == ("h", "c") and hasattr(c, "squash_cell")]
        raise LandscapeError(f"the LSTM Jacobian terms need a cell of the LSTM family; got "
                             f"{getattr(cell, 'name', cell)!r}; choose from: {', '.join(family)}")


def _slope(fn, a: Tensor) -> Tensor:
    """fn'(a) of an elementwise function: (P, N, H) -> (P, N, H), one backward pass."""
    with torch.enable_grad():
        leaf = a.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(fn(leaf).sum(), leaf, allow_unused=True)
    return torch.zeros_like(leaf) if g is None else g


def _through(p: dict[str, Tensor], row_scale: Tensor, g: str, k: Tensor, removed: str) -> Tensor:
    """diag(row_scale) W_g diag(k): (P, N, H, H) from row_scale (P, N, H) and k (P, N, 1, H); 0 for
    the removed gate."""
    if g == removed:
        return torch.zeros(*row_scale.shape, row_scale.shape[-1], dtype=row_scale.dtype, device=row_scale.device)
    W = p[f"w_{g}"].unsqueeze(1)  # (P|1, 1, H, H)
    return row_scale.unsqueeze(-1) * W * k


def _inputs(data) -> Tensor | None:
    """The inputs (T, N, D) of a TaskData, or a tensor / None passed as is."""
    return getattr(data, "inputs", data)


def _h0(data) -> float:
    return float(getattr(data, "h0", 0.0))


def _as_float64(params: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k: v.detach().to(torch.float64) for k, v in params.items()}


def _population(params: dict[str, Tensor]) -> int:
    return max(int(v.shape[0]) for v in params.values())


def lstm_jacobian_terms(cell, params: dict[str, Tensor], data, T: int, H: int) -> dict[str, np.ndarray]:
    """The four terms of dc_t/dc_{t-1} and their sum ``total``, t = 1..T, on the cell's own unroll.

    cell    an LSTM-family cell (lstm, lstm-b, lstm-i, lstm-o, lstm-f, lstm1997; any gate option)
    params  name -> (P or 1, *shape) at hidden size H
    data    a TaskData (its inputs (T_max >= T, N, D) and h0) or the inputs tensor itself / None
    Returns name -> (P, N, T, H, H) float64 for the names in ``TERMS`` and "total" (see the module
    docstring for the convention). Computed in float64 whatever the parameters' dtype.
    """
    check_lstm_cell(cell)
    x_all = _inputs(data)
    if x_all is not None and x_all.shape[0] < T:
        raise LandscapeError(f"the inputs have {x_all.shape[0]} steps, fewer than T={T}")
    p = _as_float64(params)
    P = _population(p)
    N = 1 if x_all is None else int(x_all.shape[1])
    x_all = None if x_all is None else x_all.detach().to(torch.float64)
    sigma, removed = cell.sigma, cell.removed
    with torch.no_grad():
        h, c = (s.expand(P, N, H) for s in cell.initial_state(p, N, H, _h0(data)))
        o_prev = None  # (P, N, H) the output gate of the step before (None: h_0 is fixed)
        out = {name: [] for name in (*TERMS, "total")}
        for t in range(1, T + 1):
            x = None if x_all is None else x_all[t - 1]

            def pre(g, h=h, x=x):  # (P, N, H), as in LSTM.step_detail
                a = linear(h, p[f"w_{g}"]) + bias(p[f"b_{g}"])
                return a if x is None else a + linear(x, p[f"u_{g}"])

            ones = torch.ones(P, N, H, dtype=torch.float64, device=c.device)
            act = {g: (sigma(pre(g)) if g != removed else ones) for g in "ifo"}
            slope = {g: (_slope(sigma, pre(g)) if g != removed else torch.zeros_like(ones)) for g in "ifo"}
            z_pre = pre("z")
            z, dz = cell.squash_input(z_pre), _slope(cell.squash_input, z_pre)
            f, i = act["f"].expand(P, N, H), act["i"].expand(P, N, H)
            forget = torch.diag_embed(f)  # (P, N, H, H)
            if o_prev is None:  # t = 1: no gate term
                zero = torch.zeros(P, N, H, H, dtype=torch.float64, device=c.device)
                gate_terms = {"through_f": zero, "through_z": zero, "through_i": zero}
            else:
                k = (o_prev * _slope(cell.squash_cell, c)).unsqueeze(-2)  # (P, N, 1, H) dh_{t-1}/dc_{t-1}

                gate_terms = {"through_f": _through(p, c * slope["f"], "f", k, removed),
                              "through_z": _through(p, i * dz, "z", k, removed),
                              "through_i": _through(p, z * slope["i"], "i", k, removed)}
            terms = {"forget": forget, **gate_terms}
            for name in TERMS:
                out[name].append(terms[name].expand(P, N, H, H))
            out["total"].append(sum(terms[name] for name in TERMS).expand(P, N, H, H))
            c_new = f * c + i * z
            o_prev = act["o"].expand(P, N, H)
            h, c = o_prev * cell.squash_cell(c_new), c_new
    return {name: torch.stack(v, 2).cpu().numpy() for name, v in out.items()}  # (P, N, T, H, H)


def term_sizes(terms: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """name -> (P, N, T): |term| for H = 1, its spectral norm for H > 1."""
    out = {}
    for name, m in terms.items():
        out[name] = np.abs(m[..., 0, 0]) if m.shape[-1] == 1 else np.linalg.norm(m, ord=2, axis=(-2, -1))
    return out


def log10_product(factors: np.ndarray, start: int = 1) -> np.ndarray:
    """log10 of the size of the running product J_t ... J_start for t = start..T: (P, N, T - start + 1).

    factors (P, N, T, H, H); start is 1-based. For H = 1 the size is |prod|; for H > 1 the spectral
    norm of the ordered product, renormalised every step (no overflow)."""
    J = factors[:, :, start - 1:]
    if J.shape[-1] == 1:
        with np.errstate(divide="ignore"):
            return np.cumsum(np.log10(np.abs(J[..., 0, 0])), axis=-1)
    P, N, S, H, _ = J.shape
    prod = np.broadcast_to(np.eye(H), (P, N, H, H)).copy()
    scale = np.zeros((P, N))
    out = np.empty((P, N, S))
    for s in range(S):
        prod = J[:, :, s] @ prod
        norm = np.linalg.norm(prod, ord=2, axis=(-2, -1))
        ok = (norm > 0) & np.isfinite(norm)
        with np.errstate(divide="ignore"):
            out[:, :, s] = scale + np.log10(norm)
        prod = np.where(ok[..., None, None], prod / np.where(ok, norm, 1.0)[..., None, None], prod)
        scale = scale + np.where(ok, np.log10(np.where(ok, norm, 1.0)), 0.0)
    return out


def whole_dct_dc1(cell, params: dict[str, Tensor], data, T: int, H: int) -> np.ndarray:
    """The whole derivative d c_t / d c_1 of the unroll for t = 1..T, all paths (those through the
    output gates too), by forward-mode autograd: (P, N, T, H, H) float64, [..., t-1, a, b] =
    d c_t[a] / d c_1[b] (the identity at t = 1). h_1 = o_1 squash(c_1) follows the perturbed c_1
    with o_1 held: o_1 depends on h_0 and x_1 only."""
    from torch.autograd import forward_ad as fwAD

    check_lstm_cell(cell)
    if T < 1:
        raise LandscapeError(f"T must be >= 1, got {T}")
    x_all = _inputs(data)
    p = _as_float64(params)
    P = _population(p)
    N = 1 if x_all is None else int(x_all.shape[1])
    x_all = None if x_all is None else x_all.detach().to(torch.float64)
    with torch.no_grad():
        state = tuple(s.expand(P, N, H) for s in cell.initial_state(p, N, H, _h0(data)))
        (_, c1), gates = cell.step_detail(p, state, None if x_all is None else x_all[0])
        c1 = c1.expand(P, N, H).contiguous()
        o1 = gates.get("o", torch.ones_like(c1)).expand(P, N, H)
    columns = []
    for b in range(H):  # one tangent per input unit: column b of every d c_t / d c_1
        tangent = torch.zeros_like(c1)
        tangent[..., b] = 1.0
        with torch.no_grad(), fwAD.dual_level(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch's forward AD uses torch.jit.script
            c = fwAD.make_dual(c1, tangent)
            state = (o1 * cell.squash_cell(c), c)
            col = [tangent]
            for t in range(2, T + 1):
                state = cell.step(p, state, None if x_all is None else x_all[t - 1])
                col.append(fwAD.unpack_dual(state[1]).tangent.expand(P, N, H))
        columns.append(torch.stack(col, 2))  # (P, N, T, H)
    return torch.stack(columns, -1).cpu().numpy()  # (P, N, T, H_out, H_in)


def summarise(terms: dict[str, np.ndarray], whole: np.ndarray | None = None) -> list[dict]:
    """One row per population member: the mean |term| of each term (over sequences and t), each
    term's share of the sum of the four, and log10 of the product of the total along t
    (t = 2..T: the product from c_1 to c_T), median over the sequences, beside the product of the
    forget term alone and, when given, log10 |d c_T / d c_1| of the whole unroll (``whole_dct_dc1``,
    (P, N, T, H, H); its last step is used).
    """
    sizes = term_sizes(terms)
    P, N, T = sizes["total"].shape
    prod_total = log10_product(terms["total"], start=2)[..., -1] if T > 1 else np.zeros((P, N))
    prod_forget = log10_product(terms["forget"], start=2)[..., -1] if T > 1 else np.zeros((P, N))
    rows = []
    for m in range(P):
        row = {f"mean_abs_{name}": float(sizes[name][m].mean()) for name in (*TERMS, "total")}
        parts = sum(row[f"mean_abs_{name}"] for name in TERMS)
        row.update({f"share_{name}": (row[f"mean_abs_{name}"] / parts if parts > 0 else math.nan)
                    for name in TERMS})
        row["log10_prod_total"] = float(np.median(prod_total[m]))
        row["log10_prod_forget"] = float(np.median(prod_forget[m]))
        if whole is not None:
            end = whole[m, :, -1]  # (N, H, H)
            size = np.abs(end[..., 0, 0]) if end.shape[-1] == 1 else np.linalg.norm(end, ord=2, axis=(-2, -1))
            with np.errstate(divide="ignore"):
                row["log10_whole_dcT_dc1"] = float(np.median(np.log10(size)))
        rows.append(row)
    return rows
