"""Readouts: the output layer's kinds, their parameters, initialisers and losses, in one place.

The words (one meaning each):

    readout kind   what the output layer is (``READOUT_KINDS``):
                   identity   no trained layer; the loss is on the cell's output unit 0, scaled by the
                              task's ``loss_scale`` (tasks target, bengio)
                   logistic   one logit  out_w . h + out_b  and binary cross-entropy (the grids'
                              readout; parameters out_w (H,), out_b (1,))
                   dense2     Keras' Dense(2, softmax) with sparse categorical cross-entropy
                              (parameters dense_w (2, H), dense_b (2,)); the same model as logistic,
                              its logit difference is the logit. For a task with C > 2 classes
                              (``Task.classes``) it is Dense(C, softmax): dense_w (C, H), dense_b (C,)
                              (``readout_kind``); training only, a grid refuses it
    fit            how a grid sets the readout at each point (``FITS``; the grid's policy, nothing
                   else has one): fixed (the base point's out_w, out_b) or optimal (the
                   ridge-regularised best readout, fitted per point and T by ``readout_fit``);
                   auto = optimal for a task with a logistic readout

A resolved ``Readout`` (kind, fit, ridge l2, scale) computes the loss of outputs y (P, N, H): the
engine's fast, non-differentiable ``loss`` and the gradient analysis's ``differentiable_loss``.
Training uses ``READOUT_KINDS[kind].train_loss`` (per-model mean loss and per-row correctness).
torch is imported on first use.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from .errors import LandscapeError
from .lazy import torch
from .readout_fit import _bce_with_logits, fit_logistic_readout, softplus  # noqa: F401 (softplus: public)

if TYPE_CHECKING:
    from torch import Tensor

FITS = ("auto", "fixed", "optimal")
NEWTON_STEPS = 2  # differentiable Newton steps through the optimal fit (exact 1st and 2nd derivatives)
NEWTON_DAMP = 1e-12  # added to the readout curvature, as in readout_fit


# ---------------------------------------------------------------------------------------------
# the kinds


@dataclass(frozen=True)
class ReadoutKind:
    """One kind of output layer: its parameters (shapes for H units), base point, initialisers and
    training loss."""

    name: ClassVar[str]
    doc: ClassVar[str]

    def shapes(self, H: int) -> dict[str, tuple[int, ...]]:
        return {}

    def base(self, H: int, dtype=None) -> dict[str, Tensor]:
        """The base point of a fixed readout (the value landscape grids are drawn around)."""
        return {}

    def init(self, scheme: str, H: int, generator, dtype) -> dict[str, Tensor]:
        """Initial values for one model: scheme keras (Keras Dense: glorot_uniform kernel, zero
        bias), torch (nn.Linear: U(-1/sqrt(H), 1/sqrt(H)) for both) or base (``base``)."""
        return {}

    def train_loss(self, params: dict[str, Tensor], h: Tensor, y: Tensor, scale: float = 1.0,
                   clip: float | None = None) -> tuple[Tensor, Tensor]:
        """Per-model mean loss (P,) and per-row correctness (P, N) for outputs h (P, N, H) and
        targets y (P, N) (differentiable)."""
        raise NotImplementedError


@dataclass(frozen=True)
class IdentityReadout(ReadoutKind):
    name = "identity"
    doc = "no trained layer: loss scale * (y_T - target)^2 on output unit 0"

    def train_loss(self, params, h, y, scale=1.0, clip=None):
        """scale * mean (h_0 - y)^2; correct when the signs of h_0 and y agree."""
        out = h[..., 0]
        return scale * ((out - y) ** 2).mean(-1), torch.sign(out) == torch.sign(y)


def _linear_init(K: int, scheme: str, H: int, g, dtype):
    """(w (K, H), b (K,)) of Keras' Dense(K) or torch's nn.Linear(H, K), or the base point's."""
    if scheme == "keras":
        lim = math.sqrt(6.0 / (H + K))
        w = ((torch.rand((H, K), generator=g, dtype=dtype) * 2 - 1) * lim).T.contiguous()
        b = torch.zeros(K, dtype=dtype)
    elif scheme == "torch":
        k = 1.0 / math.sqrt(H)
        w = (torch.rand((K, H), generator=g, dtype=dtype) * 2 - 1) * k
        b = (torch.rand((K,), generator=g, dtype=dtype) * 2 - 1) * k
    else:  # base: logit difference 4 h
        w = torch.full((K, H), 4.0, dtype=dtype)
        b = torch.zeros(K, dtype=dtype)
        if K == 2:
            w = torch.cat([-0.5 * w[:1], 0.5 * w[:1]])
    return w, b


@dataclass(frozen=True)
class LogisticReadout(ReadoutKind):
    name = "logistic"
    doc = "one logit out_w . h + out_b, binary cross-entropy"

    def shapes(self, H):
        return {"out_w": (H,), "out_b": (1,)}

    def base(self, H, dtype=None):
        """out_w = 4 (so h = +-1 gives p = 0.98), out_b = 0."""
        dtype = torch.float64 if dtype is None else dtype
        return {"out_w": torch.full((H,), 4.0, dtype=dtype), "out_b": torch.zeros(1, dtype=dtype)}

    def init(self, scheme, H, generator, dtype):
        w, b = _linear_init(1, scheme, H, generator, dtype)
        return {"out_w": w[0], "out_b": b}

    def train_loss(self, params, h, y, scale=1.0, clip=None):
        z = (h * params["out_w"].unsqueeze(-2)).sum(-1) + params["out_b"]  # (P, N)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(z, y, reduction="none").mean(-1)
        return loss, ((z > 0) == (y > 0.5)) & torch.isfinite(z)  # a NaN output is never right


@dataclass(frozen=True)
class Dense2Readout(ReadoutKind):
    name = "dense2"
    doc = "Keras Dense(2, softmax) + sparse categorical cross-entropy (Dense(C) for a task with C classes)"
    classes: int = 2  # C, the softmax's logits

    def shapes(self, H):
        return {"dense_w": (self.classes, H), "dense_b": (self.classes,)}

    def base(self, H, dtype=None):
        """Logits (-2 h, 2 h): the logistic base point's logit difference 4 h (C > 2: 4 h each)."""
        w, b = _linear_init(self.classes, "base", H, None, torch.float64 if dtype is None else dtype)
        return {"dense_w": w, "dense_b": b}

    def init(self, scheme, H, generator, dtype):
        w, b = _linear_init(self.classes, scheme, H, generator, dtype)
        return {"dense_w": w, "dense_b": b}

    def train_loss(self, params, h, y, scale=1.0, clip=None):
        """Softmax cross-entropy; with ``clip`` Keras' log(clip(softmax, eps, 1 - eps))."""
        W, b = params["dense_w"], params["dense_b"]  # (P, C, H), (P, C)
        if W.shape[-1] == 1:
            z = h * W.transpose(-1, -2) + b.unsqueeze(-2)  # (P, N, C)
        else:
            z = torch.matmul(h, W.transpose(-1, -2)) + b.unsqueeze(-2)
        label = y.long()
        logp = torch.log_softmax(z, dim=-1)
        picked = logp.gather(-1, label.unsqueeze(-1)).squeeze(-1)  # (P, N)
        if clip is not None:
            picked = torch.log(torch.clamp(picked.exp(), clip, 1.0 - clip))
        return -picked.mean(-1), (z.argmax(-1) == label) & torch.isfinite(z).all(-1)  # NaN: never right

    def logit_difference(self, params: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """The equivalent logistic readout (out_w (P, H), out_b (P, 1))."""
        W, b = params["dense_w"], params["dense_b"]
        return W[:, 1] - W[:, 0], (b[:, 1] - b[:, 0]).unsqueeze(-1)


READOUT_KINDS: dict[str, ReadoutKind] = {k.name: k for k in (IdentityReadout(), LogisticReadout(), Dense2Readout())}
TRAIN_KINDS = ("dense2", "logistic")  # what training offers a classification task
READOUT_PARAMS = tuple(n for k in READOUT_KINDS.values() for n in k.shapes(1))  # every readout parameter name


def readout_kind(name: str, classes: int = 2) -> ReadoutKind:
    """The readout kind ``name`` for a task with ``classes`` classes: dense2 becomes Dense(C) for
    C > 2; the other kinds have two classes (logistic) or none (identity)."""
    kind = READOUT_KINDS[name]
    if classes == 2 or name == "identity":
        return kind
    if name != "dense2":
        raise LandscapeError(f"readout {name} has two classes; a task with {classes} classes trains with "
                             f"--readout dense2 (a softmax over {classes} logits); grids take two-class tasks only")
    return Dense2Readout(classes)


# ---------------------------------------------------------------------------------------------
# a resolved readout


@dataclass(frozen=True)
class Readout:
    """The readout of a resolved problem: its kind, how a grid sets it (``fit``), the ridge of the
    optimal fit, and the loss scale of the identity kind (the task's ``loss_scale``)."""

    kind: str = "logistic"
    fit: str = "fixed"  # "fixed" | "optimal" (only with the logistic kind)
    l2: float = 1e-4
    scale: float = 1.0

    @property
    def label(self) -> str:
        """The word a surface file's spec stores: none (identity), fixed or optimal."""
        return "none" if self.kind == "identity" else self.fit

    @property
    def optimal(self) -> bool:
        return self.fit == "optimal" and self.kind != "identity"

    def params(self, H: int) -> dict[str, tuple[int, ...]]:
        return READOUT_KINDS[self.kind].shapes(H)

    def loss(self, y: Tensor, target: Tensor, params: dict[str, Tensor], work: Tensor | None = None) -> Tensor:
        """The loss of outputs y (P, N, H) against targets (N,) -> (P,), not differentiated.
        work: scratch (2, P, N) for a fixed one-unit logistic readout."""
        if self.kind == "identity":
            return identity_loss(y, target, self.scale)
        if self.optimal:
            out_w, out_b = fit_logistic_readout(y, target, self.l2)
            return logistic_loss(y.to(torch.float64), out_w, out_b, target.to(torch.float64)).to(y.dtype)
        out_w, out_b = self._fixed(params, y.shape[0])
        return logistic_loss(y, out_w, out_b, target, work)

    def _fixed(self, params, P: int) -> tuple[Tensor, Tensor]:
        """The fixed readout as a logistic one, (P, H) and (P, 1)."""
        if self.kind == "dense2":
            w, b = READOUT_KINDS["dense2"].logit_difference(params)
            return w.expand(P, -1), b.expand(P, -1)
        return params["out_w"].expand(P, -1), params["out_b"].expand(P, -1)

    def differentiable_loss(self, y: Tensor, target: Tensor, params: dict[str, Tensor],
                            implicit: bool = False) -> Tensor:
        """The loss ``loss`` reports, differentiable (to every order) in y (P, N, H) and the params.

        With the optimal fit the readout is fitted (detached); ``implicit`` adds NEWTON_STEPS
        differentiable Newton steps from the optimum, so the derivatives are those of the reported
        loss (exact first and second derivatives), else the fitted readout is held fixed.
        """
        if self.kind == "identity":
            return identity_loss(y, target, self.scale)
        if not self.optimal:
            out_w, out_b = self._fixed(params, y.shape[0])
            return smooth_bce(logits(y, out_w, out_b), target)
        out_w, out_b = fit_logistic_readout(y, target, self.l2)  # detached, (P, H), (P, 1)
        y64, t64 = y.to(torch.float64), target.to(torch.float64)
        if not implicit:
            return smooth_bce(logits(y64, out_w, out_b), t64).to(y.dtype)
        phi, theta = newton_readout(y64, t64, out_w, out_b, self.l2)
        return smooth_bce((phi * theta.unsqueeze(1)).sum(-1), t64).to(y.dtype)


# ---------------------------------------------------------------------------------------------
# the losses


def logits(h: Tensor, out_w: Tensor, out_b: Tensor) -> Tensor:
    """h (P, N, H), out_w (P, H), out_b (P, 1) -> (P, N)."""
    return (h * out_w.unsqueeze(-2)).sum(-1) + out_b


def logistic_loss(h: Tensor, out_w: Tensor, out_b: Tensor, y: Tensor, work: Tensor | None = None) -> Tensor:
    """Mean binary cross-entropy per member: h (P, N, H), y (N,) in {0, 1} -> (P,).

    Written as softplus(-z) for class 1 and softplus(z) for class 0, so an infinite logit gives
    0 on the right side and +inf on the wrong one (never inf - inf = NaN).
    work: optional scratch (2, P, N) for the one-unit case (else it is allocated)."""
    if h.shape[-1] == 1 and not (torch.is_grad_enabled() and (h.requires_grad or out_w.requires_grad
                                                                or out_b.requires_grad)):
        return _bce_one_unit(h[..., 0], out_w, out_b, y, work)
    return _bce_with_logits(logits(h, out_w, out_b), y)


def _bce_one_unit(h: Tensor, out_w: Tensor, out_b: Tensor, y: Tensor, work: Tensor | None) -> Tensor:
    """logistic_loss for one unit, h (P, N): the operations of ``_bce_with_logits``, in place on two
    (P, N) arrays instead of a temporary per operation (bit for bit with a readout per member; with
    one readout for all, the logits come from one addcmul: equal up to rounding)."""
    if work is None:
        work = h.new_empty(2, *h.shape)
    sign = 1.0 - 2.0 * (y > 0.5).to(h.dtype)  # (N,): -1 where the label is 1, so q = -z there
    if out_w.stride(0) == 0 or out_w.shape[0] == 1:  # one readout for all: q = sign b + h (sign w)
        w, b = out_w.reshape(-1)[:1], out_b.reshape(-1)[:1]
        q = torch.addcmul(b * sign, h, w * sign, out=work[0])  # (P, N), exactly sign (w h + b)
    else:
        q = torch.mul(h, out_w, out=work[0]).add_(out_b).mul_(sign)
    t = torch.abs(q, out=work[1]).neg_().exp_().log1p_()
    return q.clamp_(min=0).add_(t).mean(-1)  # softplus(q) = max(q, 0) + log1p(e^-|q|)


def identity_loss(h: Tensor, y: Tensor, scale: float = 1.0) -> Tensor:
    """scale * mean (h[..., 0] - y)^2 per member: h (P, N, H), y (N,) -> (P,)."""
    return scale * ((h[..., 0] - y) ** 2).mean(-1)


def smooth_bce(z: Tensor, target: Tensor) -> Tensor:
    """Mean binary cross-entropy with logits z (P, N), targets (N,) in {0, 1} -> (P,): the value of
    ``logistic_loss``, written as log(1 + e^z) - z y so that it is smooth to every order (torch's
    fused loss takes a slow path in double backward)."""
    return (torch.logaddexp(torch.zeros_like(z), z) - z * target).mean(-1)


def newton_readout(y: Tensor, target: Tensor, out_w: Tensor, out_b: Tensor, l2: float,
                   steps: int = NEWTON_STEPS) -> tuple[Tensor, Tensor]:
    """``steps`` Newton steps on mean BCE + (l2 / 2)|out_w|^2 from (out_w, out_b), differentiable in y.

    y (P, N, H) float64, target (N,), out_w (P, H), out_b (P, 1) -> (features (P, N, K), theta (P, K))
    with K = H + 1, features = [y, 1] and theta = [out_w, out_b], so the logits are features . theta
    (kept whole: slicing theta would make the double backward call a slow Python decomposition).
    Started at the (detached) optimum the steps return it unchanged in value, with the exact first and
    second derivatives of the fit.
    """
    P, N, H = y.shape
    phi = torch.cat([y, torch.ones(P, N, 1, dtype=y.dtype, device=y.device)], -1)  # (P, N, K)
    ridge = torch.full((H + 1,), l2, dtype=y.dtype, device=y.device)
    ridge[-1] = 0.0  # no penalty on the bias
    curv0 = torch.diag(ridge) + NEWTON_DAMP * torch.eye(H + 1, dtype=y.dtype, device=y.device)  # (K, K)
    theta = torch.cat([out_w, out_b], -1)  # (P, K)
    for _ in range(steps):
        z = (phi * theta.unsqueeze(1)).sum(-1)  # (P, N) logits
        err = torch.sigmoid(z) - target  # (P, N)
        slope = torch.sigmoid(z) * torch.sigmoid(-z)  # (P, N), no cancellation in the tails
        grad = (phi * err.unsqueeze(-1)).mean(1) + ridge * theta  # (P, K)
        curv = torch.einsum("pnk,pnl->pkl", phi * slope.unsqueeze(-1), phi) / N + curv0  # (P, K, K)
        step, _ = torch.linalg.solve_ex(curv, grad.unsqueeze(-1))  # no exception on a singular member
        theta = theta - step.squeeze(-1)
    return phi, theta
