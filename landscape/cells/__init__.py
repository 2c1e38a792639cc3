"""The cells: ``get_cell('lstm', gate='hard_sigmoid')``, ``get_cell('examples/cells/mgu.py:MGU')``.

``CELLS`` is the registry (``landscape.extensions.Registry``): the built-in cells below, the cells
installed packages declare under the entry-point group ``landscape.cells``, and any class
``FILE.py:Class`` or ``module:Class`` that follows the protocol of ``Cell`` (``base.py``).
"""
from __future__ import annotations

from ..errors import LandscapeError
from ..extensions import Registry, convert_options
from .base import Cell, ParamDecl, bias, check_cell_class, drive, hard_sigmoid, linear, parse_param_ref, scalar_names
from .elman import IRNN, SRNN, Linear, Pascanu
from .gated import (GRU, LSTM, LSTM1997, LSTMB, MUT1, MUT2, MUT3, LSTMNoForgetGate, LSTMNoInputGate,
                    LSTMNoOutputGate)

CELLS = Registry("cell", "landscape.cells", check_cell_class)
CELLS.register(SRNN, Pascanu, LSTM, LSTMB, LSTMNoInputGate, LSTMNoOutputGate, LSTMNoForgetGate, LSTM1997,
               GRU, MUT1, MUT2, MUT3, Linear, IRNN)


def cell_class(ref: str) -> type[Cell]:
    """The class of a cell name or reference (FILE.py:Class, module:Class)."""
    return CELLS.get(ref)


def get_cell(ref: str, **options) -> Cell:
    """A cell instance by name or reference; options (e.g. gate='hard_sigmoid') must be fields of
    the cell (values given as text are converted to the field's type)."""
    cls = cell_class(ref)
    options = convert_options(cls, options, "cell")
    try:
        return cls(**options)
    except LandscapeError:
        raise
    except (TypeError, ValueError) as err:
        raise LandscapeError(f"cell {cls.name}: bad options {options}: {err}") from None


__all__ = ["CELLS", "Cell", "ParamDecl", "bias", "cell_class", "drive", "get_cell", "hard_sigmoid", "linear",
           "parse_param_ref", "scalar_names"]
