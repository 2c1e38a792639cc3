"""`landscape reproduce NAME`: one paper figure (or experiment) end to end: data, then figures."""
from __future__ import annotations

import inspect
import time
from pathlib import Path

import click

from ..errors import LandscapeError
from ..figures.style import check_style, paper_is
from .options import scheduler_option, threads_option
from .plot import style_help


@click.command("reproduce")
@click.argument("name", required=False)
@click.option("--out", "out", type=click.Path(file_okay=False), help="Output folder [default: out/NAME].")
@click.option("--quick", is_flag=True, help="Small grids, seconds: a check that everything runs (CI).")
@click.option("--exact", is_flag=True, help="The paper's or the question's full protocol where the "
              "reproduction has one (latching, relay, ablations; or $LANDSCAPE_EXACT=1); it takes longer.")
@click.option("--device", default="auto", show_default=True, help="auto (CUDA when present), cpu or cuda.")
@click.option("--list", "list_", is_flag=True, help="List the reproductions and exit.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@click.option("--style", default="paper", show_default=True, help=style_help() + " The figures' style.")
@threads_option()
@scheduler_option()
def command(name, out, quick, exact, device, list_, quiet, scheduler, style):
    """Reproduce a paper figure: compute its data (HDF5) and draw it (PDF + PNG).

    \b
    landscape reproduce --list
    landscape reproduce pascanu-fig6
    landscape reproduce cliff-formation --quick --out /tmp/cliff
    landscape reproduce latching --exact
    """
    from ..analyses import analyses, get_analysis

    if list_:
        table = analyses()
        width = max((len(k) for k in table), default=0)
        for key, module in table.items():
            click.echo(f"{key.ljust(width)}  {module.DESCRIPTION}")
        return
    if not name:
        raise LandscapeError(f"name a reproduction; choose from: {', '.join(analyses()) or 'none yet'} "
                             f"(or --list)")
    module = get_analysis(name)
    check_style(style)
    extra = {}
    if exact:
        if quick:
            raise LandscapeError("choose --quick or --exact, not both")
        if not _has_exact(module):
            with_exact = [key for key, m in analyses().items() if _has_exact(m)]
            raise LandscapeError(f"{name} has a single size; --exact applies to: {', '.join(with_exact)}")
        extra["exact"] = True
    folder = Path(out) if out else Path("out") / name
    start = time.perf_counter()
    from ..distributed import use  # imports no Dask without --scheduler

    with use(scheduler), paper_is(style):  # every grid and training group on it; every figure in style
        paths = module.run(folder, quick=quick, device=device, progress=False if quiet else None, **extra)
    click.echo(f"{name}: wrote {len(paths)} files to {folder} in {time.perf_counter() - start:.1f} s"
               + (" (--quick: small grids)" if quick else ""))


def _has_exact(module) -> bool:
    """Whether a reproduction's run() takes ``exact`` (it has a full-size protocol)."""
    return "exact" in inspect.signature(module.run).parameters
