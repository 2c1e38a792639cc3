"""The question's own landscape (Cross Validated 340898, the asker's notebook
``wall-in-the-landscape-of-RNN.ipynb``; docs/reference.md §1, §11): the wall forming as T grows.

The asker's model is Pascanu's map read on its state: x_t = w sigmoid(x_{t-1}) + b from x_0 = 0,
loss (x_T - 1)^2 on x_T itself (Pascanu et al. take (sigmoid(x_T) - 0.7)^2 from 0.5). In landscape
that is ``--cell pascanu --cell-opt observe=state --task target --task-set x0=0 --task-set
target=1``. The 1-D view at w = 5 over b in [-3, 0) in steps of 0.005 for T in {1, 2, 3, 4, 5, 6,
10, 20, 35, 50, 75, 100}: for T <= 10 some b reaches a loss near 0; from T = 35 the loss jumps by
about 6.8 between b = -2.505 and -2.500 and no b gets below about 0.62, and the curves for T = 35,
50, 75, 100 coincide ("the wall forms, then converges").

Outputs (in OUT):

    asker-wall.h5                 the losses (a 2 x 600 grid: w = 5 and 6, b as above)
    asker-wall-summary.csv        per T: the smallest loss, the largest one-step jump and where
    asker-wall.pdf/.png           the 1-D curves at w = 5, one per T

Seconds either way (--quick only thins the lengths).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

NAME = "asker-wall"
DESCRIPTION = "the question's own landscape: x_t = 5 sigmoid(x_t-1) + b, loss (x_T - 1)^2, the wall forming over T"

W = 5.0
TS = {False: (1, 2, 3, 4, 5, 6, 10, 20, 35, 50, 75, 100), True: (1, 5, 10, 35, 50)}


def spec(quick: bool = False):
    from ..spec import Axis, GridSpec

    # b from -3 to -0.005 in steps of 0.005 (the notebook's np.arange(-3, 0, 0.005)); w = 5 (and 6:
    # an axis needs two values)
    return GridSpec.of(cell="pascanu", task="target", T=TS[quick], x=Axis("w", W, W + 1.0, 2),
                    y=Axis("b", -3.0, -0.005, 600), cell_options=(("observe", "state"),),
                    task_options=(("x0", 0.0), ("target", 1.0)))


def summary(surface) -> list[dict]:
    """Per T at w = 5: the smallest loss over b, the largest jump between neighbouring b and where."""
    rows = []
    for k, T in enumerate(surface.T):
        loss = surface.loss[k, 0]  # (600,) at w = 5
        jumps = np.abs(np.diff(loss))
        j = int(np.argmax(jumps))
        rows.append({"T": int(T), "min_loss": float(loss.min()), "b_at_min": float(surface.y[int(np.argmin(loss))]),
                     "max_loss": float(loss.max()), "largest_jump": float(jumps[j]),
                     "jump_from_b": float(surface.y[j]), "jump_to_b": float(surface.y[j + 1])})
    return rows


def run(out_dir, quick: bool = False, device: str = "auto", progress: bool | None = None) -> list[Path]:
    from ..figures import new_figure, use_style
    from .common import grid_at, save_pdf_png
    from .report import write_csv

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = grid_at(spec(quick), out / "asker-wall.h5", device=device, progress=progress)
    s = result.surface
    rows = summary(s)
    written = [result.path, write_csv(out / "asker-wall-summary.csv", rows)]
    with use_style("paper"):
        fig = new_figure("single", aspect=0.8)
        ax = fig.add_subplot()
        from matplotlib import colormaps

        colours = colormaps["viridis"](np.linspace(0.0, 0.92, len(s.T)))  # dark (short T) to light (long T)
        for k, T in enumerate(s.T):
            ax.plot(s.y, s.loss[k, 0], color=colours[k], linewidth=0.9, label=f"T = {T}")
        ax.set_xlabel("b")
        ax.set_ylabel(r"$(x_T - 1)^2$")
        ax.set_xlim(-3, 0)
        ax.set_title(r"$x_t = 5\,\sigma(x_{t-1}) + b$, $x_0 = 0$: the wall as T grows")
        ax.legend(loc="upper right", ncols=2, fontsize="x-small", handlelength=1.2)
        written += save_pdf_png(fig, out, "asker-wall", quick)
    print(f"{NAME}: w = {W:g}, b in [-3, 0) step 0.005, loss (x_T - 1)^2 from x_0 = 0")
    for r in rows:
        print(f"  T={r['T']:<4d} min {r['min_loss']:.4f} (b = {r['b_at_min']:.3f})  largest jump {r['largest_jump']:.3f} "
              f"between b = {r['jump_from_b']:.3f} and {r['jump_to_b']:.3f}")
    for path in written:
        print(f"  wrote {path}")
    return written
