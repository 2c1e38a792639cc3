"""`landscape cache ls|show|rm`: the surfaces in $LANDSCAPE_CACHE (or ~/.cache/landscape)."""
from __future__ import annotations

import json

import click

from ..errors import LandscapeError
from ..settings import cache_dir
from ..store import cache_entries, find_cached, load, lock_held, lock_path
from ..store.cache import removal_refused


@click.group("cache")
def command():
    """List, show and remove cached surfaces."""


@command.command("ls")
@click.option("--check", is_flag=True, help="Also read every complete surface and verify its checksums and "
              "chunk digests (reads all the data), and verify the other files landscape wrote there (fixed "
              "points, training runs) as `landscape check` does.")
def ls(check):
    """List the cached surfaces: key, cell, task, T, grid, state, size.

    The state is complete, partial (a run was stopped: the same command resumes it), being written
    (another process holds it), corrupt (why; never served: remove it or recompute with --force;
    a file of format version 1, which has no checksums, is never served either) or foreign (not a
    landscape surface; with --check, a fixed-point file or a training run is verified and listed
    with its `landscape check` line)."""
    from .check import verify

    entries = cache_entries(check=check)
    click.echo(f"cache: {cache_dir()} ({len(entries)} surface{'' if len(entries) == 1 else 's'})")
    rows = []  # the readable surfaces' columns, aligned below to the widest value of each
    for e in entries:
        if check and e["state"] == "foreign":
            click.echo(f"  {e['path'].name}  {verify(e['path']).line}")
            continue
        if "cell" not in e:  # nothing readable
            reason = f": {e['error']}" if e.get("error") else ""
            click.echo(f"  {e['path'].name}  {e['state'].upper() if e['state'] != 'being written' else e['state']}"
                       f"{reason}")
            continue
        state = e["state"] + ("" if e["checked"] else " (unchecked)")
        if e["state"] == "corrupt":
            state = f"CORRUPT ({e['error']})"
        rows.append((e["key"], str(e["cell"]), str(e["task"]), "T=" + ",".join(map(str, e["T"])), e["grid"], state,
                     f"{e['size'] / 1e6:.2f} MB", e["created"]))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))] if rows else []
    for row in rows:  # left-aligned text, the size right-aligned, the date as it is
        cells = [v.rjust(w) if i == 6 else v if i == 7 else v.ljust(w) for i, (v, w) in enumerate(zip(row, widths))]
        click.echo("  " + "  ".join(cells))


@command.command("show")
@click.argument("ref")
def show(ref):
    """Show one surface (by key, key prefix, or path): its spec and contents (verified as it is read)."""
    path = find_cached(ref)
    s = load(path)
    click.echo(f"{path}")
    click.echo(f"  {s}")
    for k in ("landscape_version", "torch_version", "device", "dtype", "created", "complete", "format_version"):
        click.echo(f"  {k}: {s.attrs.get(k)}")
    click.echo(f"  checksums: {'verified' if s.checked else 'none (format version 1: unchecked)'}")
    click.echo(f"  chunks done: {int(s.done.sum())} of {len(s.done)}")
    click.echo(f"  computed NaN: {s.computed_nan}")
    click.echo("  spec: " + json.dumps(s.spec, indent=2).replace("\n", "\n  "))


@command.command("rm")
@click.argument("refs", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Remove every cached surface (but those being written).")
def rm(refs, all_):
    """Remove cached surfaces by key (or key prefix) or path, or all with --all. A surface another
    process is writing is left alone, and so is any file landscape did not write (outside the
    cache folder: one that does not read as a landscape surface)."""
    paths = [e["path"] for e in cache_entries()] if all_ else [find_cached(r) for r in refs]
    if not paths:
        click.echo("nothing to remove (give keys or --all)")
    for path in paths:
        refused = "is being written by another process" if lock_held(path) else removal_refused(path)
        if refused:
            if not all_:
                raise LandscapeError(f"{path} {refused}; not removed")
            click.echo(f"kept {path} ({refused})")
            continue
        try:
            path.unlink()
            lock_path(path).unlink(missing_ok=True)
        except FileNotFoundError:
            pass
        except OSError as err:
            raise LandscapeError(f"cannot remove {path}: {err.strerror or err}") from None
        click.echo(f"removed {path}")
