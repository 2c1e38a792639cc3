"""The engine: one batched unroll of a population of parameter sets, the loss at every T.

P population members (grid points or models) x N sequences x H units advance together; the loss
at each requested T is read off as the unroll passes T (a sequence of length T is the prefix of
the longest one). The population is split into chunks sized from a memory budget.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import math
import os

from .lazy import torch

from .errors import LandscapeError
from .kernels import fused_losses
from .model import Problem
from .tasks import TaskData

if TYPE_CHECKING:
    from torch import Tensor

DEFAULT_BUDGET_CPU = 1 << 30  # bytes a chunk may use on the CPU
CUDA_BUDGET_FRACTION = 0.5  # of the free GPU memory
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


def memory_budget(device: torch.device, budget: int | None = None) -> int:
    """Bytes a chunk may use: the given budget, $LANDSCAPE_MEMORY (bytes, or with G/M suffix),
    or a default (1 GiB on the CPU, half the free memory on a GPU)."""
    if budget is not None:
        return int(budget)
    env = os.environ.get("LANDSCAPE_MEMORY")
    if env:
        return parse_bytes(env)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * CUDA_BUDGET_FRACTION)
    return DEFAULT_BUDGET_CPU


def parse_bytes(text: str) -> int:
    """'512M', '2G', '1.5GiB', '1e9' -> bytes; one clear line for anything that is not a positive,
    finite size."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    t = text.strip().upper().rstrip("B").rstrip("I")
    try:
        number = float(t[:-1]) * units[t[-1]] if t and t[-1] in units else float(t)
    except ValueError:
        raise LandscapeError(f"malformed memory size {text!r}; write e.g. 512M or 2G") from None
    if not (math.isfinite(number) and 1 <= number < 2.0 ** 62):
        raise LandscapeError(f"memory size {text!r} must be a positive, finite size, e.g. 512M or 2G")
    return int(number)


def bytes_per_member(problem: Problem, n: int, dtype: torch.dtype, n_T: int, grads_T: int = 0) -> int:
    """A conservative estimate of the memory one population member needs during the unroll:
    the state, the temporaries of a step (about 12 (N, H) tensors for the gated cells; on the CPU
    only a block's worth exist at once), the outputs kept for the loss (one per requested T: the
    fused CUDA kernel writes them all, the optimal readout is fitted over the whole chunk), and the
    readout fit."""
    H, states = problem.H, len(problem.cell.state_names)
    item = torch.finfo(dtype).bits // 8
    per_state = n * H * item
    unroll = per_state * (2 * states + 12)
    capture = per_state * max(2, n_T)
    fit = n * (H + 1) * 8 * 4 if problem.readout.optimal else 0
    graph = per_state * states * 14 * grads_T  # autograd keeps each step's tensors
    return unroll + capture + fit + graph + 64 * n_T


def data_bytes(problem: Problem, n: int, dtype: torch.dtype, steps: int, n_T: int, device) -> tuple[int, int]:
    """(peak, held): the memory of the task's data, made once for every chunk. The inputs
    (steps, N, D) are drawn on the CPU in float64 in blocks, concatenated and scaled (up to three
    float64 copies at once while they are made: ``peak``), then cast to the computation's dtype
    and device (a second copy unless that is float64 on the CPU); ``held`` is what stays while the
    chunks run (the float64 inputs, their cast, the targets and ends of every T). On a GPU only
    the cast copy is on the device; the float64 copies are in host memory, outside its budget."""
    elems = steps * n * problem.D
    item = torch.finfo(dtype).bits // 8
    cast = 0 if (torch.device(device).type == "cpu" and item == 8) else elems * item
    host = 0 if torch.device(device).type == "cuda" else 1
    labels = n_T * n * 16  # targets (float64) and ends (int64) at every T
    return host * 3 * 8 * elems + labels, host * 8 * elems + cast + labels


def plan_chunk(total: int, per_member: int, budget: int, chunk_size: int | None = None,
               data: tuple[int, int] = (0, 0), what: str = "") -> int:
    """Members per chunk: the requested size, else the most that fit the budget (at most total).

    per_member: bytes one member needs while its chunk runs (``bytes_per_member`` and the values
    kept for the file); data: (peak, held) bytes of everything made once, outside the chunks
    (``data_bytes``: the task's data; plus the writer's buffers); what: how the data are made up,
    for the message (e.g. "100000 steps x 1000 sequences"). Raises LandscapeError, before anything
    is allocated, when the data or one member beside them do not fit, giving the size needed.
    """
    peak, held = data
    about = f" ({what})" if what else ""
    if max(peak, held + per_member) > budget:
        tail = "; lower --n or the largest T, or raise the budget (--memory or $LANDSCAPE_MEMORY)"
        if not peak and not held:
            raise LandscapeError(f"one grid point needs about {human_bytes(per_member)} but the memory budget "
                                 f"is {human_bytes(budget)}{tail}")
        raise LandscapeError(
            f"the task's data{about} and one grid point need about {human_bytes(max(peak, held + per_member))} "
            f"(data {human_bytes(max(peak, held))}, a point {human_bytes(per_member)}) but the memory budget "
            f"is {human_bytes(budget)}{tail}")
    fit = max(1, (budget - held) // per_member)
    if chunk_size is not None:
        if chunk_size < 1:
            raise LandscapeError(f"chunk size must be >= 1, got {chunk_size}")
        if chunk_size > fit:
            raise LandscapeError(f"chunk size {chunk_size} needs about {human_bytes(held + chunk_size * per_member)}, "
                                 f"over the memory budget of {human_bytes(budget)}")
        return min(chunk_size, total)
    return min(fit, total)


def human_bytes(n: float) -> str:
    """A byte count for messages: '1.5 GiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def unroll_losses(problem: Problem, params: dict[str, Tensor], data: TaskData, Ts: tuple[int, ...],
                  block_elems: int | None = None, fast: bool | None = None) -> Tensor:
    """The loss of every member at every T, from one unroll: (len(Ts), P).

    params  name -> (P or 1, *shape), on the device and in the dtype of the computation
    problem the resolved model; its readout says how the loss is taken: on the output (identity
            tasks), through the fixed readout out_w, out_b of params, or through the optimal one
            (the ridge-regularised best readout, fitted per member and T)
    fast    False: no fused kernel, ``cell.step`` in torch (for comparisons and benchmarks); None:
            ``settings.fast()`` ($LANDSCAPE_FAST)

    Two paths give the same numbers up to float rounding (1e-12 relative in float64):

    - a fused kernel (``landscape.kernels.fused_losses``) for H = 1 and a cell whose step traces
      into a scalar program (every built-in one-unit cell and a user's cell written as a pure
      step): numba on the CPU (the members' blocks on every core, ``kernels.set_threads``, the loss
      and the optimal fit fused too), Triton on CUDA (the loss then taken in torch);
    - otherwise ``cell.step`` in torch, in blocks of about ``block_elems`` state elements on the
      CPU (``CPU_BLOCK_ELEMS``), the whole population at once on a GPU. With the optimal readout
      the outputs at each T are kept for the whole population and the readout is fitted over all
      of it at once (the fit is batched; blocks would be too small).
    """
    fused, _ = fused_losses(problem, params, data, Ts, fast)  # None where no fused kernel applies
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
    out = {k: v.to(dtype=dtype, device=device).unsqueeze(0) for k, v in base.items()}  # (1, *shape)
    P = values[0].shape[0]
    for (name, idx), vals in zip(refs, values):
        if out[name].shape[0] != P:
            out[name] = out[name].expand(P, *out[name].shape[1:]).clone()
        out[name][(slice(None), *idx)] = vals.to(dtype=dtype, device=device)
    return out


def flat_chunks(total: int, size: int) -> list[tuple[int, int]]:
    """[(start, stop), ...] covering range(total) in chunks of ``size`` (the last may be short)."""
    return [(s, min(s + size, total)) for s in range(0, total, size)]


def n_chunks(total: int, size: int) -> int:
    return math.ceil(total / size)
