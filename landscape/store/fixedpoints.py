"""The fixed-point file format (`landscape fixedpoints --out FP.h5`), written and read with the
store's discipline: the writer holds the file's lock and creates it whole (a temporary file
renamed into place), every dataset carries its fletcher32 checksum, the metadata is in HDF5's
checksummed formats (``integrity.LIBVER``), and every read verifies the file.

Layout, format version 3 (the datasets and their dimensions: ``DIMENSIONS``):

    /x (I,)                the input values, the dimension scale ``x``
    /<dataset>             per input (first dimension ``x``): points, residual, eigenvalues_*,
                           spectral_radius, stable, stability, kind (0 padding, 1 fixed, 2 slow,
                           3 at the search bound), count, dropped, bound, attractors/*
                           or shared: trajectories, labels, and the index scales (point, state, ...)
    /digest (I,)           dims (x,); uint64: per input i, ``chunk_digest`` of row i of every
                           per-input dataset, bound to the file's key and i (``unit_place``)
    /attractors            a group, its attributes in the spec
    root attributes        format, format_version, spec (canonical JSON: {"attrs": the root's
                           descriptive attributes, "groups": each group's attributes}), key (its
                           hash, ``spec_key``), shared_digest (the shared datasets' digest, bound
                           to the key), and the descriptive attributes themselves (cell, task, ...)

Text datasets (stability, attractors/kind) are fixed-length ASCII. A file written before version 2
(no ``format_version``: no checksums or digests) cannot be verified and is refused
(``UntrustedFile``); so is one of version 2, whose slow points may be points at the search bound
(it had no kind 3 and no ``bound``; ``OLD_VERSIONS`` says why each is refused). The checks catch accidents (bit rot, torn writes, copies between files), not
a person who rewrites a file and its digests on purpose.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from ..errors import LandscapeError
from .files import checksummed_dataset, create_whole, writing
from .integrity import (CorruptSurface, UntrustedFile, check_checksums, chunk_digest, damage_is_corruption,
                        open_file, read_checked, read_root, spec_key, unit_place)
from .lock import locked

FIXED_POINTS_FORMAT = "landscape-fixedpoints"  # the root attribute ``format``
FIXED_POINTS_FORMAT_VERSION = 3  # the root attribute ``format_version`` (before it: none, version 1)
OLD_VERSIONS = {2: "format version 2, which counted points at the search bound as slow points"}  # refused, and why
REWRITE = "compute it again with `landscape fixedpoints ... --out FILE` (or remove it)"  # the way out

# the dimensions of every dataset of a fixed-point file (xarray / h5netcdf read them as names)
DIMENSIONS = {
    "x": ("x",), "count": ("x",), "dropped": ("x",), "bound": ("x",),
    "points": ("x", "point", "state"), "residual": ("x", "point"), "spectral_radius": ("x", "point"),
    "stable": ("x", "point"), "stability": ("x", "point"), "kind": ("x", "point"),
    "eigenvalues_real": ("x", "point", "mode"), "eigenvalues_imag": ("x", "point", "mode"),
    "eigenvalues_abs": ("x", "point", "mode"),
    "trajectories": ("t", "sequence", "state"), "labels": ("sequence",),
    "attractors/ends": ("x", "start", "state"), "attractors/kind": ("x", "start"),
    "attractors/fixed": ("x", "attractor", "state"), "attractors/cycles": ("x", "cycle", "phase", "state"),
}
REQUIRED = ("x", "count", "dropped", "bound", "points", "residual", "spectral_radius", "stable", "stability", "kind",
            "eigenvalues_real", "eigenvalues_imag", "eigenvalues_abs", "trajectories")
GROUPS = ("attractors",)
OWN_ATTRS = ("format", "format_version", "spec", "key", "shared_digest")  # the root attributes not in the spec


@dataclass(frozen=True)
class FixedPointFile:
    """A fixed-point file as read and verified: its descriptive root attributes (cell, task, ...),
    each group's attributes, and every dataset by path (``DIMENSIONS``; "attractors/ends", ...)."""

    path: Path
    key: str
    attrs: dict
    group_attrs: dict
    data: dict

    def __repr__(self):
        return (f"FixedPointFile({self.attrs.get('cell')} on {self.attrs.get('task')}, {len(self.data['x'])} "
                f"inputs, {self.path})")


def write_fixed_point_file(path: Path, attrs: dict, datasets: dict[str, np.ndarray],
                           group_attrs: dict[str, dict]) -> None:
    """Write a fixed-point file whole under its lock: ``attrs`` the descriptive root attributes
    (plain JSON values), ``datasets`` by path (``DIMENSIONS``; text as fixed-length bytes),
    ``group_attrs`` each group's attributes."""
    path = Path(path)
    spec_json = json.dumps({"attrs": attrs, "groups": group_attrs}, sort_keys=True, separators=(",", ":"))
    key = spec_key(spec_json)

    def write(f: h5py.File) -> None:
        f.attrs.update({"format": FIXED_POINTS_FORMAT, "format_version": FIXED_POINTS_FORMAT_VERSION,
                        "spec": spec_json, "key": key, **attrs})
        for name, values in group_attrs.items():
            f.create_group(name).attrs.update(values)
        for name, values in datasets.items():
            _dataset(f, name, np.asarray(values))
        scales = _name_dimensions(f)
        per_input, shared = _units(f)
        digest = [chunk_digest(_numbers({n: f[n][i] for n in per_input}), unit_place(key, f"input {i}"))
                  for i in range(len(f["x"]))]
        _dataset(f, "digest", np.asarray(digest, dtype=np.uint64)).dims[0].attach_scale(scales["x"])
        f.attrs["shared_digest"] = np.uint64(chunk_digest(_numbers({n: f[n][()] for n in shared}),
                                                          unit_place(key, "shared")))

    with locked(path), writing():
        create_whole(path, write)


def check_fixed_point_file(path) -> None:
    """Verify a fixed-point file (``read_fixed_point_file``): None, or the one-line error."""
    read_fixed_point_file(path)


def read_fixed_point_file(path) -> FixedPointFile:
    """Read a fixed-point file and verify everything it holds: its root (format, version, spec
    against key, every descriptive attribute against the spec), its members (the datasets and
    groups of the format, nothing missing or added), every dataset through its checksum, the
    dimensions' lengths and index scales, and the digests (per input and shared, bound to the key
    and the position). CorruptSurface (one line, naming the file and the fix) if anything fails,
    UntrustedFile for a file of version 1, LandscapeError for a foreign file."""
    path = Path(path)
    if not path.exists():
        raise LandscapeError(f"no such file: {path}")
    if path.is_dir():
        raise LandscapeError(f"{path} is a folder, not a fixed-point file")
    attrs, _ = read_root(path)
    if attrs.get("format") != FIXED_POINTS_FORMAT:
        raise LandscapeError(f"{path} is not a landscape fixed-point file (format={attrs.get('format')!r})")
    if "format_version" not in attrs:
        raise UntrustedFile(path, "written by an older landscape, without checksums or digests", REWRITE)
    version = attrs["format_version"]
    if isinstance(version, int) and version in OLD_VERSIONS:
        raise UntrustedFile(path, f"written by an older landscape: {OLD_VERSIONS[version]}", REWRITE)
    if not isinstance(version, int) or version != FIXED_POINTS_FORMAT_VERSION:
        if isinstance(version, int) and version > FIXED_POINTS_FORMAT_VERSION:
            raise LandscapeError(f"{path} has format version {version}, newer than this landscape "
                                 f"({FIXED_POINTS_FORMAT_VERSION}); upgrade landscape to read it")
        raise _corrupt(path, f"format_version {version!r} is not one this landscape wrote")
    spec = _spec(path, attrs)
    with damage_is_corruption(path), open_file(path) as f:
        return _verify(path, f, attrs, spec)


def _spec(path: Path, attrs: dict) -> dict:
    """The file's spec, checked against its key and the descriptive root attributes."""
    for name in ("spec", "key", "shared_digest"):
        if name not in attrs:
            raise _corrupt(path, f"root attribute {name!r} is missing")
    try:
        spec = json.loads(attrs["spec"])
        if not (isinstance(spec, dict) and isinstance(spec.get("attrs"), dict) and isinstance(spec.get("groups"), dict)):
            raise ValueError
    except (TypeError, ValueError):
        raise _corrupt(path, "its spec attribute is not the JSON it wrote") from None
    if spec_key(attrs["spec"]) != attrs["key"]:
        raise _corrupt(path, "its spec does not match its key")
    described = {k: v for k, v in attrs.items() if k not in OWN_ATTRS}
    for name in sorted(set(described) | set(spec["attrs"])):
        if name not in spec["attrs"] or _plain(described.get(name)) != spec["attrs"][name]:
            raise _corrupt(path, f"root attribute {name!r} differs from its spec")
    return spec


def _verify(path: Path, f: h5py.File, attrs: dict, spec: dict) -> FixedPointFile:
    for name, item in _items(f):
        if not isinstance(item, (h5py.Group, h5py.Dataset)):
            raise _corrupt(path, f"member {name!r} cannot be read")
    groups = {name for name, item in f.items() if isinstance(item, h5py.Group)}
    if groups != set(spec["groups"]):
        raise _corrupt(path, f"its groups ({', '.join(sorted(groups)) or 'none'}) differ from its spec "
                             f"({', '.join(sorted(spec['groups'])) or 'none'})")
    group_attrs = {}
    for name in sorted(groups):
        check_checksums(path, f[name])
        group_attrs[name] = {k: _plain(v) for k, v in f[name].attrs.items()}
        if group_attrs[name] != spec["groups"][name]:
            raise _corrupt(path, f"the attributes of group {name!r} differ from its spec")
    check_checksums(path, f)
    members = {f"{g}/{n}" if g else n: item for g, group in [("", f), *((g, f[g]) for g in sorted(groups))]
               for n, item in group.items() if not isinstance(item, h5py.Group)}
    missing = [name for name in (*REQUIRED, "digest") if name not in members]
    if missing:
        raise _corrupt(path, f"dataset {missing[0]!r} is missing")
    sizes = _dimension_sizes(path, members)
    for name in members:
        if name not in DIMENSIONS and name != "digest" and name not in sizes:
            raise _corrupt(path, f"dataset {name!r} is not one this landscape wrote")
    if members["digest"].shape != (sizes["x"],):
        raise _corrupt(path, f"dataset 'digest' has shape {members['digest'].shape}, its inputs need ({sizes['x']},)")
    data = {name: read_checked(path, ds, name) for name, ds in members.items()}
    for dim, n in sizes.items():
        if dim != "x" and not (dim in data and np.array_equal(data[dim], np.arange(n) + (dim == "t"))):
            raise _corrupt(path, f"its dimension scale {dim!r} is missing or wrong")
    per_input, shared = _units(f)
    key = attrs["key"]
    for i in range(sizes["x"]):
        if chunk_digest(_numbers({n: data[n][i] for n in per_input}), unit_place(key, f"input {i}")) \
                != int(data["digest"][i]):
            raise _corrupt(path, f"input {i} does not match its digest: its values were changed or come from "
                                 f"another file or input")
    if chunk_digest(_numbers({n: data[n] for n in shared}), unit_place(key, "shared")) != int(attrs["shared_digest"]):
        raise _corrupt(path, "its sequences or scales do not match their digest")
    described = {k: v for k, v in attrs.items() if k not in OWN_ATTRS}
    data.pop("digest")
    return FixedPointFile(path, key, described, group_attrs, {k: v for k, v in data.items() if k in DIMENSIONS})


def _dimension_sizes(path: Path, members: dict) -> dict[str, int]:
    """The length of every dimension the datasets use, checked to agree between them."""
    sizes: dict[str, int] = {}
    for name, dims in DIMENSIONS.items():
        if name in members:
            shape = members[name].shape
            if len(shape) != len(dims):
                raise _corrupt(path, f"dataset {name!r} has shape {shape}, the format needs dimensions {dims}")
            for dim, n in zip(dims, shape):
                if sizes.setdefault(dim, n) != n:
                    raise _corrupt(path, f"dimension {dim!r} of {name!r} has length {n}, elsewhere {sizes[dim]}")
    return sizes


def _units(f: h5py.Group) -> tuple[list[str], list[str]]:
    """The datasets of a unit of work per input (first dimension x, ``DIMENSIONS``) and the shared
    ones (every other dataset of the file: the sequences and the index scales), by path."""
    names = [n for n, item in _datasets(f) if n != "digest"]
    per_input = [n for n in names if DIMENSIONS.get(n, ("",))[0] == "x"]
    return per_input, [n for n in names if n not in per_input]


def _items(f: h5py.Group):
    """(path, item) of every member of the file, the root's and its groups' (item None where HDF5
    cannot say what it is)."""
    for name, item in f.items():
        yield name, item
        if isinstance(item, h5py.Group):
            yield from ((f"{name}/{n}", it) for n, it in item.items())


def _datasets(f: h5py.Group):
    """(path, dataset) of every dataset of the file, the root's and its groups'."""
    for name, item in f.items():
        if isinstance(item, h5py.Group):
            yield from ((f"{name}/{n}", ds) for n, ds in item.items() if isinstance(ds, h5py.Dataset))
        else:
            yield name, item


def _numbers(values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Values as ``chunk_digest`` takes them: fixed-length text as its bytes (..., itemsize)."""
    out = {}
    for name, v in values.items():
        v = np.asarray(v)
        out[name] = v.view(np.uint8).reshape(*v.shape, v.dtype.itemsize) if v.dtype.kind == "S" else v
    return out


def _dataset(f: h5py.Group, name: str, values: np.ndarray) -> h5py.Dataset:
    """A checksummed dataset holding values (one with an empty axis is resizable: HDF5 wants a
    chunk no longer than a fixed axis)."""
    if values.size:
        return checksummed_dataset(f, name, values.shape, values.dtype, b"" if values.dtype.kind == "S" else 0,
                                   data=values)
    return f.create_dataset(name, shape=values.shape, dtype=values.dtype, chunks=tuple(max(1, n) for n in values.shape),
                            maxshape=tuple(None if n == 0 else n for n in values.shape), fletcher32=True)


def _name_dimensions(f: h5py.File) -> dict[str, h5py.Dataset]:
    """Attach a named dimension scale to every axis of every dataset (``DIMENSIONS``): ``x`` is
    its own scale (the input values), the others are index scales 0, 1, ... (``t`` 1, 2, ...)
    created at the root. Returns the scales by dimension."""
    sizes: dict[str, int] = {}
    for name, dims in DIMENSIONS.items():
        if name in f:
            for dim, n in zip(dims, f[name].shape):
                if sizes.setdefault(dim, n) != n:  # pragma: no cover - a layout bug
                    raise ValueError(f"dimension {dim!r} of {name} has length {n}, elsewhere {sizes[dim]}")
    scales = {}
    for dim, n in sizes.items():
        ds = f["x"] if dim == "x" else _dataset(f, dim, np.arange(n) + (dim == "t"))
        ds.make_scale(dim)
        scales[dim] = ds
    for name, dims in DIMENSIONS.items():
        if name in f and name not in scales:
            for k, dim in enumerate(dims):
                f[name].dims[k].attach_scale(scales[dim])
    return scales


def _plain(value):
    """An attribute value as its JSON would hold it (numpy scalars as Python ones)."""
    return value.item() if isinstance(value, np.generic) else value


def _corrupt(path: Path, reason: str) -> CorruptSurface:
    return CorruptSurface(path, reason, REWRITE)
