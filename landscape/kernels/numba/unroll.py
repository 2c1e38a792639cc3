"""The fused CPU unroll of a one-unit cell, generated from the cell's own ``step`` and compiled by numba.

``fused_kernel(cell, D, dtype)`` traces ``cell.step`` into a scalar program (``kernels.trace``),
writes it as a numba module (``codegen``) into the kernel cache and imports it
(``runtime.load_module``; numba's on-disk cache then makes a second process start warm), checks it
against ``cell.step`` on random inputs (``runtime.self_check``), and returns a ``FusedKernel``, or
None where anything is unsupported: H > 1 is the caller's business, but input sizes above one,
steps that are not elementwise over (member, sequence), dtypes other than float32/64, numba
missing, or a kernel that disagrees with ``cell.step`` (``why_not(cell, D, dtype)`` says which).
The wide loop is compiled and checked when the kernel is built; the lanes loop (few sequences) when
it is first needed, the wide loop standing in for it if its check fails. Whether fused kernels run
at all ($LANDSCAPE_FAST) is the dispatch's business (``landscape.kernels``).

``FusedKernel.outputs(params, x, ends, h0)`` runs every (member, sequence) through all the steps
with its state in L1, the parameters in registers, and one pass per step; it returns the cell's
output at each requested end, (K, P, N). The population is split over worker threads, each running
a GIL-free kernel on its share (``runtime.run_split``: all the cores this process may use, by default).

Cache files: ``cell_<key>.py``, key a hash of the generated source and of ``mathfn.py``, with
numba's compiled code in its __pycache__.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ...lazy import torch
from .. import runtime
from . import available

if TYPE_CHECKING:
    from torch import Tensor

WIDE_MIN_N = 32  # sequences from which run_wide (parameters in registers) beats run_lanes
WIDE_BLOCK = 1024  # run_wide: sequences per block (1024 x 8 bytes x states: a few KiB of L1)
LANE_BLOCK = 512  # run_lanes: (member, sequence) pairs per block
DTYPE_NAMES = ("float32", "float64")  # the dtypes a kernel computes in


def dtype_name(dtype) -> str:
    """'float32' or 'float64' for a torch or numpy dtype (or its name); anything else as its name."""
    return str(dtype).removeprefix("torch.")


# ---------------------------------------------------------------------------------------------
# the kernel


class CompiledUnroll:
    """A generated unroll module and what running it needs, on numpy arrays, without torch: the
    parameter names in the module's column order, each state's initial value (None: h0), the input
    size D and the dtype. ``FusedKernel`` is one built from a traced cell (and checked); a grid's
    recipe (``landscape.recipe``) loads one from the kernel cache."""

    def __init__(self, module, params, init, D: int, dtype, key: str, path: Path, modes=("wide",)):
        self.module, self.params, self.init, self.D = module, tuple(params), tuple(init), D
        self.np_dtype = np.dtype(dtype_name(dtype))
        self.key, self.path, self.modes = key, path, tuple(modes)

    def usable(self, mode: str) -> bool:
        """Whether this loop order may run: ``modes``, the loop orders that passed their self-check
        in the process that built the kernel."""
        return mode in self.modes

    def prepare(self, x, ends, h0: float) -> Inputs:
        """What ``run_arrays`` needs besides the parameters, for one set of data (reused over blocks
        of members): the input channels, the ends and their due steps, the initial state.

        x     (T, N) the single input channel, or None (D = 0); ends K (N,) integer arrays: the
        1-based step at which each sequence of output k ends; h0 the initial value of every state
        unit (a cell's own constant initial state is kept). numpy arrays or CPU torch tensors."""
        dtype = self.np_dtype
        ends_a = np.ascontiguousarray(np.stack([np.asarray(e).reshape(-1) for e in ends]).astype(np.int64))  # (K, N)
        K, N = ends_a.shape
        if (x is None) != (self.D == 0):
            raise ValueError(f"the kernel was built for D={self.D}; x is {'None' if x is None else 'given'}")
        if (ends_a < 1).any():
            raise ValueError("every end must be >= 1")
        steps = int(ends_a.max()) if ends_a.size else 0
        if x is not None:
            x = np.asarray(x)
            if x.ndim != 2 or x.shape[1] != N or x.shape[0] < steps:
                raise ValueError(f"x must be (T >= {steps}, N = {N}); got {tuple(x.shape)}")
        C = self.module.N_CHANNELS
        if x is None:
            xs = np.zeros((max(C, 1), 1, 1), dtype=dtype)
        else:
            xs = np.empty((C, steps, N), dtype=dtype)
            xs[0] = x[:steps]  # cast to the kernel's dtype (round to nearest, as torch's .to)
            if C > 1:
                self.module.derive(xs)
        init = np.array([float(h0) if v is None else float(v) for v in self.init] or [0.0], dtype=dtype)
        kptr, klist = _due(ends_a, steps)
        return Inputs(xs, ends_a, kptr, klist, steps, init)

    def pack(self, params: dict) -> np.ndarray:
        """The members' parameters as the module takes them: (G, P) in the kernel's dtype, G the
        kernel's parameters in order; params name -> (P or 1, *shape) arrays (or CPU tensors)."""
        missing = [k for k in self.params if k not in params]
        if missing:
            raise KeyError(f"parameter {missing[0]!r} missing (the kernel takes {', '.join(self.params)})")
        cols = [np.asarray(params[k]) for k in self.params]
        P = max((c.shape[0] for c in cols), default=1)
        if not cols:
            return np.zeros((1, P), dtype=self.np_dtype)
        return np.stack([np.broadcast_to(c.reshape(c.shape[0]).astype(self.np_dtype, copy=False), (P,)) for c in cols])

    def run_arrays(self, packed: np.ndarray, inputs: Inputs, threads: int | None = None, mode: str | None = None,
                   out: np.ndarray | None = None) -> np.ndarray:
        """The outputs at each requested end, (K, P, N), for packed parameters (G, P) (``pack``)
        and prepared inputs; out: an optional contiguous (K, P, N) array of the kernel's dtype."""
        dtype = self.np_dtype
        if mode not in (None, "wide", "lanes"):
            raise ValueError(f"unknown mode {mode!r}; choose from: wide, lanes")
        P = packed.shape[1]
        K, N = inputs.ends.shape
        if out is None:
            out = np.empty((K, P, N), dtype=dtype)
        elif out.shape != (K, P, N) or out.dtype != dtype or not out.flags.c_contiguous:
            raise ValueError(f"out must be a contiguous {dtype} array of shape {(K, P, N)}")
        if P == 0 or N == 0 or K == 0:
            return out
        if mode is None:
            mode = "wide" if N >= WIDE_MIN_N or not self.usable("lanes") else "lanes"
        args = (np.ascontiguousarray(packed, dtype=dtype), inputs.xs, inputs.init, inputs.ends, inputs.kptr,
                inputs.klist, inputs.steps, out)
        fn = self.module.run_wide if mode == "wide" else self.module.run_lanes
        total = P if mode == "wide" else P * N
        unit = 1 if mode == "wide" else LANE_BLOCK
        per = max(1, N) if mode == "wide" else 1  # pairs per unit of the range
        runtime.run_split(fn, args, total, unit, WIDE_BLOCK if mode == "wide" else LANE_BLOCK, threads, per)
        return out


class FusedKernel(CompiledUnroll):
    """The generated unroll of one cell, input size and dtype, built from its traced step."""

    def __init__(self, cell, D: int, dtype, program, module, key: str, path: Path):
        super().__init__(module, program.params, program.init, D, dtype, key, path)
        self.cell, self.dtype, self.program = cell, dtype, program
        self.checked: dict[str, str | None] = {}  # mode -> None (agrees with cell.step) or what differs
        self._lock = threading.Lock()

    def usable(self, mode: str) -> bool:
        """Whether this loop order passed its self-check (run on first use: it compiles the loop)."""
        with self._lock:
            if mode not in self.checked:
                try:
                    self.checked[mode] = runtime.self_check(self, modes=(mode,))
                except Exception as err:  # pragma: no cover - a compile failure of the generated code
                    self.checked[mode] = f"{type(err).__name__}: {err}"
            return self.checked[mode] is None

    def __repr__(self):
        return f"FusedKernel({self.cell.describe()}, D={self.D}, {self.dtype}, {self.path.name})"

    def outputs(self, params: dict[str, Tensor], x: Tensor | None, ends: list[Tensor], h0: float,
                threads: int | None = None, mode: str | None = None, out: Tensor | None = None) -> Tensor:
        """The cell's output at each sequence's end, for each of K requested lengths: (K, P, N).

        params  name -> (P or 1, *shape) on the CPU (float32 or float64: cast to the kernel's dtype)
        x       (T, N) the single input channel, or None (D = 0)
        ends    K tensors (N,) int64: the 1-based step at which each sequence of output k ends
        h0      the initial value of every state unit (a cell's own constant initial state is kept)
        threads worker threads (default: every core this process may use); mode 'wide' or 'lanes'
                to force a loop order (default: by N); out an optional (K, P, N) tensor to write
        """
        return self.run(params, self.prepare(x, ends, h0), threads, mode, out)

    def run(self, params: dict[str, Tensor], inputs: Inputs, threads: int | None = None, mode: str | None = None,
            out: Tensor | None = None) -> Tensor:
        """``outputs`` on prepared inputs, as a torch tensor (``run_arrays`` on the packed parameters)."""
        packed = self.pack(params)
        K, N = inputs.ends.shape
        if out is None:
            out = torch.empty(K, packed.shape[1], N, dtype=self.dtype)
        elif out.shape != (K, packed.shape[1], N) or out.dtype != self.dtype or not out.is_contiguous():
            raise ValueError(f"out must be a contiguous {self.dtype} tensor of shape {(K, packed.shape[1], N)}")
        self.run_arrays(packed, inputs, threads, mode, out.numpy())
        return out


@dataclass(frozen=True)
class Inputs:
    """A kernel's data, numpy arrays in the kernel's dtype: input channels xs (C, T, N) (channel 0
    the input, the others derived from it), ends (K, N) int64, the outputs due after each step (CSR
    kptr, klist), the steps to run, and the initial value of each state."""

    xs: np.ndarray
    ends: np.ndarray
    kptr: np.ndarray
    klist: np.ndarray
    steps: int
    init: np.ndarray


def _due(ends: np.ndarray, steps: int):
    """CSR of the outputs due after each step t = 0..steps-1 (0-based: step t + 1 has ended)."""
    per_t = [[] for _ in range(steps)]
    for k in range(ends.shape[0]):
        for t in np.unique(ends[k]).tolist():
            per_t[t - 1].append(k)
    kptr = np.zeros(steps + 1, dtype=np.int64)
    kptr[1:] = np.cumsum([len(v) for v in per_t])
    klist = np.array([k for v in per_t for k in v] or [0], dtype=np.int64)
    return kptr, klist


# ---------------------------------------------------------------------------------------------
# building


def fused_kernel(cell, D: int, dtype: torch.dtype, math_class: str = "exact") -> FusedKernel | None:
    """The fused kernel of this cell for input size D (0 or 1) and dtype, or None where it does not
    apply (see the module docstring). Built once per (cell, D, dtype, math_class) in a process.
    math_class: 'exact' (default) or the opt-in 'fast' (float32's sigmoid as 1/2 + tanh(x/2)/2,
    ``mathfn.sigmoid32fast``: different numbers, a different kernel and cache key)."""
    if not available() or dtype_name(dtype) not in DTYPE_NAMES or D not in (0, 1):
        return None
    return _BUILDS.get(cell, D, dtype, math_class)


def _load(source: str):
    """(module, path) of generated source, from the kernel cache (``runtime.load_module``)."""
    from .codegen import source_key

    key = source_key(source)
    return runtime.load_module(source, f"cell_{key}", f"landscape_kernel_{key}")


def _staged_is_single(source: str, single: str, module, program, dtype) -> bool:
    """``_same_bits`` of the staged and the single-loop module of one program, compared once per
    pair of sources and kept in the kernel cache (``runtime.read_note``): a later process loads
    only the module it runs."""
    from .codegen import source_key

    name = f"same_{source_key(source)}_{source_key(single)}"
    note = runtime.read_note(name)
    if note is None or not isinstance(note.get("same"), bool):
        note = {"same": _same_bits(module, _load(single)[0], program, dtype)}
        runtime.write_note(name, note)
    return note["same"]


def _same_bits(staged, single, program, dtype: torch.dtype) -> bool:
    """Whether two modules of one program (run_wide's step staged in passes, and as one loop) give
    the same bits from run_wide on random inputs: parameters N(0, 2^2) with one member at +inf and
    one at NaN, random inputs and ends. A different FMA contraction shows in most values. (run_lanes
    is one loop in both: it compiles when first used, as before.)"""
    rng = np.random.default_rng(20261207)
    npd = np.dtype(dtype_name(dtype))
    P, N, T = 5, 37, 9
    params = (2.0 * rng.standard_normal((max(1, len(program.params)), P))).astype(npd)
    params[:, 0], params[:, 1] = np.inf, np.nan
    xs = np.zeros((max(1, staged.N_CHANNELS), T, N), npd)  # channel 0 the input (unread where D = 0)
    xs[0] = 2.0 * rng.standard_normal((T, N))
    staged.derive(xs)
    init = np.array([0.3 if v is None else v for v in program.init] or [0.0], npd)
    ends = rng.integers(1, T + 1, (2, N)).astype(np.int64)
    kptr, klist = _due(ends, T)
    got = []
    for module in (staged, single):
        out = np.zeros((2, P, N), npd)
        module.run_wide(params, xs, init, ends, kptr, klist, T, out, 0, P, 16)
        got.append(out.view(np.uint8))
    return np.array_equal(*got)


def why_not(cell, D: int, dtype: torch.dtype, math_class: str = "exact") -> str | None:
    """Why ``fused_kernel`` gave None for these arguments (None when it did not)."""
    return _BUILDS.why(cell, D, dtype, math_class)


def _build(cell, D, dtype, math_class="exact") -> FusedKernel:
    from ..trace import trace_cell
    from .codegen import generate, source_key

    def made():  # (program, the staged source, the single loop's)
        program = trace_cell(cell, D, dtype)
        return program, generate(program, dtype, math_class), generate(program, dtype, math_class, staged=False)

    def load(made):
        program, source, single = made
        module, path = _load(source)
        if source != single and not _staged_is_single(source, single, module, program, dtype):
            source = single  # the staged step's FMAs differ from the single loop's: keep its numbers
            module, path = _load(source)
        return FusedKernel(cell, D, dtype, program, module, source_key(source), path)

    def check(kernel):  # run_lanes is checked when first used (it compiles then)
        return None if kernel.usable("wide") else kernel.checked["wide"]

    return runtime.build_checked(made, load, check)


_BUILDS = runtime.KernelBuilds(_build, lambda cell, D, dtype, math_class="exact": (cell.describe(), D, str(dtype)))
