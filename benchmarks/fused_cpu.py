"""The fused CPU kernels (``landscape.kernels.fused_cpu``) against JAX and today's engine (``--only fused-cpu``).

Three candidates compute the same losses, timed alternately in one run, one core each
(``threads=1``, torch's one thread, XLA's CPU threading off), compute only: data and parameters are
made before the clock starts and every candidate is run once untimed first (JAX compiles then):

- ``fused``: ``kernels.fast_path.losses``: ``fused_kernel(cell, D, dtype).outputs(...)`` for the
  outputs at T, then the loss from the fused readout kernels (``kernels.fit``);
- ``jax``: ``benchmarks.jax_baseline`` (jit, lax.scan, the grid as a batch dimension in chunks of 32
  members, x64 for float64; skipped with a note when jax is not installed);
- ``engine``: ``engine.unroll_losses`` (the in-place torch steppers where the cell has one, else
  ``cell.step``).

Cases: srnn, lstm and gru on latch (fixed readout, 101 x 101 over the cell's default axes, N = 1000,
T = 100) and pascanu on target (501 x 501, T = 50, N = 1), float64 and float32. The fused losses are
checked against the engine's in the same run (the note gives the largest relative difference).

Also: the fused kernel on 1 and on 2 threads (wall clock, a 201 x 201 srnn grid), its first-call
time in a fresh process with an empty and with a warm kernel cache, and the readout fit of the
headline command (``landscape grid --cell srnn --T 50``: 201 x 201, N = 1000, the optimal readout)
fused against the torch fit.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

import landscape
from landscape import Axis, GridSpec, engine
from landscape.spec import default_axes

from . import jax_baseline
from .common import Row, Settings, speedup_row, timed

NAME = "fused-cpu"
ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")
JAX_TARGET = ">= 1.25"  # the fused kernel at most 0.8x JAX's time


def sizes(s: Settings) -> dict:
    if s.quick:
        return dict(num=6, n=40, T=10, target_num=21, target_T=10, big_num=12, fit_num=8, fit_n=60)
    return dict(num=101, n=1000, T=100, target_num=501, target_T=50, big_num=201, fit_num=201, fit_n=1000)


def run(s: Settings) -> list[Row]:
    from landscape.kernels.fused_cpu import enabled

    if not enabled():
        print("  fused-cpu: skipped (numba is not importable or LANDSCAPE_FAST=0)", flush=True)
        return []
    z = sizes(s)
    rows = []
    for dtype in ("float64", "float32"):
        for cell in ("srnn", "lstm", "gru"):
            rows += compare(s, latch_spec(cell, z["num"], z["n"], z["T"], dtype))
        spec = GridSpec(cell="pascanu", task="target", T=(z["target_T"],), n=1, dtype=dtype,
                        x=Axis("w", 4.5, 5.5, z["target_num"]), y=Axis("b", -2.9, -1.9, z["target_num"]))
        rows += compare(s, spec)
    rows += thread_scaling(s, latch_spec("srnn", z["big_num"], z["n"], z["T"], "float64"))
    rows += first_call(s)
    rows += readout_fit(s, z)
    return rows


def latch_spec(cell: str, num: int, n: int, T: int, dtype: str) -> GridSpec:
    ax, ay = (replace(Axis.parse(a), num=num) for a in default_axes(cell))
    return GridSpec(cell=cell, task="latch", T=(T,), n=n, fit="fixed", dtype=dtype, x=ax, y=ay)


# ---------------------------------------------------------------------------------------------
# the problem, and the three ways to compute it


class Problem:
    """A resolved grid with its data and the parameters of every point (one chunk)."""

    def __init__(self, spec: GridSpec):
        r = landscape.resolve(spec)
        self.r, self.spec = r, spec
        self.dtype = getattr(torch, spec.dtype)
        self.data = r.problem.task.make(r.Ts, r.n, spec.seed).to(self.dtype, CPU)
        xs, ys = torch.as_tensor(r.x.values()), torch.as_tensor(r.y.values())
        flat = torch.arange(len(xs) * len(ys))
        self.params = engine.chunk_params(r.problem.base, r.refs, (xs[flat // len(ys)], ys[flat % len(ys)]),
                                          self.dtype, CPU)
        self.P = len(flat)
        self.steps = self.P * r.n * max(r.Ts)

    def subset(self, m: int) -> dict:
        return {k: v[:m] if v.shape[0] == self.P else v for k, v in self.params.items()}


def engine_losses(problem: Problem, params: dict) -> torch.Tensor:
    """The engine's torch paths (before the fused kernels: fused=False): (K, P)."""
    r = problem.r
    with torch.no_grad():
        return engine.unroll_losses(r.problem, params, problem.data, r.Ts, fused=False)


def fused_losses(problem: Problem, params: dict, threads: int = 1) -> torch.Tensor:
    """The fused path (``kernels.fast_path.losses``: the fused unroll, then the fused readout
    kernels): (K, P)."""
    from landscape.kernels import fast_path

    r = problem.r
    out = fast_path.losses(r.problem, params, problem.data, r.Ts, threads=threads)
    if out is None:
        raise RuntimeError(f"no fused kernel for {r.problem.cell.describe()}")
    return out


def jax_runner(problem: Problem):
    r, data = problem.r, problem.data
    T = max(r.Ts)
    params = {k: v.reshape(v.shape[0]).to(torch.float64).numpy() for k, v in problem.params.items()
              if k not in ("out_w", "out_b")}
    x = None if data.inputs is None else data.inputs[..., 0].to(torch.float64).numpy()
    target = data.targets[T].to(torch.float64).numpy()
    if r.problem.readout.label == "fixed":
        ow, ob = float(problem.params["out_w"].reshape(-1)[0]), float(problem.params["out_b"].reshape(-1)[0])
        fn, _ = jax_baseline.make_losses(r.problem.cell.name, params, x, r.n, T, data.h0, problem.spec.dtype, "logistic",
                                         target, ow, ob)
    else:
        fn, _ = jax_baseline.make_losses(r.problem.cell.name, params, x, r.n, T, data.h0, problem.spec.dtype, "identity",
                                         target)
    return fn


def _quiet(fn, *args, **kwargs):
    """fn(*args) for ``timed``, which reads a returned value as a scale."""
    def call():
        fn(*args, **kwargs)

    return call


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().reshape(-1), b.double().reshape(-1)
    fin = torch.isfinite(a) & torch.isfinite(b)
    return float(((a - b).abs() / b.abs().clamp(min=1e-300))[fin].max()) if bool(fin.any()) else 0.0


def compare(s: Settings, spec: GridSpec) -> list[Row]:
    problem = Problem(spec)
    r = problem.r
    case = (f"{r.problem.cell.name} {r.problem.task.name} {r.x.num}x{r.y.num} N={r.n} T={max(r.Ts)} {spec.dtype}"
            + (" readout=fixed" if r.problem.readout.label == "fixed" else ""))
    funcs = {"fused": _quiet(fused_losses, problem, problem.params),
             "engine": _quiet(engine_losses, problem, problem.params)}
    few = problem.subset(4)
    warm = {"fused": lambda: fused_losses(problem, few), "engine": lambda: engine_losses(problem, few)}
    have_jax = jax_baseline.available() and r.problem.cell.name in jax_baseline.CELLS
    if have_jax:
        jfn = jax_runner(problem)
        funcs["jax"] = _quiet(jfn)
        warm["jax"] = jfn  # jit compiles for these shapes
    res = timed(s, funcs, warmup=warm)
    ref = engine_losses(problem, problem.params)
    got = fused_losses(problem, problem.params)
    agree = f"losses within {_rel(got, ref):.1e} relative of the engine's"
    per = problem.steps
    rows = []
    if have_jax:
        jl = torch.tensor(jfn()).reshape(1, -1)
        note = (f"fused {res['fused']['median'] / per * 1e9:.3f} ns, jax {res['jax']['median'] / per * 1e9:.3f} ns "
                f"per cell-step; {agree}; jax's within {_rel(jl, ref[-1:]):.1e}")
        rows.append(speedup_row(NAME, case, "fused kernel", "jax (jit, lax.scan, chunks of 32)", res, "fused", "jax",
                                target=JAX_TARGET, note=note))
    else:
        rows.append(Row(NAME, case, "fused kernel", "jax", res["fused"]["median"], float("nan"), "s", float("nan"),
                        "speedup (baseline / candidate)", note="jax is not installed: no baseline"))
    note = (f"engine {res['engine']['median'] / per * 1e9:.3f} ns per cell-step; {agree}")
    rows.append(speedup_row(NAME, case, "fused kernel", "engine.unroll_losses", res, "fused", "engine", note=note))
    return rows


# ---------------------------------------------------------------------------------------------
# threads, first call, readout fit


def thread_scaling(s: Settings, spec: GridSpec) -> list[Row]:
    """1 against 2 worker threads on one large grid, wall clock."""
    from landscape.kernels.fused_cpu import default_threads

    problem = Problem(spec)
    cores = min(2, default_threads())
    if cores < 2:
        return []
    wall = Settings(quick=s.quick, repeats=s.repeats, threads=2, clock="wall")
    res = timed(wall, {"2 threads": _quiet(fused_losses, problem, problem.params, threads=2),
                       "1 thread": _quiet(fused_losses, problem, problem.params, threads=1)},
                warmup={"x": lambda: fused_losses(problem, problem.subset(4))})
    r = problem.r
    case = f"srnn latch {r.x.num}x{r.y.num} N={r.n} T={max(r.Ts)} float64 (wall clock)"
    load = os.getloadavg()[0]
    return [speedup_row(NAME, case, "fused, 2 threads", "fused, 1 thread", res, "2 threads", "1 thread",
                        target=">= 1.7", note=f"target 0.85 x 2 cores; load average {load:.1f} during the run "
                                              f"(other processes take cores too)")]


_FIRST_CALL = r"""
import json, sys, time
t0 = time.perf_counter()
import torch
from landscape.cells import get_cell
t1 = time.perf_counter()
from landscape.kernels.fused_cpu import fused_kernel
k = fused_kernel(get_cell(sys.argv[1]), 1, torch.float64)
t2 = time.perf_counter()
N, T = 50, 20
p = {n: torch.full((3, *s), 0.5, dtype=torch.float64) for n, s in get_cell(sys.argv[1]).param_shapes(1, 1).items()}
k.outputs(p, torch.zeros(T, N, dtype=torch.float64), [torch.full((N,), T)], 0.0, threads=1)
t3 = time.perf_counter()
print(json.dumps({"imports": t1 - t0, "build": t2 - t1, "first_call": t3 - t2, "ok": k is not None}))
"""


def first_call(s: Settings) -> list[Row]:
    """fused_kernel + the first outputs() in a fresh process: empty kernel cache, then warm."""
    rows = []
    for cell in ("srnn", "lstm"):
        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "LANDSCAPE_CACHE": tmp, "PYTHONPATH": str(ROOT)}
            got = {}
            for kind in ("cold", "warm"):
                out = subprocess.run([sys.executable, "-c", _FIRST_CALL, cell], env=env, capture_output=True,
                                     text=True, timeout=600, cwd=ROOT)
                if out.returncode != 0:
                    raise RuntimeError(out.stderr[-2000:])
                got[kind] = json.loads(out.stdout.strip().splitlines()[-1])
        cold, warm = (got[k]["build"] + got[k]["first_call"] for k in ("cold", "warm"))
        note = (f"build + first call; cold (empty cache: trace, generate, numba compile, self-check) "
                f"{cold:.2f} s, warm (cached source and machine code) {warm:.2f} s; importing torch and "
                f"landscape {got['warm']['imports']:.2f} s before either")
        rows.append(Row(NAME, f"{cell} first call, fresh process", "warm kernel cache", "empty kernel cache", warm,
                        cold, "s", cold / warm, "speedup (baseline / candidate)", note=note,
                        extra={"repeats": 1}).check())
    return rows


def readout_fit(s: Settings, z: dict) -> list[Row]:
    """The headline command's optimal readout: the fused fit against the torch fit on the same
    outputs, the fit's share of the command, and the whole command's compute (unroll + fit + loss)
    fused against today's engine."""
    from landscape.kernels import fit as fused_fit
    from landscape.kernels.fused_cpu import fused_kernel
    from landscape.readouts import fit_logistic_readout, logistic_loss

    spec = GridSpec(cell="srnn", task="latch", T=(50,), n=z["fit_n"],
                    x=Axis("w", -1.0, 3.0, z["fit_num"]), y=Axis("b", -1.5, 1.5, z["fit_num"]))
    problem = Problem(spec)
    r, data = problem.r, problem.data
    kernel = fused_kernel(r.problem.cell, r.problem.D, problem.dtype)
    outs = kernel.outputs(problem.params, data.inputs[..., 0], [data.ends[T] for T in r.Ts], data.h0, threads=1)
    y, target, l2 = outs[0], data.targets[50], r.spec.readout_l2

    def torch_fit():
        with torch.no_grad():
            fit_logistic_readout(y.unsqueeze(-1), target, l2)

    def fused():
        fused_fit.fit_logistic_readout_1(y, target, l2, threads=1)

    res = timed(s, {"fused fit": fused, "torch fit": torch_fit,
                    "fused command": _quiet(fused_losses, problem, problem.params),
                    "engine command": _quiet(engine_losses, problem, problem.params)},
                warmup={"f": lambda: fused_fit.fit_logistic_readout_1(y[:4], target, l2, threads=1),
                        "c": _quiet(fused_losses, problem, problem.subset(4))})
    wt, bt = fit_logistic_readout(y.unsqueeze(-1), target, l2)
    wf, bf = fused_fit.fit_logistic_readout_1(y, target, l2, threads=1)
    lt = logistic_loss(y.unsqueeze(-1), wt, bt, target)
    lf = logistic_loss(y.unsqueeze(-1), wf, bf, target)
    engine_s, fused_s = res["engine command"]["median"], res["fused command"]["median"]
    share = res["torch fit"]["median"] / engine_s
    fused_share = res["fused fit"]["median"] / fused_s
    case = f"srnn latch {r.x.num}x{r.y.num} N={r.n} T=50 readout=optimal (landscape grid --cell srnn --T 50)"
    note = (f"the torch fit is {share:.0%} of today's engine.unroll_losses ({engine_s:.2f} s), the fused fit "
            f"{fused_share:.0%} of the fused command ({fused_s:.2f} s); losses within {_rel(lf, lt):.1e} relative")
    check = _rel(fused_losses(problem, problem.params), engine_losses(problem, problem.params))
    return [speedup_row(NAME, case, "fused fit", "torch fit (readouts.fit_logistic_readout)", res, "fused fit",
                        "torch fit", note=note),
            speedup_row(NAME, case, "fused command (fast_path.losses)", "engine.unroll_losses", res, "fused command",
                        "engine command", note=f"compute of the headline command, one core; losses within "
                                               f"{check:.1e} relative of the engine's")]


def main(argv=None) -> int:
    """``python -m benchmarks.fused_cpu [--quick] [--repeats R] [--out DIR]`` until it is registered in
    ``benchmarks/__main__.py`` (then ``python -m benchmarks --only fused-cpu``)."""
    import argparse

    from .common import machine, table, write_csv

    p = argparse.ArgumentParser(prog="python -m benchmarks.fused_cpu")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--repeats", type=int)
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "fused-cpu")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    s = Settings(quick=args.quick, repeats=args.repeats or (1 if args.quick else 3))
    info = machine()
    print(f"fused-cpu on {info['cpu']} ({info['cores']} cores), torch {info['torch']}, medians of {s.repeats}", flush=True)
    start = time.perf_counter()
    rows = run(s)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for path in (args.out / f"{stamp}.csv", args.out / "latest.csv"):
        write_csv(rows, path, s)
    print(table(rows))
    print(f"\nwrote {args.out / f'{stamp}.csv'} (and latest.csv) in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
