"""The engine: one batched unroll of a population of parameter sets, the loss at every T.

P population members (grid points or models) x N sequences x H units advance together; the loss
at each requested T is read off as the unroll passes T (a sequence of length T is the prefix of
the longest one). The population is split into chunks sized from a memory budget (``landscape.plan``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import math

from .lazy import torch

from .cells import Cell
from .errors import LandscapeError
from .kernels.cpu import Buffers, cpu_stepper
from .problem import Problem
from .tasks import TaskData

if TYPE_CHECKING:
    from torch import Tensor

CPU_BLOCK_ELEMS = 1 << 15  # plain path: state elements per CPU block (a step's temporaries stay small)
CPU_STEP_BLOCK_BYTES = 1 << 20  # in-place path: bytes of a block's work arrays, inside a 2 MiB L2
MIN_GROUP_ELEMS = 1 << 15  # in-place path: the smallest block (members x sequences) worth grouping


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
                  block_elems: int | None = None, fused: bool = True) -> Tensor:
    """The loss of every member at every T, from one unroll: (len(Ts), P).

    params  name -> (P or 1, *shape), on the device and in the dtype of the computation
    fused   False: skip the fused CPU kernels (the torch paths, for comparisons and benchmarks)
    problem the resolved model; its readout says how the loss is taken: on the output (identity
            tasks), through the fixed readout out_w, out_b of params, or through the optimal one
            (the ridge-regularised best readout, fitted per member and T)

    Four paths give the same numbers up to float rounding (1e-12 relative in float64):

    - CPU, H = 1, a cell the fused generator covers (every built-in one-unit cell and a user's own
      cell written as a pure step; ``kernels.fast_path``): one compiled pass per step with the
      state in registers or L1, the members' blocks on every core (``kernels.set_threads``), the
      loss and the optimal fit in fused kernels too. Turned off by LANDSCAPE_FAST=0.

    - CUDA, H = 1, a cell with a Triton kernel (hand-written for srnn, pascanu, lstm, gru,
      generated from the traced step for every other cell the tracer accepts) and Triton
      installed: one kernel runs all T with the state in registers and writes the outputs at the
      requested T (``landscape.kernels.fused_outputs``); the loss is then taken in torch.
    - CPU, H = 1, a cell with an in-place step (srnn, pascanu, lstm, gru; ``kernels.cpu``): the
      population runs in blocks whose work arrays fit in cache (``CPU_STEP_BLOCK_BYTES``), each
      step a few in-place passes over preallocated buffers. Members sharing the parameters a
      stepper names in ``group_by`` are put in the same blocks, which saves a pass per step.
    - otherwise ``cell.step``, in blocks of about ``block_elems`` state elements on the CPU
      (``CPU_BLOCK_ELEMS``), the whole population at once on a GPU.

    With the optimal readout the outputs at each T are kept for the whole population and the
    readout is fitted over all of it at once (the fit is batched; blocks would be too small).
    """
    cell, H, readout = problem.cell, problem.H, problem.readout
    P = _members(params)
    ref = next(iter(params.values()))
    device = ref.device
    if device.type == "cuda":
        outs = _fused_outputs(cell, params, data, Ts, H)
        if outs is not None:  # (K, P, N)
            return torch.stack([readout.loss(outs[k].unsqueeze(-1), data.targets[T], params)
                                for k, T in enumerate(Ts)])
    if device.type == "cpu" and fused:
        from .kernels.fast_path import losses as fused_losses

        fused = fused_losses(problem, params, data, Ts)  # None where no fused kernel applies
        if fused is not None:
            return fused
    losses = torch.empty(len(Ts), P, dtype=ref.dtype, device=device)
    kept = ref.new_empty(len(Ts), P, data.n, H) if readout.optimal else None  # outputs for the fit
    D = 0 if data.inputs is None else data.inputs.shape[-1]
    grad = torch.is_grad_enabled() and any(v.requires_grad for v in params.values())
    stepper = None if device.type != "cpu" or grad else cpu_stepper(cell, H, D)
    work = None  # scratch for the loss of a block, reused
    pool = Buffers()  # the steppers' arrays, reused from block to block
    for idx, sub in _blocks(params, P, data.n, H, ref.element_size(), stepper, block_elems, device):
        for k, y in _block_outputs(cell, sub, data, Ts, H, stepper, pool):  # y (P_block, N, H)
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


def _fused_outputs(cell, params, data, Ts, H):
    """The fused CUDA kernel's outputs (K, P, N), or None where it does not apply."""
    from .kernels import fused_outputs

    return fused_outputs(cell, params, data, Ts, H)


def block_plan(cell: Cell, params: dict[str, Tensor], n: int, H: int, D: int,
               block_elems: int | None = None) -> list[int]:
    """The members of each block the engine runs these parameters in (for benchmarks and tests)."""
    ref = next(iter(params.values()))
    stepper = cpu_stepper(cell, H, D) if ref.device.type == "cpu" else None
    return [_size(idx, _members(params)) for idx, _ in
            _blocks(params, _members(params), n, H, ref.element_size(), stepper, block_elems, ref.device)]


def _size(idx, P: int) -> int:
    return len(range(P)[idx]) if isinstance(idx, slice) else int(idx.numel())


def _blocks(params, P, n, H, item, stepper, block_elems, device):
    """(index, params of the block) for each block: index a slice or a tensor of member indices."""
    if stepper is not None:
        block = (block_elems // (n * H) if block_elems is not None
                 else CPU_STEP_BLOCK_BYTES // (stepper.buffers * n * item))
    elif block_elems is not None:
        block = block_elems // (n * H)
    else:
        block = CPU_BLOCK_ELEMS // (n * H) if device.type == "cpu" else P
    block = max(1, block)
    group_by = stepper.group_by if stepper is not None and n > 1 else ()  # with N = 1 a pass is a pass
    # a grouped block saves one light pass per step; below ~32k values per block the per-call cost
    # of the ops (a few microseconds each) would eat that
    for idx, shared in _plan_blocks(params, P, block, group_by, min_run=math.ceil(MIN_GROUP_ELEMS / (n * H))):
        if isinstance(idx, slice):
            if idx == slice(0, P):
                yield idx, params
            else:
                yield idx, {k: v[idx] if v.shape[0] == P else v for k, v in params.items()}
        else:
            yield idx, {k: (v[idx[:1]] if k in shared else v[idx]) if v.shape[0] == P else v
                        for k, v in params.items()}


def _plan_blocks(params, P, block, group_by, min_run=2):
    """[(index, shared names)]: blocks of at most ``block`` members. Where parameters named in
    ``group_by`` vary over the population, members that share their values are put together (runs
    of at least ``min_run`` members and a quarter block; the rest are mixed blocks, ``shared``
    empty)."""
    varying = tuple(k for k in group_by if k in params and params[k].shape[0] == P) if P > 1 else ()
    if not varying:
        return [(slice(s, e), ()) for s, e in flat_chunks(P, block)]
    inverse = None  # (P,) the id of each member's values of the ``varying`` parameters
    for name in varying:
        for column in params[name].reshape(P, -1).unbind(1):
            _, ids = torch.unique(column, return_inverse=True)
            inverse = ids if inverse is None else torch.unique(inverse * (int(ids.max()) + 1) + ids,
                                                               return_inverse=True)[1]
    counts = torch.bincount(inverse)
    min_run = max(min_run, block // 4)
    if int(counts.max()) < min_run:
        return [(slice(s, e), ()) for s, e in flat_chunks(P, block)]
    order = torch.argsort(inverse, stable=True)
    out, rest, start = [], [], 0
    for count in counts.tolist():
        members = order[start:start + count]
        start += count
        if count < min_run:
            rest.append(members)
            continue
        size = math.ceil(count / math.ceil(count / block))  # near-equal blocks
        out.extend((members[s:s + size], varying) for s in range(0, count, size))
    if rest:
        mixed = torch.cat(rest)
        out.extend((mixed[s:s + block], ()) for s in range(0, len(mixed), block))
    return out


def _block_outputs(cell, params, data, Ts, H, stepper=None, pool=None):
    """Yield (k, y) as the unroll passes each requested T: y (P, N, H) the outputs at T_k (each
    sequence's at its own end when lengths vary). y may be the live state: use it before resuming."""
    P = _members(params)
    if stepper is not None:
        x = None if data.inputs is None else data.inputs[..., 0]  # (T, N)
        run = stepper(params, x, data.n, data.h0, pool)

        def advance(t):
            run.step(t - 1)

        def output():
            return run.output().unsqueeze(-1)  # (P, N, 1)
    else:
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
