"""An interactive page of loss surfaces across T: one self-contained HTML file (plotly.js inside,
no network), a 3-D surface and a contour side by side, a slider over T, one colour scale.

    from landscape.figures.interactive import write_page, screenshot_page
    write_page(["pascanu.h5"], "pascanu.html", log=True)
    screenshot_page("pascanu.html", "pascanu.png", T=50)      # a still frame (headless Chromium)

Several files are linked panels: one column per file (the 3-D view above, the contour below),
one slider driving all of them, one colour scale for all of them and all T, cameras kept in step.
Only the lengths T that every file has are shown (the page says which were left out).

What is drawn and how:

- ``loss[k, i, j]`` is at T_k, x_i, y_j; plotly wants z[row = y][column = x], so the page builds
  z[j][i] = loss[k, i, j] (x horizontal, y vertical, as in the matplotlib figures).
- +-inf and NaN are masked (holes in the 3-D view, the grey background in the contour), never
  clipped, and counted: per T on the contour, for all T in the header. A log scale plots
  log10(loss) and also masks values <= 0, and says so. The hover shows the stored value
  (e.g. "+inf (masked)").
- Hover: the two parameters, the loss and, when the file stores ``grad``, ||grad L|| =
  sqrt(dL/dx^2 + dL/dy^2) in the grid plane.
- srnn / pascanu over (w, b) (one unit): the fold curves (white dashes) and, for the task
  ``target``, the basin boundary of its x0 (red dots), on the contour and on the floor of the
  3-D box (``landscape.dynamics``; the same curves as ``figures.overlays``).
- Any surface computed with ``grid --dynamics``: its bifurcation lines (magenta), where the
  stored numbers of cycles of a period or of stable ones change between neighbouring points; with
  ``lyapunov=True`` (``plot --overlay lyapunov``) also labelled contour lines of lambda_T at the
  slider's T on the contour (one set of levels for all T, hidden or shown from the legend), and
  lambda_T in the hover.

The page carries each surface once per T as base64 little-endian float32 (float64 when a finite
value lies outside float32's range, so that nothing finite turns into inf or 0), and a small
script turns the slider's T into the traces' data. Needs the optional ``plotly`` package
(``pip install 'rnn-landscape[page]'``); the still frame needs Chromium.
"""
from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import dynamics
from ..errors import LandscapeError
from .loss import LOSS_CMAP
from .scales import describe, finite_range, mask

F32_RANGE = (1e-37, 1e37)  # nonzero finite |loss| inside: float32 keeps it finite and nonzero
LEVELS = 21  # contour levels over the shared colour range (as figures.loss)
VIEW_ELEV, VIEW_AZIM = 25.0, -60.0  # the 3-D view, in matplotlib's angles (as plot_surface)
CURVE_POINTS = 400  # samples of a fold curve or basin boundary along w
LYAPUNOV_LEVELS = 8  # about this many lambda_T contour levels over the page's range
LYAPUNOV_LINE = dict(color="rgba(20,20,20,0.85)", width=1.2)  # as figures.overlays.LYAPUNOV_STYLE
LYAPUNOV_NAME = "λ_T"
CURVE_STYLES = {"folds": dict(color="white", dash="dash", width=2), "basin": dict(color="#d62728", dash="dot", width=2.5),
                "bifurcations": dict(color="magenta", dash="solid", width=2)}  # plotly line styles by Curve.kind
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
HEADLESS_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-sync",
                  "--hide-scrollbars", "--run-all-compositor-stages-before-draw")


# ---------------------------------------------------------------------------------------------
# the data of a page (compute; no plotly)


@dataclass(frozen=True)
class Curve:
    """A curve in a panel's (x, y) plane: x, y (n,) in the plotted parameters, NaN = a gap."""

    name: str  # legend text
    kind: str  # 'folds' | 'basin' | 'bifurcations'
    x: np.ndarray
    y: np.ndarray


@dataclass(frozen=True)
class Panel:
    """One surface on the page, at the page's lengths T.

    loss (nT, nx, ny) as stored (+-inf, NaN kept); grad_norm (nT, nx, ny) or None; notes: the
    masking note per T ('' when nothing is masked); total_note over all T; curves: overlays;
    lyapunov (nT, nx, ny): lambda_T as stored (-inf where the map is constant), or None.
    """

    name: str
    source: str
    x_name: str
    x: np.ndarray
    y_name: str
    y: np.ndarray
    loss: np.ndarray
    grad_norm: np.ndarray | None
    notes: tuple[str, ...]
    total_note: str
    curves: tuple[Curve, ...]
    lyapunov: np.ndarray | None = None


@dataclass(frozen=True)
class PageData:
    """Everything a page shows. T (nT,): the lengths on the slider; left_out: one line naming the
    lengths some files have but not all ('' if none); crange: the shared colour range in loss
    units (on a log scale, of the positive values)."""

    title: str
    T: tuple[int, ...]
    start: int  # index into T shown first
    log: bool
    panels: tuple[Panel, ...]
    crange: tuple[float, float]
    left_out: str


def _as_surface(s):
    if isinstance(s, (str, os.PathLike)):
        from ..store import load

        return load(s)
    return s


def common_T(surfaces) -> tuple[tuple[int, ...], str]:
    """The lengths every surface has, ascending, and a note on the others ('' if none left out).
    LandscapeError when no length is common."""
    sets = [set(np.asarray(s.T).astype(int).tolist()) for s in surfaces]
    common = set.intersection(*sets)
    if not common:
        have = "; ".join(f"{_source(s)} has T = {', '.join(map(str, sorted(t)))}" for s, t in zip(surfaces, sets))
        raise LandscapeError(f"the surfaces have no length T in common ({have})")
    extra = [(s, sorted(t - common)) for s, t in zip(surfaces, sets) if t - common]
    note = ""
    if extra:
        note = ("showing the lengths all files have; not shown: " +
                "; ".join(f"{_source(s)} T = {', '.join(map(str, t))}" for s, t in extra))
    return tuple(sorted(common)), note


def _source(s) -> str:
    return Path(str(getattr(s, "path", "") or "surface")).name


def basin_x0(surface, basin="auto") -> float | None:
    """The x0 whose basin boundary is drawn: ``basin`` itself when a number, None when None or
    False, and for 'auto' the task's x0 when the task is ``target`` (spec['task_params']['x0'])."""
    if basin is None or basin is False:
        return None
    if basin != "auto":
        return float(basin)
    spec = getattr(surface, "spec", None) or {}
    if spec.get("task") == "target":
        x0 = (spec.get("task_params") or {}).get("x0")
        return None if x0 is None else float(x0)
    return None


def has_dynamics(surface) -> bool:
    """True for one-unit srnn / pascanu surfaces over (w, b): the ones with fold curves."""
    spec = getattr(surface, "spec", None) or {}
    return (spec.get("cell") in dynamics.DYNAMICS_CELLS and {surface.x_name, surface.y_name} == {"w", "b"}
            and int(spec.get("hidden") or 1) == 1)


def dynamics_curves(surface, folds: bool = True, basin="auto", num: int = CURVE_POINTS) -> tuple[Curve, ...]:
    """Fold curves and the basin boundary of ``basin_x0(surface, basin)`` over the grid's w range,
    in the panel's (x, y) order, NaN outside the grid's b range. () for other surfaces."""
    if not has_dynamics(surface):
        return ()
    cell = surface.spec["cell"]
    w_first = surface.x_name == "w"
    w_grid, b_grid = (surface.x, surface.y) if w_first else (surface.y, surface.x)
    w_lo, w_hi = float(np.min(w_grid)), float(np.max(w_grid))
    b_lo, b_hi = float(np.min(b_grid)), float(np.max(b_grid))

    def inside(w, b):
        w, b = np.asarray(w, float), np.asarray(b, float)
        with np.errstate(invalid="ignore"):
            b = np.where((b >= b_lo) & (b <= b_hi), b, np.nan)
        return (w, b) if w_first else (b, w)

    out = []
    cusp = 1.0 if cell == "srnn" else 4.0
    if folds and w_hi > cusp:
        w = np.linspace(max(w_lo, cusp), w_hi, num)  # (num,)
        f = dynamics.fold_points(cell, w)
        # one line through the cusp: the upper branch (b2) reversed, then the lower one (b1)
        out.append(Curve("folds", "folds", *inside(np.concatenate([w[::-1], w]),
                                                    np.concatenate([f.b2[::-1], f.b1]))))
    x0 = basin_x0(surface, basin)
    if x0 is not None:
        w = np.linspace(w_lo, w_hi, num)  # (num,)
        bb = dynamics.basin_boundary(cell, x0, w)
        out.append(Curve(f"basin boundary, x0 = {x0:g}", "basin", *inside(w, bb.b)))
    return tuple(c for c in out if np.isfinite(c.x).any() and np.isfinite(c.y).any())


def bifurcation_curve(surface) -> tuple[Curve, ...]:
    """The bifurcation lines of a surface computed with --dynamics (``dynamics_map.
    stored_bifurcation_segments``) as one curve, its segments separated by NaN gaps; () for
    others."""
    from ..dynamics_map import stored_bifurcation_segments
    from ..store.format import PERIOD_FIELDS

    fields = getattr(surface, "fields", None) or {}
    if not all(name in fields for name in PERIOD_FIELDS):
        return ()
    seg = stored_bifurcation_segments(fields, surface.x, surface.y)  # (L, 2, 2)
    if not len(seg):
        return ()
    gap = np.full((len(seg), 1, 2), np.nan)
    xy = np.concatenate([seg, gap], 1).reshape(-1, 2)  # (3 L, 2): a segment's ends, then a gap
    return (Curve("bifurcation lines", "bifurcations", xy[:, 0], xy[:, 1]),)


def grad_norm(surface, ks) -> np.ndarray | None:
    """||grad L|| (len(ks), nx, ny) in the grid plane from the stored ``grad``, or None."""
    g = (getattr(surface, "fields", None) or {}).get("grad")
    if g is None:
        return None
    g = np.asarray(g, dtype=float)[list(ks)]  # (nT, nx, ny, 2)
    with np.errstate(invalid="ignore", over="ignore"):
        return np.hypot(g[..., 0], g[..., 1])


def compute_page(surfaces, log: bool = False, title: str | None = None, Ts: Sequence[int] | None = None,
                 start: int | None = None, folds: bool = True, basin="auto", lyapunov: bool = False) -> PageData:
    """The data of a page: the common lengths (or ``Ts``), the masked counts, the shared colour
    range and the overlays. ``surfaces``: Surface objects or paths; ``start``: the T shown first
    (default the largest, where the surface has formed); ``basin``: 'auto' (the target task's x0), a number x0, or None;
    ``lyapunov``: carry every file's lambda_T (each must be computed with --dynamics)."""
    surfaces = [_as_surface(s) for s in (surfaces if isinstance(surfaces, (list, tuple)) else [surfaces])]
    if not surfaces:
        raise LandscapeError("no surface given")
    T, left_out = common_T(surfaces)
    if Ts is not None:
        missing = [int(t) for t in Ts if int(t) not in T]
        if missing:
            raise LandscapeError(f"T = {', '.join(map(str, missing))} not in every file; the common lengths "
                                 f"are T = {', '.join(map(str, T))}")
        T = tuple(sorted({int(t) for t in Ts}))
    scale = "log" if log else "linear"
    if lyapunov:
        from .overlays import dynamics_field
    panels, masks = [], []
    for s in surfaces:
        Ts_s = np.asarray(s.T).astype(int).tolist()
        ks = [Ts_s.index(t) for t in T]
        loss = np.asarray(s.loss, dtype=float)[ks]  # (nT, nx, ny)
        ms = [mask(loss[n], scale) for n in range(len(T))]
        masks += ms
        total = _total_note(ms)
        panels.append(Panel(name=describe(s) or _source(s), source=_source(s), x_name=s.x_name,
                            x=np.asarray(s.x, float), y_name=s.y_name, y=np.asarray(s.y, float), loss=loss,
                            grad_norm=grad_norm(s, ks), notes=tuple(m.note() for m in ms), total_note=total,
                            curves=dynamics_curves(s, folds, basin) + bifurcation_curve(s),
                            lyapunov=np.asarray(dynamics_field(s, "lyapunov"), float)[ks] if lyapunov else None))
    crange = finite_range(masks, scale)
    if start is None:
        k0 = len(T) - 1
    elif int(start) in T:
        k0 = T.index(int(start))
    else:
        raise LandscapeError(f"start T = {start} is not on the page; it shows T = {', '.join(map(str, T))}")
    if title is None:
        title = " | ".join(dict.fromkeys(p.name for p in panels))
    return PageData(title=title, T=T, start=k0, log=bool(log), panels=tuple(panels), crange=crange,
                    left_out=left_out)


def _total_note(masks) -> str:
    from .scales import merge_notes

    return merge_notes(list(masks))


# ---------------------------------------------------------------------------------------------
# the plotly figure (layout and traces; the script fills in z for the slider's T)


def colorscale(cmap: str = LOSS_CMAP, n: int = 33) -> list:
    """A plotly colour scale sampled from a matplotlib colour map (the same colours as the
    static figures)."""
    from matplotlib import colormaps

    cm = colormaps[cmap]
    return [[t, "rgb({:.0f},{:.0f},{:.0f})".format(*(255 * np.asarray(cm(t)[:3])))] for t in np.linspace(0, 1, n)]


def lyapunov_levels(panels) -> dict | None:
    """Plotly contour levels (start, end, size) of lambda_T over every panel and T of the page: about
    ``LYAPUNOV_LEVELS`` round values, 0 among them when the range holds it; None when no panel
    carries lambda_T or it has no finite spread."""
    from matplotlib.ticker import MaxNLocator

    values = [p.lyapunov[np.isfinite(p.lyapunov)] for p in panels if p.lyapunov is not None]
    finite = np.concatenate(values) if values else np.empty(0)
    if not finite.size or finite.min() == finite.max():
        return None
    marks = MaxNLocator(LYAPUNOV_LEVELS).tick_values(finite.min(), finite.max())  # multiples of the step
    return dict(start=float(marks[0]), end=float(marks[-1]), size=float(marks[1] - marks[0]))


def log_ticks(lo: float, hi: float) -> tuple[list[float], list[str]]:
    """Ticks of a log colour scale, in log10 units, with their labels: 1, 2, 5 x 10^k within a
    range under four decades, powers of ten (every other one past nine) otherwise."""
    a, b = np.log10(lo), np.log10(hi)
    decades = b - a
    subs = (1.0, 2.0, 5.0) if decades < 4 else (1.0,)
    vals = [np.log10(s) + e for e in range(int(np.floor(a)), int(np.ceil(b)) + 1) for s in subs]
    vals = [v for v in vals if a - 1e-9 <= v <= b + 1e-9]
    if len(vals) > 9 and decades >= 4:
        vals = [v for v in vals if round(v) % 2 == 0]
    if decades < 4:
        text = [f"{10 ** v:.3g}" for v in vals]
    else:
        text = [f"10<sup>{int(round(v))}</sup>" for v in vals]
    return vals, text


def _display_range(data: PageData) -> tuple[float, float]:
    lo, hi = data.crange
    return (float(np.log10(lo)), float(np.log10(hi))) if data.log else (float(lo), float(hi))


def page_figure(data: PageData):
    """The plotly Figure of a page without its z data (the page's script sets z for each T).

    One surface: [3-D | contour] side by side. Several: one column per surface, the 3-D views in
    the top row and the contours below. Trace order per panel: surface, contour, lambda_T's contour
    lines (when carried), then overlays (2-D and 3-D). Returns (figure, index) where index[p] =
    {'surface': i, 'contour': j, 'lyapunov': l or None, 'note': annotation index}.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    n = len(data.panels)
    rows, cols = (1, 2) if n == 1 else (2, n)
    specs = ([[{"type": "scene"}, {"type": "xy"}]] if n == 1
             else [[{"type": "scene"}] * n, [{"type": "xy"}] * n])
    titles = ([f"{data.panels[0].name}: 3-D", f"{data.panels[0].name}: contour"] if n == 1
              else [p.name + (f" ({p.source})" if p.source != p.name else "") for p in data.panels] + [""] * n)
    fig = make_subplots(rows=rows, cols=cols, specs=specs, subplot_titles=titles,
                        horizontal_spacing=0.08 if n == 1 else 0.1, vertical_spacing=0.08)
    zlo, zhi = _display_range(data)
    size = (zhi - zlo) / (LEVELS - 1)
    zlabel = "loss (log scale)" if data.log else "loss"
    ticks = log_ticks(*data.crange) if data.log else None
    cbar = dict(title=dict(text=zlabel, side="right"), thickness=14, len=0.9 if n == 1 else 0.45,
                y=0.5 if n == 1 else 0.25, yanchor="middle")
    if ticks:
        cbar.update(tickvals=ticks[0], ticktext=ticks[1])
    fig.update_layout(coloraxis=dict(colorscale=colorscale(), cmin=zlo, cmax=zhi, colorbar=cbar))
    index = []
    shown = set()
    lyap_levels = lyapunov_levels(data.panels)
    for p, panel in enumerate(data.panels):
        r3, c3, r2, c2 = (1, 1, 1, 2) if n == 1 else (1, p + 1, 2, p + 1)
        fig.add_trace(go.Surface(x=panel.x.tolist(), y=panel.y.tolist(), z=[[None]], coloraxis="coloraxis",
                                 hoverinfo="text", name=panel.name, showlegend=False,
                                 contours=dict(z=dict(show=False))), row=r3, col=c3)
        i_surface = len(fig.data) - 1
        fig.add_trace(go.Contour(x=panel.x.tolist(), y=panel.y.tolist(), z=[[None]], coloraxis="coloraxis",
                                 autocontour=False, contours=dict(start=zlo, end=zhi, size=size,
                                                                  coloring="heatmap"),
                                 line=dict(width=0.6, color="rgba(0,0,0,0.35)"), hoverinfo="text",
                                 hoverongaps=True, name=panel.name, showlegend=False), row=r2, col=c2)
        i_contour = len(fig.data) - 1
        i_lyapunov = None
        if panel.lyapunov is not None and lyap_levels is not None:
            fig.add_trace(go.Contour(x=panel.x.tolist(), y=panel.y.tolist(), z=[[None]], autocontour=False,
                                     contours=dict(coloring="lines", showlabels=True, labelfont=dict(size=10),
                                                   **lyap_levels),
                                     colorscale=[[0, LYAPUNOV_LINE["color"]], [1, LYAPUNOV_LINE["color"]]],
                                     showscale=False, line=dict(width=LYAPUNOV_LINE["width"]), hoverinfo="skip",
                                     name=LYAPUNOV_NAME, legendgroup=LYAPUNOV_NAME,
                                     showlegend=LYAPUNOV_NAME not in shown), row=r2, col=c2)
            shown.add(LYAPUNOV_NAME)
            i_lyapunov = len(fig.data) - 1
        for curve in panel.curves:
            style = CURVE_STYLES[curve.kind]
            first = curve.name not in shown
            shown.add(curve.name)
            fig.add_trace(go.Scatter(x=_nan_none(curve.x), y=_nan_none(curve.y), mode="lines", line=style,
                                     name=curve.name, legendgroup=curve.name, showlegend=first,
                                     hoverinfo="skip"), row=r2, col=c2)
            floor = [zlo if v is not None else None for v in _nan_none(curve.y)]
            fig.add_trace(go.Scatter3d(x=_nan_none(curve.x), y=_nan_none(curve.y), z=floor, mode="lines",
                                       line=dict(color=style["color"], width=4, dash=style["dash"]),
                                       name=curve.name, legendgroup=curve.name, showlegend=False,
                                       hoverinfo="skip"), row=r3, col=c3)
        # axes: the grid's extent, x horizontal, y vertical; the 3-D box fixed for all T
        scene = "scene" if p == 0 else f"scene{p + 1}"
        zaxis = dict(title=dict(text=zlabel), range=[zlo, zhi], nticks=6)
        if ticks:
            every = -(-len(ticks[0]) // 6)  # at most about six labels on the short z axis
            zaxis.update(tickvals=ticks[0][::every], ticktext=ticks[1][::every])
        fig.update_layout({scene: dict(
            xaxis=dict(title=dict(text=panel.x_name), range=[float(panel.x.min()), float(panel.x.max())], nticks=6),
            yaxis=dict(title=dict(text=panel.y_name), range=[float(panel.y.min()), float(panel.y.max())], nticks=6),
            zaxis=zaxis, aspectmode="manual", aspectratio=dict(x=1, y=1, z=0.75),
            camera=dict(eye=_eye(VIEW_ELEV, VIEW_AZIM)))})
        fig.update_xaxes(title_text=panel.x_name, range=[float(panel.x.min()), float(panel.x.max())],
                         showgrid=False, zeroline=False, row=r2, col=c2, ticks="outside")
        fig.update_yaxes(title_text=panel.y_name, range=[float(panel.y.min()), float(panel.y.max())],
                         showgrid=False, zeroline=False, row=r2, col=c2, ticks="outside")
        axis_id = fig.data[i_contour].xaxis  # 'x', 'x2', ...
        fig.add_annotation(text="", xref=f"{axis_id} domain", yref=f"{fig.data[i_contour].yaxis} domain",
                           x=0.01, y=0.99, xanchor="left", yanchor="top", showarrow=False,
                           font=dict(size=11), bgcolor="rgba(255,255,255,0.85)", bordercolor="#999",
                           borderwidth=1, visible=False)
        index.append({"surface": i_surface, "contour": i_contour, "lyapunov": i_lyapunov,
                      "note": len(fig.layout.annotations) - 1})
    steps = [dict(method="skip", label=str(t), value=str(k), args=[None]) for k, t in enumerate(data.T)]
    fig.update_layout(
        title=dict(text=_page_title(data, data.start), x=0.5, xanchor="center", y=0.98, font=dict(size=18)),
        height=560 if n == 1 else 980, margin=dict(l=70, r=100, t=70, b=40),
        plot_bgcolor="rgb(224,224,224)",  # masked points: the grey background shows through
        paper_bgcolor="white", modebar=dict(orientation="v"),
        font=dict(family="DejaVu Sans, Arial, sans-serif", size=13),
        legend=dict(orientation="h", x=1.0, xanchor="right", y=1.06, yanchor="bottom",
                    bgcolor="rgba(160,160,160,0.55)", font=dict(color="black")),
        # the slider starts right of the buttons (stacked, about 90 px wide), never under them
        sliders=[dict(active=data.start, steps=steps, x=0.14, len=0.86, y=0, yanchor="top",
                      pad=dict(t=40, b=10), currentvalue=dict(prefix="T = ", xanchor="center", font=dict(size=16)))],
        updatemenus=[dict(type="buttons", direction="down", showactive=False, x=0.0, xanchor="left", y=0,
                          yanchor="top", pad=dict(t=30, r=10),
                          buttons=[dict(label="▶ play", method="skip", args=[None]),
                                   dict(label="❚❚ pause", method="skip", args=[None])])],
    )
    return fig, index


def _eye(elev: float, azim: float, distance: float = 2.25) -> dict:
    """A plotly camera eye for matplotlib's view angles (degrees): the same view as the static
    3-D figures (``plot_surface``: elev 25, azim -60)."""
    e, a = np.radians(elev), np.radians(azim)
    return dict(x=float(distance * np.cos(e) * np.cos(a)), y=float(distance * np.cos(e) * np.sin(a)),
                z=float(distance * np.sin(e)))


def _page_title(data: PageData, k: int) -> str:
    return f"{_html(data.title)}: T = {data.T[k]}"


def _html(text: str) -> str:
    return html.escape(str(text), quote=False)


def _nan_none(a) -> list:
    return [None if not np.isfinite(v) else float(v) for v in np.asarray(a, dtype=float)]


# ---------------------------------------------------------------------------------------------
# the HTML page


def _pack(a: np.ndarray, dtype: str) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype="<" + dtype).tobytes()).decode("ascii")


def _dtype_for(a: np.ndarray) -> str:
    """'f4' when float32 keeps every finite value finite and nonzero ones nonzero, else 'f8'."""
    v = np.abs(a[np.isfinite(a) & (a != 0)])
    return "f4" if not v.size or (v.min() >= F32_RANGE[0] and v.max() <= F32_RANGE[1]) else "f8"


def page_payload(data: PageData, index) -> dict:
    """The JSON the page's script reads: per panel and T the packed loss (and ||grad L||, and
    lambda_T)."""
    panels = []
    for panel, idx in zip(data.panels, index):
        dtype = _dtype_for(panel.loss)
        entry = dict(name=panel.name, nx=len(panel.x), ny=len(panel.y), x=panel.x.tolist(), y=panel.y.tolist(),
                     x_name=_html(panel.x_name), y_name=_html(panel.y_name), dtype=dtype,
                     loss=[_pack(panel.loss[k], dtype) for k in range(len(data.T))],  # (nx, ny) "ij", row-major
                     notes=[f"T = {t}: {note}" if note else "" for t, note in zip(data.T, panel.notes)], **idx)
        if panel.grad_norm is not None:
            gdtype = _dtype_for(panel.grad_norm)
            entry.update(gdtype=gdtype, gnorm=[_pack(panel.grad_norm[k], gdtype) for k in range(len(data.T))])
        if panel.lyapunov is not None:
            ldtype = _dtype_for(panel.lyapunov)
            entry.update(ldtype=ldtype, lyap=[_pack(panel.lyapunov[k], ldtype) for k in range(len(data.T))])
        panels.append(entry)
    return dict(T=list(data.T), start=data.start, log=data.log, title=_html(data.title), panels=panels,
                interval_ms=900)


_SCRIPT = r"""
(function () {
  "use strict";
  var PAGE = JSON.parse(document.getElementById("landscape-data").textContent);
  var FIG = JSON.parse(document.getElementById("landscape-figure").textContent);
  var gd = document.getElementById("landscape-plot");
  var cache = {};
  var current = -1, busy = Promise.resolve(), timer = null;

  function decode(b64, dtype) {
    var bin = atob(b64), u8 = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) u8[i] = bin.charCodeAt(i);
    return dtype === "f8" ? new Float64Array(u8.buffer) : new Float32Array(u8.buffer);
  }
  function label(v) {
    if (Number.isNaN(v)) return "NaN (not computed, masked)";
    if (!Number.isFinite(v)) return (v > 0 ? "+inf" : "-inf") + " (masked)";
    var s = Number(v.toPrecision(4)).toString();
    return (PAGE.log && v <= 0) ? s + " (<= 0, masked on the log scale)" : s;
  }
  function glabel(v) {
    return Number.isFinite(v) ? Number(v.toPrecision(3)).toString() : String(v);
  }
  function coord(v) { return Number(v.toPrecision(4)).toString(); }
  // loss is "ij" row-major (nx, ny): loss[i * ny + j]; plotly wants z[j][i] (rows = y), and so
  // the hover text (one string per point: the 3-D surface indexes its text as [row][column])
  function build(p, k) {
    var key = p.surface + ":" + k;
    if (cache[key]) return cache[key];
    var v = decode(p.loss[k], p.dtype), g = p.gnorm ? decode(p.gnorm[k], p.gdtype) : null;
    var l = p.lyap ? decode(p.lyap[k], p.ldtype) : null;
    var z = [], text = [], zl = [], head = "T = " + PAGE.T[k] + "<br>";
    for (var j = 0; j < p.ny; j++) {
      var zr = new Array(p.nx), tr = new Array(p.nx), lr = new Array(p.nx);
      var yj = "<br>" + p.y_name + " = " + coord(p.y[j]);
      for (var i = 0; i < p.nx; i++) {
        var a = v[i * p.ny + j], ok = Number.isFinite(a) && (!PAGE.log || a > 0);
        zr[i] = ok ? (PAGE.log ? Math.log10(a) : a) : null;
        tr[i] = head + p.x_name + " = " + coord(p.x[i]) + yj + "<br>loss = " + label(a) +
                (g ? "<br>‖∇L‖ = " + glabel(g[i * p.ny + j]) : "") +
                (l ? "<br>λ_T = " + glabel(l[i * p.ny + j]) : "");
        if (l) lr[i] = Number.isFinite(l[i * p.ny + j]) ? l[i * p.ny + j] : null;
      }
      z.push(zr); text.push(tr); zl.push(lr);
    }
    return (cache[key] = {z: z, text: text, zl: l ? zl : null});
  }
  function setT(k) {
    k = Math.max(0, Math.min(PAGE.T.length - 1, k));
    busy = busy.then(function () {
      if (k === current) return;
      var traces = [], zs = [], texts = [], rel = {};
      PAGE.panels.forEach(function (p) {
        var b = build(p, k);
        [p.surface, p.contour].forEach(function (t) { traces.push(t); zs.push(b.z); texts.push(b.text); });
        if (p.lyapunov !== null) { traces.push(p.lyapunov); zs.push(b.zl); texts.push(null); }
        rel["annotations[" + p.note + "].text"] = p.notes[k];
        rel["annotations[" + p.note + "].visible"] = !!p.notes[k];
      });
      rel["title.text"] = PAGE.title + ": T = " + PAGE.T[k];
      rel["sliders[0].active"] = k;
      current = k;
      return Plotly.restyle(gd, {z: zs, hovertext: texts}, traces)
        .then(function () { return Plotly.relayout(gd, rel); })
        .then(function () { gd.setAttribute("data-t", String(PAGE.T[k])); });
    });
    return busy;
  }
  function play() {
    if (timer) return;
    if (current >= PAGE.T.length - 1) setT(0);
    timer = setInterval(function () {
      if (current >= PAGE.T.length - 1) { clearInterval(timer); timer = null; return; }
      setT(current + 1);
    }, PAGE.interval_ms);
  }
  function pause() { if (timer) { clearInterval(timer); timer = null; } }
  if (/(?:^#|&)still\b/.test(window.location.hash || "")) {  // a still frame: no tool bar
    document.body.classList.add("still");
  }
  function startIndex() {
    var m = /(?:^#|&)T=(\d+)/.exec(window.location.hash || "");
    var k = m ? PAGE.T.indexOf(parseInt(m[1], 10)) : -1;
    return k >= 0 ? k : PAGE.start;
  }
  // the first T goes into the figure itself: a 3-D scene must never be drawn without data
  var k0 = startIndex();
  PAGE.panels.forEach(function (p) {
    var b = build(p, k0);
    [p.surface, p.contour].forEach(function (t) { FIG.data[t].z = b.z; FIG.data[t].hovertext = b.text; });
    if (p.lyapunov !== null) FIG.data[p.lyapunov].z = b.zl;
    FIG.layout.annotations[p.note].text = p.notes[k0];
    FIG.layout.annotations[p.note].visible = !!p.notes[k0];
  });
  FIG.layout.title.text = PAGE.title + ": T = " + PAGE.T[k0];
  FIG.layout.sliders[0].active = k0;
  current = k0;
  var syncing = false;
  Plotly.newPlot(gd, FIG.data, FIG.layout, {responsive: true, displaylogo: false,
                                            toImageButtonOptions: {format: "png", scale: 2}})
    .then(function () {
      gd.on("plotly_sliderchange", function (e) { pause(); setT(parseInt(e.step.value, 10)); });
      gd.on("plotly_buttonclicked", function (e) {
        if (e.button.label.indexOf("play") >= 0) play(); else pause();
      });
      gd.on("plotly_relayout", function (e) {  // linked panels: one camera for all 3-D views
        if (syncing || PAGE.panels.length < 2) return;
        var key = Object.keys(e).filter(function (s) { return /^scene\d*\.camera$/.test(s); })[0];
        if (!key) return;
        var upd = {};
        PAGE.panels.forEach(function (p, n) {
          var name = (n ? "scene" + (n + 1) : "scene") + ".camera";
          if (name !== key) upd[name] = e[key];
        });
        syncing = true;
        Plotly.relayout(gd, upd).then(function () { syncing = false; });
      });
      window.addEventListener("hashchange", function () { setT(startIndex()); });
      gd.setAttribute("data-t", String(PAGE.T[k0]));
    })
    .then(function () { gd.setAttribute("data-ready", "1"); });
  window.landscapePage = {setT: setT, play: play, pause: pause,
                          T: function () { return PAGE.T[current]; }};
})();
"""

_CSS = """
body { font-family: 'DejaVu Sans', Arial, sans-serif; margin: 12px 18px; color: #222; }
h1 { font-size: 20px; font-weight: normal; margin: 0 0 4px 0; }
p { margin: 2px 0; font-size: 13px; }
.masked { color: #8a3b00; }
#landscape-plot { width: 100%; }
body.still .modebar-container { display: none; }
"""


def _header(data: PageData) -> str:
    T = ", ".join(map(str, data.T))
    lines = [f"<h1>{_html(data.title)}</h1>"]
    for p in data.panels:
        grad = "; hover shows ‖∇L‖" if p.grad_norm is not None else ""
        lines.append(f"<p>{_html(p.source)}: {_html(p.name)}, grid {len(p.x)} × {len(p.y)} over "
                     f"({_html(p.x_name)}, {_html(p.y_name)}){grad}</p>")
    scale = "log (values ≤ 0 are masked)" if data.log else "linear"
    shared = " and all panels" if len(data.panels) > 1 else ""
    lines.append(f"<p>T = {T}; one {scale} colour scale for all T{shared} "
                 f"({data.crange[0]:.4g} to {data.crange[1]:.4g}).</p>")
    if data.left_out:
        lines.append(f"<p class='masked'>{_html(data.left_out)}.</p>")
    for p in data.panels:
        where = f"{_html(p.source)}: " if len(data.panels) > 1 else ""
        if p.total_note:
            per_T = [f"T = {t}: {n}" for t, n in zip(data.T, p.notes) if n]
            total = f"over all T: {p.total_note}; " if len(per_T) > 1 else ""
            lines.append(f"<p class='masked' data-masked='{_html(p.source)}'>{where}not drawn (never clipped): "
                         f"{_html(total + '; '.join(per_T))}.</p>")
        else:
            lines.append(f"<p data-masked='{_html(p.source)}'>{where}no point masked: every loss is finite"
                         f"{' and positive' if data.log else ''}.</p>")
    return "\n".join(lines)


def render_page(data: PageData) -> str:
    """The HTML text of a page (plotly.js embedded)."""
    import plotly.io as pio
    from plotly.offline import get_plotlyjs

    fig, index = page_figure(data)
    payload = json.dumps(page_payload(data, index), separators=(",", ":"))
    figure = pio.to_json(fig, validate=False, pretty=False)

    def safe(text):  # JSON inside <script>: no closing tag can appear
        return text.replace("</", "<\\/")

    return "\n".join([
        "<!DOCTYPE html>", "<html lang='en'>", "<head>", "<meta charset='utf-8'>",
        f"<meta name='landscape-panels' content='{len(data.panels)}'>",
        f"<title>{_html(data.title)}</title>", f"<style>{_CSS}</style>",
        f"<script type='text/javascript'>{get_plotlyjs()}</script>", "</head>", "<body>",
        _header(data), "<div id='landscape-plot'></div>",
        f"<script type='application/json' id='landscape-figure'>{safe(figure)}</script>",
        f"<script type='application/json' id='landscape-data'>{safe(payload)}</script>",
        f"<script type='text/javascript'>{_SCRIPT}</script>", "</body>", "</html>", ""])


def write_page(surfaces, path, log: bool = False, title: str | None = None, Ts: Sequence[int] | None = None,
               start: int | None = None, folds: bool = True, basin="auto", lyapunov: bool = False) -> Path:
    """Write one self-contained, offline HTML page of ``surfaces`` (Surface objects or paths).

    log: log colour scale (values <= 0 masked and counted); Ts: the lengths on the slider
    (default: all that every file has); start: the T shown first (default the largest; a URL
    ending in #T=50 opens at T = 50 whatever start is); folds / basin: the dynamics overlays for srnn / pascanu
    over (w, b) (basin: 'auto' = the target task's x0, a number, or None); lyapunov: lambda_T's
    contour lines at the slider's T (files computed with --dynamics). Returns the path.
    """
    _require_plotly()
    data = compute_page(surfaces, log=log, title=title, Ts=Ts, start=start, folds=folds, basin=basin,
                        lyapunov=lyapunov)
    path = Path(path)
    if path.suffix.lower() not in (".html", ".htm"):
        raise LandscapeError(f"an interactive page is an HTML file; end {str(path)!r} in .html")
    text = render_page(data)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as err:
        raise LandscapeError(f"cannot write {path}: {err.strerror or err}") from None
    return path


def _require_plotly():
    from importlib.util import find_spec

    try:
        missing = find_spec("plotly") is None
    except ValueError:  # a module entry of None (removed on purpose)
        missing = True
    if missing:
        raise LandscapeError("the interactive page needs plotly, and it is not installed; "
                             "pip install 'rnn-landscape[page]' (or pip install plotly)")


# ---------------------------------------------------------------------------------------------
# a still frame of a page (for a README gallery)


def find_browser() -> str | None:
    """The path of a Chromium-family browser on the PATH ($LANDSCAPE_BROWSER first), or None."""
    env = os.environ.get("LANDSCAPE_BROWSER")
    if env:
        return shutil.which(env) or (env if Path(env).exists() else None)
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


def screenshot_page(html_path, png_path, T: int | None = None, width: int = 1400, height: int | None = None,
                    browser: str | None = None, timeout: float = 120.0) -> Path:
    """A PNG of the page at length T (default: the page's first T), by headless Chromium with a
    fresh profile and no network use (the page needs none). height: default 720 for one
    panel, 1160 for several (read from the page). Returns the PNG path."""
    html_path, png_path = Path(html_path).resolve(), Path(png_path)
    if not html_path.exists():
        raise LandscapeError(f"no such page: {html_path}")
    if png_path.suffix.lower() != ".png":
        raise LandscapeError(f"a screenshot is a PNG; end {str(png_path)!r} in .png")
    exe = browser or find_browser()
    if not exe:
        raise LandscapeError("a screenshot needs Chromium (chromium, chromium-browser or google-chrome) on "
                             "the PATH, or LANDSCAPE_BROWSER; apt-get install chromium")
    if height is None:
        head = html_path.read_text(encoding="utf-8", errors="ignore")[:4096]
        found = re.search(r"<meta name='landscape-panels' content='(\d+)'>", head)
        height = 720 if not found or int(found.group(1)) <= 1 else 1160
    url = html_path.as_uri() + (f"#T={int(T)}&still" if T is not None else "#still")
    png_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="landscape-chromium-") as profile:
        cmd = [exe, *HEADLESS_FLAGS, f"--user-data-dir={profile}", f"--window-size={int(width)},{int(height)}",
               "--virtual-time-budget=15000", f"--screenshot={png_path.resolve()}", url]
        try:
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise LandscapeError(f"{exe} took more than {timeout:g} s to render {html_path}") from None
    if run.returncode != 0 or not png_path.exists():
        last = (run.stderr.strip().splitlines() or ["no message"])[-1]
        raise LandscapeError(f"{exe} could not screenshot {html_path}: {last}")
    return png_path


__all__ = ["PageData", "Panel", "compute_page", "page_figure", "render_page", "screenshot_page", "write_page"]
