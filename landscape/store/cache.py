"""The cache of computed surfaces: a folder ($LANDSCAPE_CACHE, else ~/.cache/landscape; read by
``settings.cache_dir``) of NAME-KEY.h5 files, listed with their state and found by key."""
from __future__ import annotations

import re
from pathlib import Path

from ..errors import LandscapeError
from ..settings import cache_dir
from .integrity import check_readable
from .format import FORMAT
from .integrity import CorruptSurface, read_root
from .lock import lock_held
from .reader import check_surface_file, read_surface

CACHE_NAME = re.compile(r"[^.][A-Za-z0-9._+=-]*-[0-9a-f]{16}\.h5")  # NAME-KEY.h5, as ``cache_path`` names them


def cache_path(name: str, key: str) -> Path:
    """The cache file of the surface NAME with spec key KEY: NAME-KEY.h5 in the cache folder, and
    always there (``file_stem``: a cell or task name such as ../../x cannot lead out of it)."""
    return cache_dir() / f"{file_stem(name)}-{file_stem(key)}.h5"


def file_stem(name: str) -> str:
    """``name`` as one plain part of a file name: every character but letters, digits and ._+=-
    (a path separator, a NUL, a space) becomes _, and leading dots go (no hidden file, no ..).
    The built-in names are left as they are."""
    stem = re.sub(r"[^A-Za-z0-9._+=-]", "_", name).lstrip(".")
    return stem or "_"


def cache_entries(check: bool = False) -> list[dict]:
    """One dict per .h5 file in the cache folder: path, size, state (complete, partial, being
    written, corrupt, foreign, unreadable: a permission), error (why, for corrupt, foreign and unreadable files), and for readable files
    key, cell, task, T, grid, created, checked (format 2: checksummed). check: also read and
    verify every dataset of the complete files (slower)."""
    out = []
    folder = cache_dir()
    if not folder.exists():
        return out
    for path in sorted(folder.glob("*.h5")):
        try:
            entry = {"path": path, "size": path.stat().st_size, "key": "?"}
        except OSError:
            continue  # removed meanwhile
        busy = lock_held(path)
        try:
            check_readable(path)
        except LandscapeError as err:
            entry.update(state="unreadable", error=str(err))
            out.append(entry)
            continue
        try:
            attrs = check_surface_file(path)
            spec = attrs["_spec"]
            entry.update(key=attrs["key"], cell=spec.get("cell"), task=spec.get("task"), T=spec.get("T", []),
                         grid=f"{spec['x']['name']}x{spec['y']['name']} {spec['x']['num']}x{spec['y']['num']}",
                         complete=bool(attrs["complete"]), created=attrs.get("created", ""),
                         checked=int(attrs["format_version"]) >= 2)
            if check and entry["complete"] and not busy:
                read_surface(path, attrs)
            entry["state"] = "being written" if busy else "complete" if entry["complete"] else "partial"
        except CorruptSurface as err:
            entry.update(state="being written") if busy else entry.update(state="corrupt", error=err.reason)
        except (LandscapeError, KeyError, TypeError) as err:
            entry.update(state="being written") if busy else entry.update(state="foreign", error=str(err))
        out.append(entry)
    return out


def removal_refused(path: Path) -> str | None:
    """Why ``cache rm`` may not remove the file at path (None: it may). It removes only files the
    project wrote: a file of the cache folder named as ``cache_path`` names them, damaged or not;
    elsewhere, a file whose root attributes read and whose ``format`` is a landscape surface's. An
    unreadable .h5 outside the cache (a killed training run, someone else's file) is never removed."""
    path = Path(path)
    if path.is_symlink() or not path.is_file():
        return "is not a plain file"
    if path.parent.resolve() == cache_dir().resolve() and CACHE_NAME.fullmatch(path.name):
        return None
    check_readable(path)
    try:
        attrs, _ = read_root(path)
    except CorruptSurface as err:
        return (f"is outside the cache folder and does not read as a file landscape wrote ({err.reason}); "
                f"cache rm removes only files landscape wrote")
    if attrs.get("format") != FORMAT:
        return f"is not a landscape surface file (format={attrs.get('format')!r})"
    return None


def find_cached(ref: str) -> Path:
    """A cache entry by key (or a unique key prefix) or by file path."""
    path = Path(ref)
    if path.suffix == ".h5" and path.exists():
        return path
    hits = [e["path"] for e in cache_entries() if str(e.get("key", "")).startswith(ref) or e["path"].stem == ref]
    if not hits:
        raise LandscapeError(f"no cached surface matches {ref!r}; see `landscape cache ls`")
    if len(hits) > 1:
        raise LandscapeError(f"{ref!r} matches {len(hits)} cached surfaces; give more of the key")
    return hits[0]
