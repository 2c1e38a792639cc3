"""The task protocol: a task is a pure function of (its parameters, n, seed) giving inputs, targets
and the step at which each sequence ends.

Inputs are time-major, (T, N, D), and a sequence of length T is the prefix of the longest one:
noise is drawn in fixed blocks of ``BLOCK`` steps from a generator seeded by the spec, so one
unroll serves every requested T. Data are made on the CPU in float64 and then cast.

A task class declares its facts (README, "Bring your own cell" shows a task too):

    input_size      D, the inputs per step (0: no input)
    readout         "identity" (the loss is on the cell's output unit 0) or "logistic" (a trained
                    linear readout and cross-entropy; landscape.readouts owns the kinds)
    classes         C, the classes of a task with a readout (default 2; targets are 0 .. C - 1):
                    C > 2 trains with a softmax over C logits (readout kind dense2 as Dense(C))
    steps(T)        how many steps a sequence of nominal length T may take (T unless lengths vary)
    check_n(n)      which numbers of sequences make sense (target has no randomness: n = 1)
    check()         its parameters' domains, checked before anything is computed

torch is imported on first use (``landscape.lazy``): listing the tasks needs none of it.
"""
from __future__ import annotations

import dataclasses
import inspect
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from ..errors import LandscapeError
from ..lazy import torch

if TYPE_CHECKING:
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
    path     None (the loss is read at the end of each sequence), or a ground-truth trajectory
             (T_max + 1, N, K): row t is the state z*_t the cell's output after step t is compared
             with (row 0 the start); the loss at T is then over every step, loss_scale times the
             mean over t = 1..T, the N sequences and the K = H units of (y_t - z*_t)^2
             (``engine.path_losses``; ``targets`` then holds z*_T's unit 0)
    forcing  with a path: 0 runs free; tau >= 1 resets the cell's first state to the path every
             tau steps (at t = 0, tau, 2 tau, ...; tau = 1: fully forced, one-step-ahead prediction)
    """

    inputs: Tensor | None
    targets: dict[int, Tensor]
    ends: dict[int, Tensor]
    h0: float = 0.0
    path: Tensor | None = None
    forcing: int = 0

    @property
    def n(self) -> int:
        return next(iter(self.targets.values())).shape[0]

    @property
    def steps(self) -> int:
        """How many steps the longest requested sequence takes."""
        return max(int(e.max()) for e in self.ends.values())

    def to(self, dtype, device) -> TaskData:
        cast = None if self.inputs is None else self.inputs.to(dtype=dtype, device=device)
        path = None if self.path is None else self.path.to(dtype=dtype, device=device)
        return TaskData(cast, {T: t.to(dtype=dtype, device=device) for T, t in self.targets.items()},
                        {T: e.to(device=device) for T, e in self.ends.items()}, self.h0, path, self.forcing)


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
    classes: ClassVar[int] = 2  # a task with a readout: targets are the classes 0 .. classes - 1

    def make(self, Ts: tuple[int, ...], n: int, seed: int) -> TaskData:
        raise NotImplementedError

    def params(self) -> dict:
        return {k: getattr(self, k) for k in self.param_docs}

    def steps(self, T: int) -> int:
        """The most steps a sequence of nominal length T takes (``TaskData.ends`` never exceed it)."""
        return int(T)

    def check_n(self, n: int) -> None:
        """LandscapeError unless n sequences make sense for this task."""
        if n < 1:
            raise LandscapeError(f"the number of sequences must be >= 1, got {n}")

    def check(self) -> None:
        """LandscapeError naming the first parameter outside its domain: every number must be
        finite; subclasses add their own rules (``_at_least``)."""
        for key in self.param_docs:
            value = getattr(self, key)
            if isinstance(value, float) and not math.isfinite(value):
                raise LandscapeError(f"task {self.name}: {key}={value} is not finite")

    def _at_least(self, key: str, low: float, strict: bool = False) -> None:
        value = getattr(self, key)
        if value < low or (strict and value == low):
            raise LandscapeError(f"task {self.name}: {key}={value} must be {'>' if strict else '>='} {low:g} "
                                 f"({self.param_docs[key]})")


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


def check_task_class(cls, ref: str) -> None:
    """One LandscapeError naming the first part of the protocol that ``cls`` (loaded from ``ref``)
    misses; nothing when it is a usable task class."""
    guide = "(see README, 'Bring your own cell')"
    if not isinstance(cls, type) or not issubclass(cls, Task):
        raise LandscapeError(f"{ref} is not a task: it must subclass landscape.tasks.Task {guide}")
    if not dataclasses.is_dataclass(cls):
        raise LandscapeError(f"{ref} is not a dataclass: decorate it with @dataclass(frozen=True) {guide}")
    if cls.make is Task.make:
        raise LandscapeError(f"{ref} has no make: define make(self, Ts, n, seed) -> TaskData {guide}")
    if len(inspect.signature(cls.make).parameters) != 4:
        raise LandscapeError(f"{ref}.make must take (self, Ts, n, seed)")
    if not isinstance(getattr(cls, "name", None), str) or not cls.name:
        raise LandscapeError(f"{ref} has no name: set name = 'mytask'")
    if not isinstance(getattr(cls, "input_size", None), int) or cls.input_size < 0:
        raise LandscapeError(f"{ref}: input_size must be an integer >= 0 (the inputs per step)")
    if getattr(cls, "readout", None) not in ("identity", "logistic"):
        raise LandscapeError(f"{ref}: readout must be 'identity' (loss on the output) or 'logistic' "
                             f"(a trained readout), not {getattr(cls, 'readout', None)!r}")
    classes = getattr(cls, "classes", 2)
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 2:
        raise LandscapeError(f"{ref}: classes must be an integer >= 2 (the classes of its targets), not {classes!r}")
    fields = {f.name for f in dataclasses.fields(cls)}
    missing = sorted(fields - set(cls.param_docs))
    if missing:
        raise LandscapeError(f"{ref}: param_docs must document every parameter; missing {', '.join(missing)}")
