"""A grid's recipe: what computing a one-unit grid on the fused numba kernel needs, resolved once
and kept as plain arrays, so that a later process computing a grid of the same problem never
imports torch (whose import is most of a small grid's process: about 1.2 s of CPU).

A full run (``surface.grid``) of an eligible spec writes the recipe once its surface is computed
(``remember``); a later run of a spec that differs at most in its axes' ranges and number of
points reads it (``lookup``) and computes from it (``RecipeGrid.compute``) the same numbers, bit
for bit: the same kernel (its generated source, loaded as the full run loads it), the same task
data, the same base point, the same readout code (``kernels.numba.losses.unroll_losses_arrays``),
the same chunks (``plan.ChunkNeeds``).

Eligible (``why_not``): a built-in cell and task, no --base/--base-model/--directions/--grads/
--dynamics, the CPU (--device cpu, or auto where this machine has no GPU device and the workers of a
cluster, if any, run on this machine: local:N, threads:N),
fused kernels on ($LANDSCAPE_FAST); and, known once resolved (``remember``): one unit, at most
one input, an identity or logistic readout, and the fused numba kernel computing it (its loop
orders checked against ``cell.step`` by that full run, which the recipe records, and without a
per-value libm call, whose choice against torch is a measurement).

Trust. The recipe's name is a hash of the spec without its axes' ranges and of everything that
made it (``fingerprint``: every source file of the package, the versions of Python, numpy, numba
and torch), so a change of code or of a library makes a new one. The file holds a SHA-256 of its
contents and is written whole or not at all (a temporary file, renamed); one that fails its check
or cannot be read is ignored (the full path runs and writes it again). Recipes live in the kernel
cache (``runtime.kernel_folder()/recipes``): like the compiled kernels they are this machine's
speed, not results. $LANDSCAPE_RECIPES=0 turns them off.

On a cluster (``landscape.distributed``) a grid goes to the workers as its recipe wherever one
applies: a ``RecipeGrid`` pickles as its recipe's contents (the kernel's source, the arrays), so a
worker loads the kernel and computes its chunks from numpy alone, never importing torch; a grid
resolved in full becomes one first (``of``), before anything is computed.
"""
from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import platform
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from . import settings
from .plan import ChunkNeeds
from .resolved import canonical_json, check_representable
from .spec import Axis, GridSpec
from .store.integrity import spec_key

RECIPE_VERSION = 1
GPU_DEVICE_FILES = ("/dev/nvidia0", "/dev/nvidiactl", "/dev/kfd")  # CUDA's and ROCm's: "auto" may pick a GPU


class CpuDevice:
    """The device a recipe computes on, as ``surface.grid`` uses a torch.device: ``type`` and ``str``."""

    type = "cpu"

    def __str__(self) -> str:
        return "cpu"


# ---------------------------------------------------------------------------------------------
# which specs


def why_not(spec: GridSpec, device: str, scheduler=None) -> str | None:
    """Why this spec cannot be computed from a recipe, decided from the spec alone (None: it may)."""
    from .cells import CELLS
    from .distributed import current, on_this_machine
    from .tasks import TASKS

    model = spec.model
    if not settings.recipes():
        return "recipes are turned off (LANDSCAPE_RECIPES=0)"
    if not settings.fast():
        return "fused kernels are turned off (LANDSCAPE_FAST=0)"
    if model.cell not in CELLS.builtins or model.task not in TASKS.builtins:
        return "a cell or task from outside the package"
    if model.base_file or model.base_model or spec.directions or spec.models:
        return "a base point from a file or model, or a plane of directions"
    if spec.grads or spec.dynamics:
        return "--grads or --dynamics"
    cluster = scheduler if scheduler is not None else current()
    if cluster is not None and device != "cpu" and not on_this_machine(cluster):
        return "a cluster whose workers may have a GPU (--device auto; --device cpu computes from the recipe)"
    if device == "auto":
        if any(os.path.exists(f) for f in GPU_DEVICE_FILES):
            return "--device auto on a machine with a GPU device"
    elif device != "cpu":
        return f"--device {device}"
    return None


def recipe_key(spec: GridSpec) -> str:
    """The recipe's name: a hash of the spec without its axes' ranges (their names stay: they pick
    the parameters) and of ``fingerprint()``."""
    doc = asdict(spec)
    for axis in ("x", "y"):
        doc[axis] = None if doc[axis] is None else doc[axis]["name"]
    text = json.dumps({"recipe": RECIPE_VERSION, "spec": doc, "made_by": fingerprint()}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


@functools.lru_cache(maxsize=None)
def fingerprint() -> str:
    """A hash of what makes a recipe's numbers: every .py file of the package (path and bytes),
    and the versions of Python, numpy, numba and torch (from their metadata: torch not imported)."""
    from importlib.metadata import version

    digest = hashlib.sha256()
    root = Path(__file__).resolve().parent
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    for name in ("numpy", "numba", "torch"):
        digest.update(f"{name}={version(name)}\0".encode())
    digest.update(platform.python_version().encode())
    return digest.hexdigest()


def folder() -> Path:
    from .kernels.runtime import kernel_folder

    return kernel_folder() / "recipes"


# ---------------------------------------------------------------------------------------------
# the resolved grid from a recipe


@dataclass(frozen=True)
class RecipeGrid:
    """A grid resolved from its recipe: what ``surface.grid`` needs of a ``resolved.ResolvedGrid``
    (spec, n, Ts, x, y, name, cell_name, task_name, steps, canonical(), key()) and the computation itself (``compute``),
    on numpy arrays."""

    spec: GridSpec
    n: int
    Ts: tuple[int, ...]
    x: Axis
    y: Axis
    cell_name: str
    task_name: str
    doc: dict  # the canonical spec's document but for "x" and "y"
    needs: ChunkNeeds  # plan's numbers for the chunk size
    steps: int  # the task's steps at the largest T
    recipe: Recipe
    contents: tuple = field(repr=False, compare=False)  # (meta, arrays) as read: what it pickles as

    on_plane = False

    def __reduce__(self):
        """Pickled as its spec and its recipe's contents: unpickling loads the kernel again (a
        Dask worker computes from numpy alone; the loaded module itself does not pickle)."""
        return _grid, (self.spec, *self.contents)

    @property
    def name(self) -> str:
        """CELL-TASK, the stem of the cache file (as ``ResolvedGrid.name``)."""
        return f"{self.cell_name}-{self.task_name}"

    def canonical(self) -> str:
        return canonical_json({**self.doc, "x": asdict(self.x), "y": asdict(self.y)})

    def key(self) -> str:
        return spec_key(self.canonical())

    def compute(self, start: int, stop: int, threads: int | None = None) -> dict[str, np.ndarray]:
        """The values of the grid points with flat "ij" indices [start, stop), as
        ``surface.compute_chunk`` gives them: {"loss": (nT, P) float64}; on ``threads`` of the
        fused kernels' workers (default: ``kernels.set_threads``'s)."""
        from .kernels.numba.losses import unroll_losses_arrays

        rec = self.recipe
        dtype = rec.kernel.np_dtype
        flat = np.arange(start, stop)
        i, j = flat // self.y.num, flat % self.y.num  # "ij" order: x varies slowest
        params = {k: v.astype(dtype)[None] for k, v in rec.base.items()}  # (1, *shape)
        P = stop - start
        for (name, idx), values in ((rec.x_ref, self.x.values()[i]), (rec.y_ref, self.y.values()[j])):
            if params[name].shape[0] != P:
                params[name] = np.repeat(params[name], P, axis=0)
            params[name][(slice(None), *idx)] = values.astype(dtype)
        loss = unroll_losses_arrays(rec.kernel, rec.readout, params, rec.inputs, rec.targets, threads)
        return {"loss": loss.astype(np.float64)}


@dataclass(frozen=True)
class Recipe:
    """A recipe as read: the loaded kernel (``unroll.CompiledUnroll``), its prepared inputs and the
    targets at each T in the computation's dtype, the base point (float64), the axes' references,
    the readout."""

    kernel: object
    inputs: object
    targets: list
    base: dict
    x_ref: tuple
    y_ref: tuple
    readout: object


def lookup(spec: GridSpec, device: str, scheduler=None) -> RecipeGrid | None:
    """The grid of ``spec`` from its recipe, or None (not eligible, no recipe yet, or one that fails
    its check). A bad axis raises the LandscapeError ``resolve`` raises."""
    if why_not(spec, device, scheduler) is not None:
        return None
    path = folder() / f"{recipe_key(spec)}.npz"
    try:
        meta, arrays = _read(path)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # absent, damaged, another version
        return None
    return _grid(spec, meta, arrays)


def _grid(spec: GridSpec, meta: dict, arrays: dict) -> RecipeGrid:
    from .kernels.numba.unroll import CompiledUnroll
    from .kernels.runtime import load_module
    from .readouts import Readout

    axes = []
    for given, which in ((spec.x, "x"), (spec.y, "y")):
        name, default = meta[f"{which}_name"], meta[f"{which}_default"]
        axis = replace(given, name=name).checked() if given is not None else Axis(**default)
        check_representable(axis, spec.dtype)
        axes.append(axis)
    k = meta["kernel"]
    module, path = load_module(arrays["kernel_source"].tobytes().decode(), f"cell_{k['key']}",
                               f"landscape_kernel_{k['key']}")
    kernel = CompiledUnroll(module, k["params"], k["init"], k["D"], spec.dtype, k["key"], path, k["modes"])
    Ts = tuple(meta["Ts"])
    dtype = kernel.np_dtype
    x = arrays.get("x")
    inputs = kernel.prepare(None if x is None else x.astype(dtype), [arrays[f"ends_{T}"] for T in Ts], meta["h0"])
    recipe = Recipe(kernel, inputs, [arrays[f"target_{T}"].astype(dtype) for T in Ts],
                    {name: np.array(value, dtype=np.float64) for name, value in meta["doc"]["base"].items()},
                    (meta["x_ref"][0], tuple(meta["x_ref"][1])), (meta["y_ref"][0], tuple(meta["y_ref"][1])),
                    Readout(**meta["readout"]))
    return RecipeGrid(spec, meta["n"], Ts, axes[0], axes[1], meta["cell"], meta["task"], meta["doc"],
                      ChunkNeeds(**meta["needs"]), meta["steps"], recipe, (meta, arrays))


def of(r, data, device: str, scheduler, path: str) -> RecipeGrid | None:
    """The grid ``r`` (``resolved.ResolvedGrid``, nothing computed yet) as a RecipeGrid for the
    workers of ``scheduler``, from the task's data as made (``TaskData``, float64): the same numbers,
    computed from numpy alone; None where no recipe applies (``why_not``, ``_contents``, or a grid
    whose ``path``, ``engine.computing_path``'s as the caller found it, is not the fused numba
    kernel). Nothing is written."""
    if isinstance(r, RecipeGrid):
        return r
    if path != "fused-numba" or why_not(r.spec, device, scheduler) is not None:
        return None
    made = _contents(r, data, json.loads(r.canonical()))
    return None if made is None else _grid(r.spec, *made)


# ---------------------------------------------------------------------------------------------
# writing one


def remember(r, data, spec_json: str, device: str, scheduler=None) -> Path | None:
    """Write the recipe of the resolved grid ``r`` (``resolved.ResolvedGrid``) whose surface the
    fused numba kernel has just computed, from the task's data as made (``TaskData``, float64) and
    the canonical spec as it was before the computation (``spec_json``: its base point is the
    recipe's, whatever the computation did to the problem's tensors);
    None where it is not eligible (see the module docstring) or cannot be written (a recipe is
    only speed: a read-only kernel cache is no error)."""
    if why_not(r.spec, device, scheduler) is not None:
        return None
    made = _contents(r, data, json.loads(spec_json))
    if made is None:
        return None
    meta, arrays = made
    path = folder() / f"{recipe_key(r.spec)}.npz"
    try:
        _write(path, meta, arrays)
    except OSError:
        return None
    return path


def _contents(r, data, doc: dict) -> tuple[dict, dict] | None:
    """(meta, arrays) of the recipe of ``r`` with canonical spec ``doc``, or None where it is not eligible."""
    from .kernels.numba.choice import scalar_calls
    from .kernels.numba.unroll import fused_kernel
    from .plan import grid_chunk_needs

    problem = r.problem
    if problem.H != 1 or problem.D > 1 or data.path is not None or r.on_plane:
        return None
    if problem.readout.kind not in ("identity", "logistic"):
        return None
    kernel = fused_kernel(problem.cell, problem.D, r.torch_dtype, r.spec.math)
    if kernel is None or kernel.checked.get("wide", "unchecked") is not None or scalar_calls(kernel.program):
        return None
    import torch

    readout = problem.readout
    meta = {
        "version": RECIPE_VERSION, "cell": problem.cell.name, "task": problem.task.name, "n": r.n,
        "Ts": list(r.Ts), "h0": float(data.h0), "steps": r.steps,
        "doc": {k: v for k, v in doc.items() if k not in ("x", "y")},
        "x_name": r.x.name, "y_name": r.y.name,
        "x_default": asdict(r.x) if r.spec.x is None else None, "y_default": asdict(r.y) if r.spec.y is None else None,
        "x_ref": [r.x_ref[0], list(r.x_ref[1])], "y_ref": [r.y_ref[0], list(r.y_ref[1])],
        "readout": {"kind": readout.kind, "fit": readout.fit, "l2": readout.l2, "scale": readout.scale},
        "needs": asdict(grid_chunk_needs(r, torch.device("cpu"))),
        "kernel": {"key": kernel.key, "params": list(kernel.params), "init": list(kernel.init), "D": kernel.D,
                   "modes": [mode for mode, failed in kernel.checked.items() if failed is None]},
    }
    arrays = {"kernel_source": np.frombuffer(kernel.path.read_bytes(), dtype=np.uint8)}
    if data.inputs is not None:
        arrays["x"] = data.inputs[..., 0].numpy()
    for T in r.Ts:
        arrays[f"ends_{T}"] = data.ends[T].numpy()
        arrays[f"target_{T}"] = data.targets[T].numpy()
    return meta, arrays


# ---------------------------------------------------------------------------------------------
# the file: an .npz whose "meta" is JSON and whose "digest" is the SHA-256 of the rest


def _digest(meta_bytes: bytes, arrays: dict) -> str:
    h = hashlib.sha256(meta_bytes)
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"\0{name}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _write(path: Path, meta: dict, arrays: dict) -> None:
    meta_bytes = json.dumps(meta, sort_keys=True).encode()
    digest = _digest(meta_bytes, arrays)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, meta=np.frombuffer(meta_bytes, dtype=np.uint8),
                     digest=np.frombuffer(digest.encode(), dtype=np.uint8), **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)  # whole or not at all
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read(path: Path) -> tuple[dict, dict]:
    """(meta, arrays) of a recipe file; ValueError where it fails its check or is of another version."""
    with np.load(io.BytesIO(path.read_bytes()), allow_pickle=False) as z:  # no handle left open by a bad file
        arrays = {name: z[name] for name in z.files}
    meta_bytes = arrays.pop("meta").tobytes()
    digest = arrays.pop("digest").tobytes().decode()
    if _digest(meta_bytes, arrays) != digest:
        raise ValueError(f"{path} fails its checksum")
    meta = json.loads(meta_bytes)
    if meta.get("version") != RECIPE_VERSION:
        raise ValueError(f"{path} is a recipe of version {meta.get('version')}")
    return meta, arrays
