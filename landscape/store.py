"""The HDF5 surface format, the cache, resuming, locking, and the checks that make a cached file
trustworthy.

File layout, format version 2 (readable by plain h5py, and by xarray through h5netcdf with every
dimension named):

    /loss            (nT, nx, ny)  dims (T, <x>, <y>); NaN where not computed *or* computed NaN:
                                   ``nan_count`` tells them apart; +-inf kept as computed
    /T               (nT,)         dimension scale: sequence lengths
    /<x name>        (nx,)         dimension scale of axis 1, named after its parameter (e.g. w)
    /<y name>        (ny,)         dimension scale of axis 2
    /done            (n_chunks,)   dims (chunk,); True once a chunk of flat "ij" indices is written
    /nan_count       (n_chunks,)   dims (chunk,); NaN values *computed* in the chunk, over every
                                   gridded dataset (written with the values, before ``done``)
    /digest          (n_chunks,)   dims (chunk,); uint64 BLAKE2b digest of the chunk's values in
                                   every gridded dataset (``chunk_digest``), written with them
    /chunk           (n_chunks,)   dimension scale 0, 1, ...
    /grad, /hessian_eigvals (nT, nx, ny, 2)  dims (T, <x>, <y>, component)   with --grads
    /grad_norm_t, /grad_norm_c_t (nx, ny, steps)  dims (<x>, <y>, t)          with --grads
    /component (2,) = 0, 1 and /t (steps,) = 1..steps: their dimension scales
    root attributes  format, format_version, spec (canonical JSON), key, landscape_version,
                     torch_version, device, dtype, created, complete, chunk_size, computed_nan
                     (the file's computed NaN, set with ``complete``), cell, task

A chunk c holds the flat indices [c * chunk_size, (c + 1) * chunk_size) of the (nx, ny) grid in
row-major ("ij") order.

Integrity (format 2). Every dataset is chunked with HDF5's fletcher32 checksum filter (a flipped
byte in the data fails its chunk's checksum when read), and the file is written with the HDF5 1.8
object formats (``LIBVER``), whose superblock and object headers carry checksums too (without them
a damaged header can crash HDF5; the 1.10 formats would add checksummed chunk indexes, but their
superblock marks a file "open for write" and a killed writer would leave it unopenable). Two
things are not checksummed by HDF5 and are covered here: the chunk index (a version-1 B-tree; a
damaged entry may point at another chunk's valid, checksummed data) by the per-chunk ``digest``
of the values, and the free-text attributes in HDF5's global heap by checking ``spec`` against
``key`` (its hash) and ``format`` against its value (the others, versions, dates, descriptions,
carry no numbers). Every read of a surface (``load``, the cache lookup of ``landscape grid``,
``cache show``, ``plot``) checks, in ``_verify``: every dataset reads back through its checksum;
the shapes, the scale values (T, the axes, chunk, component, t) and the attached dimension scales
agree with the spec; ``complete`` is set only when every chunk is done; in every done chunk the
values hash to its ``digest``, and the NaN values counted now equal ``nan_count``. A file that
fails is ``CorruptSurface``: reported with its path and the way out (remove it or --force),
never served and never overwritten without --force.

NaN. A computed NaN (from finite inputs: 0 * inf, sqrt of a negative, ...) is stored as NaN,
like a value not yet computed; they are told apart by ``done`` and ``nan_count``: in a done chunk
every NaN was computed, and their number was written with the values before the flag. A done
chunk whose NaN count differs (a value never written, or lost) fails the check above. The counts
per file and per dataset are the ``computed_nan`` attributes and ``Surface.computed_nan``.

Space: every dataset is allocated, and filled (NaN, False, 0), when the file is created
(``_write_layout``, into a hidden temporary file renamed into place), so computing a chunk only
overwrites bytes the file already has: a file that was created is not stopped by a full disk later
(on file systems that overwrite in place; not guaranteed on copy-on-write ones such as btrfs or
ZFS). Where a write still fails, the chunks flagged done stay valid, and the same command resumes.

Locking. A process computing a file holds an exclusive flock on .FILE.lock beside it, so two
processes on the same spec never write the same file at once; a killed process loses its lock,
and the next run resumes from the done mask. The holder removes the lock file when it is done
(``locked`` re-checks after acquiring that the file it locked is still the one at the path).
Reading a complete file takes no lock: complete files are never modified (--force replaces the
file), so a complete result is served from a read-only cache, folder or file system.

Format version 1 (earlier landscape) files have no checksums, digests or ``nan_count``: they are
read with every other check, marked unchecked (``Surface.checked`` False; ``cache ls`` says
"unchecked"); in them NaN means "not computed", so a complete format-1 file holding NaN in a done
chunk is not served from the cache (``landscape grid`` asks for --force). They are not resumed.
"""
from __future__ import annotations

import datetime as _dt
import errno as _errno
import fcntl
import hashlib
import json
import math
import os
import re
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from .errors import LandscapeError, error_reason
from .lazy import torch
from .version import __version__

FORMAT = "landscape-surface"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
LIBVER = ("v108", "latest")  # HDF5 1.8 object formats: checksummed metadata, readable by HDF5 >= 1.8
# (not v110: its superblock marks a file "open for write", and a killed writer would leave it unopenable)
WRITE_SLAB_BYTES = 4 << 20  # a chunk is written in slabs of whole rows of about this size (bounds HDF5's copies)
CHUNK_BYTES = 1 << 18  # HDF5 chunk size of the datasets (each carries its own fletcher32 checksum)
SCALES = ("T", "chunk", "component", "t")  # dimension scales besides the two axes
BOOKKEEPING = ("done", "nan_count", "digest")
FIELD_NAMES = ("grad", "hessian_eigvals", "grad_norm_t", "grad_norm_c_t")  # the gradient fields
RESERVED_NAMES = ("loss", *SCALES, *BOOKKEEPING, *FIELD_NAMES)  # not usable as axis names
STORE_BYTES = WRITE_SLAB_BYTES + (2 << 20)  # the writer's own memory: a slab's copy, HDF5's chunk cache


def cache_dir() -> Path:
    """$LANDSCAPE_CACHE, else ~/.cache/landscape."""
    env = os.environ.get("LANDSCAPE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "landscape"


def cache_path(name: str, key: str) -> Path:
    return cache_dir() / f"{name}-{key}.h5"


class CorruptSurface(LandscapeError):
    """A surface file that fails a check: never served, never overwritten without --force."""

    def __init__(self, path, reason: str):
        self.path, self.reason = Path(path), reason
        super().__init__(f"{path} is corrupt ({reason}); it was not used: remove it, or pass --force "
                         f"to compute it again")


# ---------------------------------------------------------------------------------------------
# reading


@dataclass
class Surface:
    """A loss surface with named coordinates, as stored.

    loss (nT, nx, ny); T (nT,); x, y the axis values; x_name, y_name the parameter names;
    fields: other gridded datasets by name (grad, hessian_eigvals, grad_norm_t, ...).
    computed_nan: NaN values the computation produced (format 2 files count them per chunk, so a
    NaN in a done chunk of a format-2 file is always computed, never "missing"; format 1: the NaN
    in done chunks, which that format cannot tell from values never written); checked: the file
    was verified through checksums (format 2), False for format-1 files and surfaces made in memory.
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
    computed_nan: int = 0
    checked: bool = False
    nan_count: np.ndarray | None = None  # (n_chunks,) computed NaN per chunk (format 2)

    @property
    def complete(self) -> bool:
        return bool(self.attrs.get("complete", False))

    def at_T(self, T: int) -> np.ndarray:
        """The (nx, ny) loss at length T."""
        hits = np.nonzero(self.T == T)[0]
        if not len(hits):
            raise LandscapeError(f"T={T} is not in this surface; it has T = {', '.join(map(str, self.T))}")
        return self.loss[hits[0]]

    def to_xarray(self):
        """An ``xarray.Dataset`` with the file's variables and dimension names: loss (T, x, y),
        grad and hessian_eigvals (T, x, y, component), grad_norm_t (x, y, t), done and nan_count
        (chunk); coordinates T, the two axes, component, t, chunk; the root attributes (spec as
        JSON text). Needs xarray (``pip install xarray``)."""
        try:
            import xarray as xr
        except ImportError:
            raise LandscapeError("Surface.to_xarray needs xarray: pip install xarray") from None
        xn, yn = self.x_name, self.y_name
        coords = {"T": self.T, xn: self.x, yn: self.y, "chunk": np.arange(len(self.done))}
        data = {"loss": (("T", xn, yn), self.loss), "done": (("chunk",), self.done)}
        if self.nan_count is not None:
            data["nan_count"] = (("chunk",), self.nan_count)
        for name, values in self.fields.items():
            if values.shape[:3] == self.loss.shape:
                dims = ("T", xn, yn, *(["component"] if values.ndim == 4 else []))
                if values.ndim == 4:
                    coords["component"] = np.arange(values.shape[3])
            else:
                dims = (xn, yn, "t")
                coords["t"] = np.arange(1, values.shape[2] + 1)
            data[name] = (dims, values)
        return xr.Dataset(data, coords=coords, attrs=dict(self.attrs))

    def __repr__(self):
        state = "complete" if self.complete else "incomplete"
        nan = f", {self.computed_nan} computed NaN" if self.computed_nan else ""
        return (f"Surface({self.spec.get('cell')} on {self.spec.get('task')}, loss {self.loss.shape} over "
                f"T x {self.x_name} x {self.y_name}, {state}{nan}"
                f"{'' if self.checked else ', unchecked'}, {self.path})")


def _open(path: Path, mode: str = "r"):
    """h5py.File without HDF5's own file lock (our lock file orders the writers; HDF5's would make
    a reader fail while a run writes). Where this process already has the file open with HDF5's
    lock (e.g. an xarray dataset), HDF5 wants the same setting: then it is used."""
    try:
        return h5py.File(path, mode, locking=False, libver=LIBVER)
    except OSError as err:
        if "locking flag values don't match" not in str(err):
            raise
        return h5py.File(path, mode, libver=LIBVER)


def check_surface_file(path: Path, locking: bool = False) -> dict:
    """The root attributes of a landscape surface file, checked: an HDF5 file we can open, of our
    format and a version we read, with its datasets, a spec that is JSON and matches its key.
    CorruptSurface for a damaged file, LandscapeError for a folder or a foreign file.
    (``locking`` is accepted for older callers; reads never take HDF5's lock.)"""
    path = Path(path)
    if path.is_dir():
        raise LandscapeError(f"{path} is a folder, not a surface file; remove it or choose another --out")
    try:
        with _open(path) as f:
            _check_global_heaps(path, f)
            attrs = {k: _attr(v) for k, v in f.attrs.items()}
            names = set(f.keys())
    except LandscapeError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError, TypeError, IndexError) as err:
        raise CorruptSurface(path, f"not a readable HDF5 file: {error_reason(err)}") from None
    if attrs.get("format") != FORMAT:
        raise LandscapeError(f"{path} is not a landscape surface file (format={attrs.get('format')!r})")
    try:
        version = int(attrs.get("format_version", -1))
    except (TypeError, ValueError):
        raise CorruptSurface(path, f"format_version {attrs.get('format_version')!r} is not a number") from None
    if version > FORMAT_VERSION:
        raise LandscapeError(f"{path} has format version {version}, newer than this landscape "
                             f"({FORMAT_VERSION}); upgrade landscape to read it")
    if version not in READABLE_VERSIONS:
        raise CorruptSurface(path, f"format_version {version} is not one this landscape wrote")
    missing = [k for k in ("loss", "T", "done", *(("nan_count", "digest", "chunk") if version >= 2 else ()))
               if k not in names]
    if missing:
        raise CorruptSurface(path, f"dataset {missing[0]!r} is missing")
    for key in ("spec", "key", "complete", "chunk_size"):
        if key not in attrs:
            raise CorruptSurface(path, f"root attribute {key!r} is missing")
    spec_text = attrs["spec"]
    try:
        spec = json.loads(spec_text)
        if not isinstance(spec, dict):
            raise ValueError
    except (TypeError, ValueError):
        raise CorruptSurface(path, "its spec attribute is not JSON") from None
    if spec_key(spec_text) != attrs["key"]:
        raise CorruptSurface(path, "its spec does not match its key")
    attrs["_spec"] = spec
    attrs["_datasets"] = tuple(sorted(names))
    return attrs


def spec_key(spec_json: str) -> str:
    """The key of a spec: the first 16 hex digits of the SHA-256 of its canonical JSON (the
    cache file name; ``spec.ResolvedGrid.key`` computes the same)."""
    return hashlib.sha256(str(spec_json).encode("utf-8", "surrogateescape")).hexdigest()[:16]


def _check_global_heaps(path: Path, f: h5py.File) -> None:
    """CorruptSurface if a global heap collection of the file is damaged. The collections hold the
    text attributes (and the dimension-scale references) and carry no checksum; HDF5 2.0 loops
    forever reading a string from a collection whose size field is wrong, so their structure is
    checked here first: "GCOL", version 1, a size of at least 4096 bytes within the file, and
    objects (16-byte header, data padded to 8 bytes) that end, with the free-space object 0, exactly
    at that size (or less than a header before it). The data chunks (found through the checksummed object headers) are not searched."""
    import mmap

    data_regions = []
    for ds in f.values():
        if isinstance(ds, h5py.Dataset) and ds.chunks is not None:
            for i in range(ds.id.get_num_chunks()):
                info = ds.id.get_chunk_info(i)
                data_regions.append((info.byte_offset, info.byte_offset + info.size))
        elif isinstance(ds, h5py.Dataset) and ds.id.get_offset() is not None:
            data_regions.append((ds.id.get_offset(), ds.id.get_offset() + ds.id.get_storage_size()))
    data_regions.sort()
    starts = [a for a, _ in data_regions]
    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            return
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as m:
            at = m.find(b"GCOL")
            while at >= 0:
                k = int(np.searchsorted(starts, at, side="right")) - 1
                if not (k >= 0 and data_regions[k][0] <= at < data_regions[k][1]) and not _heap_ok(m, at):
                    raise CorruptSurface(path, f"the global heap (text attributes) at byte {at} is damaged")
                at = m.find(b"GCOL", at + 4)


def _heap_ok(m, at: int) -> bool:
    if m[at + 4] != 1:
        return False
    size = int.from_bytes(m[at + 8:at + 16], "little")
    if size < 4096 or at + size > len(m):
        return False
    pos = 16
    while pos + 16 <= size:
        index = int.from_bytes(m[at + pos:at + pos + 2], "little")
        length = int.from_bytes(m[at + pos + 8:at + pos + 16], "little")
        if index == 0:  # the free space: the rest of the collection, its header included
            return pos + length == size
        pos += 16 + -(-length // 8) * 8
    return pos <= size  # less than an object header left: no free-space object


@dataclass(frozen=True)
class Layout:
    """What a surface file must hold: the lengths, the axes, the chunking, the extra fields."""

    Ts: np.ndarray
    x_name: str
    x: np.ndarray
    y_name: str
    y: np.ndarray
    chunk_size: int
    grads: bool = False

    @property
    def n_chunks(self) -> int:
        return -(-len(self.x) * len(self.y) // self.chunk_size)

    @classmethod
    def of_file(cls, path, f: h5py.File, attrs: dict) -> Layout:
        """The layout the stored spec implies (canonical JSON, ``spec.ResolvedGrid.canonical``);
        for a spec without a grid (a file written by other code through SurfaceWriter, its spec
        still checked against its key) the layout of the file's own dimension scales."""
        spec = attrs["_spec"]
        if all(k in spec for k in ("T", "x", "y")):
            return cls.of_spec(path, spec, attrs["chunk_size"])
        try:
            names = _dims(path, f["loss"], "loss")
            if "" in names:
                raise KeyError
            Ts, x, y = (np.asarray(f[name][()]) for name in names)
            return cls(Ts.astype(np.int64), names[1], x, names[2], y, int(attrs["chunk_size"]), "grad" in f)
        except (KeyError, TypeError, ValueError, OSError):
            raise CorruptSurface(path, "its spec does not describe a grid and loss has no dimension scales") from None

    @classmethod
    def of_spec(cls, path, spec: dict, chunk_size) -> Layout:
        """The layout a stored spec (canonical JSON, ``spec.ResolvedGrid.canonical``) implies."""
        from .spec import Axis

        try:
            axes = [Axis(**{k: spec[a][k] for k in ("name", "lo", "hi", "num", "log")}) for a in ("x", "y")]
            Ts = np.asarray([int(T) for T in spec["T"]], dtype=np.int64)
            size = int(chunk_size)
            if size < 1 or not len(Ts):
                raise ValueError
            values = [a.values() for a in axes]
        except (KeyError, TypeError, ValueError):
            raise CorruptSurface(path, "its spec does not describe a grid") from None
        return cls(Ts, axes[0].name, values[0], axes[1].name, values[1], size, bool(spec.get("grads", False)))


def load(path) -> Surface:
    """Read a surface file written by ``landscape grid``, checking it (see the module docstring):
    CorruptSurface if it fails; an incomplete file is returned as it is (NaN where not computed)."""
    path = Path(path)
    if not path.exists():
        raise LandscapeError(f"no such file: {path}")
    try:
        return read_surface(path)
    except CorruptSurface:
        if lock_held(path):
            raise LandscapeError(f"{path} is being written by another process; read it when that run "
                                 f"has finished") from None
        raise


def read_surface(path: Path, attrs: dict | None = None) -> Surface:
    """Open, read and verify a surface file (``check_surface_file`` then ``_verify``)."""
    path = Path(path)
    attrs = attrs if attrs is not None else check_surface_file(path)
    with _damage_is_corruption(path):
        with _open(path) as f:
            return _verify(path, f, attrs, Layout.of_file(path, f, attrs))


@contextmanager
def _damage_is_corruption(path):
    """HDF5's errors on a damaged file (h5py raises OSError, KeyError, RuntimeError, ValueError or
    TypeError, depending on the structure hit) as CorruptSurface; our own errors pass."""
    try:
        yield
    except LandscapeError:
        raise
    except (OSError, KeyError, RuntimeError, ValueError, TypeError, IndexError) as err:
        raise CorruptSurface(path, f"HDF5 cannot read it: {error_reason(err)}") from None


def _read(path, ds, name):
    try:
        return ds[()]
    except (OSError, RuntimeError, ValueError) as err:
        raise CorruptSurface(path, f"dataset {name!r} does not read back: {error_reason(err)}") from None


def _dims(path, ds, name) -> list[str]:
    """The names of the scales attached to each dimension of ds ('' where none)."""
    try:
        return [Path(ds.dims[d][0].name).name if len(ds.dims[d]) else "" for d in range(ds.ndim)]
    except (OSError, RuntimeError, ValueError, KeyError, IndexError) as err:
        raise CorruptSurface(path, f"the dimension scales of {name!r} are broken: {error_reason(err)}") from None


def _verify(path: Path, f: h5py.File, attrs: dict, layout: Layout, require: str = "any") -> Surface:
    """Every check of the module docstring on an open file; returns the Surface."""
    version = int(attrs["format_version"])
    checked = version >= 2
    nT, nx, ny = len(layout.Ts), len(layout.x), len(layout.y)
    xn, yn = layout.x_name, layout.y_name
    for name in (xn, yn):
        if name not in f:
            raise CorruptSurface(path, f"the axis dataset {name!r} is missing")
    if checked:  # every dataset must carry its checksum
        for name, ds in f.items():
            if isinstance(ds, h5py.Dataset) and not ds.fletcher32:
                raise CorruptSurface(path, f"dataset {name!r} has no checksum (rewritten by another tool?)")
    expect = {"loss": (nT, nx, ny), "T": (nT,), xn: (nx,), yn: (ny,), "done": (layout.n_chunks,)}
    if checked:
        expect.update(nan_count=(layout.n_chunks,), digest=(layout.n_chunks,), chunk=(layout.n_chunks,))
    values = {}
    for name, shape in expect.items():
        ds = f[name]
        if not isinstance(ds, h5py.Dataset) or ds.shape != shape:
            got = ds.shape if isinstance(ds, h5py.Dataset) else "a group"
            raise CorruptSurface(path, f"dataset {name!r} has shape {got}, its spec needs {shape}")
        values[name] = _read(path, ds, name)
    if not np.array_equal(values["T"], layout.Ts):
        raise CorruptSurface(path, "its T scale differs from its spec")
    for name, want in ((xn, layout.x), (yn, layout.y)):
        if not np.array_equal(values[name], want):
            raise CorruptSurface(path, f"the axis values of {name!r} differ from its spec")
    if checked and not np.array_equal(values["chunk"], np.arange(layout.n_chunks)):
        raise CorruptSurface(path, "its chunk scale is wrong")
    dims = _dims(path, f["loss"], "loss")
    if dims != ["T", xn, yn]:
        raise CorruptSurface(path, f"loss is not attached to its dimension scales T, {xn}, {yn} (has {dims})")
    if checked:
        for name in BOOKKEEPING:
            if _dims(path, f[name], name) != ["chunk"]:
                raise CorruptSurface(path, f"{name} is not attached to its dimension scale chunk")
    fields = {}
    scale_names = {"T", xn, yn, "chunk", "component", "t"}
    for name, ds in f.items():
        if name in scale_names or name in ("loss", *BOOKKEEPING) or not isinstance(ds, h5py.Dataset):
            continue
        if not checked and ds.ndim < 3:  # format 1: fields were recognised by their rank
            continue
        d = _dims(path, ds, name)
        if ds.shape[:3] == (nT, nx, ny) and d[:3] == ["T", xn, yn]:
            rest = ds.shape[3:]
            if checked and rest and d[3:] != ["component"]:
                raise CorruptSurface(path, f"{name} is not attached to its dimension scale component")
        elif ds.shape[:2] == (nx, ny) and d[:2] == [xn, yn]:
            rest = ds.shape[2:]
            if checked and rest and d[2:] != ["t"]:
                raise CorruptSurface(path, f"{name} is not attached to its dimension scale t")
        else:
            raise CorruptSurface(path, f"dataset {name!r} of shape {ds.shape} is not gridded like loss")
        fields[name] = _read(path, ds, name)
    if layout.grads and "grad" not in fields:
        raise CorruptSurface(path, "its spec has grads but the dataset 'grad' is missing")
    if checked:
        for name, want in (("component", None), ("t", None)):
            if name in f:
                got = _read(path, f[name], name)
                base = 0 if name == "component" else 1
                if not np.array_equal(got, np.arange(base, base + len(got))):
                    raise CorruptSurface(path, f"its {name} scale is wrong")
    if checked:  # the extra groups (a plane grid's plane): their contents against their digest
        for name, group in f.items():
            if isinstance(group, h5py.Group):
                if "digest" not in group.attrs:
                    raise CorruptSurface(path, f"group {name!r} has no digest (added by another tool?)")
                if group_digest(group) != int(group.attrs["digest"]):
                    raise CorruptSurface(path, f"group {name!r} does not match its digest")
    done = values["done"].astype(bool)
    complete = bool(attrs["complete"])
    if complete and not done.all():
        raise CorruptSurface(path, f"it is marked complete but {int((~done).sum())} of {len(done)} chunks "
                                   f"are not done")
    per_chunk = _nan_per_chunk(values["loss"], fields, layout)  # (n_chunks,)
    computed_nan = int(per_chunk[done].sum())  # format 1: NaN in done chunks, computed or not (unknown)
    counts = None
    if checked:
        counts = values["nan_count"].astype(np.int64)
        for c in np.nonzero(done)[0]:
            start, stop = c * layout.chunk_size, min((c + 1) * layout.chunk_size, nx * ny)
            if chunk_digest(_chunk_values(values["loss"], fields, start, stop)) != int(values["digest"][c]):
                raise CorruptSurface(path, f"chunk {c} (grid points {start}..{stop - 1}) does not match its digest: "
                                           f"its values were changed or never written")
        bad = np.nonzero(done & (per_chunk != counts))[0]
        if len(bad):
            c = int(bad[0])
            start, stop = c * layout.chunk_size, min((c + 1) * layout.chunk_size, nx * ny)
            raise CorruptSurface(path, f"chunk {c} (grid points {start}..{stop - 1}) is marked done but holds "
                                       f"{int(per_chunk[c])} NaN values where {int(counts[c])} were computed: "
                                       f"values were never written or were lost")
        if complete and int(attrs.get("computed_nan", computed_nan)) != computed_nan:
            raise CorruptSurface(path, f"its computed_nan attribute ({attrs.get('computed_nan')}) differs from "
                                       f"its chunks' counts ({computed_nan})")
    public = {k: v for k, v in attrs.items() if not k.startswith("_")}
    return Surface(path, values["loss"], values["T"], xn, values[xn], yn, values[yn], attrs["_spec"],
                   public, done, fields, computed_nan, checked, counts)


def chunk_digest(values: dict[str, np.ndarray]) -> int:
    """A 64-bit BLAKE2b digest of one chunk's values: name -> array with the chunk's points on
    the population axis (loss (nT, P), per-T fields (nT, P, *rest), grid fields (P, *rest)), in
    name order, as float64 bytes."""
    h = hashlib.blake2b(digest_size=8)
    for name in sorted(values):
        arr = np.asarray(values[name], dtype=np.float64)
        h.update(f"{name}{arr.shape}".encode())
        # the same bytes as the C-ordered array, without copying a strided one (a per-T field
        # read back from the file is one contiguous row per T)
        for part in ([arr] if arr.flags.c_contiguous or arr.ndim < 2 else arr):
            h.update(np.ascontiguousarray(part).data)
    return int.from_bytes(h.digest(), "little")


def group_digest(group: h5py.Group) -> int:
    """A 64-bit BLAKE2b digest of an HDF5 group's datasets (names, shapes, dtypes, values) and
    attributes (but its own ``digest``), recursively, in name order."""
    h = hashlib.blake2b(digest_size=8)

    def add(g):
        for key in sorted(g.attrs):
            if key != "digest":
                h.update(f"@{key}={_attr(g.attrs[key])!r}".encode("utf-8", "surrogateescape"))
        for name in sorted(g):
            item = g[name]
            if isinstance(item, h5py.Group):
                h.update(f"/{name}/".encode())
                add(item)
                continue
            value = np.asarray(item[()])
            h.update(f"{name}{value.shape}{value.dtype.str}".encode())
            h.update(np.ascontiguousarray(value).tobytes() if value.dtype.kind not in "OSU"
                     else repr(value.tolist()).encode("utf-8", "surrogateescape"))

    add(group)
    return int.from_bytes(h.digest(), "little")


def _chunk_values(loss: np.ndarray, fields: dict, start: int, stop: int) -> dict[str, np.ndarray]:
    """The values of flat grid points [start, stop) as ``SurfaceWriter.write_chunk`` takes them."""
    nT, nx, ny = loss.shape
    out = {"loss": loss.reshape(nT, nx * ny)[:, start:stop]}
    for name, v in fields.items():
        if v.shape[:3] == loss.shape:
            out[name] = v.reshape(nT, nx * ny, *v.shape[3:])[:, start:stop]
        else:
            out[name] = v.reshape(nx * ny, *v.shape[2:])[start:stop]
    return out


def _nan_per_chunk(loss: np.ndarray, fields: dict, layout: Layout) -> np.ndarray:
    """(n_chunks,) NaN values in each chunk's grid points, over loss and every field."""
    nT, nx, ny = loss.shape
    per_point = np.isnan(loss).reshape(nT, nx * ny).sum(0)  # (nx * ny,)
    for values in fields.values():
        if values.shape[:3] == loss.shape:
            per_point += np.isnan(values).reshape(nT, nx * ny, -1).sum((0, 2))
        else:
            per_point += np.isnan(values).reshape(nx * ny, -1).sum(1)
    starts = np.arange(0, nx * ny, layout.chunk_size)
    return np.add.reduceat(per_point, starts) if len(starts) else np.zeros(0, dtype=np.int64)


def _attr(v):
    if isinstance(v, bytes):
        return v.decode(errors="replace")
    if isinstance(v, np.generic):
        return v.item()
    return v


# ---------------------------------------------------------------------------------------------
# locking


def lock_path(path: Path) -> Path:
    """The lock file of a surface file: .NAME.lock in the same folder."""
    return path.with_name(f".{path.name}.lock")


@contextmanager
def locked(path: Path, on_wait=None):
    """An exclusive lock on lock_path(path) for the duration; calls on_wait() if it has to wait.
    The lock file is removed on release (while still held); a process that locked a file that
    was removed meanwhile sees that the path now names another file, and locks again."""
    lp = lock_path(path)
    waited = False
    while True:
        fh = open(lp, "a+")
        try:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if on_wait and not waited:
                    on_wait()
                waited = True
                fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                same = os.path.samestat(os.fstat(fh.fileno()), os.stat(lp))
            except FileNotFoundError:
                same = False
        except BaseException:
            fh.close()
            raise
        if same:
            break
        fh.close()
    try:
        yield
    finally:
        try:
            lp.unlink(missing_ok=True)
        except OSError:
            pass
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()


def lock_held(path: Path) -> bool:
    """Whether a process (this one included, through another lock) holds the lock of path now.
    Needs no write access: a read-only cache has no writers and answers False."""
    try:
        fh = open(lock_path(Path(path)), "rb")
    except OSError:
        return False
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:
            return False
        fcntl.flock(fh, fcntl.LOCK_UN)
        return False


# ---------------------------------------------------------------------------------------------
# writing


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


def _chunk_shape(shape: tuple[int, ...], itemsize: int, shrink: tuple[int, ...]) -> tuple[int, ...]:
    """An HDF5 chunk of about CHUNK_BYTES: the whole dataset, cut along the axes of ``shrink`` in
    turn (the rows first: a compute chunk covers whole rows, so it touches few HDF5 chunks)."""
    chunk = list(shape)
    for ax in shrink:
        size = itemsize * math.prod(chunk)
        if size <= CHUNK_BYTES:
            break
        most = max(1, CHUNK_BYTES // (size // chunk[ax]))
        chunk[ax] = -(-shape[ax] // -(-shape[ax] // most))  # near-equal pieces: little padding at the edge
    return tuple(max(1, c) for c in chunk)


def _dataset(f, name, shape, dtype, fill, shrink=None, data=None):
    """A chunked, checksummed, fully allocated dataset (filled at creation)."""
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    dcpl.set_fill_time(h5py.h5d.FILL_TIME_ALLOC)
    itemsize = np.dtype(dtype).itemsize
    chunks = _chunk_shape(tuple(shape), itemsize, tuple(range(len(shape))) if shrink is None else shrink)
    ds = f.create_dataset(name, shape=shape, dtype=dtype, chunks=chunks, fletcher32=True, fillvalue=fill,
                          dcpl=dcpl)
    if data is not None:
        ds[...] = data
    return ds


class WriteFailed(OSError):
    """A write to a surface file failed (h5py raises RuntimeError or OSError for it)."""


@contextmanager
def _writing():
    """h5py's errors while writing (a full disk: RuntimeError "... errno = 28 ...") as WriteFailed,
    with the errno where HDF5's message has one."""
    try:
        yield
    except WriteFailed:
        raise
    except (OSError, RuntimeError) as err:
        code = getattr(err, "errno", None)
        found = re.search(r"errno = (\d+)", str(err))
        code = code or (int(found.group(1)) if found else None)
        raise WriteFailed(code, os.strerror(code) if code else " ".join(str(err).split())) from err


class SurfaceWriter:
    """An open surface file being computed: create or resume, write chunks, finish.

    ``fields``: name -> trailing shape of extra gridded datasets, e.g. {"grad": (2,)} gives
    grad (nT, nx, ny, 2); a leading "grid" marker means (nx, ny, *rest) (e.g. grad_norm_t).
    ``verify``: check an existing file before resuming it (the caller may just have done so).
    ``groups``: name -> write(h5py.Group), extra groups written into a new file's layout (e.g. the
    plane of a plane grid); each gets a ``digest`` attribute of its contents, checked on every read.
    """

    def __init__(self, path: Path, spec_json: str, key: str, Ts, x_name, x_values, y_name, y_values,
                 chunk_size: int, attrs: dict, fields: dict | None = None, dtype=np.float64, verify: bool = True,
                 groups: dict | None = None):
        self.path = Path(path)
        self.key = spec_key(spec_json)  # a file's key is always its spec's hash (``key`` is not used)
        self.nT, self.nx, self.ny = len(Ts), len(x_values), len(y_values)
        self.fields = fields or {}
        self.computed_nan = 0
        if self.path.exists():
            old = check_surface_file(self.path)
            if old.get("spec") != spec_json:
                raise LandscapeError(f"{self.path} holds a different surface (key {old.get('key')}); "
                                     f"remove it or pass --force")
            if int(old["format_version"]) < FORMAT_VERSION:
                raise LandscapeError(f"{self.path} is an incomplete file of format version "
                                     f"{old['format_version']} (an older landscape); it is not resumed: pass "
                                     f"--force to compute it again")
            self.chunk_size = int(old["chunk_size"])
            layout = Layout(np.asarray(Ts, dtype=np.int64), x_name, np.asarray(x_values, dtype=np.float64),
                            y_name, np.asarray(y_values, dtype=np.float64), self.chunk_size, "grad" in self.fields)
            with _damage_is_corruption(self.path):
                self.file = _open(self.path, "r+")
            try:
                if verify:
                    surface = _verify(self.path, self.file, old, layout)
                    self.computed_nan = surface.computed_nan
                else:
                    self.computed_nan = int(self.file["nan_count"][()][self.file["done"][()]].sum())
            except (OSError, KeyError, RuntimeError, TypeError, IndexError) as err:
                self.file.close()
                raise CorruptSurface(self.path, f"HDF5 cannot read it: {error_reason(err)}") from None
            except BaseException:
                self.file.close()
                raise
        else:
            self.chunk_size = chunk_size
            self.groups = groups or {}
            with _writing():
                self.file = self._create(spec_json, Ts, x_name, x_values, y_name, y_values, attrs, dtype)
        self.done = self.file["done"][()]

    def _create(self, spec_json, Ts, x_name, x_values, y_name, y_values, attrs, dtype):
        tmp = self.path.with_name(f".{self.path.name}.new")  # hidden; under the caller's lock
        try:
            self._write_layout(tmp, spec_json, Ts, x_name, x_values, y_name, y_values, attrs, dtype)
            os.replace(tmp, self.path)  # the file appears whole or not at all
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return _open(self.path, "r+")

    def _write_layout(self, tmp, spec_json, Ts, x_name, x_values, y_name, y_values, attrs, dtype):
        with _open(tmp, "w") as f:
            f.attrs.update({"format": FORMAT, "format_version": FORMAT_VERSION, "spec": spec_json,
                            "key": self.key, "landscape_version": __version__,
                            "torch_version": str(torch.__version__), "created": _dt.datetime.now(_dt.timezone.utc)
                            .isoformat(timespec="seconds"), "complete": False,
                            "chunk_size": self.chunk_size, "computed_nan": np.int64(0), **attrs})
            n = -(-self.nx * self.ny // self.chunk_size)
            scale_data = [("T", np.asarray(Ts, dtype=np.int64), "sequence length"),
                          (x_name, np.asarray(x_values, dtype=np.float64), "grid axis x (first index)"),
                          (y_name, np.asarray(y_values, dtype=np.float64), "grid axis y (second index)"),
                          ("chunk", np.arange(n, dtype=np.int64), "chunk of flat ij grid indices")]
            steps = {rest[-1] for rest in self.fields.values() if rest and rest[0] == "grid"}
            if any(rest and rest[0] != "grid" for rest in self.fields.values()):
                width = max(rest[-1] for rest in self.fields.values() if rest and rest[0] != "grid")
                scale_data.append(("component", np.arange(width, dtype=np.int64),
                                   "last axis of grad (d/dx, d/dy) and hessian_eigvals (ascending)"))
            if steps:
                scale_data.append(("t", np.arange(1, max(steps) + 1, dtype=np.int64), "time step t = 1..steps"))
            scales = {}
            for name, values, doc in scale_data:
                ds = _dataset(f, name, values.shape, values.dtype, 0, data=values)
                ds.make_scale(name)
                ds.attrs["description"] = doc
                scales[name] = ds
            shape = (self.nT, self.nx, self.ny)
            grid_scales = [scales["T"], scales[x_name], scales[y_name]]
            loss = _dataset(f, "loss", shape, dtype, np.nan, shrink=(1, 0, 2))
            loss.attrs["description"] = ("loss[k, i, j] at T[k], x[i], y[j]; NaN = not computed unless the "
                                         "chunk's nan_count counts it")
            loss.attrs["computed_nan"] = np.int64(0)
            self._attach(loss, grid_scales)
            for name, rest in self.fields.items():
                if rest and rest[0] == "grid":
                    ds = _dataset(f, name, (self.nx, self.ny, *rest[1:]), dtype, np.nan)  # whole series per point
                    self._attach(ds, [*grid_scales[1:], *([scales["t"]] if len(rest) > 1 else [])])
                else:
                    ds = _dataset(f, name, (*shape, *rest), dtype, np.nan, shrink=(1, 0, 2, *range(3, 3 + len(rest))))
                    self._attach(ds, [*grid_scales, *([scales["component"]] if rest else [])])
                ds.attrs["computed_nan"] = np.int64(0)
            done = _dataset(f, "done", (n,), bool, False)
            done.attrs["description"] = "done[c]: chunk c (flat ij indices c*chunk_size ...) is written"
            count = _dataset(f, "nan_count", (n,), np.int64, 0)
            count.attrs["description"] = "NaN values computed in chunk c, over every gridded dataset"
            digest = _dataset(f, "digest", (n,), np.uint64, 0)
            digest.attrs["description"] = "BLAKE2b-64 digest of chunk c's values (landscape.store.chunk_digest)"
            for ds in (done, count, digest):
                self._attach(ds, [scales["chunk"]])
            for name, write in self.groups.items():
                group = f.create_group(name)
                write(group)
                group.attrs["digest"] = np.uint64(group_digest(group))

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
        loss (nT, P), other per-T fields (nT, P, *rest), grid fields (P, *rest); every dataset
        of the file, so that a chunk is never flagged done with a dataset left unwritten."""
        start, stop = self.chunk_range(c)
        expected = {"loss", *self.fields}
        if set(values) != expected:
            raise ValueError(f"chunk {c}: got values for {sorted(values)}, the file holds {sorted(expected)}")
        with _writing():
            self._write(c, start, stop, values)

    def _write(self, c, start, stop, values):
        P = stop - start
        nan = 0
        values = {k: np.asarray(v, dtype=self.file[k].dtype) for k, v in values.items()}
        for name, arr in values.items():
            grid_field = name in self.fields and self.fields[name] and self.fields[name][0] == "grid"
            dataset = self.file[name]
            want = (P, *dataset.shape[2:]) if grid_field else (self.nT, P, *dataset.shape[3:])
            if arr.shape != want:
                raise ValueError(f"chunk {c}: {name} has shape {arr.shape}, expected {want}")
            nan += int(np.isnan(arr).sum())
            row_bytes = arr.nbytes // max(1, P) * self.ny
            for i0, i1, j0, j1, p0, p1 in _row_blocks(start, stop, self.ny, WRITE_SLAB_BYTES // max(1, row_bytes)):
                if grid_field:  # (P, *rest) -> (rows, cols, *rest)
                    dataset[i0:i1, j0:j1] = arr[p0:p1].reshape(i1 - i0, j1 - j0, *arr.shape[1:])
                else:  # (nT, P, *rest) -> (nT, rows, cols, *rest)
                    dataset[:, i0:i1, j0:j1] = arr[:, p0:p1].reshape(arr.shape[0], i1 - i0, j1 - j0,
                                                                     *arr.shape[2:])
        self.file["nan_count"][c] = nan
        self.file["digest"][c] = np.uint64(chunk_digest(values))
        # the values (and their NaN count) reach the file before their flag: one flush writes
        # HDF5's caches in its own order, so a process killed inside it could leave a chunk
        # flagged done but still NaN
        self.file.flush()
        self.file["done"][c] = True
        self.file.flush()
        self.done[c] = True
        self.computed_nan += nan

    def finish(self) -> None:
        """Mark the file complete when every chunk is done, with its computed NaN counted (per
        dataset in their ``computed_nan`` attributes, in all at the root)."""
        with _writing():
            self._finish()

    def _finish(self) -> None:
        if self.done.all():
            for name in ("loss", *self.fields):
                self.file[name].attrs.modify("computed_nan", np.int64(np.isnan(self.file[name][()]).sum()))
            total = int(self.file["nan_count"][()].sum())
            self.file.attrs.modify("computed_nan", np.int64(total))
            self.file.attrs.modify("complete", True)
        self.file.flush()

    def close(self) -> None:
        with _writing():
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


def write_failure(path: Path, err: OSError) -> LandscapeError:
    """The one line for a write that failed (a full disk, a lost device)."""
    reason = error_reason(err)
    hint = " (free some space)" if getattr(err, "errno", None) == _errno.ENOSPC or "No space" in reason else ""
    return LandscapeError(f"cannot write {path}: {reason}{hint}; the chunks written so far are kept and "
                          f"the same command resumes from them")


# ---------------------------------------------------------------------------------------------
# the cache


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
