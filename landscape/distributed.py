"""Grids and training populations on a Dask cluster: chunks and groups become tasks.

    landscape grid --cell lstm --T 10,50 --scheduler local:8          # 8 worker processes here
    landscape grid --cell lstm --T 10,50 --scheduler threads:2        # 2 worker threads in this process
    landscape train --cell srnn --T 10,50,100 --scheduler tcp://head:8786
    landscape reproduce cliff-formation --scheduler scheduler.json

    import landscape, landscape.distributed
    landscape.grid(spec, scheduler="local:4")                  # one call, its own cluster
    with landscape.distributed.use("tcp://head:8786"):         # every grid() and run_groups() inside
        landscape.grid(spec_a); landscape.grid(spec_b)

What runs where. The client (the process that called ``grid`` or ``run_groups``) resolves the
spec, makes the task's data once, holds the file lock and is the only writer of the output, as
without a cluster. A grid chunk is one task: ``surface.compute_chunk`` on the resolved grid and the
data, both pickled once and scattered to every worker (each worker unpickles them once and keeps
them on its device); the client writes each chunk with its ``done`` flag in the order the results
arrive, so a killed client resumes exactly as a local run does. A training task is one group
(``Member.group``) trained as its own population by ``train.population.train_population``; the
client saves each group as it arrives. Each task first sets its threads to ``threads``
(one by default: one fused-kernel thread and one torch thread for a grid chunk, torch's threads
for a training group); the device ("auto", "cpu", "cuda") is resolved on the worker, so "auto" uses
a worker's GPU where it has one.

A grid the fused numba kernel computes (one unit, at most one input, an identity or logistic
readout, on the CPU: ``recipe.why_not``) goes to the workers as its recipe (``landscape.recipe``:
the kernel's source and the task's arrays): a worker loads the kernel and computes its chunks from
numpy alone, never importing torch, the numbers those of the full path bit for bit.

Processes or threads. ``local:N`` starts N worker processes, forked from one forkserver that has
imported Dask, numba and the recipe's modules once (about 0.6 s of CPU; a worker then starts in
0.04 s, and loads its grid's kernel at its first chunk, about 0.3 s); a worker that computes in
torch imports it at its first task (about 1.5 s). The cluster starts in the background: until its
workers are up, this process computes the first chunks of a recipe's grid itself, and the workers
the rest. ``threads:N`` runs N workers as threads of this process (a Dask LocalCluster without processes):
nothing to start, import or send, and a chunk runs GIL-free in the fused kernels and in torch. Its
tasks share this process: while it is open, the fused kernels' thread count (process-wide) is the
tasks' (``threads``, one by default), and this process's own comes back when it closes.
On one machine ``threads:N`` is the faster (a 601 x 601 grid on two cores: ``python -m
benchmarks.distributed``); ``local:N`` isolates the workers (a worker that dies is replaced, its
memory its own) and trains groups in parallel (a training step holds the GIL between torch's
operations, so threads take turns there).

A worker that dies mid-task (killed, out of memory) is replaced by its nanny and the scheduler runs
its tasks again elsewhere (Dask allows ``distributed.scheduler.allowed-failures``, 3 by default,
deaths per task before it gives up: one clear line then). A chunk is a pure function of its
inputs, so the rerun gives the same numbers.

Numbers. A grid computed on a cluster is bit-identical to the same spec computed here (a chunk's
points do not depend on which process computes them). A training group is bit-identical to that
group trained alone as a population; where the local run trains several groups of one job as one
larger population, float32 gated cells (sigmoid) may differ in the last bit: torch's CPU float32
sigmoid gives an element a vectorised or a scalar result depending on where it falls in the tensor.

Nothing here imports Dask until a scheduler is used: without ``--scheduler`` (or ``use``) dask is
never imported. Install it with ``pip install 'rnn-landscape[dask]'``.

A script that starts a local cluster must do so under ``if __name__ == "__main__":``: each worker
process re-imports the script (as a spawned one does); without the guard each would start a cluster
of its own (one line says so, in the worker and here).
"""
from __future__ import annotations

import os
import re
import sys
import threading
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from .errors import LandscapeError

INSTALL = "pip install 'rnn-landscape[dask]'"
CONNECT_TIMEOUT = 5.0  # seconds to reach a scheduler before giving up with one line
_HOST_PORT = re.compile(r"^[A-Za-z0-9_.\-\[\]:]+:\d+$")  # 10.0.0.5:8786, head:8786, [::1]:8786
_SCHEMES = ("tcp", "tls", "ucx", "inproc", "ws", "wss")
LOCAL_WORKERS_PER_CORE = 2  # local:N or threads:N beyond this many workers per core is refused
LOCAL_KINDS = {"local": "worker processes", "threads": "worker threads"}  # the clusters started here

# the workers of local:N and threads:N: no statistical profiler (its sampling and bookkeeping took
# about 2 % of a worker's CPU beside the chunks; there is no dashboard to show it); the processes of
# local:N: glibc's own malloc trim threshold (Dask sets 64 KiB, which fixes the mmap threshold too:
# about 3 % slower here), one OpenMP / MKL / OpenBLAS thread as Dask's default. Without a dashboard
# the periodic bookkeeping can be slower (measured idle: 3 % of a core in this process, 1.5 % in each
# worker, by default; 0.6 % and 0.25 % so): the event loops' health check every second (20 ms), the
# system monitor every 5 s (0.5 s), no work stealing (the scheduler queues the chunks and hands each
# to the worker that frees up), the memory limit checked every 0.5 s (0.1 s).
LOCAL_WORKER_CONFIG = {
    "distributed.worker.profile.enabled": False,
    "distributed.nanny.pre-spawn-environ": {"OMP_NUM_THREADS": 1, "MKL_NUM_THREADS": 1, "OPENBLAS_NUM_THREADS": 1},
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.scheduler.work-stealing": False,
    "distributed.worker.memory.monitor-interval": "500ms",
}
# local:N's worker processes fork from one server process that has imported these once (where the
# platform has forkserver; else each is spawned and imports them itself): a worker then starts in
# about 0.04 s of CPU instead of 0.8 s (Python, Dask, numba and the recipe's modules, measured)
WORKER_PRELOAD = ("distributed", "numba", "landscape.distributed", "landscape.recipe", "landscape.kernels.numba.unroll",
                  "landscape.kernels.numba.losses")
_ACTIVE: list[Scheduler] = []  # the schedulers of the enclosing ``use`` blocks, innermost last


@dataclass(frozen=True)
class Address:
    """A parsed --scheduler value: kind "local" or "threads" (value = the number of worker
    processes or threads), "address" (value = tcp://HOST:PORT and the like) or "file" (value = a
    scheduler file's path)."""

    kind: str
    value: object

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}" if self.kind in LOCAL_KINDS else str(self.value)


def parse_address(text: str) -> Address:
    """local:N, threads:N, SCHEME://HOST:PORT (tcp, tls, ucx, ...), HOST:PORT (tcp) or an existing
    scheduler file; one clear LandscapeError for anything else. Checks the text only: nothing is
    contacted."""
    t = str(text).strip()
    for kind, workers in LOCAL_KINDS.items():
        if t.lower() == kind or t.lower().startswith(f"{kind}:"):  # not localhost:8786
            m = re.fullmatch(rf"{kind}:([0-9]+)", t, re.IGNORECASE)
            if m and int(m.group(1)) >= 1:
                return Address(kind, int(m.group(1)))
            raise LandscapeError(f"malformed --scheduler {text!r}: write {kind}:N with N >= 1 {workers}, "
                                 f"e.g. {kind}:4")
    if "://" in t:
        scheme, _, rest = t.partition("://")
        if scheme.lower() not in _SCHEMES or not rest or (scheme.lower() != "inproc" and not _HOST_PORT.match(rest)):
            raise LandscapeError(f"malformed --scheduler {text!r}: write SCHEME://HOST:PORT with SCHEME one of "
                                 f"{', '.join(_SCHEMES)}, e.g. tcp://10.0.0.5:8786")
        return Address("address", t)
    if _HOST_PORT.match(t) and not Path(t).exists():
        return Address("address", f"tcp://{t}")
    if t and Path(t).expanduser().is_file():
        return Address("file", str(Path(t).expanduser()))
    raise LandscapeError(f"--scheduler {text!r} is neither local:N, threads:N, an address tcp://HOST:PORT, nor an "
                         f"existing scheduler file (dask scheduler --scheduler-file FILE writes one)")


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise LandscapeError(f"--scheduler needs Dask, which is not installed: {INSTALL}") from None
    return distributed


class Scheduler:
    """A connected Dask client and, for local:N, the LocalCluster it started (closed with it).

    threads: CPU threads each task gives torch on its worker (one by default)."""

    in_process = False  # whether the workers are threads of this process (threads:N)

    def __init__(self, client, cluster=None, threads: int = 1, address: str = ""):
        self.client, self.cluster, self.threads, self.address = client, cluster, int(threads), address

    def workers(self) -> int:
        return len(self.client.nthreads())

    def starting(self) -> bool:
        """Whether the workers are still starting (local:N starts them in the background)."""
        return False

    def wait_started(self, job) -> None:
        """Return when the workers are up or ``job`` (a concurrent Future) is done, whichever first."""

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def __repr__(self) -> str:
        return f"Scheduler({self.address}, {self.threads} thread(s) per task)"

    # --- grid chunks ----------------------------------------------------------------------------
    def grid_chunks(self, compute, r, data, ranges: dict[int, tuple[int, int]], device: str, plane=None,
                    portable=None):
        """Compute the chunks ``ranges`` = {c: (start, stop)} of the resolved grid ``r`` on the
        workers; yields (c, values, device used) in the order they finish. ``compute``: the chunk
        function, ``compute(r, data, start, stop, dev, plane) -> values`` (``surface.compute_chunk``,
        a module-level function: sent by reference). ``data``: the task's data (CPU; None for a
        ``recipe.RecipeGrid``); it is cast to the grid's dtype here and sent once to every worker,
        with the ``directions.Plane`` of a plane grid (pickled, unless the workers are threads of this
        process). ``portable``: the grid as its recipe where one computes it (``recipe.of``, which
        the caller asks): sent instead, its chunks computed by ``RecipeGrid.compute(start, stop,
        threads)``: the same numbers, from numpy alone."""
        if not ranges:
            return
        if portable is not None:  # numpy and the numba kernel: the workers never import torch
            payload = (portable, None, None)
        else:
            from .lazy import torch

            payload = (r, data.to(r.torch_dtype, torch.device("cpu")), plane)
        todo = dict(ranges)
        with ThreadPoolExecutor(1, thread_name_prefix="landscape-chunk-here") as here:
            job = None  # (chunk, Future) of the chunk this process computes as the workers come up
            while portable is not None and todo and self.starting():
                c = next(reversed(todo))  # the last chunks: the workers start from the first
                job = (c, here.submit(portable.compute, *todo.pop(c), self.threads))
                self.wait_started(job[1])
                if job[1].done():
                    yield c, job[1].result(), "cpu"
                    job = None
            if not todo:
                return
            payload = payload if self.in_process else _pack(payload)
            token = uuid.uuid4().hex[:12]
            [shared] = self.client.scatter([payload], broadcast=True, hash=False)  # one object, a tuple too
            futures = {self.client.submit(_grid_chunk, compute, shared, token, start, stop, device, self.threads,
                                          key=f"landscape-chunk-{token}-{c}", pure=False): c
                       for c, (start, stop) in todo.items()}
            try:
                if job is not None:  # the workers have theirs: this one ends here
                    yield job[0], job[1].result(), "cpu"
                for future, (values, used) in self._completed(futures, "grid chunk"):
                    yield futures[future], values, used
            finally:
                self._cancel(futures)
                shared.release()

    # --- training groups ------------------------------------------------------------------------
    def train_groups(self, tasks, device: str, compile: bool, threads: int | None):
        """Train each of ``tasks`` = [(TrainSpec, [Member, ...]), ...] as its own population on
        the workers; yields (index in tasks, TrainResult) in the order they finish."""
        token = uuid.uuid4().hex[:12]
        futures = {self.client.submit(_train_group, spec, list(members), device, compile, threads, self.threads,
                                      key=f"landscape-train-{token}-{i}", pure=False): i
                   for i, (spec, members) in enumerate(tasks)}
        try:
            for future, result in self._completed(futures, "training group"):
                yield futures[future], result
        finally:
            self._cancel(futures)

    def _cancel(self, futures) -> None:
        """Cancel what is still pending (after an error or an interrupt)."""
        pending = [f for f in futures if not f.done()]
        if pending:
            self.client.cancel(pending)

    def _completed(self, futures, what: str):
        distributed = _import_distributed()
        for future in distributed.as_completed(list(futures), loop=self.client.loop):
            try:
                value = future.result()
            except distributed.KilledWorker as err:
                raise LandscapeError(f"a {what} killed every Dask worker that ran it ({err}); it may need more "
                                     f"memory than a worker has: lower --chunk-size or --memory") from None
            future.release()
            yield future, value


def on_this_machine(scheduler) -> bool:
    """Whether the workers of ``scheduler`` (a --scheduler value, an Address or a Scheduler) run on
    this machine: local:N and threads:N do; an address, a scheduler file or a Client may not."""
    if isinstance(scheduler, Scheduler):
        scheduler = scheduler.address
    if not isinstance(scheduler, (str, Address)):
        return False
    try:
        address = scheduler if isinstance(scheduler, Address) else parse_address(scheduler)
    except LandscapeError:
        return False
    return address.kind in LOCAL_KINDS


def check_local_workers(n: int, kind: str = "local") -> None:
    """Refuse, before any worker starts, local:N or threads:N (``kind``) with more than
    LOCAL_WORKERS_PER_CORE workers per core this process may run on (each worker process has its
    own torch, a few hundred MB: local:200 would exhaust the machine's memory and processes long
    before it helped; threads beyond the cores only take turns)."""
    cores = _cores()
    if n > LOCAL_WORKERS_PER_CORE * cores:
        most = LOCAL_WORKERS_PER_CORE * cores
        raise LandscapeError(f"--scheduler {kind}:{n} starts {n} {LOCAL_KINDS[kind]}, but this machine has {cores} "
                             f"core{'s' if cores > 1 else ''} for them; use at most {kind}:{most} "
                             f"({kind}:{cores} is one per core)")


def _cores() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


GUARD_HINT = ('a script that starts a local cluster must do so under `if __name__ == "__main__":` '
              '(Dask\'s worker processes re-import the script)')


def _in_spawned_reimport() -> bool:
    """True in a spawned child process while it re-imports the parent's script as ``__mp_main__``
    (multiprocessing's spawn and forkserver start methods, which Dask's nannies use, mark that phase
    with the process's ``_inheriting`` flag)."""
    import multiprocessing

    return bool(getattr(multiprocessing.current_process(), "_inheriting", False)) and "__mp_main__" in sys.modules


def _unguarded_main_script() -> str | None:
    """The path of the running script when its source has no ``__main__`` guard, else None (an
    interactive session, ``python -m``, the landscape command, a guarded script)."""
    path = getattr(sys.modules.get("__main__"), "__file__", None)
    try:
        source = Path(path).read_text(errors="replace") if path else ""
    except OSError:
        return None
    return path if source and "__main__" not in source else None


def connect(scheduler, threads: int = 1, timeout: float | None = None) -> Scheduler:
    """A Scheduler for ``scheduler``: "local:N" starts a LocalCluster of N single-threaded worker
    processes here, in the background (it returns at once; a cluster that cannot start raises its
    LandscapeError where it is first used, or at ``close``), "threads:N" one of N worker threads in
    this process; an address or a scheduler file joins a running cluster (LandscapeError if it
    cannot be reached within ``timeout`` seconds, CONNECT_TIMEOUT by default); a
    ``distributed.Client`` is used as it is (and left open). ``threads``: torch's CPU threads in
    each task."""
    timeout = CONNECT_TIMEOUT if timeout is None else float(timeout)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise LandscapeError(f"threads per worker must be a positive integer, not {threads!r}")
    if not isinstance(scheduler, (str, Address)):
        distributed = _import_distributed()
        if isinstance(scheduler, distributed.Client):
            return _Borrowed(scheduler, None, threads, str(scheduler.scheduler.address))
        raise LandscapeError(f"scheduler must be local:N, an address, a scheduler file or a distributed.Client; "
                             f"got {type(scheduler).__name__}")
    address = scheduler if isinstance(scheduler, Address) else parse_address(scheduler)
    distributed = _import_distributed()
    import logging

    if address.kind == "threads":
        return _start_threads(distributed, address, threads)
    if address.kind == "local":  # its workers' logs stay quiet: their errors reach us with the tasks
        import dask

        check_local_workers(address.value)
        if _in_spawned_reimport():  # a worker re-running an unguarded script: stop it with one line
            raise SystemExit(f"landscape: {GUARD_HINT}")

        def start():
            try:  # the scheduler's HTTP server on a free port (":8787" warns when taken) and no dashboard
                with dask.config.set({**LOCAL_WORKER_CONFIG, **_forkserver()}):
                    cluster = distributed.LocalCluster(n_workers=address.value, threads_per_worker=1,
                                                       processes=True, dashboard_address=":0",
                                                       scheduler_kwargs={"dashboard": False},
                                                       silence_logs=logging.CRITICAL)
            except Exception as err:  # noqa: BLE001 - a cluster that cannot start is one line
                hint = f" ({GUARD_HINT})" if "Nanny failed" in str(err) and _unguarded_main_script() else ""
                raise LandscapeError(f"cannot start a local Dask cluster of {address.value} workers: "
                                     f"{type(err).__name__}: {err}{hint}") from None
            return distributed.Client(cluster, set_as_default=False), cluster

        return _Starting(start, threads, str(address))
    try:
        if address.kind == "file":
            client = distributed.Client(scheduler_file=address.value, timeout=timeout, set_as_default=False)
        else:
            client = distributed.Client(address.value, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as err:
        where = f"scheduler file {address.value}" if address.kind == "file" else address.value
        raise LandscapeError(f"cannot reach the Dask scheduler at {where} within {timeout:g} s "
                             f"({type(err).__name__}); is it running? (or use --scheduler local:N)") from None
    return Scheduler(client, None, threads, str(address))


class _Borrowed(Scheduler):
    """A user's own Client: used, never closed."""

    def close(self) -> None:
        pass


def _forkserver() -> dict:
    """The Dask config that starts local:N's workers from a forkserver preloaded with
    WORKER_PRELOAD ({} where the platform has none: they are spawned). Dask's own preload (every
    package it knows of that is installed, imported here first) is replaced by ours."""
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return {}
    import distributed.utils

    multiprocessing.set_forkserver_preload(list(WORKER_PRELOAD))  # before the server starts: once per process
    distributed.utils._forkserver_preload_set = True  # Dask's flag that it has set the preload
    return {"distributed.worker.multiprocessing-method": "forkserver"}


class _Starting(Scheduler):
    """local:N: its LocalCluster starts in a background thread (its forkserver and worker processes
    take a second or two) while this process goes on; ``client`` and ``cluster``
    wait for it (a cluster that could not start raises its LandscapeError there). Meanwhile
    ``grid_chunks`` computes a recipe's chunks here."""

    def __init__(self, start, threads: int, address: str):
        self.threads, self.address = int(threads), address
        self._started: Future = Future()
        threading.Thread(target=self._start, args=(start,), name="landscape-cluster-start", daemon=True).start()

    def _start(self, start) -> None:
        try:
            self._started.set_result(start())
        except BaseException as err:  # noqa: BLE001 - raised where the client is first used
            self._started.set_exception(err)

    @property
    def client(self):
        return self._started.result()[0]

    @property
    def cluster(self):
        return self._started.result()[1]

    def starting(self) -> bool:
        return not self._started.done()

    def wait_started(self, job) -> None:
        wait([job, self._started], return_when=FIRST_COMPLETED)

    def close(self) -> None:
        client, cluster = self._started.result()  # one that could not start says so here, if not before
        client.close()
        cluster.close()


class _InProcess(Scheduler):
    """threads:N, a LocalCluster whose workers are threads of this process: the tasks get the
    grid and the data as they are (no pickling), and set the fused kernels' and torch's threads of
    this process (``_worker_setup``), which get their former values back at ``close``."""

    in_process = True

    def __init__(self, client, cluster, threads: int, address: str):
        from .kernels import runtime
        from .lazy import torch

        super().__init__(client, cluster, threads, address)
        self._former = (runtime.THREADS, torch.get_num_threads())

    def close(self) -> None:
        from .kernels import set_threads
        from .lazy import torch

        try:
            super().close()
        finally:
            kernel_threads, torch_threads = self._former
            set_threads(kernel_threads)
            torch.set_num_threads(torch_threads)


def _start_threads(distributed, address: Address, threads: int) -> _InProcess:
    """The LocalCluster of threads:N: N single-threaded workers in this process, no dashboard, no
    memory limit (the workers' memory is this process's, planned by ``plan``), quiet logs."""
    import logging

    import dask

    check_local_workers(address.value, "threads")
    try:
        with dask.config.set(LOCAL_WORKER_CONFIG):
            cluster = distributed.LocalCluster(n_workers=address.value, threads_per_worker=1, processes=False,
                                               memory_limit=0, dashboard_address=":0",
                                               scheduler_kwargs={"dashboard": False}, silence_logs=logging.CRITICAL)
    except Exception as err:  # noqa: BLE001 - a cluster that cannot start is one line
        raise LandscapeError(f"cannot start a Dask cluster of {address.value} worker threads: "
                             f"{type(err).__name__}: {err}") from None
    return _InProcess(distributed.Client(cluster, set_as_default=False), cluster, threads, str(address))


@contextmanager
def use(scheduler, threads: int = 1, timeout: float | None = None):
    """Run every ``grid()`` and ``run_groups()`` inside the block on ``scheduler`` (local:N, an
    address, a scheduler file, a distributed.Client, or None for no cluster: a no-op). Connects at
    once (a bad address fails here; local:N starts in the background: ``connect``) and closes what
    it started at the end. Yields the Scheduler."""
    if scheduler is None:
        yield None
        return
    sched = connect(scheduler, threads, timeout)
    _ACTIVE.append(sched)
    try:
        yield sched
    finally:
        _ACTIVE.remove(sched)
        sched.close()


def current() -> Scheduler | None:
    """The scheduler of the innermost ``use`` block, or None."""
    return _ACTIVE[-1] if _ACTIVE else None


def active(scheduler=None):
    """A context giving the Scheduler to compute on: ``scheduler`` when given (connected for the
    block, and closed after it if it was started here), else the enclosing ``use`` block's, else
    None (compute here)."""
    if scheduler is None:
        return nullcontext(current())
    if isinstance(scheduler, Scheduler):
        return nullcontext(scheduler)
    return _for_block(scheduler)


@contextmanager
def _for_block(scheduler):
    sched = connect(scheduler)
    try:
        yield sched
    finally:
        sched.close()


# ---------------------------------------------------------------------------------------------
# what runs on the workers

_GRIDS: dict[str, tuple] = {}  # per worker process: token -> (resolved grid, data on its device, device, plane)
_GRIDS_LOCK = threading.Lock()  # the workers of threads:N share _GRIDS
_KEEP_GRIDS = 2


def _pack(obj) -> bytes:
    """cloudpickle ``obj``, with the modules of users' FILE.py cells and tasks pickled by value
    (a worker has no such module to import; landscape.extensions names them landscape_user_*)."""
    import cloudpickle

    user = [m for name, m in list(sys.modules.items()) if name.startswith("landscape_user_") and m is not None]
    for module in user:
        cloudpickle.register_pickle_by_value(module)
    try:
        return cloudpickle.dumps(obj)
    finally:
        for module in user:
            cloudpickle.unregister_pickle_by_value(module)


def _worker_setup(threads: int, torch_threads: int | None = None) -> None:
    """A task's threads on its worker: ``threads`` workers of the fused CPU kernels and
    ``torch_threads`` (default one, as the grid commands run torch) for torch's own operations
    (0: torch is left alone, not imported: a recipe's chunk)."""
    from .kernels import set_threads

    set_threads(threads)
    if torch_threads == 0:
        return
    from .lazy import torch

    torch_threads = 1 if torch_threads is None else torch_threads
    if torch.get_num_threads() != torch_threads:
        torch.set_num_threads(torch_threads)


def _grid_chunk(compute, payload: bytes | tuple, token: str, start: int, stop: int, device: str, threads: int):
    """A worker's task: the values of the grid points [start, stop) by ``compute`` (by the recipe's
    ``RecipeGrid.compute`` where the payload holds no data) and the device that computed them.
    payload: (resolved grid, data, plane), pickled (``_pack``) or as they are (threads:N)."""
    import pickle

    with _GRIDS_LOCK:  # one unpickling and one copy to the device per worker process
        entry = _GRIDS.get(token)
        if entry is None:
            r, data, plane = pickle.loads(payload) if isinstance(payload, bytes) else payload
            if data is not None:
                from .engine import resolve_device

                dev = resolve_device(device)
                data = data.to(r.torch_dtype, dev)
            entry = (r, data, "cpu" if data is None else dev, plane)
            while len(_GRIDS) >= _KEEP_GRIDS:
                _GRIDS.pop(next(iter(_GRIDS)))
            _GRIDS[token] = entry
    r, data, dev, plane = entry
    _worker_setup(threads, None if data is not None else 0)
    if data is None:  # a recipe: numpy and the fused numba kernel, no torch
        return r.compute(start, stop), dev
    return compute(r, data, start, stop, dev, plane), str(dev)


def _train_group(spec, members, device: str, compile: bool, threads: int | None, worker_threads: int):
    """A worker's task: one group trained as its own population (TrainResult)."""
    from .train.population import train_population

    _worker_setup(worker_threads, worker_threads)
    return train_population(spec, members, device=device, progress=False, compile=compile, threads=threads)


def worker_pid() -> int:
    """The process id of the worker this runs on (for ``client.run``: tests kill workers by it)."""
    return os.getpid()
