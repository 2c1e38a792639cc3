"""The resolved grid: a ``GridSpec`` checked, with every default filled in, as ``ResolvedGrid``.

``resolve`` is the grid's one resolution step: the model through ``problem.resolve_model`` (the
readout fit, the --base file, the --base-model), the axes (a cell's default axes, block_w/block_b
aliases, a plane's a and b), the lengths and the number of sequences, and the --models of a plane
(loaded once, for their content hashes). A ResolvedGrid is plain data: ``canonical()`` (the JSON
stored in the file and hashed into the cache key) does no I/O and no compute, so two specs with
the same numbers share a cache entry and any change makes a new one.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace

from .basemodel import BaseModel, load_model
from .cells import scalar_names
from .directions import DIRECTIONS, PLANE_AXES
from .errors import LandscapeError
from .problem import Problem, resolve_model
from .spec import DTYPE_MAX, DTYPES, MATH_CLASSES, SPEC_VERSION, Axis, GridSpec, torch_dtype
from .store.integrity import spec_key


@dataclass(frozen=True)
class ResolvedGrid:
    """A checked GridSpec with every default filled in: the resolved model and the grid."""

    spec: GridSpec
    problem: Problem
    n: int
    Ts: tuple[int, ...]
    x: Axis
    y: Axis
    x_ref: tuple[str, tuple[int, ...]] | None  # None on a plane grid (axes a, b)
    y_ref: tuple[str, tuple[int, ...]] | None
    models: tuple[BaseModel, ...] = ()  # a plane's other models (--models), loaded at resolve time
    input: float | None = None  # the dynamics map's constant input (--dynamics; None for a cell without input)

    @property
    def refs(self) -> tuple:
        """((name, index), (name, index)) of the two axes; () on a plane grid."""
        return () if self.x_ref is None else (self.x_ref, self.y_ref)

    @property
    def on_plane(self) -> bool:
        """Whether the axes are the coordinates a, b of a plane of directions."""
        return self.spec.directions is not None

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

    @property
    def cell_name(self) -> str:
        return self.problem.cell.name

    @property
    def task_name(self) -> str:
        return self.problem.task.name

    @property
    def steps(self) -> int:
        """The task's steps at the largest T (what the unroll runs)."""
        return self.problem.task.steps(max(self.Ts))

    def canonical(self) -> str:
        """Everything that determines the numbers, as canonical JSON (``canonical_json``)."""
        readout = self.problem.readout
        doc = {
            "format_version": SPEC_VERSION, **self.problem.canonical(),
            "n": self.n, "seed": self.spec.seed, "dtype": self.spec.dtype, "T": list(self.Ts),
            "x": asdict(self.x), "y": asdict(self.y),
            "readout": readout.label, "readout_l2": readout.l2 if readout.optimal else None,
            "grads": self.spec.grads,
        }
        if self.spec.math != "exact":  # absent for the default: those specs (and keys) are as before
            doc["math"] = self.spec.math
        if self.spec.dynamics:  # absent without --dynamics: those specs (and keys) are as before
            doc["dynamics"] = {"input": self.input, "options": asdict(self.dynamics_options),
                               "sequences": self.dynamics_sequences}
        if self.on_plane:
            doc["directions"] = {"kind": self.spec.directions, "seed": self.spec.direction_seed,
                                 "models": [m.source["sha256"] for m in self.models]}
        return canonical_json(doc)

    @property
    def dynamics_options(self):
        """The dynamics map's settings on a grid (``dynamics_map.DynamicsOptions``, its defaults)."""
        from .dynamics_map import DynamicsOptions

        return DynamicsOptions()

    @property
    def dynamics_sequences(self) -> int:
        """The sequences lambda_T is averaged over on a grid (the task's first ones)."""
        from .dynamics_map import GRID_SEQUENCES

        return min(self.n, GRID_SEQUENCES)

    def key(self) -> str:
        return spec_key(self.canonical())


def canonical_json(doc: dict) -> str:
    """A canonical spec's document as the JSON a surface file stores (and its key hashes)."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def resolve(spec: GridSpec) -> ResolvedGrid:
    """Check a spec and fill in its defaults; raises LandscapeError on the first bad value."""
    if spec.dtype not in DTYPES:
        raise LandscapeError(f"unknown dtype {spec.dtype!r}; choose from: {', '.join(DTYPES)}")
    if spec.math not in MATH_CLASSES:
        raise LandscapeError(f"unknown math class {spec.math!r}; choose from: {', '.join(MATH_CLASSES)}")
    xa, ya, Ts = spec.x, spec.y, spec.T  # parsed when the spec was made
    problem = resolve_model(spec.model, fit=spec.fit, l2=spec.readout_l2)
    n = problem.task.default_n if spec.n is None else int(spec.n)
    problem.task.check_n(n)
    dynamics_input = _dynamics_input(spec, problem)
    if spec.directions is not None:
        return replace(_resolve_plane(spec, problem, n, Ts, xa, ya), input=dynamics_input)
    if spec.models:
        raise LandscapeError("--models names the other models of --directions models or line")

    cell = problem.cell
    if (xa is None or ya is None) and cell.default_axes is None:
        raise LandscapeError(f"cell {cell.name} declares no default axes; give --x and --y (its scalars: "
                             f"{', '.join(scalar_names(problem.shapes))})")
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
        check_representable(axis, spec.dtype)
    _check_sets_off_axes(problem, spec.model.set, (x_ref, xa), (y_ref, ya))
    for name, value in problem.base.items():
        if float(value.abs().max()) > DTYPE_MAX[spec.dtype]:
            raise LandscapeError(f"the base point's {name} is not representable in {spec.dtype}")
    return ResolvedGrid(spec, problem, n, Ts, xa, ya, x_ref, y_ref, input=dynamics_input)


def check_representable(axis: Axis, dtype: str) -> None:
    """One line for an axis whose range does not fit the computation's dtype."""
    big = max(abs(axis.lo), abs(axis.hi))
    if big > DTYPE_MAX[dtype]:
        raise LandscapeError(f"axis {axis.describe()!r}: {big:g} is not representable in {dtype} "
                             f"(largest {DTYPE_MAX[dtype]:g})")


def _dynamics_input(spec: GridSpec, problem: Problem) -> float | None:
    """The dynamics map's constant input: --input, else the task's input mean; None without
    --dynamics or for a cell without input."""
    if not spec.dynamics:
        if spec.input is not None:
            raise LandscapeError(f"--input {spec.input:g} is the constant input of --dynamics; add --dynamics")
        return None
    if problem.D == 0:
        if spec.input is not None:
            raise LandscapeError(f"task {problem.task.name} has no input, so --input {spec.input:g} means nothing")
        return None
    if spec.input is None:
        from .dynamics_map import default_input

        try:
            return default_input(problem.task)
        except LandscapeError:
            raise LandscapeError(f"task {problem.task.name} declares no input_mean; give the dynamics map's "
                                 f"constant input with --input X") from None
    value = float(spec.input)
    if not math.isfinite(value):
        raise LandscapeError(f"--input must be a finite number, got {spec.input}")
    return value


def _resolve_plane(spec, problem, n, Ts, xa, ya) -> ResolvedGrid:
    """A grid over plane coordinates a, b (default -1..1, 51 points each) around the base point;
    its other models are loaded here (their content hashes go into the canonical spec)."""
    if spec.directions not in DIRECTIONS:
        raise LandscapeError(f"unknown directions {spec.directions!r}; choose from: {', '.join(DIRECTIONS)}")
    xa = (xa or Axis("a", -1.0, 1.0, 51)).checked()
    ya = (ya or Axis("b", -1.0, 1.0, 51)).checked()
    if (xa.name, ya.name) != PLANE_AXES:
        raise LandscapeError(f"--directions {spec.directions} sweeps the plane coordinates: name the axes a and b "
                             f"(e.g. --x a:-1:1:51 --y b:-1:1:51), not {xa.name} and {ya.name}")
    if spec.grads:
        raise LandscapeError("--grads needs named parameter axes; it is not available on a plane of directions")
    models = tuple(load_model(ref) for ref in spec.models)
    return ResolvedGrid(spec, problem, n, Ts, xa, ya, None, None, models)


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
