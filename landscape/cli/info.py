"""`landscape cells` and `landscape tasks`: what is available, with parameters and defaults."""
from __future__ import annotations

import click

from ..cells import CELLS
from ..tasks import TASKS


@click.command("cells")
@click.option("--hidden", "-H", default=1, show_default=True, help="Hidden size to show parameter shapes for.")
def cells_command(hidden):
    """List the cells with their parameters (shape, base-point value) and equations."""
    for name, cls in CELLS.items():
        cell = cls()
        D = 1
        shapes = cell.param_shapes(hidden, D)
        defaults = cell.default_params(hidden, D)
        click.secho(f"{name}", bold=True, nl=False)
        click.echo(f"  {cls.summary}")
        opts = cell.options()
        if opts:
            click.echo("  options: " + ", ".join(f"{k}={v}" for k, v in opts.items()))
        click.echo("  state: " + ", ".join(cls.state_names))
        params = []
        for pname, shape in shapes.items():
            value = defaults[pname]
            base = f"{value.flatten()[0].item():g}" + ("*I" if len(shape) == 2 and shape[0] == shape[1]
                                                        and shape[0] > 1 and value[0, -1] == 0 else "")
            params.append(f"{pname}{list(shape)}={base}")
        click.echo(f"  parameters (H={hidden}, D={D}): " + ", ".join(params))
        for line in cls.equations.strip().splitlines():
            click.echo(f"    {line.strip()}")
        click.echo()


@click.command("tasks")
def tasks_command():
    """List the tasks with their parameters and defaults."""
    for name, cls in TASKS.items():
        task = cls()
        click.secho(name, bold=True, nl=False)
        click.echo(f"  {cls.summary}")
        click.echo(f"  input size {cls.input_size}, readout {cls.readout}, default hidden size "
                   f"{cls.default_hidden}, default n {cls.default_n}")
        for key, doc in cls.param_docs.items():
            click.echo(f"    {key} = {getattr(task, key)!r}: {doc}")
        click.echo()


command = [cells_command, tasks_command]
