"""The engine: one batched unroll of a population of parameter sets, the loss at every T.

P population members (grid points or models) x N sequences x H units advance together; the loss
at each requested T is read off as the unroll passes T (a sequence of length T is the prefix of
the longest one). The population is split into chunks sized from a memory budget.
"""
from __future__ import annotations

import math
import os

import torch
from torch import Tensor

from .cells import Cell
from .data import Task, TaskData
from .data.readout import fit_logistic_readout, identity_loss, logistic_loss
from .errors import LandscapeError

DEFAULT_BUDGET_CPU = 1 << 30  # bytes a chunk may use on the CPU
CUDA_BUDGET_FRACTION = 0.5  # of the free GPU memory
CPU_BLOCK_ELEMS = 1 << 17  # state elements per CPU block: 1 MiB of float64, inside a 2 MiB L2


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
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    t = text.strip().upper().rstrip("B").rstrip("I")
    try:
        if t and t[-1] in units:
            return int(float(t[:-1]) * units[t[-1]])
        return int(float(t))
    except ValueError:
        raise LandscapeError(f"malformed memory size {text!r}; write e.g. 512M or 2G") from None


def bytes_per_member(cell: Cell, n: int, H: int, dtype: torch.dtype, n_T: int, optimal_readout: bool,
                     grads_T: int = 0) -> int:
    """A conservative estimate of the memory one population member needs during the unroll:
    the state, the temporaries of a step (about 12 (N, H) tensors for the gated cells), the
    captured outputs while sequences of different lengths end, and the readout fit."""
    item = torch.finfo(dtype).bits // 8
    per_state = n * H * item
    unroll = per_state * (2 * len(cell.state_names) + 12)
    capture = per_state * 2
    fit = n * (H + 1) * 8 * 4 if optimal_readout else 0
    graph = per_state * len(cell.state_names) * 14 * grads_T  # autograd keeps each step's tensors
    return unroll + capture + fit + graph + 64 * n_T


def plan_chunk(total: int, per_member: int, budget: int, chunk_size: int | None = None) -> int:
    """Members per chunk: the requested size, else the most that fit the budget (at most total).

    Raises LandscapeError when even one member does not fit, giving the size it would need.
    """
    if per_member > budget:
        raise LandscapeError(
            f"one grid point needs about {_human(per_member)} but the memory budget is {_human(budget)}; "
            f"lower --n or the largest T, or raise the budget (--memory or $LANDSCAPE_MEMORY)")
    fit = max(1, budget // per_member)
    if chunk_size is not None:
        if chunk_size < 1:
            raise LandscapeError(f"chunk size must be >= 1, got {chunk_size}")
        if chunk_size > fit:
            raise LandscapeError(f"chunk size {chunk_size} needs about {_human(chunk_size * per_member)}, "
                                 f"over the memory budget of {_human(budget)}")
        return min(chunk_size, total)
    return min(fit, total)


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def unroll_losses(cell: Cell, params: dict[str, Tensor], data: TaskData, task: Task, Ts: tuple[int, ...],
                  readout: str = "none", readout_l2: float = 1e-4, H: int = 1,
                  block_elems: int | None = None) -> Tensor:
    """The loss of every member at every T, from one unroll: (len(Ts), P).

    params  name -> (P or 1, *shape), on the device and in the dtype of the computation
    readout "none" (loss on the state: identity tasks), "fixed" (out_w, out_b from params) or
            "optimal" (the ridge-regularised best readout, fitted per member and T)
    On the CPU the population is run in blocks of about ``block_elems`` state elements
    (P_block * N * H), so that a block's state stays in cache through all T.
    """
    P = max(v.shape[0] for v in params.values())
    device = next(iter(params.values())).device
    if block_elems is None:
        block_elems = CPU_BLOCK_ELEMS if device.type == "cpu" else P * data.n * H
    block = max(1, block_elems // (data.n * H))
    if block >= P:
        return _unroll_block(cell, params, data, task, Ts, readout, readout_l2, H)
    parts = []
    for start, stop in flat_chunks(P, block):
        sub = {k: v[start:stop] if v.shape[0] == P else v for k, v in params.items()}
        parts.append(_unroll_block(cell, sub, data, task, Ts, readout, readout_l2, H))
    return torch.cat(parts, dim=1)


def _unroll_block(cell, params, data, task, Ts, readout, readout_l2, H):
    P = max(v.shape[0] for v in params.values())
    state = cell.initial_state(params, data.n, H, data.h0)  # (1, N, H) each
    ref = next(iter(params.values()))
    losses = torch.empty(len(Ts), P, dtype=ref.dtype, device=ref.device)
    windows = {k: (int(data.ends[T].min()), int(data.ends[T].max())) for k, T in enumerate(Ts)}
    captured: dict[int, Tensor] = {}
    for t in range(1, data.steps + 1):
        x = None if data.inputs is None else data.inputs[t - 1]  # (N, D)
        state = cell.step(params, state, x)
        for k, (lo, hi) in windows.items():
            if not lo <= t <= hi:
                continue
            out = cell.output(state).expand(P, -1, -1)  # (P, N, H)
            if lo == hi:
                y_T = out
            else:  # sequences of different lengths: keep each one's output at its own end
                buf = captured.setdefault(k, out.new_zeros(P, data.n, H))
                ends_here = data.ends[Ts[k]] == t  # (N,)
                buf[:, ends_here] = out[:, ends_here]
                if t < hi:
                    continue
                y_T = captured.pop(k)
            losses[k] = readout_loss(task, y_T, data.targets[Ts[k]], params, readout, readout_l2)
    return losses


def readout_loss(task: Task, y: Tensor, target: Tensor, params: dict[str, Tensor], readout: str,
                 readout_l2: float) -> Tensor:
    """The task's loss for outputs y (P, N, H) -> (P,)."""
    if readout == "none":
        return identity_loss(y, target, task.loss_scale)
    if readout == "optimal":
        out_w, out_b = fit_logistic_readout(y, target, readout_l2)
        return logistic_loss(y.to(torch.float64), out_w, out_b, target.to(torch.float64)).to(y.dtype)
    P = y.shape[0]
    return logistic_loss(y, params["out_w"].expand(P, -1), params["out_b"].expand(P, -1), target)


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
