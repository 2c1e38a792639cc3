"""Grid evaluation by landscape's engine against the per-point loop peers use.

The candidate is landscape's grid evaluation in memory (``engine_grid``: what ``landscape.grid``
does, data, chunks from the memory budget, ``engine.unroll_losses``, without writing the HDF5 file,
as the baseline writes none either); for pascanu, where the file is a large part of the time,
``landscape.grid`` end to end is a second row. The engine runs its fused CPU kernels (numba) where
they apply, on ``--threads`` workers (default one), else its torch paths. The baseline is what
loss-landscape tools do (there is no numpy baseline here): for each grid point, set the weights of a ``torch.nn.RNN`` / ``LSTM`` / ``GRU`` and run a forward pass over the same N sequences,
then take the loss (with the optimal readout: fit it for that point too). For ``pascanu`` on
``target`` (no input, N = 1) the baseline is a Python loop over points and steps with torch scalar
ops. The loop is timed on a subset of points spread over the grid and extrapolated linearly to the
whole grid (its cost per point does not depend on the point); its losses are checked against the
grid's at those points.
"""
from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import landscape
from landscape import Axis, GridSpec, engine, plan, settings
from landscape.readout_fit import fit_logistic_readout
from landscape.readouts import logistic_loss

from .common import Row, Settings, speedup_row, timed

NAME = "grid-vs-loop"
LATCH_AXES = {"srnn": ("w", -1.0, 3.0, "b", -1.5, 1.5), "lstm": ("b_f", -4.0, 6.0, "w_z", -4.0, 6.0),
              "gru": ("b_z", -6.0, 6.0, "w_h", -3.0, 5.0)}
TARGETS = {("srnn", "fixed"): ">= 5", ("lstm", "fixed"): ">= 3", ("pascanu", "none"): ">= 1000"}


def sizes(s: Settings) -> dict:
    if s.quick:
        return dict(latch_num=6, n=40, T=10, loop_points=4, target_num=21, target_T=10, target_loop_points=40)
    return dict(latch_num=101, n=1000, T=100, loop_points=40, target_num=501, target_T=50, target_loop_points=2000)


def run(s: Settings) -> list[Row]:
    z = sizes(s)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for cell in ("srnn", "lstm", "gru"):
            a = LATCH_AXES[cell]
            for readout in ("fixed", "optimal"):
                spec = GridSpec.of(cell=cell, task="latch", T=(z["T"],), n=z["n"], fit=readout,
                                x=Axis(a[0], a[1], a[2], z["latch_num"]), y=Axis(a[3], a[4], a[5], z["latch_num"]))
                rows += _compare(s, spec, z["loop_points"], Path(tmp), _nn_loop)
        spec = GridSpec.of(cell="pascanu", task="target", T=(z["target_T"],), n=1,
                        x=Axis("w", 4.5, 5.5, z["target_num"]), y=Axis("b", -2.9, -1.9, z["target_num"]))
        rows += _compare(s, spec, z["target_loop_points"], Path(tmp), _scalar_loop, with_file=True)
    return rows


def engine_grid(spec: GridSpec, device: str = "cpu") -> np.ndarray:
    """The loss (nT, nx, ny) computed as ``landscape.grid`` computes it (surface._compute_chunks),
    in memory: no cache, no file."""
    r = landscape.resolve(spec)
    dev = torch.device(device)
    total = r.x.num * r.y.num
    size = plan.plan_grid_chunk(r, dev, settings.memory())
    data = r.problem.task.make(r.Ts, r.n, spec.seed).to(r.torch_dtype, dev)
    xs, ys = torch.as_tensor(r.x.values()), torch.as_tensor(r.y.values())
    out = np.empty((len(r.Ts), total))
    with torch.no_grad():
        for start, stop in engine.flat_chunks(total, size):
            flat = torch.arange(start, stop)
            params = engine.chunk_params(r.problem.base, r.refs, (xs[flat // r.y.num], ys[flat % r.y.num]),
                                         r.torch_dtype, dev)
            out[:, start:stop] = engine.unroll_losses(r.problem, params, data, r.Ts).cpu().numpy()
    return out.reshape(len(r.Ts), r.x.num, r.y.num)


def _compare(s: Settings, spec: GridSpec, n_points: int, tmp: Path, make_loop, with_file: bool = False) -> list[Row]:
    r = landscape.resolve(spec)
    total = r.x.num * r.y.num
    flat = np.unique(np.linspace(0, total - 1, n_points).round().astype(int))  # points spread over the grid
    points = [_point(r, int(f)) for f in flat]
    data = r.problem.task.make(r.Ts, r.n, spec.seed)
    loop = make_loop(r, data, points)
    out = tmp / f"{r.problem.cell.name}-{r.problem.readout.label}.h5"
    result = {}

    def grid():
        result["loss"] = engine_grid(spec)

    def grid_file():
        result["file"] = landscape.grid(spec, out=out, force=True, device="cpu", progress=False).surface.loss

    def per_point():
        result["loop"] = loop()
        return total / len(points)  # extrapolated to the whole grid

    small = replace(spec, x=replace(r.x, num=5), y=replace(r.y, num=5))
    warm = {"grid": lambda: landscape.grid(small, out=tmp / "warm.h5", force=True, device="cpu", progress=False),
            "loop": make_loop(r, data, points[:1])}
    funcs = {"grid": grid, **({"file": grid_file} if with_file else {}), "loop": per_point}
    res = timed(s, funcs, warmup=warm)
    if with_file and not np.array_equal(result["file"], result["loss"]):
        raise AssertionError(f"{spec.model.cell}: landscape.grid and the in-memory evaluation differ")
    grid_at = result["loss"][0].reshape(-1)[flat]
    diff = float(np.max(np.abs(np.asarray(result["loop"]) - grid_at)))
    if not diff < 1e-8:
        raise AssertionError(f"{spec.model.cell} {r.problem.readout.label}: the per-point loop's losses differ from the grid's by {diff:g}")
    T = r.Ts[0]
    case = (f"{spec.model.cell} {r.problem.task.name} N={r.n} T={T} {r.x.num}x{r.y.num}"
            + (f" readout={r.problem.readout.label}" if r.problem.readout.label != "none" else ""))
    base = ("torch.nn." + {"srnn": "RNN", "lstm": "LSTM", "gru": "GRU"}[spec.model.cell] + " per point"
            if spec.model.cell in ("srnn", "lstm", "gru") else "python loop, torch scalars")
    note = (f"loop timed on {len(points)} of {total} points, extrapolated x{total / len(points):.0f}; "
            f"its losses match the grid's to {diff:.1e}")
    rows = [speedup_row(NAME, case, "engine (in memory)", base, res, "grid", "loop",
                        TARGETS.get((spec.model.cell, r.problem.readout.label), ""), note)]
    if with_file:
        rows.append(speedup_row(NAME, case, "landscape.grid (+ HDF5 file)", base, res, "file", "loop",
                                note=note + "; the same grid written to its HDF5 file and read back"))
    return rows


def _point(r, flat: int) -> dict[str, float]:
    """The scalar parameters of grid point ``flat`` ("ij" order): base point plus the two axes."""
    i, j = divmod(flat, r.y.num)
    values = {k: float(v.reshape(-1)[0]) for k, v in r.problem.base.items()}
    values[r.x_ref[0]] = float(r.x.values()[i])
    values[r.y_ref[0]] = float(r.y.values()[j])
    return values


# ---------------------------------------------------------------------------------------------
# the baselines


def _nn_loop(r, data, points, device="cpu", dtype=torch.float64):
    """torch.nn module per point: set its weights, run the N sequences, take the loss (on ``device``:
    cuDNN's kernels on a GPU, ``benchmarks.gpu``)."""
    cell, T, l2 = r.problem.cell.name, r.Ts[0], r.spec.readout_l2
    dt = dtype
    module = {"srnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](1, 1, batch_first=True)
    module = module.to(device, dt)
    x = data.inputs[:T].permute(1, 0, 2).contiguous().to(device, dt)  # (N, T, 1)
    y = data.targets[T].to(device, dt)

    def set_weights(p):
        if cell == "srnn":
            hh, ih, b_ih, b_hh = [p["w"]], [p["u"]], [p["b"]], [0.0]
        elif cell == "lstm":  # torch's gate order i, f, g (= our z), o
            hh, ih = [p[f"w_{g}"] for g in "ifzo"], [p[f"u_{g}"] for g in "ifzo"]
            b_ih, b_hh = [p[f"b_{g}"] for g in "ifzo"], [0.0] * 4
        else:  # torch's gate order r, z, n
            hh, ih = [p["w_r"], p["w_z"], p["w_h"]], [p["u_r"], p["u_z"], p["u_h"]]
            b_ih, b_hh = [p["b_r"], p["b_z"], p["b_h"]], [0.0, 0.0, p["b_hn"]]
        module.weight_hh_l0.copy_(torch.tensor(hh, dtype=dt).view(-1, 1))
        module.weight_ih_l0.copy_(torch.tensor(ih, dtype=dt).view(-1, 1))
        module.bias_ih_l0.copy_(torch.tensor(b_ih, dtype=dt))
        module.bias_hh_l0.copy_(torch.tensor(b_hh, dtype=dt))

    def loop():
        losses = []
        with torch.no_grad():
            for p in points:
                set_weights(p)
                out, _ = module(x)
                h = out[:, -1, :]  # (N, 1)
                if r.problem.readout.label == "fixed":
                    loss = F.binary_cross_entropy_with_logits(p["out_w"] * h[:, 0] + p["out_b"], y)
                else:
                    w, b = fit_logistic_readout(h.unsqueeze(0), y, l2)
                    loss = logistic_loss(h.unsqueeze(0), w, b, y)[0]
                losses.append(float(loss))
        return losses

    return loop


def _scalar_loop(r, data, points):
    """pascanu target, the peers' way: a Python loop over points and steps, torch scalar ops."""
    T, x0, target = r.Ts[0], float(data.h0), float(r.problem.task.target)
    dt = torch.float64

    def loop():
        losses = []
        for p in points:
            w, b = torch.tensor(p["w"], dtype=dt), torch.tensor(p["b"], dtype=dt)
            x = torch.tensor(x0, dtype=dt)
            for _ in range(T):
                x = w * torch.sigmoid(x) + b
            losses.append(float((torch.sigmoid(x) - target) ** 2))
        return losses

    return loop
