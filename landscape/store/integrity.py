"""The checks that make any HDF5 file of the store trustworthy, whatever it holds: opening it safely,
the global-heap guard, checksummed datasets, digests of a unit of work and of a group, the hash of
its metadata. The checks of what a surface file holds are ``reader``'s.

HDF5 covers most of a file: every dataset is chunked with its fletcher32 checksum filter (a flipped
byte in the data fails its chunk's checksum when read), and files are written with the HDF5 1.8
object formats (``LIBVER``), whose superblock and object headers carry checksums too (without them
a damaged header can crash HDF5; the 1.10 formats would add checksummed chunk indexes, but their
superblock marks a file "open for write" and a killed writer would leave it unopenable). Two
things are not checksummed by HDF5 and are covered here: the chunk index (a version-1 B-tree; a
damaged entry may point at another chunk's valid, checksummed data) by a digest of each unit of
work's values (``chunk_digest``) or of a group (``group_digest``), and the free-text attributes in
HDF5's global heap by checking the heap's structure before any read (``check_global_heaps``) and
the text itself against its hash (``spec_key``).
"""
from __future__ import annotations

import errno as _errno
import hashlib
import mmap
import os
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np

from ..errors import LandscapeError, error_reason

LIBVER = ("v108", "latest")  # HDF5 1.8 object formats: checksummed metadata, readable by HDF5 >= 1.8
# (not v110: its superblock marks a file "open for write", and a killed writer would leave it unopenable)


class CorruptSurface(LandscapeError):
    """A file that fails a check: never served, never overwritten without --force. ``fix``: the
    way out the message gives (default: remove it, or --force)."""

    def __init__(self, path, reason: str, fix: str = "remove it, or pass --force to compute it again"):
        self.path, self.reason = Path(path), reason
        super().__init__(f"{path} is corrupt ({reason}); it was not used: {fix}")


class UntrustedFile(CorruptSurface):
    """A file of an older format that cannot be verified (no checksums or digests): not damaged
    as far as anyone knows, but never served as trusted."""

    def __init__(self, path, reason: str, fix: str = "pass --force to compute it again (or remove it)"):
        self.path, self.reason = Path(path), reason
        LandscapeError.__init__(self, f"{path} cannot be verified ({reason}); it was not used: {fix}")


def open_file(path: Path, mode: str = "r") -> h5py.File:
    """h5py.File in the checksummed formats, without HDF5's own file lock (the store's lock file
    orders the writers; HDF5's would make a reader fail while a run writes). Where this process
    already has the file open with HDF5's lock (e.g. an xarray dataset), HDF5 wants the same
    setting: then it is used."""
    try:
        return h5py.File(path, mode, locking=False, libver=LIBVER)
    except OSError as err:
        if "locking flag values don't match" not in str(err):
            raise
        return h5py.File(path, mode, libver=LIBVER)


def check_readable(path: Path) -> None:
    """LandscapeError, one line with the OS's reason, when this user cannot open the file at path
    for reading (a permission, say): such a file is unreadable, not corrupt, and nothing is to be
    removed. Call it before a file of the store is read (HDF5 would report the same failure as a
    file it cannot make sense of). An absent file passes: the reader says so."""
    try:
        os.close(os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)))
    except FileNotFoundError:
        return
    except OSError as err:
        if err.errno == _errno.EISDIR:
            return  # a folder: the reader says what is wrong with it
        raise LandscapeError(f"cannot read {path}: {err.strerror or err} (the file is unreadable, not "
                             f"damaged: check its permissions)") from None


def read_root(path: Path) -> tuple[dict, set[str]]:
    """The root attributes (plain Python values) and the names of the root's members of an HDF5
    file, read after ``check_global_heaps``; CorruptSurface if HDF5 cannot read them, a one-line
    LandscapeError if this user may not read the file (``check_readable``)."""
    check_readable(path)
    try:
        with open_file(path) as f:
            check_global_heaps(path, f)
            return {k: attr_value(v) for k, v in f.attrs.items()}, set(f.keys())
    except LandscapeError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError, TypeError, IndexError) as err:
        raise CorruptSurface(path, f"not a readable HDF5 file: {error_reason(err)}") from None


@contextmanager
def damage_is_corruption(path):
    """HDF5's errors on a damaged file (h5py raises OSError, KeyError, RuntimeError, ValueError or
    TypeError, depending on the structure hit) as CorruptSurface; our own errors pass."""
    try:
        yield
    except LandscapeError:
        raise
    except (OSError, KeyError, RuntimeError, ValueError, TypeError, IndexError) as err:
        raise CorruptSurface(path, f"HDF5 cannot read it: {error_reason(err)}") from None


def read_checked(path, ds: h5py.Dataset, name: str) -> np.ndarray:
    """The whole of ds, read through its checksum; CorruptSurface if it does not read back."""
    try:
        return ds[()]
    except (OSError, RuntimeError, ValueError) as err:
        raise CorruptSurface(path, f"dataset {name!r} does not read back: {error_reason(err)}") from None


def check_checksums(path, f: h5py.Group) -> None:
    """CorruptSurface if a dataset of the group (not its subgroups) has no fletcher32 checksum."""
    for name, ds in f.items():
        if isinstance(ds, h5py.Dataset) and not ds.fletcher32:
            raise CorruptSurface(path, f"dataset {name!r} has no checksum (rewritten by another tool?)")


def check_group_digests(path, f: h5py.Group) -> None:
    """CorruptSurface unless every subgroup of f has a ``digest`` attribute equal to its
    ``group_digest``."""
    for name, group in f.items():
        if isinstance(group, h5py.Group):
            if "digest" not in group.attrs:
                raise CorruptSurface(path, f"group {name!r} has no digest (added by another tool?)")
            if group_digest(group) != int(group.attrs["digest"]):
                raise CorruptSurface(path, f"group {name!r} does not match its digest")


def scale_names(path, ds: h5py.Dataset, name: str) -> list[str]:
    """The names of the dimension scales attached to each dimension of ds ('' where none)."""
    try:
        return [Path(ds.dims[d][0].name).name if len(ds.dims[d]) else "" for d in range(ds.ndim)]
    except (OSError, RuntimeError, ValueError, KeyError, IndexError) as err:
        raise CorruptSurface(path, f"the dimension scales of {name!r} are broken: {error_reason(err)}") from None


def spec_key(spec_json: str) -> str:
    """The key of a spec: the first 16 hex digits of the SHA-256 of its canonical JSON (the
    cache file name; ``spec.ResolvedGrid.key`` computes the same)."""
    return hashlib.sha256(str(spec_json).encode("utf-8", "surrogateescape")).hexdigest()[:16]


def chunk_digest(values: dict[str, np.ndarray], place: str | None = None) -> int:
    """A 64-bit BLAKE2b digest of one unit of work's values: name -> array with the unit's points
    on the population axis (a surface chunk: loss (nT, P), per-T fields (nT, P, *rest), grid fields
    (P, *rest)), in name order, as float64 bytes. ``place`` (``unit_place``) binds the digest to
    the file's key and the unit's position: the values of another file, or of another unit of the
    same file, do not match it (None: unbound, as surface format 2 wrote them)."""
    h = hashlib.blake2b(digest_size=8)
    if place is not None:
        h.update(f"place {place}\n".encode("utf-8", "surrogateescape"))
    for name in sorted(values):
        arr = np.asarray(values[name], dtype=np.float64)
        h.update(f"{name}{arr.shape}".encode())
        # the same bytes as the C-ordered array, without copying a strided one (a per-T field
        # read back from the file is one contiguous row per T)
        for part in ([arr] if arr.flags.c_contiguous or arr.ndim < 2 else arr):
            h.update(np.ascontiguousarray(part).data)
    return int.from_bytes(h.digest(), "little")


def unit_place(key: str, unit, bound: dict[str, int] | None = None) -> str:
    """The place of a unit of work that its digest binds (``chunk_digest``): the file's key, the
    unit's position (a chunk index, an input index, a name), and the digests of what the values
    were computed from (``bound``: name -> digest, e.g. a plane grid's plane group)."""
    extra = "".join(f" {name}={int(d)}" for name, d in sorted((bound or {}).items()))
    return f"key={key} unit={unit}{extra}"


def group_digest(group: h5py.Group) -> int:
    """A 64-bit BLAKE2b digest of an HDF5 group's datasets (names, shapes, dtypes, values) and
    attributes (but its own ``digest``), recursively, in name order."""
    h = hashlib.blake2b(digest_size=8)

    def add(g):
        for key in sorted(g.attrs):
            if key != "digest":
                h.update(f"@{key}={attr_value(g.attrs[key])!r}".encode("utf-8", "surrogateescape"))
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


def attr_value(v):
    """An HDF5 attribute as a plain Python value: bytes decoded, numpy scalars as Python scalars."""
    if isinstance(v, bytes):
        return v.decode(errors="replace")
    if isinstance(v, np.generic):
        return v.item()
    return v


def check_global_heaps(path: Path, f: h5py.File, error: type = None) -> None:
    """CorruptSurface if a global heap collection of the file is damaged. The collections hold the
    text attributes (and the dimension-scale references) and carry no checksum; HDF5 2.0 loops
    forever reading a string from a collection whose size field is wrong, so their structure is
    checked here first: "GCOL", version 1, a size of at least 4096 bytes within the file, and
    objects (16-byte header, data padded to 8 bytes) that end, with the free-space object 0, exactly
    at that size (or less than a header before it). The data of every dataset, in any group (found
    through the checksummed object headers), is not searched. error: the exception class to raise (a
    file kind's own, e.g. ``runs.CorruptRun``; default CorruptSurface)."""
    data_regions = []

    def data_of(_, ds):
        if isinstance(ds, h5py.Dataset) and ds.chunks is not None:
            for i in range(ds.id.get_num_chunks()):
                info = ds.id.get_chunk_info(i)
                data_regions.append((info.byte_offset, info.byte_offset + info.size))
        elif isinstance(ds, h5py.Dataset) and ds.id.get_offset() is not None:
            data_regions.append((ds.id.get_offset(), ds.id.get_offset() + ds.id.get_storage_size()))

    f.visititems(data_of)
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
                    raise (error or CorruptSurface)(path, f"the global heap (text attributes) at byte {at} is damaged")
                at = m.find(b"GCOL", at + 4)


def _heap_ok(m, at: int) -> bool:
    """Whether the global heap collection at byte ``at`` of m is well formed (``check_global_heaps``)."""
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
