"""A fused CPU unroll for one-unit cells, generated from the cell's own ``step``.

``fused_kernel(cell, D, dtype)`` traces ``cell.step`` into a scalar program (``trace``), writes it
as a numba module (``codegen``) into the kernel cache, imports it (numba's on-disk cache then makes
a second process start warm), checks it against ``cell.step`` on random inputs, and returns a
``FusedKernel``, or None where anything is unsupported: H > 1 is the caller's business, but input
sizes above one, steps that are not elementwise over (member, sequence), dtypes other than
float32/64, numba missing, ``LANDSCAPE_FAST=0``, or a kernel that disagrees with ``cell.step``
(``why_not(cell, D, dtype)`` says which). The wide loop is compiled and checked when the kernel is
built; the lanes loop (few sequences) when it is first needed, the wide loop standing in for it
if its check fails.

``FusedKernel.outputs(params, x, ends, h0)`` runs every (member, sequence) through all the steps
with its state in L1, the parameters in registers, and one pass per step; it returns the cell's
output at each requested end, (K, P, N). The population is split over worker threads, each running
a GIL-free kernel on its share (all the cores this process may use, by default).

Cache folder: $LANDSCAPE_KERNELS (else ~/.cache/landscape/kernels): ``cell_<key>.py``, key a
hash of the generated source and of ``mathfn.py``, with numba's compiled code in its __pycache__.
"""
from __future__ import annotations

import functools
import importlib.util
import os
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

WIDE_MIN_N = 32  # sequences from which run_wide (parameters in registers) beats run_lanes
WIDE_BLOCK = 1024  # run_wide: sequences per block (1024 x 8 bytes x states: a few KiB of L1)
LANE_BLOCK = 512  # run_lanes: (member, sequence) pairs per block
MIN_PAIRS_PER_TASK = 1 << 15  # a thread's share below this is not worth a thread
DTYPES = (torch.float32, torch.float64)


def enabled() -> bool:
    """Whether the fused path may be used: numba importable and LANDSCAPE_FAST not 0."""
    if os.environ.get("LANDSCAPE_FAST", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    return _numba_ok()


@functools.lru_cache(maxsize=1)
def _numba_ok() -> bool:
    try:
        import numba  # noqa: F401
    except Exception:  # pragma: no cover - depends on the environment
        return False
    return True


THREADS: int | None = None  # kernels.set_threads: the worker threads (None: every core this process may use)


def default_threads() -> int:
    """The worker threads of a kernel call: ``THREADS`` when set, else the cores this process may run on."""
    if THREADS is not None:
        return THREADS
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


# ---------------------------------------------------------------------------------------------
# the kernel


class FusedKernel:
    """The generated unroll of one cell, input size and dtype."""

    def __init__(self, cell, D: int, dtype: torch.dtype, program, module, key: str, path: Path):
        self.cell, self.D, self.dtype = cell, D, dtype
        self.program, self.module, self.key, self.path = program, module, key, path
        self.params = program.params
        self.checked: dict[str, str | None] = {}  # mode -> None (agrees with cell.step) or what differs
        self._lock = threading.Lock()

    def usable(self, mode: str) -> bool:
        """Whether this loop order passed its self-check (run on first use: it compiles the loop)."""
        with self._lock:
            if mode not in self.checked:
                try:
                    self.checked[mode] = self_check(self, modes=(mode,))
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

    def prepare(self, x: Tensor | None, ends: list[Tensor], h0: float) -> Inputs:
        """What ``run`` needs besides the parameters, for one set of data (reused over blocks of
        members): the input channels, the ends and their due steps, the initial state."""
        dtype = self.dtype
        ends_t = torch.stack([e.reshape(-1).to(torch.int64) for e in ends]).contiguous()  # (K, N)
        K, N = ends_t.shape
        if (x is None) != (self.D == 0):
            raise ValueError(f"the kernel was built for D={self.D}; x is {'None' if x is None else 'given'}")
        if bool((ends_t < 1).any()):
            raise ValueError("every end must be >= 1")
        steps = int(ends_t.max()) if ends_t.numel() else 0
        if x is not None and (x.dim() != 2 or x.shape[1] != N or x.shape[0] < steps):
            raise ValueError(f"x must be (T >= {steps}, N = {N}); got {tuple(x.shape)}")
        C = self.module.N_CHANNELS
        if x is None:
            xs = torch.zeros(max(C, 1), 1, 1, dtype=dtype)
        else:
            xs = torch.empty(C, steps, N, dtype=dtype)
            xs[0] = x[:steps].to(dtype)
            if C > 1:
                self.module.derive(xs.numpy())
        init = torch.tensor([float(h0) if v is None else float(v) for v in self.program.init] or [0.0], dtype=dtype)
        kptr, klist = _due(ends_t, steps)
        return Inputs(xs, ends_t, kptr, klist, steps, init)

    def run(self, params: dict[str, Tensor], inputs: Inputs, threads: int | None = None, mode: str | None = None,
            out: Tensor | None = None) -> Tensor:
        """``outputs`` on prepared inputs."""
        dtype = self.dtype
        missing = [k for k in self.params if k not in params]
        if missing:
            raise KeyError(f"parameter {missing[0]!r} missing (the kernel takes {', '.join(self.params)})")
        if mode not in (None, "wide", "lanes"):
            raise ValueError(f"unknown mode {mode!r}; choose from: wide, lanes")
        P = max(params[k].shape[0] for k in self.params) if self.params else 1
        K, N = inputs.ends.shape
        cols = [params[k].reshape(params[k].shape[0]).to(dtype).expand(P) for k in self.params]
        packed = (torch.stack(cols) if cols else torch.zeros(1, P, dtype=dtype)).contiguous()  # (G, P)
        if out is None:
            out = torch.empty(K, P, N, dtype=dtype)
        elif out.shape != (K, P, N) or out.dtype != dtype or not out.is_contiguous():
            raise ValueError(f"out must be a contiguous {dtype} tensor of shape {(K, P, N)}")
        if P == 0 or N == 0 or K == 0:
            return out
        if mode is None:
            mode = "wide" if N >= WIDE_MIN_N or not self.usable("lanes") else "lanes"
        args = (packed.numpy(), inputs.xs.numpy(), inputs.init.numpy(), inputs.ends.numpy(), inputs.kptr,
                inputs.klist, inputs.steps, out.numpy())
        fn = self.module.run_wide if mode == "wide" else self.module.run_lanes
        total = P if mode == "wide" else P * N
        unit = 1 if mode == "wide" else LANE_BLOCK
        per = max(1, N) if mode == "wide" else 1  # pairs per unit of the range
        _run_split(fn, args, total, unit, WIDE_BLOCK if mode == "wide" else LANE_BLOCK,
                   threads or default_threads(), per)
        return out


@dataclass(frozen=True)
class Inputs:
    """A kernel's data: input channels (C, T, N) (channel 0 the input, the others derived from it),
    ends (K, N), the outputs due after each step (CSR kptr, klist), the steps to run, and the
    initial value of each state."""

    xs: Tensor
    ends: Tensor
    kptr: object
    klist: object
    steps: int
    init: Tensor


def _due(ends: Tensor, steps: int):
    """CSR of the outputs due after each step t = 0..steps-1 (0-based: step t + 1 has ended)."""
    import numpy as np

    per_t = [[] for _ in range(steps)]
    for k in range(ends.shape[0]):
        for t in torch.unique(ends[k]).tolist():
            per_t[t - 1].append(k)
    kptr = np.zeros(steps + 1, dtype=np.int64)
    kptr[1:] = np.cumsum([len(v) for v in per_t])
    klist = np.array([k for v in per_t for k in v] or [0], dtype=np.int64)
    return kptr, klist


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool(workers: int) -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL._max_workers < workers:
            if _POOL is not None:
                _POOL.shutdown(wait=False)
            _POOL = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="landscape-fused")
        return _POOL


def _run_split(fn, args, total: int, unit: int, nb: int, threads: int, pairs_per_item: int):
    """fn(*args, lo, hi, nb) over [0, total), in contiguous shares of whole units, on ``threads``
    GIL-free workers (the calling thread alone when one suffices)."""
    items = -(-total // unit)
    work = total * pairs_per_item
    threads = max(1, min(threads, items, max(1, work // MIN_PAIRS_PER_TASK)))
    if threads == 1:
        fn(*args, 0, total, nb)
        return
    pieces = min(items, 4 * threads)  # a few pieces per thread evens out unequal shares
    bounds = [min(total, round(items * i / pieces) * unit) for i in range(pieces + 1)]
    pool = _pool(threads)
    futures = [pool.submit(fn, *args, lo, hi, nb) for lo, hi in zip(bounds[:-1], bounds[1:]) if hi > lo]
    for f in futures:
        f.result()


# ---------------------------------------------------------------------------------------------
# building


def fused_kernel(cell, D: int, dtype: torch.dtype) -> FusedKernel | None:
    """The fused kernel of this cell for input size D (0 or 1) and dtype, or None where it does not
    apply (see the module docstring). Built once per (cell, D, dtype) in a process."""
    if not enabled() or dtype not in DTYPES or D not in (0, 1):
        return None
    try:
        return _cached_kernel(cell, D, dtype)
    except TypeError:  # an unhashable cell: build without the in-process cache
        return _build(cell, D, dtype)


@functools.lru_cache(maxsize=None)
def _cached_kernel(cell, D, dtype):
    return _build(cell, D, dtype)


_WHY: dict = {}  # (cell description, D, dtype) -> why the last build gave None (for tests and debugging)


def why_not(cell, D: int, dtype: torch.dtype) -> str | None:
    """Why ``fused_kernel`` gave None for these arguments (None when it did not)."""
    return _WHY.get((cell.describe(), D, str(dtype)))


def _build(cell, D, dtype) -> FusedKernel | None:
    from .codegen import generate, source_key
    from .trace import Unsupported, trace_cell

    tag = (cell.describe(), D, str(dtype))
    try:
        program = trace_cell(cell, D, dtype)
        source = generate(program, dtype)
    except Unsupported as err:
        _WHY[tag] = str(err)
        return None
    key = source_key(source)
    try:
        module, path = load_source(source, key)
    except Exception as err:  # numba failed to compile what we wrote: keep the torch path
        _WHY[tag] = f"the generated module failed: {type(err).__name__}: {err}"
        return None
    kernel = FusedKernel(cell, D, dtype, program, module, key, path)
    if not kernel.usable("wide"):  # run_lanes is checked when first used (it compiles then)
        problem = kernel.checked["wide"]
        _WHY[tag] = f"the self-check failed: {problem}"
        return None
    _WHY.pop(tag, None)
    return kernel


def kernel_dir() -> Path:
    """$LANDSCAPE_KERNELS, else ~/.cache/landscape/kernels: compiled code for this machine, kept apart
    from the results ($LANDSCAPE_CACHE), so a project's own result cache does not compile again."""
    env = os.environ.get("LANDSCAPE_KERNELS")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "landscape" / "kernels"


_LOAD_LOCK = threading.Lock()


def load_source(source: str, key: str):
    """Write the source to the kernel cache (once: the name is its hash) and import it."""
    name = f"landscape_kernel_{key}"
    with _LOAD_LOCK:
        if name in sys.modules:
            mod = sys.modules[name]
            return mod, Path(mod.__file__)
        path = _write(source, key)
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        sys.modules[name] = mod
        return mod, path


def _write(source: str, key: str) -> Path:
    for folder in (kernel_dir(), Path(tempfile.gettempdir()) / f"landscape-kernels-{os.getuid()}"):
        path = folder / f"cell_{key}.py"
        try:
            if path.exists() and path.read_text() == source:
                return path
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".cell_{key}.{os.getpid()}.tmp"
            tmp.write_text(source)
            os.replace(tmp, path)  # atomic: a concurrent process sees the whole file or none
            return path
        except OSError:
            continue
    raise OSError("no writable folder for the kernel cache")


# ---------------------------------------------------------------------------------------------
# checking


def reference_outputs(cell, params: dict[str, Tensor], x: Tensor | None, ends: list[Tensor], h0: float) -> Tensor:
    """The same outputs from ``cell.step`` unrolled in torch: (K, P, N) (the truth the kernel is
    checked against)."""
    P = max(v.shape[0] for v in params.values())
    E = torch.stack(ends)  # (K, N)
    K, N = E.shape
    state = cell.initial_state(params, N, 1, h0)
    out = torch.full((K, P, N), float("nan"), dtype=next(iter(params.values())).dtype)
    for t in range(1, int(E.max()) + 1):
        state = cell.step(params, state, None if x is None else x[t - 1].unsqueeze(-1))
        y = cell.output(state)[..., 0].expand(P, N)
        here = E == t  # (K, N)
        if bool(here.any()):
            out = torch.where(here.unsqueeze(1), y.unsqueeze(0), out)
    return out


def self_check(kernel: FusedKernel, modes=("wide", "lanes")) -> str | None:
    """Compare loop orders with ``cell.step`` on random inputs: None if they agree, else what
    differs. N(0, 1) parameters per member, one member with a parameter at +inf and one at NaN
    (the kernel must give torch's inf and NaN), random ends, h0 = 0.3."""
    cell, D, dtype = kernel.cell, kernel.D, kernel.dtype
    g = torch.Generator().manual_seed(20240611)
    P, N, T = 6, 7, 11
    shapes = cell.param_shapes(1, D)
    params = {}
    for k, s in shapes.items():
        v = torch.randn((P, *s), generator=g, dtype=torch.float64)
        params[k] = v.to(dtype)
    names = list(shapes)
    if names:  # members 4 and 5: a parameter at +inf and at NaN (the kernel must follow torch)
        params[names[0]][4] = float("inf")
        params[names[-1]][5] = float("nan")
    x = torch.randn((T, N), generator=g, dtype=torch.float64).to(dtype) if D else None
    ends = [torch.full((N,), T, dtype=torch.int64), torch.randint(1, T + 1, (N,), generator=g)]
    want = reference_outputs(cell, params, x, ends, 0.3)
    tol = dict(rtol=1e-9, atol=1e-12) if dtype == torch.float64 else dict(rtol=2e-4, atol=2e-5)
    for mode in modes:
        got = kernel.outputs(params, x, ends, 0.3, threads=1, mode=mode)
        finite = torch.isfinite(want) & torch.isfinite(got)
        if not torch.equal(torch.isnan(want), torch.isnan(got)):
            return f"{mode}: NaN where torch has none, or the reverse"
        if not torch.equal(torch.isinf(want), torch.isinf(got)) or not torch.equal(want[torch.isinf(want)],
                                                                                 got[torch.isinf(want)]):
            return f"{mode}: infinities differ from torch"
        if not torch.allclose(got[finite], want[finite], **tol):
            err = ((got - want).abs()[finite]).max().item()
            return f"{mode}: outputs differ from cell.step by up to {err:.3g}"
    return None
