"""The GPU run, ready: ``python -m benchmarks.gpu --out DIR`` on a machine with a CUDA device.

One script, in under 4 minutes (``--budget``, default 220 s; a step that would not fit is skipped
with a note), that:

1. runs the CUDA tests (``pytest -m cuda`` over the test files that carry the marker);
2. measures the device's tanh throughput: a Triton kernel that applies libdevice's tanh ``REPS``
   times to values held in registers (compute only, float32 and float64): the roof;
3. times the generated Triton kernels (``landscape.kernels.triton``: the engine's CUDA path) on
   srnn, lstm and gru latch grids (fixed readout, float32 and float64) against
   - JAX on the GPU (``benchmarks.jax_baseline``, the whole grid in one ``lax.scan`` carry), where
     jax has a GPU backend (else a note says so),
   - a per-point cuDNN ``torch.nn.RNN/LSTM/GRU`` loop (``grid_vs_loop``'s, on the GPU; timed on
     ``LOOP_POINTS`` points spread over the grid and extrapolated),
   the losses checked against each other in the same run;
4. reports cell-steps per second against the tanh roof (the kernel's time per cell-step over the
   time of the cell's transcendentals per step at the measured tanh rate), and writes
   ``gpu.csv`` (the rows, ``benchmarks.common`` columns) and ``gpu.txt`` (device, tests, table).

``--dry-run`` checks the imports, builds the list of steps, prints it and says whether a CUDA
device is present; it measures nothing and writes nothing (it runs anywhere, tested on CPU). Times
are wall clock with ``torch.cuda.synchronize``, medians of ``--repeats`` after a warm-up call (Triton
and XLA compile then).
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

NAME = "gpu"
ROOT = Path(__file__).resolve().parents[1]
CELLS = ("srnn", "lstm", "gru")
DTYPES = ("float32", "float64")
TRANSCENDENTALS = {"srnn": 1, "lstm": 5, "gru": 3}  # tanh + sigmoid per cell-step (lstm 3 sigmoids + 2 tanh)
LOOP_POINTS = 20
REPS = 512  # tanh applications per value in the roof kernel
TEST_TIMEOUT = 100  # seconds for the CUDA tests at most


def parse(argv):
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or ROOT / "benchmarks" / "results" / "gpu"),
                   help="folder for gpu.csv and gpu.txt (default $OUT, else benchmarks/results/gpu)")
    p.add_argument("--dry-run", action="store_true", help="check imports and print the steps; measure nothing")
    p.add_argument("--budget", type=float, default=220.0, help="seconds for the whole run (default 220)")
    p.add_argument("--num", type=int, default=201, help="grid points per axis (default 201)")
    p.add_argument("--n", type=int, default=1000, help="sequences (default 1000)")
    p.add_argument("--T", type=int, default=100, help="steps (default 100)")
    p.add_argument("--repeats", type=int, default=3, help="timings per candidate, medians reported (default 3)")
    p.add_argument("--skip-tests", action="store_true", help="do not run the CUDA tests")
    return p.parse_args(argv)


def cuda_test_files() -> list[str]:
    """The test files with a test marked ``cuda`` (a line starting @pytest.mark.cuda), relative to the
    repository root."""
    return sorted(str(f.relative_to(ROOT)) for f in (ROOT / "tests").glob("test_*.py")
                  if re.search(r"^@pytest\.mark\.cuda\b", f.read_text(), re.M))


def test_command() -> list[str]:
    return [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", *cuda_test_files()]


def steps(args) -> list[str]:
    """The run's steps, as text (what --dry-run prints)."""
    out = [] if args.skip_tests else [" ".join(["python", *test_command()[1:]])]
    out.append(f"tanh roof: libdevice tanh x{REPS} in registers, {', '.join(DTYPES)}")
    for dtype in DTYPES:
        for cell in CELLS:
            out.append(f"{cell} latch {args.num}x{args.num} N={args.n} T={args.T} {dtype} fixed: triton (generated) "
                       f"against jax-gpu (one scan) and torch.nn per point (cuDNN, {LOOP_POINTS} points)")
    out.append(f"write {args.out / 'gpu.csv'} and {args.out / 'gpu.txt'}")
    return out


def imports() -> dict[str, str]:
    """What the run needs, name -> version or why it is missing."""
    found = {}
    for name in ("torch", "triton", "jax"):
        try:
            module = __import__(name)
            found[name] = getattr(module, "__version__", "?")
        except Exception as err:  # an import error of any kind: report it, do not stop the dry run
            found[name] = f"missing ({type(err).__name__}: {err})"
    import landscape.kernels.triton.launch  # noqa: F401  (the path under test imports without a GPU)

    from . import grid_vs_loop, jax_baseline  # noqa: F401
    return found


def jax_gpu() -> str | None:
    """Why JAX cannot run on the GPU here, or None when it can."""
    from . import jax_baseline

    if not jax_baseline.available():
        return "jax is not installed"
    jax, _, _ = jax_baseline._jax()
    try:
        jax.devices("gpu")
    except RuntimeError as err:
        return f"jax has no GPU backend (install jax[cuda12]): {err}"
    return None


def main(argv=None) -> int:
    args = parse(argv)
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # JAX takes what it needs, not 75 % of the GPU
    found = imports()
    import torch

    print("python -m benchmarks.gpu: " + ", ".join(f"{k} {v}" for k, v in found.items()), flush=True)
    have = torch.cuda.is_available()
    print(f"CUDA device: {torch.cuda.get_device_name(0)}" if have else "no CUDA device", flush=True)
    if args.dry_run:
        for i, step in enumerate(steps(args), 1):
            print(f"  {i}. {step}")
        return 0
    if not have:
        print("nothing measured: this run needs a CUDA device", file=sys.stderr)
        return 1
    return run(args)


# ---------------------------------------------------------------------------------------------
# the measurement (CUDA only)


def run(args) -> int:
    import torch

    from .common import Settings, table, write_csv

    start = time.perf_counter()

    def left() -> float:
        return args.budget - (time.perf_counter() - start)

    report = [f"device: {torch.cuda.get_device_name(0)} (capability {torch.cuda.get_device_capability(0)}), "
              f"torch {torch.__version__}, CUDA {torch.version.cuda}"]
    if not args.skip_tests:
        report.append(cuda_tests(min(TEST_TIMEOUT, max(10.0, left() - 120))))
        print(report[-1], flush=True)
    roof = {dtype: tanh_rate(dtype) for dtype in DTYPES}
    report.append("tanh roof: " + ", ".join(f"{d} {r:.3g} tanh/s" for d, r in roof.items()))
    print(report[-1], flush=True)
    why_jax = jax_gpu()
    if why_jax:
        report.append(f"JAX rows skipped: {why_jax}")
        print(report[-1], flush=True)
    settings = Settings(repeats=args.repeats, clock="wall")
    rows = []
    for dtype in DTYPES:
        for cell in CELLS:
            if left() < 15:
                report.append(f"{cell} {dtype}: skipped (the {args.budget:.0f} s budget is spent)")
                continue
            rows += grid_rows(settings, cell, dtype, args, roof[dtype], why_jax is None, torch.device("cuda"))
            print(f"  {cell} {dtype}: done at {time.perf_counter() - start:.0f} s", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, args.out / "gpu.csv", settings)
    text = "\n".join(report + ["", table(rows), "", f"total {time.perf_counter() - start:.0f} s"])
    (args.out / "gpu.txt").write_text(text + "\n")
    print(text)
    return 0


def cuda_tests(timeout: float) -> str:
    """Run the CUDA tests; one line: the command and pytest's summary (or the timeout)."""
    cmd = test_command()
    try:
        res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"CUDA tests: timed out after {timeout:.0f} s ({' '.join(cmd[1:])})"
    lines = [ln for ln in res.stdout.strip().splitlines() if ln.strip()]
    summary = lines[-1] if lines else res.stderr.strip()[-300:]
    return f"CUDA tests (rc {res.returncode}): {summary}"


def tanh_rate(dtype: str) -> float:
    """libdevice tanh evaluations per second on the device (values in registers: no memory traffic)."""
    import torch
    import triton

    kernel = _roof_kernel()
    n = 1 << 24
    x = torch.rand(n, device="cuda", dtype=getattr(torch, dtype)) * 2 - 1
    out = torch.empty_like(x)
    grid = (triton.cdiv(n, 1024),)
    kernel[grid](x, out, n, REPS, BLOCK=1024)  # compiles
    torch.cuda.synchronize()
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        kernel[grid](x, out, n, REPS, BLOCK=1024)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return n * REPS / sorted(times)[1]


def _roof_kernel():
    import triton
    import triton.language as tl
    from triton.language.extra import libdevice

    @triton.jit
    def tanh_loop(x_ptr, out_ptr, n, reps, BLOCK: tl.constexpr):
        i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = i < n
        v = tl.load(x_ptr + i, mask=mask)
        for _ in range(reps):
            v = libdevice.tanh(v * 1.5 + 0.25)  # stays in (-1, 1): every call does the full work
        tl.store(out_ptr + i, v, mask=mask)

    return tanh_loop


def grid_rows(settings, cell: str, dtype: str, args, tanh_per_s: float, with_jax: bool, device) -> list:
    """The rows of one grid: triton against jax-gpu and the cuDNN loop, and triton against the roof.
    (``device`` the CUDA device; the CPU under TRITON_INTERPRET=1 is how the tests run it.)"""
    import numpy as np
    import torch

    from landscape.kernels.triton import launch

    from . import grid_vs_loop
    from .common import GridPoints, Row, speedup_row, timed
    from .fused_cpu import jax_runner, latch_spec

    problem = GridPoints(latch_spec(cell, args.num, args.n, args.T, dtype))
    r = problem.r
    params = {k: v.to(device) for k, v in problem.params.items()}
    data = problem.data.to(problem.dtype, device)
    few = {k: v[:4] if v.shape[0] == problem.P else v for k, v in params.items()}

    def synced(fn):
        def call():
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
        return call

    result = {}

    def triton_losses():
        result["triton"] = launch.losses(r.problem, params, data, r.Ts)[-1]

    funcs = {"triton": synced(triton_losses)}
    warm = {"triton": synced(lambda: launch.losses(r.problem, few, data, r.Ts))}
    if with_jax:
        jfn = jax_runner(problem, chunk=0)
        funcs["jax"] = lambda: result.__setitem__("jax", jfn())  # returns numpy: synchronised
        warm["jax"] = jfn
    total = problem.P
    flat = np.unique(np.linspace(0, total - 1, LOOP_POINTS).round().astype(int))
    points = [grid_vs_loop._point(r, int(f)) for f in flat]
    loop = grid_vs_loop._nn_loop(r, problem.data, points, device=device, dtype=problem.dtype)
    funcs["loop"] = lambda: (result.__setitem__("loop", loop()), total / len(points))[1]  # extrapolated
    warm["loop"] = grid_vs_loop._nn_loop(r, problem.data, points[:1], device=device, dtype=problem.dtype)
    res = timed(settings, funcs, warmup=warm)

    got = result["triton"].double().cpu()
    off_loop = float(np.max(np.abs(np.asarray(result["loop"]) - got.numpy()[flat])))
    case = f"{cell} latch {args.num}x{args.num} N={args.n} T={args.T} {dtype} readout=fixed"
    per = problem.steps
    tri = res["triton"]["median"]
    rows = []
    if with_jax:
        jl = torch.from_numpy(np.array(result["jax"], dtype=np.float64))
        off = float(((jl - got).abs() / got.abs().clamp(min=1e-300)).max())
        rows.append(speedup_row(NAME, case, "triton (generated)", "jax gpu (jit, one lax.scan)", res, "triton", "jax",
                                note=f"triton {tri / per * 1e12:.2f} ps, "
                                     f"jax {res['jax']['median'] / per * 1e12:.2f} ps "
                                     f"per cell-step; losses within {off:.1e} relative"))
    rows.append(speedup_row(NAME, case, "triton (generated)", "torch.nn per point (cuDNN)", res, "triton", "loop",
                            note=f"loop timed on {len(points)} of {total} points, extrapolated; "
                                 f"its losses within {off_loop:.1e} of triton's"))
    step_s, roof_s = tri / per, TRANSCENDENTALS[cell] / tanh_per_s
    rows.append(Row(NAME, case, "triton (generated)", f"tanh roof x{TRANSCENDENTALS[cell]} per cell-step",
                    step_s * 1e9, roof_s * 1e9, "ns", step_s / roof_s, "candidate / floor (time)",
                    note=f"{per / tri:.3g} cell-steps/s; the device's libdevice tanh: {tanh_per_s:.3g}/s "
                         f"({TRANSCENDENTALS[cell]} tanh or sigmoid per {cell} step)").check())
    return rows


if __name__ == "__main__":
    sys.exit(main())
