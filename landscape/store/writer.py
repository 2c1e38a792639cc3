"""Writing a surface file: ``SurfaceContents`` says what it holds, ``SurfaceWriter`` creates it
(or resumes it), writes its chunks and marks it complete (the format: ``format``)."""
from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from ..errors import LandscapeError, error_reason
from ..version import __version__, torch_version
from .files import checksummed_dataset, create_whole, writing
from .format import FORMAT, PERIOD_FIELDS, SURFACE_FORMAT_VERSION, Layout, chunk_place
from .integrity import CorruptSurface, chunk_digest, damage_is_corruption, group_digest, open_file, spec_key
from .reader import check_surface_file, group_digests, verify_surface

WRITE_SLAB_BYTES = 4 << 20  # a chunk is written in slabs of whole rows of about this size (bounds HDF5's copies)
STORE_BYTES = WRITE_SLAB_BYTES + (2 << 20)  # the writer's own memory: a slab's copy, HDF5's chunk cache


@dataclass(frozen=True)
class SurfaceContents:
    """What a surface file holds: its spec (canonical JSON; the file's ``key`` is its hash), the
    lengths Ts (nT,), the axes x (nx,) and y (ny,) by name, the chunking (``chunk_size`` flat grid
    points per chunk: a resumed file keeps its own), extra root attributes, the gridded datasets
    besides loss and their dtype, and extra groups.

    ``fields``: name -> trailing shape of extra gridded datasets, e.g. {"grad": (2,)} gives
    grad (nT, nx, ny, 2) and {"lyapunov": ()} lyapunov (nT, nx, ny); a leading "grid" marker means
    (nx, ny, *rest) (e.g. grad_norm_t (nx, ny, steps), dims (<x>, <y>, t); ("grid",): (nx, ny)); the
    grid fields of ``format.PERIOD_FIELDS`` have dims (<x>, <y>, period) instead.
    ``groups``: name -> write(h5py.Group), extra groups written into a new file's layout (e.g. the
    plane of a plane grid); each gets a ``digest`` attribute of its contents, checked on every read.
    """

    spec_json: str
    Ts: tuple[int, ...]
    x_name: str
    x: np.ndarray
    y_name: str
    y: np.ndarray
    chunk_size: int
    attrs: dict = field(default_factory=dict)
    fields: dict = field(default_factory=dict)
    groups: dict[str, Callable[[h5py.Group], None]] = field(default_factory=dict)
    dtype: type = np.float64

    @property
    def key(self) -> str:
        return spec_key(self.spec_json)

    def layout(self, chunk_size: int) -> Layout:
        """The grid of the file, chunked by chunk_size (a resumed file's own)."""
        return Layout(np.asarray(self.Ts, dtype=np.int64), self.x_name, np.asarray(self.x, dtype=np.float64),
                      self.y_name, np.asarray(self.y, dtype=np.float64), chunk_size, "grad" in self.fields,
                      "n_cycles" in self.fields)


class SurfaceWriter:
    """An open surface file being computed: create or resume, write chunks, finish.

    ``verify``: check an existing file before resuming it (the caller may just have done so).
    """

    def __init__(self, path: Path, contents: SurfaceContents, verify: bool = True):
        self.path = Path(path)
        self.contents = contents
        self.fields = contents.fields
        self.computed_nan = 0
        if self.path.exists():
            self.layout = self._resume(verify)
        else:
            self.layout = contents.layout(contents.chunk_size)
            with writing():
                create_whole(self.path, lambda f: _write_new_file(f, contents))
                self.file = open_file(self.path, "r+")
        self.done = self.file["done"][()]
        self.groups = group_digests(self.file)  # what each chunk's digest binds besides the key and its index

    def _resume(self, verify: bool) -> Layout:
        """Open the existing file of the same spec (and format) for writing, checked; its layout."""
        old = check_surface_file(self.path)
        if old.get("spec") != self.contents.spec_json:
            raise LandscapeError(f"{self.path} holds a different surface (key {old.get('key')}); "
                                 f"remove it or pass --force")
        if int(old["format_version"]) < SURFACE_FORMAT_VERSION:
            raise LandscapeError(f"{self.path} is an incomplete file of format version "
                                 f"{old['format_version']} (an older landscape); it is not resumed: pass "
                                 f"--force to compute it again")
        layout = self.contents.layout(int(old["chunk_size"]))
        with damage_is_corruption(self.path):
            self.file = open_file(self.path, "r+")
        try:
            if verify:
                self.computed_nan = verify_surface(self.path, self.file, old, layout).computed_nan
            else:
                self.computed_nan = int(self.file["nan_count"][()][self.file["done"][()]].sum())
        except (OSError, KeyError, RuntimeError, TypeError, IndexError) as err:
            self.file.close()
            raise CorruptSurface(self.path, f"HDF5 cannot read it: {error_reason(err)}") from None
        except BaseException:
            self.file.close()
            raise
        return layout

    def missing(self) -> list[int]:
        return [int(c) for c in np.nonzero(~self.done)[0]]

    def chunk_range(self, c: int) -> tuple[int, int]:
        return self.layout.chunk_range(c)

    def write_chunk(self, c: int, values: dict[str, np.ndarray]) -> None:
        """values: name -> array whose population axis is the chunk's flat indices:
        loss (nT, P), other per-T fields (nT, P, *rest), grid fields (P, *rest); every dataset
        of the file, so that a chunk is never flagged done with a dataset left unwritten."""
        start, stop = self.chunk_range(c)
        expected = {"loss", *self.fields}
        if set(values) != expected:
            raise ValueError(f"chunk {c}: got values for {sorted(values)}, the file holds {sorted(expected)}")
        with writing():
            self._write(c, start, stop, values)

    def _write(self, c, start, stop, values):
        P = stop - start
        nT, ny = len(self.layout.Ts), len(self.layout.y)
        nan = 0
        values = {k: np.asarray(v, dtype=self.file[k].dtype) for k, v in values.items()}
        for name, arr in values.items():
            grid_field = name in self.fields and self.fields[name] and self.fields[name][0] == "grid"
            dataset = self.file[name]
            want = (P, *dataset.shape[2:]) if grid_field else (nT, P, *dataset.shape[3:])
            if arr.shape != want:
                raise ValueError(f"chunk {c}: {name} has shape {arr.shape}, expected {want}")
            nan += int(np.isnan(arr).sum())
            row_bytes = arr.nbytes // max(1, P) * ny
            for i0, i1, j0, j1, p0, p1 in row_blocks(start, stop, ny, WRITE_SLAB_BYTES // max(1, row_bytes)):
                if grid_field:  # (P, *rest) -> (rows, cols, *rest)
                    dataset[i0:i1, j0:j1] = arr[p0:p1].reshape(i1 - i0, j1 - j0, *arr.shape[1:])
                else:  # (nT, P, *rest) -> (nT, rows, cols, *rest)
                    dataset[:, i0:i1, j0:j1] = arr[:, p0:p1].reshape(arr.shape[0], i1 - i0, j1 - j0,
                                                                     *arr.shape[2:])
        self.file["nan_count"][c] = nan
        self.file["digest"][c] = np.uint64(chunk_digest(values, chunk_place(self.contents.key, c, self.groups)))
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
        with writing():
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
        with writing():
            self.file.close()


def _write_new_file(f: h5py.File, contents: SurfaceContents) -> None:
    """Every attribute, dataset, dimension scale and group of a new surface file, allocated and
    filled (NaN, False, 0)."""
    layout = contents.layout(contents.chunk_size)
    f.attrs.update({"format": FORMAT, "format_version": SURFACE_FORMAT_VERSION, "spec": contents.spec_json,
                    "key": contents.key, "landscape_version": __version__,
                    "torch_version": torch_version(), "created": _dt.datetime.now(_dt.timezone.utc)
                    .isoformat(timespec="seconds"), "complete": False,
                    "chunk_size": layout.chunk_size, "computed_nan": np.int64(0), **contents.attrs})
    scales = _write_scales(f, layout, contents.fields)
    shape = (len(layout.Ts), len(layout.x), len(layout.y))
    grid_scales = [scales["T"], scales[layout.x_name], scales[layout.y_name]]
    dtype = contents.dtype
    loss = checksummed_dataset(f, "loss", shape, dtype, np.nan, shrink=(1, 0, 2))
    loss.attrs["description"] = ("loss[k, i, j] at T[k], x[i], y[j]; NaN = not computed unless the "
                                 "chunk's nan_count counts it")
    loss.attrs["computed_nan"] = np.int64(0)
    _attach(loss, grid_scales)
    for name, rest in contents.fields.items():
        if rest and rest[0] == "grid":  # whole series per point
            ds = checksummed_dataset(f, name, (*shape[1:], *rest[1:]), dtype, np.nan)
            _attach(ds, [*grid_scales[1:], *([scales[_trailing(name)]] if len(rest) > 1 else [])])
        else:
            ds = checksummed_dataset(f, name, (*shape, *rest), dtype, np.nan,
                                     shrink=(1, 0, 2, *range(3, 3 + len(rest))))
            _attach(ds, [*grid_scales, *([scales["component"]] if rest else [])])
        ds.attrs["computed_nan"] = np.int64(0)
    n = layout.n_chunks
    done = checksummed_dataset(f, "done", (n,), bool, False)
    done.attrs["description"] = "done[c]: chunk c (flat ij indices c*chunk_size ...) is written"
    count = checksummed_dataset(f, "nan_count", (n,), np.int64, 0)
    count.attrs["description"] = "NaN values computed in chunk c, over every gridded dataset"
    digest = checksummed_dataset(f, "digest", (n,), np.uint64, 0)
    digest.attrs["description"] = "BLAKE2b-64 digest of chunk c's values (landscape.store.chunk_digest)"
    for ds in (done, count, digest):
        _attach(ds, [scales["chunk"]])
    for name, write in contents.groups.items():
        group = f.create_group(name)
        write(group)
        group.attrs["digest"] = np.uint64(group_digest(group))


def _write_scales(f: h5py.File, layout: Layout, fields: dict) -> dict[str, h5py.Dataset]:
    """The dimension scales of a new surface file, by name: T, the two axes, chunk, and the
    fields' component (their widest trailing axis), t (1..steps of the longest series) and period
    (1..K of the dynamics fields)."""
    scale_data = [("T", layout.Ts, "sequence length"),
                  (layout.x_name, layout.x, "grid axis x (first index)"),
                  (layout.y_name, layout.y, "grid axis y (second index)"),
                  ("chunk", np.arange(layout.n_chunks, dtype=np.int64), "chunk of flat ij grid indices")]
    series = {name: rest[-1] for name, rest in fields.items() if len(rest) > 1 and rest[0] == "grid"}
    steps = {n for name, n in series.items() if _trailing(name) == "t"}
    periods = {n for name, n in series.items() if _trailing(name) == "period"}
    if any(rest and rest[0] != "grid" for rest in fields.values()):
        width = max(rest[-1] for rest in fields.values() if rest and rest[0] != "grid")
        scale_data.append(("component", np.arange(width, dtype=np.int64),
                           "last axis of grad (d/dx, d/dy) and hessian_eigvals (ascending)"))
    if steps:
        scale_data.append(("t", np.arange(1, max(steps) + 1, dtype=np.int64), "time step t = 1..steps"))
    if periods:
        scale_data.append(("period", np.arange(1, max(periods) + 1, dtype=np.int64),
                           "cycle period k = 1..K of n_cycles and n_stable_cycles (1: fixed points)"))
    scales = {}
    for name, values, doc in scale_data:
        ds = checksummed_dataset(f, name, values.shape, values.dtype, 0, data=values)
        ds.make_scale(name)
        ds.attrs["description"] = doc
        scales[name] = ds
    return scales


def _trailing(name: str) -> str:
    """The dimension scale of a grid field's last axis: period for the dynamics' per-period counts,
    else t."""
    return "period" if name in PERIOD_FIELDS else "t"


def _attach(ds: h5py.Dataset, scales: list[h5py.Dataset]) -> None:
    """Attach scales[d] to dimension d of ds, labelled with the scale's name."""
    for d, scale in enumerate(scales):
        ds.dims[d].attach_scale(scale)
        ds.dims[d].label = Path(scale.name).name


def row_blocks(start: int, stop: int, ny: int, max_rows: int | None = None):
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
