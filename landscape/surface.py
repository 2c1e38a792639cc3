"""Compute (or read from the cache) a loss surface: spec -> engine chunks -> HDF5 store."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from .lazy import torch
from tqdm import tqdm

from . import dynamics_map, engine, gradients, plan, recipe, settings
from .directions import make_plane, read_plane, write_plane
from .errors import LandscapeError, error_reason
from .progress import ESTIMATE_FROM_S, Lines, duration, grid_estimate, wanted
from .resolved import ResolvedGrid, resolve
from .spec import GridSpec
from .store import (RESERVED_NAMES, STORE_BYTES, SURFACE_FORMAT_VERSION, CorruptSurface, Surface, SurfaceContents,
                    SurfaceWriter, WriteFailed, cache_path, check_surface_file, check_writable, damage_is_corruption,
                    load, lock_held, locked, open_file, read_surface, write_failure)
from .store.integrity import check_readable


@dataclass
class GridResult:
    """What a grid run produced: the surface, and how it was obtained."""

    surface: Surface
    path: Path
    cached: bool  # read from an existing complete file
    computed_points: int  # grid points evaluated by this run (0 when cached)
    seconds: float
    device: str

    @property
    def points_per_second(self) -> float:
        return self.computed_points / self.seconds if self.seconds > 0 else float("nan")


def grid(spec: GridSpec | None = None, *, out=None, device: str = "auto", force: bool = False,
         chunk_size: int | None = None, memory: int | None = None, progress: bool | None = None,
         on_message=None, scheduler=None, **spec_fields) -> GridResult:
    """The loss surface of ``spec`` (or of ``GridSpec.of(**spec_fields)``: the flat form, cell=...,
    task=..., T=..., x=...), from the cache when it holds it.

    out: file to write (default: the cache, $LANDSCAPE_CACHE or ~/.cache/landscape); force:
    recompute even if cached; chunk_size: grid points per chunk (default: the most that fit the
    memory budget); memory: the budget in bytes (the task's data, the chunks' work and the
    writer's buffers; default $LANDSCAPE_MEMORY, else ``plan.memory_budget``'s); progress: show
    a bar (default: on a terminal). on_message: called with one-line notes (waiting for a lock, resuming).
    scheduler: compute the chunks on a Dask cluster (local:N, an address, a scheduler file or a
    distributed.Client; default: the enclosing ``landscape.distributed.use`` block's, else here).

    A complete file of this spec is verified (``store`` module docstring) and served without a
    lock or any write, so a read-only cache or --out file serves. A corrupt one raises
    ``store.CorruptSurface`` (pass force=True to replace it); one another process is writing is
    waited for; an incomplete one is resumed. Every failure is a LandscapeError, one line.

    A problem computed before by the fused numba kernel is resolved from its recipe
    (``landscape.recipe``: no torch, the same numbers); such a grid computed in full leaves one.
    """
    if spec is None:
        spec = GridSpec.of(**spec_fields)
    elif spec_fields:
        raise TypeError("give either a GridSpec or its fields, not both")
    elif not isinstance(spec, GridSpec):
        raise TypeError(f"spec must be a GridSpec, not {type(spec).__name__}")
    say = on_message or (lambda msg: None)
    # a grid of a problem computed before on the fused numba kernel: from its recipe, without torch
    r = recipe.lookup(spec, device, scheduler) or resolve(spec)
    from_recipe = isinstance(r, recipe.RecipeGrid)
    for name in (r.x.name, r.y.name):
        if name in RESERVED_NAMES:
            raise LandscapeError(f"a parameter named {name!r} cannot be a grid axis: the surface file uses "
                                 f"that name for a dataset ({', '.join(RESERVED_NAMES)}); rename it in the cell")
    dev = recipe.CpuDevice() if from_recipe else engine.resolve_device(device)
    budget = settings.memory() if memory is None else memory
    path = Path(out) if out is not None else cache_path(r.name, r.key())
    where = "--out file" if out is not None else "cache file"
    spec_json = r.canonical()
    if path.is_dir():
        raise LandscapeError(f"the {where} {path} is a folder; remove it or give a file name ending in .h5")
    if not force and path.exists():
        check_readable(path)  # a permission: unreadable, not corrupt
        plan.check_surface_read(r, budget)  # a cached surface is returned whole
        cached = _peek(path, spec_json, where)
        if cached is not None:
            return GridResult(cached, path, True, 0, 0.0, cached.attrs.get("device", "?"))

    size = plan.plan_grid_chunk(r, dev, budget, chunk_size, STORE_BYTES, needs=r.needs if from_recipe else None)
    plan.check_surface_read(r, budget)  # the computed surface is read back whole at the end
    check_writable(path)
    if force or not path.exists():  # a new file, preallocated whole (a resumed one is)
        plan.check_disk(path, plan.surface_bytes(r))
    data, fields = (None, {}) if from_recipe else _data_and_fields(r)

    start = time.perf_counter()
    with locked(path, on_wait=lambda: say(f"another process is computing {path.name}; waiting for it")):
        if force and path.exists():
            path.unlink()
        elif path.exists():  # written meanwhile by another process, or left by a killed run
            cached = _complete_match(path, spec_json, where)
            if cached is not None:
                return GridResult(cached, path, True, 0, 0.0, cached.attrs.get("device", "?"))
        # a plane grid's plane: built before the file exists (a failure leaves none), or read back from
        # the file being resumed (verified above); written into the file's layout, with a digest
        plane = _plane(r, path, say) if r.on_plane else None
        # the plane as group /plane of the file (origin, d1, d2 and what made them): the file rebuilds its
        # parameters, read_plane(f["plane"]).grid_params(a, b)
        groups = {"plane": lambda group: write_plane(group, plane)} if plane is not None else {}
        # which path computes the loss (a fused kernel, or cell.step in torch and why): the file's path /
        # path_reason attributes, and one line once the surface is computed
        path_name, path_reason = (("fused-numba", "") if from_recipe else
                                  engine.computing_path(r.problem, data.to(r.torch_dtype, dev), r.Ts, r.torch_dtype,
                                                        dev, spec.math))
        try:
            contents = SurfaceContents(spec_json, r.Ts, r.x.name, r.x.values(), r.y.name, r.y.values(), size,
                                       attrs={"device": str(dev), "dtype": spec.dtype, "cell": r.cell_name,
                                              "task": r.task_name, "path": path_name,
                                              "path_reason": path_reason}, fields=fields, groups=groups)
            writer = SurfaceWriter(path, contents, verify=False)
        except OSError as err:
            raise LandscapeError(f"cannot write {path}: {error_reason(err)}") from None
        failed = None
        try:
            todo = writer.missing()
            n_total = len(writer.done)
            if len(todo) < n_total:
                say(f"resuming {path.name}: {n_total - len(todo)} of {n_total} chunks already done")
            points = _compute_chunks(r, data, writer, todo, dev, progress, plane, device, scheduler, path_name)
            writer.finish()
        except WriteFailed as err:  # the file's writes only: a worker's or a network's error is its own
            failed = err
        finally:
            try:
                writer.close()
            except WriteFailed as err:
                failed = failed or err
        if failed is not None:
            raise write_failure(path, failed) from None
    seconds = time.perf_counter() - start
    if not from_recipe and path_name == "fused-numba":  # the next grid of this problem starts without torch
        recipe.remember(r, data, spec_json, device, scheduler)
    say(f"{r.cell_name} {r.task_name}: {engine.describe_path(path_name, path_reason)}")
    return GridResult(load(path), path, False, points, seconds, str(dev))


def _peek(path: Path, spec_json: str, where: str) -> Surface | None:
    """The cache lookup before any lock or write: the verified complete surface, or None when it
    is to be computed (absent, incomplete, or being written by another process: decided under
    the lock). A corrupt file that no process holds raises (so does a format-1 file, which cannot
    be verified: ``store.UntrustedFile``)."""
    try:
        return _complete_match(path, spec_json, where)
    except CorruptSurface:
        if lock_held(path):
            return None
        raise


def _complete_match(path: Path, spec_json: str, where: str = "cache file") -> Surface | None:
    """The surface at path if it is complete, verified and was made by this spec; None if it is
    incomplete (to be resumed); LandscapeError if it is foreign or another spec's file,
    CorruptSurface if it fails a check."""
    attrs = check_surface_file(path)
    if attrs.get("spec") != spec_json:
        raise LandscapeError(f"the {where} {path} holds a different surface (key {attrs.get('key')}); "
                             f"remove it or pass --force to overwrite it")
    if not attrs.get("complete"):
        if int(attrs["format_version"]) < SURFACE_FORMAT_VERSION:
            raise LandscapeError(f"the {where} {path} is an incomplete file of format version "
                                 f"{attrs['format_version']} (an older landscape); pass --force to compute it again")
        read_surface(path, attrs)  # its done chunks must check out before they are resumed
        return None
    return read_surface(path, attrs)


def _data_and_fields(r: ResolvedGrid) -> tuple:
    """The task's data (on the CPU, float64: cast per device in _compute_chunks) and the shapes of
    the fields beside the loss (--grads, --dynamics)."""
    problem, spec = r.problem, r.spec
    data = problem.task.make(r.Ts, r.n, spec.seed)
    fields = (gradients.gradient_field_shapes(problem, gradients.grad_norm_steps(data, max(r.Ts)))
              if spec.grads else {})
    if spec.dynamics:
        fields.update(dynamics_map.grid_field_shapes(r.dynamics_options))
    return data, fields


def compute_chunk(r: ResolvedGrid, data, start: int, stop: int, dev, plane=None) -> dict[str, np.ndarray]:
    """The values of the grid points with flat "ij" indices [start, stop): "loss" (nT, P) and, with
    --grads, the gradient fields (``gradients.gradient_fields``), with --dynamics the dynamics
    fields (``dynamics_map.grid_fields``), float64 numpy arrays. data: the
    task's data on ``dev`` in the grid's dtype; plane: the ``directions.Plane`` of a plane grid (axes
    a, b). A pure function of its arguments: chunks may be computed in any order, in any process."""
    problem, dtype = r.problem, r.torch_dtype
    flat = torch.arange(start, stop)
    i, j = flat // r.y.num, flat % r.y.num  # "ij" order: x varies slowest
    xs = torch.as_tensor(r.x.values(), dtype=torch.float64)
    ys = torch.as_tensor(r.y.values(), dtype=torch.float64)
    with torch.no_grad():
        if plane is not None:  # theta = base + a d1 + b d2
            params = plane.params_at(xs[i], ys[j], dtype, dev)
        else:
            params = engine.chunk_params(problem.base, r.refs, (xs[i], ys[j]), dtype, dev)
        loss = engine.unroll_losses(problem, params, data, r.Ts, math=r.spec.math)
        values = {"loss": loss.cpu().numpy().astype(np.float64)}
        if r.spec.grads:  # grad, hessian_eigvals, grad_norm_t (and grad_norm_c_t)
            values.update(gradients.gradient_fields(problem, r.refs, r.Ts, params, data))
    if r.spec.dynamics:  # counts of fixed points and cycles (float64, the file's dtype), lambda_T
        values.update(dynamics_map.grid_fields(problem, params, np.arange(start, stop), data, r.Ts, r.input,
                                               r.dynamics_options))
    return values


def _compute_chunks(r: ResolvedGrid, data, writer: SurfaceWriter, todo: list[int], dev, progress: bool | None,
                    plane=None, device: str | None = None, scheduler=None, path: str = "torch") -> int:
    """Evaluate the missing chunks and write each as soon as it is done. Returns the points done.

    Here, one after the other; on a Dask cluster (``scheduler``, or the enclosing
    ``landscape.distributed.use`` block's), as tasks whose results are written in the order they
    arrive (``landscape.distributed``). plane: a plane grid's ``directions.Plane``. device: the
    device asked for ("auto", "cpu", "cuda"), resolved by each worker; ``dev`` is what this process
    resolved it to. path: the computing path found here (``engine.computing_path``): a fused-numba
    grid goes to a cluster's workers as its recipe (``recipe.of``)."""
    from . import distributed  # imports no Dask until a scheduler is used

    ranges = {c: writer.chunk_range(c) for c in todo}
    total = sum(stop - start for start, stop in ranges.values())
    label = f"{r.cell_name} {r.task_name}"
    bar = tqdm(total=total, unit="pt", disable=(not _is_tty()) if progress is None else not progress,
               desc=label, leave=False)
    lines = Lines(len(todo), "chunks", label, wanted(progress))  # where no bar is drawn
    with bar, distributed.active(scheduler if todo else None) as cluster:
        if cluster is None:
            if progress is not False and dev.type == "cpu":
                _announce(r, total)
            if isinstance(r, recipe.RecipeGrid):
                compute = r.compute
            else:
                data = data.to(r.torch_dtype, dev)
                compute = lambda start, stop: compute_chunk(r, data, start, stop, dev, plane)  # noqa: E731
            for c, (start, stop) in ranges.items():
                writer.write_chunk(c, compute(start, stop))
                bar.update(stop - start)
                lines.update()
        else:
            used = set()
            portable = recipe.of(r, data, device or str(dev), cluster, path) if plane is None else None
            for c, values, on in cluster.grid_chunks(compute_chunk, r, data, ranges, device or str(dev), plane,
                                                     portable):
                writer.write_chunk(c, values)
                used.add(on)
                bar.update(ranges[c][1] - ranges[c][0])
                lines.update()
            if used and used != {str(dev)}:  # the workers' devices, not this process's
                writer.file.attrs["device"] = ", ".join(sorted(used))
    return total


def _plane(r: ResolvedGrid, path: Path, say):
    """The plane of a plane grid: read back from the file of a resumed run (it sweeps the very plane
    it started; the file was verified, its plane against its digest, before), else built
    (``directions.make_plane``). A file without its plane is refused, never resumed over a new one."""
    if path.exists():
        with damage_is_corruption(path), open_file(path) as f:
            if not isinstance(f.get("plane"), h5py.Group):
                raise CorruptSurface(path, "it is a plane grid without its plane (group /plane is missing)")
            return read_plane(f["plane"])
    say(f"building the {r.spec.directions} plane around the base point")
    bm = r.problem.base_model  # the Hessian's plane is computed at the largest T
    return make_plane(r.spec.directions, r.problem, r.problem.base, r.models, r.spec.direction_seed, max(r.Ts),
                      r.n, r.spec.seed, bm.trajectory if bm is not None else None)


def _announce(r, points: int) -> None:
    """One line on stderr before a CPU grid expected to take over ``progress.ESTIMATE_FROM_S``
    seconds (``progress.grid_estimate``'s cost model)."""
    seconds = grid_estimate(r.cell_name, points, r.n, r.steps, r.spec.grads)
    if seconds > ESTIMATE_FROM_S:
        import sys

        grads = " with --grads" if r.spec.grads else ""
        print(f"{r.cell_name} {r.task_name}: {points} points x {r.n} sequences x {r.steps} steps{grads} "
              f"may take about {duration(seconds)} on one CPU thread (a rough guess; fewer with more threads)",
              file=sys.stderr, flush=True)


def _is_tty() -> bool:
    import sys

    return sys.stderr.isatty()
