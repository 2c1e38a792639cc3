"""The model spec: what a user names of one model, as plain data shared by the grid, the point
analysis and training.

``ModelSpec`` names a cell (with options), a task (with parameters), the hidden size and
base-point values (``set``, or datasets of an HDF5 ``base_file``, or a trained ``base_model``).
``landscape.problem.resolve_model`` turns it into the resolved ``Problem``. A spec that holds a
ModelSpec (``GridSpec``, ``TrainSpec``) is also written flat, with the model's fields beside its
own: ``split_model_fields`` separates them.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

from .errors import LandscapeError


@dataclass(frozen=True)
class ModelSpec:
    """A cell on a task. ``cell`` and ``task`` are registry names or references (FILE.py:Class,
    module:Class); ``set`` holds base-point values ((name, value), ...): 'w' = 0.5 sets a scalar,
    'w[0,1]' = 0.5 one element, 'u' = 0.3 fills a whole matrix; ``base_file`` an HDF5 file whose
    parameter datasets (at the root or under /params) give base-point values (``set`` wins);
    ``base_model`` a trained model whose cell, options, size and parameters are adopted."""

    cell: str = "srnn"
    cell_options: tuple[tuple[str, object], ...] = ()
    task: str = "latch"
    task_options: tuple[tuple[str, object], ...] = ()
    hidden: int | None = None
    set: tuple[tuple[str, object], ...] = ()
    base_file: str | None = None
    base_model: str | None = None  # a trained model: FILE.pt or RUN.h5:GROUP[:REPEAT] (landscape.basemodel)


MODEL_FIELDS = tuple(f.name for f in fields(ModelSpec))


def split_model_fields(flat: dict) -> tuple[ModelSpec, dict]:
    """The flat keyword form of a spec that holds a ModelSpec -> (the ModelSpec of the model's
    fields, the remaining fields); giving ``model`` beside a model field is a TypeError."""
    given = {k: v for k, v in flat.items() if k in MODEL_FIELDS}
    rest = {k: v for k, v in flat.items() if k not in MODEL_FIELDS}
    if "model" in rest and given:
        raise TypeError(f"give either model= or its fields ({', '.join(given)}), not both")
    return rest.pop("model", None) or ModelSpec(**given), rest


def parse_assignments(items, what: str) -> tuple[tuple[str, str], ...]:
    """('w=1', 'b=0.5') -> (('w', '1'), ('b', '0.5')); one clear error for a malformed item."""
    out = []
    for item in items:
        if "=" not in item:
            raise LandscapeError(f"malformed {what} {item!r}; write NAME=VALUE")
        key, value = item.split("=", 1)
        if not key.strip():
            raise LandscapeError(f"malformed {what} {item!r}; write NAME=VALUE")
        out.append((key.strip(), value.strip()))
    return tuple(out)
