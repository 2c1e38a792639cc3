"""`landscape cache ls|show|rm`: the surfaces in $LANDSCAPE_CACHE (or ~/.cache/landscape)."""
from __future__ import annotations

import json

import click

from ..store import cache_dir, cache_entries, check_surface_file, find_cached, load, lock_path


@click.group("cache")
def command():
    """List, show and remove cached surfaces."""


@command.command("ls")
def ls():
    """List the cached surfaces: key, cell, task, T, grid, state, size."""
    entries = cache_entries()
    click.echo(f"cache: {cache_dir()} ({len(entries)} surfaces)")
    for e in entries:
        if "error" in e:
            click.echo(f"  {e['path'].name}  UNREADABLE: {e['error']}")
            continue
        state = "complete" if e["complete"] else "partial"
        Ts = ",".join(map(str, e["T"]))
        click.echo(f"  {e['key']}  {e['cell']:<8} {e['task']:<12} T={Ts:<18} {e['grid']:<16} {state:<8} "
                   f"{e['size'] / 1e6:8.2f} MB  {e['created']}")


@command.command("show")
@click.argument("ref")
def show(ref):
    """Show one surface (by key, key prefix, or path): its spec and contents."""
    path = find_cached(ref)
    s = load(path)
    click.echo(f"{path}")
    click.echo(f"  {s}")
    for k in ("landscape_version", "torch_version", "device", "dtype", "created", "complete"):
        click.echo(f"  {k}: {s.attrs.get(k)}")
    click.echo(f"  chunks done: {int(s.done.sum())} of {len(s.done)}")
    click.echo("  spec: " + json.dumps(s.spec, indent=2).replace("\n", "\n  "))


@command.command("rm")
@click.argument("refs", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Remove every cached surface.")
def rm(refs, all_):
    """Remove cached surfaces by key (or key prefix), or all with --all."""
    paths = [e["path"] for e in cache_entries()] if all_ else [find_cached(r) for r in refs]
    if not paths:
        click.echo("nothing to remove (give keys or --all)")
    for path in paths:
        if not all_:
            check_surface_file(path)
        path.unlink()
        lock_path(path).unlink(missing_ok=True)
        click.echo(f"removed {path}")
