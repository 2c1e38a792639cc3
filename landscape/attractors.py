"""The fixed points and attractors of a model at constant inputs: what `landscape fixedpoints`
computes and ``landscape.analyses.trained_relay`` uses.

The model is a trained one (``ModelSpec.base_model``: ``FILE.pt`` or ``RUN.h5:GROUP[:REPEAT]``, its
cell, options and size adopted) or a cell's base point. For each constant input value x the map
s -> F(s) = step(s, x) is searched for fixed and slow points (``landscape.fixedpoints
.find_fixed_points``), all inputs in one batch (one population member per input), from states the
model visits on the task's real sequences plus random starts; ``simulate_attractors`` runs the
map from those states, which finds periodic orbits the search cannot see.

Stability of a fixed point, from the spectral radius rho of dF/ds (its largest eigenvalue modulus):
stable (rho < 1 - MARGINAL_TOL), marginal (|rho - 1| <= MARGINAL_TOL: a gate saturated exactly, as
Keras' hard sigmoid does, leaves the state unchanged, so the point lies on a continuum of fixed
points with eigenvalue 1, neither attracting nor repelling), unstable (rho > 1 + MARGINAL_TOL).
The library's own ``FixedPoints.stable`` (rho < 1) is kept in the files as ``stable``.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .errors import LandscapeError

MARGINAL_TOL = 1e-6
STABILITY = ("stable", "marginal", "unstable")
FILE_SUFFIXES = (".csv", ".h5", ".hdf5")  # what write_fixed_points writes
FIGURE_SUFFIXES = (".png", ".pdf", ".svg")
DEFAULT_STARTS = 512


SETTLE_TOL = 1e-8  # |F(s) - s| (or |F(F(s)) - s|) below which a simulated state has settled
MERGE_TOL = 1e-4  # settled states closer than this (max-norm) are one attractor


@dataclass(frozen=True, eq=False)
class Attractors:
    """Where the map s -> F(s) at each constant input settles from M starts, after ``steps`` steps
    (an independent check of the search: every attractor a start reaches is a stable or marginal
    fixed point, or a periodic orbit the search cannot see).

    ends     (I, M, S) the states after ``steps`` steps
    kind     (I, M) 'fixed' (|F(s) - s| < SETTLE_TOL), 'period-2' (|F(F(s)) - s| < SETTLE_TOL
             and not fixed) or 'unsettled' (drifting, slower, or a longer period)
    fixed    list over inputs of (k, S): the distinct fixed points reached
    cycles   list over inputs of (k, 2, S): the distinct 2-cycles reached (s, F(s))
    """

    steps: int
    ends: np.ndarray
    kind: np.ndarray
    fixed: list
    cycles: list

    def counts(self, i: int) -> dict:
        k = self.kind[i]
        return {"starts": int(k.size), "to_fixed": int((k == "fixed").sum()), "to_cycle": int((k == "period-2").sum()),
                "unsettled": int((k == "unsettled").sum()), "fixed_attractors": len(self.fixed[i]),
                "cycles": len(self.cycles[i])}


def _distinct(points: np.ndarray, tol: float) -> np.ndarray:
    """Indices of one representative per cluster of points (M, S) closer than tol (max-norm)."""
    if len(points) == 0:
        return np.zeros(0, dtype=int)
    d = np.abs(points[:, None, :] - points[None, :, :]).max(-1)  # (M, M)
    first = (d < tol).argmax(1)  # the first point near each point
    return np.unique(first)


def simulate_attractors(cell, params: dict, inputs, starts, steps: int = 1000) -> Attractors:
    """Run the map at every input from the same starts for ``steps`` steps and classify the ends.

    params  name -> (*shape) one model; inputs (I, D) tensor or None; starts (M, S) states"""
    from .fixedpoints import StateMap
    from .lazy import torch

    I = 1 if inputs is None else inputs.shape[0]
    pop = {k: v.unsqueeze(0).expand(I, *v.shape) for k, v in params.items()}
    F = StateMap(cell, pop, inputs)
    s = torch.as_tensor(starts, dtype=torch.float64).unsqueeze(0).expand(I, *starts.shape).clone()  # (I, M, S)
    with torch.no_grad():
        for _ in range(int(steps)):
            s = F(s)
        f1 = F(s)
        f2 = F(f1)
    r1 = (f1 - s).abs().amax(-1).numpy()
    r2 = (f2 - s).abs().amax(-1).numpy()
    ends, f1n = s.numpy(), f1.numpy()
    finite = np.isfinite(ends).all(-1)
    kind = np.where(finite & (r1 < SETTLE_TOL), "fixed",
                    np.where(finite & (r2 < SETTLE_TOL), "period-2", "unsettled")).astype(object)
    fixed, cycles = [], []
    for i in range(I):
        fx = ends[i][kind[i] == "fixed"]
        fixed.append(fx[_distinct(fx, MERGE_TOL)])
        pair = np.stack([ends[i], f1n[i]], 1)[kind[i] == "period-2"]  # (k, 2, S)
        swap = pair[:, 0, 0] > pair[:, 1, 0]  # one phase first: the smaller first state number
        pair[swap] = pair[swap][:, ::-1]
        cycles.append(pair[_distinct(pair.reshape(pair.shape[0], 2 * pair.shape[-1]), MERGE_TOL)])
    return Attractors(int(steps), ends, kind, fixed, cycles)


@dataclass(frozen=True, eq=False)
class FixedPointRun:
    """The fixed points of one model at I constant inputs.

    problem       the resolved model (``landscape.problem.Problem``): cell, task, H, D, base point
    source        the model's reference (--base-model) or a description of the base point
    inputs        (I,) the input values (every input component takes the value), or (1,) NaN for
                  a cell without input
    result        ``FixedPoints`` with P = I members: member i is the model at input i
    trajectories  (T, N, S) states of N real sequences of the task (the search's starts, the figure's
                  paths); labels (N,) their classes (None for a task without classes)
    attractors    where the map settles from the visited states (``simulate_attractors``), or None
    """

    problem: object
    source: str
    inputs: np.ndarray
    result: object
    trajectories: np.ndarray
    labels: np.ndarray | None
    T: int
    seed: int
    attractors: Attractors | None = None

    @property
    def has_input(self) -> bool:
        return self.problem.D > 0


def resolve_fixed_point_model(model, base_model: str | None = None):
    """(Problem, BaseModel or None): the model a ModelSpec names, with a trained model's parameters,
    cell, options and size when ``base_model`` is given (``problem.resolve_model``, as for a grid)."""
    from dataclasses import replace

    from .problem import resolve_model

    problem = resolve_model(replace(model, base_model=base_model) if base_model else model, fit="fixed")
    return problem, problem.base_model


def search_options(starts: int = DEFAULT_STARTS, seed: int = 0, bound: float | None = None):
    """FixedPointOptions with ``starts`` starts per input: half from the visited states (rounded
    up), half random (box and its image)."""
    from .fixedpoints import FixedPointOptions

    if isinstance(starts, bool) or int(starts) != starts or starts < 2:
        raise LandscapeError(f"--starts must be an integer >= 2 (half from visited states, half random), "
                             f"got {starts}")
    if bound is not None and not (math.isfinite(bound) and bound > 0):
        raise LandscapeError(f"--bound must be a positive number, got {bound}")
    return FixedPointOptions(n_visited=int(starts) - int(starts) // 2, n_random=int(starts) // 2, bound=bound,
                             seed=int(seed))


def compute_fixed_points(problem, inputs: np.ndarray | None, T: int, n: int, seed: int = 0, options=None,
                         source: str = "", steps: int = 1000) -> FixedPointRun:
    """The fixed points of ``problem``'s model at every input value, in one batched search.

    inputs  (I,) values, or None for a cell without input
    T, n, seed  the task's sequences (length, number, data seed) whose visited states are the
            starts (and the figure's paths); options: ``FixedPointOptions`` (default
            ``search_options()``); steps: also run the map this long from the visited states the
            search starts from (``options.n_visited`` of them, ``simulate_attractors``; 0: not)"""
    from .fixedpoints import find_fixed_points, visited_states
    from .lazy import torch

    if int(n) < 1:
        raise LandscapeError(f"--n must be >= 1 sequence, got {n}")
    from . import settings
    from .plan import check_fixed_points_memory

    check_fixed_points_memory(problem, 1 if inputs is None else len(inputs), options or search_options(seed=seed), T, n,
                              settings.memory())
    cell, D = problem.cell, problem.D
    names = cell.param_shapes(problem.H, D)
    params = {k: problem.base[k].to(torch.float64) for k in names}  # (*shape)
    data = problem.task.make((int(T),), int(n), int(seed))
    tr = visited_states(cell, {k: v.unsqueeze(0) for k, v in params.items()},
                        None if data.inputs is None else data.inputs.to(torch.float64),
                        steps=None if data.inputs is not None else data.steps, h0=data.h0)  # (1, T, N, S)
    I = 1 if inputs is None else len(inputs)
    pop = {k: v.unsqueeze(0).expand(I, *v.shape) for k, v in params.items()}  # (I, *shape)
    x = None if inputs is None else torch.as_tensor(np.repeat(np.asarray(inputs, float)[:, None], D, 1))  # (I, D)
    options = options or search_options(seed=seed)
    result = find_fixed_points(cell, pop, x=x, trajectories=tr, options=options)
    attractors = None
    if int(steps) < 0:
        raise LandscapeError(f"--steps must be >= 0 (0: no simulation), got {steps}")
    if int(steps) > 0:
        flat = tr[0].reshape(-1, tr.shape[-1])  # (T N, S)
        g = torch.Generator().manual_seed(int(seed) + 1)
        pick = torch.randint(flat.shape[0], (max(1, options.n_visited),), generator=g)
        attractors = simulate_attractors(cell, params, x, flat[pick], int(steps))
    labels = data.targets[int(T)].numpy() if problem.readout.kind != "identity" else None
    return FixedPointRun(problem, source, np.full(1, np.nan) if inputs is None else np.asarray(inputs, float),
                         result, tr[0].numpy(), labels, int(T), int(seed), attractors)


def stability(result) -> np.ndarray:
    """(P, K) 'stable' | 'marginal' | 'unstable' for fixed points, '' for slow points and padding."""
    rho = spectral_radius(result)
    out = np.full(result.kind.shape, "", dtype=object)
    fixed = result.kind == 1
    with np.errstate(invalid="ignore"):
        out[fixed & (rho < 1 - MARGINAL_TOL)] = "stable"
        out[fixed & (np.abs(rho - 1) <= MARGINAL_TOL)] = "marginal"
        out[fixed & (rho > 1 + MARGINAL_TOL)] = "unstable"
    return out


def spectral_radius(result) -> np.ndarray:
    """(P, K) the largest eigenvalue modulus of each point (NaN in padding)."""
    ev = np.abs(result.eigenvalues)
    if ev.shape[-1] == 0:
        return np.zeros(result.kind.shape)
    return ev[..., 0]  # sorted by decreasing modulus


def state_labels(result) -> list[str]:
    """'h[0]', ..., 'h[H-1]', then 'c[0]', ... : the state numbers in order."""
    return [f"{name}[{i}]" for name in result.state_names for i in range(result.H)]


KIND_LABELS = ("", "fixed", "slow", "at bound")  # fixedpoints.KINDS as the command's table prints them


def counts(run: FixedPointRun) -> list[dict]:
    """Per input: fixed points by stability, slow points, points at the search bound (and the
    bound), starts dropped."""
    res, stab = run.result, stability(run.result)
    out = []
    for i, x in enumerate(run.inputs):
        k = int(res.count[i])
        row = {"input": float(x), "fixed": int((res.kind[i, :k] == 1).sum())}
        row.update({s: int((stab[i, :k] == s).sum()) for s in STABILITY})
        row["slow"] = int((res.kind[i, :k] == 2).sum())
        row["at_bound"] = int((res.kind[i, :k] == 3).sum())
        row["bound"] = float(res.bound[i])
        row["dropped"] = int(res.dropped[i])
        rho = spectral_radius(res)[i, :k][res.kind[i, :k] == 1]
        row["radius_min"] = float(rho.min()) if rho.size else math.nan
        row["radius_max"] = float(rho.max()) if rho.size else math.nan
        if run.attractors is not None:
            row.update(run.attractors.counts(i))
        out.append(row)
    return out


def fixed_point_rows(run: FixedPointRun) -> list[dict]:
    """One row per point: input, point (index at that input), kind, stability, stable, residual,
    spectral_radius, the state numbers, and the eigenvalues (abs_eig_j, re_eig_j, im_eig_j, by
    decreasing modulus)."""
    from .fixedpoints import KINDS

    res, stab, rho = run.result, stability(run.result), spectral_radius(run.result)
    names = state_labels(res)
    rows = []
    for i, x in enumerate(run.inputs):
        for k in range(int(res.count[i])):
            ev = res.eigenvalues[i, k]
            row = {"input": float(x), "point": k, "kind": KINDS[int(res.kind[i, k])], "stability": stab[i, k],
                   "stable": bool(res.stable[i, k]), "residual": float(res.residual[i, k]),
                   "spectral_radius": float(rho[i, k])}
            row.update({n: float(v) for n, v in zip(names, res.points[i, k])})
            row.update({f"abs_eig_{j}": float(abs(v)) for j, v in enumerate(ev)})
            row.update({f"re_eig_{j}": float(v.real) for j, v in enumerate(ev)})
            row.update({f"im_eig_{j}": float(v.imag) for j, v in enumerate(ev)})
            rows.append(row)
    return rows


def check_output(path: str | None, suffixes: tuple[str, ...], option: str) -> Path | None:
    if path is None:
        return None
    p = Path(path)
    if p.suffix.lower() not in suffixes:
        raise LandscapeError(f"{option} {path}: give a file ending in {', '.join(suffixes)}")
    if p.is_dir():
        raise LandscapeError(f"{option} {path} is a folder; give a file")
    if not p.parent.exists():
        raise LandscapeError(f"{option} {path}: the folder {p.parent} does not exist")
    return p


def write_fixed_points(run: FixedPointRun, path) -> Path:
    """Write the points as CSV (``fixed_point_rows``, full precision) or HDF5.

    HDF5 layout (``landscape.store.fixedpoints``, read back verified by ``read_fixed_point_file``):
    datasets x (I,) the inputs; points (I, K, S); residual (I, K); eigenvalues_real,
    eigenvalues_imag, eigenvalues_abs (I, K, S) by decreasing modulus; spectral_radius (I, K);
    stable (I, K) bool (rho < 1); stability (I, K) ASCII text; kind (I, K) int8 (0 padding,
    1 fixed, 2 slow, 3 at the search bound); count, dropped (I,); bound (I,) the search bound;
    trajectories (T, N, S) and labels (N,) the sequences' states; digest (I,) one per input. Root attributes: format 'landscape-fixedpoints',
    format_version, spec, key, shared_digest, cell, cell_options (JSON), hidden, state_names
    (JSON), task, model (the source), options (JSON), T, seed, landscape_version."""
    import csv

    path = check_output(str(path), FILE_SUFFIXES, "--out")
    try:
        if path.suffix.lower() == ".csv":
            rows = fixed_point_rows(run)
            columns = list(dict.fromkeys(k for r in rows for k in r)) or ["input", "point", "kind"]
            with open(path, "w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=columns, restval="")
                w.writeheader()
                for r in rows:
                    w.writerow({k: repr(v) if isinstance(v, float) else v for k, v in r.items()})
        else:
            _write_h5(run, path)
    except OSError as err:
        raise LandscapeError(f"cannot write {path}: {err}") from None
    return path


def _write_h5(run: FixedPointRun, path: Path) -> None:
    """The HDF5 file of the points (``landscape.store.fixedpoints``: locked, created whole,
    checksummed, a digest per input value)."""
    from .store.fixedpoints import write_fixed_point_file
    from .version import __version__

    res = run.result
    attrs = {"cell": res.cell, "cell_options": json.dumps(run.problem.cell.options(), sort_keys=True, default=str),
             "hidden": int(res.H), "state_names": json.dumps(list(res.state_names)), "task": run.problem.task.name,
             "model": run.source, "T": int(run.T), "seed": int(run.seed),
             "options": json.dumps(asdict(res.options), sort_keys=True), "landscape_version": __version__}
    data = {"x": run.inputs, "points": res.points, "residual": res.residual,
            "eigenvalues_real": res.eigenvalues.real, "eigenvalues_imag": res.eigenvalues.imag,
            "eigenvalues_abs": np.abs(res.eigenvalues), "spectral_radius": spectral_radius(res),
            "stable": res.stable, "stability": _text(stability(res)), "kind": res.kind, "count": res.count,
            "dropped": res.dropped, "bound": res.bound, "trajectories": run.trajectories}
    if run.labels is not None:
        data["labels"] = run.labels
    groups = {}
    a = run.attractors
    if a is not None:
        groups["attractors"] = {"steps": int(a.steps), "settle_tol": SETTLE_TOL, "merge_tol": MERGE_TOL}
        S = a.ends.shape[-1]
        data.update({"attractors/ends": a.ends, "attractors/kind": _text(a.kind),
                     "attractors/fixed": _padded(a.fixed, (S,)), "attractors/cycles": _padded(a.cycles, (2, S))})
    write_fixed_point_file(path, attrs, data, groups)


def _text(labels: np.ndarray) -> np.ndarray:
    """Text labels (object array of str) as fixed-length ASCII, as the file stores them."""
    return np.asarray(labels.astype(str), dtype=np.bytes_)


def _padded(items: list, shape: tuple) -> np.ndarray:
    """A list of (k_i, *shape) arrays as one (len, max k, *shape) array, NaN-padded."""
    K = max((len(v) for v in items), default=0)
    out = np.full((len(items), K, *shape), np.nan)
    for i, v in enumerate(items):
        out[i, :len(v)] = v
    return out


def describe_model(problem, source: str) -> str:
    cell = problem.cell.describe()
    return f"{cell}, H = {problem.H}, task {problem.task.name}" + (f", from {source}" if source else "")


# ---------------------------------------------------------------------------------------------
# the command


def signed(x: float) -> str:
    return f"{x:+g}" if x != 0 else "0"
