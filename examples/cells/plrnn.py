"""The piecewise-linear RNN of Eisenmann et al. 2023 ("Bifurcations and loss jumps in RNN training",
SCYFI), a ReLU RNN with a diagonal linear part:

    z' = a * z + w relu(z) + h (+ u x)          a (H,) the diagonal of A, w (H, H), h (H,)

The paper's 2-unit example (its Fig. 3) is the base point for H = 2:

    A = diag(0.83777, 0.96461),  W = [[0, -0.64375], [0.52505, 0]],  h = (0.37298, -0.97931)

and the default axes sweep a[0], a[1] by +-1 around it (the paper's Delta a_00, Delta a_11). With
no input (a task with D = 0) the map is autonomous; on a task with input the input weight u
defaults to 0, which leaves it autonomous too.

    landscape cells examples/cells/plrnn.py:PLRNN
    landscape grid --cell examples/cells/plrnn.py:PLRNN --hidden 2 --task target ...
    landscape grid --cell examples/cells/plrnn.py:PLRNN --task plrnn-path --task-set forcing=10 --T 500 ...

Its map is linear in each of the 2^H regions where the signs of z are fixed (``region_maps``), so
its fixed points and cycles can be enumerated exactly (tests/test_dynamics_map.py does).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from landscape.cells import Cell, ParamDecl, bias, drive, linear
from landscape.tasks.builtin import EISENMANN_A, EISENMANN_H, EISENMANN_W  # the ground truth of task plrnn-path



@dataclass(frozen=True)
class PLRNN(Cell):
    name = "plrnn"
    summary = "piecewise-linear RNN z' = a*z + W relu(z) + h (Eisenmann et al. 2023)"
    equations = "z' = a * z + W relu(z) + h + u x"
    params = (
        ParamDecl("a", "per_unit", default=0.5),
        ParamDecl("w", "recurrent", default=0.0),
        ParamDecl("u", "input", default=0.0),
        ParamDecl("h", "bias", default=0.0),
    )
    state_names = ("z",)
    default_axes = ("a[0]:-0.16223:1.83777:201", "a[1]:-0.03539:1.96461:201")
    block_input = ("w", "h")

    def default_params(self, H, D, dtype=None):
        """The paper's 2-unit system for H = 2; otherwise a = 0.5, W = 0, h = 0, u = 0."""
        out = super().default_params(H, D, dtype)
        if H == 2:
            out["a"] = torch.tensor(EISENMANN_A, dtype=out["a"].dtype)
            out["w"] = torch.tensor(EISENMANN_W, dtype=out["w"].dtype)
            out["h"] = torch.tensor(EISENMANN_H, dtype=out["h"].dtype)
        return out

    def step(self, p, state, x):  # p: name -> (P, *shape); state (P, N, H); x (N, D) or None
        (z,) = state
        return (p["a"].unsqueeze(-2) * z + linear(torch.relu(z), p["w"]) + bias(p["h"]) + drive(x, p, "u"),)


def region_maps(a, w, h):
    """The affine pieces of the map: for each of the 2^H sign patterns d (tuple of 0/1, unit i
    active when d_i = 1) the matrix M_d = diag(a) + W diag(d) and the offset h, as numpy arrays."""
    import itertools

    import numpy as np

    a, w, h = np.asarray(a, float), np.asarray(w, float), np.asarray(h, float)
    return {d: (np.diag(a) + w * np.asarray(d, float), h) for d in itertools.product((0, 1), repeat=len(a))}
