"""Saving training results per group, and resuming: a rerun skips the groups already saved.

A *group* (``Member.group``, e.g. "srnn-T50") is the unit of saving: when a population finishes,
each of its groups is written to the output at once, tagged with ``run_key`` (a hash of the spec
and of that group's members). A rerun with the same output skips every (group, run_key) present
and trains only the rest; a changed setting changes the run_key, so stale rows are never reused
(they are replaced).

Both formats are written whole under the file's lock (``store.locked``): the saved groups and the
new one go to a temporary file that replaces the output, so a killed run leaves the file as it
was before the group being written (which the rerun trains again), and two runs on one file
never lose each other's groups. The output is verified whenever it is read; a damaged one is
refused in one line (remove it, or give another --out), never trained over.

``.csv``          tidy rows: one per model and epoch (``TrainResult.rows``), and a ``digest`` column: a
                  hash of the group's rows (their text as written, in order) bound to its group and
                  run_key, the same on each row of the group (``csv_digest``)
``.h5``/``.hdf5`` one HDF5 group per saved group under ``/runs/<name>``: ``store.runs`` reads, verifies
                  and writes it (checksums, a digest per group bound to the file and the group's name)
"""
from __future__ import annotations

import csv
import errno
import hashlib
import io
import json
import math
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..errors import LandscapeError
from ..progress import Lines, wanted
from ..store import locked
from ..store.runs import CorruptRun, RunGroup, read_run_file, write_run_file
from .population import TrainResult, spec_key, train_population

SUFFIXES = (".csv", ".h5", ".hdf5")
TEXT_COLUMNS = ("group", "run_key", "set", "digest")  # never read back as numbers (a hex key may look like one)


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
    """The saved groups of one output file (CSV or HDF5), verified when opened and on every read."""

    def __init__(self, path):
        self.path = _check_path(path)
        self.kind = "csv" if self.path.suffix.lower() == ".csv" else "h5"
        self._read()  # a damaged file is refused before anything is trained

    # --- reading ---------------------------------------------------------------------------------
    def _read(self) -> list:
        """The saved groups, verified: RunGroup (HDF5) or (group, run_key, rows as text) (CSV)."""
        if not self.path.exists():
            return []
        if self.kind == "h5":
            from ..plan import check_run_file_memory
            from ..settings import memory

            check_run_file_memory(self.path, memory())
            return read_run_file(self.path)
        return _read_csv(self.path)

    def rows(self) -> list[dict]:
        """Every saved row, in the order written."""
        if self.kind == "csv":
            return [{k: v if k in TEXT_COLUMNS else _parse(v) for k, v in row.items()}
                    for _, _, rows in self._read() for row in rows]
        return [row for g in self._read() for row in json.loads(g.rows)]

    def done(self) -> set[tuple[str, str]]:
        """(group, run_key) of every saved group."""
        if self.kind == "csv":
            return {(group, run_key) for group, run_key, _ in self._read()}
        return {(g.group, g.run_key) for g in self._read()}

    def arrays(self, group: str) -> dict:
        """HDF5 only: the arrays of a saved group {"metrics": {...}, "params": {...}, ...}."""
        if self.kind != "h5":
            raise LandscapeError("arrays are stored in HDF5 outputs only; write to a .h5 file")
        for g in self._read():
            if g.group == group:
                return g.arrays
        raise LandscapeError(f"no saved group {group!r} in {self.path}")

    # --- writing ---------------------------------------------------------------------------------
    def write(self, group: str, run_key: str, result: TrainResult) -> None:
        """Save one group's result, replacing any earlier rows of the same group: the file is
        read (verified) and written whole under its lock."""
        rows = [dict(r, run_key=run_key) for r in result.rows()]
        with locked(self.path):
            if self.kind == "csv":
                kept = [g for g in self._read() if g[0] != group]
                _write_csv(self.path, kept + [(group, run_key, [_text_row(r) for r in rows])])
            else:
                kept = [g for g in self._read() if g.group != group]
                write_run_file(self.path, kept + [_run_group(group, run_key, result, rows)])


def _run_group(group: str, run_key: str, result: TrainResult, rows: list[dict]) -> RunGroup:
    """A group's result as stored: a cell from outside landscape by the hash of its source."""
    from ..cells import CELLS, cell_class
    from ..extensions import source_hash

    cell = result.spec.model.cell
    arrays = {part: {k: np.asarray(v) for k, v in getattr(result, part).items()}
              for part in ("metrics", "params", "step_params", "step_metrics") if getattr(result, part)}
    return RunGroup(group, run_key, json.dumps(result.spec.canonical(), sort_keys=True, default=str),
                    json.dumps([m.canonical() for m in result.members], default=str), result.device,
                    json.dumps(rows, default=_fmt), arrays,
                    None if cell in CELLS else source_hash(cell_class(cell)),
                    None if result.steps is None else np.asarray(result.steps, dtype=np.int64))


def _fmt(v):
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    return v


def _text_row(row: dict) -> dict[str, str]:
    """A row as the text the CSV holds (what the digest covers)."""
    return {k: "" if v is None else str(_fmt(v)) for k, v in row.items()}


def csv_digest(group: str, run_key: str, rows: list[dict[str, str]]) -> str:
    """The digest of a group's CSV rows: their non-empty cells as text, in order, bound to the
    group and its run_key (16 hex digits of BLAKE2b); a row's empty cells count as absent, so
    the digest does not depend on the columns that other groups add to the file."""
    h = hashlib.blake2b(digest_size=8)
    h.update(f"{group}\0{run_key}\0{len(rows)}\0".encode("utf-8", "surrogateescape"))
    for i, row in enumerate(rows):
        cells = sorted((k, v) for k, v in row.items() if k != "digest" and v != "")
        h.update(f"{i}\0{cells!r}\0".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def _read_csv(path: Path) -> list[tuple[str, str, list[dict[str, str]]]]:
    """The groups of a CSV output, verified against their digests: [(group, run_key, rows)], in
    the order written; CorruptRun (one line) for anything that does not match."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            columns = reader.fieldnames or []
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise CorruptRun(path, f"not a readable CSV file: {err}") from None
    if not rows:
        raise CorruptRun(path, "it holds no rows")
    if "digest" not in columns:
        raise LandscapeError(f"{path} is a training run of an older landscape, without digests, and is not "
                             f"trusted: move it away and run the same `landscape train --out {path.name}` to "
                             f"recompute it")
    if any(k not in columns for k in ("group", "run_key")) or any(None in r or None in r.values() for r in rows):
        raise CorruptRun(path, "its columns do not match its rows")
    groups: dict[str, list] = {}
    for row in rows:
        groups.setdefault(row["group"], []).append(row)
    out = []
    for group, members in groups.items():
        keys = {(r["run_key"], r["digest"]) for r in members}
        if len(keys) != 1:
            raise CorruptRun(path, f"the rows of group {group!r} disagree on their run_key or digest")
        ((run_key, digest),) = keys
        if csv_digest(group, run_key, members) != digest:
            raise CorruptRun(path, f"the rows of group {group!r} do not match their digest")
        out.append((group, run_key, members))
    return out


def _write_csv(path: Path, groups: list[tuple[str, str, list[dict[str, str]]]]) -> None:
    """Write a CSV output whole (a temporary file renamed into place), each row with its group's digest."""
    everything = [dict(r, digest=csv_digest(group, run_key, rows)) for group, run_key, rows in groups for r in rows]
    columns = list(dict.fromkeys(k for r in everything for k in r))
    columns = [k for k in columns if k != "digest"] + ["digest"]
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=columns, restval="")
    writer.writeheader()
    writer.writerows(everything)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            fh.write(text.getvalue())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        full = " (free some space)" if err.errno == errno.ENOSPC else ""
        raise LandscapeError(f"cannot write {path}: {err.strerror or err}{full}; the groups saved before are "
                             f"kept and the same command resumes from them") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
        if cluster is None:  # progress lines where no bar is drawn, by epochs of every population
            lines = Lines(sum(spec.epochs for spec, _, _, _ in plan), "epochs", "training", wanted(progress))
            for j, (spec, train, todo, keys) in enumerate(plan):
                result = train_population(spec, train, device=device, progress=progress, compile=compile,
                                          threads=threads, on_epoch=lambda epoch, metrics: lines.update())
                if on_result is not None:
                    on_result(result)
                for g in todo:
                    keep(j, g, result.subset([p for p, m in enumerate(train) if m.group == g]))
                groups = f"{len(todo)} group{'' if len(todo) == 1 else 's'}"
                say(f"{spec.model.cell}: trained {len(train)} models ({groups}) in {result.seconds:.1f} s")
        else:
            tasks = [(j, g) for j, (_, _, todo, _) in enumerate(plan) for g in todo]
            pops = [(plan[j][0], [m for m in plan[j][1] if m.group == g]) for j, g in tasks]
            bar = tqdm(total=len(tasks), unit="group", desc=f"training on {cluster.workers()} Dask workers",
                       leave=False, disable=(not sys.stderr.isatty()) if progress is None else not progress)
            lines = Lines(len(tasks), "groups", f"training on {cluster.workers()} Dask workers", wanted(progress))
            with bar:
                for i, result in cluster.train_groups(pops, device, compile, threads):
                    j, g = tasks[i]
                    if on_result is not None:
                        on_result(result)
                    keep(j, g, result)
                    bar.update(1)
                    lines.update()
                    say(f"{plan[j][0].model.cell}: trained {g} ({len(result.members)} models) in {result.seconds:.1f} s "
                        f"on a Dask worker")
    if store is not None:
        return store.rows()
    return [row for j, (_, _, todo, _) in enumerate(plan) for g in todo for row in fresh[(j, g)]]
