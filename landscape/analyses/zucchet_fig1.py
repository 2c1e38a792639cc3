"""Zucchet & Orvieto 2024 ("Recurrent neural networks: vanishing and exploding gradients are not the end
of the story"), Fig. 1: the loss of a linear student h_t = lambda h_{t-1} + x_t regressing a linear
teacher h*_t = lambda* h*_{t-1} + x_t, x i.i.d. N(0, 1), against lambda, for teachers of longer and longer
memory lambda* = 1 - {0.64, 0.32, 0.16, 0.08, 0.04, 0.02, 0.01}: the landscape sharpens as the memory
grows, on a log loss axis (docs/reference.md §14).

In landscape: ``--cell linear --task teacher --task-set lam=LAMBDA*`` over w = lambda (u = 1, b = 0 are
the linear cell's base point). The grid is the finite-T, finite-n loss; the paper's curves are the
T -> infinity mean, in closed form

    L(lambda) = 1/2 [1 / (1 - lambda^2) + 1 / (1 - lambda*^2) - 2 / (1 - lambda lambda*)]

which the figure draws dashed beside the grid (tests/test_teacher.py checks the two agree within the
data's sampling error).

Outputs (in OUT):

    zucchet-fig1-lamL.h5        one surface per teacher (w = lambda on the first axis; b = 0 and 0.1 on the
                                second, of which the figure uses b = 0)
    zucchet-fig1-summary.csv    per teacher: the largest relative difference between the grid and the
                                closed form, and the sharpness L''(lambda*) of the closed form at the optimum
    zucchet-fig1.pdf/.png       log L against lambda, one colour per teacher, closed form dashed
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

NAME = "zucchet-fig1"
DESCRIPTION = "Zucchet & Orvieto 2024 Fig. 1: a linear student against linear teachers of growing memory"

GAPS = (0.64, 0.32, 0.16, 0.08, 0.04, 0.02, 0.01)  # 1 - lambda*
SIZES = {  # quick -> (lambda points, sequences, T)
    False: (200, 4000, 2000),
    True: (40, 400, 600),
}
LAMBDA_MAX = 0.99  # the closed form diverges at lambda = 1; the finite-T grid needs T >> 1 / (1 - lambda)


def closed_form(lam, lam_star):
    """1/2 E[(h - h*)^2] at T -> infinity, x ~ N(0, 1) (docs/reference.md §14)."""
    lam = np.asarray(lam, dtype=np.float64)
    return 0.5 * (1 / (1 - lam**2) + 1 / (1 - lam_star**2) - 2 / (1 - lam * lam_star))


def sharpness(lam_star):
    """L''(lambda*) of the closed form at its optimum: (1 + 3 l^2) / (1 - l^2)^3 from the student's term
    1/2 / (1 - lambda^2), minus 2 l^2 / (1 - l^2)^3 from the cross term -1 / (1 - lambda l), at lambda = l = lambda*;
    that is (1 + l^2) / (1 - l^2)^3, which grows like 1 / (8 (1 - l)^3) as the memory grows."""
    l2 = lam_star**2
    return (1 + 3 * l2) / (1 - l2) ** 3 - 2 * l2 / (1 - l2) ** 3


def spec(lam_star: float, quick: bool = False):
    from ..spec import Axis, GridSpec

    points, n, T = SIZES[quick]
    return GridSpec.of(cell="linear", task="teacher", task_options=(("lam", lam_star),), T=(T,), n=n,
                    x=Axis("w", 0.0, LAMBDA_MAX, points), y=Axis("b", 0.0, 0.1, 2))


def run(out_dir, quick: bool = False, device: str = "auto", progress: bool | None = None) -> list[Path]:
    from matplotlib import colormaps

    from ..figures import new_figure, use_style
    from .common import grid_at, save_pdf_png
    from .report import write_csv

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written, rows, curves = [], [], []
    for gap in GAPS:
        lam_star = round(1 - gap, 2)
        result = grid_at(spec(lam_star, quick), out / f"zucchet-fig1-lam{lam_star:g}.h5", device=device,
                         progress=progress)
        s = result.surface
        lam, loss = s.x, s.loss[-1, :, 0]  # b = 0, the largest T
        exact = closed_form(lam, lam_star)
        away = np.abs(lam - lam_star) > 0.02  # at the optimum both are ~0 and the ratio means nothing
        rel = np.abs(loss[away] / exact[away] - 1)
        rows.append({"lam_star": lam_star, "T": int(s.T[-1]), "n": int(s.spec["n"]),
                     "max_rel_diff_from_closed_form": float(rel.max()),
                     "median_rel_diff_from_closed_form": float(np.median(rel)),
                     "closed_form_sharpness_at_optimum": float(sharpness(lam_star)),
                     "grid_min_at_lambda": float(lam[int(np.argmin(loss))])})
        curves.append((lam_star, lam, loss, exact))
        written.append(result.path)
    written.append(write_csv(out / "zucchet-fig1-summary.csv", rows))
    with use_style("paper"):
        fig = new_figure("single", aspect=0.8)
        ax = fig.add_subplot()
        colours = colormaps["viridis"](np.linspace(0.0, 0.9, len(curves)))
        for colour, (lam_star, lam, loss, exact) in zip(colours, curves):
            ax.plot(lam, np.maximum(loss, 1e-12), color=colour, linewidth=1.0, label=rf"$\lambda^* = {lam_star:g}$")
            ax.plot(lam, exact, color=colour, linewidth=0.8, linestyle=(0, (2, 2)))
        ax.set_yscale("log")
        ax.set_ylim(1e-5, None)
        ax.set_xlim(0, LAMBDA_MAX)
        ax.set_xlabel(r"$\lambda$")
        ax.set_ylabel(r"loss $\frac{1}{2}\,\mathrm{E}(h_T - h^*_T)^2$")
        T, n = rows[0]["T"], rows[0]["n"]
        ax.set_title(f"grid at T = {T}, n = {n} (solid); T → ∞ (dashed)", fontsize="small")
        ax.legend(loc="lower left", fontsize="x-small", handlelength=1.2, frameon=False)
        written += save_pdf_png(fig, out, "zucchet-fig1", quick)
    print(f"{NAME}: linear student h_t = lambda h_t-1 + x_t against teachers lambda*, x ~ N(0, 1)")
    for r in rows:
        print(f"  lambda*={r['lam_star']:<5g} grid vs closed form: median {r['median_rel_diff_from_closed_form']:.3f}, "
              f"max {r['max_rel_diff_from_closed_form']:.3f} (relative; T = {r['T']}, n = {r['n']}); "
              f"L''(lambda*) = {r['closed_form_sharpness_at_optimum']:.4g}")
    for path in written:
        print(f"  wrote {path}")
    return written
