"""The extension points of landscape, in one place.

    what         built in                       a user adds one by                          protocol
    cell         landscape/cells/ (CELLS)       --cell path/to/file.py:Class                landscape.cells.Cell
                                                --cell package.module:Class
                                                entry point group ``landscape.cells``
    task         landscape/tasks/ (TASKS)       --task ... (the same three ways),           landscape.tasks.Task
                                                entry point group ``landscape.tasks``
    plot kind    landscape/figures/kinds.py     ``landscape.figures.kinds.register``         PlotKind
    fast path    landscape/kernels/ (FAST_PATHS) a class with ``covers(cell, H, D)``         kernels.FastPath
    reproduction landscape/analyses/*.py        a module with NAME, DESCRIPTION, run()      analyses/__init__.py

Cells and tasks are looked up through a ``Registry``: a built-in name, an installed entry point, or
a reference ``FILE.py:Class`` / ``module:Class``. A class from outside the package is checked
against its protocol when it is loaded (one clear line naming what is missing), and its source is
hashed (``source_hash``) into the cache key of every result it makes, so editing the file
recomputes. Nothing here imports torch.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Callable, Iterator

from .errors import LandscapeError


class Registry:
    """Classes of one kind (cells or tasks) by name: the built-ins, the installed entry points of
    ``group``, and external references ``FILE.py:Class`` or ``module:Class``.

    ``check(cls, ref)`` raises LandscapeError when a class does not follow the protocol.
    """

    def __init__(self, what: str, group: str, check: Callable[[type, str], None]):
        self.what = what  # "cell" or "task": the word in messages and options (--cell, --task)
        self.group = group
        self.builtins: dict[str, type] = {}
        self._check = check
        self._entry: dict | None = None

    # --- the names --------------------------------------------------------------------------
    def register(self, *classes: type) -> None:
        for cls in classes:
            self.builtins[cls.name] = cls

    def entry_points(self) -> dict:
        """name -> EntryPoint of the installed packages' ``group`` (read once, not loaded)."""
        if self._entry is None:
            self._entry = {ep.name: ep for ep in entry_points(group=self.group)
                           if ep.name not in self.builtins}
        return self._entry

    def names(self) -> list[str]:
        return [*self.builtins, *self.entry_points()]

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __contains__(self, name) -> bool:
        return name in self.builtins or name in self.entry_points()

    def __getitem__(self, ref: str) -> type:
        return self.get(ref)

    def items(self):
        """(name, class) for every built-in and installed class (entry points are loaded)."""
        return [(name, self.get(name)) for name in self.names()]

    # --- lookup -----------------------------------------------------------------------------
    @staticmethod
    def is_reference(ref: str) -> bool:
        """Whether ``ref`` names a class outside the registry: FILE.py:Class or module:Class."""
        return ":" in ref

    def get(self, ref: str) -> type:
        """The class a name or reference denotes; LandscapeError with one line otherwise."""
        if not isinstance(ref, str) or not ref.strip():
            raise LandscapeError(f"give a {self.what} name; choose from: {', '.join(self.names())}")
        ref = ref.strip()
        if ref in self.builtins:
            return self.builtins[ref]
        if ref in self.entry_points():
            ep = self.entry_points()[ref]
            try:
                cls = ep.load()
            except Exception as err:  # noqa: BLE001 - any failure of a user's package is one line
                raise LandscapeError(f"cannot load {self.what} {ref!r} from entry point {ep.value}: "
                                     f"{type(err).__name__}: {err}") from None
            self._check(cls, ref)
            return cls
        if not self.is_reference(ref):
            raise LandscapeError(f"unknown {self.what} {ref!r}; choose from: {', '.join(self.names())} "
                                 f"(or FILE.py:Class, module:Class)")
        where, _, name = ref.rpartition(":")
        if not where or not name.isidentifier():
            raise LandscapeError(f"malformed --{self.what} {ref!r}; write FILE.py:Class or module:Class")
        module = _load_file(where, self.what) if where.endswith(".py") or "/" in where else \
            _load_module(where, self.what)
        cls = getattr(module, name, None)
        if not isinstance(cls, type):
            found = sorted(k for k, v in vars(module).items() if isinstance(v, type)
                           and v.__module__ == module.__name__)
            raise LandscapeError(f"{where} defines no class {name!r}"
                                 + (f"; its classes: {', '.join(found)}" if found else ""))
        self._check(cls, ref)
        return cls


_LOADED: dict[tuple[str, str], object] = {}  # (path, source hash) -> module: a changed file loads anew


def _load_file(path: str, what: str):
    """The module of a user's file; one clear line for a missing file or an error inside it."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise LandscapeError(f"{what} file {path!r} not found" + (" (it is a folder)" if file.is_dir() else ""))
    source = file.read_bytes()
    key = (str(file.resolve()), hashlib.sha256(source).hexdigest())
    if key in _LOADED:
        return _LOADED[key]
    name = f"landscape_user_{key[1][:16]}"
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up by name
    try:
        spec.loader.exec_module(module)
    except SyntaxError as err:
        del sys.modules[name]
        raise LandscapeError(f"cannot load {what} file {path}: syntax error at line {err.lineno}: {err.msg}") from None
    except Exception as err:  # noqa: BLE001 - anything the user's module raises is one line
        del sys.modules[name]
        raise LandscapeError(f"cannot load {what} file {path}: {type(err).__name__}: {err}") from None
    _LOADED[key] = module
    return module


def _load_module(name: str, what: str):
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        raise LandscapeError(f"cannot import module {name!r} for the {what}: {err}") from None
    except SyntaxError as err:
        raise LandscapeError(f"cannot import module {name!r} for the {what}: syntax error in "
                             f"{err.filename} at line {err.lineno}: {err.msg}") from None
    except Exception as err:  # noqa: BLE001
        raise LandscapeError(f"cannot import module {name!r} for the {what}: {type(err).__name__}: {err}") from None


def source_hash(cls: type) -> str:
    """A hash of the source file that defines ``cls`` (the whole file: helpers it calls count too)."""
    try:
        file = inspect.getsourcefile(cls)
        data = Path(file).read_bytes() if file else b""
    except (TypeError, OSError):
        data = b""
    if not data:  # defined interactively: hash what can be had
        try:
            data = inspect.getsource(cls).encode()
        except (TypeError, OSError):
            data = repr(sorted(vars(cls))).encode()
    return hashlib.sha256(data).hexdigest()[:16]


def is_builtin(cls: type) -> bool:
    """Whether a class is one of landscape's own (its results' keys carry no source hash)."""
    return cls.__module__.split(".")[0] == "landscape"
