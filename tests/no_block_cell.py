"""A user cell without a declared block input (for tests/test_engine.py)."""
from dataclasses import dataclass

import torch

from landscape.cells import Cell, ParamDecl, bias, drive, linear


@dataclass(frozen=True)
class NoBlock(Cell):
    name = "noblock"
    params = (ParamDecl("w", "recurrent", default=1.0), ParamDecl("u", "input", default=1.0), ParamDecl("b", "bias"))

    def step(self, p, state, x):
        return (torch.tanh(linear(state[0], p["w"]) + drive(x, p, "u") + bias(p["b"])),)
