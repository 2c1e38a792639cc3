"""`landscape cells` and `landscape tasks`: what is available, with parameters and defaults (torch-free)."""
from __future__ import annotations

import click

from ..cells import CELLS
from ..tasks import TASKS


@click.command("cells")
@click.argument("refs", nargs=-1, metavar="[CELL]...")
@click.option("--hidden", "-H", default=1, show_default=True, help="Hidden size to show parameter shapes for.")
def cells_command(refs, hidden):
    """List the cells with their parameters (shape, base-point value), equations and default axes.

    Give names or your own cells (FILE.py:Class, module:Class) to show only those.
    """
    for ref in refs or CELLS.names():
        cls = CELLS.get(ref)
        cell = cls()
        D = hidden if cls.needs_input_equal_hidden else 1  # one input (MUT1/2: as many as units)
        click.secho(ref, bold=True, nl=False)
        click.echo(f"  {cls.summary}")
        opts = cell.options()
        if opts:
            click.echo("  options: " + ", ".join(f"{k}={v}" for k, v in opts.items()))
        click.echo("  state: " + ", ".join(cls.state_names))
        params = [f"{p.name}{list(p.shape(hidden, D))}={p.default:g}"
                  + ("*I" if p.role == "recurrent" and hidden > 1 else "") for p in cell.decls(D)]
        click.echo(f"  parameters (H={hidden}, D={D}): " + ", ".join(params))
        for line in cls.equations.strip().splitlines():
            click.echo(f"    {line.strip()}")
        facts = []
        if cls.default_axes:
            facts.append(f"default axes {cls.default_axes[0]} x {cls.default_axes[1]}")
        if cls.block_input:
            facts.append(f"block input {', '.join(cls.block_input)}")
        if cls.one_unit_map is not None:
            facts.append("one-unit map (landscape dynamics)")
        if facts:
            click.echo("  " + "; ".join(facts))
        click.echo()


@click.command("tasks")
@click.argument("refs", nargs=-1, metavar="[TASK]...")
def tasks_command(refs):
    """List the tasks with their parameters and defaults (or only those named, FILE.py:Class too)."""
    for ref in refs or TASKS.names():
        cls = TASKS.get(ref)
        task = cls()
        click.secho(ref, bold=True, nl=False)
        click.echo(f"  {cls.summary}")
        click.echo(f"  input size {cls.input_size}, readout {cls.readout}, default hidden size "
                   f"{cls.default_hidden}, default n {cls.default_n}")
        for key, doc in cls.param_docs.items():
            click.echo(f"    {key} = {getattr(task, key)!r}: {doc}")
        click.echo()


command = [cells_command, tasks_command]
