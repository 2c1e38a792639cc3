"""The memory plan: every estimate of the bytes a computation needs, and the chunk sizes they give.

The grid (``plan_grid_chunk``: grid points per chunk from the unroll, the gradient fields, the
dynamics fields (``dynamics_bytes_per_member``), the task's data and the file writer's buffers), the point analysis (``check_points_memory``) and the
gradients' passes (``gradient_bytes_per_member``, ``grad_norm_bytes_per_member``,
``hessian_bytes_per_member``, ``jacobian_bytes_per_member``) are sized here, against a budget in
bytes (``memory_budget``; ``parse_bytes`` reads '512M', ``human_bytes`` writes '1.5 GiB').
Every estimate is conservative: a chunk that fits its estimate fits the machine. The plan knows
the model through its arguments alone (``problem``: a resolved model, ``problem.Problem``;
``cell``: a ``cells.Cell``) and imports nothing of the computations it sizes, so it sits on the
ground floor beside ``settings``, which reads $LANDSCAPE_MEMORY with ``parse_bytes``.
"""
from __future__ import annotations

import functools
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from .errors import LandscapeError
from .lazy import torch

DEFAULT_BUDGET_CPU = 1 << 30  # bytes a chunk may use on the CPU
CUDA_BUDGET_FRACTION = 0.5  # of the free GPU memory

def memory_budget(device: torch.device, budget: int | None = None) -> int:
    """Bytes a chunk may use: the given budget (the caller's --memory, else $LANDSCAPE_MEMORY:
    ``settings.memory()``), or a default (1 GiB on the CPU, half the free memory on a GPU)."""
    if budget is not None:
        return int(budget)
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


def bytes_per_member(problem, n: int, dtype: torch.dtype, n_T: int, grads_T: int = 0) -> int:
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


def data_bytes(problem, n: int, dtype: torch.dtype, steps: int, n_T: int, device) -> tuple[int, int]:
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


# Memory of the reverse passes, in units of one (P, N, H) state tensor per step: the forward graph's
# saved tensors are counted by running one step under saved_tensors_hooks (``graph_units_per_step``);
# peak RSS measured for srnn, lstm, gru and mut1 (N = 500, T = 200) was 2.8-4.3 times that count for
# the Hessian pass (the create_graph backward keeps a second, larger graph) and 1-1.5 times for the
# per-timestep norms. The factors below leave a margin over those measurements.
HESSIAN_FACTOR = 8
NORM_FACTOR = 3


@functools.lru_cache(maxsize=None)
def graph_units_per_step(cell, H: int, D: int) -> float:
    """How many (P, N, H)-sized tensors the autograd graph of one step of ``cell`` keeps (saved
    tensors plus the new state), counted on a small probe with saved_tensors_hooks."""
    P, N = 2, 16
    params = {k: v.expand(P, *v.shape).clone().requires_grad_(True)
              for k, v in cell.default_params(H, D).items()}
    state = tuple(torch.full((P, N, H), 0.1, dtype=torch.float64, requires_grad=True) for _ in cell.state_names)
    x = torch.zeros(N, D, dtype=torch.float64) if D else None
    seen = {}

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        new = cell.step(params, state, x)
    total = sum(seen.values()) + sum(s.numel() * 8 for s in new)
    return total / (P * N * H * 8)


def grad_norm_bytes_per_member(problem, n: int, dtype: torch.dtype, T: int, method: str) -> int:
    """Memory one member needs for ``gradients.grad_norms_t`` at length T by ``method``, scalar or
    autograd (bytes, a conservative estimate)."""
    cell, H, D = problem.cell, problem.H, problem.D
    item = torch.finfo(dtype).bits // 8
    per_state = n * H * item
    k = len(cell.state_names)
    if method == "scalar":  # S, Z, end state, g, and a step's temporaries; the (P, T) output
        return n * 8 * 24 + per_state * 32 + 8 * T
    units = NORM_FACTOR * graph_units_per_step(cell, H, D) + k  # graph + retained gradients
    return int(per_state * units * T) + per_state * 20 * k + 8 * k * T


def hessian_bytes_per_member(problem, n: int, dtype: torch.dtype, T_max: int) -> int:
    """Memory one member needs for ``loss_grad_hessian`` up to T_max (bytes, a conservative estimate)."""
    cell, H, D, optimal_readout = problem.cell, problem.H, problem.D, problem.readout.optimal
    item = torch.finfo(dtype).bits // 8
    per_state = n * H * item
    k = len(cell.state_names)
    graph = per_state * HESSIAN_FACTOR * graph_units_per_step(cell, H, D) * T_max
    fit = n * (H + 1) * 8 * 60 if optimal_readout else 0  # the fit and the Newton steps' graphs
    return int(graph) + per_state * 20 * k + fit


def jacobian_bytes_per_member(problem, n: int, T: int) -> int:
    """Memory one member needs for ``jacobian_factors`` (float64, bytes): its arrays, twice while
    they are stacked, and a factor 3 for the allocator (peak RSS measured 2.5-4.2 times the arrays)."""
    cell, H = problem.cell, problem.H
    lstm = "c" in cell.state_names
    per_step = H * H * (2 if lstm else 1) + H * (len(cell.gates) + (1 if lstm else 0)) + 2
    return 6 * 8 * n * T * per_step + 8 * n * H * H * 20


def gradient_bytes_per_member(problem, n: int, Ts: tuple[int, ...], dtype: torch.dtype) -> int:
    """Memory one grid point needs in ``gradient_fields`` (bytes; the passes run one after another,
    so the larger one counts)."""
    steps = problem.task.steps(max(Ts))
    return max(hessian_bytes_per_member(problem, n, dtype, steps),
               grad_norm_bytes_per_member(problem, n, dtype, steps, "autograd"))


# Memory of the dynamics map and the Lyapunov exponents (``dynamics_map``) in units of their
# arrays: each Jacobian pass runs one step on S copies of every row's state (a graph of
# ``graph_units_per_step`` (H,)-tensors per copy) and keeps an (S, S) Jacobian; a margin for the
# allocator and the temporaries of Newton's step, as the reverse passes above. Measured against
# the peak resident set of ``grid_fields`` on one chunk (``python -m benchmarks.dynamics_memory``,
# latch, T = 10, 50). With the fused Jacobian kernel (``kernels.numba.jacobian``) the resident peak
# grew (numba's buffers, not Python's: tracemalloc sees 0.1 MiB): at a factor of 4, estimate /
# measured was 1.15 to 1.17 for srnn H = 1 (64 and 256 points), 1.03 for gru H = 1 (64) and 3.7 for
# lstm H = 2 (64) on 2026-12-07; hence 5.
DYNAMICS_FACTOR = 5


def dynamics_bytes_per_member(problem, options, sequences: int) -> int:
    """Memory one grid point needs for ``dynamics_map.grid_fields`` (float64, bytes, conservative):
    Newton's rows (the most of any period: 4 n_starts, and the simulation's seeds and ends), each
    with a Jacobian pass and its cycle of up to K points, and lambda_T's pass over ``sequences``
    sequences (``lyapunov`` blocks its members, so this is an upper bound). options: the
    ``dynamics_map.DynamicsOptions``."""
    cell, H, D = problem.cell, problem.H, problem.D
    S = H * len(cell.state_names)
    per_copy = 8 * (graph_units_per_step(cell, H, D) * H + 2 * S)  # one copy's graph, its Jacobian row
    n = int(options.n_starts) if options.n_starts is not None else min(64, 8 * S)
    rows = 4 * n + 2 * int(options.n_simulate)
    newton = rows * S * per_copy + rows * 8 * S * (int(options.max_period) + 2 * S + 4)
    return int(DYNAMICS_FACTOR * (newton + sequences * S * per_copy))


@dataclass(frozen=True)
class ChunkNeeds:
    """What a grid's chunks need besides their points (``grid_chunk_needs``): bytes per grid point
    (member), the task's data at its peak and as held for the whole run, and the words that name
    the data in a refusal. Plain numbers: a grid's recipe (``landscape.recipe``) keeps them."""

    per_member: int
    data_peak: int
    data_held: int
    what: str


def grid_chunk_needs(r, device: torch.device) -> ChunkNeeds:
    """The bytes a chunk of the resolved grid ``r`` (``resolved.ResolvedGrid``) needs on ``device``:
    a point needs the unroll, the --grads passes, the --dynamics map and the values kept for the
    file; once for all chunks, the task's data."""
    problem, dtype, n_T = r.problem, r.torch_dtype, len(r.Ts)
    steps = problem.task.steps(max(r.Ts))
    per_member = bytes_per_member(problem, r.n, dtype, n_T)
    if r.spec.grads:
        per_member += gradient_bytes_per_member(problem, r.n, r.Ts, dtype)
    if r.spec.dynamics:
        per_member += dynamics_bytes_per_member(problem, r.dynamics_options, r.dynamics_sequences)
    per_member += 3 * 8 * values_per_point(r)  # the chunk's values: as computed, as float64 numpy, a slab copy
    peak, held = data_bytes(problem, r.n, dtype, steps, n_T, device)
    what = (f"{steps} steps x {r.n} sequences x {problem.D} input{'s' if problem.D > 1 else ''}, "
            if problem.D else "") + "and the file writer's buffers"
    return ChunkNeeds(per_member, peak, held, what)


def plan_grid_chunk(r, device, memory: int | None = None, chunk_size: int | None = None,
                    writer_bytes: int = 0, needs: ChunkNeeds | None = None) -> int:
    """Grid points per chunk of the resolved grid ``r`` on ``device``: chunk_size if it fits, else
    the most that fit the budget ``memory`` (bytes; None: the device's default). needs: the
    chunk's needs (default ``grid_chunk_needs(r, device)``); once for all chunks come the task's
    data and (on the CPU) the file writer's buffers, ``writer_bytes`` (``store.STORE_BYTES``)."""
    needs = needs or grid_chunk_needs(r, device)
    budget = memory_budget(device, memory)
    return plan_chunk(r.x.num * r.y.num, needs.per_member, budget, chunk_size,
                      data=(needs.data_peak, needs.data_held + (writer_bytes if device.type == "cpu" else 0)),
                      what=needs.what)


def values_per_point(r) -> int:
    """The float64 values a surface file of the resolved grid ``r`` holds per grid point: the loss
    at each T and, with --grads, grad and hessian_eigvals (2 each per T) and the per-timestep norms
    (grad_norm_t and, for an LSTM, grad_norm_c_t), counted at the task's steps for the largest T (an
    upper bound of ``gradients.grad_norm_steps``); with --dynamics, the counts (6, and 2 per period)
    and lyapunov at each T."""
    n_T = len(r.Ts)
    values = n_T
    if r.spec.grads:
        values += 4 * n_T + 2 * r.problem.task.steps(max(r.Ts))
    if r.spec.dynamics:
        values += 6 + 2 * r.dynamics_options.max_period + n_T
    return values


def surface_bytes(r) -> int:
    """The bytes of the values of a surface file of the resolved grid ``r`` (the file is a little
    larger: its bookkeeping, and HDF5 chunks padded at the edges)."""
    return 8 * values_per_point(r) * r.x.num * r.y.num


# Peak memory of reading and verifying a whole surface (``store.load``), in units of its values:
# measured 1.5 (peak RSS, 1000 x 1000 points x 8 T: 61 MiB of loss, 90 MiB read); a margin over it.
SURFACE_READ_FACTOR = 2


def physical_memory() -> int:
    """Bytes of physical memory of this machine."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_surface_read(r, memory: int | None = None) -> None:
    """Refuse, before anything is computed, a grid whose surface would not fit in memory when it is
    read back whole at the end (``surface.grid`` returns the surface, verified; the cached one too):
    the budget given (--memory / $LANDSCAPE_MEMORY), else half the machine's physical memory (the
    chunks' default budget of 1 GiB bounds the work in flight, not the result). The read is in host
    memory on any device."""
    budget = int(memory) if memory is not None else physical_memory() // 2
    need = SURFACE_READ_FACTOR * surface_bytes(r)
    if need > budget:
        raise LandscapeError(
            f"the surface ({len(r.Ts)} T x {r.x.num} x {r.y.num} points{', with --grads fields' if r.spec.grads else ''}) "
            f"needs about {human_bytes(need)} to be read back and verified, over the memory budget of "
            f"{human_bytes(budget)}; raise --memory (or $LANDSCAPE_MEMORY), or split the grid into smaller "
            f"--x/--y ranges")


def check_disk(path, bytes_needed: int) -> None:
    """Refuse, before a file of ``bytes_needed`` bytes is preallocated at ``path``, when its file
    system has less free space than that (one line with both sizes)."""
    folder = Path(path).parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return  # a folder that cannot be asked: the write itself reports a failure
    if bytes_needed > free:
        raise LandscapeError(f"{path} needs about {human_bytes(bytes_needed)} but its file system has "
                             f"{human_bytes(free)} free; free some space or write it elsewhere (--out)")


def check_fixed_points_memory(problem, n_inputs: int, options, T: int, n: int, budget: int | None = None) -> None:
    """Refuse, before anything is allocated, a fixed-point search (``attractors.compute_fixed_points``:
    ``n_inputs`` inputs, ``options.n_visited + options.n_random`` starts each, the states visited by
    n sequences of length T) that would need more than ``budget`` bytes (None: the CPU's default;
    the caller passes $LANDSCAPE_MEMORY, ``settings.memory()``). Counted: the task's data; the visited states (T x n x S, float64, and
    two copies: the array returned and the starts drawn from it); per start, the Levenberg-Marquardt
    and Newton steps' S x S matrices (the Jacobian, its normal matrix, the solve's and the
    eigenvalues' work, complex: about 12) and about 40 state vectors."""
    budget = memory_budget(torch.device("cpu"), budget)
    S = problem.H * len(problem.cell.state_names)
    steps = problem.task.steps(int(T))
    data, _ = data_bytes(problem, n, torch.float64, steps, 1, torch.device("cpu"))
    visited = 3 * 8 * steps * n * S
    starts = n_inputs * (options.n_visited + options.n_random)
    search = starts * 8 * (12 * S * S + 40 * S)
    need = data + visited + search
    if need > budget:
        raise LandscapeError(
            f"the fixed-point search ({starts} starts over {n_inputs} input(s), states of {n} sequences of "
            f"T={T}, {S} state numbers) needs about {human_bytes(need)}, over the memory budget of "
            f"{human_bytes(budget)}; lower --starts, --T or --n (or raise $LANDSCAPE_MEMORY)")


def check_points_memory(problem, P: int, n: int, T: int, steps: int, dtype: torch.dtype, method: str,
                        budget: int) -> None:
    """Refuse, before anything is allocated, a point analysis (``points.analyse_points``: P points,
    n sequences of up to ``steps`` steps) whose per-timestep gradients (``method``: scalar or
    autograd), Jacobian factors and LSTM terms would need more than ``budget`` bytes."""
    item = torch.finfo(dtype).bits // 8
    lstm = "c" in problem.cell.state_names
    terms = 3 * 5 * 8 * n * steps * problem.H ** 2 if lstm else 0  # the four terms and their total, float64
    need = (steps * n * max(problem.D, 1) * (8 + item)  # the data, made in float64 then cast
            + P * (grad_norm_bytes_per_member(problem, n, dtype, steps, method)
                   + jacobian_bytes_per_member(problem, n, steps)
                   + bytes_per_member(problem, n, dtype, 1) + terms))
    if need > budget:
        raise LandscapeError(
            f"T={T} needs about {human_bytes(need)} for the per-timestep gradients and Jacobian factors "
            f"of {P} point(s) over {n} sequences, over the memory budget of {human_bytes(budget)}; lower "
            f"--T or --n, or raise --memory (or $LANDSCAPE_MEMORY)")


# Training (``train.population``) is not chunked: a population's whole step must fit. Its default
# budget is the machine's (the physical memory, or the free memory of the GPU), not a chunk's.
TRAIN_GRAPH_UNITS = 14  # state-sized tensors the autograd graph keeps per step and state (as ``bytes_per_member``)
ROW_BYTES = 2048  # a tidy result row as a Python dict (about 25 columns), before its parameter columns
ARRAY_HEADER_BYTES = 512  # a recorded array beside its numbers: numpy header and list slot, or the tensor it views


def training_budget(device: torch.device, budget: int | None = None) -> int:
    """Bytes a training run may use: the given budget (--memory / $LANDSCAPE_MEMORY), else the
    machine's physical memory on the CPU, the free memory of the GPU."""
    if budget is not None:
        return int(budget)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    return physical_memory()


def training_bytes(P: int, batch: int, n: int, data_sets: int, steps: int, D: int, H: int, states: int,
                   item: int, n_params: int, n_trainable: int, epochs: int, steps_per_epoch: int,
                   record_every: int, eval_elems: int) -> int:
    """A conservative estimate of the bytes a population's training needs (``train.population``):
    P members, each step a mini-batch of ``batch`` sequences of up to ``steps`` steps (D inputs, H
    units, ``states`` state tensors, ``item`` bytes a number); ``data_sets`` data sets of n rows;
    n_params (n_trainable) scalars per member; ``eval_elems`` state elements per evaluation chunk;
    ``record_every`` K, the recording interval in optimiser steps (``--record-steps``; 0: none).

    The data (the inputs in float64 while one data set is made, cast, side by side; targets and
    ends), the graph of one training step (every step of the unroll keeps its tensors), an
    evaluation chunk's unroll, the parameter history (E + 1) and, with record_every K, the
    parameters and metrics of the R = ceil(S / K) + 1 recorded steps of S = E x steps_per_epoch
    (0, K, 2K, ... and the last: ``train.population.recorded_steps``): at most n_trainable + 3 arrays
    a recorded step (one a trainable tensor; loss, gradient norm, clipping coefficient), each P
    numbers of 8 bytes held twice while stacked, plus the array's own header (numpy's, or the torch
    tensor's it views: ARRAY_HEADER_BYTES); the result's tidy rows."""
    data = steps * n * D * (3 * 8 + data_sets * item) + data_sets * n * 16 * 2
    graph = P * batch * H * item * states * TRAIN_GRAPH_UNITS * steps
    evaluation = min(eval_elems, P * n * H) * item * (2 * states + 12)
    history = 2 * 8 * (epochs + 1) * P * n_params
    recorded_count = -(-epochs * steps_per_epoch // record_every) + 1 if record_every else 0  # R
    recorded = recorded_count * (n_trainable + 3) * (2 * 8 * P + ARRAY_HEADER_BYTES)
    rows = (epochs + 1) * P * (ROW_BYTES + 100 * min(n_params, 64))
    return data + graph + evaluation + history + recorded + rows


def check_training_memory(need: int, budget: int, what: str) -> None:
    """Refuse, before anything is allocated, a training run that needs more than ``budget`` bytes."""
    if need > budget:
        raise LandscapeError(f"training {what} needs about {human_bytes(need)}, over the memory budget of "
                             f"{human_bytes(budget)}; lower --n, --repeats, the largest T or --batch (or without "
                             f"--record-steps), or raise $LANDSCAPE_MEMORY")


def check_run_file_memory(path, budget: int | None) -> None:
    """Refuse to read a training run file (``store.runs``: every array, and its rows parsed) whose
    contents would need more than the budget (default: the physical memory): about 12 times the
    file's size (the rows' JSON becomes Python dicts)."""
    need = 12 * os.path.getsize(path)
    limit = training_budget(torch.device("cpu"), budget)
    if need > limit:
        raise LandscapeError(f"reading the training run {path} needs about {human_bytes(need)}, over the memory "
                             f"budget of {human_bytes(limit)}; raise $LANDSCAPE_MEMORY or split the run")
