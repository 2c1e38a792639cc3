"""The cell registry: ``get_cell('lstm', gate='hard_sigmoid')``; ``CELLS`` maps name -> class."""
from __future__ import annotations

from dataclasses import fields

from ..errors import LandscapeError
from .base import Cell, ParamDecl, hard_sigmoid, parse_param_ref, scalar_names
from .elman import SRNN, Pascanu

CELLS: dict[str, type[Cell]] = {}


def register(*classes: type[Cell]) -> None:
    for cls in classes:
        CELLS[cls.name] = cls


register(SRNN, Pascanu)

from . import gated  # noqa: E402,F401  (registers the LSTM family, GRU and MUT1-3)


def get_cell(name: str, **options) -> Cell:
    """A cell instance by name; options (e.g. gate='hard_sigmoid') must be fields of the cell."""
    try:
        cls = CELLS[name]
    except KeyError:
        raise LandscapeError(f"unknown cell {name!r}; choose from: {', '.join(CELLS)}") from None
    valid = {f.name for f in fields(cls)}
    bad = sorted(set(options) - valid)
    if bad:
        choices = ", ".join(sorted(valid)) or "none"
        raise LandscapeError(f"cell {name} has no option {bad[0]!r}; its options: {choices}")
    return cls(**options)


__all__ = ["CELLS", "Cell", "ParamDecl", "get_cell", "hard_sigmoid", "parse_param_ref", "register",
           "scalar_names"]
