"""One-layer tanh and sigmoid maps: the Elman RNN and Pascanu's pre-activation map."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import Cell, ParamDecl, bias, linear


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

    def step(self, p, state, x):
        (h,) = state
        a = linear(h, p["w"]) + bias(p["b"])  # (P, N, H)
        if x is not None:
            a = a + linear(x, p["u"])
        return (torch.tanh(a),)


@dataclass(frozen=True)
class Pascanu(Cell):
    name = "pascanu"
    summary = "Pascanu et al. 2013's sigmoid map; the state is the pre-activation x"
    equations = "x' = w sigmoid(x) + u in + b;  output sigmoid(x)"
    params = (
        ParamDecl("w", "recurrent", default=5.0),
        ParamDecl("u", "input", default=1.0),
        ParamDecl("b", "bias", default=-2.4),
    )
    state_names = ("x",)

    def step(self, p, state, x):
        (s,) = state
        a = linear(torch.sigmoid(s), p["w"]) + bias(p["b"])  # (P, N, H)
        if x is not None:
            a = a + linear(x, p["u"])
        return (a,)

    def output(self, state):
        return torch.sigmoid(state[0])
