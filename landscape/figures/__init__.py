"""Figures: ``plot_*`` functions that draw stored results (they never compute a landscape), one
style file (``style``: paper/talk, single 3.25 in / double 6.75 in), and overlays.

    import landscape
    from landscape import figures
    s = landscape.load("pascanu.h5")
    with figures.use_style("paper"):
        ax = figures.plot_contour(s, T=50)
        figures.overlay_folds(ax, "pascanu")
        figures.save_figure(ax.figure, "fig.pdf")

Single-axes plots take ``ax=None`` (a new figure when None) and return the Axes; small
multiples (panels, compare, curvature with both eigenvalues, the gradnorm pair) return the
Figure. Everything is headless (bare Figures on the Agg canvas; no pyplot, no show).
"""
from __future__ import annotations

from .bifurcation import plot_bifurcation
from .gradients import (field, plot_curvature, plot_gradnorm, plot_gradnorm_map, plot_gradnorm_pair,
                        plot_quiver)
from .loss import plot_compare, plot_contour, plot_panels, plot_slices, plot_surface, plot_wireframe
from .overlays import overlay_basin, overlay_folds, overlay_trajectory
from .scales import SCALES, mask
from .style import STYLES, WIDTHS, new_figure, output_format, save_figure, use_style

# `landscape plot --kind KIND`: the function that draws each kind of figure
KINDS = {
    "contour": plot_contour,
    "surface": plot_surface,
    "wireframe": plot_wireframe,
    "panels": plot_panels,
    "slices": plot_slices,
    "compare": plot_compare,
    "gradnorm": plot_gradnorm_pair,
    "quiver": plot_quiver,
    "curvature": plot_curvature,
}


__all__ = ["KINDS", "SCALES", "STYLES", "WIDTHS", "field", "mask", "new_figure",
           "output_format", "overlay_basin", "overlay_folds", "overlay_trajectory", "plot_bifurcation",
           "plot_compare", "plot_contour", "plot_curvature", "plot_gradnorm", "plot_gradnorm_map",
           "plot_gradnorm_pair", "plot_panels", "plot_quiver", "plot_slices", "plot_surface", "plot_wireframe",
           "save_figure", "use_style"]
