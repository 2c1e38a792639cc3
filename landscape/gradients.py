"""The gradient analysis: per-timestep gradient norms, the gradient field and curvature over a grid,
and the Jacobian factors along a sequence (docs/reference.md §2, §6, §8).

Everything is batched over the population P (grid points or models): a member's loss depends only on
its own parameters, so the gradient of sum_p L_p with respect to a (P,) tensor holds every member's
own derivative at once. Shapes: P members, N sequences, H hidden units, T steps.

Definitions (the numbers stored under the names of docs/format.md):

- ``grad`` (nT, P, 2) = (dL_T/dx, dL_T/dy) where x, y are the two grid-axis parameters and L_T the
  loss the engine reports at T (``engine.unroll_losses``; the mean over the N sequences).
- ``hessian_eigvals`` (nT, P, 2): eigenvalues, ascending, of the exact 2 x 2 Hessian of L_T in the
  (x, y) plane, by double backward.
- ``grad_norm_t`` (P, T) = ||dL_T/dh_t||: the Frobenius norm, over (N, H), of the gradient of the
  mean-over-N loss with respect to the whole state tensor h_t (N, H) of a member, t = 1..T (t = T is
  the direct gradient at the output). One vector norm per member and step, not a mean of
  per-sequence norms. For the LSTM family also ||dL_T/dc_t||. For pascanu the state is x (the
  pre-activation), so its key is "x".
- Sequences of different lengths (two-sequence): a sequence ending at e_n contributes to step t only
  when t <= e_n, and t runs to the longest sequence's end (``grad_norm_steps``).

Every function takes the resolved model (``problem.Problem``: cell, task, H, D and the readout); the
readout is one of (``problem.readout``): on the output (identity tasks), fixed, or optimal:

- "optimal" fits the ridge-regularised readout a*(theta) at every T (``fit_logistic_readout``, exactly
  the engine's call). For the per-timestep norms the fitted readout is *held fixed* (detached): they are
  the backpropagated gradients of the model whose readout sits at its optimum. (Envelope theorem: the
  derivative through the fit of the *penalised* objective vanishes at the optimum, so holding the
  readout fixed is exact for that objective. For the reported, unpenalised BCE it misses the term
  -l2 out_w . d out_w/dtheta, which is not small where the classes separate and out_w grows: 3% to
  140% of the gradient at srnn latch points in the tests. ``readout_implicit=True`` includes it.)
- For ``grad`` and ``hessian_eigvals`` the derivatives are those of the reported loss itself, the
  unpenalised BCE at a*(theta), whose readout gradient is -l2 * out_w, not zero. The fit enters by
  implicit differentiation: two Newton steps on the penalised objective, differentiable in theta,
  taken from the detached optimum. At the optimum they leave the value unchanged and reproduce the
  first and second derivatives of a*(theta) exactly (Newton converges quadratically: after one step the
  error is O(|dtheta|^2), after two O(|dtheta|^4)).

Nothing is clipped: overflowing derivatives stay +-inf, NaN stays NaN.

Memory: the reverse passes keep the graph of the whole unroll, O(T) per member; the caller sizes
chunks with ``plan.gradient_bytes_per_member`` / ``plan.grad_norm_bytes_per_member``. For one-state cells with
H = 1 (srnn, pascanu, and gru/mut with one unit) ``grad_norms_t(method="scalar")`` is exact with
O(P N) memory: two forward passes with the scalar factors dh_t/dh_{t-1} in log space.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import math
from dataclasses import dataclass, field

import numpy as np
from .lazy import torch

from .cells import Cell
from .engine import outputs_at_ends
from .errors import LandscapeError
from .problem import Problem
from .tasks import TaskData

if TYPE_CHECKING:
    from torch import Tensor

GRAD_NORM_METHODS = ("auto", "autograd", "scalar")


# ---------------------------------------------------------------------------------------------
# population helpers


def population_size(params: dict[str, Tensor]) -> int:
    """P: the largest leading size of the parameters (a leading 1 broadcasts)."""
    return max(v.shape[0] for v in params.values())


def axis_values(params: dict[str, Tensor], refs: tuple, P: int | None = None) -> tuple[Tensor, ...]:
    """The current values of the axis elements: refs ((name, index), ...) -> (P,) each (detached)."""
    P = population_size(params) if P is None else P
    return tuple(params[name][(slice(None), *idx)].detach().expand(P).clone() for name, idx in refs)


def with_axis_values(params: dict[str, Tensor], refs: tuple, values: tuple[Tensor, ...]) -> dict[str, Tensor]:
    """params with the axis elements replaced by ``values`` ((P,) each), differentiably: a parameter
    on an axis becomes a (P, *shape) copy with the axis element written in (autograd records the
    write, so gradients reach ``values``). The others are kept as they are ((1, ...) or (P, ...))."""
    out = dict(params)
    P = values[0].shape[0]
    copied = set()
    for (name, idx), vals in zip(refs, values):
        if name not in copied:  # one copy per parameter, even with both axes in it
            out[name] = out[name].expand(P, *out[name].shape[1:]).clone()  # (P, *shape)
            copied.add(name)
        out[name][(slice(None), *idx)] = vals.to(dtype=out[name].dtype, device=out[name].device)
    return out


def _initial_state(cell: Cell, params, data: TaskData, P: int, H: int) -> tuple[Tensor, ...]:
    """The initial state expanded to the population, (P, N, H) each (so every step's state is a
    per-member tensor and its gradient is per member)."""
    return tuple(s.expand(P, -1, -1).clone() for s in cell.initial_state(params, data.n, H, data.h0))


def _input(data: TaskData, t: int) -> Tensor | None:
    """The input of step t (1-based): (N, D), or None for tasks without input."""
    return None if data.inputs is None else data.inputs[t - 1]


def grad_norm_steps(data: TaskData, T: int) -> int:
    """How many steps the per-timestep norms at nominal length T cover: the longest sequence's end
    (T itself unless lengths vary, as in two-sequence)."""
    return int(data.ends[T].max())


# ---------------------------------------------------------------------------------------------
# the differentiable unroll and loss


def _unroll(cell: Cell, params, data: TaskData, Ts: tuple[int, ...], P: int, H: int, state0=None,
            keep: bool = False) -> tuple[dict[int, Tensor], list[tuple[Tensor, ...]]]:
    """One unroll to the last end of any T in Ts, without in-place writes (so it differentiates).

    Returns {T: y_T (P, N, H)}, each sequence's output at its own end, and when ``keep`` the state
    after every step: a list over t = 1..steps of state tuples, (P, N, H) each.
    """
    if data.path is not None:
        raise LandscapeError("a task whose loss is over every step of a path (plrnn-path) has no gradient "
                             "analysis here; differentiate engine.unroll_losses instead")
    state = _initial_state(cell, params, data, P, H) if state0 is None else state0
    kept = []

    def advance(t):
        nonlocal state
        state = cell.step(params, state, _input(data, t))
        if keep:
            kept.append(state)

    outs = {Ts[k]: y.expand(P, -1, -1) for k, y in
            outputs_at_ends(advance, lambda: cell.output(state), [data.ends[T] for T in Ts])}
    return outs, kept


# ---------------------------------------------------------------------------------------------
# 1. per-timestep gradient norms


def scalar_method_applies(problem: Problem) -> bool:
    """Whether the exact O(P N)-memory scheme applies: one state tensor and one hidden unit."""
    return problem.H == 1 and len(problem.cell.state_names) == 1


def grad_norms_t(problem: Problem, params: dict[str, Tensor], data: TaskData, T: int, method: str = "auto",
                 readout_implicit: bool = False) -> dict[str, Tensor]:
    """||dL_T/ds_t|| for every state s of the cell and t = 1..steps: name -> (P, steps) float64.

    params name -> (P or 1, *shape); data on the params' device and dtype; T a key of data.ends;
    steps = ``grad_norm_steps(data, T)`` (T unless lengths vary). The norm is the Frobenius norm over
    (N, H) of the gradient of the mean-over-N loss with respect to the member's state tensor s_t; an
    optimal readout is held fixed at its fitted value (see the module docstring), or, with
    ``readout_implicit``, refitted (the total derivative of the reported loss, as for ``grad``).

    method "autograd": an explicit unroll, one backward, the gradient of every step's state tensor
    (memory O(T) per member: ``plan.grad_norm_bytes_per_member``). "scalar" (one-state cells with H = 1):
    exact with O(P N) memory, see ``_grad_norms_scalar``. "auto": scalar where it applies.
    """
    if method not in GRAD_NORM_METHODS:
        raise LandscapeError(f"unknown method {method!r}; choose from: {', '.join(GRAD_NORM_METHODS)}")
    cell = problem.cell
    if method == "auto":
        method = "scalar" if scalar_method_applies(problem) else "autograd"
    if method == "scalar":
        if not scalar_method_applies(problem):
            raise LandscapeError(f"the scalar method needs a one-state cell with H = 1; {cell.name} has "
                                 f"states {', '.join(cell.state_names)} and H = {problem.H}")
        return {cell.state_names[0]: _grad_norms_scalar(problem, params, data, T, readout_implicit)}
    return _grad_norms_autograd(problem, params, data, T, readout_implicit)


def _grad_norms_autograd(problem: Problem, params, data, T, implicit=False):
    cell, H = problem.cell, problem.H
    P = population_size(params)
    params = {k: v.detach() for k, v in params.items()}
    with torch.enable_grad():
        # the initial state is a leaf so that the graph runs through every step's state
        state0 = tuple(s.clone().requires_grad_(True) for s in _initial_state(cell, params, data, P, H))
        outs, states = _unroll(cell, params, data, (T,), P, H, state0=state0, keep=True)
        loss = problem.readout.differentiable_loss(outs[T], data.targets[T], params, implicit)  # (P,)
        flat = [s for st in states for s in st]  # step-major: t = 1 (h, c), t = 2 (h, c), ...
        grads = torch.autograd.grad(loss.sum(), flat, allow_unused=True)
    k = len(cell.state_names)
    out = {}
    for j, name in enumerate(cell.state_names):
        cols = [_frobenius(g, ref) for g, ref in zip(grads[j::k], flat[j::k])]  # steps x (P,)
        out[name] = torch.stack(cols, -1).to(torch.float64)  # (P, steps)
    return out


def _frobenius(g: Tensor | None, ref: Tensor) -> Tensor:
    """The norm over (N, H) of g (P, N, H) -> (P,), scaled so it overflows only where the result does."""
    if g is None:  # the state does not reach the loss (a sequence already ended)
        return ref.new_zeros(ref.shape[0])
    g = g.to(torch.float64)
    scale = g.abs().amax(dim=(1, 2))  # (P,)
    safe = torch.where((scale > 0) & torch.isfinite(scale), scale, torch.ones_like(scale))
    norm = safe * torch.linalg.vector_norm(g / safe.view(-1, 1, 1), dim=(1, 2))
    return torch.where(torch.isfinite(scale), norm, scale)  # inf where an entry is inf


def _scalar_factor_step(cell, params, state: Tensor, x) -> tuple[Tensor, Tensor]:
    """One step of a one-state, one-unit cell with its factor ds_t/ds_{t-1}:
    state (P, N, 1) -> (new state (P, N, 1), factor (P, N, 1)). Every (p, n) entry of the new state
    depends only on the same entry of the old one, so one backward of the sum gives all factors.
    (Reverse mode: torch's forward-mode AD runs these ops through slow Python decompositions.)"""
    with torch.enable_grad():
        leaf = state.detach().requires_grad_(True)
        (new,) = cell.step(params, (leaf,), x)
        (J,) = torch.autograd.grad(new.sum(), leaf, allow_unused=True)
    return new.detach(), torch.zeros_like(leaf) if J is None else J


def _grad_norms_scalar(problem: Problem, params, data, T, implicit=False) -> Tensor:
    """||dL_T/ds_t|| for a one-state cell with H = 1, exactly, in O(P N) memory.

    dL/ds_{t,n} = g_n prod_{s=t+1}^{e_n} J_{s,n} with J_s = ds_s/ds_{s-1} (P, N) and g = dL/ds_{e_n}.
    Pass 1 runs forward keeping the prefix sums S_t = sum_{s<=t} log|J_s| (and a count of exact zeros)
    and each sequence's end state; g comes from a backward through the loss alone. Pass 2 reruns the
    forward and, at every t, ||dL/ds_t||^2 = sum_n exp(log g_n^2 + 2 (S_{e_n} - S_t)), a log-sum-exp over
    the sequences that have not ended (and whose remaining product has no zero factor).
    """
    cell = problem.cell
    P = population_size(params)
    params = {k: v.detach() for k, v in params.items()}
    ends = data.ends[T].to(next(iter(params.values())).device)  # (N,)
    steps = int(ends.max())
    dev = ends.device

    def run(visit):
        (s,) = _initial_state(cell, params, data, P, 1)
        S = torch.zeros(P, data.n, dtype=torch.float64, device=dev)  # (P, N) prefix sum of log|J|
        Z = torch.zeros(P, data.n, dtype=torch.long, device=dev)  # (P, N) zero factors so far
        for t in range(1, steps + 1):
            s, J = _scalar_factor_step(cell, params, s, _input(data, t))
            J = J[..., 0].to(torch.float64)  # (P, N)
            zero = J == 0
            S = S + torch.where(zero, torch.zeros_like(J), torch.log(J.abs()))
            Z = Z + zero.long()
            visit(t, s, S, Z)

    # pass 1: each sequence's end state, S and Z at its end
    end_state = torch.zeros(P, data.n, 1, dtype=next(iter(params.values())).dtype, device=dev)
    S_end = torch.zeros(P, data.n, dtype=torch.float64, device=dev)
    Z_end = torch.zeros(P, data.n, dtype=torch.long, device=dev)

    def at_end(t, s, S, Z):
        nonlocal end_state, S_end, Z_end
        here = ends == t  # (N,)
        if bool(here.any()):
            end_state = torch.where(here.view(1, -1, 1), s, end_state)
            S_end = torch.where(here, S, S_end)
            Z_end = torch.where(here, Z, Z_end)

    with torch.no_grad():
        run(at_end)
    with torch.enable_grad():
        leaf = end_state.detach().requires_grad_(True)  # (P, N, 1)
        loss = problem.readout.differentiable_loss(cell.output((leaf,)), data.targets[T], params, implicit)
        (g,) = torch.autograd.grad(loss.sum(), leaf, allow_unused=True)
    g = torch.zeros_like(leaf) if g is None else g
    log_g2 = 2.0 * torch.log(g[..., 0].to(torch.float64).abs())  # (P, N), -inf where g = 0

    out = torch.empty(P, steps, dtype=torch.float64, device=dev)

    def accumulate(t, s, S, Z):
        live = (t <= ends) & (Z == Z_end)  # (P, N): sequence not ended, no zero factor after t
        terms = torch.where(live, log_g2 + 2.0 * (S_end - S), torch.full_like(S, -math.inf))
        out[:, t - 1] = torch.exp(0.5 * torch.logsumexp(terms, dim=-1))

    with torch.no_grad():
        run(accumulate)
    return out


# ---------------------------------------------------------------------------------------------
# 2. gradient field and curvature in the grid plane


def loss_grad_hessian(problem: Problem, params: dict[str, Tensor], data: TaskData, Ts: tuple[int, ...],
                      refs: tuple, hessian: bool = True) -> tuple[Tensor, Tensor, Tensor | None]:
    """The loss, its gradient and its Hessian in the plane of two axis parameters, at every T.

    params name -> (P or 1, *shape) (e.g. from ``engine.chunk_params``); refs ((name, index),
    (name, index)) as ``ResolvedGrid.refs``. Returns loss (nT, P), grad (nT, P, 2) and the
    Hessian (nT, P, 2, 2) (None when ``hessian`` is False), in the params' dtype. One forward with the
    graph kept; per T one backward (create_graph) and two double backwards.
    """
    Ts = tuple(Ts)
    P = population_size(params)
    base = {k: v.detach() for k, v in params.items()}
    ref = next(iter(base.values()))
    loss = torch.empty(len(Ts), P, dtype=ref.dtype, device=ref.device)
    grad = torch.empty(len(Ts), P, 2, dtype=ref.dtype, device=ref.device)
    hess = torch.empty(len(Ts), P, 2, 2, dtype=ref.dtype, device=ref.device) if hessian else None
    with torch.enable_grad():
        xy = tuple(v.requires_grad_(True) for v in axis_values(base, refs, P))  # (P,) leaves
        p = with_axis_values(base, refs, xy)
        outs, _ = _unroll(problem.cell, p, data, Ts, P, problem.H)
        for k, T in enumerate(Ts):
            L = problem.readout.differentiable_loss(outs[T], data.targets[T], p, implicit=True)  # (P,)
            g = _grad(L.sum(), xy, create_graph=hessian)
            loss[k] = L.detach()
            grad[k] = torch.stack(g, -1).detach()
            if hessian:
                hxx, hxy = _grad(g[0].sum(), xy, create_graph=False)
                (hyy,) = _grad(g[1].sum(), xy[1:], create_graph=False)
                hess[k] = torch.stack([torch.stack([hxx, hxy], -1), torch.stack([hxy, hyy], -1)], -2)
            del g, L
    return loss, grad, hess


def _grad(out: Tensor, inputs: tuple[Tensor, ...], create_graph: bool) -> tuple[Tensor, ...]:
    """autograd.grad keeping the graph, with zeros for inputs that do not reach ``out``."""
    if not out.requires_grad:
        return tuple(torch.zeros_like(x) for x in inputs)
    gs = torch.autograd.grad(out, inputs, create_graph=create_graph, retain_graph=True, allow_unused=True)
    return tuple(torch.zeros_like(x) if g is None else g for g, x in zip(gs, inputs))


def hessian_eigvals(hess: Tensor) -> Tensor:
    """Eigenvalues, ascending, of symmetric 2 x 2 matrices (..., 2, 2) -> (..., 2), in closed form:
    m -+ hypot((a - c) / 2, b) with m = (a + c) / 2 (no overflow before the result overflows)."""
    a, b, c = hess[..., 0, 0], hess[..., 0, 1], hess[..., 1, 1]
    m = 0.5 * a + 0.5 * c
    r = torch.hypot(0.5 * a - 0.5 * c, b)
    return torch.stack([m - r, m + r], -1)


def grad_and_hessian(problem: Problem, params: dict[str, Tensor], data: TaskData, Ts: tuple[int, ...],
                     refs: tuple) -> tuple[Tensor, Tensor]:
    """grad (nT, P, 2) = dL_T/d(x, y) and hessian_eigvals (nT, P, 2), ascending, of the exact 2 x 2
    Hessian in the grid plane; see ``loss_grad_hessian`` for the arguments. Values as computed:
    huge, +-inf and NaN are kept."""
    _, grad, hess = loss_grad_hessian(problem, params, data, Ts, refs)
    return grad, hessian_eigvals(hess)


# ---------------------------------------------------------------------------------------------
# 3. Jacobian factors along a sequence


@dataclass(frozen=True)
class JacobianFactors:
    """The one-step Jacobian factors of a state along the sequences, as numpy arrays.

    cell           the cell's name
    state          the analysed state: "h" ("x" for pascanu) for one-state cells, "c" for the
                   LSTM family
    factor         (P, N, T, H, H) ds_t/ds_{t-1}, [..., i, k] = ds_{t,i}/ds_{t-1,k} (for H = 1 the
                   trailing (1, 1) is the scalar). LSTM family: the total dc_t/dc_{t-1}, with
                   h_{t-1} = o_{t-1} * squash(c_{t-1}) (o_{t-1} fixed); forget + remainder
    log_product    (P, N, T) natural log of the spectral norm of the running product
                   ds_t/ds_0 = factor_t ... factor_1 (for H = 1: log|product|; -inf where it is 0)
    product_sign   (P, N, T) the sign of the product for H = 1; None for H > 1
    forget         (P, N, T, H) LSTM family: f_t, the diagonal of the forget-gate term diag(f_t)
                   (1 for cells without a forget gate); None otherwise
    remainder      (P, N, T, H, H) LSTM family: the rest of dc_t/dc_{t-1}, the paths through the
                   gates via h_{t-1}: (dc_t/dh_{t-1}) diag(o_{t-1} squash'(c_{t-1})); 0 at t = 1,
                   where h_0 is the fixed initial state; None otherwise
    gates          name -> (P, N, T, H) gate activations from ``step_detail`` (empty for srnn and
                   pascanu)

    log_product is the forward product; the suffix dh_T/dh_t of backpropagation is, for H = 1,
    exp(log_product[..., T-1] - log_product[..., t-1]). For the LSTM family the c-path product is
    docs/reference.md §6's analysis, not the whole backpropagated gradient (that is ``grad_norms_t``'s "c").
    """

    cell: str
    state: str
    factor: np.ndarray
    log_product: np.ndarray
    product_sign: np.ndarray | None
    forget: np.ndarray | None
    remainder: np.ndarray | None
    gates: dict = field(default_factory=dict)

    def factor_size(self) -> np.ndarray:
        """(P, N, T): |factor| for H = 1, its spectral norm for H > 1."""
        return _spectral(self.factor)

    def remainder_size(self) -> np.ndarray | None:
        """(P, N, T): |remainder| for H = 1, its spectral norm for H > 1 (LSTM family)."""
        return None if self.remainder is None else _spectral(self.remainder)


def _spectral(m: np.ndarray) -> np.ndarray:
    if m.shape[-1] == 1:
        return np.abs(m[..., 0, 0])
    return np.linalg.norm(m, ord=2, axis=(-2, -1))


def _jacobian_wrt(fn, arg: Tensor, H: int) -> Tensor:
    """d fn(arg) / d arg for a map (P, N, H) -> (P, N, H) that acts on each (p, n) separately:
    (P, N, H, H), [..., i, k] = d out_i / d arg_k, by H backward passes (one per output unit)."""
    with torch.enable_grad():
        leaf = arg.detach().requires_grad_(True)
        out = fn(leaf).expand_as(leaf)
        rows = []
        for i in range(H):
            (g,) = torch.autograd.grad(out[..., i].sum(), leaf, retain_graph=i < H - 1, allow_unused=True)
            rows.append(torch.zeros_like(leaf) if g is None else g)
    return torch.stack(rows, -2)  # (P, N, H_out, H_in)


def _elementwise_slope(fn, arg: Tensor) -> Tensor:
    """fn'(arg) for an elementwise fn: (P, N, H) -> (P, N, H), by one backward pass."""
    with torch.enable_grad():
        leaf = arg.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(fn(leaf).sum(), leaf, allow_unused=True)
    return torch.zeros_like(leaf) if g is None else g


def jacobian_factors(problem: Problem, params: dict[str, Tensor], data: TaskData, T: int) -> JacobianFactors:
    """The Jacobian factors ds_t/ds_{t-1}, their running product and the gates, t = 1..T.

    params name -> (P or 1, *shape); data with inputs of at least T steps. For one-state cells
    (srnn, pascanu, gru, mut1-3) s is the state; for the LSTM family s = c, split into the forget term
    diag(f_t) and the remainder (docs/reference.md §6). All arrays float64; see ``JacobianFactors``.
    """
    cell, H = problem.cell, problem.H
    P = population_size(params)
    params = {k: v.detach() for k, v in params.items()}
    lstm = "c" in cell.state_names
    detail = getattr(cell, "step_detail", None)
    with torch.no_grad():
        state = _initial_state(cell, params, data, P, H)
        N = state[0].shape[1]
        eye = torch.eye(H, dtype=torch.float64, device=state[0].device)
        prod = eye.expand(P, N, H, H).clone()  # (P, N, H, H) normalised running product
        log_scale = torch.zeros(P, N, dtype=torch.float64, device=state[0].device)
        sign = torch.ones(P, N, dtype=torch.float64, device=state[0].device)
        factors, logs, signs, forgets, rems = [], [], [], [], []
        gates: dict[str, list] = {}
        o_prev = None  # (P, N, H) the previous step's output gate (LSTM family)
        for t in range(1, T + 1):
            x = _input(data, t)
            if detail is not None:
                new, g = detail(params, state, x)
                for name, v in g.items():
                    gates.setdefault(name, []).append(v.expand(P, N, H).to(torch.float64))
            else:
                new, g = cell.step(params, state, x), {}
            if lstm:
                h, c = state
                f = g.get("f", torch.ones_like(c)).expand(P, N, H).to(torch.float64)
                if t == 1:  # h_0 is the fixed initial state, not a function of c_0
                    rem = torch.zeros(P, N, H, H, dtype=torch.float64, device=c.device)
                else:
                    dc_dh = _jacobian_wrt(lambda hh: cell.step(params, (hh, c), x)[1], h, H)  # (P, N, H, H)
                    dsq = _elementwise_slope(cell.squash_cell, c)  # (P, N, H)
                    o = torch.ones_like(c) if o_prev is None else o_prev
                    rem = (dc_dh * (o * dsq).unsqueeze(-2)).to(torch.float64)  # columns scaled by k
                J = torch.diag_embed(f) + rem
                forgets.append(f)
                rems.append(rem)
                o_prev = g.get("o")
            else:
                J = _jacobian_wrt(lambda s: cell.step(params, (s,), x)[0], state[0], H).to(torch.float64)
            factors.append(J)
            if H == 1:
                j = J[..., 0, 0]  # (P, N)
                log_scale = log_scale + torch.log(j.abs())
                sign = sign * torch.sign(j)
                logs.append(log_scale)
                signs.append(sign)
            else:
                prod = J @ prod
                norm = torch.linalg.matrix_norm(prod, ord=2)  # (P, N)
                logs.append(log_scale + torch.log(norm))
                ok = (norm > 0) & torch.isfinite(norm)
                prod = torch.where(ok[..., None, None], prod / torch.where(ok, norm, 1.0)[..., None, None], prod)
                log_scale = log_scale + torch.where(ok, torch.log(norm), torch.zeros_like(norm))
            state = new

    def stack(xs, dim=2):
        return torch.stack(xs, dim).cpu().numpy()

    return JacobianFactors(
        cell=cell.name, state="c" if lstm else cell.state_names[0], factor=stack(factors),
        log_product=stack(logs), product_sign=stack(signs) if H == 1 else None,
        forget=stack(forgets) if lstm else None, remainder=stack(rems) if lstm else None,
        gates={name: stack(v) for name, v in gates.items()})


# ---------------------------------------------------------------------------------------------
# 4. the grid's gradient fields


def gradient_fields(problem: Problem, refs: tuple, Ts: tuple[int, ...], params: dict[str, Tensor],
                    data: TaskData) -> dict[str, np.ndarray]:
    """The gradient analysis of one chunk of a grid, for the HDF5 surface file.

    refs the two axes ((name, index), (name, index)); params from ``engine.chunk_params`` (axis
    parameters (P, ...)); data the task's data for Ts, on the params' device and dtype. Returns
    float64 numpy arrays: "grad" (nT, P, 2), "hessian_eigvals" (nT, P, 2), "grad_norm_t" (P, steps)
    and, for cells with a cell state c (the LSTM family), "grad_norm_c_t" (P, steps); steps =
    ``grad_norm_steps(data, max(Ts))``, which is T_max unless sequence lengths vary. Works under
    torch.no_grad().
    """
    grad, eig = grad_and_hessian(problem, params, data, Ts, refs)
    # autograd, not the scalar scheme: faster, and its memory is within the Hessian pass's
    norms = grad_norms_t(problem, params, data, max(Ts), method="autograd")
    out = {"grad": grad, "hessian_eigvals": eig, "grad_norm_t": norms[problem.cell.state_names[0]]}
    if "c" in norms:
        out["grad_norm_c_t"] = norms["c"]
    return {k: v.detach().cpu().to(torch.float64).numpy() for k, v in out.items()}


def gradient_field_shapes(problem: Problem, steps: int) -> dict[str, tuple]:
    """The SurfaceWriter ``fields`` of a --grads surface: name -> trailing shape ("grid" = (nx, ny, ...));
    steps = ``grad_norm_steps(data, T_max)``."""
    out = {"grad": (2,), "hessian_eigvals": (2,), "grad_norm_t": ("grid", steps)}
    if "c" in problem.cell.state_names:
        out["grad_norm_c_t"] = ("grid", steps)
    return out
