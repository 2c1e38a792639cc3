"""The HDF5 surface format: its names and constants, ``Layout`` (the grid a file holds) and
``Surface`` (a surface as read).

File layout, format version 3 (readable by plain h5py, and by xarray through h5netcdf with every
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
                                   every gridded dataset, bound to its place: the file's key, the
                                   chunk's index and the extra groups' digests (``chunk_digest``,
                                   ``chunk_place``), written with them
    /chunk           (n_chunks,)   dimension scale 0, 1, ...
    /grad, /hessian_eigvals (nT, nx, ny, 2)  dims (T, <x>, <y>, component)   with --grads
    /grad_norm_t, /grad_norm_c_t (nx, ny, steps)  dims (<x>, <y>, t)          with --grads
    /component (2,) = 0, 1 and /t (steps,) = 1..steps: their dimension scales
    /n_fixed, /n_stable_fixed, /n_marginal, /n_at_bound, /n_degenerate, /unsettled (nx, ny)
                     dims (<x>, <y>)                                              with --dynamics
    /n_cycles, /n_stable_cycles (nx, ny, K)  dims (<x>, <y>, period)              with --dynamics
    /lyapunov        (nT, nx, ny)  dims (T, <x>, <y>)                             with --dynamics
    /period (K,) = 1..K: its dimension scale (the dynamics map: ``landscape.dynamics_map``)
    /<group>         extra groups (a plane grid's /plane: required when the spec has
                     "directions"), each with a ``digest`` attribute
    root attributes  format, format_version, spec (canonical JSON), key, landscape_version,
                     torch_version, device, dtype, created, complete, chunk_size, computed_nan
                     (the file's computed NaN, set with ``complete``), cell, task, path and
                     path_reason (what computed the loss: fused-numba, fused-triton or torch, and
                     why torch; ``engine.computing_path``)

A chunk c holds the flat indices [c * chunk_size, (c + 1) * chunk_size) of the (nx, ny) grid in
row-major ("ij") order.

Integrity (format 3). Every dataset is chunked with HDF5's fletcher32 checksum filter and the file
is written with HDF5's checksummed 1.8 object formats (``integrity``); the chunk index and the
global heap, which HDF5 does not checksum, are covered by the per-chunk ``digest`` and by checking
``spec`` against ``key`` (its hash) and ``format`` against its value. A chunk's digest binds the
file's key and the chunk's index, so a chunk (values, digest and NaN count) copied from another
file or moved within one fails; it binds the digests of the extra groups too, so a plane grid's
plane cannot be exchanged, even with its own digest rewritten. These catch accidents (bit rot,
torn writes, copies between files, killed writers), not a person who rewrites a file and its
digests on purpose. Every read of a surface
(``load``, the cache lookup of ``landscape grid``, ``cache show``, ``plot``) runs every check of
``reader``; a file that fails is ``CorruptSurface``: reported with its path and the way out
(remove it or --force), never served and never overwritten without --force.

NaN. A computed NaN (from finite inputs: 0 * inf, sqrt of a negative, ...) is stored as NaN,
like a value not yet computed; they are told apart by ``done`` and ``nan_count``: in a done chunk
every NaN was computed, and their number was written with the values before the flag. A done
chunk whose NaN count differs (a value never written, or lost) fails the check. The counts per
file and per dataset are the ``computed_nan`` attributes and ``Surface.computed_nan``.

Space: every dataset is allocated, and filled (NaN, False, 0), when the file is created (into a
hidden temporary file renamed into place, ``files.create_whole``), so computing a chunk only
overwrites bytes the file already has: a file that was created is not stopped by a full disk later
(on file systems that overwrite in place; not guaranteed on copy-on-write ones such as btrfs or
ZFS). Where a write still fails, the chunks flagged done stay valid, and the same command resumes.

Older versions. Format 2 files have every check, but their digests are not bound to their place
(``chunk_digest`` without ``place``): they are read and served, never resumed (an incomplete one
is computed again with --force). Format 1 files have no checksums, digests or ``nan_count``: they
cannot be verified, so they are refused (``UntrustedFile``, one line: --force computes them again).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from ..errors import LandscapeError
from .integrity import CorruptSurface, scale_names, unit_place

FORMAT = "landscape-surface"  # the root attribute ``format``
SURFACE_FORMAT_VERSION = 3  # the root attribute ``format_version`` this landscape writes
READABLE_VERSIONS = (2, 3)  # 1 (no checksums or digests) cannot be verified: refused
PLACE_BOUND_VERSION = 3  # the first version whose chunk digests bind the file's key and the chunk's index
SCALES = ("T", "chunk", "component", "t", "period")  # dimension scales besides the two axes
BOOKKEEPING = ("done", "nan_count", "digest")  # per chunk, dims (chunk,)
FIELD_NAMES = ("grad", "hessian_eigvals", "grad_norm_t", "grad_norm_c_t")  # the gradient fields
# the dynamics fields (--dynamics): counts per grid point (<x>, <y>), per period (<x>, <y>, period),
# and the largest finite-time Lyapunov exponent per T (T, <x>, <y>)
COUNT_FIELDS = ("n_fixed", "n_stable_fixed", "n_marginal", "n_at_bound", "n_degenerate", "unsettled")
PERIOD_FIELDS = ("n_cycles", "n_stable_cycles")
DYNAMICS_FIELD_NAMES = (*COUNT_FIELDS, *PERIOD_FIELDS, "lyapunov")
RESERVED_NAMES = ("loss", *SCALES, *BOOKKEEPING, *FIELD_NAMES, *DYNAMICS_FIELD_NAMES)  # not usable as axis names


def chunk_place(key: str, c: int, groups: dict[str, int]) -> str:
    """What the digest of chunk c of a surface file binds (format 3): the file's key, the chunk's
    index, and the extra groups' digests by name (a plane grid's plane)."""
    return unit_place(key, f"chunk {int(c)}", {f"group {name}": d for name, d in groups.items()})


@dataclass(frozen=True)
class Layout:
    """The grid a surface file holds: the lengths Ts (nT,), the axes x (nx,) and y (ny,) by name,
    the chunking (chunk_size flat grid points per chunk), and whether it has the gradient fields
    and the dynamics fields."""

    Ts: np.ndarray
    x_name: str
    x: np.ndarray
    y_name: str
    y: np.ndarray
    chunk_size: int
    grads: bool = False
    dynamics: bool = False

    @property
    def n_chunks(self) -> int:
        return -(-len(self.x) * len(self.y) // self.chunk_size)

    def chunk_range(self, c: int) -> tuple[int, int]:
        """The flat grid indices [start, stop) of chunk c."""
        return c * self.chunk_size, min((c + 1) * self.chunk_size, len(self.x) * len(self.y))

    @classmethod
    def of_file(cls, path, f: h5py.File, attrs: dict) -> Layout:
        """The layout the stored spec implies (canonical JSON, ``spec.ResolvedGrid.canonical``);
        for a spec without a grid (a file written by other code through SurfaceWriter, its spec
        still checked against its key) the layout of the file's own dimension scales."""
        spec = attrs["_spec"]
        if all(k in spec for k in ("T", "x", "y")):
            return cls.of_spec(path, spec, attrs["chunk_size"])
        try:
            names = scale_names(path, f["loss"], "loss")
            if "" in names:
                raise KeyError
            Ts, x, y = (np.asarray(f[name][()]) for name in names)
            return cls(Ts.astype(np.int64), names[1], x, names[2], y, int(attrs["chunk_size"]), "grad" in f,
                       "n_cycles" in f)
        except (KeyError, TypeError, ValueError, OSError):
            raise CorruptSurface(path, "its spec does not describe a grid and loss has no dimension scales") from None

    @classmethod
    def of_spec(cls, path, spec: dict, chunk_size) -> Layout:
        """The layout a stored spec (canonical JSON, ``spec.ResolvedGrid.canonical``) implies."""
        from ..spec import Axis

        try:
            axes = [Axis(**{k: spec[a][k] for k in ("name", "lo", "hi", "num", "log")}) for a in ("x", "y")]
            Ts = np.asarray([int(T) for T in spec["T"]], dtype=np.int64)
            size = int(chunk_size)
            if size < 1 or not len(Ts):
                raise ValueError
            values = [a.values() for a in axes]
        except (KeyError, TypeError, ValueError):
            raise CorruptSurface(path, "its spec does not describe a grid") from None
        return cls(Ts, axes[0].name, values[0], axes[1].name, values[1], size, bool(spec.get("grads", False)),
                   "dynamics" in spec)


@dataclass
class Surface:
    """A loss surface with named coordinates, as stored.

    loss (nT, nx, ny); T (nT,); x, y the axis values; x_name, y_name the parameter names;
    fields: other gridded datasets by name (grad, hessian_eigvals, grad_norm_t, ...).
    computed_nan: NaN values the computation produced (counted per chunk, so a NaN in a done chunk
    is always computed, never "missing"); checked: the file was verified through checksums and
    digests (every file read; False for surfaces made in memory).
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
    nan_count: np.ndarray | None = None  # (n_chunks,) computed NaN per chunk

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
        grad and hessian_eigvals (T, x, y, component), grad_norm_t (x, y, t), the dynamics fields
        (x, y), (x, y, period) and lyapunov (T, x, y), done and nan_count (chunk); coordinates T, the
        two axes, component, t, period, chunk; the root attributes (spec as JSON text). Needs xarray
        (``pip install xarray``)."""
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
            elif values.ndim == 2:
                dims = (xn, yn)
            else:
                trailing = "period" if name in PERIOD_FIELDS else "t"
                dims = (xn, yn, trailing)
                coords[trailing] = np.arange(1, values.shape[2] + 1)
            data[name] = (dims, values)
        return xr.Dataset(data, coords=coords, attrs=dict(self.attrs))

    def __repr__(self):
        state = "complete" if self.complete else "incomplete"
        nan = f", {self.computed_nan} computed NaN" if self.computed_nan else ""
        return (f"Surface({self.spec.get('cell')} on {self.spec.get('task')}, loss {self.loss.shape} over "
                f"T x {self.x_name} x {self.y_name}, {state}{nan}"
                f"{'' if self.checked else ', unchecked'}, {self.path})")
