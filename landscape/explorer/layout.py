"""The explorer's page: the controls (one per field of ExploreState but the clicked point, id
'ctl-FIELD'), the surface with its T slider, the point panel, the export buttons, and the URL
(``dcc.Location``) that holds the whole state. ``control_values`` and ``state_from_controls`` turn a
state into the controls' values and back."""
from __future__ import annotations

from .state import OPTIMIZER_LABELS, OPTIMIZERS, SCALES, ExploreState

# the ExploreState fields that are controls, in page order (t is the slider under the surface)
CONTROLS = ("cell", "task", "hidden", "x", "y", "sets", "T", "n", "seed", "scale", "t",
            "lr", "adam_lr", "clip", "steps", "optimizers")
TEXT = ("cell", "task", "x", "y", "sets", "T")
NUMBERS = {"hidden": 1, "n": 1, "seed": 1, "lr": "any", "adam_lr": "any", "clip": "any", "steps": 1}
LABELS = {"cell": "cell", "task": "task", "hidden": "hidden units", "x": "x axis (NAME:LO:HI:NUM)",
          "y": "y axis", "sets": "other parameters (NAME=VALUE; ...)", "T": "lengths T (all computed at once)",
          "n": "sequences n", "seed": "data seed", "scale": "colour scale", "lr": "learning rate (SGD)",
          "adam_lr": "learning rate (Adam)", "clip": "clip threshold (gradient norm)", "steps": "steps",
          "optimizers": "optimisers"}


def control_values(state: ExploreState) -> list:
    """The value of each control of CONTROLS for ``state``."""
    out = []
    for name in CONTROLS:
        value = getattr(state, name)
        if name == "sets":
            value = "; ".join(value)
        elif name == "optimizers":
            value = list(value)
        out.append(value)
    return out


def state_from_controls(values, point=None) -> ExploreState:
    """The state the controls show (values in CONTROLS order), with the clicked point."""
    given = dict(zip(CONTROLS, values))
    given["sets"] = tuple(s.strip() for s in (given["sets"] or "").split(";") if s.strip())
    given["optimizers"] = tuple(o for o in OPTIMIZERS if o in (given["optimizers"] or ()))
    for name in ("cell", "task", "x", "y", "T"):
        given[name] = (given[name] or "").strip()
    for name in ("hidden", "n"):
        given[name] = None if given[name] in (None, "") else int(given[name])
    given["seed"] = int(given["seed"] or 0)
    given["steps"] = int(given["steps"] or 1)
    return ExploreState(**given, point=None if point is None else tuple(point))


def slider_marks(state: ExploreState) -> dict:
    return {T: str(T) for T in state.Ts}


def _control(name: str, state: ExploreState):
    from dash import dcc, html

    from ..cells import CELLS
    from ..tasks import TASKS

    cid = f"ctl-{name}"
    if name in ("cell", "task"):
        names = list((CELLS if name == "cell" else TASKS).builtins)
        widget = [dcc.Input(id=cid, type="text", list=f"{cid}-names", debounce=True, style={"width": "100%"}),
                  html.Datalist(id=f"{cid}-names", children=[html.Option(value=v) for v in names])]
    elif name in TEXT:
        widget = [dcc.Input(id=cid, type="text", debounce=True, style={"width": "100%"})]
    elif name in NUMBERS:
        widget = [dcc.Input(id=cid, type="number", step=NUMBERS[name], debounce=True, style={"width": "100%"})]
    elif name == "scale":
        widget = [dcc.RadioItems(id=cid, options=list(SCALES), inline=True)]
    else:  # optimizers
        widget = [dcc.Checklist(id=cid, options=[{"label": OPTIMIZER_LABELS[o], "value": o} for o in OPTIMIZERS],
                                inline=True)]
    return html.Div([html.Label(LABELS[name], htmlFor=cid, style={"fontSize": "12px", "color": "#444"}), *widget],
                    style={"marginBottom": "6px"})


def page(state: ExploreState):
    """The page's component tree; the controls get their values from the URL on load."""
    from dash import dcc, html

    side = [_control(name, state) for name in CONTROLS if name != "t"]
    exports = html.Div([html.Button("PNG", id="export-png"), html.Button("PDF", id="export-pdf"),
                        html.Button("HDF5", id="export-h5"), dcc.Download(id="download")],
                       style={"display": "flex", "gap": "6px", "marginTop": "8px"})
    slider = dcc.Slider(id="ctl-t", min=min(state.Ts), max=max(state.Ts), step=None,
                        marks=slider_marks(state), value=state.t, included=False)
    return html.Div([
        dcc.Location(id="url", refresh=False),
        dcc.Store(id="state"),
        html.Div([html.B("landscape explore"), html.Span(id="status", style={"marginLeft": "16px", "color": "#555"}),
                  html.Span(id="error", style={"marginLeft": "16px", "color": "#b00"})],
                 style={"padding": "6px 10px", "borderBottom": "1px solid #ddd"}),
        html.Div([
            html.Div([*side, exports], style={"flex": "0 0 230px", "padding": "8px", "overflowY": "auto"}),
            html.Div([dcc.Graph(id="surface", config={"displaylogo": False}),
                      html.Div([html.Span("T", style={"fontSize": "12px"}), slider],
                               style={"padding": "0 40px"})],
                     style={"flex": "1 1 560px", "minWidth": "420px"}),
            html.Div([dcc.Graph(id="point", config={"displaylogo": False})], style={"flex": "0 1 430px"}),
        ], style={"display": "flex", "gap": "4px"}),
    ], style={"fontFamily": "sans-serif", "fontSize": "13px"})
