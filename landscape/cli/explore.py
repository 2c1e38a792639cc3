"""`landscape explore`: the local web app that recomputes as you move a control (landscape.explorer)."""
from __future__ import annotations

import click

from ..model import parse_assignments
from .options import CELL_HELP, TASK_HELP


@click.command("explore")
@click.option("--cell", default="pascanu", show_default=True, help=CELL_HELP)
@click.option("--task", default="target", show_default=True, help=TASK_HELP)
@click.option("--hidden", "-H", type=int, help="Hidden units (default: the task's).")
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE",
              help="Base-point value of another parameter (repeatable): b_f=1, w[0,1]=0.5.")
@click.option("--x", "x", metavar="NAME:MIN:MAX:NUM", help="First axis (default: the cell's, at 101 points).")
@click.option("--y", "y", metavar="NAME:MIN:MAX:NUM", help="Second axis (default: the cell's, at 101 points).")
@click.option("--T", "T", default="1,5,10,20,50", show_default=True,
              help="Sequence lengths on the slider, all computed at once: 1,5,10,50.")
@click.option("--show-T", "t", type=int, help="The length shown first (default: the largest).")
@click.option("--n", type=int, help="Number of sequences (default: the task's, at most 200).")
@click.option("--seed", default=0, show_default=True, help="Seed of the task's data.")
@click.option("--scale", type=click.Choice(("linear", "log")), default="linear", show_default=True,
              help="Colour scale of the loss.")
@click.option("--point", metavar="X,Y", help="A clicked point to start with: its gradient norms and training paths.")
@click.option("--lr", type=float, default=0.645, show_default=True, help="Learning rate of SGD and clipped SGD.")
@click.option("--adam-lr", type=float, default=0.05, show_default=True, help="Learning rate of Adam.")
@click.option("--clip", type=float, default=0.4, show_default=True, help="Clipping threshold (gradient norm).")
@click.option("--steps", type=int, default=20, show_default=True, help="Training steps of each path.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to serve on.")
@click.option("--port", type=int, default=8050, show_default=True, help="Port to serve on.")
@click.option("--no-browser", is_flag=True, help="Do not open a browser tab; print the address only.")
def command(cell, task, hidden, sets, x, y, T, t, n, seed, scale, point, lr, adam_lr, clip, steps, host, port,
            no_browser):
    """Explore a loss landscape live in the browser: move T, the axes or a parameter and the surface
    recomputes (the cache behind it); click a point for its gradient norms per timestep and for SGD,
    clipped SGD and Adam started there. The whole state is in the URL.

    \b
    landscape explore
    landscape explore --point 4.8,-2.15 --no-browser
    landscape explore --cell srnn --task latch --T 1,10,50 --lr 0.3
    """
    from ..explorer.app import serve
    from ..explorer.state import ExploreState, default_axes
    from ..spec import parse_T

    if not (x and y):
        dx, dy = default_axes(cell)
        x, y = x or dx, y or dy
    values = tuple(f"{k}={v}" for k, v in parse_assignments(sets, "--set"))
    state = ExploreState(cell=cell, task=task, hidden=hidden, sets=values,
                         x=x, y=y, T=T, t=t if t is not None else max(parse_T(T)), n=n, seed=seed, scale=scale,
                         point=_point(point), lr=lr, adam_lr=adam_lr, clip=clip, steps=steps)
    serve(state, host=host, port=port, open_browser=not no_browser, say=lambda msg: click.echo(msg, err=True))


def _point(text):
    if text is None:
        return None
    from ..errors import LandscapeError

    try:
        a, b = (float(v) for v in text.split(","))
    except ValueError:
        raise LandscapeError(f"malformed --point {text!r}; write X,Y, e.g. --point 4.8,-2.15") from None
    return (a, b)
