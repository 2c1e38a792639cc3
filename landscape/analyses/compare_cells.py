"""srnn, lstm, gru and lstm-b side by side on the latch task at T = 10, 50, 100.

Every cell is shown over the recurrent weight and the bias of the path that writes its state
(the tanh block input / candidate; each cell declares them as ``Cell.block_input``), on the same
window, so the columns share their axes:

    srnn    w   x b      h' = tanh(w h + u x + b)
    lstm    w_z x b_z    z = tanh(W_z h + U_z x + b_z), forget bias b_f = 0 at the base point
    lstm-b  w_z x b_z    the same with b_f = 1 (Jozefowicz et al.'s LSTM-b)
    gru     w_h x b_h    candidate h~ = tanh(U_h x + b_h + r (W_h h + b_hn))

with every other parameter at its default (weights 1, biases 0). Not the default axes of the
LSTMs: those put b_f on an axis, and lstm and lstm-b differ only in b_f, so their surfaces over
(b_f, w_z) are identical; here the forget bias is a base-point setting and the two differ.
The low-loss wedge is where a cell latches the first input over T steps (loss -> 0); outside
it the optimal readout can do no better than chance (ln 2 = 0.693).

Outputs (in OUT):

    CELL-latch.h5                     losses at T = 10, 50, 100 for each cell
    compare-cells.pdf/.png            3 rows (T) x 4 columns (cells), one colour scale
    compare-cells-log.pdf/.png        the same on a log colour scale (the floor of the wedge)
    compare-cells-slices.pdf/.png     the loss along the weight axis at bias 0, the cells overlaid

Sizes (full / --quick): 51 x 51 points over [-1, 5] x [-1.5, 1.5] with n = 500 sequences /
11 x 11 with n = 64. Measured times: README.md.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

NAME = "compare-cells"
DESCRIPTION = "srnn, lstm, gru, lstm-b side by side on latch at T = 10, 50, 100 (shared axes and colour scale)"

TS = (10, 50, 100)
CELLS = ("srnn", "lstm", "lstm-b", "gru")
WEIGHT_RANGE = (-1.0, 5.0)
BIAS_RANGE = (-1.5, 1.5)
SIZES = {False: (51, 500), True: (11, 64)}  # (grid points per axis, sequences n)


def block_input(cell: str) -> tuple[str, str]:
    """(recurrent weight, bias) of the path that writes the cell's state."""
    from ..cells import cell_class

    return cell_class(cell).block_input


def spec(cell: str, quick: bool = False):
    from ..spec import Axis, GridSpec

    points, n = SIZES[quick]
    xn, yn = block_input(cell)
    return GridSpec.of(cell=cell, task="latch", T=TS, n=n, x=Axis(xn, *WEIGHT_RANGE, points),
                    y=Axis(yn, *BIAS_RANGE, points))


def run(out_dir, quick: bool = False, device: str = "auto", progress: bool | None = None) -> list[Path]:
    from ..figures import new_figure, plot_compare, use_style
    from .common import grid_and_say, save_pdf_png

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written, surfaces = [], []
    for cell in CELLS:
        result = grid_and_say(NAME, spec(cell, quick), out / f"{cell}-latch.h5",
                              f"{cell} over {' x '.join(block_input(cell))}", device, progress)
        written.append(result.path)
        surfaces.append(result.surface)
    titles = [f"{cell}: {' x '.join(block_input(cell))}" for cell in CELLS]
    with use_style("paper"):
        for scale, stem in (("linear", "compare-cells"), ("log", "compare-cells-log")):
            fig = plot_compare(surfaces, Ts=TS, scale=scale, titles=titles)
            fig.suptitle("latch: loss over each cell's recurrent weight x bias (rows: T)")
            written += save_pdf_png(fig, out, stem, quick)

        fig = new_figure("double", aspect=0.3)
        axes = fig.subplots(1, len(TS), sharey=True)
        for ax, T in zip(axes, TS):
            for cell, s in zip(CELLS, surfaces):
                j = int(np.argmin(np.abs(s.y)))  # bias = 0
                k = int(np.nonzero(s.T == T)[0][0])
                ax.plot(s.x, np.where(np.isfinite(s.loss[k, :, j]), s.loss[k, :, j], np.nan), label=cell)
            ax.set_title(f"T = {T}, bias = 0")
            ax.set_xlabel("recurrent weight (w, w_z, w_z, w_h)")
            ax.set_xlim(*WEIGHT_RANGE)
        axes[0].set_ylabel("loss")
        axes[-1].legend(loc="upper right")
        written += save_pdf_png(fig, out, "compare-cells-slices", quick)

    print("  where each cell starts to latch (loss < 0.1 at bias 0), smallest recurrent weight:")
    for cell, s in zip(CELLS, surfaces):
        j = int(np.argmin(np.abs(s.y)))
        cols = []
        for T in TS:
            k = int(np.nonzero(s.T == T)[0][0])
            below = np.nonzero(s.loss[k, :, j] < 0.1)[0]
            cols.append(f"T={T}: {s.x[below[0]]:.2f}" if below.size else f"T={T}: none")
        print(f"  {cell:>7s}  " + "  ".join(cols))
    for path in written:
        print(f"  wrote {path}")
    return written
