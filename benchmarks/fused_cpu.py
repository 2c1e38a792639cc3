"""The fused CPU kernels (``landscape.kernels.numba``) against JAX and the engine's ``cell.step`` path
(``--only fused-cpu``; in the default run: it needs numba, a core dependency, and skips itself with
a note without it; its JAX rows are skipped with a note where jax is not installed).

Three candidates compute the same losses, timed alternately in one run, one core each
(``threads=1``, torch's one thread, XLA's CPU threading off), compute only: data and parameters are
made before the clock starts and every candidate is run once untimed first (JAX compiles then):

- ``fused``: ``kernels.numba.losses.losses``: ``fused_kernel(cell, D, dtype).outputs(...)`` for the
  outputs at T, then the loss from the fused readout kernels (``kernels.numba.readout``), the optimal
  readout's fit among them;
- ``jax``: ``benchmarks.jax_baseline`` (jit, lax.scan, the grid as a batch dimension in chunks of 32
  members, x64 for float64; the optimal readout by a vmapped damped Newton with a fixed
  ``jax_baseline.NEWTON_ITERS`` steps, in float64 as landscape fits it, inside the same jitted map);
- ``numpy``: ``benchmarks.numpy_baseline`` (cache-blocked in-place ufuncs; the fixed readout and
  the target task only: an optimal readout in numpy is a per-member loop);
- ``engine``: ``engine.unroll_losses(..., fast=False)`` (``cell.step`` in torch, the path from
  before the fused kernels; the torch fit).

Cases (the issue's table): srnn, lstm and gru on latch with the fixed and with the optimal readout
(101 x 101 over the cell's default axes, N = 1000, T = 100) and pascanu on target (501 x 501,
T = 50, N = 1), float64 and float32. The fused losses are checked against the engine's in the same
run (the note gives the largest relative difference); for the optimal readout the JAX fit is also
run on the fused kernel's own outputs and must give the fused fit's losses to 1e-10 (the same
optimum; an AssertionError otherwise).

Also: the fused kernel's first-call time in a fresh process with an empty ($LANDSCAPE_KERNELS and
$NUMBA_CACHE_DIR fresh) and with a warm kernel cache, and the readout fit of the headline command
(``landscape grid --cell srnn --T 50``: 201 x 201, N = 1000, the optimal readout) fused against the
torch fit. Multi-core scaling is ``benchmarks/scaling.py``; whole processes ``benchmarks/process.py``.

``python -m benchmarks.fused_cpu`` (``main``) prints issue 27's open cases alone: the fused kernel
against JAX on one pinned core (``common.pin``), the opt-in fast class's row beside the exact one,
and ``floor.math_rows`` (tanh and sigmoid against XLA's).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from landscape import Axis, GridSpec, engine
from landscape.cells import cell_class

from . import jax_baseline, numpy_baseline
from .common import CORE, CPU_OVER_WALL, GridPoints, Row, Settings, pin, speedup_row, timed

NAME = "fused-cpu"
ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")
JAX_TARGET = ">= 1.25"  # the fused kernel at most 0.8x JAX's time


def sizes(s: Settings) -> dict:
    if s.quick:
        return dict(num=6, n=40, T=10, target_num=21, target_T=10, big_num=12, fit_num=8, fit_n=60)
    return dict(num=101, n=1000, T=100, target_num=501, target_T=50, big_num=201, fit_num=201, fit_n=1000)


def run(s: Settings) -> list[Row]:
    from landscape.kernels import unavailable

    why = unavailable("cpu")
    if why:
        print(f"  fused-cpu: skipped ({why})", flush=True)
        return []
    z = sizes(s)
    rows = []
    if not jax_baseline.available():
        print("  fused-cpu: the JAX rows skipped (jax is not installed; `pip install jax`)", flush=True)
    for dtype in ("float64",) if s.quick else ("float64", "float32"):  # quick: the code paths, once
        for cell in ("srnn", "lstm", "gru"):
            for fit in ("fixed", "optimal"):
                rows += compare(s, latch_spec(cell, z["num"], z["n"], z["T"], dtype, fit))
        rows += compare(s, target_spec(z, dtype))
    rows += first_call(s)
    rows += readout_fit(s, z)
    return rows


def target_spec(z: dict, dtype: str) -> GridSpec:
    """pascanu on the target task (N = 1), the issue's 501 x 501 grid at T = 50."""
    return GridSpec.of(cell="pascanu", task="target", T=(z["target_T"],), n=1, dtype=dtype,
                       x=Axis("w", 4.5, 5.5, z["target_num"]), y=Axis("b", -2.9, -1.9, z["target_num"]))


def latch_spec(cell: str, num: int, n: int, T: int, dtype: str, fit: str = "fixed") -> GridSpec:
    ax, ay = (replace(Axis.parse(a), num=num) for a in cell_class(cell).default_axes)
    return GridSpec.of(cell=cell, task="latch", T=(T,), n=n, fit=fit, dtype=dtype, x=ax, y=ay)


# ---------------------------------------------------------------------------------------------
# the problem, and the three ways to compute it


def engine_losses(problem: GridPoints, params: dict) -> torch.Tensor:
    """The engine's ``cell.step`` path (before the fused kernels: fast=False): (K, P)."""
    r = problem.r
    with torch.no_grad():
        return engine.unroll_losses(r.problem, params, problem.data, r.Ts, fast=False)


def fused_losses(problem: GridPoints, params: dict, threads: int = 1, math_class: str = "exact") -> torch.Tensor:
    """The fused path (``kernels.numba.losses.losses``: the fused unroll, then the fused readout
    kernels): (K, P); raises Unsupported where the cell has no fused kernel. math_class 'fast': the
    opt-in accuracy class (float32's sigmoid as XLA's)."""
    from landscape.kernels.numba.losses import losses

    r = problem.r
    return losses(r.problem, params, problem.data, r.Ts, threads=threads, math_class=math_class)


def jax_runner(problem: GridPoints, iters: int = jax_baseline.NEWTON_ITERS, chunk: int = 32):
    """jax_baseline's run() for this grid (``chunk`` members per scan; 0: the whole grid in one,
    as on a GPU)."""
    r, data = problem.r, problem.data
    T = max(r.Ts)
    params = {k: v.reshape(v.shape[0]).to(torch.float64).numpy() for k, v in problem.params.items()
              if k not in ("out_w", "out_b")}
    x = None if data.inputs is None else data.inputs[..., 0].to(torch.float64).numpy()
    target = data.targets[T].to(torch.float64).numpy()
    readout = r.problem.readout
    if readout.label == "fixed":
        ow, ob = float(problem.params["out_w"].reshape(-1)[0]), float(problem.params["out_b"].reshape(-1)[0])
        fn, _ = jax_baseline.make_losses(r.problem.cell.name, params, x, r.n, T, data.h0, problem.spec.dtype, "logistic",
                                         target, ow, ob, chunk=chunk)
    elif readout.optimal:
        fn, _ = jax_baseline.make_losses(r.problem.cell.name, params, x, r.n, T, data.h0, problem.spec.dtype, "optimal",
                                         target, l2=readout.l2, iters=iters, chunk=chunk)
    else:
        fn, _ = jax_baseline.make_losses(r.problem.cell.name, params, x, r.n, T, data.h0, problem.spec.dtype, "identity",
                                         target, chunk=chunk)
    return fn


def numpy_runner(problem: GridPoints):
    """numpy_baseline's run() for the fixed readout or the target task, else None."""
    r, data = problem.r, problem.data
    readout = r.problem.readout
    if readout.optimal or r.problem.cell.name not in numpy_baseline.CELLS:
        return None
    T = max(r.Ts)
    params = {k: v.reshape(v.shape[0]).to(torch.float64).numpy() for k, v in problem.params.items()
              if k not in ("out_w", "out_b")}
    x = None if data.inputs is None else data.inputs[..., 0].to(torch.float64).numpy()
    target = data.targets[T].to(torch.float64).numpy()
    if readout.label == "fixed":
        ow, ob = float(problem.params["out_w"].reshape(-1)[0]), float(problem.params["out_b"].reshape(-1)[0])
        return numpy_baseline.make_losses(r.problem.cell.name, params, x, r.n, T, data.h0, problem.spec.dtype,
                                          "logistic", target, ow, ob)
    return numpy_baseline.make_losses(r.problem.cell.name, params, x, r.n, T, data.h0, problem.spec.dtype,
                                      "identity", target)


def _quiet(fn, *args, **kwargs):
    """fn(*args) for ``timed``, which reads a returned value as a scale."""
    def call():
        fn(*args, **kwargs)

    return call


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().reshape(-1), b.double().reshape(-1)
    fin = torch.isfinite(a) & torch.isfinite(b)
    return float(((a - b).abs() / b.abs().clamp(min=1e-300))[fin].max()) if bool(fin.any()) else 0.0


def compare(s: Settings, spec: GridSpec, peers: tuple[str, ...] = ("jax", "numpy", "engine"),
            math_class: str = "exact") -> list[Row]:
    """The fused kernel (of ``math_class``) against each of ``peers`` (jax, numpy, engine) on one
    grid, timed alternately."""
    problem = GridPoints(spec)
    r = problem.r
    label = r.problem.readout.label
    case = (f"{r.problem.cell.name} {r.problem.task.name} {r.x.num}x{r.y.num} N={r.n} T={max(r.Ts)} {spec.dtype}"
            + (f" readout={label}" if label != "none" else "")
            + (f" math={math_class}" if math_class != "exact" else ""))
    funcs = {"fused": _quiet(fused_losses, problem, problem.params, math_class=math_class)}
    few = problem.subset(4)
    warm = {"fused": lambda: fused_losses(problem, few, math_class=math_class)}
    if "engine" in peers:
        funcs["engine"] = _quiet(engine_losses, problem, problem.params)
        warm["engine"] = lambda: engine_losses(problem, few)
    have_jax = "jax" in peers and jax_baseline.available() and r.problem.cell.name in jax_baseline.CELLS
    if have_jax:
        jfn = jax_runner(problem)
        funcs["jax"] = _quiet(jfn)
        warm["jax"] = jfn  # jit compiles for these shapes
    nfn = numpy_runner(problem) if "numpy" in peers else None
    if nfn is not None:
        funcs["numpy"] = _quiet(nfn)
    res = timed(s, funcs, warmup=warm)
    ref = engine_losses(problem, problem.params)
    got = fused_losses(problem, problem.params, math_class=math_class)
    agree = f"losses within {_rel(got, ref):.1e} relative of the engine's"
    per = problem.steps
    rows = []
    if have_jax:
        jl = torch.tensor(jfn()).reshape(1, -1)
        note = (f"fused {res['fused']['median'] / per * 1e9:.3f} ns, jax {res['jax']['median'] / per * 1e9:.3f} ns "
                f"per cell-step; {agree}; jax's within {_rel(jl, ref[-1:]):.1e}")
        base = "jax (jit, lax.scan, chunks of 32)"
        if r.problem.readout.optimal:
            note += "; " + fit_check(problem)
            base = f"jax (jit, lax.scan, chunks of 32; vmapped Newton x{jax_baseline.NEWTON_ITERS})"
        rows.append(speedup_row(NAME, case, "fused kernel", base, res, "fused", "jax", target=JAX_TARGET, note=note))
    if nfn is not None:
        nl = torch.tensor(nfn()).reshape(1, -1)
        off, tol = _rel(nl, ref[-1:]), 1e-6 if spec.dtype == "float64" else 3e-2  # a wrong baseline is off by O(1);
        # float32 unrolls of 100 steps in another operation order differ by 1e-3 relative at the smallest losses
        if not off <= tol:
            raise AssertionError(f"{case}: the numpy baseline's losses are {off:.1e} away from the engine's")
        note = (f"numpy {res['numpy']['median'] / per * 1e9:.3f} ns per cell-step; its losses within "
                f"{off:.1e} of the engine's")
        rows.append(speedup_row(NAME, case, "fused kernel", "numpy (cache-blocked, in place)", res, "fused", "numpy",
                                note=note))
    if "engine" in peers:
        note = (f"engine {res['engine']['median'] / per * 1e9:.3f} ns per cell-step; {agree}")
        rows.append(speedup_row(NAME, case, "fused kernel", "engine.unroll_losses", res, "fused", "engine", note=note))
    return rows


def fit_check(problem: GridPoints) -> str:
    """The JAX Newton fit on the fused kernel's own outputs against the fused fit on them, both
    losses in float64 (the fused path casts its losses to the grid's dtype after the fit): the
    same optimum to 1e-10 (absolute) or an AssertionError."""
    from landscape.kernels.numba import readout as fit
    from landscape.kernels.numba.unroll import fused_kernel

    r, data = problem.r, problem.data
    T, l2 = max(r.Ts), r.problem.readout.l2
    kernel = fused_kernel(r.problem.cell, r.problem.D, problem.dtype)
    y = kernel.outputs(problem.params, data.inputs[..., 0], [data.ends[T]], data.h0, threads=1)[0]  # (P, N)
    target = data.targets[T]
    w, b = fit.fit_logistic_readout_1(y, target, l2, threads=1)
    ref = fit.logistic_losses(y.double(), target, w, b, threads=1)  # numpy (the readout kernels' arrays)
    got = jax_baseline.fit_losses(y.double().numpy(), target.double().numpy(), l2)
    diff = float(np.max(np.abs(got - ref)))
    if not diff <= 1e-10:
        raise AssertionError(f"{r.problem.cell.name} {problem.spec.dtype}: the JAX Newton fit (x"
                             f"{jax_baseline.NEWTON_ITERS}) misses the fused fit's losses by {diff:.2e}")
    return f"on the same outputs the JAX fit's losses are within {diff:.1e} of the fused fit's (float64)"


# ---------------------------------------------------------------------------------------------
# first call, readout fit


_FIRST_CALL = r"""
import json, sys, time
t0 = time.perf_counter()
import torch
from landscape.cells import get_cell
t1 = time.perf_counter()
from landscape.kernels.numba.unroll import fused_kernel
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
            env = {**os.environ, "LANDSCAPE_KERNELS": tmp, "NUMBA_CACHE_DIR": tmp, "PYTHONPATH": str(ROOT)}
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
    from landscape.kernels.numba import readout as fused_fit
    from landscape.kernels.numba.unroll import fused_kernel
    from landscape.readouts import fit_logistic_readout, logistic_loss

    spec = GridSpec.of(cell="srnn", task="latch", T=(50,), n=z["fit_n"],
                    x=Axis("w", -1.0, 3.0, z["fit_num"]), y=Axis("b", -1.5, 1.5, z["fit_num"]))
    problem = GridPoints(spec)
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
    wf, bf = map(torch.from_numpy, fused_fit.fit_logistic_readout_1(y, target, l2, threads=1))
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
            speedup_row(NAME, case, "fused command (numba losses)", "engine.unroll_losses", res, "fused command",
                        "engine command", note=f"compute of the headline command, one core; losses within "
                                               f"{check:.1e} relative of the engine's")]


# ---------------------------------------------------------------------------------------------
# issue 27's open cases as one command

GAP_CASES = ("lstm/float64", "srnn/float32", "lstm/float32", "pascanu/float32", "lstm/float32/fast")


def gap_rows(s: Settings, cases=GAP_CASES) -> list[Row]:
    """The fused kernel against JAX alone (fixed readout) on each ``cell/dtype[/fast]`` case (fast:
    the opt-in accuracy class), each side's CPU time checked against its wall time (flagged in the
    note where CPU exceeds wall by > 5 %)."""
    z = sizes(s)
    rows = []
    for case in cases:
        cell, dtype, *math_class = case.split("/")
        spec = target_spec(z, dtype) if cell == "pascanu" else latch_spec(cell, z["num"], z["n"], z["T"], dtype)
        for row in compare(s, spec, peers=("jax",), math_class=(math_class or ["exact"])[0]):
            over = [side for side, cpu, wall in (("fused", row.candidate_value, row.extra["candidate_wall_s"]),
                                                 ("jax", row.baseline_value, row.extra["baseline_wall_s"]))
                    if cpu > CPU_OVER_WALL * wall]
            row.note += f"; load {os.getloadavg()[0]:.1f}"
            row.note += f"; FLAGGED: CPU > wall for {', '.join(over)}" if over else ""
            rows.append(row)
    return rows


def main(argv=None) -> int:
    """python -m benchmarks.fused_cpu [--cases lstm/float64,...] [--repeats R] [--no-math] [--out DIR]:
    issue 27's open cases (the fused kernel against JAX, one core) and the elementary functions
    against XLA's (``floor.math_rows``), alternated, medians, the load beside each row."""
    import argparse

    from . import floor
    from .common import table, write_csv

    p = argparse.ArgumentParser(prog="python -m benchmarks.fused_cpu", description=main.__doc__.split(":", 1)[1])
    p.add_argument("--cases", default=",".join(GAP_CASES), help=f"cell/dtype list (default {','.join(GAP_CASES)})")
    p.add_argument("--repeats", type=int, default=5, help="timings per side, medians reported (default 5)")
    p.add_argument("--no-math", action="store_true", help="skip the tanh/sigmoid rows against XLA's")
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    p.add_argument("--out", type=Path, help="also write the rows as DIR/fused-cpu-gap.csv")
    args = p.parse_args(argv)
    pin()  # every side on common.CORE, one thread per library (XLA's included)
    s = Settings(quick=args.quick, repeats=1 if args.quick else args.repeats)
    print(f"one core ({CORE}), CPU time, medians of {s.repeats}, load {os.getloadavg()[0]:.1f}", flush=True)
    rows = gap_rows(s, [c.strip() for c in args.cases.split(",") if c.strip()])
    if not args.no_math:
        rows += floor.math_rows(s)
    print(table(rows))
    print(f"load at the end {os.getloadavg()[0]:.1f}")
    if args.out:
        write_csv(rows, args.out / "fused-cpu-gap.csv", s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
