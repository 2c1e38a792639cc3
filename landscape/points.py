"""The point analysis behind ``landscape grads``: per-timestep gradient norms and Jacobian factors at
a few parameter points of one model.

    result = analyse_points(ModelSpec(cell="lstm"), T=100, points=[("w_z=1.2,b_f=0.3", (("w_z", 1.2), ("b_f", 0.3)))])
    result.loss          # (P,) the loss at T of each point
    result.norms["h"]    # (P, steps) ||dL_T/dh_t||, t = 1..steps (and "c" for the LSTM family)
    result.factors       # gradients.JacobianFactors along the sequences
    result.table()       # per point, per t: the columns of ``landscape grads --out FILE.csv``

Each point is the base point of the ModelSpec (resolved exactly as for a grid) with its own
NAME=VALUE values; the memory the analysis needs is checked against the budget before anything
is computed.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

import numpy as np
from .lazy import torch

from . import engine, gradients, settings
from .errors import LandscapeError
from .model import ModelSpec
from .plan import check_points_memory, memory_budget
from .problem import Problem, resolve_model
from .readouts import READOUT_PARAMS
from .spec import torch_dtype

_TOP_COMMAS = re.compile(r",(?![^\[]*\])")  # commas outside [i,j]


def parse_at(text: str) -> tuple[tuple[str, float], ...]:
    """'w_z=1.2,b_f=0.3' or 'w[0,1]=0.5,b=1' -> (('w_z', 1.2), ('b_f', 0.3)); one clear error else."""
    usage = "write NAME=VALUE[,NAME=VALUE...], e.g. --at w=5,b=-2.4 or --at w[0,1]=0.5"
    items = [s.strip() for s in _TOP_COMMAS.split(text.strip())]
    if not text.strip() or any(not s for s in items):
        raise LandscapeError(f"malformed --at {text!r}; {usage}")
    out = []
    for item in items:
        if item.count("=") != 1:
            raise LandscapeError(f"malformed --at {text!r} (at {item!r}); {usage}")
        name, value = (s.strip() for s in item.split("="))
        if not name:
            raise LandscapeError(f"malformed --at {text!r} (at {item!r}); {usage}")
        try:
            number = float(value)
        except ValueError:
            raise LandscapeError(f"--at {text!r}: the value of {name} must be a number, got {value!r}") from None
        if not math.isfinite(number):
            raise LandscapeError(f"--at {text!r}: the value of {name} must be finite, got {value!r}")
        out.append((name, number))
    return tuple(out)


@dataclass
class PointsResult:
    """What ``analyse_points`` computed.

    problem   the resolved model (its base point: the spec's, without the points' values)
    labels    one label per point; values: each point's (name, value) items
    points    the resolved model of each point (``points[p].base`` is its parameters)
    steps     how many steps the analysis covers (T unless sequence lengths vary)
    loss      (P,) the loss at T; norms: state name -> (P, steps) ||dL_T/ds_t|| (float64 torch)
    factors   gradients.JacobianFactors along the sequences, t = 1..steps
    terms     for the LSTM family, the blog's four terms of dc_t/dc_{t-1} (``lstm_terms``):
              forget, through_f, through_z, through_i and their total, (P, N, steps, H, H); else None
    """

    problem: Problem
    T: int
    n: int
    dtype: str
    device: str
    labels: list[str]
    values: list[tuple]
    points: list[Problem]
    steps: int
    loss: np.ndarray
    norms: dict
    factors: gradients.JacobianFactors
    terms: dict | None = None

    def table(self) -> list[list[dict]]:
        """Per point, per t: a dict of the CSV columns (means over the sequences)."""
        jf = self.factors
        cols = {f"grad_norm_{k}": v.cpu().numpy() for k, v in self.norms.items()}  # (P, steps)
        cols["factor_mean"] = jf.factor_size().mean(1)
        cols["log10_product_mean"] = (jf.log_product / math.log(10)).mean(1)
        if jf.forget is not None:
            cols["forget_mean"] = jf.forget.mean(axis=(1, 3))
            cols["remainder_mean"] = jf.remainder_size().mean(1)
        for g, v in jf.gates.items():
            cols[f"gate_{g}_mean"] = v.mean(axis=(1, 3))
        if self.terms is not None:  # |term| per t, mean over sequences (spectral norms for H > 1)
            from .lstm_terms import TERMS, term_sizes

            sizes = term_sizes(self.terms)
            for name in (*TERMS[1:], "total"):
                cols[f"{name}_mean"] = sizes[name].mean(1)
        return [[{"loss_T": float(self.loss[p]), **{k: float(v[p, t]) for k, v in cols.items()}}
                 for t in range(self.steps)] for p in range(len(self.points))]


def analyse_points(model: ModelSpec, T: int, points: list[tuple[str, tuple]] | None = None, n: int | None = None,
                   seed: int = 0, dtype: str = "float64", fit: str = "auto", readout_l2: float = 1e-4,
                   method: str = "auto", device: str = "auto", memory: int | None = None) -> PointsResult:
    """Per-timestep gradient norms and Jacobian factors at each point of ``points``
    [(label, ((name, value), ...)), ...] (default: the base point alone) at length T.

    fit: auto | fixed | optimal, as for a grid (an optimal readout is fitted at T and held fixed
    for the backward); method: the per-timestep norms' scheme (gradients.GRAD_NORM_METHODS).
    """
    if method not in gradients.GRAD_NORM_METHODS:
        raise LandscapeError(f"unknown method {method!r}; choose from: {', '.join(gradients.GRAD_NORM_METHODS)}")
    problem = resolve_model(model, fit=fit, l2=readout_l2)
    n = problem.task.default_n if n is None else int(n)
    problem.task.check_n(n)
    points = points or [("base point", ())]
    resolved = []
    for text, items in points:
        for name, _ in items:
            if problem.readout.optimal and name.split("[")[0].strip() in READOUT_PARAMS:
                raise LandscapeError(f"--at {text}: {name} is fitted with --readout optimal; "
                                     f"use --readout fixed to set it")
        try:
            resolved.append(resolve_model(replace(model, set=model.set + tuple(items)), fit=fit, l2=readout_l2))
        except LandscapeError as err:
            raise LandscapeError(f"--at {text}: {err}") from None
    if method == "auto":  # as grad_norms_t decides it, here before the memory check
        method = "scalar" if gradients.scalar_method_applies(problem) else "autograd"
    elif method == "scalar" and not gradients.scalar_method_applies(problem):
        raise LandscapeError(f"--method scalar needs a one-state cell with H = 1; {problem.cell.name} has states "
                             f"{', '.join(problem.cell.state_names)} and H = {problem.H}")

    dev = engine.resolve_device(device)
    dt = torch_dtype(dtype)
    P, steps = len(resolved), problem.task.steps(T)
    check_points_memory(problem, P, n, T, steps, dt, method,
                        memory_budget(dev, settings.memory() if memory is None else memory))
    data = problem.task.make((T,), n, seed).to(dt, dev)
    steps = gradients.grad_norm_steps(data, T)  # the longest sequence that was drawn
    params = {k: torch.stack([q.base[k] for q in resolved]).to(dtype=dt, device=dev) for k in problem.base}
    loss = engine.unroll_losses(problem, params, data, (T,))[0]  # (P,)
    norms = gradients.grad_norms_t(problem, params, data, T, method)
    factors = gradients.jacobian_factors(problem, params, data, steps)
    terms = None
    if factors.forget is not None and all(g in problem.cell.state_names for g in ("h", "c")):
        from .lstm_terms import lstm_jacobian_terms

        terms = lstm_jacobian_terms(problem.cell, params, data, steps, problem.H)
    return PointsResult(problem, T, n, dtype, str(dev), [label for label, _ in points],
                        [items for _, items in points], resolved, steps, loss.detach().cpu().numpy(), norms, factors,
                        terms)


def log_spaced(steps: int, rows: int) -> np.ndarray:
    """About ``rows`` distinct integers from 1 to steps, log-spaced, always with 1 and steps."""
    return np.unique(np.round(np.geomspace(1, steps, max(2, rows))).astype(int))
