"""The tasks: ``get_task('latch', noise=0.2)``, ``get_task('mytasks.py:Copy')``.

``TASKS`` is the registry (``landscape.extensions.Registry``): the built-in tasks, the tasks
installed packages declare under the entry-point group ``landscape.tasks``, and any class
``FILE.py:Class`` or ``module:Class`` that follows the protocol of ``Task`` (``base.py``).
"""
from __future__ import annotations

import math
from dataclasses import fields

from ..errors import LandscapeError
from ..extensions import Registry
from .base import BLOCK, Task, TaskData, check_task_class
from .builtin import Bengio, Latch, Relay, RelayFlipFlop, RelayPulse, Target, TwoSequence

TASKS = Registry("task", "landscape.tasks", check_task_class)
TASKS.register(Target, Latch, Bengio, TwoSequence, Relay, RelayPulse, RelayFlipFlop)

_TYPES = {int: int, "int": int, float: float, "float": float, str: str, "str": str}


def task_class(ref: str) -> type[Task]:
    """The class of a task name or reference (FILE.py:Class, module:Class)."""
    return TASKS.get(ref)


def get_task(ref: str, **params) -> Task:
    """A task by name or reference, its parameters checked (``Task.check``); values given as text
    (from the CLI) are converted to the declared type."""
    cls = task_class(ref)
    types = {f.name: f.type for f in fields(cls)}
    values = {}
    for key, value in params.items():
        if key not in types:
            valid = ", ".join(types) or "none"
            raise LandscapeError(f"task {cls.name} has no parameter {key!r}; its parameters: {valid}")
        kind = _TYPES.get(types[key], float)
        try:
            values[key] = _convert(kind, value)
        except (TypeError, ValueError):
            raise LandscapeError(f"task parameter {key}={value!r} is not a{'n' if kind is int else ''} "
                                 f"{kind.__name__}") from None
    task = cls(**values)
    task.check()
    return task


def _convert(kind, value):
    if kind is int and isinstance(value, str):
        number = float(value)  # '3' and '3.0' are 3; '3.5' is not an integer
        if not math.isfinite(number) or number != int(number):
            raise ValueError(value)
        return int(number)
    if kind is int and isinstance(value, float) and value != int(value):
        raise ValueError(value)
    return kind(value)


__all__ = ["BLOCK", "TASKS", "Task", "TaskData", "get_task", "task_class"]
