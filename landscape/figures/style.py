"""The one style file: rc settings for ``paper``, ``paper-serif``, ``talk`` and ``own``, figure widths,
new figures, saving.

Every figure of the package is drawn inside ``use_style(name)`` and created by ``new_figure``:
a bare ``matplotlib.figure.Figure`` on the Agg canvas (headless, never pyplot, never shown).
Widths are those of a two-column paper: ``single`` 3.25 in, ``double`` 6.75 in. Fonts are
embedded as TrueType (pdf.fonttype 42) and SVG text stays text (svg.fonttype 'none').

``paper`` sets DejaVu Sans; ``paper-serif`` a Times-like serif with STIX mathematics, to sit in a
paper's body text; ``own`` changes nothing, so a user's matplotlibrc or ``plt.style.use(...)`` rules.
"""
from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path

from typing import TYPE_CHECKING

from ..errors import LandscapeError
from ..lazy import LazyModule

if TYPE_CHECKING:
    from matplotlib.figure import Figure

mpl = LazyModule("matplotlib")  # imported at first use: the CLI lists the styles without matplotlib

WIDTHS = {"single": 3.25, "double": 6.75}  # inches
FORMATS = ("pdf", "png", "svg", "pgf")

_COMMON = {
    "pdf.fonttype": 42,  # embed TrueType: text stays text, editable and searchable
    "ps.fonttype": 42,
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica"],
    "mathtext.fontset": "dejavusans",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titleweight": "normal",
    "image.cmap": "viridis",
    "legend.frameon": False,
    "savefig.bbox": None,  # constrained layout fits; figures without a layout engine are cropped
    "savefig.pad_inches": 0.02,
    "figure.dpi": 100,
}

_PAPER = {**_COMMON, "font.size": 7, "axes.labelsize": 7, "axes.titlesize": 7,
          "xtick.labelsize": 6, "ytick.labelsize": 6, "legend.fontsize": 6,
          "lines.linewidth": 1.0, "axes.linewidth": 0.6, "xtick.major.width": 0.6,
          "ytick.major.width": 0.6, "xtick.major.size": 2.5, "ytick.major.size": 2.5,
          "savefig.dpi": 300}
_SERIF = {"font.family": "serif", "font.serif": ["STIXGeneral", "Times New Roman", "Times", "DejaVu Serif"],
          "mathtext.fontset": "stix"}  # STIX ships with matplotlib: Times-like text and LaTeX-like mathematics

STYLES = {
    "paper": _PAPER,
    "paper-serif": {**_PAPER, **_SERIF},
    "talk": {**_COMMON, "font.size": 12, "axes.labelsize": 12, "axes.titlesize": 12,
             "xtick.labelsize": 10, "ytick.labelsize": 10, "legend.fontsize": 10,
             "lines.linewidth": 1.8, "axes.linewidth": 1.0, "savefig.dpi": 150},
    "own": {},  # the user's rcParams as they are
}


def check_style(name: str) -> str:
    if name not in STYLES:
        raise LandscapeError(f"unknown style {name!r}; choose from: {', '.join(STYLES)}")
    return name


def width_inches(width: str | float) -> float:
    """'single' -> 3.25, 'double' -> 6.75, or a number of inches."""
    if isinstance(width, str):
        if width not in WIDTHS:
            raise LandscapeError(f"unknown width {width!r}; choose from: {', '.join(WIDTHS)} (or inches)")
        return WIDTHS[width]
    if not width > 0:
        raise LandscapeError(f"figure width must be positive inches, got {width}")
    return float(width)


_PAPER_IS: list[str] = []  # the style that "paper" stands for inside ``paper_is`` blocks, innermost last


@contextmanager
def use_style(name: str = "paper"):
    """Apply a style's rc settings for the duration (figures must be made and saved inside).
    "paper" is the enclosing ``paper_is`` block's style where there is one."""
    if name == "paper" and _PAPER_IS:
        name = _PAPER_IS[-1]
    with mpl.rc_context(STYLES[check_style(name)]):
        yield


@contextmanager
def paper_is(name: str):
    """Draw every figure styled "paper" inside the block in style ``name`` instead (the
    reproductions draw in "paper"; ``landscape reproduce --style`` picks another)."""
    _PAPER_IS.append(check_style(name))
    try:
        yield
    finally:
        _PAPER_IS.pop()


def new_figure(width: str | float = "single", aspect: float = 0.75, height: float | None = None,
               layout: str | None = "constrained") -> Figure:
    """A headless figure (Agg canvas) ``width`` wide and ``aspect * width`` (or ``height``) tall."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    w = width_inches(width)
    fig = Figure(figsize=(w, height if height is not None else w * aspect), layout=layout)
    FigureCanvasAgg(fig)
    return fig


def figure_of(ax, width: str | float = "single", aspect: float = 0.75, projection: str | None = None):
    """(figure, axes): the axes given, or a new figure with one axes (3-D if projection='3d')."""
    if ax is not None:
        return ax.figure, ax
    fig = new_figure(width, aspect, layout=None if projection == "3d" else "constrained")
    return fig, fig.add_subplot(projection=projection)


def output_format(path) -> str:
    """The format named by a file's extension; LandscapeError for an unknown one."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise LandscapeError(f"cannot tell the figure format of {str(path)!r}; end the name in "
                             f"{', '.join('.' + f for f in FORMATS)}")
    return suffix


def save_figure(fig: Figure, path, dpi: float | None = None) -> Path:
    """Write ``fig`` to ``path`` in the format of its extension (pdf, png, svg, pgf)."""
    path = Path(path)
    fmt = output_format(path)
    if fmt == "pgf":
        tex = mpl.rcParams["pgf.texsystem"]
        if shutil.which(tex) is None:
            raise LandscapeError(f"pgf output needs LaTeX ({tex}) on the PATH, and it is not there; "
                                 f"write .pdf or .svg instead")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tight = {"bbox_inches": "tight"} if fig.get_layout_engine() is None else {}  # e.g. 3-D figures
        fig.savefig(path, format=fmt, **({"dpi": dpi} if dpi else {}), **tight)  # default dpi: the style's
    except OSError as err:
        raise LandscapeError(f"cannot write {path}: {err.strerror or err}") from None
    return path
