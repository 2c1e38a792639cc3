"""The Dash app and how it is served: a browser tab (``serve``) or a Jupyter cell (``jupyter_mode``).
Everything the page loads comes from this server (``serve_locally``: Dash's and plotly.js's files
ship inside the dash package), so the page works with no network."""
from __future__ import annotations

import threading
import webbrowser

from ..errors import LandscapeError
from .state import ExploreState

INSTALL = "the explorer needs dash: pip install 'rnn-landscape[explore]'"


def make_app(state: ExploreState | None = None):
    """A Dash app whose page opens at ``state`` (default ExploreState()); a URL's query wins."""
    try:
        from dash import Dash
    except ImportError:
        raise LandscapeError(INSTALL) from None
    from . import callbacks, layout

    app = Dash("landscape.explorer", title="landscape explore", serve_locally=True,
               update_title=None, external_stylesheets=[], external_scripts=[])
    state = state or ExploreState()
    app.layout = layout.page(state)
    callbacks.register(app, state)
    return app


def url(state: ExploreState, host: str, port: int) -> str:
    query = state.to_query()
    return f"http://{host}:{port}/" + (f"?{query}" if query else "")


def serve(state: ExploreState | None = None, host: str = "127.0.0.1", port: int = 8050, open_browser: bool = True,
          say=print) -> None:
    """Serve the explorer in this process until interrupted, opening a browser tab at ``state``."""
    state = state or ExploreState()
    app = make_app(state)
    address = url(state, host, port)
    say(f"landscape explore: {address} (Ctrl-C stops it)")
    if open_browser:
        threading.Timer(1.0, webbrowser.open, (address,)).start()
    app.run(host=host, port=port, debug=False)
