"""Bengio, Simard & Frasconi 1994's parity problem as a task: the first k inputs are bits +-1, then
Gaussian noise; the label is their parity (1 when an odd number of them is +1).

    landscape tasks examples/tasks/parity.py:Parity
    landscape grid --cell srnn --task examples/tasks/parity.py:Parity --task-set k=2 -H 2 \
        --x "w[0,1]:-3:3:51" --y "w[1,0]:-3:3:51" --T 10

A task is a pure function of (its parameters, n, seed): ``make`` returns the inputs (T, N, D), the
targets at each length T and the step at which each sequence ends. A sequence of length T must be
the prefix of the longest one, so draw the noise in fixed blocks of steps (``noise`` below); every
parameter is a dataclass field documented in ``param_docs``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from landscape.errors import LandscapeError
from landscape.tasks import BLOCK, Task, TaskData


def noise(steps: int, n: int, sd: float, generator: torch.Generator) -> torch.Tensor:
    """(steps, n) Gaussian noise whose first rows do not depend on ``steps``."""
    blocks = [torch.randn((BLOCK, n), generator=generator, dtype=torch.float64)
              for _ in range(math.ceil(steps / BLOCK))]
    return sd * torch.cat(blocks)[:steps]


@dataclass(frozen=True)
class Parity(Task):
    name = "parity"
    summary = "Bengio et al. 1994's parity: the first k inputs are bits +-1, the label their parity"
    input_size = 1
    readout = "logistic"  # a trained linear readout and cross-entropy (or "identity": loss on h)
    default_hidden = 2
    k: int = 2
    noise: float = 0.1
    param_docs = {"k": "number of leading bits (+1 or -1)",
                  "noise": "sd of the Gaussian noise on every input after the bits"}

    def check(self):
        super().check()  # every number finite
        self._at_least("k", 1)
        self._at_least("noise", 0.0)

    def make(self, Ts, n, seed):
        if self.k >= min(Ts):
            raise LandscapeError(f"parity needs k < T; got k={self.k} with T={min(Ts)}")
        g = torch.Generator().manual_seed(seed)
        bits = torch.randint(0, 2, (self.k, n), generator=g).to(torch.float64)  # (k, N) in {0, 1}
        x = noise(max(Ts), n, self.noise, g)  # (T, N)
        x[: self.k] = 2.0 * bits - 1.0
        label = bits.sum(0) % 2  # (N,) 1 for an odd number of +1
        ends = {T: torch.full((n,), T, dtype=torch.long) for T in Ts}
        return TaskData(x.unsqueeze(-1), {T: label for T in Ts}, ends)
