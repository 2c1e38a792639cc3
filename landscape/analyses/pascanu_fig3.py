"""Pascanu, Mikolov & Bengio 2013, Fig. 3: the bifurcation diagram of the one-unit sigmoid map.

x -> w sigmoid(x) + b at w = 5, b in [-3.2, -1.8]; the y axis is the fixed point in sigmoid
space, sigma(x*) in [0, 1]. Bold: the attractors; dashed: the unstable fixed point (the basin
boundary); dots: the two folds b2 < b1 between which both attractors coexist. Grey lines with
arrow heads show where one step of the map moves a state at that b.

Outputs (in OUT):

    fig3-bifurcation.csv       b, the three branches (sigma(x*) and x*), stability, per row
    fig3-bifurcation.pdf/.png  the diagram

Computed in closed form / by bisection (``landscape.dynamics``): 1401 values of b (quick: 141),
well under a second either way.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

NAME = "pascanu-fig3"
DESCRIPTION = "Pascanu et al. 2013 Fig. 3: bifurcation diagram of the one-unit sigmoid map at w = 5"

W = 5.0
B_RANGE = (-3.2, -1.8)
POINTS = {False: 1401, True: 141}


def run(out_dir, quick: bool = False, device: str = "auto", progress: bool | None = None) -> list[Path]:
    from .. import dynamics
    from ..figures import plot_bifurcation, use_style
    from .common import save_pdf_png

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    d = dynamics.bifurcation_diagram("pascanu", W, np.linspace(*B_RANGE, POINTS[quick]))
    table = out / "fig3-bifurcation.csv"
    with open(table, "w", newline="") as fh:
        writer = csv.writer(fh)
        names = dynamics.BRANCHES
        writer.writerow(["b"] + [f"sigmoid_x_{n}" for n in names] + [f"x_{n}" for n in names]
                        + [f"stable_{n}" for n in names])
        for k, b in enumerate(d.b):
            writer.writerow([repr(float(b))] + [repr(float(v)) for v in d.output[k]]
                            + [repr(float(v)) for v in d.fixed[k]] + [int(v) for v in d.stable[k]])
    with use_style("paper"):
        ax = plot_bifurcation(d, title=f"x$_t$ = {W:g} $\\sigma$(x$_{{t-1}}$) + b: fixed points")
        written = [table] + save_pdf_png(ax.figure, out, "fig3-bifurcation", quick)
    f = d.folds
    s2, s1 = (float(1 / (1 + np.exp(-s))) for s in (f.state2, f.state1))
    print(f"{NAME}: w = {W:g}, folds b2 = {float(f.b2):.4f} (sigma(x*) = {s2:.3f}) "
          f"and b1 = {float(f.b1):.4f} (sigma(x*) = {s1:.3f}); "
          f"two attractors for b2 < b < b1")
    for path in written:
        print(f"  wrote {path}")
    return written
