"""Tasks: ``get_task('latch', noise=0.2)``; ``TASKS`` maps name -> class."""
from __future__ import annotations

from dataclasses import fields

from ..errors import LandscapeError
from ..readouts import READOUT_PARAMS, readout_defaults, readout_shapes
from .base import Task, TaskData
from .builtin import TASKS


def get_task(name: str, **params) -> Task:
    """A task by name; parameter values given as text (from the CLI) are converted to the
    declared type."""
    try:
        cls = TASKS[name]
    except KeyError:
        raise LandscapeError(f"unknown task {name!r}; choose from: {', '.join(TASKS)}") from None
    types = {f.name: f.type for f in fields(cls)}
    values = {}
    for key, value in params.items():
        if key not in types:
            valid = ", ".join(types) or "none"
            raise LandscapeError(f"task {name} has no parameter {key!r}; its parameters: {valid}")
        kind = int if types[key] in (int, "int") else float
        try:
            values[key] = kind(value)
        except (TypeError, ValueError):
            raise LandscapeError(f"task parameter {key}={value!r} is not a {kind.__name__}") from None
    return cls(**values)


__all__ = ["READOUT_PARAMS", "TASKS", "Task", "TaskData", "get_task", "readout_defaults",
           "readout_shapes"]
