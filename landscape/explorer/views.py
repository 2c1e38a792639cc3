"""The explorer's plotly figures, from what ``compute`` returned: the surface at the shown T with
the fold overlays, the clicked point and the training paths; and the point's per-timestep gradient
norms and Jacobian factors. Pure functions of their data (no dash, no computing).

Conventions as on the static page (``figures.interactive``): plotly wants z[row = y][column = x], so
z = loss[k].T; +-inf and NaN are masked (the grey background), never clipped; a log scale shows
log10(loss) and masks values <= 0.
"""
from __future__ import annotations

import numpy as np

from ..figures.loss import LOSS_CMAP
from .state import OPTIMIZER_LABELS

PATH_COLOURS = {"sgd": "#d62728", "sgd-clip": "#ff7f0e", "adam": "#17becf"}
FOLD_STYLE = {"folds": dict(color="white", dash="dash", width=2), "basin": dict(color="#e377c2", dash="dot", width=2)}
MASKED = "#bdbdbd"


def shown_loss(loss: np.ndarray, scale: str) -> np.ndarray:
    """The values coloured: loss (nx, ny), or log10(loss) on a log scale; NaN where masked."""
    z = np.asarray(loss, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        if scale == "log":
            z = np.where(z > 0, np.log10(z), np.nan)
    return np.where(np.isfinite(z), z, np.nan)


def surface_figure(surf, T: int, scale: str, curves=(), point=None, paths=None, height: int = 560):
    """The loss at length T over the grid (a heat map), the fold curves, the clicked point and one
    line per training path (markers at every step; a path leaving the window is drawn leaving it)."""
    import plotly.graph_objects as go

    k = list(np.asarray(surf.T).astype(int)).index(int(T))
    z = shown_loss(surf.loss[k], scale)  # (nx, ny)
    x, y = np.asarray(surf.x, float), np.asarray(surf.y, float)
    label = "log10 loss" if scale == "log" else "loss"
    fig = go.Figure(go.Heatmap(x=x, y=y, z=z.T, colorscale=LOSS_CMAP, colorbar=dict(title=label, len=0.9),
                               hovertemplate=f"{surf.x_name}=%{{x:.4g}}<br>{surf.y_name}=%{{y:.4g}}<br>"
                                             f"{label}=%{{z:.4g}}<extra></extra>", name="surface"))
    for c in curves:
        fig.add_trace(go.Scatter(x=c.x, y=c.y, mode="lines", name=c.name, line=FOLD_STYLE[c.kind],
                                 hoverinfo="skip"))
    for name, p in (paths or {}).items():
        fig.add_trace(go.Scatter(x=p.x, y=p.y, mode="lines+markers", name=OPTIMIZER_LABELS[name],
                                 line=dict(color=PATH_COLOURS[name], width=2.5), marker=dict(size=6),
                                 customdata=np.stack([np.arange(len(p.x)), p.loss], -1),
                                 hovertemplate=f"{OPTIMIZER_LABELS[name]}, step %{{customdata[0]}}<br>"
                                               f"{surf.x_name}=%{{x:.4g}}, {surf.y_name}=%{{y:.4g}}<br>"
                                               "loss=%{customdata[1]:.4g}<extra></extra>"))
    if point is not None:
        fig.add_trace(go.Scatter(x=[point[0]], y=[point[1]], mode="markers", name="clicked point",
                                 marker=dict(symbol="x", size=13, color="white", line=dict(color="black", width=1.5)),
                                 hoverinfo="skip"))
    fig.update_layout(height=height, margin=dict(l=60, r=20, t=40, b=50), plot_bgcolor=MASKED,
                      title=dict(text=f"{surf.spec.get('cell', '')} on {surf.spec.get('task', '')}, T = {T}",
                                 x=0.5, font=dict(size=15)),
                      xaxis=dict(title=surf.x_name, range=[x.min(), x.max()], constrain="domain"),
                      yaxis=dict(title=surf.y_name, range=[y.min(), y.max()]),
                      legend=dict(orientation="h", y=-0.14, x=0.5, xanchor="center", bgcolor="#5a5a5a",
                                  font=dict(color="white")),  # dark: the white fold line shows
                      uirevision="surface", clickmode="event")
    return fig


def point_figure(analysis=None, height: int = 560):
    """Per timestep t = 1..T at the clicked point: ||dL_T/ds_t|| per state (log scale, top) and the
    mean Jacobian factor |ds_t/ds_{t-1}| with log10 |ds_t/ds_0| (bottom). Empty, with a hint, before
    a click."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.1,
                        subplot_titles=("gradient norm ||dL_T/ds_t||", "Jacobian factor |ds_t/ds_(t-1)|"))
    if analysis is None:
        fig.add_annotation(text="click the surface", x=0.5, y=0.5, xref="paper", yref="paper",
                           showarrow=False, font=dict(size=16, color="#666"))
    else:
        t = analysis.t
        for name, norm in analysis.norms.items():
            fig.add_trace(go.Scatter(x=t, y=np.where(norm > 0, norm, np.nan), mode="lines+markers",
                                     name=f"state {name}", marker=dict(size=4)), row=1, col=1)
        fig.add_trace(go.Scatter(x=t, y=analysis.factor, mode="lines+markers", name="|ds_t/ds_(t-1)|",
                                 marker=dict(size=4)), row=2, col=1)
        fig.add_trace(go.Scatter(x=t, y=analysis.log10_product, mode="lines", name="log10 |ds_t/ds_0|",
                                 line=dict(dash="dot")), row=2, col=1)
        fig.update_yaxes(type="log", row=1, col=1)
        fig.update_xaxes(title="t", row=2, col=1)
        fig.update_layout(title=dict(text=f"at {analysis.x:.4g}, {analysis.y:.4g}: loss {analysis.loss:.4g}",
                                     x=0.5, font=dict(size=13)))
    fig.update_layout(height=height, margin=dict(l=60, r=10, t=70, b=40),
                      legend=dict(orientation="h", y=-0.12, x=0.5, xanchor="center"))
    return fig
