"""The minimal gated unit (Zhou, Wu, Zhang & Zhou 2016, "Minimal gated unit for recurrent neural
networks"): a GRU with one gate, f, which both forgets and decides what is written.

    f  = sigmoid(w_f h + u_f x + b_f)
    h~ = tanh(w_h (f * h) + u_h x + b_h)
    h' = (1 - f) * h + f * h~          output h

Nothing to install: point landscape at this file.

    landscape cells examples/cells/mgu.py:MGU
    landscape grid --cell examples/cells/mgu.py:MGU --T 10,50
    landscape grads --cell examples/cells/mgu.py:MGU --T 50 --at b_f=-2,w_h=2
    landscape train --cell examples/cells/mgu.py:MGU --T 10,50 --repeats 5

The step is written once, batched: parameters are (P, *shape) for a population of P members (grid
points or models), the state (P, N, H) for N sequences of H units, the input x (N, D) or None. The
grid, the per-timestep gradients, the gradient field, training and the figures all use it.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from landscape.cells import Cell, ParamDecl, bias, drive, linear


@dataclass(frozen=True)
class MGU(Cell):
    name = "mgu"
    summary = "minimal gated unit (Zhou et al. 2016): one forget gate f that also gates the write"
    equations = ("f = sigmoid(w_f h + u_f x + b_f);  h~ = tanh(w_h (f*h) + u_h x + b_h)\n"
                 "h' = (1 - f)*h + f*h~")
    params = (  # role: recurrent (H, H), input (H, D), bias (H,); base point: weights 1 (w = 1 * I), biases 0
        ParamDecl("w_f", "recurrent", gate="f", default=1.0),
        ParamDecl("w_h", "recurrent", gate="h", default=1.0),
        ParamDecl("u_f", "input", gate="f", default=1.0),
        ParamDecl("u_h", "input", gate="h", default=1.0),
        ParamDecl("b_f", "bias", gate="f", default=0.0),
        ParamDecl("b_h", "bias", gate="h", default=0.0),
    )
    gates = ("f", "h")  # Keras's order when it concatenates a layer's kernels (the keras initialiser)
    default_axes = ("b_f:-6:6:201", "w_h:-3:5:201")  # the gate's bias against the candidate's weight
    block_input = ("w_h", "b_h")  # the recurrent weight and bias of what is written into h

    def step(self, p, state, x):  # p: name -> (P, *shape); state (P, N, H); x (N, D), or None without input
        (h,) = state
        f = torch.sigmoid(linear(h, p["w_f"]) + drive(x, p, "u_f") + bias(p["b_f"]))  # (P, N, H)
        cand = torch.tanh(linear(f * h, p["w_h"]) + drive(x, p, "u_h") + bias(p["b_h"]))
        return ((1.0 - f) * h + f * cand,)
