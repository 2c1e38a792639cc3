"""A trained model as a grid's base point, and the plane of parameters a grid sweeps around it.

A model reference is one of

    FILE.pt | FILE.pth           a torch.nn.RNN / LSTM / GRU (or RNNCell ...) state_dict, with an
                                 optional nn.Linear head (``landscape.torch_models``)
    FILE.h5:GROUP[:REPEAT]       a member of a `landscape train --out FILE.h5` run: its parameters
                                 after the last epoch (REPEAT: the member's ``repeat`` label, default
                                 the first member), with its training trajectory (for pca)

``load_model(ref)`` returns a ``BaseModel``: the cell and options, H, the readout kind, the
parameters and a description of the source (path, sha256 of the file, group, repeat) that goes
into the cache key. ``make_plane`` builds the plane of ``GridSpec.directions`` around it
(``landscape.directions``): random, hessian, pca, models (through two more models) or line.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
import numpy as np

from .errors import LandscapeError
from .lazy import torch

DIRECTIONS = ("random", "hessian", "pca", "models", "line")
PLANE_AXES = ("a", "b")  # the axis names of a plane grid


@dataclass(frozen=True, eq=False)
class BaseModel:
    """A trained model. params: name -> float64 tensor (the cell's, then its readout's, if any);
    trajectory: name -> (S, *shape) of its trainable parameters during training (train runs that
    recorded steps), else None."""

    cell: str
    cell_options: tuple[tuple[str, object], ...]
    hidden: int
    readout: str  # identity (no head) | logistic | dense2
    params: dict
    source: dict  # JSON-able: ref, path, sha256, group, repeat
    trajectory: dict | None = None


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def load_model(ref: str) -> BaseModel:
    """The model a reference names (see the module docstring); one clear line otherwise."""
    path_text, group, repeat = _split(ref)
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise LandscapeError(f"model file {path_text!r} not found")
    source = {"ref": ref, "path": str(path), "sha256": file_sha256(path)}
    if path.suffix.lower() in (".pt", ".pth"):
        if group is not None:
            raise LandscapeError(f"--base-model {ref}: a torch file has no groups; give FILE.pt")
        from .torch_models import load_torch_model

        m = load_torch_model(path)
        return BaseModel(m.cell, tuple(m.cell_options), m.hidden, "identity" if m.readout == "none" else m.readout,
                         dict(m.params), source)
    if path.suffix.lower() in (".h5", ".hdf5"):
        return _from_run(path, group, repeat, source)
    raise LandscapeError(f"--base-model {ref}: give a torch file (.pt, .pth) or a training run (.h5:GROUP[:REPEAT])")


def _split(ref: str) -> tuple[str, str | None, int | None]:
    parts = ref.split(":")
    if len(parts) == 1:
        return ref, None, None
    if len(parts) == 2:
        return parts[0], parts[1], None
    if len(parts) == 3:
        try:
            return parts[0], parts[1], int(parts[2])
        except ValueError:
            raise LandscapeError(f"malformed --base-model {ref!r}: REPEAT must be an integer") from None
    raise LandscapeError(f"malformed --base-model {ref!r}; write FILE.pt or RUN.h5:GROUP[:REPEAT]")


def _from_run(path: Path, group: str | None, repeat: int | None, source: dict) -> BaseModel:
    import h5py

    if group is None:
        raise LandscapeError(f"--base-model {path}: name the group of the training run, {path}:GROUP[:REPEAT]")
    try:
        with h5py.File(path, "r") as f:
            runs = f.get("runs")
            found = [g for g in (runs.values() if runs is not None else []) if g.attrs.get("group") == group]
            if not found:
                names = sorted(str(g.attrs.get("group")) for g in (runs.values() if runs is not None else []))
                raise LandscapeError(f"--base-model: no group {group!r} in {path}; its groups: "
                                     f"{', '.join(names) or 'none'}")
            g = found[0]
            spec = json.loads(g.attrs["spec"])
            members = json.loads(g.attrs["members"])
            labels = [dict(m.get("labels", [])).get("repeat") for m in members]
            if repeat is None:
                index = 0
            elif repeat in labels:
                index = labels.index(repeat)
            else:
                raise LandscapeError(f"--base-model: group {group!r} has no repeat {repeat}; its repeats: "
                                     f"{', '.join(str(x) for x in labels)}")
            params = {k: torch.as_tensor(np.asarray(g["params"][k][-1, index]), dtype=torch.float64)
                      for k in g["params"]}
            trajectory = None
            if "step_params" in g:
                trajectory = {k: torch.as_tensor(np.asarray(g["step_params"][k][:, index]), dtype=torch.float64)
                              for k in g["step_params"]}
    except OSError as err:
        raise LandscapeError(f"--base-model: {path} is not a readable training run ({err})") from None
    source.update(group=group, repeat=repeat if repeat is not None else labels[index], member=index)
    kind = spec.get("readout", "dense2") if any(k.startswith(("out_", "dense_")) for k in params) else "identity"
    return BaseModel(spec["cell"], tuple(tuple(o) for o in spec.get("cell_options", [])),
                     int(spec["hidden"]) if spec.get("hidden") is not None else int(next(
                         v.shape[0] for k, v in params.items() if k.startswith(("w", "b")))),
                     kind, params, source, trajectory)


def grid_readout(model: BaseModel, H: int) -> dict:
    """The model's readout as the grid's logistic one (out_w (H,), out_b (1,)): a Dense(2) head's
    logit difference; {} without a head (the grid then fits or takes the default readout)."""
    p = model.params
    if model.readout == "logistic":
        return {"out_w": p["out_w"], "out_b": p["out_b"]}
    if model.readout == "dense2":
        W, b = p["dense_w"], p["dense_b"]  # (2, H), (2,)
        return {"out_w": W[1] - W[0], "out_b": (b[1] - b[0]).reshape(1)}
    return {}


def make_plane(kind: str, problem, base: dict, models: tuple = (), seed: int = 0, T: int = 50, n: int | None = None,
               data_seed: int = 0, trajectory: dict | None = None):
    """The plane of ``kind`` around the base point ``base`` (name -> tensor) of a resolved model.

    random   two filter-normalised Gaussian directions (seed)
    hessian  the top two eigenvectors of the loss Hessian at T (the grid's largest T)
    pca      the first two principal components of the model's training trajectory
    models   the plane through the base and two more models (``models``: two references)
    line     the line through the base and one more model (b is a zero direction)
    The readout is left out of the directions when the grid fits it at every point."""
    from . import directions as D

    exclude = tuple(problem.readout.params(problem.H)) if problem.readout.optimal else ()
    params = {k: v.to(torch.float64) for k, v in base.items()}
    if kind == "random":
        return D.random_plane(params, seed=seed, exclude=exclude)
    if kind == "hessian":
        loss = D.task_loss(problem, T, n, data_seed)
        moving = sum(v.numel() for k, v in params.items() if k not in exclude)
        # the exact Hessian costs a batched double backward of n T steps per 64 of its rows (4 GB and
        # a minute for 249 parameters at n = 500, T = 40); Lanczos 20-40 products whatever the size
        method = "exact" if moving <= D.EXACT_HESSIAN_MAX else "lanczos"
        return D.hessian_plane(loss, params, method=method, exclude=exclude, batched=True)
    if kind == "pca":
        if not trajectory:
            raise LandscapeError("--directions pca needs a training trajectory: a --base-model RUN.h5:GROUP from "
                                 "`landscape train --record-steps --out RUN.h5`")
        path = dict(trajectory)
        if "dense_w" in path:  # the training readout Dense(2) as the grid's logistic one
            W, b = path.pop("dense_w"), path.pop("dense_b")  # (S, 2, H), (S, 2)
            path["out_w"], path["out_b"] = W[:, 1] - W[:, 0], (b[:, 1] - b[:, 0]).unsqueeze(-1)
        return D.pca_plane({k: v for k, v in path.items() if k in params}, base=params)
    others = [_same_layout(load_model(ref), params, ref) for ref in models]
    if kind == "models":
        if len(others) != 2:
            raise LandscapeError(f"--directions models needs two more models (--models A --models B); got {len(others)}")
        return D.models_plane(params, others[0], others[1])
    if kind == "line":
        if len(others) != 1:
            raise LandscapeError(f"--directions line needs one more model (--models A); got {len(others)}")
        return D.models_line(params, others[0])
    raise LandscapeError(f"unknown directions {kind!r}; choose from: {', '.join(DIRECTIONS)}")


def _same_layout(model: BaseModel, params: dict, ref: str) -> dict:
    """Another model's parameters in the base point's layout (a readout it lacks: the base's)."""
    other = {k: v.to(torch.float64) for k, v in model.params.items()}
    other.update(grid_readout(model, 0))
    for k in ("out_w", "out_b"):
        if k in params and k not in other:
            other[k] = params[k]
    out = {}
    for k, v in params.items():
        if k not in other or tuple(other[k].shape) != tuple(v.shape):
            raise LandscapeError(f"--models {ref}: its parameters do not match the base model's ({k} "
                                 f"{tuple(v.shape)} against {tuple(other[k].shape) if k in other else 'absent'})")
        out[k] = other[k]
    return out
