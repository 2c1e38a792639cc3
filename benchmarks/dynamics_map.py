"""The dynamics map of a one-unit srnn grid against a per-point scipy root-finding loop.

The candidate is ``landscape.dynamics_map.dynamics_map`` on the whole grid (w in [-1, 3], b in
[-1.5, 1.5], 201 x 201 in full, input 0): fixed points and cycles of period <= 8 with their
stability, every point in one batch. The baseline is what one writes without it: for each grid
point and each period k, ``scipy.optimize.root`` on F^k(h) - h from the same number of starts as
the candidate's, then minimal period, de-duplication and stability per point in Python. It is timed
on a subset of points spread over the grid and extrapolated linearly (its cost per point does not
depend much on the point); its fixed-point counts are checked against the candidate's there.
"""
from __future__ import annotations

import os

import numpy as np
import torch
from scipy.optimize import root

from landscape.dynamics_map import DynamicsOptions, dynamics_map
from landscape.model import ModelSpec
from landscape.problem import resolve_model

from .common import Row, Settings, speedup_row, timed

NAME = "dynamics-map"


def sizes(s: Settings) -> dict:
    return {"num": 21, "loop_points": 4} if s.quick else {"num": 201, "loop_points": 40}


def _grid(num: int):
    ws, bs = np.linspace(-1.0, 3.0, num), np.linspace(-1.5, 1.5, num)
    W, B = np.meshgrid(ws, bs, indexing="ij")
    return W.ravel(), B.ravel()


def _scipy_point(w: float, b: float, opts: DynamicsOptions, rng) -> np.ndarray:
    """Cycles (K,) of h -> tanh(w h + b) by period, from per-point scipy roots of F^k(h) - h."""
    K = opts.max_period
    found = []  # (period, canonical point, stable)
    for k in range(1, K + 1):
        def gap(h, k=k):
            g = h
            for _ in range(k):
                g = np.tanh(w * g + b)
            return g - h

        for h0 in rng.uniform(-1.5, 1.5, opts.starts(1, k)):
            sol = root(gap, [h0], tol=1e-12)
            if not sol.success or abs(gap(sol.x)[0]) > 1e-10:
                continue
            orbit = [float(sol.x[0])]
            for _ in range(k):
                orbit.append(float(np.tanh(w * orbit[-1] + b)))
            d = next(d for d in range(1, k + 1) if abs(orbit[d] - orbit[0]) < 1e-6)
            point = min(orbit[:d])
            if not any(p == d and abs(q - point) < 1e-6 for p, q, _ in found):
                slope = np.prod([w * (1 - np.tanh(w * x + b) ** 2) for x in orbit[:d]])
                found.append((d, point, abs(slope) < 1))
    counts = np.zeros(K, int)
    for d, _, _ in found:
        counts[d - 1] += 1
    return counts


def run(s: Settings) -> list[Row]:
    z = sizes(s)
    problem = resolve_model(ModelSpec(cell="srnn", task="latch"))
    opts = DynamicsOptions()
    W, B = _grid(z["num"])
    P = W.size
    params = {"w": torch.tensor(W).view(P, 1, 1), "u": torch.ones(1, 1, 1, dtype=torch.float64),
              "b": torch.tensor(B).view(P, 1)}
    pick = np.unique(np.linspace(0, P - 1, z["loop_points"]).round().astype(int))
    result = {}

    def grid():
        result["map"] = dynamics_map(problem, params, input=0.0, options=opts)

    def loop():
        rng = np.random.default_rng(0)
        result["loop"] = np.stack([_scipy_point(W[i], B[i], opts, rng) for i in pick])
        return P / len(pick)

    small = {k: v[:16] if v.shape[0] == P else v for k, v in params.items()}
    warm = {"grid": lambda: dynamics_map(problem, small, input=0.0, options=opts)}
    res = timed(s, {"grid": grid, "loop": loop}, warmup=warm)
    got = result["map"].n_fixed[pick]
    agree = int((result["loop"][:, 0] == got).sum())
    load = os.getloadavg()[0]
    case = f"srnn {z['num']}x{z['num']} (w, b), periods <= {opts.max_period}"
    note = (f"scipy loop timed on {len(pick)} of {P} points, extrapolated x{P / len(pick):.0f}; its fixed-point "
            f"counts agree at {agree}/{len(pick)} of them; load average {load:.2f} on {os.cpu_count()} cores "
            f"during the run; the map's wall time {res['grid']['wall_median']:.2f} s")
    return [speedup_row(NAME, case, "dynamics_map (batched Newton)", "scipy.optimize.root per point", res,
                        "grid", "loop", note=note)]
