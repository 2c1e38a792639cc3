"""The store: the HDF5 files landscape writes, and the discipline that makes them trustworthy.

    format     the surface format: its names and constants, ``Layout`` (the grid a file holds),
               ``Surface`` (a surface as read); the format itself is described there
    integrity  the checks of any file of the store: opened safely, the global-heap guard,
               checksummed datasets, digests of a unit of work bound to its place (``chunk_digest``,
               ``unit_place``) and of a group (``group_digest``), the hash of the spec (``spec_key``);
               ``CorruptSurface``, ``UntrustedFile`` (an older format that cannot be verified)
    files      writing any file of the store: created whole (``create_whole``), checksummed
               datasets allocated at creation, write errors (``WriteFailed``, ``write_failure``)
    lock       one writer per file (``locked``, ``lock_held``), ``check_writable``
    reader     a surface file read and verified: ``check_surface_file``, ``read_surface``, ``load``
    writer     a surface file created or resumed, written chunk by chunk: ``SurfaceContents``
               (what it holds), ``SurfaceWriter``
    runs       a training run file read, verified and written whole: ``check_run_file``,
               ``read_run_file``, ``write_run_file``, ``RunGroup``, ``CorruptRun``
    cache      the cache folder: ``cache_path``, ``cache_entries``, ``find_cached``
"""
from __future__ import annotations

from ..settings import cache_dir
from .cache import cache_entries, cache_path, find_cached
from .files import CHUNK_BYTES, WriteFailed, write_failure
from .format import (BOOKKEEPING, FIELD_NAMES, FORMAT, PLACE_BOUND_VERSION, READABLE_VERSIONS, RESERVED_NAMES,
                     SCALES, SURFACE_FORMAT_VERSION, Layout, Surface, chunk_place)
from .integrity import (LIBVER, CorruptSurface, UntrustedFile, chunk_digest, damage_is_corruption, group_digest,
                        open_file, spec_key, unit_place)
from .lock import check_writable, lock_held, lock_path, locked
from .reader import check_surface_file, load, read_surface
from .runs import RUN_FORMAT, RUN_FORMAT_VERSION, CorruptRun, RunGroup, check_run_file, read_run_file, write_run_file
from .writer import STORE_BYTES, WRITE_SLAB_BYTES, SurfaceContents, SurfaceWriter


__all__ = ["BOOKKEEPING", "CHUNK_BYTES", "FIELD_NAMES", "FORMAT", "LIBVER", "PLACE_BOUND_VERSION",
           "READABLE_VERSIONS", "RESERVED_NAMES", "RUN_FORMAT", "RUN_FORMAT_VERSION", "SCALES", "STORE_BYTES",
           "SURFACE_FORMAT_VERSION", "WRITE_SLAB_BYTES", "CorruptRun", "CorruptSurface", "Layout", "RunGroup", "Surface",
           "SurfaceContents", "SurfaceWriter", "UntrustedFile", "WriteFailed", "cache_dir", "cache_entries",
           "cache_path", "check_run_file", "check_surface_file", "check_writable", "chunk_digest", "chunk_place",
           "damage_is_corruption", "find_cached", "group_digest", "load", "lock_held", "lock_path", "locked",
           "open_file", "read_run_file", "read_surface", "spec_key", "unit_place", "write_failure", "write_run_file"]
