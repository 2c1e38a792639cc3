"""Reproductions: one module per paper figure or experiment, run by `landscape reproduce NAME`.

Each module defines ``NAME`` (the command-line name, e.g. "pascanu-fig6"), ``DESCRIPTION`` (one
line) and ``run(out_dir: Path, quick: bool = False, device: str = "auto", progress: bool | None = None)
-> list[Path]`` that writes its data (HDF5/CSV) and figures (PDF + PNG) to out_dir and returns the
paths it wrote. Modules are discovered, so adding one needs no edit here.
"""
from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

from ..errors import LandscapeError


def analyses() -> dict[str, ModuleType]:
    """NAME -> module, for every module in this package that defines NAME and run."""
    found = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "NAME") and hasattr(module, "run"):
            found[module.NAME] = module
    return found


def get_analysis(name: str) -> ModuleType:
    table = analyses()
    if name not in table:
        raise LandscapeError(f"unknown reproduction {name!r}; choose from: {', '.join(table) or 'none yet'}")
    return table[name]
