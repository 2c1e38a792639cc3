"""Modules imported on first use, so that the commands that only list or parse (``landscape --help``,
``cells``, ``tasks``, ``cache ls``) start without torch.

    from ..lazy import torch       # behaves as the torch module; imported at the first attribute

Each attribute is looked up once and then kept on the proxy, so later accesses cost what a module
attribute costs.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys


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


def after_import(name: str, fn) -> None:
    """Call fn(module) once the top-level module ``name`` is imported: now if it is already, else
    right after its first import, by whichever ``import`` statement (e.g. torch's thread count,
    set only where torch is used: a grid computed from its recipe never imports it)."""
    if name in sys.modules:
        fn(sys.modules[name])
        return
    sys.meta_path.insert(0, _AfterImport(name, fn))


class _AfterImport(importlib.abc.MetaPathFinder):
    """A one-shot finder: finds ``name`` with the other finders and runs fn after its loader has run it."""

    def __init__(self, name: str, fn):
        self.name, self.fn = name, fn

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run, fn = spec.loader.exec_module, self.fn

        def exec_module(module):
            run(module)
            fn(module)

        spec.loader.exec_module = exec_module  # this spec's own loader instance
        return spec
