"""The grid spec: the frozen settings that determine a surface, as plain data.

``GridSpec`` is what a user writes (defaults left as None): the model (a ``model.ModelSpec``: cell,
task, hidden size, base point), the two axes, the lengths, the data size and seed, the dtype, the
readout fit, and a plane of directions. ``landscape.resolved.resolve`` turns it into a
``ResolvedGrid``, whose canonical JSON (version ``SPEC_VERSION``) is stored in the file and hashed
into the cache key. This module parses without torch (the command line imports it at start-up).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from .errors import LandscapeError
from .model import ModelSpec, split_model_fields

SPEC_VERSION = 1  # the version of a grid's canonical JSON (its key "format_version")
DTYPES = ("float64", "float32")  # the computation's floating-point types, by name
# the fused kernels' accuracy classes: exact (default) or fast (opt-in: float32's sigmoid, ``GridSpec.math``)
MATH_CLASSES = ("exact", "fast")
DTYPE_MAX = {"float32": float(np.finfo(np.float32).max), "float64": float(np.finfo(np.float64).max)}
MAX_AXIS_POINTS = 100_000


def torch_dtype(name: str):
    """The torch dtype of a name in DTYPES."""
    import torch

    if name not in DTYPES:
        raise LandscapeError(f"unknown dtype {name!r}; choose from: {', '.join(DTYPES)}")
    return getattr(torch, name)


@dataclass(frozen=True)
class Axis:
    """One grid axis: NUM points of parameter NAME from MIN to MAX (linear, or log-spaced)."""

    name: str
    lo: float
    hi: float
    num: int
    log: bool = False

    @classmethod
    def parse(cls, text: str) -> Axis:
        """'w:4.5:5.5:201' or 'w:1e-3:1:50:log'."""
        parts = text.split(":")
        if len(parts) not in (4, 5) or (len(parts) == 5 and parts[4] != "log"):
            raise LandscapeError(f"malformed axis {text!r}; write NAME:MIN:MAX:NUM (optionally :log), "
                                 f"e.g. w:4.5:5.5:201")
        name = parts[0].strip()
        try:
            lo, hi = float(parts[1]), float(parts[2])
        except ValueError:
            raise LandscapeError(f"malformed axis {text!r}: MIN and MAX must be numbers") from None
        try:
            num = int(parts[3])
        except ValueError:
            raise LandscapeError(f"malformed axis {text!r}: NUM must be an integer") from None
        return cls(name, lo, hi, num, len(parts) == 5).checked(text)

    def checked(self, text: str | None = None) -> Axis:
        label = text or self.describe()
        if not (math.isfinite(self.lo) and math.isfinite(self.hi)):
            raise LandscapeError(f"axis {label!r}: MIN and MAX must be finite")
        if not self.lo < self.hi:
            raise LandscapeError(f"axis {label!r}: MIN must be below MAX")
        if not 2 <= self.num <= MAX_AXIS_POINTS:
            raise LandscapeError(f"axis {label!r}: NUM must be between 2 and {MAX_AXIS_POINTS}")
        if self.log and self.lo <= 0:
            raise LandscapeError(f"axis {label!r}: a log axis needs MIN > 0")
        if not math.isfinite(self.hi - self.lo) or not np.all(np.isfinite(self.values())):
            raise LandscapeError(f"axis {label!r}: the span MAX - MIN overflows; choose a smaller range")
        return self

    def values(self) -> np.ndarray:
        if self.log:
            return np.geomspace(self.lo, self.hi, self.num)
        return np.linspace(self.lo, self.hi, self.num)

    def describe(self) -> str:
        return f"{self.name}:{self.lo:g}:{self.hi:g}:{self.num}" + (":log" if self.log else "")


@dataclass(frozen=True)
class GridSpec:
    """A loss surface over two scalar parameters at one or more sequence lengths.

    ``model`` is the model (``ModelSpec``: cell, task, hidden size, base-point ``set``, ``base_file``
    or a trained ``base_model``). None means "the default": the task's number of sequences, the
    cell's default axes (``Cell.default_axes``). ``fit`` is how the readout of a classification
    task is set at each point: fixed (the base point's out_w, out_b), optimal (fitted per point and
    T, ridge ``readout_l2``) or auto (optimal where the task has a readout). Axes may be given as
    text ('w:-1:3:201') and T as text ('1,5,10'): they are parsed when the spec is made. ``GridSpec.of(cell=..., task=..., T=..., ...)`` takes the flat form.

    ``directions`` random | hessian | pca | models | line makes the grid a plane around the base
    point, theta = base + a d1 + b d2, over axes named ``a`` and ``b`` (``models``: the other
    models of models / line; ``direction_seed``: random's seed).

    ``math`` is the fused kernels' accuracy class: exact (default) or fast (float32's sigmoid as
    1/2 + tanh(x/2)/2, within 1.1e-7 absolute: ``kernels.numba.mathfn.sigmoid32fast``). Part of the
    key when fast; where no fused kernel computes (torch, Triton), the numbers are the exact ones.

    ``dynamics`` also stores the cell's dynamics at every point (``dynamics_map.grid_fields``: the
    counts of fixed points and cycles, lambda_T) at the constant ``input`` (None: the task's input
    mean, ``dynamics_map.default_input``).
    """

    model: ModelSpec = field(default_factory=ModelSpec)
    T: tuple[int, ...] | str | int = (50,)
    x: Axis | str | None = None
    y: Axis | str | None = None
    n: int | None = None
    seed: int = 0
    dtype: str = "float64"
    math: str = "exact"
    fit: str = "auto"
    readout_l2: float = 1e-4
    grads: bool = False
    dynamics: bool = False
    input: float | None = None
    directions: str | None = None
    models: tuple[str, ...] = ()
    direction_seed: int = 0

    def __post_init__(self):
        """The lengths and axes as checked data: T sorted and unique, x and y Axis or None."""
        object.__setattr__(self, "T", parse_T(self.T))
        object.__setattr__(self, "x", as_axis(self.x, "x"))
        object.__setattr__(self, "y", as_axis(self.y, "y"))

    @classmethod
    def of(cls, **flat) -> GridSpec:
        """A GridSpec from the flat keyword form: the ModelSpec's fields (cell, task, hidden, set,
        base_file, ...) beside the grid's own (T, x, y, n, ...)."""
        model, rest = split_model_fields(flat)
        return cls(model=model, **rest)


def parse_T(text: str | tuple | list | int) -> tuple[int, ...]:
    """'1,5,10' -> (1, 5, 10), sorted and unique; every T must be a positive integer."""
    items = [text] if isinstance(text, int) else (
        [s for s in re.split(r"[,\s]+", text.strip()) if s] if isinstance(text, str) else list(text))
    if not items:
        raise LandscapeError("T is empty; give one or more positive lengths, e.g. --T 1,5,10,50")
    out = []
    for item in items:
        try:
            value = int(item)
            if str(item).strip() not in (str(value), f"+{value}") and not isinstance(item, int):
                raise ValueError
        except (TypeError, ValueError, OverflowError):
            raise LandscapeError(f"T must be positive integers; got {item!r}") from None
        if value <= 0:
            raise LandscapeError(f"T must be positive integers; got {value}")
        out.append(value)
    return tuple(sorted(set(out)))


def as_axis(value, what: str) -> Axis | None:
    """An Axis from an Axis, a text 'NAME:MIN:MAX:NUM', or None; TypeError for anything else."""
    if value is None or isinstance(value, Axis):
        return value
    if isinstance(value, str):
        return Axis.parse(value)
    raise TypeError(f"GridSpec.{what} must be an Axis or a text NAME:MIN:MAX:NUM, not {type(value).__name__}")
