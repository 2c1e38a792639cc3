"""Optimisers over a population: every state tensor is (P, *shape), every hyper-parameter that
differs between models (learning rate, clipping threshold) is a (P,) tensor. No loop over models.

Conventions (documented because they change the dynamics of tiny gradients):

``adam`` (torch.optim.Adam, Kingma & Ba Algorithm 1)::

    m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
    p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps),     eps = 1e-8

``adam-keras`` (Keras 2.x ``keras.optimizers.Adam``, checked against its source: ``get_updates``; Keras 3's
Adam is the same update, checked step by step against Keras 3.15 with the JAX backend,
docs/reference.md §10)::

    lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t)
    p -= lr_t * m / (sqrt(v) + eps),                                eps = K.epsilon() = 1e-7

  Keras adds eps to sqrt(v), not to sqrt(v_hat): the effective epsilon is eps / sqrt(1 - b2^t),
  about 3e-6 at the first step, which damps the steps of parameters whose gradients vanish.

``sgd``: p -= lr g (no momentum).

Clipping (Pascanu et al. 2013, Algorithm 1): one global norm per model over that model's trainable
parameters; g <- g * min(1, c / (|g| + 1e-6)), exactly ``torch.nn.utils.clip_grad_norm_`` (the 1e-6
guards |g| = 0; Keras' clipnorm uses c / |g| when |g| >= c: the same to 1e-6 relative).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import torch

from ..errors import LandscapeError

if TYPE_CHECKING:
    from torch import Tensor

OPTIMIZERS = ("adam", "adam-keras", "sgd")
DEFAULT_EPS = {"adam": 1e-8, "adam-keras": 1e-7, "sgd": 0.0}
CLIP_EPS = 1e-6  # torch.nn.utils.clip_grad_norm_


def check_optimizer(name: str) -> str:
    if name not in OPTIMIZERS:
        raise LandscapeError(f"unknown optimizer {name!r}; choose from: {', '.join(OPTIMIZERS)}")
    return name


def _per_model(values: Tensor, like: Tensor) -> Tensor:
    """(P,) -> (P, 1, ..., 1) broadcasting against ``like`` (P, *shape)."""
    return values.reshape(values.shape[0], *([1] * (like.dim() - 1)))


def grad_norms(grads: dict[str, Tensor]) -> Tensor:
    """The global gradient norm of each model: grads name -> (P, *shape) -> (P,)."""
    total = None
    for g in grads.values():
        sq = g.reshape(g.shape[0], -1).pow(2).sum(-1)
        total = sq if total is None else total + sq
    return total.sqrt()


def clip_grads(grads: dict[str, Tensor], norms: Tensor, clip: Tensor) -> Tensor:
    """Rescale each model's gradient in place when its norm exceeds its threshold.

    norms (P,) from ``grad_norms``; clip (P,) thresholds (inf = no clipping). Returns the (P,)
    scale factors applied (1 where not clipped).
    """
    coef = torch.clamp(clip / (norms + CLIP_EPS), max=1.0)  # (P,)
    for g in grads.values():
        g.mul_(_per_model(coef, g))
    return coef


class PopulationOptimizer:
    """Updates ``params`` (name -> (P, *shape) leaf tensors) in place from gradients of the same
    shapes. ``lr`` is a (P,) tensor."""

    def __init__(self, name: str, params: dict[str, Tensor], lr: Tensor, beta1: float = 0.9,
                 beta2: float = 0.999, eps: float | None = None):
        self.name = check_optimizer(name)
        self.params = params
        self.lr = lr
        self.beta1, self.beta2 = float(beta1), float(beta2)
        self.eps = DEFAULT_EPS[name] if eps is None else float(eps)
        self.t = 0
        if name != "sgd":
            self.m = {k: torch.zeros_like(v) for k, v in params.items()}
            self.v = {k: torch.zeros_like(v) for k, v in params.items()}

    def step(self, grads: dict[str, Tensor]) -> None:
        """One update of every model (no graph is recorded)."""
        with torch.no_grad():
            self.t += 1
            t, b1, b2 = self.t, self.beta1, self.beta2
            for k, g in grads.items():
                p = self.params[k]
                lr = _per_model(self.lr, p)
                if self.name == "sgd":
                    p.sub_(lr * g)
                    continue
                m, v = self.m[k], self.v[k]
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                if self.name == "adam":  # torch: eps added to sqrt(v_hat)
                    denom = (v.sqrt() / (1 - b2 ** t) ** 0.5).add_(self.eps)
                    p.sub_(lr / (1 - b1 ** t) * m / denom)
                else:  # Keras 2: lr_t with eps added to sqrt(v)
                    lr_t = lr * ((1 - b2 ** t) ** 0.5 / (1 - b1 ** t))
                    p.sub_(lr_t * m / (v.sqrt() + self.eps))
