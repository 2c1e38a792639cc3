"""The built-in tasks: Pascanu's target, the Cross Validated latch, Bengio et al.'s minimal task,
Hochreiter & Schmidhuber's two-sequence problem, and our bit relay (docs/reference.md §1-§5)."""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import LandscapeError
from ..lazy import torch
from .base import Task, TaskData, _noise, _same_ends, _signs


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

    def check_n(self, n):
        if n != 1:
            raise LandscapeError("task target has no randomness: use n = 1")

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

    def check(self):
        super().check()
        self._at_least("noise", 0.0)

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

    def check(self):
        super().check()
        self._at_least("s", 0.0)
        self._at_least("L", 1)

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

    def check(self):
        super().check()
        self._at_least("k", 1)
        self._at_least("variance", 0.0)
        self._at_least("spread", 0.0)

    def steps(self, T):
        return int(T) + math.floor(self.spread * T)

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

    def check(self):
        super().check()
        self._at_least("lag", 0)

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
