"""Where each cell's cliffs are, and which bifurcation each one sits on: srnn, lstm, gru and mut1 on
latch at T = 10, 50, 100, each over the weight and bias of the path that writes its state
(``Cell.block_input``: srnn w x b, lstm w_z x b_z, gru w_h x b_h, mut1 its own), the grids computed
with ``--dynamics`` (``dynamics_map.grid_fields``) at the task's input mean (0).

A cliff is one of the ``CLIFFS`` largest loss jumps between neighbouring grid points at a T (the
faces of the grid, as the bifurcation lines are). Its distance to the nearest bifurcation line is
measured in grid steps between the two faces' midpoints; it sits on the line when that is at most
``ON_LINE`` (one step). The nearest line is described by what changes across it: the numbers of
fixed points and of cycles of each period, and the stable ones among them.

Outputs (in OUT):

    CELL-latch.h5                  losses and dynamics fields at T = 10, 50, 100 for each cell
    cell-dynamics.pdf/.png         3 rows (T) x 4 columns (cells): the loss with the bifurcation lines
    cell-dynamics-cliffs.csv       cell, T, rank, where the cliff is, its jump, the distance to the
                                   nearest bifurcation line in grid steps, and what changes across it

Sizes (full / --quick): 41 x 41 points over [-1, 5] x [-1.5, 1.5] with n = 200 sequences / 9 x 9
with n = 16.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

NAME = "cell-dynamics"
DESCRIPTION = "srnn, lstm, gru, mut1 on latch: the loss with its bifurcation lines, and which line each cliff sits on"

TS = (10, 50, 100)
CELLS = ("srnn", "lstm", "gru", "mut1")
WEIGHT_RANGE = (-1.0, 5.0)
BIAS_RANGE = (-1.5, 1.5)
SIZES = {False: (41, 200), True: (9, 16)}  # (grid points per axis, sequences n)
CLIFFS = 3  # the largest jumps reported per cell and T
ON_LINE = 1.0  # grid steps: a cliff this close to a bifurcation line sits on it


def spec(cell: str, quick: bool = False):
    from ..spec import Axis, GridSpec

    points, n = SIZES[quick]
    return GridSpec.of(cell=cell, task="latch", T=TS, n=n, x=Axis("block_w", *WEIGHT_RANGE, points),
                       y=Axis("block_b", *BIAS_RANGE, points), dynamics=True)


def faces(loss: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The faces between neighbouring points of an (nx, ny) grid: (jump (F,) = |loss difference|
    (NaN where either side is not finite), midpoints (F, 2) in grid index units, the two points'
    flat indices (F, 2)); faces across x first, then across y."""
    nx, ny = loss.shape
    idx = np.arange(nx * ny).reshape(nx, ny)
    with np.errstate(invalid="ignore"):
        jx, jy = np.abs(loss[1:] - loss[:-1]), np.abs(loss[:, 1:] - loss[:, :-1])
    ix, jx_ = np.meshgrid(np.arange(nx - 1) + 0.5, np.arange(ny), indexing="ij")
    iy, jy_ = np.meshgrid(np.arange(nx), np.arange(ny - 1) + 0.5, indexing="ij")
    mids = np.concatenate([np.stack([ix, jx_], -1).reshape(-1, 2), np.stack([iy, jy_], -1).reshape(-1, 2)])
    pairs = np.concatenate([np.stack([idx[:-1], idx[1:]], -1).reshape(-1, 2),
                            np.stack([idx[:, :-1], idx[:, 1:]], -1).reshape(-1, 2)])
    jump = np.concatenate([jx.ravel(), jy.ravel()])
    return np.where(np.isfinite(jump), jump, np.nan), mids, pairs


def describe_change(fields: dict, a: int, b: int) -> str:
    """What changes between flat grid points a and b: 'fixed 1->3 (stable 1->2); 2-cycles 0->1'."""
    nx, ny, K = fields["n_cycles"].shape
    cyc, stab = fields["n_cycles"].reshape(nx * ny, K), fields["n_stable_cycles"].reshape(nx * ny, K)
    parts = []
    for k in range(K):
        if cyc[a, k] != cyc[b, k] or stab[a, k] != stab[b, k]:
            what = "fixed" if k == 0 else f"{k + 1}-cycles"
            parts.append(f"{what} {cyc[a, k]:.0f}->{cyc[b, k]:.0f} (stable {stab[a, k]:.0f}->{stab[b, k]:.0f})")
    return "; ".join(parts) or "none"


def cliffs(surface) -> list[dict]:
    """The CLIFFS largest loss jumps of the surface at each T, each with its distance (grid steps)
    to the nearest bifurcation line and what changes across that line."""
    fields = surface.fields
    cyc, stab = fields["n_cycles"], fields["n_stable_cycles"]
    nx, ny, K = cyc.shape
    flat = np.concatenate([cyc, stab], -1).reshape(nx * ny, 2 * K)
    _, mids, pairs = faces(surface.loss[0])
    line = np.any(flat[pairs[:, 0]] != flat[pairs[:, 1]], -1)  # (F,) the bifurcation faces
    rows = []
    for k, T in enumerate(surface.T):
        jump, _, _ = faces(surface.loss[k])
        order = np.argsort(np.nan_to_num(-jump, nan=np.inf))[:CLIFFS]
        for rank, f in enumerate(order, 1):
            if not np.isfinite(jump[f]):
                break
            dist = np.hypot(*(mids[line] - mids[f]).T) if line.any() else np.array([np.inf])
            near = int(np.argmin(dist))
            a, b = pairs[f]
            rows.append({
                "cell": surface.spec["cell"], "T": int(T), "rank": rank,
                "x_name": surface.x_name, "x": float(np.mean(surface.x[[a // ny, b // ny]])),
                "y_name": surface.y_name, "y": float(np.mean(surface.y[[a % ny, b % ny]])),
                "jump": float(jump[f]), "loss_a": float(surface.loss[k].flat[a]),
                "loss_b": float(surface.loss[k].flat[b]), "distance_steps": float(dist[near]),
                "on_bifurcation": bool(dist[near] <= ON_LINE),
                "bifurcation": describe_change(fields, *pairs[line][near]) if line.any() else "none"})
    return rows


def run(out_dir, quick: bool = False, device: str = "auto", progress: bool | None = None) -> list[Path]:
    from ..figures import plot_compare, use_style
    from ..figures.overlays import overlay_dynamics
    from .common import grid_and_say, save_pdf_png
    from .compare_cells import block_input

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written, surfaces = [], []
    for cell in CELLS:
        result = grid_and_say(NAME, spec(cell, quick), out / f"{cell}-latch.h5",
                              f"{cell} over {' x '.join(block_input(cell))} with its dynamics", device, progress)
        written.append(result.path)
        surfaces.append(result.surface)
    titles = [f"{s.spec['cell']}: {s.x_name} x {s.y_name}" for s in surfaces]
    with use_style("paper"):
        fig = plot_compare(surfaces, Ts=TS, titles=titles)
        axes = fig.axes[:len(surfaces) * len(TS)]
        overlay_dynamics(axes, [surfaces[n % len(surfaces)] for n in range(len(axes))],
                         [TS[n // len(surfaces)] for n in range(len(axes))], ("bifurcations",))
        fig.suptitle("latch: loss over each cell's block-input weight x bias, bifurcation lines in magenta (rows: T)")
        written += save_pdf_png(fig, out, "cell-dynamics", quick)

    rows = [row for s in surfaces for row in cliffs(s)]
    path = out / "cell-dynamics-cliffs.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    written.append(path)
    print("  the largest loss jump of each cell and T, and the nearest bifurcation line (grid steps):")
    for row in rows:
        if row["rank"] == 1:
            print(f"  {row['cell']:>5s} T={row['T']:<4d} jump {row['jump']:.3f} at {row['x_name']}={row['x']:.2f}, "
                  f"{row['y_name']}={row['y']:.2f}: {row['distance_steps']:.1f} steps from {row['bifurcation']}")
    for p in written:
        print(f"  wrote {p}")
    return written
