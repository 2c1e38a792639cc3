"""A trained model as a grid's base point, and the plane of parameters a grid sweeps around it.

A model reference is one of

    FILE.pt | FILE.pth           a torch.nn.RNN / LSTM / GRU (or RNNCell ...) state_dict, with an
                                 optional nn.Linear head (``landscape.torch_models``)
    FILE.h5:GROUP[:REPEAT]       a member of a `landscape train --out FILE.h5` run: its parameters
                                 after the last epoch (REPEAT: the member's ``repeat`` label, default
                                 the first member), with its training trajectory (for pca)

``load_model(ref)`` returns a ``BaseModel``: the cell and options, H, the readout kind, the
parameters and a description of the source (path, sha256 of the file, group, repeat) that goes
into the cache key. ``adopt_model`` gives a ModelSpec the model's cell, options and size, and
``model_values`` its parameters as the resolved problem's base point (``problem.resolve_model``
uses both). ``directions.make_plane`` builds the plane of ``GridSpec.directions`` around it:
random, hessian, pca, models (through two more models) or line.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .cells import CELLS
from .errors import LandscapeError, error_reason
from .lazy import torch
from .model import ModelSpec
from .readouts import READOUT_PARAMS



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
    """A member of a training run, read from the verified file (``store.runs``); a cell from outside
    landscape is named by the hash of its source (``cell_source``), never imported from the file."""
    from .plan import check_run_file_memory
    from .settings import memory
    from .store.runs import read_run_file

    if group is None:
        raise LandscapeError(f"--base-model {path}: name the group of the training run, {path}:GROUP[:REPEAT]")
    check_run_file_memory(path, memory())
    runs = read_run_file(path)
    found = [g for g in runs if g.group == group]
    if not found:
        raise LandscapeError(f"--base-model: no group {group!r} in {path}; its groups: "
                             f"{', '.join(sorted(g.group for g in runs)) or 'none'}")
    g = found[0]
    spec, members = json.loads(g.spec), json.loads(g.members)
    labels = [dict(m.get("labels", [])).get("repeat") for m in members]
    if repeat is None:
        index = 0
    elif repeat in labels:
        index = labels.index(repeat)
    else:
        raise LandscapeError(f"--base-model: group {group!r} has no repeat {repeat}; its repeats: "
                             f"{', '.join(str(x) for x in labels)}")
    params = {k: torch.as_tensor(np.asarray(v[-1, index]), dtype=torch.float64) for k, v in g.arrays["params"].items()}
    trajectory = None
    if "step_params" in g.arrays:
        trajectory = {k: torch.as_tensor(np.asarray(v[:, index]), dtype=torch.float64)
                      for k, v in g.arrays["step_params"].items()}
    source.update(group=group, repeat=repeat if repeat is not None else labels[index], member=index)
    if g.cell_source is not None:
        source["cell_source"] = g.cell_source
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


def read_base_point(path, shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """Parameter values from an HDF5 file: datasets named after parameters, at the root or under
    /params (e.g. a training result). Only names this cell has are read; shapes must match."""
    import h5py

    path = Path(path)
    if not path.exists():
        raise LandscapeError(f"--base: no such file: {path}")
    if path.is_dir():
        raise LandscapeError(f"--base {path} is a folder; give an HDF5 file")
    out = {}
    try:
        with h5py.File(path, "r", locking=False) as f:
            groups = [f["params"]] if "params" in f else [f]
            for g in groups:
                for name in shapes:
                    if name in g and isinstance(g[name], h5py.Dataset):
                        value = np.asarray(g[name][()], dtype=np.float64)
                        if value.shape != tuple(shapes[name]):
                            raise LandscapeError(f"--base {path}: {name} has shape {value.shape}, "
                                                 f"this cell needs {tuple(shapes[name])}")
                        if not np.isfinite(value).all():
                            raise LandscapeError(f"--base {path}: {name} holds values that are not finite")
                        out[name] = torch.from_numpy(value)
    except (OSError, TypeError, RuntimeError) as err:
        raise LandscapeError(f"--base {path} is not a readable HDF5 file ({error_reason(err)})") from None
    if not out:
        raise LandscapeError(f"--base {path} holds none of this cell's parameters ({', '.join(shapes)})")
    return out


def adopt_model(spec: ModelSpec, bm: BaseModel) -> ModelSpec:
    """The ModelSpec with a trained model's cell, options and hidden size; a different --cell,
    --cell-opt or --hidden given with it is one clear error (the default cell counts as not given).

    A model trained with a cell from outside landscape (a run file's ``cell_source``) needs the
    user's ``--cell FILE.py:Class`` whose source hashes to it: the file the run names is never
    imported (a data file must not run code)."""
    default_cell = ModelSpec.cell
    cell = bm.cell
    if "cell_source" in bm.source or CELLS.is_reference(bm.cell):
        cell = _matching_user_cell(spec.cell if spec.cell != default_cell else None, bm)
    elif spec.cell not in (default_cell, bm.cell):
        raise LandscapeError(f"the base model is a {bm.cell}; drop --cell {spec.cell} or give --cell {bm.cell}")
    if spec.cell_options and tuple(spec.cell_options) != tuple(bm.cell_options):
        raise LandscapeError(f"the base model has cell options {dict(bm.cell_options) or 'none'}; drop --cell-opt")
    if spec.hidden is not None and int(spec.hidden) != bm.hidden:
        raise LandscapeError(f"the base model has {bm.hidden} hidden units; drop --hidden {spec.hidden}")
    return replace(spec, cell=cell, cell_options=tuple(bm.cell_options), hidden=bm.hidden)


def _matching_user_cell(given: str | None, bm: BaseModel) -> str:
    """The user's --cell when its source is the one the model was trained with; one line otherwise."""
    from .extensions import source_hash

    want = bm.source.get("cell_source")
    ask = (f"--base-model {bm.source['ref']} was trained with the cell {bm.cell} from outside landscape, which is "
           f"not imported from the run file")
    if want is None:
        raise LandscapeError(f"{ask}, and the run does not record its source: train it again")
    if given is None or not CELLS.is_reference(given):
        raise LandscapeError(f"{ask}: pass --cell FILE.py:Class, the file it was trained with (source hash {want})")
    have = source_hash(CELLS.get(given))
    if have != want:
        raise LandscapeError(f"{ask}: --cell {given} has source hash {have}, the run was trained with {want}; "
                             f"pass the cell file it was trained with")
    return given


def model_values(bm: BaseModel, problem) -> dict:
    """A trained model's parameters as the base point of ``problem`` (``problem.Problem``, resolved
    from the adopted spec): its readout as the problem's kind;
    a parameter the problem does not have (input weights on a task without input) or a shape that
    differs is one clear error, never dropped."""
    values = {k: v for k, v in bm.params.items() if k not in READOUT_PARAMS}
    if problem.readout.kind == "logistic":
        values.update(grid_readout(bm, problem.H))
    elif problem.readout.kind == "dense2" and "dense_w" in bm.params:
        values.update({k: bm.params[k] for k in ("dense_w", "dense_b")})
    extra = sorted(k for k in values if k not in problem.shapes)
    wrong = sorted(k for k, v in values.items() if k in problem.shapes and tuple(v.shape) != tuple(problem.shapes[k]))
    if extra or wrong:
        why = (f"it has {', '.join(extra)}, which {problem.where} on task {problem.task.name} (input size "
               f"{problem.task.input_size}) does not" if extra else
               f"{', '.join(f'{k} {tuple(values[k].shape)}' for k in wrong)} do not fit {problem.where}")
        raise LandscapeError(f"--base-model {bm.source['ref']}: {why}")
    return values
