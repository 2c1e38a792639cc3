"""What the page does when something moves.

- ``sync``: the URL, the controls and a click on the surface are three views of one ExploreState
  (held in the 'state' store). On load and on a pasted URL the controls take the URL's state; a
  moved control or a click makes a new state and writes it into the URL (a reload restores it).
- ``render``: a new state redraws the surface at the shown T (the surface of all T is computed once
  and held; the slider only picks the slice), the overlays, the paths and the point panel.
- ``export``: the view as PNG / PDF (matplotlib, same data) or the HDF5 surface file.
"""
from __future__ import annotations

from functools import lru_cache

from ..errors import LandscapeError
from . import compute, export, views
from .layout import CONTROLS, control_values, slider_marks, state_from_controls
from .state import ExploreState, default_axes

# a change of these forgets the clicked point (its coordinates would mean other parameters)
PLANE_FIELDS = ("cell", "task", "hidden", "x", "y")


@lru_cache(maxsize=8)
def view_data(state: ExploreState):
    """(SurfaceView, curves, PointAnalysis or None, {optimizer: Path} or None) of a state."""
    view = compute.surface(state)
    curves = compute.curves(view.surface)
    if state.point is None:
        return view, curves, None, None
    x, y = state.point
    return view, curves, compute.point_analysis(state, x, y), compute.paths(state, x, y)


def _same_plane(a: ExploreState, b: ExploreState) -> bool:
    from ..spec import Axis

    return (all(getattr(a, f) == getattr(b, f) for f in PLANE_FIELDS[:3])
            and Axis.parse(a.x).name == Axis.parse(b.x).name and Axis.parse(a.y).name == Axis.parse(b.y).name)


def register(app, start: ExploreState) -> None:
    """The callbacks of ``app``; a URL without a query opens at ``start``."""
    from dash import Input, Output, State, ctx, dcc, no_update

    controls = [(f"ctl-{name}", "value") for name in CONTROLS]

    @app.callback(Output("url", "search"), *[Output(*c) for c in controls],
                  Output("ctl-t", "marks"), Output("ctl-t", "min"), Output("ctl-t", "max"),
                  Output("state", "data"), Output("error", "children"),
                  Input("url", "search"), *[Input(*c) for c in controls], Input("surface", "clickData"),
                  State("state", "data"))
    def sync(search, *args):
        *values, click, current = args
        n_out = 1 + len(controls) + 5
        trigger = ctx.triggered_id
        try:
            if trigger in (None, "url"):
                state = ExploreState.from_query(search) if (search or "").lstrip("?") else start
                search = no_update
            else:
                old = ExploreState(**_tuples(current)) if current else ExploreState()
                if trigger == "surface":
                    if not click or not click.get("points"):
                        return (no_update,) * n_out
                    point = (float(click["points"][0]["x"]), float(click["points"][0]["y"]))
                else:
                    point = old.point
                state = state_from_controls(values, point)
                if state.cell != old.cell and (state.x, state.y) == (old.x, old.y):
                    x, y = default_axes(state.cell)  # a new cell opens on its own plane
                    state = state.with_(x=x, y=y)
                if not _same_plane(old, state):
                    state = state.with_(point=None)
                search = "?" + state.to_query()
        except (LandscapeError, ValueError, TypeError) as err:
            return (*(no_update,) * (n_out - 1), f"error: {err}")
        return (search, *control_values(state), slider_marks(state), min(state.Ts), max(state.Ts),
                state.as_dict(), "")

    @app.callback(Output("surface", "figure"), Output("point", "figure"), Output("status", "children"),
                  Input("state", "data"))
    def render(data):
        if not data:
            return no_update, no_update, no_update
        state = ExploreState(**_tuples(data))
        try:
            view, curves, analysis, paths = view_data(state)
        except LandscapeError as err:
            return no_update, no_update, f"error: {err}"
        how = "from memory" if view.seconds == 0 else ("from the cache" if view.cached else "computed")
        status = (f"{view.surface.loss.shape[1]} x {view.surface.loss.shape[2]} grid, T = {state.T}: "
                  f"{how} in {view.seconds:.2f} s")
        return (views.surface_figure(view.surface, state.t, state.scale, curves, state.point, paths),
                views.point_figure(analysis), status)

    @app.callback(Output("download", "data"), Input("export-png", "n_clicks"), Input("export-pdf", "n_clicks"),
                  Input("export-h5", "n_clicks"), State("state", "data"), prevent_initial_call=True)
    def download(_png, _pdf, _h5, data):
        state = ExploreState(**_tuples(data))
        view, curves, analysis, paths = view_data(state)
        stem = export.file_stem(state)
        if ctx.triggered_id == "export-h5":
            return dcc.send_file(str(view.path), filename=f"{stem}.h5")
        fmt = ctx.triggered_id.split("-")[1]
        fig = export.view_figure(state, view, curves, analysis, paths)
        return dcc.send_bytes(export.figure_bytes(fig, fmt), filename=f"{stem}.{fmt}")


def _tuples(data: dict) -> dict:
    """A state dict back from JSON (lists -> tuples)."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
