"""landscape: loss landscapes and gradient dynamics of small recurrent cells.

    import landscape
    result = landscape.grid(cell="pascanu", task="target", T=(1, 10, 50),
                            x="w:4.5:5.5:101", y="b:-2.9:-1.9:101")
    surface = landscape.load(result.path)      # loss (nT, nx, ny) with named coordinates

The names below are imported on first use, so ``import landscape`` costs nothing until one is.
"""
from __future__ import annotations

import importlib

from .version import __version__ as __version__

# public name -> the module that defines it
_EXPORTS = {
    "CELLS": "cells", "get_cell": "cells", "Cell": "cells", "ParamDecl": "cells",
    "TASKS": "tasks", "get_task": "tasks", "Task": "tasks", "TaskData": "tasks",
    "LandscapeError": "errors",
    "Axis": "spec", "GridSpec": "spec", "ResolvedGrid": "resolved", "resolve": "resolved",
    "ModelSpec": "model", "Problem": "problem", "resolve_model": "problem",
    "Surface": "store", "load": "store",
    "GridResult": "surface", "grid": "surface",
    "explore": "explorer",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'landscape' has no attribute {name!r}")


def __dir__():
    return __all__
