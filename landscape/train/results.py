"""Saving training results per group, and resuming: a rerun skips the groups already saved.

A *group* (``Member.group``, e.g. "srnn-T50") is the unit of saving: when a population finishes,
each of its groups is written to the output at once, tagged with ``run_key`` (a hash of the spec
and of that group's members). A rerun with the same output skips every (group, run_key) present
and trains only the rest; a changed setting changes the run_key, so stale rows are never reused
(they are replaced).

Formats, chosen by the file suffix:

``.csv``         tidy rows: one per model and epoch (``TrainResult.rows``); each write replaces
                 the file atomically (write a temporary file, then rename), so a killed run
                 leaves either the old or the new file, never half a group.
``.h5``/``.hdf5`` one HDF5 group per saved group under ``/runs/<name>`` with attributes ``group``,
                 ``run_key``, ``spec`` (JSON), ``members`` (JSON), ``complete``; datasets
                 ``metrics/<name>`` (E + 1, Pg), ``params/<name>`` (E + 1, Pg, *shape),
                 ``step_params/<name>`` and ``step_metrics/<name>`` when recorded, and
                 ``rows`` (the tidy rows as JSON). Incomplete groups are dropped on open.
"""
from __future__ import annotations

import csv
import json
import math
import os
import re
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np
from tqdm import tqdm

from ..errors import LandscapeError
from .population import TrainResult, spec_key, train_population

SUFFIXES = (".csv", ".h5", ".hdf5")
TEXT_COLUMNS = ("group", "run_key", "set")  # never read back as numbers (a hex key may look like one)


def _check_path(path: Path) -> Path:
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise LandscapeError(f"unknown output format {path.name!r}; end the file name in .csv, .h5 or .hdf5")
    if path.is_dir():
        raise LandscapeError(f"{path} is a folder; give a file name ending in .csv or .h5")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".landscape-probe-"):
            pass
    except OSError as err:
        raise LandscapeError(f"cannot write {path}: {err.strerror or err}") from None
    return path


def _parse(value: str):
    """CSV text back to int / float / str."""
    if value == "":
        return ""
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        return value


class ResultStore:
    """The saved groups of one output file (CSV or HDF5)."""

    def __init__(self, path):
        self.path = _check_path(path)
        self.kind = "csv" if self.path.suffix.lower() == ".csv" else "h5"
        if self.kind == "h5" and self.path.exists():
            self._drop_incomplete()

    # --- reading ---------------------------------------------------------------------------------
    def rows(self) -> list[dict]:
        """Every saved row, in the order written."""
        if not self.path.exists():
            return []
        if self.kind == "csv":
            with open(self.path, newline="") as fh:
                return [{k: v if k in TEXT_COLUMNS else _parse(v) for k, v in row.items()}
                        for row in csv.DictReader(fh)]
        out = []
        with h5py.File(self.path, "r") as f:
            for name in f.get("runs", {}):
                out.extend(json.loads(f["runs"][name]["rows"][()]))
        return out

    def done(self) -> set[tuple[str, str]]:
        """(group, run_key) of every saved group."""
        if not self.path.exists():
            return set()
        if self.kind == "csv":
            return {(str(r["group"]), str(r["run_key"])) for r in self.rows()}
        with h5py.File(self.path, "r") as f:
            return {(g.attrs["group"], g.attrs["run_key"]) for g in f.get("runs", {}).values()
                    if g.attrs.get("complete", False)}

    def arrays(self, group: str) -> dict:
        """HDF5 only: the arrays of a saved group {"metrics": {...}, "params": {...}, ...}."""
        if self.kind != "h5":
            raise LandscapeError("arrays are stored in HDF5 outputs only; write to a .h5 file")
        with h5py.File(self.path, "r") as f:
            for g in f.get("runs", {}).values():
                if g.attrs["group"] == group:
                    return {part: {k: g[part][k][()] for k in g[part]} for part in
                            ("metrics", "params", "step_params", "step_metrics") if part in g}
        raise LandscapeError(f"no saved group {group!r} in {self.path}")

    # --- writing ---------------------------------------------------------------------------------
    def write(self, group: str, run_key: str, result: TrainResult) -> None:
        """Save one group's result, replacing any earlier rows of the same group."""
        rows = [dict(r, run_key=run_key) for r in result.rows()]
        if self.kind == "csv":
            self._write_csv(group, rows)
        else:
            self._write_h5(group, run_key, result, rows)

    def _write_csv(self, group, rows):
        old = [r for r in self.rows() if str(r["group"]) != group]
        everything = old + rows
        columns = list(dict.fromkeys(k for r in everything for k in r))
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=columns, restval="")
                writer.writeheader()
                for r in everything:
                    writer.writerow({k: _fmt(v) for k, v in r.items()})
            os.replace(tmp, self.path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def _write_h5(self, group, run_key, result, rows):
        name = re.sub(r"[^A-Za-z0-9_.=+-]", "_", group) or "_"
        with h5py.File(self.path, "a") as f:
            f.attrs["format"] = "landscape-train"
            runs = f.require_group("runs")
            for key in [k for k in runs if runs[k].attrs.get("group") == group]:
                del runs[key]
            g = runs.create_group(name)
            g.attrs["group"] = group
            g.attrs["run_key"] = run_key
            g.attrs["complete"] = False
            g.attrs["spec"] = json.dumps(result.spec.canonical(), sort_keys=True, default=str)
            g.attrs["members"] = json.dumps([m.canonical() for m in result.members], default=str)
            g.attrs["device"] = result.device
            scales = {}  # dimension scales in the group, so xarray (h5netcdf) names every dimension

            def scale(name, values, doc):
                if name not in scales:
                    ds = g.create_dataset(name, data=np.asarray(values, dtype=np.int64))
                    ds.make_scale(name)
                    ds.attrs["description"] = doc
                    scales[name] = ds
                return scales[name]

            lead = {"metrics": ("epoch", 0, "epoch; 0 is the initial point"),
                    "params": ("epoch", 0, "epoch; 0 is the initial point"),
                    "step_params": ("step", 0, "optimiser step; 0 is the initial point"),
                    "step_metrics": ("update", 1, "optimiser step s = 1..S (the update to step s)")}
            for part in ("metrics", "params", "step_params", "step_metrics"):
                arrays = getattr(result, part)
                if arrays:
                    sub = g.create_group(part)
                    for k, v in arrays.items():
                        v = np.asarray(v)
                        ds = sub.create_dataset(k, data=v)
                        name, first, doc = lead[part]
                        dims = [scale(name, np.arange(first, first + v.shape[0]), doc)]
                        if v.ndim > 1:
                            dims.append(scale("member", np.arange(v.shape[1]), "model of the group"))
                        dims += [scale(f"{k}_dim{d}", np.arange(n), f"axis {d} of parameter {k}")
                                 for d, n in enumerate(v.shape[2:])]
                        for d, sc in enumerate(dims):
                            ds.dims[d].attach_scale(sc)
            g.create_dataset("rows", data=json.dumps(rows, default=_fmt))
            g.attrs["complete"] = True

    def _drop_incomplete(self):
        try:
            with h5py.File(self.path, "a") as f:
                runs = f.get("runs", {})
                for key in [k for k in runs if not runs[k].attrs.get("complete", False)]:
                    del runs[key]
        except OSError as err:
            raise LandscapeError(f"cannot read {self.path} as HDF5: {err}") from None


def _fmt(v):
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    return v


def run_groups(jobs, out=None, device: str = "auto", progress: bool | None = None, compile: bool = False,
               on_message=None, on_result=None, threads: int | None = 1, scheduler=None) -> list[dict]:
    """Train ``jobs`` = [(TrainSpec, [Member, ...]), ...], each job one population, skipping
    the groups already saved in ``out``; returns every row (saved before and now).

    Without ``out`` nothing is saved and the rows of this run are returned. ``on_result(result)``
    is called with each population's TrainResult (for timings). ``threads``: CPU threads while
    training (``train_population``; None leaves torch's setting).

    ``scheduler`` (or an enclosing ``landscape.distributed.use`` block): train on a Dask cluster,
    each group (``Member.group``) of a job as its own population, one task per group; each group
    is saved as it arrives, so a killed run resumes as without a cluster.
    """
    from .. import distributed  # imports no Dask until a scheduler is used

    say = on_message or (lambda msg: None)
    store = None if out is None else ResultStore(out)
    done = store.done() if store is not None else set()
    plan = []  # (spec, the members to train, the groups to save, their run keys)
    for spec, members in jobs:
        members = list(members)
        groups = list(dict.fromkeys(m.group for m in members))
        keys = {g: spec_key(spec, [m for m in members if m.group == g]) for g in groups}
        todo = [g for g in groups if (g, keys[g]) not in done]
        if len(todo) < len(groups):
            say(f"{spec.model.cell}: {len(groups) - len(todo)} of {len(groups)} groups already saved in "
                f"{store.path.name}; skipping them")
        if todo:
            plan.append((spec, [m for m in members if m.group in todo], todo, keys))
    fresh = {}  # (job, group) -> rows, when nothing is saved

    def keep(j, g, sub):
        if store is not None:
            store.write(g, plan[j][3][g], sub)
        else:
            fresh[(j, g)] = [dict(r, run_key=plan[j][3][g]) for r in sub.rows()]

    with distributed.active(scheduler if plan else None) as cluster:
        if cluster is None:
            for j, (spec, train, todo, keys) in enumerate(plan):
                result = train_population(spec, train, device=device, progress=progress, compile=compile,
                                          threads=threads)
                if on_result is not None:
                    on_result(result)
                for g in todo:
                    keep(j, g, result.subset([p for p, m in enumerate(train) if m.group == g]))
                say(f"{spec.model.cell}: trained {len(train)} models ({len(todo)} groups) in {result.seconds:.1f} s")
        else:
            tasks = [(j, g) for j, (_, _, todo, _) in enumerate(plan) for g in todo]
            pops = [(plan[j][0], [m for m in plan[j][1] if m.group == g]) for j, g in tasks]
            bar = tqdm(total=len(tasks), unit="group", desc=f"training on {cluster.workers()} Dask workers",
                       leave=False, disable=(not sys.stderr.isatty()) if progress is None else not progress)
            with bar:
                for i, result in cluster.train_groups(pops, device, compile, threads):
                    j, g = tasks[i]
                    if on_result is not None:
                        on_result(result)
                    keep(j, g, result)
                    bar.update(1)
                    say(f"{plan[j][0].model.cell}: trained {g} ({len(result.members)} models) in {result.seconds:.1f} s "
                        f"on a Dask worker")
    if store is not None:
        return store.rows()
    return [row for j, (_, _, todo, _) in enumerate(plan) for g in todo for row in fresh[(j, g)]]
