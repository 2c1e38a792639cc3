"""Modules imported on first use, so that the commands that only list or parse (``landscape --help``,
``cells``, ``tasks``, ``cache ls``) start without torch.

    from ..lazy import torch       # behaves as the torch module; imported at the first attribute

Each attribute is looked up once and then kept on the proxy, so later accesses cost what a module
attribute costs.
"""
from __future__ import annotations

import importlib


class LazyModule:
    """A stand-in for ``import NAME`` that imports the module at its first attribute access."""

    def __init__(self, name: str):
        self.__dict__["_name"] = name

    def __getattr__(self, attr: str):
        value = getattr(importlib.import_module(self.__dict__["_name"]), attr)
        self.__dict__[attr] = value  # the next access finds it without __getattr__
        return value

    def __reduce__(self):
        """Pickled by its name (a function sent to a Dask worker by value may refer to it)."""
        return LazyModule, (self.__dict__["_name"],)

    def __repr__(self) -> str:
        return f"<lazy module {self.__dict__['_name']!r}>"


torch = LazyModule("torch")
