"""Eisenmann, Monfared, Göring & Durstewitz 2023 ("Bifurcations and loss jumps in RNN training"),
Fig. 3: the loss landscape of a 2-unit piecewise-linear RNN around a ground truth, free-running and
teacher-forced, with the bifurcation lines laid over it (docs/reference.md §14).

Setup: the ground truth z*_t = A z*_{t-1} + W relu(z*_{t-1}) + h with A = diag(0.83777, 0.96461),
W = [[0, -0.64375], [0.52505, 0]], h = (0.37298, -0.97931) from z*_0 = 0 (task ``plrnn-path``);
the model is the same PLRNN (examples/cells/plrnn.py, whose base point is the ground truth) with
a_00 and a_11 moved by Delta in [-1, 1] each (200 x 200 points in full); sequence length 500; the
loss is the mean over every step and both units of (z_t - z*_t)^2 (``engine.path_losses``).

Columns (``FORCINGS``): free-running (forcing 0); sparse teacher forcing, the state reset to the
ground truth every TAU = 10 steps; full teacher forcing (every step: the one-step-ahead loss).
What the paper leaves open and is chosen here: the initial state z*_0 = 0, the forcing interval
tau = 10 of the middle column, and the gradient norm's parameters: the Euclidean norm of the
loss's gradient with respect to every parameter of the cell (a, W, h: 8 numbers), by autograd
through the 500 steps.

Rows: log10 of the loss and log10 of the gradient norm (colours clipped at the 90th percentile;
grey: a gradient that overflowed to NaN where the free run diverges). Lines (white): the bifurcation lines,
where neighbouring grid points differ in the number of fixed points or k-cycles (k <= 8) or of
stable ones (``dynamics_map`` at every grid point, SCYFI's neighbour rule:
``dynamics_map.bifurcation_edges``, ``bifurcation_segments``); the star is the ground truth.

Outputs (in OUT): eisenmann-fig3-free.h5, -tau10.h5, -forced.h5 (the loss surfaces),
eisenmann-fig3-gradnorm.npz (the gradient norms, one (nx, ny) array per column, and the axes),
eisenmann-fig3-summary.csv (per column: the loss's range, the share of grid faces on a bifurcation
line, and the median loss jump across bifurcation faces against other faces),
eisenmann-fig3.pdf/.png.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

NAME = "eisenmann-fig3"
DESCRIPTION = "Eisenmann et al. 2023 Fig. 3: a 2-unit PLRNN's loss and gradient-norm landscapes, free and forced"

CELL = str(Path(__file__).resolve().parents[2] / "examples" / "cells" / "plrnn.py") + ":PLRNN"
T = 500
TAU = 10
FORCINGS = {"free": 0, f"tau{TAU}": TAU, "forced": 1}  # column -> forcing interval
TITLES = {"free": "free-running", f"tau{TAU}": f"teacher forcing every {TAU} steps", "forced": "full teacher forcing"}
SIZES = {False: 200, True: 12}  # points per axis
CLIP_PERCENTILE = 90  # colour scales end at this percentile (free-running losses reach 1e290 where it diverges)
GRAD_CHUNK = 2000  # grid points per autograd pass (500 steps of graph each)


def spec(forcing: int, quick: bool = False):
    from ..spec import Axis, GridSpec
    from ..tasks.builtin import EISENMANN_A

    num = SIZES[quick]
    a0, a1 = EISENMANN_A
    return GridSpec.of(cell=CELL, task="plrnn-path", task_options=(("forcing", forcing),), T=(T,), n=1,
                       x=Axis("a[0]", a0 - 1.0, a0 + 1.0, num), y=Axis("a[1]", a1 - 1.0, a1 + 1.0, num))


def grad_norms(grid_spec) -> np.ndarray:
    """|dL_T/d(a, W, h)| at every grid point of a plrnn-path grid (a GridSpec): (nx, ny)."""
    from .. import engine
    from ..lazy import torch
    from ..resolved import resolve

    r = resolve(grid_spec)
    data = r.problem.task.make(r.Ts, 1, 0)
    xs, ys = (torch.as_tensor(ax.values(), dtype=torch.float64) for ax in (r.x, r.y))
    P = r.x.num * r.y.num
    out = np.empty(P)
    names = ("a", "w", "h")
    for s, e in engine.flat_chunks(P, GRAD_CHUNK):
        flat = torch.arange(s, e)
        params = engine.chunk_params(r.problem.base, r.refs, (xs[flat // r.y.num], ys[flat % r.y.num]),
                                     torch.float64, torch.device("cpu"))
        params = {k: (v.expand(e - s, *v.shape[1:]).clone().requires_grad_(True) if k in names else v)
                  for k, v in params.items()}
        loss = engine.unroll_losses(r.problem, params, data, r.Ts)[0]  # (P,)
        grads = torch.autograd.grad(loss.sum(), [params[k] for k in names])
        out[s:e] = torch.sqrt(sum(g.reshape(e - s, -1).pow(2).sum(-1) for g in grads)).numpy()
    return out.reshape(r.x.num, r.y.num)


def bifurcation_lines(grid_spec):
    """(segments (L, 2, 2) in (Delta a00, Delta a11), across_x, across_y) on a grid (a GridSpec)."""
    from .. import engine
    from ..dynamics_map import bifurcation_edges, bifurcation_segments, dynamics_map
    from ..lazy import torch
    from ..resolved import resolve
    from ..tasks.builtin import EISENMANN_A

    r = resolve(grid_spec)
    xs, ys = (torch.as_tensor(ax.values(), dtype=torch.float64) for ax in (r.x, r.y))
    flat = torch.arange(r.x.num * r.y.num)
    params = engine.chunk_params(r.problem.base, r.refs, (xs[flat // r.y.num], ys[flat % r.y.num]),
                                 torch.float64, torch.device("cpu"))
    dm = dynamics_map(r.problem, params)
    sig = dm.signature().reshape(r.x.num, r.y.num, -1)
    across_x, across_y = bifurcation_edges(sig)
    seg = bifurcation_segments(across_x, across_y, xs.numpy() - EISENMANN_A[0], ys.numpy() - EISENMANN_A[1])
    return seg, across_x, across_y


def run(out_dir, quick: bool = False, device: str = "auto", progress: bool | None = None) -> list[Path]:
    from ..tasks.builtin import EISENMANN_A
    from .common import grid_at
    from .report import write_csv

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written, columns = [], {}
    lines = None
    for col, tau in FORCINGS.items():
        result = grid_at(spec(tau, quick), out / f"eisenmann-fig3-{col}.h5", device="cpu", progress=progress)
        written.append(result.path)
        if lines is None:  # the dynamics do not depend on the loss: one map for every column
            lines = bifurcation_lines(spec(tau, quick))
        columns[col] = (result.surface.loss[-1], grad_norms(spec(tau, quick)))
    s = result.surface
    dx, dy = s.x - EISENMANN_A[0], s.y - EISENMANN_A[1]
    npz = out / "eisenmann-fig3-gradnorm.npz"
    np.savez(npz, delta_a00=dx, delta_a11=dy, **{col: g for col, (_, g) in columns.items()})
    written.append(npz)
    seg, across_x, across_y = lines
    rows = [summary_row(col, loss, across_x, across_y) for col, (loss, _) in columns.items()]
    written.append(write_csv(out / "eisenmann-fig3-summary.csv", rows))
    written += plot(columns, dx, dy, seg, out, quick)
    print(f"{NAME}: 2-unit PLRNN around Eisenmann et al.'s ground truth, T = {T}, {s.x.size} x {s.y.size} grid; "
          f"{len(seg)} bifurcation faces ({rows[0]['bifurcation_face_share']:.3f} of all)")
    for r in rows:
        print(f"  {r['column']:<7} loss {r['loss_min']:.3g} .. {r['loss_max']:.3g}; median |jump of log10 loss| across "
              f"bifurcation faces {r['median_log_jump_on_lines']:.3g}, elsewhere {r['median_log_jump_elsewhere']:.3g}")
    for path in written:
        print(f"  wrote {path}")
    return written


def summary_row(col: str, loss: np.ndarray, across_x: np.ndarray, across_y: np.ndarray) -> dict:
    """The loss's range and how much it jumps across bifurcation faces against other faces."""
    log = np.log10(np.maximum(loss, 1e-300))
    jx, jy = np.abs(np.diff(log, axis=0)), np.abs(np.diff(log, axis=1))
    on = np.concatenate([jx[across_x], jy[across_y]])
    off = np.concatenate([jx[~across_x], jy[~across_y]])
    faces = across_x.size + across_y.size
    return {"column": col, "forcing": FORCINGS[col], "loss_min": float(loss.min()), "loss_max": float(loss.max()),
            "bifurcation_face_share": float(on.size / faces),
            "median_log_jump_on_lines": float(np.median(on)) if on.size else float("nan"),
            "median_log_jump_elsewhere": float(np.median(off)) if off.size else float("nan")}


def plot(columns: dict, dx, dy, seg, out: Path, quick: bool) -> list[Path]:
    from matplotlib import colormaps
    from matplotlib.collections import LineCollection

    from ..figures import new_figure, use_style
    from .common import save_pdf_png

    extent = (dx[0], dx[-1], dy[0], dy[-1])
    with use_style("paper"):
        fig = new_figure("double", aspect=0.62)
        axes = fig.subplots(2, len(columns), sharex=True, sharey=True, squeeze=False)
        for c, (col, (loss, gnorm)) in enumerate(columns.items()):
            for r, (field, label) in enumerate(((loss, "log10 loss"), (gnorm, "log10 |grad|"))):
                ax = axes[r, c]
                log = np.log10(np.maximum(field, 1e-300))  # NaN (an overflowed gradient) stays NaN: grey
                lo, hi = np.percentile(log[np.isfinite(log)], [1, CLIP_PERCENTILE])
                cmap = colormaps["viridis"].with_extremes(bad="0.7")
                im = ax.imshow(log.T, origin="lower", extent=extent, aspect="auto", cmap=cmap, vmin=lo, vmax=hi,
                               interpolation="nearest")
                fig.colorbar(im, ax=ax, label=label, shrink=0.9, extend="max")
                ax.add_collection(LineCollection(seg, colors="white", linewidths=0.6))
                ax.plot([0], [0], marker="*", color="red", markersize=6)
                if r == 0:
                    ax.set_title(TITLES[col], fontsize="small")
                if r == 1:
                    ax.set_xlabel(r"$\Delta a_{00}$")
                if c == 0:
                    ax.set_ylabel(r"$\Delta a_{11}$")
        fig.suptitle(f"2-unit PLRNN, T = {T}: loss over every step against the ground truth (star); "
                     f"white: bifurcation lines (fixed points and cycles up to period 8)", fontsize="small")
        return save_pdf_png(fig, out, "eisenmann-fig3", quick)
