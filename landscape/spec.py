"""Specs: frozen settings that determine a surface, their validation, and their canonical form.

``GridSpec`` is what a user writes (defaults left as None); ``resolve`` turns it into a
``Resolved`` grid with everything filled in and checked: the cell and task objects, the full
base point, the axes. ``Resolved.canonical()`` is the JSON stored in the file and hashed into the
cache key, so two specs with the same numbers share a cache entry and any change makes a new one.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch

from .cells import Cell, get_cell, parse_param_ref
from .tasks import READOUT_PARAMS, Task, get_task, readout_defaults, readout_shapes
from .errors import LandscapeError

FORMAT_VERSION = 1
DTYPES = {"float32": torch.float32, "float64": torch.float64}
READOUTS = ("auto", "fixed", "optimal")
MAX_AXIS_POINTS = 100_000

# Default axes when none are given: windows that show each cell's interesting structure on its
# default task (see README, "Default axes").
DEFAULT_AXES = {
    "srnn": ("w:-1:3:201", "b:-1.5:1.5:201"),
    "pascanu": ("w:4.5:5.5:201", "b:-2.9:-1.9:201"),
    "lstm": ("b_f:-4:6:201", "w_z:-4:6:201"),
    "gru": ("b_z:-6:6:201", "w_h:-3:5:201"),
    "mut": ("b_z:-6:6:201", "w_h:-3:5:201"),
}


def default_axes(cell_name: str) -> tuple[str, str]:
    for prefix in (cell_name, cell_name.split("-")[0], cell_name[:3], cell_name[:4]):
        if prefix in DEFAULT_AXES:
            return DEFAULT_AXES[prefix]
    return DEFAULT_AXES["srnn"]


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

    None means "the default": the task's hidden size and number of sequences, the cell's default
    axes, ``readout='auto'`` (optimal for tasks with a logistic readout, else fixed).
    ``set`` holds base-point overrides ((name, value), ...); ``base_file`` an HDF5 file whose
    parameter datasets (at the root or under /params) give base-point values.
    """

    cell: str = "srnn"
    task: str = "latch"
    T: tuple[int, ...] = (50,)
    x: Axis | None = None
    y: Axis | None = None
    hidden: int | None = None
    n: int | None = None
    seed: int = 0
    dtype: str = "float64"
    readout: str = "auto"
    readout_l2: float = 1e-4
    set: tuple[tuple[str, float], ...] = ()
    base_file: str | None = None
    cell_options: tuple[tuple[str, object], ...] = ()
    task_options: tuple[tuple[str, object], ...] = ()
    grads: bool = False


@dataclass(frozen=True)
class Resolved:
    """A checked GridSpec with every default filled in; ``base`` is the full base point."""

    spec: GridSpec
    cell: Cell
    task: Task
    H: int
    D: int
    n: int
    Ts: tuple[int, ...]
    x: Axis
    y: Axis
    x_ref: tuple[str, tuple[int, ...]]
    y_ref: tuple[str, tuple[int, ...]]
    readout: str  # "fixed" | "optimal" | "none"
    base: dict = field(repr=False)  # name -> float64 tensor (shape)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self.Ts), self.x.num, self.y.num)

    @property
    def torch_dtype(self):
        return DTYPES[self.spec.dtype]

    def canonical(self) -> str:
        """Everything that determines the numbers, as canonical JSON."""
        doc = {
            "format_version": FORMAT_VERSION,
            "cell": self.cell.name, "cell_options": self.cell.options(),
            "task": self.task.name, "task_params": self.task.params(),
            "hidden": self.H, "input_size": self.D, "n": self.n, "seed": self.spec.seed,
            "dtype": self.spec.dtype, "T": list(self.Ts),
            "x": asdict(self.x), "y": asdict(self.y),
            "readout": self.readout, "readout_l2": self.spec.readout_l2 if self.readout == "optimal" else None,
            "base": {k: v.tolist() for k, v in self.base.items()},
            "grads": self.spec.grads,
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":"))

    def key(self) -> str:
        return hashlib.sha256(self.canonical().encode()).hexdigest()[:16]


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
        except (TypeError, ValueError):
            raise LandscapeError(f"T must be positive integers; got {item!r}") from None
        if value <= 0:
            raise LandscapeError(f"T must be positive integers; got {value}")
        out.append(value)
    return tuple(sorted(set(out)))


def resolve(spec: GridSpec) -> Resolved:
    """Check a spec and fill in its defaults; raises LandscapeError on the first bad value."""
    cell = get_cell(spec.cell, **dict(spec.cell_options))
    task = get_task(spec.task, **dict(spec.task_options))
    if spec.dtype not in DTYPES:
        raise LandscapeError(f"unknown dtype {spec.dtype!r}; choose from: {', '.join(DTYPES)}")
    if spec.readout not in READOUTS:
        raise LandscapeError(f"unknown readout {spec.readout!r}; choose from: {', '.join(READOUTS)}")
    Ts = parse_T(spec.T)
    H = task.default_hidden if spec.hidden is None else int(spec.hidden)
    D = task.input_size
    n = task.default_n if spec.n is None else int(spec.n)
    if n < 1:
        raise LandscapeError(f"the number of sequences must be >= 1, got {n}")
    if not spec.readout_l2 >= 0:
        raise LandscapeError(f"readout_l2 must be >= 0, got {spec.readout_l2}")
    if task.readout == "identity":
        if spec.readout == "optimal":
            raise LandscapeError(f"task {task.name} has no trained readout (its loss is on the state); "
                                 f"--readout optimal needs latch, two-sequence or relay")
        readout = "none"
    else:
        readout = "optimal" if spec.readout == "auto" else spec.readout
        if readout == "optimal" and spec.readout_l2 == 0:
            raise LandscapeError("--readout optimal needs readout_l2 > 0 (separable classes have no "
                                 "finite optimum otherwise)")
    if task.name == "target" and n != 1:
        raise LandscapeError("task target has no randomness: use n = 1")

    shapes = dict(cell.param_shapes(H, D))
    base = cell.default_params(H, D)
    if readout != "none":
        shapes.update(readout_shapes(H))
        base.update(readout_defaults(H))
    where = f"cell {cell.name} (H={H}, D={D})" + (" with a readout" if readout != "none" else "")
    if spec.base_file:
        from .store import read_base_point  # the store reads files; the spec only checks them

        for name, value in read_base_point(spec.base_file, shapes).items():
            base[name] = value
    for ref, value in spec.set:
        _set_base(base, shapes, ref, value, where)

    xa = spec.x or _first_element(Axis.parse(default_axes(cell.name)[0]), shapes)
    ya = spec.y or _first_element(Axis.parse(default_axes(cell.name)[1]), shapes)
    xa, ya = xa.checked(), ya.checked()
    x_ref = parse_param_ref(xa.name, shapes, where)
    y_ref = parse_param_ref(ya.name, shapes, where)
    if x_ref == y_ref:
        raise LandscapeError(f"the same parameter {xa.name!r} is on both axes; choose two different ones")
    for ref, axis in ((x_ref, xa), (y_ref, ya)):
        if readout == "optimal" and ref[0] in READOUT_PARAMS:
            raise LandscapeError(f"{axis.name} is fitted at every point with --readout optimal; "
                                 f"use --readout fixed to put it on an axis")
    return Resolved(spec, cell, task, H, D, n, Ts, xa, ya, x_ref, y_ref, readout, base)


def _first_element(axis: Axis, shapes) -> Axis:
    """A default axis on a matrix or vector (H > 1) takes its first element: w -> w[0,0]."""
    shape = shapes.get(axis.name, ())
    if math.prod(shape) <= 1:
        return axis
    return replace(axis, name=f"{axis.name}[{','.join('0' * len(shape))}]")


def _set_base(base, shapes, ref, value, where):
    """--set NAME=VALUE: an element (w[0,1]=0.5), a scalar (b=0.3), or a whole parameter filled."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise LandscapeError(f"--set {ref}={value!r}: the value must be a number") from None
    name = ref.split("[")[0].strip()
    if name in shapes and "[" not in ref and math.prod(shapes[name]) > 1:
        base[name] = torch.full(shapes[name], value, dtype=torch.float64)
        return
    name, idx = parse_param_ref(ref, shapes, where)
    base[name] = base[name].clone()
    base[name][idx] = value


def parse_assignments(items, what: str) -> tuple[tuple[str, str], ...]:
    """('w=1', 'b=0.5') -> (('w', '1'), ('b', '0.5')); one clear error for a malformed item."""
    out = []
    for item in items:
        if "=" not in item:
            raise LandscapeError(f"malformed {what} {item!r}; write NAME=VALUE")
        key, value = item.split("=", 1)
        out.append((key.strip(), value.strip()))
    return tuple(out)
