"""Grids and training populations on a Dask cluster (landscape.distributed): the same numbers as
here, bit for bit; a worker killed mid-run; a client killed mid-run, resumed here and on the
cluster; one clear line for every bad --scheduler. One LocalCluster of two worker processes
serves the whole module; a test on threads:2 (two worker threads in this process) starts its own."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

distributed = pytest.importorskip("distributed")

import landscape.distributed  # noqa: E402
import landscape.surface as surface  # noqa: E402
from landscape import GridSpec, grid, load, recipe  # noqa: E402
from landscape.cli import main  # noqa: E402
from landscape.distributed import connect, parse_address, use, worker_pid  # noqa: E402
from landscape.errors import LandscapeError  # noqa: E402
from landscape.spec import Axis  # noqa: E402
from landscape.train import Member, TrainSpec  # noqa: E402
from landscape.train.results import ResultStore, run_groups  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# non-square: 9 x 6 points, chunk 7 leaves a short last chunk and chunks that split rows
SPEC = GridSpec.of(cell="lstm", task="latch", T=(3, 8), x=Axis.parse("w_f:-1:2:9"), y=Axis.parse("b_f:-1:1.5:6"),
                n=24, seed=3)
# 16 chunks of about 0.07 s each (unloaded): long enough to kill something mid-run
BIG = GridSpec.of(cell="srnn", task="latch", T=(100,), x=Axis.parse("w:-1:3:80"), y=Axis.parse("b:-1:1:80"), n=1000,
               fit="fixed")
BIG_ARGS = ["--cell", "srnn", "--task", "latch", "--x", "w:-1:3:80", "--y", "b:-1:1:80", "--n", "1000", "--T", "100",
            "--readout", "fixed", "--chunk-size", "400"]


@pytest.fixture(scope="module")
def cluster():
    sched = connect("local:2")
    yield sched
    sched.close()


@pytest.fixture
def threads2():
    """threads:2 for one test: its tasks set this process's threads, which it gives back when closed."""
    sched = connect("threads:2")
    yield sched
    sched.close()


def _on(kind: str, request):
    """The cluster of ``kind``: the module's local:2 or a test's own threads:2."""
    return request.getfixturevalue({"local": "cluster", "threads": "threads2"}[kind])


@pytest.fixture(scope="module")
def big_here(tmp_path_factory):
    """BIG computed here, in chunks of 400: the truth of the kill tests."""
    return grid(BIG, out=tmp_path_factory.mktemp("big") / "here.h5", chunk_size=400, device="cpu", progress=False).path


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LANDSCAPE_CACHE", str(tmp_path / "cache"))


def _arrays(path) -> dict:
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in f if isinstance(f[k], h5py.Dataset)}


def _same_file(a, b) -> None:
    x, y = _arrays(a), _arrays(b)
    assert x.keys() == y.keys()
    for k in x:
        assert np.array_equal(x[k], y[k], equal_nan=True), k
    with h5py.File(a, "r") as f, h5py.File(b, "r") as g:  # spec, key, chunk size, device, path ...: all but the time
        assert _timeless(f.attrs) == _timeless(g.attrs)


def _timeless(attrs) -> dict:
    return {k: v for k, v in attrs.items() if k != "created"}


def _idle(client, timeout=30.0) -> None:
    """Wait until no worker processes a task (tasks of a killed client finish on their own)."""
    end = time.monotonic() + timeout
    while any(client.processing().values()) and time.monotonic() < end:
        time.sleep(0.05)


def _chunk_tasks(stream) -> int:
    return sum(1 for t in stream.data if str(t["key"]).startswith("landscape-chunk-"))


# --- the numbers -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["local", "threads"])
@pytest.mark.parametrize("chunk_size,grads", [(1, False), (7, True), (None, False)])
def test_grid_on_the_cluster_is_bit_identical_to_local(kind, request, tmp_path, chunk_size, grads):
    cluster = _on(kind, request)
    spec = GridSpec.of(**{**SPEC.__dict__, "grads": grads})
    here = grid(spec, out=tmp_path / "here.h5", chunk_size=chunk_size, device="cpu", progress=False)
    with distributed.get_task_stream(cluster.client) as stream:
        there = grid(spec, out=tmp_path / "there.h5", chunk_size=chunk_size, device="cpu", progress=False,
                     scheduler=cluster)
    n_chunks = len(load(here.path).done)
    assert _chunk_tasks(stream) == n_chunks  # every chunk was a task on a worker
    assert there.computed_points == 54 and there.surface.complete
    _same_file(here.path, there.path)
    assert there.surface.loss.shape == (2, 9, 6) and np.isfinite(there.surface.loss).all()
    if grads:
        assert {"grad", "hessian_eigvals", "grad_norm_t"} <= set(there.surface.fields)


@pytest.mark.recipes
def test_a_grid_a_recipe_computes_goes_to_worker_processes_that_never_import_torch(tmp_path, monkeypatch):
    """A grid of the fused numba kernel reaches local:N's workers as its recipe (landscape.recipe):
    resolved in full here (no recipe yet) or read from its recipe file, the workers compute from
    numpy alone, the file's bytes those of the full path here."""
    monkeypatch.setattr(recipe, "folder", lambda: tmp_path / "recipes")  # none yet
    monkeypatch.setenv("LANDSCAPE_RECIPES", "0")
    truth = grid(BIG, out=tmp_path / "here.h5", chunk_size=400, device="cpu", progress=False).path  # in torch, here
    monkeypatch.delenv("LANDSCAPE_RECIPES")
    assert recipe.lookup(BIG, "cpu") is None
    with use("local:2") as sched, distributed.get_task_stream(sched.client) as stream:  # up before the grids
        full = grid(BIG, out=tmp_path / "full.h5", chunk_size=400, progress=False)  # resolved here, with torch
        assert recipe.lookup(BIG, "auto") is not None  # the cluster's run left the recipe
        with monkeypatch.context() as m:
            m.setattr(surface, "resolve", lambda spec: pytest.fail("resolved in full: the recipe was not used"))
            again = grid(BIG, out=tmp_path / "again.h5", chunk_size=400, progress=False)
        imported = sched.client.run(_torch_imported)
    assert _chunk_tasks(stream) == 32  # 16 chunks, twice: all on the workers
    assert len(imported) == 2 and not any(imported.values())
    _same_file(truth, full.path)
    _same_file(truth, again.path)


@pytest.mark.recipes
def test_while_the_workers_start_this_process_computes_a_recipes_chunks(tmp_path, monkeypatch, big_here):
    """local:N starts its workers in the background; until they are up, this process computes chunks
    of a grid from its recipe, the workers the rest: every chunk once, the numbers the same."""
    here = []
    real = recipe.RecipeGrid.compute
    monkeypatch.setattr(recipe.RecipeGrid, "compute", lambda self, *a: here.append(a[0]) or real(self, *a))
    monkeypatch.setattr(recipe, "folder", lambda: tmp_path / "recipes")
    grid(BIG, out=tmp_path / "first.h5", chunk_size=400, device="cpu", progress=False)  # leaves the recipe
    assert recipe.lookup(BIG, "cpu") is not None and not here
    with use("local:2") as sched:
        assert sched.starting()
        there = grid(BIG, out=tmp_path / "there.h5", chunk_size=400, device="cpu", progress=False)
        tasks = sched.client.run_on_scheduler(_chunks_computed)
    assert len(here) >= 1 and len(here) + tasks == 16 and len(set(here)) == len(here)
    _same_file(big_here, there.path)


def _chunks_computed(dask_scheduler) -> int:
    """The grid chunks the scheduler has seen computed (``client.run_on_scheduler``)."""
    return len({str(t[0]) for t in dask_scheduler.transition_log
                if str(t[0]).startswith("landscape-chunk-") and t[2] == "memory"})


def _torch_imported() -> bool:
    return "torch" in sys.modules


@pytest.mark.parametrize("kind", ["local", "threads"])
def test_a_cell_from_a_users_file_is_sent_to_the_workers(kind, request, tmp_path):
    """Worker processes have no module for FILE.py cells: the resolved grid carries the class by
    value (worker threads share this process's)."""
    cluster = _on(kind, request)
    cell = tmp_path / "softsign.py"
    cell.write_text(
        "from dataclasses import dataclass\n"
        "import torch\n"
        "from landscape.cells.base import Cell, ParamDecl, bias, linear\n\n"
        "@dataclass(frozen=True)\n"
        "class Softsign(Cell):\n"
        "    name = 'softsign'\n"
        "    summary = 'a user cell'\n"
        "    equations = \"h' = softsign(w h + u x + b)\"\n"
        "    params = (ParamDecl('w', 'recurrent', default=1.0), ParamDecl('u', 'input', default=1.0),\n"
        "              ParamDecl('b', 'bias', default=0.0))\n"
        "    default_axes = ('w:-1:3:5', 'b:-1:1:4')\n"
        "    block_input = ('w', 'b')\n\n"
        "    def step(self, p, state, x):\n"
        "        (h,) = state\n"
        "        return (torch.nn.functional.softsign(linear(h, p['w']) + bias(p['b']) + linear(x, p['u'])),)\n")
    spec = GridSpec.of(cell=f"{cell}:Softsign", task="latch", T=(4,), n=16)
    here = grid(spec, out=tmp_path / "here.h5", chunk_size=6, device="cpu", progress=False)
    there = grid(spec, out=tmp_path / "there.h5", chunk_size=6, device="cpu", progress=False, scheduler=cluster)
    _same_file(here.path, there.path)
    assert np.isfinite(there.surface.loss).all()


def _jobs():
    spec = TrainSpec.of(cell="lstm", task="latch", n=160, epochs=2, batch=16, dtype="float32", readout="dense2")
    members = [Member(T=t, seed=100 * t + r, data_seed=t, lr=1e-2, clip=None if r else 1.0, group=f"lstm-T{t}",
                      labels=(("repeat", r),)) for t in (3, 7, 12) for r in range(3)]
    return [(spec, members)]


def _by_model(rows) -> dict:
    """(group, seed, epoch) -> the row, NaN written as "nan" (so that NaN equals NaN)."""
    def plain(v):
        return "nan" if isinstance(v, float) and v != v else v

    return {(r["group"], r["seed"], r["epoch"]): {k: plain(v) for k, v in r.items()} for r in rows}


@pytest.mark.parametrize("kind", ["local", "threads"])
def test_training_groups_on_the_cluster_are_bit_identical_to_local(kind, request, tmp_path):
    """A group trained on a worker is exactly that group trained here as its own population; the
    whole job trained here as one population agrees to float32 rounding (sigmoid's last bit)."""
    cluster = _on(kind, request)
    jobs = _jobs()
    spec, members = jobs[0]
    per_group = [(spec, [m for m in members if m.group == g]) for g in dict.fromkeys(m.group for m in members)]
    here = run_groups(per_group, out=tmp_path / "here.h5", device="cpu", progress=False)
    results = []
    there = run_groups(jobs, out=tmp_path / "there.h5", device="cpu", progress=False, scheduler=cluster,
                       on_result=results.append)
    assert len(results) == 3 and sorted(len(r.members) for r in results) == [3, 3, 3]  # a task per group
    assert _by_model(here) == _by_model(there) and len(there) == 9 * 3
    a, b = ResultStore(tmp_path / "here.h5"), ResultStore(tmp_path / "there.h5")
    assert a.done() == b.done()
    for g in ("lstm-T3", "lstm-T7", "lstm-T12"):
        x, y = a.arrays(g), b.arrays(g)
        for part in x:
            for k in x[part]:
                assert np.array_equal(x[part][k], y[part][k], equal_nan=True), (g, part, k)
    whole = _by_model(run_groups(jobs, device="cpu", progress=False))  # no out: the rows, in job order
    assert whole.keys() == _by_model(there).keys()
    cols = ("train_loss", "val_loss", "p:w_f", "p:dense_b[1]")
    ours = np.array([[float(row[c]) for c in cols] for row in _by_model(there).values()])
    theirs = np.array([[float(whole[key][c]) for c in cols] for key in _by_model(there)])
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6, equal_nan=True)
    # a rerun on the cluster finds every group saved and trains nothing
    again = []
    run_groups(jobs, out=tmp_path / "there.h5", device="cpu", progress=False, scheduler=cluster, on_result=again.append)
    assert again == []


def test_train_command_on_the_cluster(cluster, tmp_path):
    """In float64 a group's numbers do not depend on the population it is trained in: the
    command's result on the cluster (a population per group) equals the local one (one population)."""
    args = ["train", "--cell", "lstm", "--T", "3,6", "--repeats", "2", "--epochs", "1", "--n", "80", "--device", "cpu",
            "--dtype", "float64", "-q"]
    r1 = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "a.csv")], catch_exceptions=False)
    r2 = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "b.csv"), "--scheduler",
                                   cluster.cluster.scheduler_address], catch_exceptions=False)
    assert r1.exit_code == 0 and r2.exit_code == 0, r2.output
    assert r1.output.split("\n")[1:-2] == r2.output.split("\n")[1:-2]  # the summary table
    assert _by_model(ResultStore(tmp_path / "a.csv").rows()) == _by_model(ResultStore(tmp_path / "b.csv").rows())


def test_threads_run_in_this_process_and_give_its_threads_back(tmp_path):
    """threads:2: two workers in this process compute every chunk; while it is open the fused
    kernels' threads are the tasks' (one), and this process's own (and torch's) come back when it
    closes."""
    import torch

    from landscape.kernels import runtime, set_threads

    before = runtime.THREADS, torch.get_num_threads()
    set_threads(3)
    torch.set_num_threads(2)
    try:
        sched = connect("threads:2")
        try:
            assert sched.in_process and sched.workers() == 2
            assert set(sched.client.run(worker_pid).values()) == {os.getpid()}
            with distributed.get_task_stream(sched.client) as stream:
                there = grid(SPEC, out=tmp_path / "there.h5", chunk_size=7, device="cpu", progress=False,
                             scheduler=sched)
            assert _chunk_tasks(stream) == len(there.surface.done) == 8
            assert runtime.THREADS == 1  # the tasks' (process-wide)
        finally:
            sched.close()
        assert (runtime.THREADS, torch.get_num_threads()) == (3, 2)
    finally:
        set_threads(before[0])
        torch.set_num_threads(before[1])
    here = grid(SPEC, out=tmp_path / "here.h5", chunk_size=7, device="cpu", progress=False)
    _same_file(here.path, there.path)


@pytest.mark.parametrize("fields,chunk_size", [({"dynamics": True}, 10), ({"dtype": "float32"}, 1)])
def test_threads_are_bit_identical_for_dynamics_and_float32(threads2, tmp_path, fields, chunk_size):
    """Chunks on two worker threads at once: the fixed-point search (two chunks) and float32 too."""
    spec = GridSpec.of(cell="gru", task="latch", T=(5, 12), x=Axis.parse("w_z:-1:2:5"), y=Axis.parse("b_z:-1:1:4"),
                       n=20, **fields)
    here = grid(spec, out=tmp_path / "here.h5", chunk_size=chunk_size, device="cpu", progress=False)
    there = grid(spec, out=tmp_path / "there.h5", chunk_size=chunk_size, device="cpu", progress=False,
                 scheduler=threads2)
    _same_file(here.path, there.path)


def test_a_one_point_chunk_leaves_the_shared_base_alone():
    """Worker threads share the resolved grid: a chunk's parameters are its own, even of one point
    (engine.chunk_params wrote a one-point chunk's axis values into the base point itself)."""
    import torch

    from landscape import engine, resolve

    r = resolve(SPEC)
    before = {k: v.clone() for k, v in r.problem.base.items()}
    x, y = torch.tensor([5.0], dtype=torch.float64), torch.tensor([-7.0], dtype=torch.float64)
    params = engine.chunk_params(r.problem.base, r.refs, (x, y), torch.float64, torch.device("cpu"))
    (nx, ix), (ny, iy) = r.refs
    assert params[nx][(0, *ix)] == 5.0 and params[ny][(0, *iy)] == -7.0
    assert all(torch.equal(v, before[k]) for k, v in r.problem.base.items())


def test_grid_command_on_threads_writes_the_same_file(tmp_path):
    args = ["grid", "--cell", "srnn", "--task", "latch", "--x", "w:-1:3:13", "--y", "b:-1:1:11", "--T", "5,9", "--n",
            "50", "--chunk-size", "20", "--device", "cpu", "-q"]
    here = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "here.h5")], catch_exceptions=False)
    there = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "there.h5"), "--scheduler", "threads:2"],
                               catch_exceptions=False)
    assert here.exit_code == 0 and there.exit_code == 0, there.output
    _same_file(tmp_path / "here.h5", tmp_path / "there.h5")


# --- failures --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["torch", pytest.param("recipe", marks=pytest.mark.recipes)])
def test_a_worker_killed_while_it_holds_chunks(cluster, big_here, tmp_path, path):
    """torch: the workers compute in torch (recipes off); recipe: from the grid's recipe."""
    client = cluster.client
    pids = client.run(worker_pid)
    box = {}
    run = threading.Thread(target=lambda: box.update(result=grid(
        BIG, out=tmp_path / "there.h5", chunk_size=400, device="cpu", progress=False, scheduler=cluster)))
    with distributed.get_task_stream(client) as stream:
        run.start()
        victim, held, end = None, [], time.monotonic() + 60
        while victim is None and time.monotonic() < end:
            for w, keys in client.processing().items():
                held = [str(k) for k in keys if str(k).startswith("landscape-chunk-")]
                if held:
                    victim = w
                    break
            time.sleep(0.01)
        assert victim is not None, "no worker ever held a chunk"
        os.kill(pids[victim], signal.SIGKILL)
        running = run.is_alive()
        run.join(120)
    assert running and not run.is_alive() and "result" in box
    assert victim not in client.nthreads()  # it died (its nanny starts a new one)
    finished = {str(t["key"]): t["worker"] for t in stream.data if str(t["key"]).startswith("landscape-chunk-")}
    assert len(finished) == 16
    assert any(finished[k] != victim for k in held)  # what the victim held ran again elsewhere
    _same_file(big_here, box["result"].path)
    client.wait_for_workers(2, timeout=60)  # the cluster is whole again for the next tests
    kind = "RecipeGrid" if path == "recipe" else "ResolvedGrid"
    assert kind in set(client.run(_last_grid).values()) <= {kind, "none yet"}  # "none yet": the victim's successor


def _last_grid() -> str:
    """The kind of grid whose chunks this worker computed last (RecipeGrid: from numpy alone)."""
    grids = list(landscape.distributed._GRIDS.values())
    return type(grids[-1][0]).__name__ if grids else "none yet"


def test_a_task_error_reaches_the_user_in_one_line(cluster, tmp_path, monkeypatch):
    """An error raised by a chunk's task in a worker process ends the command: its message, one line."""
    def broken(r, data, start, stop, dev, plane=None):
        raise ValueError(f"no values for the points {start} to {stop}")

    monkeypatch.setattr(surface, "compute_chunk", broken)  # sent to the workers by value
    res = CliRunner().invoke(main, ["grid", *BIG_ARGS, "--device", "cpu", "-q", "--out", str(tmp_path / "g.h5"),
                                    "--scheduler", cluster.cluster.scheduler_address])
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert res.exit_code != 0 and len(lines) == 1, res.output
    assert lines[0].startswith("error: ") and "ValueError: no values for the points " in lines[0]


def test_a_killed_client_resumes_here_and_on_the_cluster(cluster, big_here, tmp_path, monkeypatch):
    out = tmp_path / "run.h5"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    err = open(tmp_path / "stderr.txt", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "landscape", "grid", *BIG_ARGS, "--device", "cpu", "-q", "--out",
                             str(out), "--scheduler", cluster.cluster.scheduler_address], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=err)
    done, end = 0, time.monotonic() + 90
    while done < 3 and time.monotonic() < end and proc.poll() is None:
        try:
            with h5py.File(out, "r", locking=False) as f:
                done = int(f["done"][()].sum())
        except (OSError, KeyError):
            pass
        time.sleep(0.01)
    proc.kill()  # SIGKILL: no cleanup; the lock goes with the process
    proc.wait()
    err.close()
    with h5py.File(out, "r") as f:
        mask = f["done"][()]
    missing = int((~mask).sum())
    assert mask.sum() >= 3 and missing > 0, (mask.sum(), (tmp_path / "stderr.txt").read_text()[-2000:])
    assert load(out).spec == load(big_here).spec  # the command made BIG's spec
    _idle(cluster.client)  # tasks the dead client left running finish on their own
    for name in ("here.h5", "there.h5"):
        shutil.copy(out, tmp_path / name)
    calls = []
    real = surface.compute_chunk
    monkeypatch.setattr(surface, "compute_chunk", lambda *a: calls.append(a[2]) or real(*a))
    here = grid(BIG, out=tmp_path / "here.h5", device="cpu", progress=False)
    assert len(calls) == missing and not here.cached and here.surface.complete
    with distributed.get_task_stream(cluster.client) as stream:
        there = grid(BIG, out=tmp_path / "there.h5", device="cpu", progress=False, scheduler=cluster)
    assert _chunk_tasks(stream) == missing and len(calls) == missing  # the workers did it, not this process
    assert there.computed_points == here.computed_points == missing * 400  # 16 whole chunks
    _same_file(big_here, tmp_path / "here.h5")
    _same_file(big_here, tmp_path / "there.h5")


def test_bad_scheduler_values_are_one_line():
    runner = CliRunner()
    for value, says in (("local:0", "malformed --scheduler 'local:0': write local:N"),
                        ("local:two", "malformed --scheduler 'local:two'"),
                        ("threads:0", "malformed --scheduler 'threads:0': write threads:N with N >= 1 worker threads"),
                        ("http://head:8786", "malformed --scheduler 'http://head:8786': write SCHEME://HOST:PORT"),
                        ("nowhere.json", "--scheduler 'nowhere.json' is neither local:N")):
        for command in (["grid", "--T", "3"], ["train", "--T", "3"], ["reproduce", "pascanu-fig6"]):
            r = runner.invoke(main, [*command, "--scheduler", value])
            assert r.exit_code == 2, (value, r.output)
            assert r.output.count("\n") == 1 and says in r.output and r.output.startswith("error: "), r.output
    assert parse_address("10.0.0.5:8786").value == "tcp://10.0.0.5:8786"
    assert str(parse_address("LOCAL:3")) == "local:3"
    assert str(parse_address("threads:2")) == "threads:2" and parse_address("Threads:2").kind == "threads"
    assert parse_address("localhost:8786").value == "tcp://localhost:8786"  # a host, not local:N


def test_threads_beyond_the_cores_are_refused():
    cores = len(os.sched_getaffinity(0))
    with pytest.raises(LandscapeError, match=f"threads:200 starts 200 worker threads, but this machine has {cores}"):
        connect("threads:200")


def test_an_unreachable_scheduler_fails_fast_with_one_line(tmp_path, monkeypatch):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(LandscapeError, match=rf"cannot reach the Dask scheduler at tcp://127.0.0.1:{port} within 1 s"):
        connect(f"tcp://127.0.0.1:{port}", timeout=1)
    assert time.monotonic() - start < 15  # the timeout holds (generous for a loaded machine)
    monkeypatch.setattr(landscape.distributed, "CONNECT_TIMEOUT", 1.0)  # the CLI's default is 5 s
    r = CliRunner().invoke(main, ["grid", "--cell", "pascanu", "--task", "target", "--x", "w:4.5:5.5:3", "--y",
                                  "b:-2.9:-1.9:3", "--T", "2", "--out", str(tmp_path / "x.h5"),
                                  "--scheduler", f"127.0.0.1:{port}"])
    assert r.exit_code == 2 and r.output.count("\n") == 1
    assert r.output.startswith(f"error: cannot reach the Dask scheduler at tcp://127.0.0.1:{port}"), r.output


def test_without_dask_the_scheduler_option_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    r = CliRunner().invoke(main, ["grid", "--cell", "pascanu", "--task", "target", "--x", "w:4.5:5.5:3", "--y",
                                  "b:-2.9:-1.9:3", "--T", "2", "--out", str(tmp_path / "x.h5"), "--scheduler", "local:2"])
    assert r.exit_code == 2 and r.output.count("\n") == 1, r.output
    assert "pip install 'rnn-landscape[dask]'" in r.output


def test_without_a_scheduler_dask_is_never_imported(tmp_path):
    code = (
        "import sys\n"
        "from landscape import grid\n"
        "from landscape.train import Member, TrainSpec\n"
        "from landscape.train.results import run_groups\n"
        "from landscape.cli import main\n"
        f"grid(cell='pascanu', task='target', x='w:4.5:5.5:3', y='b:-2.9:-1.9:3', T=(2,), out={str(tmp_path / 'g.h5')!r})\n"
        "run_groups([(TrainSpec.of(n=40, epochs=1), [Member(T=2, group='g')])], device='cpu')\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed'))\n"
        "print('dask modules:', loaded)\n")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert res.returncode == 0, res.stderr[-2000:]
    assert "dask modules: []" in res.stdout


def test_reproduce_runs_its_grids_and_groups_on_the_scheduler(cluster, tmp_path, monkeypatch):
    """reproduce --scheduler: the reproduction's own grid_at and train_jobs calls run on the
    cluster, with no change to its run() signature (landscape.distributed.use)."""
    import types

    import landscape.analyses as analyses
    from landscape.analyses.common import grid_at
    from landscape.analyses.report import train_jobs

    def run(folder, quick=False, device="auto", progress=None):
        g = grid_at(SPEC, Path(folder) / "s.h5", device="cpu", progress=False)
        rows = train_jobs("fake", _jobs(), Path(folder) / "t.csv", "cpu", False, False)
        return [g.path, Path(folder) / "t.csv"] if rows else []

    fake = types.SimpleNamespace(run=run, DESCRIPTION="a test reproduction")
    monkeypatch.setattr(analyses, "get_analysis", lambda name: fake)
    with distributed.get_task_stream(cluster.client) as stream:
        r = CliRunner().invoke(main, ["reproduce", "fake", "--out", str(tmp_path / "r"), "-q",
                                      "--scheduler", cluster.cluster.scheduler_address], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    keys = [str(t["key"]) for t in stream.data]
    assert sum(k.startswith("landscape-chunk-") for k in keys) == 1  # SPEC fits one chunk
    assert sum(k.startswith("landscape-train-") for k in keys) == 3  # one task per group
    with use(cluster.client) as sched:  # the Python API: a user's own Client, left open
        assert sched.client is cluster.client
    assert cluster.client.status == "running"
