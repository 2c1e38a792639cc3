"""The plot kinds of `landscape plot`: one registry entry each, from which the option checks, the
figure and ``--help`` all derive.

    KINDS["contour"].render(surfaces, options) -> Figure    (the kinds drawn by matplotlib)
    KINDS["interactive"].write(surfaces, path, options)     (the kinds that write their own file)
    draw(kind, surfaces, T=..., ...) -> Figure               checks the options against the kind first

A kind declares what it takes (one T or several, one file or several, a stored field, 3-D views,
--at, the overlays: fold curves and basin boundaries on 2-D (w, b) plots, and a --dynamics file's
bifurcation lines and lambda_T on every plot over the grid plane); ``check`` turns every mismatch
into one LandscapeError.
Adding a kind is one ``register(PlotKind(...))``. Nothing here imports matplotlib until a kind
draws.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

from ..errors import LandscapeError


@dataclass(frozen=True)
class Options:
    """What `landscape plot` passes a kind (checked against it by ``PlotKind.check``)."""

    T: tuple[int, ...] | None = None
    at: str | None = None
    scale: str = "linear"
    width: object = None
    view: dict = field(default_factory=dict)  # elev, azim of a 3-D view
    folds: bool = False
    basin: float | None = None
    title: str | None = None
    overlay: tuple[str, ...] = ()  # of overlays.DYNAMICS_OVERLAYS: drawn from a --dynamics file's fields

    @property
    def one_T(self) -> int | None:
        return self.T[0] if self.T else None


@dataclass(frozen=True)
class PlotKind:
    """One kind of figure.

    render      (surfaces, Options) -> (Figure, axes to overlay the folds on); for matplotlib kinds
    write       (surfaces, path, Options) -> path; for kinds that write their own file (HTML, GIF)
    formats     the output suffixes of a ``write`` kind (matplotlib kinds take pdf, png, svg, pgf)
    one_T       shows one length (default: the largest)
    several     takes several files (default: one)
    needs       a stored field it draws (grad, hessian_eigvals, grad_norm_t)
    three_d     takes --elev/--azim
    takes_at    takes --at NAME=VALUE
    overlays    takes --folds/--basin (2-D plots over (w, b))
    dynamics    takes --overlay bifurcations|lyapunov (plots over the grid plane of a --dynamics file;
                a 3-D render colours its surface by lambda_T itself, see ``_colour``)
    double      drawn double width by default
    scales      the scales it draws (linear, log, symlog)
    labels      what a render kind labels its axes with, as templates of the surface's parameter names
                {x} and {y}: each is a whole axis label or title, or, ending in "= ", a fixed parameter
                named inside a title ("{x} = " in "pascanu on target, w = 5")
    """

    name: str
    summary: str
    render: Callable | None = None
    write: Callable | None = None
    formats: tuple[str, ...] = ()
    one_T: bool = False
    several: bool = False
    needs: str | None = None
    three_d: bool = False
    takes_at: bool = False
    overlays: bool = False
    dynamics: bool = False
    double: bool = False
    scales: tuple[str, ...] = ("linear", "log", "symlog")
    labels: tuple[str, ...] = ("{x}", "{y}")

    def check(self, surfaces: Sequence, options: Options) -> None:
        """One LandscapeError for the first option this kind does not take."""
        from .scales import check_scale, pick_T

        check_scale(options.scale)
        if options.scale not in self.scales:
            raise LandscapeError(f"--kind {self.name} draws a {' or '.join(self.scales)} scale, not {options.scale}")
        if not surfaces:
            raise LandscapeError("no surface file given")
        if not self.several and len(surfaces) > 1:
            several = [k.name for k in KINDS.values() if k.several]
            raise LandscapeError(f"--kind {self.name} plots one file; got {len(surfaces)} (only {', '.join(several)} "
                                 f"take{'s' if len(several) == 1 else ''} several)")
        if options.T is not None and self.one_T and len(options.T) > 1:
            raise LandscapeError(f"--kind {self.name} shows one T; got {', '.join(map(str, options.T))}")
        if (options.folds or options.basin is not None) and not self.overlays:
            takes = ", ".join(k.name for k in KINDS.values() if k.overlays)
            raise LandscapeError(f"--folds and --basin draw on 2-D (w, b) plots: {takes}; not {self.name}")
        if options.overlay:
            _check_overlay(self, surfaces, options.overlay)
        if options.at is not None and not self.takes_at:
            takes = " and ".join(k.name for k in KINDS.values() if k.takes_at)
            raise LandscapeError(f"--at applies to {takes}, not {self.name}")
        if options.view and not self.three_d:
            takes = ", ".join(k.name for k in KINDS.values() if k.three_d)
            raise LandscapeError(f"--elev and --azim set the view of 3-D plots ({takes}), not {self.name}")
        if self.needs:
            from .gradients import field as stored_field

            stored_field(surfaces[0], self.needs)  # one line naming the missing field
        for surface in surfaces:  # every requested T must be in every file
            for t in options.T or ():
                pick_T(surface, t)

    def check_output(self, path) -> None:
        """One LandscapeError for an output file this kind cannot write."""
        from pathlib import Path

        suffix = Path(str(path)).suffix.lower().lstrip(".")
        if self.write is not None:
            if suffix not in self.formats:
                raise LandscapeError(f"--kind {self.name} writes {' or '.join('.' + f for f in self.formats)}, "
                                     f"not {Path(str(path)).name!r}")
        else:
            writers = [k.name for k in KINDS.values() if suffix in k.formats]
            if writers:
                raise LandscapeError(f"--kind {self.name} draws a figure (.pdf, .png, .svg, .pgf); a .{suffix} file is "
                                     f"written by --kind {' or '.join(writers)}")
            from .style import output_format

            output_format(path)


KINDS: dict[str, PlotKind] = {}


def register(kind: PlotKind) -> PlotKind:
    """Add a kind to `landscape plot` (its name must be new)."""
    if kind.name in KINDS:
        raise LandscapeError(f"plot kind {kind.name!r} is registered already")
    if (kind.render is None) == (kind.write is None):
        raise LandscapeError(f"plot kind {kind.name!r} needs exactly one of render and write")
    KINDS[kind.name] = kind
    return kind


def get_kind(name: str) -> PlotKind:
    if name not in KINDS:
        raise LandscapeError(f"unknown kind {name!r}; choose from: {', '.join(KINDS)}")
    return KINDS[name]


def draw(kind: str, surfaces: Sequence, T: Sequence[int] | None = None, at=None, scale="linear",
         width=None, elev: float | None = None, azim: float | None = None, folds: bool = False,
         basin: float | None = None, title: str | None = None, overlay: Sequence[str] = ()):
    """The Figure of ``kind`` for ``surfaces`` (one, or several for the kinds that take several).

    T: the lengths (one for the one-T kinds, default the largest; panels/slices default to all,
    compare to the largest common one); at: 'w=5' for slices and gradnorm; folds / basin (x0):
    overlay the fold curves / the basin boundary of x0 on the 2-D (w, b) plots of cells with a
    one-unit map (srnn, pascanu); overlay: "bifurcations" and / or "lyapunov", drawn from the
    stored fields of a surface computed with --dynamics (lambda_T at each panel's T).
    """
    k = get_kind(kind)
    if k.render is None:
        raise LandscapeError(f"--kind {k.name} writes its own file ({', '.join(k.formats)}); use write()")
    options = Options(tuple(T) if T is not None else None, at, scale, width,
                      {key: v for key, v in (("elev", elev), ("azim", azim)) if v is not None}, folds, basin, title,
                      tuple(overlay))
    k.check(surfaces, options)
    options = Options(options.T, options.at, options.scale, width or ("double" if k.double else "single"),
                      options.view, folds, basin, title, options.overlay)
    fig, axes = k.render(list(surfaces), options)
    owners = [surfaces[n % len(surfaces)] for n in range(len(axes))]  # compare: row-major axes
    if folds or basin is not None:
        _overlay(axes, owners, folds, basin)
    if options.overlay:
        from .overlays import overlay_dynamics

        overlay_dynamics(axes, owners, _axes_T(k, surfaces, options, len(axes)), options.overlay)
    if title:
        fig.suptitle(title)
    return fig


def write(kind: str, surfaces: Sequence, path, T=None, scale="linear", width=None, elev=None, azim=None,
          folds: bool = False, basin: float | None = None, title=None, overlay: Sequence[str] = (), **extra):
    """Write a kind that makes its own file (the interactive page, the animations) and return its
    path; the options are draw's, ``extra`` the kind's own (fps, dpi, style)."""
    k = get_kind(kind)
    if k.write is None:
        raise LandscapeError(f"--kind {k.name} is a figure; use draw() and save_figure()")
    options = Options(tuple(T) if T is not None else None, None, scale, width,
                      {key: v for key, v in (("elev", elev), ("azim", azim)) if v is not None}, folds, basin, title,
                      tuple(overlay))
    k.check_output(path)
    k.check(surfaces, options)
    return k.write(list(surfaces), path, options, **extra)


def _overlay(axes, surfaces, folds: bool, basin: float | None) -> None:
    """Fold curves and basin boundaries on every axes (surfaces[n] drawn on axes[n]) whose surface is of
    a cell with a one-unit map over (w, b)."""
    from .. import dynamics
    from .overlays import overlay_basin, overlay_folds

    drawn = 0
    for ax, s in zip(axes, surfaces):
        cell = (s.spec or {}).get("cell")
        try:
            m = dynamics.one_unit_map(cell)
        except LandscapeError:
            continue
        if {s.x_name, s.y_name} != {"w", "b"}:
            continue
        names = (s.x_name, s.y_name)
        if folds:
            overlay_folds(ax, m, axes=names, label="folds" if drawn == 0 else None)
        if basin is not None:
            overlay_basin(ax, m, basin, axes=names,
                          label=f"basin boundary, x0 = {basin:g}" if drawn == 0 else None)
        drawn += 1
    if not drawn:
        cells = sorted({str((s.spec or {}).get("cell")) for s in surfaces})
        raise LandscapeError(f"--folds/--basin need a surface of srnn or pascanu over (w, b); got "
                             f"{', '.join(cells)} over ({surfaces[0].x_name}, {surfaces[0].y_name})")
    axes[0].legend(loc="upper right", frameon=True, facecolor="white", edgecolor="none", framealpha=0.85)


def _check_overlay(kind: PlotKind, surfaces, overlay) -> None:
    """One LandscapeError for an --overlay this kind or these files cannot draw."""
    from .overlays import DYNAMICS_OVERLAYS, dynamics_field

    for name in overlay:
        if name not in DYNAMICS_OVERLAYS:
            raise LandscapeError(f"unknown overlay {name!r}; choose from: {', '.join(DYNAMICS_OVERLAYS)}")
    if not kind.dynamics:
        takes = ", ".join(k.name for k in KINDS.values() if k.dynamics)
        raise LandscapeError(f"--overlay draws on plots over the grid plane: {takes}; not {kind.name}")
    for surface in surfaces:
        dynamics_field(surface, "n_cycles" if "bifurcations" in overlay else "lyapunov")


def _axes_T(kind: PlotKind, surfaces, o: Options, n_axes: int) -> list[int]:
    """The length each of a render kind's axes shows: panels one T each, compare rows of T (its
    files in columns), the others one T (default the largest; compare's the largest common one)."""
    if kind.name == "panels":
        return [int(t) for t in (o.T or surfaces[0].T)][:n_axes]
    if kind.several:
        Ts = o.T or (max(set.intersection(*(set(map(int, s.T)) for s in surfaces))),)
        return [int(Ts[n // len(surfaces)]) for n in range(n_axes)]
    return [int(o.one_T or max(surfaces[0].T))] * n_axes


# ---------------------------------------------------------------------------------------------
# the built-in kinds


def _single(ax):
    return ax.figure, [ax]


def _contour(surfaces, o):
    from .loss import plot_contour

    return _single(plot_contour(surfaces[0], T=o.one_T, scale=o.scale, width=o.width))


def _colour(surface, o):
    """--overlay lyapunov on a 3-D kind: lambda_T at the plot's T as the surface's colour, else None."""
    if "lyapunov" not in o.overlay:
        return None
    from .overlays import lyapunov_colour

    return lyapunov_colour(surface, o.one_T)


def _surface(surfaces, o):
    from .loss import plot_surface

    s = surfaces[0]
    return _single(plot_surface(s, T=o.one_T, scale=o.scale, width=o.width, colour=_colour(s, o), **o.view))


def _wireframe(surfaces, o):
    from .loss import plot_wireframe

    s = surfaces[0]
    return _single(plot_wireframe(s, T=o.one_T, scale=o.scale, width=o.width, colour=_colour(s, o), **o.view))


def _panels(surfaces, o):
    from .loss import plot_panels

    s = surfaces[0]
    fig = plot_panels(s, Ts=o.T, scale=o.scale, width=o.width)
    return fig, fig.axes[:len(o.T) if o.T else len(s.T)]


def _slices(surfaces, o):
    from .loss import plot_slices

    s = surfaces[0]
    at = o.at if o.at is not None else f"{s.x_name}={float(s.x[len(s.x) // 2])!r}"
    return _single(plot_slices(s, at=at, Ts=o.T, scale=o.scale, width=o.width))


def _compare(surfaces, o):
    from .loss import plot_compare

    fig = plot_compare(surfaces, Ts=o.T, scale=o.scale, width=o.width)
    return fig, fig.axes[:len(surfaces) * (len(o.T) if o.T else 1)]


def _gradnorm(surfaces, o):
    from .gradients import plot_gradnorm_pair

    return plot_gradnorm_pair(surfaces[0], at=o.at, width=o.width), []


def _quiver(surfaces, o):
    from .gradients import plot_quiver

    return _single(plot_quiver(surfaces[0], T=o.one_T, scale=o.scale, width=o.width))


def _curvature(surfaces, o):
    from .gradients import plot_curvature

    fig = plot_curvature(surfaces[0], T=o.one_T, width=o.width)
    return fig, fig.axes[:2]


for _kind in (
    PlotKind("contour", "filled contours at one T", _contour, one_T=True, overlays=True, dynamics=True),
    PlotKind("surface", "a 3-D surface at one T", _surface, one_T=True, three_d=True, dynamics=True),
    PlotKind("wireframe", "a 3-D wireframe at one T (Pascanu Fig. 6)", _wireframe, one_T=True, three_d=True,
             dynamics=True),
    PlotKind("panels", "contours at several T on one colour scale", _panels, overlays=True, dynamics=True, double=True),
    PlotKind("slices", "1-D slices at a fixed parameter, one line per T", _slices, takes_at=True,
             labels=("{y}", "{x} = ")),
    PlotKind("compare", "several files side by side, rows T", _compare, several=True, overlays=True, dynamics=True, double=True),
    PlotKind("gradnorm", "||dL/dh_t|| against t at a point and over the grid", _gradnorm, needs="grad_norm_t",
             takes_at=True, double=True, labels=("t", "{y}", "{x} = ")),
    PlotKind("quiver", "the gradient field at one T", _quiver, one_T=True, needs="grad", overlays=True, dynamics=True),
    PlotKind("curvature", "the Hessian's eigenvalues at one T", _curvature, one_T=True, needs="hessian_eigvals",
             overlays=True, dynamics=True, double=True),
):
    register(_kind)


def _page(surfaces, path, o, show_T: int | None = None, **_):
    """The interactive page: fold curves, the target task's basin boundary and a --dynamics file's
    bifurcation lines are drawn where they exist (each can be hidden from the page's legend);
    --basin X0 picks another x0; --overlay lyapunov adds lambda_T's contour lines at the slider's T;
    show_T: the T it opens at (default the largest)."""
    from .interactive import write_page

    return write_page(surfaces, path, log=o.scale == "log", title=o.title, Ts=o.T, start=show_T,
                      basin=o.basin if o.basin is not None else "auto",  # bifurcation lines wherever stored
                      lyapunov="lyapunov" in o.overlay)


def _animation(three_d: bool):
    def write(surfaces, path, o, fps: float = 2.0, dpi: float | None = None, style: str = "paper"):
        from .animation import write_animation

        return write_animation(surfaces[0], path, kind="surface" if three_d else "contour", log=o.scale == "log",
                               fps=fps, Ts=o.T, folds=o.folds, basin=o.basin, title=o.title, overlay=o.overlay,
                               width=o.width or "single", dpi=dpi or 200.0, style=style, **o.view)

    return write


for _kind in (
    PlotKind("interactive", "an offline HTML page: 3-D surface and contour with a slider over T (several files: "
             "linked panels)", write=_page, formats=("html", "htm"), several=True, overlays=True, dynamics=True,
             scales=("linear", "log")),
    PlotKind("animation", "a GIF (or MP4 with ffmpeg) of the contour across T, one frame per T",
             write=_animation(False), formats=("gif", "mp4"), overlays=True, dynamics=True, scales=("linear", "log")),
    PlotKind("animation-3d", "a GIF (or MP4) of the 3-D surface across T", write=_animation(True),
             formats=("gif", "mp4"), three_d=True, dynamics=True, scales=("linear", "log")),
):
    register(_kind)
