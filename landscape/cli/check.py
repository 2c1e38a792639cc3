"""`landscape check FILE...`: verify files landscape wrote, of any kind, by their root ``format``
attribute: surfaces and plane grids (every check of ``store.reader``), fixed-point files
(``store.fixedpoints``), training runs (``store.runs``). One line per file; the exit status says
whether all were ok (``EXIT``)."""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

import click

from ..errors import LandscapeError
from ..store import FORMAT, CorruptSurface, UntrustedFile, check_surface_file, lock_held, read_surface
from ..store.fixedpoints import FIXED_POINTS_FORMAT, read_fixed_point_file
from ..store.integrity import read_root

RUN_FORMAT = "landscape-train"  # the root ``format`` of a training run (``landscape.store.runs``)
EXIT = {"ok": 0, "DAMAGED": 1, "UNVERIFIED": 1, "BUSY": 1, "NOT CHECKED": 2}  # the worst file's status wins


@dataclass(frozen=True)
class Verdict:
    """What checking one file found: status (a key of ``EXIT``) and one line of text."""

    status: str
    text: str

    @property
    def line(self) -> str:
        return f"{self.status}: {self.text}"


def _surface(path: Path) -> str:
    s = read_surface(path, check_surface_file(path))
    state = "complete" if s.complete else f"partial, {int(s.done.sum())} of {len(s.done)} chunks done"
    kind = "plane grid" if "directions" in s.spec else "surface"
    return f"{kind} {s.spec.get('cell')} on {s.spec.get('task')}, key {s.attrs['key']}, {state}"


def _fixed_points(path: Path) -> str:
    fp = read_fixed_point_file(path)
    return f"fixed points of {fp.attrs.get('cell')} on {fp.attrs.get('task')}, {len(fp.data['x'])} input(s)"


def _run(path: Path) -> str | None:
    """The run file checked by ``landscape.store.runs.check_run_file``; None where this landscape
    has no such module."""
    try:
        runs = importlib.import_module("landscape.store.runs")
    except ModuleNotFoundError as err:
        if err.name != "landscape.store.runs":
            raise
        return None
    runs.check_run_file(path)
    return "training run"


CHECKS = {FORMAT: _surface, FIXED_POINTS_FORMAT: _fixed_points, RUN_FORMAT: _run}  # root format -> check


def verify(path) -> Verdict:
    """Check one file of any kind landscape writes, never raising for what the file holds."""
    path = Path(path)
    if not path.exists():
        return Verdict("NOT CHECKED", f"{path}: no such file")
    if path.is_dir():
        return Verdict("NOT CHECKED", f"{path} is a folder, not a file")
    try:
        fmt = read_root(path)[0].get("format")
        check = CHECKS.get(fmt)
        if check is None:
            return Verdict("NOT CHECKED", f"{path} is not a file landscape wrote (format={fmt!r}); it knows "
                                          f"{', '.join(CHECKS)}")
        what = check(path)
        if what is None:
            return Verdict("NOT CHECKED", f"{path}: checking files of format {fmt!r} is not supported by this "
                                          f"landscape yet")
        return Verdict("ok", f"{path} ({what})")
    except UntrustedFile as err:
        return Verdict("UNVERIFIED", str(err))
    except CorruptSurface as err:
        if lock_held(path):
            return Verdict("BUSY", f"{path} is being written by another process; check it when that run has finished")
        return Verdict("DAMAGED", str(err))
    except LandscapeError as err:
        return Verdict("NOT CHECKED", str(err))
    except OSError as err:  # the file itself cannot be read (a permission, a lost device)
        return Verdict("NOT CHECKED", f"{path}: {err.strerror or err}")


@click.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=True))
def command(files):
    """Verify files landscape wrote: surfaces, plane grids, fixed points, training runs.

    Reads every dataset through its checksum and every unit of work against its digest. Prints
    one line per file: ok, DAMAGED (what is wrong; never served: remove it or compute it again),
    UNVERIFIED (an older format without checksums), BUSY (being written) or NOT CHECKED (no such
    file, a folder, not a landscape file). Exit status: 0 if every file is ok, 1 if one is
    damaged, unverified or busy, 2 if one could not be checked at all.

    \b
    landscape check run.h5 fp.h5 ~/.cache/landscape/*.h5
    """
    worst = 0
    for name in files:
        verdict = verify(name)
        click.echo(" ".join(verdict.line.split()))
        worst = max(worst, EXIT[verdict.status])
    if worst:
        click.get_current_context().exit(worst)
