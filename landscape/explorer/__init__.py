"""``landscape explore``: a local web app that recomputes loss landscapes as you move a control.

    import landscape
    landscape.explore(cell="pascanu", task="target", point=(4.8, -2.15))   # in a Jupyter cell: inline

Pick the cell, the task, the two axes and the other parameters' values; move T with a slider (every
T of the list comes from one unroll, so the slider only switches the slice); click the surface to
see the per-timestep gradient norms and Jacobian factors there and to train SGD, clipped SGD and
Adam from that point, each path drawn on the surface. The whole state is in the URL; the view
exports as PNG / PDF (matplotlib) and as its HDF5 surface file.

Modules: ``state`` (ExploreState <-> URL query), ``compute`` (the library calls), ``views`` (plotly
figures), ``export`` (matplotlib figure), ``layout`` (the page), ``callbacks`` (what moves what),
``app`` (the Dash app, served in a browser tab or a notebook). Needs the optional extra ``explore``
(dash).
"""
from __future__ import annotations

from .state import ExploreState

JUPYTER_MODES = ("inline", "tab", "external", "jupyterlab")


def explore(state: ExploreState | None = None, *, mode: str = "inline", port: int = 8050,
            host: str = "127.0.0.1", **fields):
    """Show the explorer in a Jupyter cell (mode 'inline'; 'tab' / 'external' / 'jupyterlab' as
    Dash's jupyter_mode) at ``state``, or at ``ExploreState(**fields)`` (cell=..., task=...,
    x='w:4.5:5.5:101', T='1,10,50', point=(4.8, -2.15), ...). Returns the Dash app."""
    from ..errors import LandscapeError
    from .app import make_app

    if mode not in JUPYTER_MODES:
        raise LandscapeError(f"unknown mode {mode!r}; choose from: {', '.join(JUPYTER_MODES)}")
    if state is None:
        if "point" in fields and fields["point"] is not None:
            fields["point"] = tuple(float(v) for v in fields["point"])
        for name in ("sets", "optimizers"):
            if name in fields:
                fields[name] = tuple(fields[name])
        state = ExploreState(**fields)
    elif fields:
        raise TypeError("give either an ExploreState or its fields, not both")
    app = make_app(state)
    app.run(jupyter_mode=mode, host=host, port=port, jupyter_height=760)
    return app


__all__ = ["ExploreState", "explore"]
