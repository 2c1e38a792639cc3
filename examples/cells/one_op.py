"""A one-unit cell whose step is one elementwise torch function: which functions run on the fused
kernels, and how fast (``benchmarks/user_cell.py``'s per-op rows, ``tests/test_trace_ops.py``).

    a  = w h + u x + b
    h' = op(domain(a))          output h

``domain`` keeps the argument where the function is defined and the state bounded: ``pos`` is
1 + a^2 (log, sqrt, ...), ``neg`` is -a^2 (exp, ...), ``any`` is a itself.

    landscape grid --cell examples/cells/one_op.py:OneOp --cell-opt op=softplus --T 50
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from landscape.cells import Cell, ParamDecl, bias, drive, linear
from landscape.errors import LandscapeError

DOMAINS = {"any": lambda a: a, "pos": lambda a: 1.0 + a * a, "neg": lambda a: -(a * a)}

# op -> (the function, its domain): every elementwise function the tracer (landscape.kernels.trace) knows
OPS = {
    "tanh": (torch.tanh, "any"), "sigmoid": (torch.sigmoid, "any"), "exp": (torch.exp, "neg"),
    "expm1": (torch.expm1, "neg"), "exp2": (torch.exp2, "neg"), "log": (torch.log, "pos"),
    "log1p": (torch.log1p, "pos"), "log2": (torch.log2, "pos"), "sqrt": (torch.sqrt, "pos"),
    "rsqrt": (torch.rsqrt, "pos"), "reciprocal": (torch.reciprocal, "pos"), "pow": (lambda a: a ** -0.75, "pos"),
    "sin": (torch.sin, "any"), "cos": (torch.cos, "any"), "tan": (torch.tan, "any"), "atan": (torch.atan, "any"),
    "asinh": (torch.asinh, "any"), "erf": (torch.erf, "any"), "floor": (torch.floor, "any"),
    "ceil": (torch.ceil, "any"), "trunc": (torch.trunc, "any"), "round": (torch.round, "any"),
    "abs": (torch.abs, "any"), "sign": (torch.sign, "any"), "square": (torch.square, "any"),
    "relu": (torch.relu, "any"), "softplus": (F.softplus, "any"), "silu": (F.silu, "any"),
    "hardsigmoid": (F.hardsigmoid, "any"), "hardtanh": (F.hardtanh, "any"), "elu": (F.elu, "any"),
    "logsigmoid": (F.logsigmoid, "any"), "gelu": (F.gelu, "any"),
    "gelu_tanh": (lambda a: F.gelu(a, approximate="tanh"), "any"), "celu": (F.celu, "any"),
    "leaky_relu": (F.leaky_relu, "any"), "mish": (F.mish, "any"), "hardswish": (F.hardswish, "any"),
}


@dataclass(frozen=True)
class OneOp(Cell):
    name = "one-op"
    summary = "h' = op(domain(w h + u x + b)) for one elementwise torch function op"
    equations = "a = w h + u x + b;  h' = op(a), op(1 + a^2) or op(-a^2)"
    params = (
        ParamDecl("w", "recurrent", default=0.5),
        ParamDecl("u", "input", default=1.0),
        ParamDecl("b", "bias", default=0.0),
    )
    default_axes = ("w:-2:2:101", "b:-2:2:101")
    op: str = "sin"

    def __post_init__(self):
        if self.op not in OPS:
            raise LandscapeError(f"unknown op {self.op!r}; choose from: {', '.join(OPS)}")

    def step(self, p, state, x):  # p: name -> (P, 1, ...); state (P, N, 1); x (N, D) or None
        (h,) = state
        a = linear(h, p["w"]) + drive(x, p, "u") + bias(p["b"])  # (P, N, 1)
        fn, domain = OPS[self.op]
        return (fn(DOMAINS[domain](a)),)
