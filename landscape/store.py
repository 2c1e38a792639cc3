"""The HDF5 surface format, the cache, resuming and locking.

File layout (readable by plain h5py, and by xarray through h5netcdf):

    /loss            (nT, nx, ny)  NaN where not yet computed; +-inf kept as computed
    /T               (nT,)         dimension scale of loss axis 0
    /<x name>        (nx,)         dimension scale of axis 1, named after its parameter (e.g. w)
    /<y name>        (ny,)         dimension scale of axis 2
    /done            (n_chunks,)   True once a chunk of flat "ij" indices is written
    /grad, /hessian_eigvals, /grad_norm_t, ...   other gridded results, same scales attached
    root attributes  format, format_version, spec (canonical JSON), key, landscape_version,
                     torch_version, device, dtype, created, complete, chunk_size

A chunk c holds the flat indices [c * chunk_size, (c + 1) * chunk_size) of the (nx, ny) grid in
row-major ("ij") order. A process computing a file holds an exclusive lock on .FILE.lock beside
it (fcntl; hidden, so output folders list only the surfaces), so two processes on the same spec never write the same file at once; a killed process
loses its lock, and the next run resumes from the done mask.
"""
from __future__ import annotations

import datetime as _dt
import fcntl
import json
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from .errors import LandscapeError
from .lazy import torch
from .version import __version__

FORMAT = "landscape-surface"
FORMAT_VERSION = 1
WRITE_SLAB_BYTES = 4 << 20  # a chunk is written in slabs of whole rows of about this size (bounds HDF5's copies)


def cache_dir() -> Path:
    """$LANDSCAPE_CACHE, else ~/.cache/landscape."""
    env = os.environ.get("LANDSCAPE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "landscape"


def cache_path(name: str, key: str) -> Path:
    return cache_dir() / f"{name}-{key}.h5"


# ---------------------------------------------------------------------------------------------
# reading


@dataclass
class Surface:
    """A loss surface with named coordinates, as stored.

    loss (nT, nx, ny); T (nT,); x, y the axis values; x_name, y_name the parameter names;
    fields: other gridded datasets by name (grad, hessian_eigvals, grad_norm_t, ...).
    """

    path: Path
    loss: np.ndarray
    T: np.ndarray
    x_name: str
    x: np.ndarray
    y_name: str
    y: np.ndarray
    spec: dict
    attrs: dict
    done: np.ndarray
    fields: dict = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return bool(self.attrs.get("complete", False))

    def at_T(self, T: int) -> np.ndarray:
        """The (nx, ny) loss at length T."""
        hits = np.nonzero(self.T == T)[0]
        if not len(hits):
            raise LandscapeError(f"T={T} is not in this surface; it has T = {', '.join(map(str, self.T))}")
        return self.loss[hits[0]]

    def __repr__(self):
        return (f"Surface({self.spec.get('cell')} on {self.spec.get('task')}, loss {self.loss.shape} over "
                f"T x {self.x_name} x {self.y_name}, {'complete' if self.complete else 'incomplete'}, "
                f"{self.path})")


def check_surface_file(path: Path, locking: bool = True) -> dict:
    """The root attributes of a landscape surface file, or LandscapeError if it is not one.
    locking=False peeks at a file another process may be writing (HDF5 would refuse)."""
    try:
        with h5py.File(path, "r", locking=locking) as f:
            attrs = {k: _attr(v) for k, v in f.attrs.items()}
            missing = [k for k in ("loss", "T", "done") if k not in f]
    except (OSError, ValueError) as err:
        raise LandscapeError(f"{path} is not a readable HDF5 file (corrupt or foreign: {err})") from None
    if attrs.get("format") != FORMAT or missing:
        raise LandscapeError(f"{path} is not a landscape surface file (format={attrs.get('format')!r})")
    if int(attrs.get("format_version", -1)) > FORMAT_VERSION:
        raise LandscapeError(f"{path} has format version {attrs['format_version']}, newer than this "
                             f"landscape ({FORMAT_VERSION}); upgrade landscape to read it")
    return attrs


def load(path) -> Surface:
    """Read a surface file written by ``landscape grid``."""
    path = Path(path)
    if not path.exists():
        raise LandscapeError(f"no such file: {path}")
    attrs = check_surface_file(path)
    with h5py.File(path, "r") as f:
        loss = f["loss"]
        scales = [loss.dims[d][0] for d in range(3)]
        names = [Path(s.name).name for s in scales]
        fields = {k: f[k][()] for k in f if k not in ("loss", "done", *names)
                  and isinstance(f[k], h5py.Dataset) and f[k].ndim >= 3}
        return Surface(path, loss[()], scales[0][()], names[1], scales[1][()], names[2], scales[2][()],
                       json.loads(attrs["spec"]), attrs, f["done"][()], fields)


def _attr(v):
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.generic):
        return v.item()
    return v


def read_base_point(path, shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """Parameter values from an HDF5 file: datasets named after parameters, at the root or under
    /params (e.g. a training result). Only names this cell has are read; shapes must match."""
    path = Path(path)
    if not path.exists():
        raise LandscapeError(f"--base: no such file: {path}")
    out = {}
    try:
        with h5py.File(path, "r") as f:
            groups = [f["params"]] if "params" in f else [f]
            for g in groups:
                for name in shapes:
                    if name in g and isinstance(g[name], h5py.Dataset):
                        value = np.asarray(g[name][()], dtype=np.float64)
                        if value.shape != tuple(shapes[name]):
                            raise LandscapeError(f"--base {path}: {name} has shape {value.shape}, "
                                                 f"this cell needs {tuple(shapes[name])}")
                        out[name] = torch.from_numpy(value)
    except OSError as err:
        raise LandscapeError(f"--base {path} is not a readable HDF5 file ({err})") from None
    if not out:
        raise LandscapeError(f"--base {path} holds none of this cell's parameters ({', '.join(shapes)})")
    return out


# ---------------------------------------------------------------------------------------------
# writing


def lock_path(path: Path) -> Path:
    """The lock file of a surface file: .NAME.lock in the same folder."""
    return path.with_name(f".{path.name}.lock")


@contextmanager
def locked(path: Path, on_wait=None):
    """An exclusive lock on lock_path(path) for the duration; calls on_wait() if it has to wait."""
    with open(lock_path(path), "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait:
                on_wait()
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def check_writable(path: Path) -> None:
    """Fail before any computing if PATH cannot be written (tries a real file: root passes
    os.access checks even on read-only file systems)."""
    parent = path.parent
    if path.is_dir():
        raise LandscapeError(f"{path} is a folder; give a file name ending in .h5")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".landscape-probe-"):
            pass
        if path.exists():
            with open(path, "r+b"):
                pass
    except OSError as err:
        raise LandscapeError(f"cannot write {path}: {err.strerror or err}") from None


class SurfaceWriter:
    """An open surface file being computed: create or resume, write chunks, finish.

    ``fields``: name -> trailing shape of extra gridded datasets, e.g. {"grad": (2,)} gives
    grad (nT, nx, ny, 2); a leading "grid" marker means (nx, ny, *rest) (e.g. grad_norm_t).
    """

    def __init__(self, path: Path, spec_json: str, key: str, Ts, x_name, x_values, y_name, y_values,
                 chunk_size: int, attrs: dict, fields: dict | None = None, dtype=np.float64):
        self.path = Path(path)
        self.key = key
        self.nT, self.nx, self.ny = len(Ts), len(x_values), len(y_values)
        self.fields = fields or {}
        exists = self.path.exists()
        if exists:
            old = check_surface_file(self.path)
            if old.get("spec") != spec_json:
                raise LandscapeError(f"{self.path} holds a different surface (key {old.get('key')}); "
                                     f"remove it or pass --force")
            self.file = h5py.File(self.path, "r+")
            self.chunk_size = int(self.file.attrs["chunk_size"])
        else:
            self.chunk_size = chunk_size
            self.file = self._create(spec_json, Ts, x_name, x_values, y_name, y_values, attrs, dtype)
        self.done = self.file["done"][()]

    def _create(self, spec_json, Ts, x_name, x_values, y_name, y_values, attrs, dtype):
        tmp = self.path.with_name(self.path.name + ".new")
        try:
            self._write_layout(tmp, spec_json, Ts, x_name, x_values, y_name, y_values, attrs, dtype)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, self.path)  # the file appears whole or not at all
        return h5py.File(self.path, "r+")

    def _write_layout(self, tmp, spec_json, Ts, x_name, x_values, y_name, y_values, attrs, dtype):
        f = h5py.File(tmp, "w")
        f.attrs.update({"format": FORMAT, "format_version": FORMAT_VERSION, "spec": spec_json,
                        "key": self.key, "landscape_version": __version__,
                        "torch_version": str(torch.__version__), "created": _dt.datetime.now(_dt.timezone.utc)
                        .isoformat(timespec="seconds"), "complete": False,
                        "chunk_size": self.chunk_size, **attrs})
        scales = []
        for name, values, doc in (("T", np.asarray(Ts, dtype=np.int64), "sequence length"),
                                  (x_name, np.asarray(x_values, dtype=np.float64), "grid axis x (first index)"),
                                  (y_name, np.asarray(y_values, dtype=np.float64), "grid axis y (second index)")):
            ds = f.create_dataset(name, data=values)
            ds.make_scale(name)
            ds.attrs["description"] = doc
            scales.append(ds)
        shape = (self.nT, self.nx, self.ny)
        loss = f.create_dataset("loss", shape=shape, dtype=dtype, fillvalue=np.nan)
        loss.attrs["description"] = "loss[k, i, j] at T[k], x[i], y[j]; NaN = not computed"
        self._attach(loss, scales)
        for name, rest in self.fields.items():
            if rest and rest[0] == "grid":
                ds = f.create_dataset(name, shape=(self.nx, self.ny, *rest[1:]), dtype=dtype, fillvalue=np.nan)
                self._attach(ds, scales[1:])
            else:
                ds = f.create_dataset(name, shape=(*shape, *rest), dtype=dtype, fillvalue=np.nan)
                self._attach(ds, scales)
        n = -(-self.nx * self.ny // self.chunk_size)
        f.create_dataset("done", data=np.zeros(n, dtype=bool))
        f.close()

    @staticmethod
    def _attach(ds, scales):
        for d, scale in enumerate(scales):
            ds.dims[d].attach_scale(scale)
            ds.dims[d].label = Path(scale.name).name

    def missing(self) -> list[int]:
        return [int(c) for c in np.nonzero(~self.done)[0]]

    def chunk_range(self, c: int) -> tuple[int, int]:
        return c * self.chunk_size, min((c + 1) * self.chunk_size, self.nx * self.ny)

    def write_chunk(self, c: int, values: dict[str, np.ndarray]) -> None:
        """values: name -> array whose population axis is the chunk's flat indices:
        loss (nT, P), other per-T fields (nT, P, *rest), grid fields (P, *rest)."""
        start, stop = self.chunk_range(c)
        for name, arr in values.items():
            grid_field = name in self.fields and self.fields[name] and self.fields[name][0] == "grid"
            dataset = self.file[name]
            row_bytes = arr.nbytes // max(1, stop - start) * self.ny
            for i0, i1, j0, j1, p0, p1 in _row_blocks(start, stop, self.ny, WRITE_SLAB_BYTES // max(1, row_bytes)):
                if grid_field:  # (P, *rest) -> (rows, cols, *rest)
                    dataset[i0:i1, j0:j1] = arr[p0:p1].reshape(i1 - i0, j1 - j0, *arr.shape[1:])
                else:  # (nT, P, *rest) -> (nT, rows, cols, *rest)
                    dataset[:, i0:i1, j0:j1] = arr[:, p0:p1].reshape(arr.shape[0], i1 - i0, j1 - j0,
                                                                     *arr.shape[2:])
        # the values reach the file before their flag: one flush writes HDF5's caches in its own
        # order, so a process killed inside it could leave a chunk flagged done but still NaN
        self.file.flush()
        self.done[c] = True
        self.file["done"][c] = True
        self.file.flush()

    def finish(self) -> None:
        if self.done.all():
            self.file.attrs["complete"] = True
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def _row_blocks(start: int, stop: int, ny: int, max_rows: int | None = None):
    """Split flat indices [start, stop) of an (nx, ny) grid into rectangles: the partial first
    row, the whole rows (at most ``max_rows`` at a time), the partial last row. Yields (first row,
    end row, first column, end column, offset in the chunk, end offset); each is written with one
    h5py slice."""
    p = start
    while p < stop:
        i, j = divmod(p, ny)
        if j == 0 and stop - p >= ny:  # whole rows
            rows = (stop - p) // ny if max_rows is None else min((stop - p) // ny, max(1, max_rows))
            yield i, i + rows, 0, ny, p - start, p - start + rows * ny
            p += rows * ny
        else:  # part of one row
            j1 = min(ny, j + (stop - p))
            yield i, i + 1, j, j1, p - start, p - start + (j1 - j)
            p += j1 - j


# ---------------------------------------------------------------------------------------------
# the cache


def cache_entries() -> list[dict]:
    """One dict per .h5 file in the cache folder: path, key, cell, task, T, shape, complete, size."""
    out = []
    folder = cache_dir()
    if not folder.exists():
        return out
    for path in sorted(folder.glob("*.h5")):
        entry = {"path": path, "size": path.stat().st_size}
        try:
            attrs = check_surface_file(path)
            spec = json.loads(attrs["spec"])
            entry.update(key=attrs["key"], cell=spec["cell"], task=spec["task"], T=spec["T"],
                         grid=f"{spec['x']['name']}x{spec['y']['name']} {spec['x']['num']}x{spec['y']['num']}",
                         complete=bool(attrs["complete"]), created=attrs.get("created", ""))
        except LandscapeError as err:
            entry.update(key="?", error=str(err))
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
