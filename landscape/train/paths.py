"""What a training run did on the landscape: every member's recorded path, the cliffs it hit, the
bifurcations it crossed and its fate.

A run trained with ``record_steps`` (``landscape train --record-steps [K]``) keeps, for every member,
its parameters at the recorded steps s_0 = 0 < s_1 < ... < s_{R-1} = S (every K-th step and the
last) and the batch loss and gradient norm of the update that leaves each of them (R - 1 values).
``load_paths`` reads them back as ``MemberPath`` objects (every parameter, the frozen ones too).

Cliff hits (``cliff_hits``): the segment r-1 -> r of a path is a hit when BOTH

    |loss_r - loss_{r-1}|  > loss_factor x the median of |loss_i - loss_{i-1}| over the ``window``
                              segments before it, and
    grad_norm_{r-1}        > grad_factor x the median of the gradient norms over the same window

(the gradient norm of the update that leaves step s_{r-1}: the one that makes the jump). A segment
needs ``min_history`` earlier segments to be judged. Defaults (``CliffThresholds``): loss_factor 10,
grad_factor 5, window 50, min_history 3; ``landscape train --cliff-loss X --cliff-grad Y`` overrides
them. The losses are batch losses (one mini-batch each), so the median of their changes is the
batch-to-batch noise a jump must exceed. Each hit names the scalar parameter that moved most over
the segment.

Bifurcations (``path_dynamics``): the fixed points and 2-cycles of each member's map at a constant
input (``dynamics_map.dynamics_map``, all recorded steps of all members as one population), with
their stability; a bifurcation lies in segment r-1 -> r when the counts of fixed points, 2-cycles
or of their stable ones differ at its ends. ``cliff_bifurcations`` sets each hit beside the
bifurcations within ``reach`` segments of it.

Fates (``fate``): learned (the success metric of the run's protocol is above ``success`` after the
last epoch), learned then lost (above it after an earlier epoch >= 1, not after the last) or never
learned. ``feature_table`` tabulates initial-point features against fate with Wilson 95 % intervals
of the learned fraction.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import LandscapeError
from .summary import SUCCESS_METRIC

FATES = ("learned", "learned then lost", "never learned")
# the input weight of the candidate state of one-unit cells: the sign the first input gives h_1
CANDIDATE_INPUT = {"srnn": "u", "pascanu": "u", "linear": "u", "lstm": "u_z", "gru": "u_h"}
RECURRENT = {"srnn": "w", "pascanu": "w", "linear": "w", "lstm": "w_z", "gru": "w_h"}
# cells whose state is w h_{t-1} through an odd function, so that h_T = ~ w^(T-1) h_1 near 0 and a
# negative w flips the sign each step; the lstm's cell state (f > 0) and the gru's z h keep it
SIGN_FLIPS = ("srnn", "linear")


@dataclass(frozen=True)
class CliffThresholds:
    """When a path segment is a cliff hit (see the module docstring)."""

    loss_factor: float = 10.0
    grad_factor: float = 5.0
    window: int = 50
    min_history: int = 3

    @classmethod
    def of(cls, loss_factor: float | None = None, grad_factor: float | None = None) -> CliffThresholds:
        """The defaults with the factors that are given (not None) replaced."""
        t = cls(**{k: v for k, v in (("loss_factor", loss_factor), ("grad_factor", grad_factor)) if v is not None})
        for name in ("loss_factor", "grad_factor"):
            if not getattr(t, name) > 0:
                raise LandscapeError(f"the cliff threshold {name} must be > 0, got {getattr(t, name)}")
        return t


@dataclass
class MemberPath:
    """One member's recorded path.

    steps      (R,) int the recorded optimiser steps
    params     name -> (R, *shape) float64, every parameter (frozen ones repeated)
    loss, grad_norm  (R - 1,) the batch loss and gradient norm of the update leaving steps[r]
    epochs     (E + 1,) the success metric after each epoch (epoch 0: the initial point)
    """

    group: str
    index: int
    labels: dict
    T: int
    steps: np.ndarray
    params: dict
    loss: np.ndarray
    grad_norm: np.ndarray
    epochs: np.ndarray
    success: float
    spec: dict = field(repr=False, default_factory=dict)

    @property
    def repeat(self):
        return self.labels.get("repeat", self.index)

    @property
    def fate(self) -> str:
        return fate(self.epochs, self.success)

    def scalars(self, r: int) -> dict[str, float]:
        """Every scalar parameter at recorded step r: 'w', 'dense_w[1,0]', ..."""
        out = {}
        for k, v in self.params.items():
            a = np.asarray(v[r])
            for idx in np.ndindex(a.shape):
                out[k if a.size == 1 else f"{k}[{','.join(map(str, idx))}]"] = float(a[idx])
        return out


def fate(metric: np.ndarray, success: float) -> str:
    """learned / learned then lost / never learned from the success metric per epoch (E + 1,)."""
    m = np.asarray(metric, dtype=float)
    if m.size and m[-1] > success:
        return "learned"
    if m.size > 2 and bool(np.any(m[1:-1] > success)):
        return "learned then lost"
    return "never learned"


def load_paths(run_file, group: str | None = None, success: float = 0.9) -> list[MemberPath]:
    """The recorded paths of every member of ``group`` (None: every group) of a verified run file."""
    from ..store.runs import read_run_file

    groups = [g for g in read_run_file(run_file) if group is None or g.group == group]
    if not groups:
        raise LandscapeError(f"no group {group!r} in {run_file}")
    out = []
    for g in groups:
        if g.steps is None:
            raise LandscapeError(f"group {g.group!r} of {run_file} recorded no steps: train it with --record-steps")
        out += _paths(json.loads(g.spec), json.loads(g.members), g.steps, g.arrays, success)
    return out


def result_paths(result, success: float = 0.9) -> list[MemberPath]:
    """The recorded paths of a ``TrainResult`` (trained with record_steps), without a file."""
    if result.steps is None:
        raise LandscapeError("the run recorded no steps: train it with record_steps")
    arrays = {"step_params": result.step_params, "step_metrics": result.step_metrics, "params": result.params,
              "metrics": result.metrics}
    spec = json.loads(json.dumps(result.spec.canonical(), default=str))
    return _paths(spec, [m.canonical() for m in result.members], result.steps, arrays, success)


def _paths(spec: dict, members: list[dict], steps, arrays: dict, success: float) -> list[MemberPath]:
    sp, sm, ep, em = (arrays[k] for k in ("step_params", "step_metrics", "params", "metrics"))
    R = len(steps)
    out = []
    for i, m in enumerate(members):
        params = {k: np.asarray(sp[k][:, i], dtype=np.float64) if k in sp
                  else np.repeat(np.asarray(v[:1, i], dtype=np.float64), R, axis=0) for k, v in ep.items()}
        out.append(MemberPath(m.get("group", ""), i, dict(m.get("labels", [])), int(m["T"]), np.asarray(steps),
                              params, np.asarray(sm["loss"][:, i], dtype=float),
                              np.asarray(sm["grad_norm"][:, i], dtype=float),
                              np.asarray(em[SUCCESS_METRIC[m["protocol"]]][:, i], dtype=float), success, spec))
    return out


# ---------------------------------------------------------------------------------------------
# cliff hits


def _running_median(values: np.ndarray, r: int, window: int) -> float:
    return float(np.median(values[max(0, r - window):r]))


def cliff_hits(path: MemberPath, thresholds: CliffThresholds = CliffThresholds()) -> list[dict]:
    """The cliff hits along one path (module docstring), as rows: group, repeat, segment r, step
    (the recorded step s_r the jump lands on), loss_before, loss_after, loss_ratio (the change over
    its running median), grad_norm, grad_ratio, param (the scalar that moved most), param_change."""
    t = thresholds
    loss, g = path.loss, path.grad_norm
    dl = np.abs(np.diff(loss))  # dl[r - 1] = |loss_r - loss_{r-1}|, r = 1..R-2
    rows = []
    for r in range(1 + t.min_history, len(loss)):
        med_dl = _running_median(dl, r - 1, t.window)
        med_g = _running_median(g, r - 1, t.window)
        lr_, gr_ = dl[r - 1] / max(med_dl, 1e-300), g[r - 1] / max(med_g, 1e-300)
        if lr_ > t.loss_factor and gr_ > t.grad_factor and math.isfinite(loss[r]):
            before, after = path.scalars(r - 1), path.scalars(r)
            name = max(before, key=lambda k: abs(after[k] - before[k]))
            rows.append({"group": path.group, "repeat": path.repeat, "segment": r, "step": int(path.steps[r]),
                         "loss_before": float(loss[r - 1]), "loss_after": float(loss[r]), "loss_ratio": float(lr_),
                         "grad_norm": float(g[r - 1]), "grad_ratio": float(gr_), "param": name,
                         "param_change": after[name] - before[name]})
    return rows


# ---------------------------------------------------------------------------------------------
# bifurcations along the paths


def problem_of(spec: dict):
    """The resolved model (``problem.Problem``) of a run's stored spec."""
    from ..problem import resolve_model
    from .population import TrainSpec

    flat = {k: (tuple(tuple(x) for x in v) if k in ("cell_options", "task_options") else
                tuple(v) if isinstance(v, list) else v) for k, v in spec.items()}
    ts = TrainSpec.of(**flat)
    return resolve_model(ts.model, readout=ts.readout)


@dataclass
class PathDynamics:
    """Fixed points and 2-cycles along M paths at R recorded steps (each (M, R)): n_fixed,
    n_stable_fixed, n_cycles2, n_stable_cycles2; fixed (M, R, F) the fixed points' first state
    number (NaN padding), stable (M, R, F) bool; at (R,) the recorded-step indices analysed."""

    at: np.ndarray
    n_fixed: np.ndarray
    n_stable_fixed: np.ndarray
    n_cycles2: np.ndarray
    n_stable_cycles2: np.ndarray
    fixed: np.ndarray
    stable: np.ndarray

    def signature(self) -> np.ndarray:
        """(M, R, 4) the counts whose change is a bifurcation."""
        return np.stack([self.n_fixed, self.n_stable_fixed, self.n_cycles2, self.n_stable_cycles2], -1)

    def bifurcations(self) -> np.ndarray:
        """(M, R - 1) bool: the counts differ across segment r -> r + 1."""
        s = self.signature()
        return np.any(s[:, 1:] != s[:, :-1], axis=-1)

    def describe(self, m: int, r: int) -> str:
        """'1 fixed point (1 stable)' or with 2-cycles, at path m, step r."""
        text = f"{self.n_fixed[m, r]} fixed point{'s' * int(self.n_fixed[m, r] != 1)} ({self.n_stable_fixed[m, r]} stable)"
        if self.n_cycles2[m, r]:
            text += f", {self.n_cycles2[m, r]} 2-cycle{'s' * int(self.n_cycles2[m, r] != 1)} ({self.n_stable_cycles2[m, r]} stable)"
        return text


def path_dynamics(paths: list[MemberPath], problem=None, input=None, options=None, every: int = 1) -> PathDynamics:
    """The fixed points and 2-cycles of each path's map at every ``every``-th recorded step (and the
    last), one ``dynamics_map`` call over all of them (steps x members as one population).
    ``input``: the constant input (None: the task's input mean); ``options``: DynamicsOptions
    (default: periods up to 2)."""
    from ..dynamics_map import STABILITY, DynamicsOptions, dynamics_map
    from ..lazy import torch

    if not paths:
        raise LandscapeError("no paths to analyse")
    problem = problem or problem_of(paths[0].spec)
    R = len(paths[0].steps)
    if any(len(p.steps) != R for p in paths):
        raise LandscapeError("the paths have different numbers of recorded steps; analyse one group at a time")
    at = np.unique(np.append(np.arange(0, R, every), R - 1))
    names = problem.cell.param_shapes(problem.H, problem.D)
    params = {k: torch.as_tensor(np.concatenate([p.params[k][at] for p in paths]), dtype=torch.float64)
              for k in names}  # (M * R', *shape)
    dm = dynamics_map(problem, params, input, options or DynamicsOptions(max_period=2))
    M, Rp = len(paths), len(at)
    shape = (M, Rp)
    fixed_mask = dm.period == 1  # (P, O)
    F = max(1, int(fixed_mask.sum(-1).max()))
    fixed = np.full((M * Rp, F), np.nan)
    stable = np.zeros((M * Rp, F), dtype=bool)
    for i in range(M * Rp):
        sel = np.flatnonzero(fixed_mask[i])
        fixed[i, :len(sel)] = dm.points[i, sel, 0, 0]
        stable[i, :len(sel)] = dm.stability[i, sel] == STABILITY.index("stable")
    cyc = dm.n_cycles[:, 1] if dm.n_cycles.shape[1] > 1 else np.zeros(M * Rp, int)
    scyc = dm.n_stable_cycles[:, 1] if dm.n_stable_cycles.shape[1] > 1 else np.zeros(M * Rp, int)
    return PathDynamics(at, dm.n_fixed.reshape(shape), dm.n_stable_fixed.reshape(shape), cyc.reshape(shape),
                        scyc.reshape(shape), fixed.reshape(M, Rp, F), stable.reshape(M, Rp, F))


def cliff_bifurcations(hits: list[dict], m: int, dyn: PathDynamics, reach: int = 1) -> list[dict]:
    """Each hit of path m with ``bifurcation``: the change of the map's fixed points and 2-cycles
    across the analysed segments within ``reach`` of the hit ('' when there is none)."""
    at = dyn.at
    changes = dyn.bifurcations()[m]  # (R' - 1,) between at[j] and at[j + 1]
    out = []
    for h in hits:
        r = h["segment"]
        j = int(np.searchsorted(at, r))  # first analysed index >= r
        lo, hi = max(0, j - 1 - reach), min(len(changes), j + reach)
        found = [i for i in range(lo, hi) if changes[i]]
        text = "; ".join(f"step {int(at[i])}->{int(at[i + 1])} (recorded): {dyn.describe(m, i)} -> {dyn.describe(m, i + 1)}"
                         for i in found)
        out.append(dict(h, bifurcation=text))
    return out


def bifurcation_rows(paths: list[MemberPath], dyn: PathDynamics) -> list[dict]:
    """Every bifurcation along the paths ``dyn`` analysed (``path_dynamics(paths, ...)``): one row per
    analysed segment across which path m's fixed points or 2-cycles change, in member then step
    order: group, repeat, fate, the recorded indices and optimiser steps at the segment's ends, and
    the map before and after (``PathDynamics.describe``)."""
    rows = []
    for m, i in zip(*np.nonzero(dyn.bifurcations())):  # member m, between dyn.at[i] and dyn.at[i + 1]
        p, a, b = paths[m], int(dyn.at[i]), int(dyn.at[i + 1])
        rows.append({"group": p.group, "repeat": p.repeat, "fate": p.fate, "recorded_from": a, "recorded_to": b,
                     "step_from": int(p.steps[a]), "step_to": int(p.steps[b]), "before": dyn.describe(m, i),
                     "after": dyn.describe(m, i + 1)})
    return rows


# ---------------------------------------------------------------------------------------------
# fates and their causes


def wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score interval of a proportion k / n (95 % by default); (nan, nan) for n = 0."""
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def readout_direction(params: dict, r: int = 0) -> float | None:
    """The one-unit readout's logit direction at step r: dense_w[1] - dense_w[0] (Dense(2)) or
    out_w; None without a readout or with more than one unit."""
    if "dense_w" in params and params["dense_w"].shape[-1] == 1:
        w = params["dense_w"][r]
        return float(w[1, 0] - w[0, 0])
    if "out_w" in params and params["out_w"][r].size == 1:
        return float(np.asarray(params["out_w"][r]).reshape(()))
    return None


def initial_features(path: MemberPath, n_fixed: int | None = None) -> dict[str, object]:
    """A one-unit member's initial point as features: every scalar parameter, the readout direction
    r, the alignment: aligned when r points the way the first input pushes h_T, sign(r u w^(T-1))
    for srnn (its linearisation at h = 0: a negative w flips h each step), sign(r u_cand) for the
    lstm (u_z; its cell state keeps its sign) and gru (u_h); and the initial fixed-point count
    when given."""
    feats = dict(path.scalars(0))
    cell = path.spec.get("cell", "")
    r = readout_direction(path.params)
    if r is not None:
        feats["readout"] = r
        u = feats.get(CANDIDATE_INPUT.get(cell, ""))
        if u is not None:
            push = u * (np.sign(feats[RECURRENT[cell]]) ** (path.T - 1) if cell in SIGN_FLIPS else 1.0)
            feats["alignment"] = "aligned" if r * push > 0 else "misaligned"
    if n_fixed is not None:
        feats["fixed points"] = int(n_fixed)
    return feats


def _levels(name: str, values: list, medians: dict) -> list[str]:
    if isinstance(values[0], str) or name == "fixed points":
        return [f"{name} = {v}" for v in values]
    med = medians[name]
    return [f"{name} {'> 0' if v > 0 else '<= 0'}, |{name}| {'above' if abs(v) > med else 'at most'} median {med:.2g}"
            for v in values]


def feature_table(paths: list[MemberPath], features: list[dict], names: list[str] | None = None) -> list[dict]:
    """Initial-point features against fate, as rows: feature, level (a value, or the sign and
    whether |value| exceeds the population median), n, learned, learned then lost, never learned,
    rate (learned / n) and its Wilson 95 % interval (ci_low, ci_high)."""
    names = names or [k for k in features[0]]
    rows = []
    for name in names:
        values = [f[name] for f in features]
        medians = {name: float(np.median(np.abs(values)))} if not isinstance(values[0], str) else {}
        levels = _levels(name, values, medians)
        for level in sorted(set(levels)):
            idx = [i for i, lv in enumerate(levels) if lv == level]
            fates = [paths[i].fate for i in idx]
            k = fates.count("learned")
            lo, hi = wilson(k, len(idx))
            rows.append({"feature": name, "level": level, "n": len(idx),
                         **{f: fates.count(f) for f in FATES}, "rate": k / len(idx), "ci_low": lo, "ci_high": hi})
    return rows


def fate_rows(paths: list[MemberPath], thresholds: CliffThresholds = CliffThresholds()) -> list[dict]:
    """One row per member: group, repeat, fate, final success metric, cliff hits (count) and the
    step of the first."""
    rows = []
    for p in paths:
        hits = cliff_hits(p, thresholds)
        rows.append({"group": p.group, "repeat": p.repeat, "fate": p.fate, "final_metric": float(p.epochs[-1]),
                     "cliff_hits": len(hits), "first_hit_step": hits[0]["step"] if hits else ""})
    return rows


def population_rows(paths: list[MemberPath], thresholds: CliffThresholds = CliffThresholds()) -> list[dict]:
    """Per group: members, fates (counts), the learned fraction with its Wilson 95 % interval,
    members with a cliff hit and hits in all."""
    out = []
    for group in dict.fromkeys(p.group for p in paths):
        ps = [p for p in paths if p.group == group]
        fates = [p.fate for p in ps]
        hits = [len(cliff_hits(p, thresholds)) for p in ps]
        k = fates.count("learned")
        lo, hi = wilson(k, len(ps))
        out.append({"group": group, "members": len(ps), **{f: fates.count(f) for f in FATES},
                    "rate": k / len(ps), "ci_low": lo, "ci_high": hi,
                    "members_hit": sum(h > 0 for h in hits), "hits": sum(hits)})
    return out


def path_summary(paths: list[MemberPath], thresholds: CliffThresholds = CliffThresholds()) -> list[str]:
    """The lines `landscape train --record-steps` prints for one group: its population row, then
    each member's fate and cliff hits."""
    (pop,) = population_rows(paths, thresholds)
    lines = [f"{pop['members']} members: learned {pop['learned']}, learned then lost {pop['learned then lost']}, "
             f"never learned {pop['never learned']} (rate {pop['rate']:.2f}, 95% CI {pop['ci_low']:.2f}-"
             f"{pop['ci_high']:.2f}); {pop['hits']} cliff hits in {pop['members_hit']} members"]
    for p in paths:
        hits = cliff_hits(p, thresholds)
        text = ", ".join(f"step {h['step']} (loss {h['loss_before']:.3g}->{h['loss_after']:.3g}, |g| "
                         f"{h['grad_norm']:.3g}, {h['param']} {h['param_change']:+.3g})" for h in hits[:5])
        more = f" and {len(hits) - 5} more" if len(hits) > 5 else ""
        lines.append(f"  repeat {p.repeat}: {p.fate}; {len(hits)} cliff hits{': ' + text if hits else ''}{more}")
    return lines
