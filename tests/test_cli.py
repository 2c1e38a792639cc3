"""The `landscape` command: output, listings, the cache commands, and one line for every bad input."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import landscape
from landscape.cli import main

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--cell", "pascanu", "--task", "target", "--x", "w:4.5:5.5:6", "--y", "b:-2.9:-1.9:5", "--T", "1,5,50"]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LANDSCAPE_CACHE", str(tmp_path / "cache"))


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_grid_prints_file_range_time_and_rate(tmp_path):
    out = tmp_path / "p.h5"
    r = invoke("grid", *SMALL, "--out", str(out))
    assert r.exit_code == 0, r.output
    assert "computed 30 points x 3 lengths on cpu" in r.output and "points/s" in r.output
    assert f"wrote {out}" in r.output
    assert "T=50" in r.output and "loss min" in r.output
    again = invoke("grid", *SMALL, "--out", str(out))
    assert "read from the cache" in again.output
    s = landscape.load(out)
    assert s.loss.shape == (3, 6, 5)


def test_grid_cli_equals_python_api(tmp_path):
    invoke("grid", *SMALL, "--out", str(tmp_path / "cli.h5"))
    api = landscape.grid(cell="pascanu", task="target", T=(1, 5, 50), x=landscape.Axis.parse("w:4.5:5.5:6"),
                         y=landscape.Axis.parse("b:-2.9:-1.9:5"), out=tmp_path / "api.h5", progress=False)
    np.testing.assert_array_equal(landscape.load(tmp_path / "cli.h5").loss, api.surface.loss)


def test_options_reach_the_spec(tmp_path):
    out = tmp_path / "o.h5"
    r = invoke("grid", "--cell", "lstm", "--cell-opt", "gate=hard_sigmoid", "--task", "latch", "--task-set",
               "noise=0.2", "--x", "b_f:-1:1:3", "--y", "w_z:0:1:2", "--T", "3", "--n", "20", "--seed", "4",
               "--set", "u_i=0.5", "--readout", "fixed", "--dtype", "float32", "--out", str(out), "-q")
    assert r.exit_code == 0, r.output
    spec = landscape.load(out).spec
    assert spec["cell_options"] == {"gate": "hard_sigmoid"} and spec["task_params"] == {"noise": 0.2}
    assert spec["n"] == 20 and spec["seed"] == 4 and spec["base"]["u_i"] == [[0.5]] and spec["dtype"] == "float32"
    assert spec["readout"] == "fixed"


def test_cells_and_tasks_list_everything():
    cells = invoke("cells")
    for name in landscape.CELLS:
        assert name in cells.output
    assert "w_f[1, 1]=1" in cells.output and "c' = f*c + i*z" in cells.output
    tasks = invoke("tasks")
    for name in landscape.TASKS:
        assert name in tasks.output
    assert "noise = 0.1" in tasks.output


def test_cache_ls_show_rm(tmp_path):
    invoke("grid", *SMALL, "-q")
    ls = invoke("cache", "ls")
    assert "(1 surface)" in ls.output and "pascanu" in ls.output and "complete" in ls.output
    key = ls.output.splitlines()[1].split()[0]
    show = invoke("cache", "show", key[:6])
    assert '"cell": "pascanu"' in show.output and "chunks done" in show.output
    cache = tmp_path / "cache"
    assert [f.name for f in cache.iterdir()] == [f"pascanu-target-{key}.h5"]  # the lock went with its run
    rm = invoke("cache", "rm", key)
    assert "removed" in rm.output
    assert "0 surfaces" in invoke("cache", "ls").output
    assert list(cache.iterdir()) == []
    bad = CliRunner().invoke(main, ["cache", "show", "nope"])
    assert bad.exit_code == 2 and "no cached surface matches 'nope'" in bad.output


def test_python_dash_m_and_console_script_work(tmp_path):
    r = subprocess.run([sys.executable, "-m", "landscape", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0 and "grid" in r.stdout and "cache" in r.stdout
    script = Path(sys.executable).with_name("landscape")  # the console script pip installed beside python
    if not script.exists():
        pytest.skip(f"no console script beside {sys.executable} (landscape is not pip-installed here)")
    env = {**os.environ, "LANDSCAPE_CACHE": str(tmp_path)}
    r = subprocess.run([str(script), "--help"], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert r.returncode == 0 and "grid" in r.stdout and "cache" in r.stdout
    r = subprocess.run([str(script), "cells", "srnn"], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert r.returncode == 0 and "h' = tanh(w h + u x + b)" in r.stdout


_EXIT = ("import atexit, sys, threading, time\n"
         "atexit.register(lambda: print('atexit ran', flush=True))\n"
         "threading.Thread(target=lambda: (time.sleep(0.2), print('thread done'))).start()\n"
         "print('unflushed', end='')\n"
         "code = {code!r}\n")


@pytest.mark.parametrize("code", [None, 0, 3, -1, 300, "bye"])
def test_exit_now_ends_as_the_interpreter_would(code):
    """landscape.cli._exit_now (how the program leaves) against sys.exit: the same status, the same
    stdout (a non-daemon thread joined, the atexit handlers run, unflushed text written) and stderr."""
    def run(leave):
        return subprocess.run([sys.executable, "-c", _EXIT.format(code=code) + leave], cwd=ROOT, capture_output=True,
                              text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60, check=False)

    ours, theirs = run("from landscape.cli import _exit_now; _exit_now(code)"), run("sys.exit(code)")
    assert (ours.returncode, ours.stdout, ours.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr)
    assert "atexit ran" in ours.stdout and "thread done" in ours.stdout


def test_the_program_writes_the_same_file_and_status_as_in_process(tmp_path):
    """python -m landscape grid (leaving by _exit_now) writes a complete file with the losses that
    landscape.grid computes here, exit status 0; a bad option is still one line and status 2."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LANDSCAPE_CACHE": str(tmp_path / "cache")}
    out = tmp_path / "g.h5"
    r = subprocess.run([sys.executable, "-m", "landscape", "grid", *SMALL, "--out", str(out), "--quiet"], cwd=ROOT,
                       capture_output=True, text=True, env=env, timeout=300, check=False)
    assert r.returncode == 0 and f"wrote {out}" in r.stdout, r.stderr
    here = landscape.grid(cell="pascanu", task="target", x="w:4.5:5.5:6", y="b:-2.9:-1.9:5", T=(1, 5, 50),
                          out=tmp_path / "here.h5")
    assert np.array_equal(landscape.load(out).loss, here.surface.loss)
    bad = subprocess.run([sys.executable, "-m", "landscape", "grid", "--cell", "lstmm"], cwd=ROOT, capture_output=True,
                         text=True, env=env, timeout=120, check=False)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "unknown cell 'lstmm'" in bad.stderr


BAD = [
    (["--cell", "lstmm"], "unknown cell 'lstmm'; choose from: srnn, pascanu, lstm"),
    (["--task", "nope"], "unknown task 'nope'; choose from: target, latch"),
    (["--x", "v:0:1:3"], "unknown parameter 'v' for cell srnn"),
    (["--x", "w:1:0:10"], "MIN must be below MAX"),
    (["--x", "w:0:1:1"], "NUM must be between 2"),
    (["--x", "w:zero:1:5"], "MIN and MAX must be numbers"),
    (["--x", "w:0:1:many"], "NUM must be an integer"),
    (["--x", "w:0:1"], "malformed axis 'w:0:1'"),
    (["--T", "0"], "T must be positive integers; got 0"),
    (["--T", "-3"], "T must be positive integers; got -3"),
    (["--T", ""], "T is empty"),
    (["--T", "5,x"], "T must be positive integers; got 'x'"),
    (["-H", "4", "--x", "w:0:1:3", "--y", "b[0]:0:1:3"], "has shape (4, 4), not a scalar; address one element, e.g. w[0,0]"),
    (["--x", "b:0:1:3", "--y", "b:0:2:3"], "the same parameter 'b' is on both axes"),
    (["--x", "w:0:1:3", "--y", "out_w:0:1:3"], "out_w is fitted at every point with --readout optimal"),
    (["--set", "q=1"], "unknown parameter 'q'"),
    (["--set", "w"], "malformed --set 'w'; write NAME=VALUE"),
    (["--set", "w=abc"], "the value must be a number"),
    (["--cell-opt", "gate=relu", "--cell", "lstm"], "unknown gate activation 'relu'"),
    (["--cell-opt", "foo=1"], "cell srnn has no option 'foo'"),
    (["--task-set", "noise=loud"], "task parameter noise='loud' is not a float"),
    (["--task", "target", "--readout", "optimal"], "task target has no trained readout"),
    (["--dtype", "float16"], "Invalid value for '--dtype'"),
    (["--n", "0"], "number of sequences must be >= 1"),
    (["--memory", "1K", "--n", "1000"], "but the memory budget is 1.0 KiB"),
    (["--memory", "inf"], "memory size 'inf' must be a positive, finite size"),
    (["--memory", "nan"], "memory size 'nan' must be a positive, finite size"),
    (["--memory", "-1G"], "memory size '-1G' must be a positive, finite size"),
    (["--T", "100000", "--x", "w:0:1:5", "--y", "b:0:1:5"], "(100000 steps x 1000 sequences x 1 input, and the "
                                                             "file writer's buffers) and one grid point need about"),
    # non-finite or out-of-domain inputs are refused when the spec is resolved, before anything is made
    (["--set", "w=nan", "--x", "b:0:1:3", "--y", "out_b:0:1:3", "--readout", "fixed"], "the value must be finite"),
    (["--set", "w=inf", "--x", "b:0:1:3", "--y", "out_b:0:1:3", "--readout", "fixed"], "the value must be finite"),
    (["--set", "out_b=nan"], "the value must be finite"),
    (["--readout-l2", "inf"], "readout_l2"),
    (["--readout-l2", "nan"], "readout_l2"),
    (["--task-set", "noise=nan"], "noise=nan is not finite"),
    (["--task-set", "noise=-1"], "noise=-1.0 must be >= 0"),
    (["--task", "target", "--task-set", "x0=nan"], "x0=nan is not finite"),
    (["--x", "w:-1e308:1e308:11"], "the span MAX - MIN overflows"),
    (["--x", "w:nan:1:3"], "MIN and MAX must be finite"),
    (["--x", "w:0:inf:3"], "MIN and MAX must be finite"),
    (["--dtype", "float32", "--x", "w:0:1e39:3"], "is not representable in float32"),
    (["--dtype", "float32", "--x", "w:-4e38:0:3"], "is not representable in float32"),
    (["--set", "w=1", "--x", "w:0:1:3"], "--set w: w is on an axis"),
    (["--memory", "lots"], "malformed memory size 'lots'"),
    (["--chunk-size", "0"], "chunk size must be >= 1"),
    (["--device", "tpu"], "unknown device 'tpu'; choose from: auto, cpu, cuda"),
    (["--threads", "-1"], "must be a positive count, not -1"),
    (["--threads", "two"], "'two' is not a valid integer"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_clear_line_and_writes_nothing(tmp_path, args, message):
    out = tmp_path / "never.h5"
    r = CliRunner().invoke(main, ["grid", *args, "--out", str(out)])
    assert r.exit_code == 2, r.output
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.output
    assert message in lines[0], lines[0]
    assert not out.exists() and not (tmp_path / "cache").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error when no GPU is present")
def test_device_cuda_without_gpu_is_refused(tmp_path):
    r = CliRunner().invoke(main, ["grid", *SMALL, "--device", "cuda", "--out", str(tmp_path / "x.h5")])
    assert r.exit_code == 2 and "no CUDA GPU is available" in r.output
    assert not (tmp_path / "x.h5").exists()


def test_unwritable_out_and_corrupt_cache_file(tmp_path):
    blocker = tmp_path / "f"
    blocker.write_text("")
    r = CliRunner().invoke(main, ["grid", *SMALL, "--out", str(blocker / "x.h5")])
    assert r.exit_code == 2 and r.output.startswith("error: cannot write")
    (tmp_path / "bad.h5").write_bytes(b"\x89HDF garbage")
    r = CliRunner().invoke(main, ["grid", *SMALL, "--out", str(tmp_path / "bad.h5")])
    assert r.exit_code == 2 and "not a readable HDF5 file" in r.output
    r = CliRunner().invoke(main, ["grid", *SMALL, "--out", str(tmp_path / "bad.h5"), "--force", "-q"])
    assert r.exit_code == 0 and landscape.load(tmp_path / "bad.h5").complete


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_grid_equals_cpu_grid(tmp_path):
    args = ["grid", "--cell", "lstm", "--x", "b_f:-2:3:7", "--y", "w_z:-1:2:5", "--T", "3,20", "--n", "64", "-q"]
    invoke(*args, "--device", "cpu", "--out", str(tmp_path / "cpu.h5"))
    invoke(*args, "--device", "cuda", "--out", str(tmp_path / "gpu.h5"))
    np.testing.assert_allclose(landscape.load(tmp_path / "gpu.h5").loss, landscape.load(tmp_path / "cpu.h5").loss,
                               rtol=1e-9, atol=1e-12)


def test_grid_grads_stores_the_gradient_fields_with_scales(tmp_path):
    import h5py

    out = tmp_path / "g.h5"
    r = invoke("grid", "--cell", "lstm", "--x", "b_f:-1:2:3", "--y", "w_z:0:1:4", "--T", "2,6", "--n", "16",
               "--grads", "--out", str(out), "--chunk-size", "5")
    assert r.exit_code == 0, r.output
    assert "|grad|" in r.output and "grad_norm_c_t" in r.output
    with h5py.File(out, "r") as f:
        assert f["grad"].shape == (2, 3, 4, 2) and f["hessian_eigvals"].shape == (2, 3, 4, 2)
        assert f["grad_norm_t"].shape == (3, 4, 6) and f["grad_norm_c_t"].shape == (3, 4, 6)
        assert [f["grad"].dims[d][0].name for d in range(3)] == ["/T", "/b_f", "/w_z"]
        assert [f["grad_norm_t"].dims[d][0].name for d in range(2)] == ["/b_f", "/w_z"]
        eig = f["hessian_eigvals"][()]
        assert np.isfinite(eig).all() and (eig[..., 0] <= eig[..., 1]).all()


def test_default_axes_take_the_first_element_for_H_above_1():
    r = landscape.resolve(landscape.GridSpec.of(cell="srnn", task="relay"))
    assert (r.problem.H, r.x.name, r.y.name) == (8, "w[0,0]", "b[0]")


@pytest.mark.parametrize("threads", ["1", "2"])
def test_threads_option_sets_the_workers_and_keeps_the_numbers(tmp_path, threads):
    """--threads N: the fused kernels' worker threads (default every core), torch on one thread;
    the numbers do not depend on it."""
    from landscape.kernels import runtime

    before = torch.get_num_threads()
    try:
        r = invoke("grid", *SMALL, "--threads", threads, "--out", str(tmp_path / f"t{threads}.h5"))
        assert r.exit_code == 0, r.output
        assert runtime.default_threads() == int(threads) and torch.get_num_threads() == 1
        ref = invoke("grid", *SMALL, "--out", str(tmp_path / "ref.h5"))  # the default: every core
        assert ref.exit_code == 0 and runtime.THREADS is None and torch.get_num_threads() == 1
        np.testing.assert_array_equal(landscape.load(tmp_path / f"t{threads}.h5").loss,
                                      landscape.load(tmp_path / "ref.h5").loss)
    finally:
        torch.set_num_threads(before)
        runtime.THREADS = None


# ---------------------------------------------------------------------------------------------
# fuzzing: a few hundred generated invocations, good and bad values mixed; none may print a
# traceback or an "internal error": each ends with exit 0, or with one `error:` line and exit 2

NUMS = ["0", "1", "-1", "2", "0.5", "1e308", "-1e308", "nan", "inf", "-inf", "1e-320", "abc", "", "0x10", "1e39",
        "3.5", "-0", "1_0", " 2"]
NAMES = ["w", "b", "u", "out_w", "out_b", "b_f", "w_z", "w[0,0]", "w[", "q", "", "T", "b[0]", "t", "loss"]
BAD_AXES = ["w:0:1", "w:0:1:3:lin", "::::", "w:1:0:3", "w:0:1:1", "w:0:1:100001", "b:0:1:2.5", "w:nan:1:3", "w:0:inf:3",
            "w:-1e308:1e308:3", "w:0:1:3:log", "w:1e38:1e39:3"]


def _axis(rng, bad=False):
    lo, hi = rng.choice([("0", "1"), ("-1", "2"), ("4.5", "5.5"), ("-2.9", "-1.9"), ("1e-3", "1")])
    name = rng.choice(["w", "b", "u", "b_f", "w_z", "out_b"])
    if not bad:
        return f"{name}:{lo}:{hi}:{rng.choice(['2', '3'])}" + (":log" if lo == "1e-3" else "")
    return rng.choice([rng.choice(BAD_AXES), f"{rng.choice(NAMES)}:{lo}:{hi}:3", f"{name}:{rng.choice(NUMS)}:{hi}:3",
                       f"{name}:{lo}:{rng.choice(NUMS)}:2", f"{name}:{lo}:{hi}:{rng.choice(['1', '0', 'x', '-2'])}"])


def _build(rng, command, options, flags=(), max_bad=2):
    """command + options, each (name, good values, bad values, probability of appearing); all
    good but for up to max_bad options given a bad value."""
    chosen = [(name, good, bad) for name, good, bad, p in options if rng.random() < p]
    n_bad = min(len(chosen), rng.choice([0, 0, 1, 1, 2][: 2 + max_bad + 1]))
    bad_at = set(rng.sample(range(len(chosen)), n_bad))
    args = list(command)
    for k, (name, good, bad) in enumerate(chosen):
        value = good(rng) if callable(good) else rng.choice(good)
        if k in bad_at:
            value = bad(rng) if callable(bad) else rng.choice(bad)
        args += [name, value] if name else [value]
    return args + [flag for flag, p in flags if rng.random() < p]


def _fuzz_grid(rng, tmp):
    return _build(rng, ["grid", "-q"], [
        ("--cell", ["srnn", "pascanu", "lstm", "gru"], ["lstmm", "", "nofile.py:X", f"{tmp}/bad.py:X", "os:path",
                                                        "landscape.cells:Cell"], 0.9),
        ("--task", ["latch", "target", "two-sequence", "relay", "bengio"], ["x", "", "latch "], 0.9),
        ("--x", _axis, lambda r: _axis(r, True), 1.0),
        ("--y", _axis, lambda r: _axis(r, True), 1.0),
        ("--T", ["1", "3", "2,4", "5,3"], ["0", "-1", "", "a", "1,,2", "1e3", "3.5", "1000000000000"], 1.0),
        ("--n", ["1", "4", "8"], ["0", "-1", "x", "1e2"], 1.0),
        ("--set", ["w=1", "b=0.5", "u=0.3"], ["w=nan", "q=1", "w", "=1", "w[5,5]=1", "out_w=inf", "b=1e400"], 0.3),
        ("--task-set", ["noise=0.2"], ["noise=nan", "noise=-1", "noise=x", "x0=nan", "foo=1", "noise", "lag=-1"], 0.2),
        ("--cell-opt", ["gate=hard_sigmoid"], ["gate=relu", "foo=1", "form=reset_before", "gate"], 0.2),
        ("--readout", ["fixed", "optimal", "auto"], ["bogus"], 0.3),
        ("--readout-l2", ["1e-4", "0.1"], ["0", "-1", "inf", "nan", "x"], 0.2),
        ("--dtype", ["float32", "float64"], ["float16", ""], 0.3),
        ("--memory", ["1G", "64M"], ["1K", "inf", "nan", "-1", "0", "lots", "1e30", ""], 0.3),
        ("--chunk-size", ["1", "2", "5"], ["0", "-3", "x", "1000000000"], 0.4),
        ("--device", ["cpu"], ["tpu", "", "cuda:99"], 0.2),
        ("--out", [f"{tmp}/a.h5", f"{tmp}/b.h5", f"{tmp}/c.h5"],
         [str(tmp), f"{tmp}/file/x.h5", f"{tmp}/garbage.h5", f"{tmp}/noext", "", f"{tmp}/corrupt.h5", f"{tmp}/v1.h5",
          f"{tmp}/nospec.h5", f"{tmp}/fp.h5", f"{tmp}/fp-corrupt.h5", f"{tmp}/moved.h5"], 0.6),
        ("--base", [f"{tmp}/a.h5"], [f"{tmp}/garbage.h5", f"{tmp}/missing.h5", str(tmp), f"{tmp}/file", f"{tmp}/fp.h5",
                                     f"{tmp}/fp-corrupt.h5", f"{tmp}/noplane.h5", f"{tmp}/s-flipped.h5"], 0.15),
        ("--seed", ["0", "7"], ["-1", "x", "99999999999999999999"], 0.2),
        ("--threads", ["1"], ["-1", "x"], 0.1),
        ("--directions", ["random"], ["bogus", "models", "line"], 0.08),
        ("--base-model", [f"{tmp}/missing.pt"], [f"{tmp}/garbage.h5:g", f"{tmp}/a.h5:x:0", "x.pt"], 0.05),
    ], flags=(("--grads", 0.2), ("--force", 0.2)))


DAMAGED = ["corrupt.h5", "v1.h5", "nospec.h5", "noplane.h5", "moved.h5", "fp.h5", "fp-corrupt.h5", "fp-old.h5",
           "fp-swapped.h5", "fp-flipped.h5", "s-flipped.h5"]  # _fuzz_files: damaged files of every kind (and fp.h5)


def _fuzz_other(rng, tmp):
    kind = rng.choice(["plot", "plot", "plot", "cache", "grads", "grads", "dynamics", "info", "train", "check",
                       "check"])
    files = [f"{tmp}/garbage.h5", f"{tmp}/missing.h5", str(tmp), *(f"{tmp}/{name}" for name in DAMAGED)]
    if kind == "check":
        return ["check", *rng.sample([f"{tmp}/a.h5", f"{tmp}/g.h5", f"{tmp}/p.h5", *files], rng.choice([1, 1, 2, 3]))]
    if kind == "plot":
        return _build(rng, ["plot"], [
            ("", [f"{tmp}/a.h5", f"{tmp}/g.h5"], files, 1.0),
            ("", [f"{tmp}/a.h5"], files, 0.2),
            ("--dpi", ["20"], ["-1", "0", "x", "nan"], 1.0),
            ("--kind", ["contour", "slices", "panels", "compare", "gradnorm", "curvature", "surface"], ["bogus", ""], 1.0),
            ("--out", [f"{tmp}/p.png"], [f"{tmp}/p.xyz", str(tmp), f"{tmp}/file/p.png", ""], 1.0),
            ("--T", ["1", "5", "1,5"], ["7", "x", "0"], 0.3),
            ("--at", ["w=5", "b=-2"], ["q=1", "w", "w=nan"], 0.2),
            ("--width", ["single", "3"], ["-1", "x", "nan"], 0.2),
            ("--style", ["paper", "talk"], ["x"], 0.2),
            ("--basin", ["0.5"], ["nan", "x"], 0.1),
            ("--elev", ["10"], ["nan", "x"], 0.1),
        ], flags=(("--log", 0.15), ("--symlog", 0.1), ("--folds", 0.15)), max_bad=1)
    if kind == "cache":
        return rng.choice([["cache", "ls"], ["cache", "ls", "--check"], ["cache", "show", rng.choice(["", "0", "zz", *files])],
                           ["cache", "rm", rng.choice(["nope", "0"])], ["cache", "bogus"], ["cache", "show"]])
    if kind == "grads":
        return _build(rng, ["grads"], [
            ("--cell", ["srnn", "lstm", "pascanu"], ["x"], 0.9), ("--task", ["latch", "target"], ["x"], 0.8),
            ("--T", ["5", "3"], ["0", "x", "2,3", "-1", "1000000000000"], 1.0), ("--n", ["4", "8"], ["0", "x"], 1.0),
            ("--at", ["w=1", "w=1,b=2", "b_f=0.3"], ["q=1", "w=nan", "w"], 0.4),
            ("--method", ["auto", "scalar", "autograd"], ["bogus"], 0.3), ("--rows", ["3"], ["0", "-1"], 0.2),
            ("--memory", ["1G"], ["inf", "1K", "x"], 0.2), ("--readout", ["fixed", "optimal"], ["x"], 0.3),
            ("--out", [f"{tmp}/g.csv"], [str(tmp), f"{tmp}/file/g.csv"], 0.3), ("--dtype", ["float32"], ["x"], 0.2)])
    if kind == "dynamics":
        sub = rng.choice(["basin", "bifurcation", "fixed-points", "folds", "bogus"])
        return _build(rng, ["dynamics", sub], [
            ("--cell", ["srnn", "pascanu"], ["lstm", "x"], 0.9), ("--w", ["5", "4,5", "1:2:3"], ["nan", "x", "inf"], 0.8),
            ("--b", ["-2.4", "0:1:3"], ["x", "nan"], 0.5), ("--x0", ["0.5"], ["2", "nan"], 0.3),
            ("--c", ["0"], ["inf", "x"], 0.3), ("--out", [f"{tmp}/d.csv"], [str(tmp)], 0.3)], max_bad=1)
    if kind == "info":
        return rng.choice([["cells"], ["tasks"], ["cells", "srnn"], ["tasks", "latch"], ["tasks", "x"], ["cells", "--x"],
                           ["bogus"], ["--bogus"], []])
    return _build(rng, ["train", "-q"], [
        ("--cell", ["srnn"], ["x"], 1.0), ("--T", ["2"], ["0", "x"], 1.0), ("--n", ["24"], ["0"], 1.0),
        ("--epochs", ["1"], ["0", "-1"], 1.0), ("--repeats", ["1"], ["0"], 1.0), ("--batch", ["4"], ["0", "100"], 1.0),
        ("--out", [f"{tmp}/r.csv", f"{tmp}/r.h5"], [f"{tmp}/r.txt", str(tmp), f"{tmp}/garbage.h5"], 0.5)], max_bad=1)


def _fuzz_files(tmp):
    """The files the generated invocations point at: a good surface, a plane grid and a fixed-point
    file, garbage, damaged files of every kind (``DAMAGED``: edited, format 1, spec not JSON, a plane
    grid without its plane, a chunk moved with its digest, a fixed-point file edited, of before, with
    two inputs swapped, bytes flipped), a plain file blocking a folder, a broken cell file; the cache
    holds a fixed-point file and a damaged one for `cache ls --check`."""
    good = landscape.grid(cell="pascanu", task="target", T=(1, 5), x="w:4.5:5.5:3", y="b:-2.9:-1.9:3",
                          out=tmp / "a.h5", progress=False)
    landscape.grid(cell="pascanu", task="target", T=(1, 5), x="w:4.5:5.5:3", y="b:-2.9:-1.9:3", grads=True,
                   out=tmp / "g.h5", progress=False)
    (tmp / "garbage.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    (tmp / "file").write_text("x")
    (tmp / "bad.py").write_text("def (:\n")
    import h5py

    from landscape.attractors import compute_fixed_points, resolve_fixed_point_model, search_options, write_fixed_points
    from landscape.model import ModelSpec

    plane = landscape.grid(cell="srnn", task="latch", T=(2,), n=4, directions="random", x="a:-1:1:3", y="b:-1:1:2",
                           out=tmp / "p.h5", progress=False, chunk_size=2)
    problem, _ = resolve_fixed_point_model(ModelSpec(cell="srnn", task="latch", hidden=2, set=(("w", "2"),)))
    write_fixed_points(compute_fixed_points(problem, np.array([0.0, 1.0]), 4, 4, 0, search_options(4), steps=5),
                       tmp / "fp.h5")

    def moved(f):
        f["loss"][:, 0, :] = f["loss"][:, 1, :]
        f["digest"][0] = f["digest"][1]

    for name, src, change in (
            ("corrupt.h5", good.path, lambda f: f["loss"].__setitem__((0, 0, 0), 1.0)),
            ("nospec.h5", good.path, lambda f: f.attrs.modify("spec", "not json")),
            ("v1.h5", good.path, lambda f: f.attrs.modify("format_version", 1)),
            ("noplane.h5", plane.path, lambda f: f.__delitem__("plane")),
            ("moved.h5", plane.path, moved),
            ("fp-corrupt.h5", tmp / "fp.h5", lambda f: f["points"].__setitem__((0, 0, 0), 0.5)),
            ("fp-old.h5", tmp / "fp.h5", lambda f: f.attrs.__delitem__("format_version")),
            ("fp-swapped.h5", tmp / "fp.h5", lambda f: [f[n].__setitem__(slice(None), f[n][()][::-1])
                                                      for n in ("x", "points", "digest")])):
        (tmp / name).write_bytes(Path(src).read_bytes())
        with h5py.File(tmp / name, "r+") as f:
            change(f)
    for name, src in (("fp-flipped.h5", tmp / "fp.h5"), ("s-flipped.h5", good.path)):
        data = bytearray(Path(src).read_bytes())
        for at in range(211, len(data), 1031):
            data[at] ^= 0x5A
        (tmp / name).write_bytes(bytes(data))
    (tmp / "cache").mkdir(exist_ok=True)
    for name in ("fp.h5", "fp-corrupt.h5", "fp-old.h5"):
        (tmp / "cache" / name).write_bytes((tmp / name).read_bytes())


def test_fuzzed_invocations_never_print_a_traceback(tmp_path):
    import random

    from landscape.kernels import runtime

    rng = random.Random(20240)
    _fuzz_files(tmp_path)
    threads = torch.get_num_threads()
    failures, counts = [], {"ok": 0, "error": 0}
    try:
        for i in range(300):
            args = _fuzz_grid(rng, tmp_path) if i % 2 == 0 else _fuzz_other(rng, tmp_path)
            r = CliRunner().invoke(main, args)
            lines = [line for line in r.output.splitlines() if line.strip()]
            bad = (r.exception is not None and not isinstance(r.exception, SystemExit)) or "Traceback" in r.output
            if args[:1] == ["check"]:  # one line per file; exit 0 all ok, 1 one damaged, 2 one not checked
                bad = bad or r.exit_code not in (0, 1, 2) or len(lines) != len(args) - 1
                bad = bad or not all(line.split(":")[0] in ("ok", "DAMAGED", "UNVERIFIED", "NOT CHECKED") for line in lines)
                counts["ok" if r.exit_code < 2 else "error"] += 1
            elif r.exit_code == 2:  # one error line, the last; for grid nothing else (it checks before it prints)
                errors = [line for line in lines if line.startswith("error: ")]
                bad = bad or len(errors) != 1 or lines[-1] != errors[0] or "internal error" in errors[0]
                bad = bad or (args[0] == "grid" and len(lines) != 1)
                counts["error"] += 1
            elif r.exit_code == 0:
                counts["ok"] += 1
            else:
                bad = True
            if bad:
                failures.append((args, r.exit_code, r.output[-500:], repr(r.exception)))
    finally:
        torch.set_num_threads(threads)
        runtime.THREADS = None
    assert not failures, "\n".join(map(str, failures[:5])) + f"\n({len(failures)} of 300)"
    assert counts["ok"] >= 20 and counts["error"] >= 150, counts
