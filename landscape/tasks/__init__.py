"""The tasks: ``get_task('latch', noise=0.2)``, ``get_task('mytasks.py:Copy')``.

``TASKS`` is the registry (``landscape.extensions.Registry``): the built-in tasks, the tasks
installed packages declare under the entry-point group ``landscape.tasks``, and any class
``FILE.py:Class`` or ``module:Class`` that follows the protocol of ``Task`` (``base.py``).
"""
from __future__ import annotations

from ..extensions import Registry, convert_options
from .base import BLOCK, Task, TaskData, check_task_class
from .builtin import (Bengio, Latch, PLRNNPath, Relay, RelayFlipFlop, RelayPulse, Target, Teacher, TemporalOrder,
                      TwoSequence)

TASKS = Registry("task", "landscape.tasks", check_task_class)
TASKS.register(Target, Latch, Bengio, TwoSequence, Relay, RelayPulse, RelayFlipFlop, Teacher, TemporalOrder, PLRNNPath)


def task_class(ref: str) -> type[Task]:
    """The class of a task name or reference (FILE.py:Class, module:Class)."""
    return TASKS.get(ref)


def get_task(ref: str, **params) -> Task:
    """A task by name or reference, its parameters checked (``Task.check``); values given as text
    (from the CLI) are converted to the declared type."""
    cls = task_class(ref)
    values = convert_options(cls, params, "task", "parameter")
    task = cls(**values)
    task.check()
    return task


__all__ = ["BLOCK", "TASKS", "Task", "TaskData", "get_task", "task_class"]
