"""Reading a surface file, checked: its root (``check_surface_file``), then everything it holds
(``verify_surface``), as a ``Surface``.

``verify_surface`` checks, on an open file: every dataset reads back through its checksum; the
shapes, the scale values (T, the axes, chunk, component, t) and the attached dimension scales
agree with the spec; the extra groups match their digests (and a plane grid has its plane);
``complete`` is set only when every chunk is done; in every done chunk the values hash to its
``digest`` (format 3: bound to the file's key, the chunk's index and the groups' digests), and
the NaN values counted now equal ``nan_count``. Format-1 files, which cannot be verified, are
refused (``UntrustedFile``).
"""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from ..errors import LandscapeError
from .format import (BOOKKEEPING, DYNAMICS_FIELD_NAMES, FORMAT, PERIOD_FIELDS, PLACE_BOUND_VERSION, READABLE_VERSIONS,
                     SCALES, SURFACE_FORMAT_VERSION, Layout, Surface, chunk_place)
from .integrity import (CorruptSurface, UntrustedFile, check_checksums, check_group_digests, chunk_digest,
                        damage_is_corruption, open_file, read_checked, read_root, scale_names, spec_key)
from .lock import lock_held


def load(path) -> Surface:
    """Read a surface file written by ``landscape grid``, checking it (``verify_surface``):
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
    """Open, read and verify a surface file (``check_surface_file`` then ``verify_surface``)."""
    path = Path(path)
    attrs = attrs if attrs is not None else check_surface_file(path)
    with damage_is_corruption(path):
        with open_file(path) as f:
            return verify_surface(path, f, attrs, Layout.of_file(path, f, attrs))


def check_surface_file(path: Path, locking: bool = False) -> dict:
    """The root attributes of a landscape surface file, checked: an HDF5 file we can open, of our
    format and a version we read, with its datasets, a spec that is JSON and matches its key.
    Besides the attributes: "_spec" (the spec, parsed) and "_datasets" (the root's member names).
    CorruptSurface for a damaged file, LandscapeError for a folder or a foreign file.
    (``locking`` is accepted for older callers; reads never take HDF5's lock.)"""
    path = Path(path)
    if path.is_dir():
        raise LandscapeError(f"{path} is a folder, not a surface file; remove it or choose another --out")
    attrs, names = read_root(path)
    if attrs.get("format") != FORMAT:
        raise LandscapeError(f"{path} is not a landscape surface file (format={attrs.get('format')!r})")
    try:
        version = int(attrs.get("format_version", -1))
    except (TypeError, ValueError):
        raise CorruptSurface(path, f"format_version {attrs.get('format_version')!r} is not a number") from None
    if version > SURFACE_FORMAT_VERSION:
        raise LandscapeError(f"{path} has format version {version}, newer than this landscape "
                             f"({SURFACE_FORMAT_VERSION}); upgrade landscape to read it")
    if version == 1:
        raise UntrustedFile(path, "format version 1, written by an older landscape without checksums or digests")
    if version not in READABLE_VERSIONS:
        raise CorruptSurface(path, f"format_version {version} is not one this landscape wrote")
    missing = [k for k in ("loss", "T", "done", "nan_count", "digest", "chunk") if k not in names]
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
    if "directions" in spec and "plane" not in names:
        raise CorruptSurface(path, "it is a plane grid without its plane (group /plane is missing)")
    attrs["_spec"] = spec
    attrs["_datasets"] = tuple(sorted(names))
    return attrs


def verify_surface(path: Path, f: h5py.File, attrs: dict, layout: Layout) -> Surface:
    """Every check of the module docstring on an open file whose root passed ``check_surface_file``
    (attrs); returns the Surface."""
    version = int(attrs["format_version"])
    nT, nx, ny = len(layout.Ts), len(layout.x), len(layout.y)
    xn, yn = layout.x_name, layout.y_name
    for name in (xn, yn):
        if name not in f:
            raise CorruptSurface(path, f"the axis dataset {name!r} is missing")
    check_checksums(path, f)  # every dataset must carry its checksum
    n = layout.n_chunks
    expect = {"loss": (nT, nx, ny), "T": (nT,), xn: (nx,), yn: (ny,), "done": (n,), "nan_count": (n,),
              "digest": (n,), "chunk": (n,)}
    values = {}
    for name, shape in expect.items():
        ds = f[name]
        if not isinstance(ds, h5py.Dataset) or ds.shape != shape:
            got = ds.shape if isinstance(ds, h5py.Dataset) else "a group"
            raise CorruptSurface(path, f"dataset {name!r} has shape {got}, its spec needs {shape}")
        values[name] = read_checked(path, ds, name)
    if not np.array_equal(values["T"], layout.Ts):
        raise CorruptSurface(path, "its T scale differs from its spec")
    for name, want in ((xn, layout.x), (yn, layout.y)):
        if not np.array_equal(values[name], want):
            raise CorruptSurface(path, f"the axis values of {name!r} differ from its spec")
    if not np.array_equal(values["chunk"], np.arange(n)):
        raise CorruptSurface(path, "its chunk scale is wrong")
    dims = scale_names(path, f["loss"], "loss")
    if dims != ["T", xn, yn]:
        raise CorruptSurface(path, f"loss is not attached to its dimension scales T, {xn}, {yn} (has {dims})")
    for name in BOOKKEEPING:
        if scale_names(path, f[name], name) != ["chunk"]:
            raise CorruptSurface(path, f"{name} is not attached to its dimension scale chunk")
    fields = _read_fields(path, f, layout)
    for name in ("component", "t", "period"):
        if name in f:
            got = read_checked(path, f[name], name)
            base = 0 if name == "component" else 1
            if not np.array_equal(got, np.arange(base, base + len(got))):
                raise CorruptSurface(path, f"its {name} scale is wrong")
    check_group_digests(path, f)  # the extra groups (a plane grid's plane)
    groups = group_digests(f) if version >= PLACE_BOUND_VERSION else None
    done = values["done"].astype(bool)
    complete = bool(attrs["complete"])
    if complete and not done.all():
        raise CorruptSurface(path, f"it is marked complete but {int((~done).sum())} of {len(done)} chunks "
                                   f"are not done")
    per_chunk = _nan_per_chunk(values["loss"], fields, layout)  # (n_chunks,)
    computed_nan = int(per_chunk[done].sum())
    counts = values["nan_count"].astype(np.int64)
    for c in np.nonzero(done)[0]:
        start, stop = layout.chunk_range(c)
        place = None if groups is None else chunk_place(attrs["key"], c, groups)
        if chunk_digest(chunk_values(values["loss"], fields, start, stop), place) != int(values["digest"][c]):
            raise CorruptSurface(path, f"chunk {c} (grid points {start}..{stop - 1}) does not match its digest: "
                                       f"its values were changed, never written, or come from another file or chunk")
    bad = np.nonzero(done & (per_chunk != counts))[0]
    if len(bad):
        c = int(bad[0])
        start, stop = layout.chunk_range(c)
        raise CorruptSurface(path, f"chunk {c} (grid points {start}..{stop - 1}) is marked done but holds "
                                   f"{int(per_chunk[c])} NaN values where {int(counts[c])} were computed: "
                                   f"values were never written or were lost")
    if complete and int(attrs.get("computed_nan", computed_nan)) != computed_nan:
        raise CorruptSurface(path, f"its computed_nan attribute ({attrs.get('computed_nan')}) differs from "
                                   f"its chunks' counts ({computed_nan})")
    public = {k: v for k, v in attrs.items() if not k.startswith("_")}
    return Surface(path, values["loss"], values["T"], xn, values[xn], yn, values[yn], attrs["_spec"],
                   public, done, fields, computed_nan, True, counts)


def group_digests(f: h5py.Group) -> dict[str, int]:
    """The ``digest`` attribute of every subgroup of f (checked by ``check_group_digests``), by name:
    what a format-3 chunk digest binds besides the key and the chunk's index."""
    return {name: int(g.attrs["digest"]) for name, g in f.items() if isinstance(g, h5py.Group)}


def _read_fields(path, f: h5py.File, layout: Layout) -> dict[str, np.ndarray]:
    """The gridded datasets besides loss, by name, each checked to be gridded like loss and
    attached to its dimension scales: per T (nT, nx, ny, *rest) or per grid point (nx, ny, *rest)."""
    nT, nx, ny = len(layout.Ts), len(layout.x), len(layout.y)
    xn, yn = layout.x_name, layout.y_name
    fields = {}
    for name, ds in f.items():
        if name in {xn, yn, *SCALES, "loss", *BOOKKEEPING} or not isinstance(ds, h5py.Dataset):
            continue
        d = scale_names(path, ds, name)
        if ds.shape[:3] == (nT, nx, ny) and d[:3] == ["T", xn, yn]:
            rest = ds.shape[3:]
            if rest and d[3:] != ["component"]:
                raise CorruptSurface(path, f"{name} is not attached to its dimension scale component")
        elif ds.shape[:2] == (nx, ny) and d[:2] == [xn, yn]:
            rest = ds.shape[2:]
            trailing = "period" if name in PERIOD_FIELDS else "t"
            if rest and d[2:] != [trailing]:
                raise CorruptSurface(path, f"{name} is not attached to its dimension scale {trailing}")
        else:
            raise CorruptSurface(path, f"dataset {name!r} of shape {ds.shape} is not gridded like loss")
        fields[name] = read_checked(path, ds, name)
    if layout.grads and "grad" not in fields:
        raise CorruptSurface(path, "its spec has grads but the dataset 'grad' is missing")
    missing = [name for name in DYNAMICS_FIELD_NAMES if name not in fields] if layout.dynamics else []
    if missing:
        raise CorruptSurface(path, f"its spec has dynamics but the dataset {missing[0]!r} is missing")
    return fields


def chunk_values(loss: np.ndarray, fields: dict, start: int, stop: int) -> dict[str, np.ndarray]:
    """The values of flat grid points [start, stop) as ``SurfaceWriter.write_chunk`` takes them:
    loss (nT, P), per-T fields (nT, P, *rest), grid fields (P, *rest)."""
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
