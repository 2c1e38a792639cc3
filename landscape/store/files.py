"""Writing any file of the store with the same discipline, whatever it holds: created whole (a
hidden temporary file, created exclusively, renamed into place), every dataset chunked with its
fletcher32 checksum and allocated at creation, HDF5's write errors as ``WriteFailed`` and then one
line (``write_failure``). The writer holds the file's lock (``lock.locked``) throughout.
"""
from __future__ import annotations

import errno as _errno
import glob
import math
import os
import re
import secrets
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np

from ..errors import LandscapeError, error_reason
from .integrity import open_file

CHUNK_BYTES = 1 << 18  # HDF5 chunk size of the datasets (each carries its own fletcher32 checksum)


def create_whole(path: Path, write: Callable[[h5py.File], None]) -> None:
    """Create the HDF5 file at path whole or not at all: ``write(f)`` fills a hidden temporary
    file beside it (``exclusive_temp``, opened by ``integrity.open_file``), which then replaces
    path; on any error the temporary file is removed and path is untouched. Call it under path's
    lock (the temporary files a killed writer left are removed then)."""
    tmp = exclusive_temp(path)
    try:
        with open_file(tmp, "w") as f:
            write(f)
        os.replace(tmp, path)  # the file appears whole or not at all
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def exclusive_temp(path: Path) -> Path:
    """A new, empty temporary file .NAME.RANDOM.new beside path, created exclusively (O_EXCL and
    O_NOFOLLOW: a file or symlink planted at that name is never opened, let alone followed) with
    the usual mode (0666 less the umask, as a file created in place would have). The temporary
    files of earlier writers of path (.NAME.*.new, .NAME.new: a killed run's) are removed first:
    unlinked, never followed; call it under path's lock, so none of them is another writer's."""
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*new"):
        try:
            stale.unlink()  # a symlink is removed, not its target
        except OSError:
            pass
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.new")
        try:
            os.close(os.open(tmp, flags, 0o666))
            return tmp
        except FileExistsError:  # a name taken since (48 random bits): draw another
            continue


def checksummed_dataset(f: h5py.Group, name: str, shape, dtype, fill, shrink=None, data=None) -> h5py.Dataset:
    """A chunked, checksummed (fletcher32), fully allocated dataset, filled with ``fill`` at
    creation (or with ``data``). Its HDF5 chunks are about CHUNK_BYTES, cut along the axes of
    ``shrink`` in turn (default: every axis in order)."""
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


def _chunk_shape(shape: tuple[int, ...], itemsize: int, shrink: tuple[int, ...]) -> tuple[int, ...]:
    """An HDF5 chunk of about CHUNK_BYTES: the whole dataset, cut along the axes of ``shrink`` in
    turn (a surface's rows first: a compute chunk covers whole rows, so it touches few HDF5 chunks)."""
    chunk = list(shape)
    for ax in shrink:
        size = itemsize * math.prod(chunk)
        if size <= CHUNK_BYTES:
            break
        most = max(1, CHUNK_BYTES // (size // chunk[ax]))
        chunk[ax] = -(-shape[ax] // -(-shape[ax] // most))  # near-equal pieces: little padding at the edge
    return tuple(max(1, c) for c in chunk)


class WriteFailed(OSError):
    """A write to a file of the store failed (h5py raises RuntimeError or OSError for it)."""


@contextmanager
def writing():
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


def write_failure(path: Path, err: OSError) -> LandscapeError:
    """The one line for a write that failed (a full disk, a lost device)."""
    reason = error_reason(err)
    hint = " (free some space)" if getattr(err, "errno", None) == _errno.ENOSPC or "No space" in reason else ""
    return LandscapeError(f"cannot write {path}: {reason}{hint}; the chunks written so far are kept and "
                          f"the same command resumes from them")
