"""`landscape plot`: a figure of a stored surface (or several, for compare); format from --out."""
from __future__ import annotations

import os
from pathlib import Path

import click

from ..errors import LandscapeError
from ..figures.kinds import KINDS
from ..figures.style import STYLES
from ..spec import parse_T
from ..store import find_cached, load
from ..store.integrity import check_readable


MAX_WIDTH = 100.0  # inches: a figure wider than this is a typing error (at 1e5 in, Agg refuses the image)
MAX_DPI = 2400.0


def _width(text: str | None):
    if text is None or text in ("single", "double"):
        return text
    try:
        inches = float(text)
    except ValueError:
        raise LandscapeError(f"unknown width {text!r}; choose from: single, double (or inches)") from None
    if not 0 < inches <= MAX_WIDTH:
        raise LandscapeError(f"--width {text} is out of range: give inches in (0, {MAX_WIDTH:g}], or single or double")
    return inches


def surface_file(ref: str) -> str:
    """A FILES argument as a path: an existing file (or anything that names one: a .h5 name, a
    path with a folder) as it is, else a cache key or a unique start of one (``find_cached``)."""
    if Path(ref).exists() or ref.lower().endswith((".h5", ".hdf5")) or os.sep in ref:
        return ref
    return str(find_cached(ref))


def style_help() -> str:
    """--style's help: the names of ``figures.style.STYLES`` (``own`` draws with the user's rcParams)."""
    return " | ".join(STYLES) + "."


@click.command("plot")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--kind", "-k", default="contour", show_default=True,
              help=" | ".join(KINDS) + ". (" + "; ".join(f"{k.name}: {k.summary}" for k in KINDS.values()) + ".)")
@click.option("--out", "-o", required=True, metavar="FIG.pdf|png|svg|pgf|html|gif|mp4",
              help="Output file; the format is taken from the extension (html: interactive; gif, mp4: the "
                   "animations).")
@click.option("--T", "T", help="Length(s) to show, a comma list (default: the largest; all for panels and "
              "slices; the largest common one for compare).")
@click.option("--at", metavar="NAME=VALUE", help="slices, gradnorm: fix this parameter (nearest grid "
              "value), e.g. w=5; default: the middle of the first axis.")
@click.option("--log", "log", is_flag=True, help="Log colour (or y) scale; values <= 0 are masked and counted.")
@click.option("--symlog", is_flag=True, help="Symmetric log scale (for signed values over many decades).")
@click.option("--style", default="paper", show_default=True, help=style_help())
@click.option("--width", default=None, help="single (3.25 in) | double (6.75 in) | inches "
              "[default: single; double for panels, compare, gradnorm, curvature].")
@click.option("--dpi", type=float, help="Resolution of raster output (png) [default: the style's].")
@click.option("--elev", type=float, help="surface, wireframe: elevation of the view in degrees.")
@click.option("--azim", type=float, help="surface, wireframe: azimuth of the view in degrees.")
@click.option("--folds", is_flag=True, help="Overlay the fold (saddle-node) curves (srnn, pascanu over w, b).")
@click.option("--basin", type=float, metavar="X0", help="Overlay the basin boundary of the initial state X0.")
@click.option("--overlay", "overlay", multiple=True, type=click.Choice(("bifurcations", "lyapunov")),
              help="On plots over the grid plane of a surface computed with `grid --dynamics`: the bifurcation "
                   "lines (where the numbers of fixed points, cycles or stable ones change; on the floor of a 3-D "
                   "box) and / or the largest Lyapunov exponent lambda_T (contour lines; a 3-D surface's colour; a "
                   "layer of the interactive page); repeat for both.")
@click.option("--title", help="A title over the figure.")
@click.option("--fps", type=float, default=2.0, show_default=True, help="animation, animation-3d: lengths T per second.")
@click.option("--show-T", "show_T", type=int, metavar="T", help="interactive: the T the page opens at [default: the "
              "largest]; a link to the page ending in #T=50 opens it at T = 50 whatever this is.")
@click.option("--paths", "paths_ref", metavar="RUN.h5[:GROUP]", help="Draw the recorded paths of a training run's "
              "members (`landscape train --record-steps`) on a 2-D kind, coloured by fate, and beside it the loss "
              "at the real parameters against the loss at their projection.")
def command(files, kind, out, T, at, log, symlog, style, width, dpi, elev, azim, folds, basin, overlay, title, fps,
            show_T, paths_ref):
    """Draw stored surfaces: contours, 3-D views, panels across T, slices, comparisons, gradients.

    FILES are paths, or cache keys (or a unique start of one) as `landscape cache ls` prints them.

    \b
    landscape plot pascanu.h5 --kind wireframe --T 50 --elev 20 --azim -22 --out fig6.pdf
    landscape plot pascanu.h5 --kind contour --folds --basin 0.5 --out contour.png
    landscape plot pascanu.h5 --kind slices --at w=5 --out slices.pdf
    landscape plot srnn.h5 lstm.h5 gru.h5 --kind compare --T 10,50,100 --out cells.pdf
    landscape plot pascanu.h5 --kind interactive --out pascanu.html
    landscape plot pascanu.h5 --kind animation --log --out cliff.gif
    landscape plot gru.h5 --kind contour --overlay bifurcations --overlay lyapunov --out gru.png
    """
    from ..figures import kinds
    from ..figures.style import check_style, save_figure, use_style

    kinds.get_kind(kind).check_output(out)  # fail on a bad kind or extension before reading anything
    _width(width)
    check_style(style)
    if log and symlog:
        raise LandscapeError("choose one of --log and --symlog")
    if dpi is not None and not 0 < dpi <= MAX_DPI:
        raise LandscapeError(f"--dpi must be in (0, {MAX_DPI:g}], got {dpi:g}")
    Ts = parse_T(T) if T else None
    if show_T is not None and kind != "interactive":
        raise LandscapeError(f"--show-T applies to --kind interactive, not {kind}")
    files = [surface_file(f) for f in files]
    for f in files:
        check_readable(f)  # a permission: unreadable, not corrupt
    surfaces = [load(f) for f in files]
    scale = "log" if log else "symlog" if symlog else "linear"
    if paths_ref and kinds.get_kind(kind).write is not None:
        raise LandscapeError(f"--paths draws on a figure, not on --kind {kind}")
    if kinds.get_kind(kind).write is not None:  # writes its own file (html, gif, mp4)
        if at is not None:
            raise LandscapeError(f"--at applies to slices and gradnorm, not {kind}")
        shown = {"show_T": show_T} if show_T is not None else {}
        path = kinds.write(kind, surfaces, out, T=Ts, scale=scale, width=_width(width), elev=elev, azim=azim,
                           folds=folds, basin=basin, title=title, overlay=overlay, fps=fps, dpi=dpi, style=style,
                           **shown)
        click.echo(f"wrote {path} ({kind} of {', '.join(files)})")
        return
    with use_style(style):
        fig = kinds.draw(kind, surfaces, T=Ts, at=at, scale=scale, width=_width(width), elev=elev, azim=azim,
                         folds=folds, basin=basin, title=title, overlay=overlay)
        if paths_ref:
            _draw_paths(fig, surfaces[0], paths_ref, Ts)
        path = save_figure(fig, out, dpi=dpi)
    click.echo(f"wrote {path} ({kind} of {', '.join(files)})")


def _draw_paths(fig, surface, ref: str, Ts) -> None:
    """--paths RUN.h5[:GROUP]: the members' paths on the figure (``figures.paths.add_paths``)."""
    from ..figures.paths import add_paths
    from ..train.paths import load_paths

    run, _, group = ref.partition(":")
    add_paths(fig, surface, load_paths(run, group or None), None if Ts is None else max(Ts))
