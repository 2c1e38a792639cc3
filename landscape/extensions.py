"""The extension points of landscape, in one place.

    what         built in                       a user adds one by                          protocol
    cell         landscape/cells/ (CELLS)       --cell path/to/file.py:Class                landscape.cells.Cell
                                                --cell package.module:Class
                                                entry point group ``landscape.cells``
    task         landscape/tasks/ (TASKS)       --task ... (the same three ways),           landscape.tasks.Task
                                                entry point group ``landscape.tasks``
    plot kind    landscape/figures/kinds.py     ``landscape.figures.kinds.register``         PlotKind
    kernel       landscape/kernels/ (BACKENDS)  a subpackage with losses() and available(),  kernels.BACKENDS
    backend                                     one line in BACKENDS (device type -> module)
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
import math
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


_LOADED: dict[tuple[str, str], tuple] = {}  # (path, source hash) -> (module, its local imports' digest)


def _load_file(path: str, what: str):
    """The module of a user's file; one clear line for a missing file or an error inside it. A file
    loads anew when it, or a module of the user's own that it imports (``local_imports``), changed."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise LandscapeError(f"{what} file {path!r} not found" + (" (it is a folder)" if file.is_dir() else ""))
    source = file.read_bytes()
    key = (str(file.resolve()), hashlib.sha256(source).hexdigest())
    if key in _LOADED:
        module, deps = _LOADED[key]
        if _digest_of(local_imports(file, module)) == deps:
            return module
        for dep in local_imports(file, module):  # a helper changed: import the user's modules again
            for name, mod in list(sys.modules.items()):
                if getattr(mod, "__file__", None) and Path(mod.__file__).resolve() == dep:
                    del sys.modules[name]
    # named by path and content: two copies of one file at two paths are two modules (one name for both
    # made the second replace the first in sys.modules, and the first class's source was looked up in the
    # second file)
    where = hashlib.sha256(f"{key[0]}\n{key[1]}".encode()).hexdigest()[:16]
    name = f"landscape_user_{where}"
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
    _LOADED[key] = (module, _digest_of(local_imports(file, module)))
    return module


def _digest_of(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for dep in files:
        digest.update(str(dep).encode() + b"\0" + dep.read_bytes())
    return digest.hexdigest()


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
    """A hash of the source that defines ``cls``: its whole file (the helpers it calls count too) and,
    when that file imports modules of its own from outside the installed packages (a ``helpers.py``
    beside a cell file), their files too, recursively, so editing any of them recomputes. A file with
    no such imports hashes as its bytes alone."""
    try:
        file = inspect.getsourcefile(cls)
        data = Path(file).read_bytes() if file else b""
    except (TypeError, OSError):
        file, data = None, b""
    if not data:  # defined interactively: hash what can be had
        try:
            data = inspect.getsource(cls).encode()
        except (TypeError, OSError):
            data = repr(sorted(vars(cls))).encode()
        return hashlib.sha256(data).hexdigest()[:16]
    digest = hashlib.sha256(data)
    for dep in local_imports(Path(file), sys.modules.get(cls.__module__)):
        digest.update(b"\0" + dep.name.encode() + b"\0" + dep.read_bytes())
    return digest.hexdigest()[:16]


def local_imports(file: Path, module=None) -> list[Path]:
    """The source files of the modules ``file`` imports (and they import, recursively) that are the
    user's own: not the standard library, not an installed package, not landscape. Found from the
    file's import statements, resolved through the modules already imported (the file has run)."""
    seen: dict[Path, None] = {}
    todo = [(file, module)]
    while todo:
        path, mod = todo.pop()
        for name in _imported_names(path, mod):
            found = sys.modules.get(name)
            dep = getattr(found, "__file__", None)
            if dep is None or not _is_users(Path(dep)):
                continue
            dep = Path(dep).resolve()
            if dep != file.resolve() and dep not in seen and dep.suffix == ".py":
                seen[dep] = None
                todo.append((dep, found))
    return sorted(seen)


def _imported_names(path: Path, module) -> list[str]:
    """Full module names of the import statements of a source file (relative ones resolved against its
    package)."""
    import ast

    try:
        tree = ast.parse(path.read_bytes())
    except (OSError, SyntaxError, ValueError):
        return []
    package = getattr(module, "__package__", None) or ""
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".") if package else []
                parts = parts[:len(parts) - node.level + 1] if node.level > 1 else parts
                base = ".".join([*parts, base] if base else parts)
            names.append(base)
            names += [f"{base}.{alias.name}" for alias in node.names]  # from pkg import submodule
    return [n for n in names if n]


def _is_users(path: Path) -> bool:
    """Whether a module file is the user's own: outside the interpreter's prefixes (the standard library,
    site-packages) and outside landscape itself."""
    import sysconfig

    path = path.resolve()
    here = Path(__file__).resolve().parent
    roots = {Path(p).resolve() for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    roots |= {Path(p).resolve() for key in ("stdlib", "platstdlib", "purelib", "platlib")
              if (p := sysconfig.get_paths().get(key))}
    if path.is_relative_to(here) or "site-packages" in path.parts or "dist-packages" in path.parts:
        return False
    return not any(path.is_relative_to(root) for root in roots)


def convert_options(cls: type, options: dict, what: str, noun: str = "option") -> dict:
    """A cell's options or a task's parameters, as the class declares them: each key must be a field of
    the dataclass ``cls``, and a value given as text (from the command line) is converted to the
    field's declared type (bool, int, float or str; another type keeps the value as given). One line
    naming the option and its type when a value cannot be converted."""
    import dataclasses

    declared = {f.name: f.type for f in dataclasses.fields(cls)}
    out = {}
    for key, value in options.items():
        if key not in declared:
            valid = ", ".join(declared) or "none"
            raise LandscapeError(f"{what} {cls.name} has no {noun} {key!r}; its {noun}s: {valid}")
        kind = _TYPES.get(declared[key])
        try:
            out[key] = value if kind is None else _convert(kind, value)
        except (TypeError, ValueError, OverflowError):
            article = "an" if kind is int else "a"
            raise LandscapeError(f"{what} {noun} {key}={value!r} is not {article} {kind.__name__}"
                                 + (" (write true or false)" if kind is bool else "")) from None
    return out


_TYPES = {bool: bool, "bool": bool, int: int, "int": int, float: float, "float": float, str: str, "str": str}
_BOOL = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}


def _convert(kind: type, value):
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _BOOL:
            return _BOOL[value.strip().lower()]
        if isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
        raise ValueError(value)
    if kind is int:
        if isinstance(value, bool):
            raise ValueError(value)
        number = float(value) if isinstance(value, str) else value  # '3' and '3.0' are 3; '3.5' is not
        if isinstance(number, float) and (not math.isfinite(number) or number != int(number)):
            raise ValueError(value)
        return int(number)
    if kind is float:
        if isinstance(value, bool):
            raise ValueError(value)
        return float(value)
    if not isinstance(value, str):
        raise TypeError(value)
    return value


def is_builtin(cls: type) -> bool:
    """Whether a class is one of landscape's own (its results' keys carry no source hash)."""
    return cls.__module__.split(".")[0] == "landscape"
