"""The tasks: each a pure function of (its parameters, n, seed) giving inputs, targets and a loss.

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

from ..errors import LandscapeError

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


@dataclass(frozen=True)
class Target(Task):
    name = "target"
    summary = "Pascanu Fig. 6: no input, fixed initial state, loss (y_T - target)^2"
    input_size = 0
    readout = "identity"
    default_n = 1
    x0: float = 0.5
    target: float = 0.7
    param_docs = {"x0": "initial state (for pascanu the pre-activation x_0)",
                  "target": "the value y_T should reach (y = the cell's output, sigmoid(x) for pascanu)"}

    def make(self, Ts, n, seed):
        return TaskData(None, {T: torch.full((n,), self.target, dtype=torch.float64) for T in Ts},
                        _same_ends(Ts, n), self.x0)


@dataclass(frozen=True)
class Latch(Task):
    name = "latch"
    summary = "Cross Validated 340898: +-1 first value + noise, label from its sign, logistic readout"
    input_size = 1
    readout = "logistic"
    noise: float = 0.1
    param_docs = {"noise": "sd of the Gaussian noise added to every value (first value +-1)"}

    def make(self, Ts, n, seed):
        g = torch.Generator().manual_seed(seed)
        steps = max(Ts)
        half = n // 2  # as in the question: label 1 (first value +1) for the first half of the rows
        label = torch.cat([torch.ones(half), torch.zeros(n - half)]).to(torch.float64)
        x = _noise(steps, n, self.noise, g)
        x[0] += 2.0 * label - 1.0
        return TaskData(x.unsqueeze(-1), {T: label for T in Ts}, _same_ends(Ts, n))


@dataclass(frozen=True)
class Bengio(Task):
    name = "bengio"
    summary = "Bengio et al. 1994: L class inputs, then noise of variance s; targets +-0.8, MSE on h_T"
    input_size = 1
    readout = "identity"
    loss_scale = 0.5
    L: int = 3
    s: float = 0.2
    h: float = 1.0
    param_docs = {"L": "number of leading class inputs (trainable in the paper)",
                  "s": "variance of the Gaussian noise after step L",
                  "h": "value of the L class inputs (+h for class +, -h for class -)"}

    def make(self, Ts, n, seed):
        if self.L < 1 or self.L >= min(Ts):
            raise LandscapeError(f"bengio needs 1 <= L < T; got L={self.L} with T={min(Ts)}")
        g = torch.Generator().manual_seed(seed)
        steps = max(Ts)
        sign = torch.cat([torch.ones(n // 2), -torch.ones(n - n // 2)]).to(torch.float64)  # (N,)
        x = _noise(steps, n, math.sqrt(self.s), g)
        x[: self.L] = self.h * sign
        return TaskData(x.unsqueeze(-1), {T: 0.8 * sign for T in Ts}, _same_ends(Ts, n))


@dataclass(frozen=True)
class TwoSequence(Task):
    name = "two-sequence"
    summary = "Hochreiter & Schmidhuber 1997 Exp. 3a: first k inputs +-1, noise, length in [T, 1.1T]"
    input_size = 1
    readout = "logistic"
    k: int = 3
    variance: float = 0.2
    spread: float = 0.1
    param_docs = {"k": "number of leading class inputs (+1 for class 1, -1 for class 0)",
                  "variance": "variance of the Gaussian noise after the class inputs",
                  "spread": "lengths are uniform integers in [T, (1 + spread) T]"}

    def make(self, Ts, n, seed):
        if self.k < 1 or self.k >= min(Ts):
            raise LandscapeError(f"two-sequence needs 1 <= k < T; got k={self.k} with T={min(Ts)}")
        g = torch.Generator().manual_seed(seed)
        label = torch.randint(0, 2, (n,), generator=g).to(torch.float64)
        u = torch.rand((n,), generator=g, dtype=torch.float64)  # (N,) one draw for every T
        ends = {T: T + torch.floor(u * (math.floor(self.spread * T) + 1)).long() for T in Ts}
        steps = max(int(e.max()) for e in ends.values())
        x = _noise(steps, n, math.sqrt(self.variance), g)
        x[: self.k] = 2.0 * label - 1.0
        return TaskData(x.unsqueeze(-1), {T: label for T in Ts}, ends)


@dataclass(frozen=True)
class Relay(Task):
    name = "relay"
    summary = "bit relay (our definition): first input the bit +-1, then +-1 distractors; label the bit"
    input_size = 1
    readout = "logistic"
    default_hidden = 8
    lag: int = 0
    param_docs = {"lag": "0: the label is the first bit; k > 0: the label is the input k steps "
                         "before the last one"}

    def make(self, Ts, n, seed):
        if self.lag < 0 or self.lag >= min(Ts):
            raise LandscapeError(f"relay needs 0 <= lag < T; got lag={self.lag} with T={min(Ts)}")
        g = torch.Generator().manual_seed(seed)
        x = _signs(max(Ts), n, g)  # (T, N): x[0] is the bit, the rest distractors
        if self.lag == 0:
            targets = {T: (x[0] > 0).to(torch.float64) for T in Ts}
        else:
            targets = {T: (x[T - 1 - self.lag] > 0).to(torch.float64) for T in Ts}
        return TaskData(x.unsqueeze(-1), targets, _same_ends(Ts, n))


TASKS: dict[str, type[Task]] = {c.name: c for c in (Target, Latch, Bengio, TwoSequence, Relay)}
