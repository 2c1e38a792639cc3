"""The task protocol: a task is a pure function of (its parameters, n, seed) giving inputs, targets
and the step at which each sequence ends.

Inputs are time-major, (T, N, D), and a sequence of length T is the prefix of the longest one:
noise is drawn in fixed blocks of ``BLOCK`` steps from a generator seeded by the spec, so one
unroll serves every requested T. Data are made on the CPU in float64 and then cast.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor


BLOCK = 64  # time steps drawn per generator call (keeps prefixes identical for any T_max)


@dataclass(frozen=True)
class TaskData:
    """What the engine needs from a task.

    inputs   (T_max, N, D), or None when the task has no input (D = 0)
    targets  T -> (N,) targets at length T: class 0/1 for a logistic readout, values otherwise
    ends     T -> (N,) the step at which each sequence of nominal length T ends (equal to T
             unless lengths vary, as in two-sequence)
    h0       the initial value of every state unit
    """

    inputs: Tensor | None
    targets: dict[int, Tensor]
    ends: dict[int, Tensor]
    h0: float = 0.0

    @property
    def n(self) -> int:
        return next(iter(self.targets.values())).shape[0]

    @property
    def steps(self) -> int:
        """How many steps the longest requested sequence takes."""
        return max(int(e.max()) for e in self.ends.values())

    def to(self, dtype, device) -> TaskData:
        cast = None if self.inputs is None else self.inputs.to(dtype=dtype, device=device)
        return TaskData(cast, {T: t.to(dtype=dtype, device=device) for T, t in self.targets.items()},
                        {T: e.to(device=device) for T, e in self.ends.items()}, self.h0)


@dataclass(frozen=True)
class Task:
    """A task: its defaults (every one documented in ``param_docs``) and its data generator."""

    name: ClassVar[str]
    summary: ClassVar[str]
    input_size: ClassVar[int]  # D
    readout: ClassVar[str]  # "identity": loss on output unit 0; "logistic": trained linear readout
    default_hidden: ClassVar[int] = 1
    default_n: ClassVar[int] = 1000
    param_docs: ClassVar[dict[str, str]] = {}
    loss_scale: ClassVar[float] = 1.0  # identity readout: loss = scale * mean (y_T - target)^2

    def make(self, Ts: tuple[int, ...], n: int, seed: int) -> TaskData:
        raise NotImplementedError

    def params(self) -> dict:
        return {k: getattr(self, k) for k in self.param_docs}


def _noise(steps: int, n: int, sd: float, generator: torch.Generator) -> Tensor:
    """(steps, n) Gaussian noise whose first rows do not depend on ``steps``."""
    blocks = [torch.randn((BLOCK, n), generator=generator, dtype=torch.float64)
              for _ in range(math.ceil(steps / BLOCK))]
    return sd * torch.cat(blocks)[:steps]


def _signs(steps: int, n: int, generator: torch.Generator) -> Tensor:
    """(steps, n) random +-1, prefix-stable like ``_noise``."""
    blocks = [torch.randint(0, 2, (BLOCK, n), generator=generator).to(torch.float64)
              for _ in range(math.ceil(steps / BLOCK))]
    return 2.0 * torch.cat(blocks)[:steps] - 1.0


def _same_ends(Ts, n):
    return {T: torch.full((n,), T, dtype=torch.long) for T in Ts}
