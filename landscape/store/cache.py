"""The cache of computed surfaces: a folder ($LANDSCAPE_CACHE, else ~/.cache/landscape; read by
``settings.cache_dir``) of NAME-KEY.h5 files, listed with their state and found by key."""
from __future__ import annotations

from pathlib import Path

from ..errors import LandscapeError
from ..settings import cache_dir
from .integrity import CorruptSurface
from .lock import lock_held
from .reader import check_surface_file, read_surface


def cache_path(name: str, key: str) -> Path:
    """The cache file of the surface NAME with spec key KEY."""
    return cache_dir() / f"{name}-{key}.h5"


def cache_entries(check: bool = False) -> list[dict]:
    """One dict per .h5 file in the cache folder: path, size, state (complete, partial, being
    written, corrupt, foreign), error (why, for corrupt and foreign files), and for readable files
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
