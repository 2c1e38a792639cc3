"""Training run files (`landscape train --out RUN.h5`): read, verified and written under the store's
discipline.

A run file holds one HDF5 group per saved training group under ``/runs/<name>`` (the layout is in
docs/format.md). It is written whole (``write_run_file``: every group, the new one included, into
a hidden temporary file renamed into place, under the file's lock), so a killed writer leaves the
file as it was: the groups saved before stay and the group being written is redone. Every dataset
carries HDF5's fletcher32 checksum and the file HDF5 1.8's checksummed metadata
(``integrity.LIBVER``). Each group has a ``digest`` attribute: a BLAKE2b digest of its contents
(``integrity.group_digest``: attributes, datasets, recursively) bound to the file's ``runs_key``
(the hash of the list of (name, group, run_key) it holds) and to the group's name, so a group
copied from another file, renamed, or left over from another set of groups is refused. Reading
(``read_run_file``) checks the global heaps first (a damaged one makes HDF5 loop forever), then
everything above, and that each group's ``run_key`` is the hash of its ``spec`` and ``members``.

Format version 3 (``landscape train --record-steps K``) may record every K-th step: the ``step``
dimension scale then holds the recorded steps (0, K, 2K, ... and the last) and the ``update`` scale
the update that starts from each of them (step + 1); with K = 1 they are 0..S and 1..S, the layout
of version 2, which is read as before.

A file written before format version 2 (no checksums or digests) is refused with one line saying
how to recompute it. Any failure is one ``CorruptRun`` line naming the file and the fix.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from ..errors import LandscapeError, error_reason
from ..version import __version__
from .files import WriteFailed, checksummed_dataset, create_whole, writing
from .integrity import (CorruptSurface, attr_value, check_global_heaps, damage_is_corruption, group_digest, open_file,
                        read_checked)
from .lock import lock_held

RUN_FORMAT = "landscape-train"  # the root ``format`` attribute of a run file (as written since the first round)
RUN_FORMAT_VERSION = 3  # 1 (no attribute): no checksums or digests; 2: checksummed, digests per group;
# 3: the step and update scales hold the recorded steps (every K-th, ``record_steps``)
RUN_READABLE_VERSIONS = (2, 3)  # version 2 is version 3 with K = 1
PARTS = ("metrics", "params", "step_params", "step_metrics")  # the subgroups of a group, in this order
LEAD = {"metrics": ("epoch", 0, "epoch; 0 is the initial point"),  # part -> (first axis, its first value, doc)
        "params": ("epoch", 0, "epoch; 0 is the initial point"),
        "step_params": ("step", 0, "optimiser step; 0 is the initial point"),
        "step_metrics": ("update", 1, "optimiser step s (the update to step s, from recorded step s - 1)")}
TEXT_ATTRS = ("group", "run_key", "spec", "members", "device")  # the text attributes every group has


class CorruptRun(CorruptSurface):
    """A run file that fails a check: never read, never written over."""

    def __init__(self, path, reason: str):
        super().__init__(path, reason)
        self.args = (f"{path} is not a trustworthy training run ({reason}); it was not used: remove it and "
                     f"run the same `landscape train --out {Path(path).name}` again, or give another --out",)


@dataclass
class RunGroup:
    """One saved training group, as held in memory.

    name     its HDF5 name under /runs (``group_name(group)``)
    group    the group label (``Member.group``, e.g. "srnn-T10"); run_key: the hash of its spec and
             members (``train.population.spec_key``)
    spec, members, rows   JSON text: the TrainSpec's canonical form, the members' and the tidy rows
    arrays   part (``PARTS``) -> name -> array: metrics (E + 1, Pg), params (E + 1, Pg, *shape),
             step_params (R, Pg, *shape), step_metrics (R - 1, Pg); parts not recorded are absent
    steps    (R,) int64 the optimiser steps step_params holds (0, K, 2K, ... and the last), when
             steps were recorded, else None
    cell_source   the hash of the source of a cell from outside landscape (``extensions.source_hash``),
             else None: a run file never names code to import, only a source to match
    """

    group: str
    run_key: str
    spec: str
    members: str
    device: str
    rows: str
    arrays: dict = field(default_factory=dict)
    cell_source: str | None = None
    steps: np.ndarray | None = None

    @property
    def name(self) -> str:
        return group_name(self.group)

    def nbytes(self) -> int:
        return sum(a.nbytes for part in self.arrays.values() for a in part.values()) + len(self.rows)


def group_name(group: str) -> str:
    """The HDF5 name of a group label: characters other than A-Z a-z 0-9 _ . = + - become _."""
    return re.sub(r"[^A-Za-z0-9_.=+-]", "_", group) or "_"


def runs_key(groups) -> str:
    """The key of a run file's contents: a hash of its (name, group, run_key) list, in name order."""
    doc = sorted([name, group, run_key] for name, group, run_key in groups)
    return hashlib.sha256(json.dumps(doc).encode("utf-8", "surrogateescape")).hexdigest()[:16]


def run_key_of(spec: str, members: str) -> str:
    """The run_key that ``train.population.spec_key`` gives the spec and members stored as JSON."""
    doc = {"spec": json.loads(spec), "members": json.loads(members)}
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def bound_digest(key: str, name: str, group: h5py.Group) -> int:
    """A group's digest bound to its file's ``runs_key`` and its name (64 bits)."""
    h = hashlib.blake2b(digest_size=8)
    h.update(f"{key}/{name}/".encode("utf-8", "surrogateescape"))
    h.update(group_digest(group).to_bytes(8, "little"))
    return int.from_bytes(h.digest(), "little")


# --- reading ---------------------------------------------------------------------------------------


def check_run_file(path) -> None:
    """Verify a training run file (everything ``read_run_file`` checks); one-line CorruptRun or
    LandscapeError if it fails."""
    read_run_file(path)


def read_run_file(path) -> list[RunGroup]:
    """Every group of a run file, read and verified (see the module docstring), in name order.
    LandscapeError for a folder, a foreign file or one being written; CorruptRun for a damaged one."""
    path = Path(path)
    if path.is_dir():
        raise LandscapeError(f"{path} is a folder, not a training run; remove it or choose another --out")
    if not path.exists():
        raise LandscapeError(f"no such training run: {path}")
    try:
        return _read(path)
    except CorruptRun:
        if lock_held(path):
            raise LandscapeError(f"{path} is being written by another process; read it when that run "
                                 f"has finished") from None
        raise


def _read(path: Path) -> list[RunGroup]:
    try:
        f = open_file(path)
    except (OSError, ValueError, RuntimeError, KeyError, TypeError, IndexError) as err:
        raise CorruptRun(path, f"not a readable HDF5 file: {error_reason(err)}") from None
    try:
        with f, damage_is_corruption(path):
            check_global_heaps(path, f, CorruptRun)
            attrs = {k: attr_value(v) for k, v in f.attrs.items()}
            if attrs.get("format") != RUN_FORMAT:
                raise LandscapeError(f"{path} is not a landscape training run (format={attrs.get('format')!r})")
            version = attrs.get("format_version")
            if version is None:
                raise LandscapeError(
                    f"{path} is a training run of an older landscape, without checksums or digests, and is not "
                    f"trusted: move it away and run the same `landscape train --out {path.name}` to recompute it")
            if not isinstance(version, int) or isinstance(version, bool) or version not in RUN_READABLE_VERSIONS:
                if isinstance(version, int) and version > RUN_FORMAT_VERSION:
                    raise LandscapeError(f"{path} has run format version {version}, newer than this landscape "
                                         f"({RUN_FORMAT_VERSION}); upgrade landscape to read it")
                raise CorruptRun(path, f"format_version {version!r} is not one this landscape wrote")
            if set(f) != {"runs"} or not isinstance(f["runs"], h5py.Group):
                raise CorruptRun(path, f"it holds {sorted(f)} at its root, not one group 'runs'")
            runs = f["runs"]
            found = [_read_group(path, name, runs[name], version) for name in sorted(runs)]
            key = runs_key((g.name, g.group, g.run_key) for g in found)
            if attrs.get("runs_key") != key:
                raise CorruptRun(path, "its list of groups does not match its runs_key (a group added, removed "
                                       "or copied from another file?)")
            for g in found:
                if int(runs[g.name].attrs["digest"]) != bound_digest(key, g.name, runs[g.name]):
                    raise CorruptRun(path, f"group {g.name!r} does not match its digest")
            return found
    except CorruptRun:
        raise
    except CorruptSurface as err:
        raise CorruptRun(path, err.reason) from None


def _read_group(path: Path, name: str, g, version: int) -> RunGroup:
    """One group, read through its checksums and checked for shape; its digest is checked after."""
    if not isinstance(g, h5py.Group):
        raise CorruptRun(path, f"/runs/{name} is not a group")
    attrs = {k: attr_value(v) for k, v in g.attrs.items()}
    missing = [k for k in (*TEXT_ATTRS, "complete", "digest") if k not in attrs]
    if missing:
        raise CorruptRun(path, f"group {name!r} has no attribute {missing[0]!r}")
    if not all(isinstance(attrs[k], str) for k in TEXT_ATTRS) or attrs["complete"] not in (True, 1) \
            or not isinstance(attrs["digest"], int):
        raise CorruptRun(path, f"the attributes of group {name!r} have the wrong types")
    if group_name(attrs["group"]) != name:
        raise CorruptRun(path, f"group {name!r} is labelled {attrs['group']!r} (moved within the file?)")
    for key, kind in (("spec", dict), ("members", list)):
        try:
            value = json.loads(attrs[key])
        except ValueError:
            raise CorruptRun(path, f"the {key} of group {name!r} is not JSON") from None
        if not isinstance(value, kind) or key == "spec" and not isinstance(value.get("cell"), str) \
                or key == "members" and not all(isinstance(m, dict) for m in value):
            raise CorruptRun(path, f"the {key} of group {name!r} is not a training run's")
    if run_key_of(attrs["spec"], attrs["members"]) != attrs["run_key"]:
        raise CorruptRun(path, f"the run_key of group {name!r} is not the hash of its spec and members")
    n_members = len(json.loads(attrs["members"]))
    arrays, scales = {}, {}
    for item_name, item in g.items():
        if isinstance(item, h5py.Group):
            if item_name not in PARTS:
                raise CorruptRun(path, f"group {name!r} holds an unknown group {item_name!r}")
            arrays[item_name] = {k: _read_dataset(path, f"{name}/{item_name}/{k}", v) for k, v in item.items()}
        elif item_name != "rows":
            scales[item_name] = _read_dataset(path, f"{name}/{item_name}", item)
    if "rows" not in g or not isinstance(g["rows"], h5py.Dataset) or g["rows"].shape != ():
        raise CorruptRun(path, f"group {name!r} has no rows")
    rows = g["rows"][()]
    rows = rows.decode("utf-8", "surrogateescape") if isinstance(rows, bytes) else rows
    try:
        if not isinstance(json.loads(rows), list):
            raise ValueError
    except (TypeError, ValueError):
        raise CorruptRun(path, f"the rows of group {name!r} are not a JSON list") from None
    steps = _check_shapes(path, name, arrays, scales, n_members)
    if version == 2 and steps is not None and not np.array_equal(steps, np.arange(len(steps))):
        raise CorruptRun(path, f"group {name!r} records every K-th step, which format version 2 cannot hold")
    return RunGroup(attrs["group"], attrs["run_key"], attrs["spec"], attrs["members"], attrs["device"], rows,
                    arrays, attrs.get("cell_source"), steps)


def _read_dataset(path, name: str, ds) -> np.ndarray:
    if not isinstance(ds, h5py.Dataset):
        raise CorruptRun(path, f"{name} is not a dataset")
    if not ds.fletcher32:
        raise CorruptRun(path, f"dataset {name!r} has no checksum (rewritten by another tool?)")
    if ds.dtype.kind not in "fi":
        raise CorruptRun(path, f"dataset {name!r} is not numeric")
    return read_checked(path, ds, name)


def _check_shapes(path, name: str, arrays: dict, scales: dict, n_members: int) -> np.ndarray | None:
    """Every array's leading axes (E + 1 or R or R - 1, Pg) agree within its part and with the
    members; every dimension scale is the range it names, the step scale recorded steps 0 = s_0 <
    s_1 < ... and the update scale s_r + 1 (``recorded_scales``). Returns the step scale (None
    without recorded steps)."""
    if "metrics" not in arrays or "params" not in arrays or not arrays["params"]:
        raise CorruptRun(path, f"group {name!r} has no metrics or params")
    want = {}
    steps = scales.get("step")
    if "step_params" in arrays:
        ok = steps is not None and steps.ndim == 1 and steps.dtype.kind == "i" and len(steps) >= 1 \
            and steps[0] == 0 and bool(np.all(np.diff(steps) > 0))
        if not ok:
            raise CorruptRun(path, f"the step scale of group {name!r} is not a list of recorded steps")
        want.update(recorded_scales(steps))
    for part, values in arrays.items():
        lead, first, _ = LEAD[part]
        for k, v in values.items():
            if v.ndim < 2 or v.shape[1] != n_members:
                raise CorruptRun(path, f"{name}/{part}/{k} has shape {v.shape}, not (., {n_members} members, ...)")
            want.setdefault(lead, np.arange(first, first + v.shape[0]))  # epochs (steps: set above)
            if len(want[lead]) != v.shape[0]:
                raise CorruptRun(path, f"{name}/{part}/{k} has {v.shape[0]} {lead}s, others of its kind "
                                       f"{len(want[lead])}")
            want["member"] = np.arange(n_members)
            for d, n in enumerate(v.shape[2:]):
                want[f"{k}_dim{d}"] = np.arange(n)
    if set(scales) != set(want) or any(not np.array_equal(scales[k], want[k]) for k in want):
        raise CorruptRun(path, f"the dimension scales of group {name!r} do not match its arrays")
    return None if "step_params" not in arrays else np.asarray(steps, dtype=np.int64)


def recorded_scales(steps: np.ndarray) -> dict[str, np.ndarray]:
    """The step and update scales of recorded steps (R,): step = steps, update = steps[:-1] + 1
    (the update that starts from each recorded step but the last)."""
    steps = np.asarray(steps, dtype=np.int64)
    return {"step": steps, "update": steps[:-1] + 1}


# --- writing ---------------------------------------------------------------------------------------


def write_run_file(path: Path, groups: list[RunGroup]) -> None:
    """Write a run file holding ``groups`` whole (a temporary file renamed into place); call it under
    the file's lock (``lock.locked``). A failed write (a full disk) leaves the file as it was and
    raises one line."""
    path = Path(path)
    groups = sorted({g.name: g for g in groups}.values(), key=lambda g: g.name)
    key = runs_key((g.name, g.group, g.run_key) for g in groups)

    def write(f):
        f.attrs["format"] = RUN_FORMAT
        f.attrs["format_version"] = RUN_FORMAT_VERSION
        f.attrs["landscape_version"] = __version__
        f.attrs["runs_key"] = key
        runs = f.create_group("runs")
        for g in groups:
            _write_group(runs.create_group(g.name), g)
            runs[g.name].attrs["digest"] = np.uint64(bound_digest(key, g.name, runs[g.name]))

    try:
        with writing():
            create_whole(path, write)
            _sync(path)
    except WriteFailed as err:
        reason = error_reason(err)
        full = " (free some space)" if "No space" in reason else ""
        raise LandscapeError(f"cannot write {path}: {reason}{full}; the groups saved before are kept and the "
                             f"same command resumes from them") from None


def _sync(path: Path) -> None:
    """The renamed file on disk before anything else is trusted to it."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_group(g: h5py.Group, run: RunGroup) -> None:
    """One group's layout (docs/format.md): attributes, parts with their dimension scales, rows."""
    g.attrs["group"] = run.group
    g.attrs["run_key"] = run.run_key
    g.attrs["complete"] = True
    g.attrs["spec"] = run.spec
    g.attrs["members"] = run.members
    g.attrs["device"] = run.device
    if run.cell_source is not None:
        g.attrs["cell_source"] = run.cell_source
    scales = {}  # dimension scales in the group, so xarray (h5netcdf) names every dimension
    recorded = {} if run.steps is None else recorded_scales(run.steps)

    def scale(name, n, first, doc):
        if name not in scales:
            values = recorded[name] if name in recorded else np.arange(first, first + n, dtype=np.int64)
            ds = _dataset(g, name, values)
            ds.make_scale(name)
            ds.attrs["description"] = doc
            scales[name] = ds
        return scales[name]

    for part in PARTS:
        if part not in run.arrays:
            continue
        sub = g.create_group(part)
        lead, first, doc = LEAD[part]
        for k, v in run.arrays[part].items():
            v = np.asarray(v)
            ds = _dataset(sub, k, v)
            dims = [scale(lead, v.shape[0], first, doc)]
            if v.ndim > 1:
                dims.append(scale("member", v.shape[1], 0, "model of the group"))
            dims += [scale(f"{k}_dim{d}", n, 0, f"axis {d} of parameter {k}") for d, n in enumerate(v.shape[2:])]
            for d, sc in enumerate(dims):
                ds.dims[d].attach_scale(sc)
    g.create_dataset("rows", data=run.rows)


def _dataset(g: h5py.Group, name: str, data: np.ndarray) -> h5py.Dataset:
    """A checksummed dataset holding data (``files.checksummed_dataset``); one with an empty axis
    (no steps recorded) is chunked along it as an extendible axis, which HDF5 requires."""
    if data.size:
        return checksummed_dataset(g, name, data.shape, data.dtype, 0, data=data)
    return g.create_dataset(name, shape=data.shape, dtype=data.dtype, fletcher32=True,
                            chunks=tuple(max(1, n) for n in data.shape),
                            maxshape=tuple(None if n == 0 else n for n in data.shape))
