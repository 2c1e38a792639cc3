"""Figures: ``plot_*`` functions that draw stored results (they never compute a landscape), one
style file (``style``: paper/talk, single 3.25 in / double 6.75 in), overlays, and the registry of
`landscape plot` kinds (``kinds``).

    import landscape
    from landscape import figures
    s = landscape.load("pascanu.h5")
    with figures.use_style("paper"):
        ax = figures.plot_contour(s, T=50)
        figures.overlay_folds(ax, "pascanu")
        figures.save_figure(ax.figure, "fig.pdf")

Single-axes plots take ``ax=None`` (a new figure when None) and return the Axes; small
multiples (panels, compare, curvature with both eigenvalues, the gradnorm pair) return the
Figure. Everything is headless (bare Figures on the Agg canvas; no pyplot, no show). The names
below are imported on first use, so the plot kinds can be listed without matplotlib.
"""
from __future__ import annotations

import importlib

# public name -> the module of this package that defines it
_EXPORTS = {
    "plot_bifurcation": "bifurcation",
    **{name: "gradients" for name in ("field", "plot_curvature", "plot_gradnorm", "plot_gradnorm_map",
                                      "plot_gradnorm_pair", "plot_quiver")},
    **{name: "loss" for name in ("plot_compare", "plot_contour", "plot_panels", "plot_slices", "plot_surface",
                                 "plot_wireframe")},
    **{name: "overlays" for name in ("overlay_basin", "overlay_folds", "overlay_trajectory")},
    "SCALES": "scales", "mask": "scales",
    **{name: "style" for name in ("STYLES", "WIDTHS", "new_figure", "output_format", "save_figure", "use_style")},
    "KINDS": "kinds", "PlotKind": "kinds", "register": "kinds",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'landscape.figures' has no attribute {name!r}")


def __dir__():
    return __all__
