"""The grid spec: frozen settings that determine a surface, their validation, and their canonical form.

``GridSpec`` is what a user writes (defaults left as None): the model (cell, task, hidden size,
base point: ``GridSpec.model``), the two axes, the lengths, the data size and seed, the dtype, the
readout fit. ``resolve`` turns it into a ``ResolvedGrid``: the resolved model (``model.Problem``)
plus the checked axes and lengths. ``ResolvedGrid.canonical()`` is the JSON stored in the file and
hashed into the cache key, so two specs with the same numbers share a cache entry and any change
makes a new one. This module parses without torch (the command line imports it at start-up).
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass, replace

import numpy as np

from .errors import LandscapeError
from .readouts import FITS

FORMAT_VERSION = 1
DTYPES = ("float64", "float32")  # the computation's floating-point types, by name
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

    None means "the default": the task's hidden size and number of sequences, the cell's default
    axes (``Cell.default_axes``). ``fit`` is how the readout of a classification task is set at
    each point: fixed (the base point's out_w, out_b), optimal (fitted per point and T, ridge
    ``readout_l2``) or auto (optimal where the task has a readout). ``set`` holds base-point
    overrides ((name, value), ...); ``base_file`` an HDF5 file whose parameter datasets (at the
    root or under /params) give base-point values. Axes may be given as text ('w:-1:3:201').

    A trained model as the base point (``landscape.basemodel``): ``base_model`` FILE.pt (a torch
    RNN/LSTM/GRU state_dict) or RUN.h5:GROUP[:REPEAT] (a `landscape train` run); its cell, options,
    hidden size and readout are adopted. ``directions`` random | hessian | pca | models | line makes
    the grid a plane around the base point, theta = base + a d1 + b d2, over axes named ``a`` and
    ``b`` (``models``: the other models of models / line; ``direction_seed``: random's seed).
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
    fit: str = "auto"
    readout_l2: float = 1e-4
    set: tuple[tuple[str, float], ...] = ()
    base_file: str | None = None
    cell_options: tuple[tuple[str, object], ...] = ()
    task_options: tuple[tuple[str, object], ...] = ()
    grads: bool = False
    base_model: str | None = None
    directions: str | None = None
    models: tuple[str, ...] = ()
    direction_seed: int = 0

    @property
    def model(self):
        """The ModelSpec of this grid (cell, task, hidden size, base point)."""
        from .model import ModelSpec

        return ModelSpec(self.cell, tuple(self.cell_options), self.task, tuple(self.task_options), self.hidden,
                         tuple(self.set), self.base_file, self.base_model)


@dataclass(frozen=True)
class ResolvedGrid:
    """A checked GridSpec with every default filled in: the resolved model and the grid."""

    spec: GridSpec
    problem: object  # model.Problem
    n: int
    Ts: tuple[int, ...]
    x: Axis
    y: Axis
    x_ref: tuple[str, tuple[int, ...]] | None  # None on a plane grid (axes a, b)
    y_ref: tuple[str, tuple[int, ...]] | None
    base_model: object = None  # basemodel.BaseModel, when the base point is a trained model

    @property
    def refs(self) -> tuple:
        """((name, index), (name, index)) of the two axes; () on a plane grid."""
        return () if self.x_ref is None else (self.x_ref, self.y_ref)

    @property
    def on_plane(self) -> bool:
        """Whether the axes are the coordinates a, b of a plane of directions."""
        return self.spec.directions is not None

    def make_plane(self):
        """The plane of ``spec.directions`` around the base point (``directions.make_plane``; the
        Hessian's is computed at the largest T)."""
        from .directions import make_plane

        bm = self.base_model
        return make_plane(self.spec.directions, self.problem, self.problem.base, self.spec.models,
                          self.spec.direction_seed, max(self.Ts), self.n, self.spec.seed,
                          bm.trajectory if bm is not None else None)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self.Ts), self.x.num, self.y.num)

    @property
    def torch_dtype(self):
        return torch_dtype(self.spec.dtype)

    @property
    def name(self) -> str:
        """CELL-TASK, the stem of the cache file."""
        return f"{self.problem.cell.name}-{self.problem.task.name}"

    def canonical(self) -> str:
        """Everything that determines the numbers, as canonical JSON."""
        readout = self.problem.readout
        doc = {
            "format_version": FORMAT_VERSION, **self.problem.canonical(),
            "n": self.n, "seed": self.spec.seed, "dtype": self.spec.dtype, "T": list(self.Ts),
            "x": asdict(self.x), "y": asdict(self.y),
            "readout": readout.label, "readout_l2": readout.l2 if readout.optimal else None,
            "grads": self.spec.grads,
        }
        if self.on_plane:
            from .basemodel import load_model

            doc["directions"] = {"kind": self.spec.directions, "seed": self.spec.direction_seed,
                                 "models": [load_model(m).source["sha256"] for m in self.spec.models]}
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
        except (TypeError, ValueError, OverflowError):
            raise LandscapeError(f"T must be positive integers; got {item!r}") from None
        if value <= 0:
            raise LandscapeError(f"T must be positive integers; got {value}")
        out.append(value)
    return tuple(sorted(set(out)))


def check_fit(fit: str) -> str:
    if fit not in FITS:
        raise LandscapeError(f"unknown readout fit {fit!r}; choose from: {', '.join(FITS)}")
    return fit


def resolve_fit(problem, fit: str, l2: float) -> str:
    """The grid's fit policy for a resolved model: auto -> optimal where the task has a readout;
    fixed for a task whose loss is on the state (optimal is refused there)."""
    check_fit(fit)
    if problem.readout.kind == "identity":
        if fit == "optimal":
            raise LandscapeError(f"task {problem.task.name} has no trained readout (its loss is on the state); "
                                 f"--readout optimal needs a task with classes (latch, two-sequence, relay)")
        return "fixed"
    fit = "optimal" if fit == "auto" else fit
    if fit == "optimal" and not l2 > 0:
        raise LandscapeError("--readout optimal needs readout_l2 > 0 (separable classes have no "
                             "finite optimum otherwise)")
    return fit


def as_axis(value, what: str) -> Axis | None:
    """An Axis from an Axis, a text 'NAME:MIN:MAX:NUM', or None; TypeError for anything else."""
    if value is None or isinstance(value, Axis):
        return value
    if isinstance(value, str):
        return Axis.parse(value)
    raise TypeError(f"GridSpec.{what} must be an Axis or a text NAME:MIN:MAX:NUM, not {type(value).__name__}")


def resolve(spec: GridSpec) -> ResolvedGrid:
    """Check a spec and fill in its defaults; raises LandscapeError on the first bad value."""
    from .model import resolve_model
    from .basemodel import read_base_point

    if spec.dtype not in DTYPES:
        raise LandscapeError(f"unknown dtype {spec.dtype!r}; choose from: {', '.join(DTYPES)}")
    xa, ya = as_axis(spec.x, "x"), as_axis(spec.y, "y")
    Ts = parse_T(spec.T)
    model = spec.model
    problem = resolve_model(model, fit="fixed")  # to learn the task's readout and the shapes
    fit = resolve_fit(problem, spec.fit, spec.readout_l2)
    base_values = read_base_point(spec.base_file, problem.shapes) if spec.base_file else None
    problem = resolve_model(model, fit=fit, l2=spec.readout_l2, base_values=base_values)
    bm = problem.base_model
    n = problem.task.default_n if spec.n is None else int(spec.n)
    problem.task.check_n(n)
    if spec.directions is not None:
        return _resolve_plane(spec, problem, n, Ts, xa, ya, bm)
    if spec.models:
        raise LandscapeError("--models names the other models of --directions models or line")

    cell = problem.cell
    if (xa is None or ya is None) and cell.default_axes is None:
        raise LandscapeError(f"cell {cell.name} declares no default axes; give --x and --y (its scalars: "
                             f"{', '.join(_scalars(problem.shapes))})")
    xa = _block_alias(xa, cell, problem.shapes) if xa else _first_element(Axis.parse(cell.default_axes[0]), problem.shapes)
    ya = _block_alias(ya, cell, problem.shapes) if ya else _first_element(Axis.parse(cell.default_axes[1]), problem.shapes)
    xa, ya = xa.checked(), ya.checked()
    x_ref, y_ref = problem.scalar(xa.name), problem.scalar(ya.name)
    if x_ref == y_ref:
        raise LandscapeError(f"the same parameter {xa.name!r} is on both axes; choose two different ones")
    for ref, axis in ((x_ref, xa), (y_ref, ya)):
        if problem.readout.optimal and ref[0] in problem.readout.params(problem.H):
            raise LandscapeError(f"{axis.name} is fitted at every point with --readout optimal; "
                                 f"use --readout fixed to put it on an axis")
        big = max(abs(axis.lo), abs(axis.hi))
        if big > DTYPE_MAX[spec.dtype]:
            raise LandscapeError(f"axis {axis.describe()!r}: {big:g} is not representable in {spec.dtype} "
                                 f"(largest {DTYPE_MAX[spec.dtype]:g})")
    _check_sets_off_axes(problem, spec.set, (x_ref, xa), (y_ref, ya))
    for name, value in problem.base.items():
        if float(value.abs().max()) > DTYPE_MAX[spec.dtype]:
            raise LandscapeError(f"the base point's {name} is not representable in {spec.dtype}")
    return ResolvedGrid(spec, problem, n, Ts, xa, ya, x_ref, y_ref, bm)


def _resolve_plane(spec, problem, n, Ts, xa, ya, bm) -> ResolvedGrid:
    """A grid over plane coordinates a, b (default -1..1, 51 points each) around the base point."""
    from .directions import DIRECTIONS, PLANE_AXES

    if spec.directions not in DIRECTIONS:
        raise LandscapeError(f"unknown directions {spec.directions!r}; choose from: {', '.join(DIRECTIONS)}")
    xa = (xa or Axis("a", -1.0, 1.0, 51)).checked()
    ya = (ya or Axis("b", -1.0, 1.0, 51)).checked()
    if (xa.name, ya.name) != PLANE_AXES:
        raise LandscapeError(f"--directions {spec.directions} sweeps the plane coordinates: name the axes a and b "
                             f"(e.g. --x a:-1:1:51 --y b:-1:1:51), not {xa.name} and {ya.name}")
    if spec.grads:
        raise LandscapeError("--grads needs named parameter axes; it is not available on a plane of directions")
    return ResolvedGrid(spec, problem, n, Ts, xa, ya, None, None, bm)


def _scalars(shapes) -> list[str]:
    from .cells import scalar_names

    return scalar_names(shapes)


def _check_sets_off_axes(problem, assignments, *axes) -> None:
    """--set on exactly the element an axis sweeps has no effect (the axis overwrites it): refuse it
    rather than make a new cache entry for an identical surface."""
    for ref, _ in assignments:
        name = ref.split("[")[0].strip()
        whole = "[" not in ref
        for axis_ref, axis in axes:
            same = (whole and name == axis_ref[0] and math.prod(problem.shapes[name]) == 1) or \
                   (not whole and problem.scalar(ref) == axis_ref)
            if same:
                raise LandscapeError(f"--set {ref}: {axis.name} is on an axis ({axis.describe()}), so the set "
                                     f"value would be overwritten; drop it or choose another axis")


BLOCK_AXES = ("block_w", "block_b")  # axis names that stand for the cell's block_input (weight, bias)


def _block_alias(axis: Axis, cell, shapes) -> Axis:
    """An axis named block_w or block_b is the cell's declared block input (``Cell.block_input``:
    srnn w, b; lstm w_z, b_z; gru w_h, b_h), so one command puts every cell on its matching plane;
    the stored axis carries the real name."""
    if axis.name not in BLOCK_AXES:
        return axis
    if cell.block_input is None:
        raise LandscapeError(f"cell {cell.name} declares no block_input, so {axis.name} means nothing for it; "
                             f"name its parameters instead")
    return _first_element(replace(axis, name=cell.block_input[BLOCK_AXES.index(axis.name)]), shapes)


def _first_element(axis: Axis, shapes) -> Axis:
    """A default axis on a matrix or vector (H > 1) takes its first element: w -> w[0,0]."""
    shape = shapes.get(axis.name, ())
    if math.prod(shape) <= 1:
        return axis
    return replace(axis, name=f"{axis.name}[{','.join('0' * len(shape))}]")
