"""What both kernel backends (``kernels.numba``, ``kernels.triton``) share: the kernel cache, the
worker threads, and the self-check of a generated kernel against ``cell.step``.

- ``load_module(source, stem, name)``: write a generated module into the kernel cache
  (``kernel_folder``: $LANDSCAPE_KERNELS, else ~/.cache/landscape/kernels; a temporary folder
  where that is not usable; a folder this user owns, mode 0700) as ``<stem>.py`` (the stem holds
  a hash of the text, so a file is written once) and run the source it generated, once per
  process (never the file's bytes as found, never bytecode);
- ``set_threads(n)`` / ``default_threads()``: the worker threads of a kernel call, and
  ``run_split``, which runs a GIL-free function over a range on them;
- ``self_check(kernel)``: a kernel's outputs against ``reference_outputs`` (``cell.step`` unrolled
  in torch) on random inputs with an inf and a NaN member: what a single trace cannot see (data-
  dependent control flow, for one) and what a code generator may get wrong;
- ``build_checked(generate, load, check)`` and ``KernelBuilds``: every generated kernel's build
  (traced and written, loaded, checked; ``NotBuilt`` says why not), once per process and
  arguments, and why the last build of each gave None (each backend's ``why_not``).
"""
from __future__ import annotations

import json
import os
import stat
import sys
import tempfile
import threading
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from .. import settings
from ..errors import LandscapeError
from ..lazy import torch  # on first use: importing the dispatch (the CLI's --threads) does not import torch

if TYPE_CHECKING:
    from torch import Tensor

MIN_PAIRS_PER_TASK = 1 << 15  # (member, sequence) pairs: a thread's share below this is not worth a thread

# ---------------------------------------------------------------------------------------------
# the kernel cache

_MODULES: dict[str, object] = {}  # module name -> the imported module (this process)
_LOAD_LOCK = threading.Lock()


def load_module(source: str, stem: str, name: str):
    """(module, path): ``source`` written to the kernel cache as ``<stem>.py`` and run as module
    ``name`` (registered in sys.modules before it runs: ``triton.jit`` looks its module up), once
    per process and name.

    What runs is ``source`` itself, compiled here from the text this process generated: never the
    file's bytes as found (a file whose bytes differ from the source is replaced first), never
    bytecode (no import machinery: a .pyc planted in __pycache__ or beside the file is not read).
    The file is there for what reads it by path: numba's on-disk cache (its index, in
    ``<folder>/__pycache__``, is keyed by the file's size and time) and ``inspect.getsource``."""
    with _LOAD_LOCK:
        mod = _MODULES.get(name)
        if mod is None:
            path = write_source(source, stem)
            mod = types.ModuleType(name)
            mod.__file__ = str(path)
            code = compile(source, str(path), "exec", dont_inherit=True)
            sys.modules[name] = mod
            try:
                exec(code, mod.__dict__)
            except BaseException:
                del sys.modules[name]
                raise
            _MODULES[name] = mod
        return mod, Path(mod.__file__)


def write_source(source: str, stem: str) -> Path:
    """The file ``<stem>.py`` holding exactly ``source`` in the kernel cache (``kernel_folder``):
    written (atomically, through a temporary file created exclusively) unless its bytes are
    already the source's."""
    folder = kernel_folder()
    path = folder / f"{stem}.py"
    data = source.encode()
    try:
        if _read_plain(path) == data:
            return path
    except OSError:
        pass  # absent, or not a plain file: replaced below
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)  # atomic: a concurrent process sees the whole file or none
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def note_path(name: str) -> Path:
    """Where ``read_note``'s note ``name`` lives: ``<kernel folder>/<name>.json``."""
    return kernel_folder() / f"{name}.json"


def read_note(name: str) -> dict | None:
    """A small JSON note kept in the kernel cache beside the kernels (``write_note``): a measurement
    or a comparison made once for a kernel, so later processes need not repeat it; None where
    there is none or it cannot be read."""
    try:
        found = json.loads(_read_plain(note_path(name)))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def write_note(name: str, note: dict) -> None:
    """Write ``read_note``'s note atomically (a concurrent process sees all of it or none); a
    read-only kernel cache is no error (the next process decides again)."""
    path, tmp = note_path(name), None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{name}.", suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(note))
        os.replace(tmp, path)
    except OSError:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def _read_plain(path: Path) -> bytes:
    """The bytes of a plain file, not following a symlink (OSError for one)."""
    with os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), "rb") as fh:
        return fh.read()


def kernel_folder() -> Path:
    """The kernel cache folder: ``settings.kernel_dir()`` ($LANDSCAPE_KERNELS, else
    ~/.cache/landscape/kernels), else, where that cannot be used, $TMPDIR/landscape-kernels-UID.
    Created with mode 0700 (its __pycache__, where numba keeps its cache, too), and used only when
    it is a folder this user owns that no group or other user can write (``_unsafe``): numba's
    cache holds pickles, which run code when read. LandscapeError (one line) when neither is."""
    uid = os.getuid()
    tried = []
    for folder in (settings.kernel_dir(), Path(tempfile.gettempdir()) / f"landscape-kernels-{uid}"):
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            why = _unsafe(folder, uid)
            if why is None:
                (folder / "__pycache__").mkdir(mode=0o700, exist_ok=True)
                why = _unsafe(folder / "__pycache__", uid)
        except OSError as err:
            why = err.strerror or str(err)
        if why is None:
            return folder
        tried.append(f"{folder} ({why})")
    raise LandscapeError(f"no safe folder for the kernel cache: {'; '.join(tried)}; set $LANDSCAPE_KERNELS to a "
                         f"folder you own that only you can write (chmod 700)")


def _unsafe(folder: Path, uid: int) -> str | None:
    """Why ``folder`` may not hold code this process runs (None: it may): not a folder, owned by
    another user, or writable by its group or by others."""
    st = folder.stat()
    if not stat.S_ISDIR(st.st_mode):
        return "not a folder"
    if st.st_uid != uid:
        return f"owned by uid {st.st_uid}, not {uid}"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"writable by its group or others (mode {stat.S_IMODE(st.st_mode):o})"
    return None


# ---------------------------------------------------------------------------------------------
# worker threads

THREADS: int | None = None  # set_threads: the worker threads (None: every core this process may use)


def set_threads(n: int | None) -> None:
    """Worker threads of the fused CPU kernels, each single-threaded (None: every core this process
    may run on, the default)."""
    global THREADS
    if n is not None and int(n) < 1:
        raise ValueError(f"threads must be >= 1 or None, got {n}")
    THREADS = None if n is None else int(n)


def default_threads() -> int:
    """The worker threads of a kernel call: ``THREADS`` when set, else the cores this process may run on."""
    if THREADS is not None:
        return THREADS
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


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


def run_split(fn, args, total: int, unit: int, nb: int, threads: int | None, pairs_per_item: int) -> None:
    """fn(*args, lo, hi, nb) over [0, total), in contiguous shares of whole units, on ``threads``
    GIL-free workers (None: ``default_threads()``; the calling thread alone when one suffices).
    pairs_per_item: the (member, sequence) pairs of one item of the range (it sizes the shares)."""
    items = -(-total // unit)
    work = total * pairs_per_item
    threads = max(1, min(threads or default_threads(), items, max(1, work // MIN_PAIRS_PER_TASK)))
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
# checking a kernel against cell.step


def reference_outputs(cell, params: dict[str, Tensor], x: Tensor | None, ends: list[Tensor], h0: float) -> Tensor:
    """The outputs from ``cell.step`` unrolled in torch: (K, P, N) (the truth a kernel is checked
    against). params name -> (P, *shape); x (T, N) or None; ends K tensors (N,), 1-based."""
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


def self_check(kernel, modes=(None,)) -> str | None:
    """Compare a kernel with ``cell.step`` on random inputs: None if they agree, else what differs.

    kernel: has ``cell``, ``D``, ``dtype`` and ``outputs(params, x, ends, h0, threads=, mode=)``
    returning (K, P, N) CPU tensors; each of ``modes`` is passed as ``mode`` (a loop order).
    N(0, 1) parameters per member, one member with a parameter at +inf and one at NaN (the kernel
    must give torch's inf and NaN), random ends, h0 = 0.3."""
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
        label = mode or "kernel"
        got = kernel.outputs(params, x, ends, 0.3, threads=1, mode=mode)
        finite = torch.isfinite(want) & torch.isfinite(got)
        if not torch.equal(torch.isnan(want), torch.isnan(got)):
            return f"{label}: NaN where torch has none, or the reverse"
        if not torch.equal(torch.isinf(want), torch.isinf(got)) or not torch.equal(want[torch.isinf(want)],
                                                                                 got[torch.isinf(want)]):
            return f"{label}: infinities differ from torch"
        if not torch.allclose(got[finite], want[finite], **tol):
            err = ((got - want).abs()[finite]).max().item()
            return f"{label}: outputs differ from cell.step by up to {err:.3g}"
    return None


# ---------------------------------------------------------------------------------------------
# building a generated kernel


class NotBuilt(Exception):
    """Why a generated kernel was not built: its message is what ``why_not`` answers."""


def build_checked(generate, load, check):
    """A generated kernel, built in three stages, or ``NotBuilt`` saying which stage stopped it:

    generate()      trace the cell and write the code: what load takes. ``trace.Unsupported``: its
                    message; another exception (the cell's own methods failed on the trace's inputs:
                    the path without a kernel runs them as asked): "the trace failed: ...";
    load(made)      compile and load it: the kernel. An exception (numba or Triton failed on the
                    generated code): "the generated module failed: ..."; Unsupported: its message;
    check(kernel)   None, or what differs from the truth it is checked against: "the self-check
                    failed: ..." (an exception here counts as the module's failure).
    """
    from .trace import Unsupported

    try:
        made = generate()
    except Unsupported as err:
        raise NotBuilt(str(err)) from None
    except Exception as err:
        raise NotBuilt(f"the trace failed: {type(err).__name__}: {err}") from None
    try:
        kernel = load(made)
        problem = check(kernel)
    except Unsupported as err:
        raise NotBuilt(str(err)) from None
    except Exception as err:
        raise NotBuilt(f"the generated module failed: {type(err).__name__}: {err}") from None
    if problem is not None:
        raise NotBuilt(f"the self-check failed: {problem}")
    return kernel


class KernelBuilds:
    """The kernels of one generator in this process.

    ``get(*args)``: the kernel ``build(*args)`` makes (None where it raised ``NotBuilt``), built once
    per arguments: concurrent callers wait for the one build (a lock per generator); arguments that
    cannot be hashed (a user's cell object) are built on every call. ``why(*args)``: why the last
    build for those arguments gave None (None when it did not), found by ``tag(*args)`` (a cell by its
    description: an equal cell made anew finds the reason). ``fresh()``: another, with nothing built.
    """

    def __init__(self, build, tag):
        self._build, self._tag = build, tag
        self._built: dict = {}  # args -> kernel or None
        self._why: dict = {}  # tag -> why the last build gave None
        self._lock = threading.Lock()

    def get(self, *args):
        try:
            return self._built[args]
        except KeyError:
            pass
        except TypeError:  # unhashable: no cache
            with self._lock:
                return self._attempt(args)
        with self._lock:
            if args not in self._built:
                self._built[args] = self._attempt(args)
            return self._built[args]

    def why(self, *args) -> str | None:
        return self._why.get(self._tag(*args))

    def fresh(self) -> KernelBuilds:
        """A KernelBuilds of the same build with nothing built yet (a test's own)."""
        return KernelBuilds(self._build, self._tag)

    def _attempt(self, args):
        tag = self._tag(*args)
        try:
            kernel = self._build(*args)
        except NotBuilt as err:
            self._why[tag] = str(err)
            return None
        self._why.pop(tag, None)
        return kernel
