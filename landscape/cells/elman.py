"""One-layer maps: the Elman tanh RNN, Pascanu's pre-activation sigmoid map, and the blog's
linear and ReLU (IRNN) variants (docs/reference.md §6)."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import LandscapeError
from ..lazy import torch
from .base import LATER, Cell, ParamDecl, bias, drive, linear
from .maps import SIGMOID_MAP, TANH_MAP


def _affine(p, h, x):
    """w h + b + u x, (P, N, H) (added in this order: the numbers of the stored surfaces)."""
    return linear(h, p["w"]) + bias(p["b"]) + drive(x, p, "u")


@dataclass(frozen=True)
class SRNN(Cell):
    name = "srnn"
    summary = "Elman tanh RNN (torch.nn.RNN, Keras SimpleRNN)"
    equations = "h' = tanh(w h + u x + b)"
    params = (
        ParamDecl("w", "recurrent", default=1.0),
        ParamDecl("u", "input", default=1.0),
        ParamDecl("b", "bias", default=0.0),
    )
    default_axes = ("w:-1:3:201", "b:-1.5:1.5:201")
    block_input = ("w", "b")
    one_unit_map = TANH_MAP

    def step(self, p, state, x):
        (h,) = state
        return (torch.tanh(_affine(p, h, x)),)


@dataclass(frozen=True)
class Pascanu(Cell):
    """``observe``: what the cell outputs (what a task's loss sees): sigmoid(x), as Pascanu et al.
    2013 (Fig. 6's loss (sigmoid(x_T) - 0.7)^2), or the state x itself, as the Cross Validated
    asker's notebook (loss (x_T - 1)^2 from x_0 = 0; docs/reference.md §11)."""

    name = "pascanu"
    summary = "Pascanu et al. 2013's sigmoid map; the state is the pre-activation x"
    equations = "x' = w sigmoid(x) + u in + b;  output sigmoid(x) (observe=state: x)"
    observe: str = field(default="sigmoid", metadata=LATER)
    params = (
        ParamDecl("w", "recurrent", default=5.0),
        ParamDecl("u", "input", default=1.0),
        ParamDecl("b", "bias", default=-2.4),
    )
    state_names = ("x",)
    default_axes = ("w:4.5:5.5:201", "b:-2.9:-1.9:201")
    block_input = ("w", "b")
    one_unit_map = SIGMOID_MAP

    def __post_init__(self):
        if self.observe not in ("sigmoid", "state"):
            raise LandscapeError(f"unknown observe {self.observe!r} for pascanu; choose from: sigmoid, state")

    def step(self, p, state, x):
        (s,) = state
        return (_affine(p, torch.sigmoid(s), x),)

    def output(self, state):
        return torch.sigmoid(state[0]) if self.observe == "sigmoid" else state[0]


@dataclass(frozen=True)
class Linear(Cell):
    name = "linear"
    summary = "linear RNN (the blog's sigma = identity): the gradient explodes iff |w| > 1"
    equations = "h' = w h + u x + b"
    params = SRNN.params
    default_axes = ("w:-2:2:201", "b:-1:1:201")
    block_input = ("w", "b")

    def step(self, p, state, x):
        (h,) = state
        return (_affine(p, h, x),)


@dataclass(frozen=True)
class IRNN(Cell):
    name = "irnn"
    summary = "ReLU RNN with identity initialisation (Le et al. 2015)"
    equations = "h' = relu(w h + u x + b);  initialised with w = I, b = 0"
    params = SRNN.params
    default_axes = ("w:-0.5:2:201", "b:-1:1:201")
    block_input = ("w", "b")

    def step(self, p, state, x):
        (h,) = state
        return (torch.relu(_affine(p, h, x)),)

    def init_params(self, scheme, H, D, P, generator, dtype=None):
        """The scheme's input weights (torch's or Keras's draw), then w = I and b = 0 (Le et al.)."""
        out = super().init_params(scheme, H, D, P, generator, dtype)
        out["w"] = torch.eye(H, dtype=out["w"].dtype).expand(P, H, H).clone()
        out["b"] = torch.zeros_like(out["b"])
        return out
