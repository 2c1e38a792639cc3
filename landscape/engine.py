"""The engine: one batched unroll of a population of parameter sets, the loss at every T.

P population members (grid points or models) x N sequences x H units advance together; the loss
at each requested T is read off as the unroll passes T (a sequence of length T is the prefix of
the longest one). The population is split into chunks sized from a memory budget (``landscape.plan``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import math

from .lazy import torch

from .errors import LandscapeError
from .kernels import fused_losses
from .problem import Problem
from .tasks import TaskData

if TYPE_CHECKING:
    from torch import Tensor

CPU_BLOCK_ELEMS = 1 << 15  # cell.step path: state elements per CPU block (a step's temporaries stay small)


def resolve_device(name: str) -> torch.device:
    """'auto' -> CUDA when available, else the CPU; 'cuda' without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise LandscapeError("--device cuda was asked for but no CUDA GPU is available; "
                                 "use --device cpu or auto")
        return torch.device(name)
    raise LandscapeError(f"unknown device {name!r}; choose from: auto, cpu, cuda")


def unroll_losses(problem: Problem, params: dict[str, Tensor], data: TaskData, Ts: tuple[int, ...],
                  block_elems: int | None = None, fast: bool | None = None, math: str = "exact") -> Tensor:
    """The loss of every member at every T, from one unroll: (len(Ts), P).

    params  name -> (P or 1, *shape), on the device and in the dtype of the computation
    problem the resolved model; its readout says how the loss is taken: on the output (identity
            tasks), through the fixed readout out_w, out_b of params, or through the optimal one
            (the ridge-regularised best readout, fitted per member and T)
    fast    False: no fused kernel, ``cell.step`` in torch (for comparisons and benchmarks); None:
            ``settings.fast()`` ($LANDSCAPE_FAST)
    math    the fused kernels' accuracy class (``GridSpec.math``): 'exact', or 'fast' (float32's
            sigmoid within 1.1e-7 absolute); the torch path computes the exact functions

    Two paths give the same numbers up to float rounding (1e-12 relative in float64):

    - a fused kernel (``landscape.kernels.fused_losses``) for a cell whose step traces into a
      scalar program (every built-in cell and a user's cell written as a pure step): for H = 1,
      numba on the CPU (the members' blocks on every core, ``kernels.set_threads``, the loss and
      the optimal fit fused too; a kernel that still calls libm per value only where it measured
      faster than torch, ``kernels.numba.choice``) and Triton on CUDA (the loss then taken in
      torch); for 1 < H <= 32 on the CPU, numba with the matrix-vector products written out per
      unit up to H = 8 (``kernels.numba.units``) and register-blocked above
      (``kernels.numba.matvec``), the loss then taken in torch as below;
    - otherwise ``cell.step`` in torch, in blocks of about ``block_elems`` state elements on the
      CPU (``CPU_BLOCK_ELEMS``), the whole population at once on a GPU. With the optimal readout
      the outputs at each T are kept for the whole population and the readout is fitted over all
      of it at once (the fit is batched; blocks would be too small).

    A task whose data carry a ``path`` (a ground-truth trajectory) has its loss over every step
    instead: ``path_losses``. Which path a computation takes, and why: ``computing_path``.
    """
    if data.path is not None:
        return path_losses(problem, params, data, Ts)
    fused, _ = fused_losses(problem, params, data, Ts, fast, math)  # None where no fused kernel applies
    if fused is not None:
        return fused
    cell, H, readout = problem.cell, problem.H, problem.readout
    P = _members(params)
    ref = next(iter(params.values()))
    device = ref.device
    losses = torch.empty(len(Ts), P, dtype=ref.dtype, device=device)
    kept = ref.new_empty(len(Ts), P, data.n, H) if readout.optimal else None  # outputs for the fit
    grad = torch.is_grad_enabled() and any(v.requires_grad for v in params.values())
    work = None  # scratch for the loss of a block, reused
    for idx, sub in _blocks(params, P, data.n, H, block_elems, device):
        for k, y in step_outputs(cell, sub, data, Ts, H):  # y (P_block, N, H)
            if kept is not None:
                kept[k, idx] = y
                continue
            if readout.kind != "identity" and H == 1 and not grad:
                if work is None or work.shape[1] < y.shape[0]:
                    work = y.new_empty(2, y.shape[0], data.n)
                w = work[:, :y.shape[0]]
            else:
                w = None
            losses[k, idx] = readout.loss(y, data.targets[Ts[k]], sub, work=w)
    if kept is not None:
        for k, T in enumerate(Ts):
            losses[k] = readout.loss(kept[k], data.targets[T], params)
    return losses


FUSED_PATHS = {"cpu": "fused-numba", "cuda": "fused-triton"}  # device type -> the path name of its fused kernels
PATH_WORDS = {"fused-numba": "the fused numba kernel", "fused-triton": "the fused Triton kernel", "torch": "torch"}


def computing_path(problem: Problem, data: TaskData, Ts: tuple[int, ...], dtype, device, math: str = "exact"
                   ) -> tuple[str, str]:
    """The path ``unroll_losses`` takes for this problem, task data (on ``device`` in ``dtype``) and
    Ts: (path, reason), path 'fused-numba' or 'fused-triton' (a fused kernel on the CPU or CUDA,
    reason '') or 'torch' (``cell.step`` unrolled in torch, reason: why no fused kernel applies).

    Found by asking the dispatch for the losses of the base point alone (one member, the first T):
    the same decision, and the kernel it builds is the one the computation then uses."""
    if data.path is not None:
        return "torch", "the task's loss is over every step of a path (the kernels read it at the end)"
    params = {k: v.to(dtype=dtype, device=device).unsqueeze(0) for k, v in problem.base.items()}  # (1, *shape)
    with torch.no_grad():
        fused, why = fused_losses(problem, params, data, Ts[:1], math=math)
    if fused is None:
        return "torch", why or "no fused kernel applies"
    return FUSED_PATHS[torch.device(device).type], ""


def describe_path(path: str, reason: str) -> str:
    """The one line that says which path computed a surface: 'computed by the fused numba kernel',
    'computed by torch: <reason>'."""
    return f"computed by {PATH_WORDS[path]}" + (f": {reason}" if reason else "")


def path_losses(problem: Problem, params: dict[str, Tensor], data: TaskData, Ts: tuple[int, ...]) -> Tensor:
    """The loss over every step of a ground-truth path (``TaskData.path``, (T_max + 1, N, H)),
    free-running or teacher-forced (``TaskData.forcing``): (len(Ts), P), differentiable.

    L_T = scale * mean over t = 1..T, n, i of (y_t - z*_t)^2, y_t = cell.output after step t. With
    forcing tau the cell's first state is set to z*_t before step t + 1 whenever t % tau == 0.
    ``cell.step`` in torch, the whole population at once (no fused kernel reads a path)."""
    cell, H, path = problem.cell, problem.H, data.path
    if path.shape[-1] != H:
        raise LandscapeError(f"task {problem.task.name}'s path has {path.shape[-1]} units; the model has H={H}")
    P = _members(params)
    state = cell.initial_state(params, data.n, H, data.h0)  # (1, N, H) each
    total, out = 0.0, {}
    for t in range(1, max(Ts) + 1):
        if data.forcing and (t - 1) % data.forcing == 0:
            state = (path[t - 1].expand_as(state[0]), *state[1:])
        state = cell.step(params, state, None if data.inputs is None else data.inputs[t - 1])  # (N, D)
        total = total + ((cell.output(state) - path[t]) ** 2).mean((-1, -2))  # (P or 1,)
        if t in Ts:
            out[t] = problem.readout.scale * total / t
    return torch.stack([out[T].expand(P) for T in Ts])


def _members(params: dict[str, Tensor]) -> int:
    return max(v.shape[0] for v in params.values())


def _blocks(params, P, n, H, block_elems, device):
    """(slice of members, params of the block) for each block of the ``cell.step`` path: about
    ``block_elems`` state elements each (default ``CPU_BLOCK_ELEMS`` on the CPU, all on a GPU)."""
    if block_elems is not None:
        block = block_elems // (n * H)
    else:
        block = CPU_BLOCK_ELEMS // (n * H) if device.type == "cpu" else P
    for s, e in flat_chunks(P, max(1, block)):
        if (s, e) == (0, P):
            yield slice(s, e), params
        else:
            yield slice(s, e), {k: v[s:e] if v.shape[0] == P else v for k, v in params.items()}


def step_outputs(cell, params: dict[str, Tensor], data: TaskData, Ts: tuple[int, ...], H: int):
    """``cell.step`` unrolled in torch: yield (k, y) as the unroll passes each requested T, y (P, N, H)
    the outputs at T_k (each sequence's at its own end when lengths vary). y may be the live state:
    use it before resuming."""
    P = _members(params)
    state = cell.initial_state(params, data.n, H, data.h0)  # (1, N, H) each

    def advance(t):
        nonlocal state
        state = cell.step(params, state, None if data.inputs is None else data.inputs[t - 1])  # (N, D)

    def output():
        return cell.output(state)

    for k, y in outputs_at_ends(advance, output, [data.ends[T] for T in Ts]):
        yield k, y.expand(P, -1, -1)


def outputs_at_ends(advance, output, ends: list[Tensor]):
    """The one loop that reads outputs off an unroll (the engine's, the gradients' and training's).

    ends[k]  (N,) or (P, N): the step (1-based) at which each sequence of output k ends
    advance  advance(t) takes step t = 1, 2, ... up to the last end
    output   output() -> the current output (P or 1, N, H)

    Yields (k, y_k) as soon as every sequence of k has ended, y_k (P or 1, N, H) holding each
    sequence's output at its own end. Where all of k's sequences end at one step, y_k is
    ``output()`` itself, which may be a live buffer: use it before the generator resumes. Otherwise
    the outputs are merged with ``torch.where`` (no in-place writes, so autograd runs through it).
    """
    windows = [(int(e.min()), int(e.max())) for e in ends]
    due = {t for lo, hi in windows for t in range(lo, hi + 1)}  # steps where an output is due
    merged: dict[int, Tensor] = {}
    for t in range(1, max(hi for _, hi in windows) + 1):
        advance(t)
        if t not in due:
            continue
        for k, (lo, hi) in enumerate(windows):
            if not lo <= t <= hi:
                continue
            if lo == hi:
                yield k, output()
                continue
            out = output()
            here = (ends[k] == t).unsqueeze(-1)  # (N, 1) or (P, N, 1)
            merged[k] = torch.where(here, out, merged[k] if k in merged else out.new_zeros(()))
            if t == hi:
                yield k, merged.pop(k)


def chunk_params(base: dict[str, Tensor], refs: tuple, values: tuple[Tensor, ...], dtype, device
                 ) -> dict[str, Tensor]:
    """The parameters of a chunk of grid points: base point everywhere (P = 1, broadcast) except
    the axis elements, which take ``values`` (each (P,)). refs: ((name, index), ...)."""
    out = {k: v.to(dtype=dtype, device=device).unsqueeze(0) for k, v in base.items()}  # (1, *shape), base's own
    P = values[0].shape[0]
    for name in dict.fromkeys(name for name, _ in refs):  # a copy to write: base is shared by every chunk
        out[name] = out[name].expand(P, *out[name].shape[1:]).clone()  # (P, *shape)
    for (name, idx), vals in zip(refs, values):
        out[name][(slice(None), *idx)] = vals.to(dtype=dtype, device=device)
    return out


def flat_chunks(total: int, size: int) -> list[tuple[int, int]]:
    """[(start, stop), ...] covering range(total) in chunks of ``size`` (the last may be short)."""
    return [(s, min(s + size, total)) for s in range(0, total, size)]


def n_chunks(total: int, size: int) -> int:
    return math.ceil(total / size)
