"""The one resolution of a model: ``resolve_model`` turns a ``ModelSpec`` into a ``Problem``.

A ``Problem`` is the resolved object every computation takes (the grid, the point analysis,
training, attractors): the cell and task objects, H and D, the readout (its kind and its fit,
``landscape.readouts.Readout``), the parameter shapes and the full base point. The rules live
here once: the hidden size defaults to the task's, the task's parameters and the number of
sequences are checked by the task, the readout fit (auto | fixed | optimal) is decided, a
``--base`` file is read and a ``--base-model`` loaded and hashed (once each), ``--set`` is parsed
by ``apply_set``. A Problem does no I/O: what its canonical form needs is read here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .basemodel import adopt_model, load_model, model_values, read_base_point
from .cells import Cell, get_cell, parse_param_ref
from .errors import LandscapeError
from .extensions import is_builtin, source_hash
from .lazy import torch
from .model import ModelSpec
from .readouts import FITS, READOUT_KINDS, READOUT_PARAMS, Readout, readout_kind
from .tasks import Task, get_task

if TYPE_CHECKING:
    from torch import Tensor


@dataclass(frozen=True)
class Problem:
    """A resolved ModelSpec: what the engine, the gradients and training compute with.

    shapes  name -> shape of every parameter (the cell's, then the readout's)
    base    name -> float64 tensor (shape): the base point
    """

    spec: ModelSpec
    cell: Cell
    task: Task
    H: int
    D: int
    readout: Readout
    shapes: dict = field(repr=False)
    base: dict = field(repr=False)
    base_model: object = field(default=None, repr=False)  # basemodel.BaseModel of ModelSpec.base_model

    @property
    def where(self) -> str:
        """How messages name this model: 'cell srnn (H=1, D=1) with a readout'."""
        return f"cell {self.cell.name} (H={self.H}, D={self.D})" + (
            " with a readout" if self.readout.kind != "identity" else "")

    def scalar(self, ref: str) -> tuple[str, tuple[int, ...]]:
        """(name, index) of a scalar reference ('w', 'w[0,1]'), or LandscapeError naming the valid ones."""
        return parse_param_ref(ref, self.shapes, self.where)

    def value(self, ref: str) -> float:
        """The base-point value of a scalar reference."""
        name, idx = self.scalar(ref)
        return float(self.base[name][idx])

    def canonical(self) -> dict:
        """The parts of a result's canonical spec that name the model (the keys a surface file has
        always stored; a cell or task from outside the package adds a hash of its source)."""
        doc = {"cell": self.spec.cell, "cell_options": self.cell.options(),
               "task": self.spec.task, "task_params": self.task.params(),
               "hidden": self.H, "input_size": self.D,
               "base": {k: v.tolist() for k, v in self.base.items()}}
        for what, cls in (("cell", type(self.cell)), ("task", type(self.task))):
            if not is_builtin(cls):
                doc[f"{what}_source"] = source_hash(cls)
        if self.base_model is not None:  # the model's file by content (its path may move)
            src = self.base_model.source
            doc["base_model"] = {k: src[k] for k in ("sha256", "group", "repeat") if k in src}
        return doc

    def initial(self, P: int = 1, dtype=None, device=None) -> dict[str, Tensor]:
        """The base point as population parameters, (P, *shape) each (a view for P > 1)."""
        return {k: v.to(dtype=dtype or torch.float64, device=device).unsqueeze(0).expand(P, *v.shape)
                for k, v in self.base.items()}


def resolve_model(spec: ModelSpec, readout: str | None = None, fit: str = "fixed", l2: float = 1e-4) -> Problem:
    """Check a ModelSpec and fill in its defaults; one LandscapeError for the first bad value.

    readout  the readout KIND for a task with classes (None: the task's, logistic); a task whose
             loss is on the state has the identity kind whatever is asked
    fit      how the readout is set at each point (``readouts.FITS``): fixed (the base point's),
             optimal (fitted per point, ridge l2) or auto (optimal where the task has a readout)
    l2       the ridge of the optimal fit
    """
    if fit not in FITS:
        raise LandscapeError(f"unknown readout fit {fit!r}; choose from: {', '.join(FITS)}")
    bm = None
    if spec.base_model:
        if spec.base_file:
            raise LandscapeError("give --base (parameter datasets) or --base-model (a trained model), not both")
        bm = load_model(spec.base_model)
        spec = adopt_model(spec, bm)
    cell = get_cell(spec.cell, **dict(spec.cell_options))
    task = get_task(spec.task, **dict(spec.task_options))
    H = task.default_hidden if spec.hidden is None else _integer(spec.hidden, "hidden size")
    D = task.input_size
    kind = "identity" if task.readout == "identity" else (readout or task.readout)
    if kind not in READOUT_KINDS or (kind == "identity") != (task.readout == "identity"):
        raise LandscapeError(f"unknown readout {kind!r} for task {task.name}; choose from: "
                             f"{', '.join(k for k in READOUT_KINDS if k != 'identity')}")
    if not (isinstance(l2, (int, float)) and math.isfinite(l2) and l2 >= 0):
        raise LandscapeError(f"readout_l2 must be a finite number >= 0, got {l2}")
    ro = Readout(kind, _fit_policy(task, kind, fit, l2), float(l2), task.loss_scale)

    shapes = dict(cell.param_shapes(H, D))
    base = cell.default_params(H, D)
    shapes.update(readout_kind(kind, task.classes).shapes(H))
    base.update(readout_kind(kind, task.classes).base(H))
    problem = Problem(spec, cell, task, H, D, ro, shapes, base, bm)
    if bm is not None:
        base_values = model_values(bm, problem)
    else:
        base_values = read_base_point(spec.base_file, shapes) if spec.base_file else {}
    for name, value in base_values.items():
        if name in shapes:
            base[name] = torch.as_tensor(value, dtype=torch.float64)
    apply_set(base, shapes, spec.set, problem.where)
    if ro.optimal:
        fitted = [ref for ref, _ in spec.set if ref.split("[")[0].strip() in READOUT_PARAMS]
        if fitted:
            raise LandscapeError(f"--set {fitted[0]}: the readout is fitted at every point with --readout "
                                 f"optimal; use --readout fixed to set it")
    _check_finite(base)
    if not is_builtin(type(cell)):
        check_step(problem)
    return problem


def _fit_policy(task: Task, kind: str, fit: str, l2: float) -> str:
    """fixed | optimal: auto -> optimal where the task has a readout; fixed for a task whose loss is
    on the state (optimal is refused there); optimal needs a ridge l2 > 0."""
    if kind == "identity":
        if fit == "optimal":
            raise LandscapeError(f"task {task.name} has no trained readout (its loss is on the state); "
                                 f"--readout optimal needs a task with classes (latch, two-sequence, relay)")
        return "fixed"
    fit = "optimal" if fit == "auto" else fit
    if fit == "optimal" and not l2 > 0:
        raise LandscapeError("--readout optimal needs readout_l2 > 0 (separable classes have no "
                             "finite optimum otherwise)")
    return fit


def _integer(value, what: str) -> int:
    if isinstance(value, bool) or not float(value).is_integer():
        raise LandscapeError(f"{what} must be an integer, got {value!r}")
    return int(value)


def apply_set(params: dict, shapes: dict, assignments, where: str) -> None:
    """Base-point or initial values, in place: 'b_f' = value fills a whole parameter, 'w[0,1]' =
    value one element. Every value must be a finite number (the one parser of --set)."""
    for ref, value in assignments:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise LandscapeError(f"--set {ref}={value!r}: the value must be a number") from None
        if not math.isfinite(number):
            raise LandscapeError(f"--set {ref}={value!r}: the value must be finite")
        name = ref.split("[")[0].strip()
        if name in shapes and "[" not in ref:
            params[name] = torch.full(shapes[name], number, dtype=params[name].dtype)
            continue
        name, idx = parse_param_ref(ref, shapes, where)
        params[name] = params[name].clone()
        params[name][idx] = number


def _check_finite(base: dict) -> None:
    for name, value in base.items():
        if not bool(torch.isfinite(value).all()):
            raise LandscapeError(f"the base point's {name} is not finite ({value.flatten()[:4].tolist()}); "
                                 f"every parameter must be a finite number")


def check_step(problem: Problem) -> None:
    """Run one step of a cell from outside the package at its base point (two members, three
    sequences) and check what it returns, so a broken step fails with one line before any work."""
    cell, H, D = problem.cell, problem.H, problem.D
    params = {k: v.unsqueeze(0).expand(2, *v.shape) for k, v in problem.base.items() if k in cell.param_shapes(H, D)}
    x = torch.zeros(3, D, dtype=torch.float64) if D else None
    try:
        state = cell.initial_state(params, 3, H)
        new = cell.step(params, state, x)
        out = cell.output(new)
    except Exception as err:  # noqa: BLE001 - anything the user's step raises is one line
        raise LandscapeError(f"cell {cell.name}: step failed at the base point (H={H}, D={D}): "
                             f"{type(err).__name__}: {err}") from None
    if not isinstance(new, tuple) or len(new) != len(cell.state_names):
        raise LandscapeError(f"cell {cell.name}: step must return a tuple of {len(cell.state_names)} state "
                             f"tensor(s) ({', '.join(cell.state_names)}), got {type(new).__name__}")
    for name, s in zip(cell.state_names, (*new, out)):
        if not hasattr(s, "shape") or tuple(s.shape[-2:]) != (3, H) or s.shape[0] not in (1, 2):
            raise LandscapeError(f"cell {cell.name}: state {name} must have shape (P, N, H) = (2, 3, {H}), "
                                 f"got {tuple(getattr(s, 'shape', ()))}")
