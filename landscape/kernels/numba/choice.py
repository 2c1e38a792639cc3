"""The fused kernel or torch, by measurement, for a program that still calls libm one value at a time.

Most of what a cell's step computes has a vectorisable form in ``mathfn`` (every built-in cell's
functions, and log, sin, softplus, ...); a program that uses one of the others (``codegen.SCALAR_OPS``:
atan, erf, a general pow) calls libm per value, which stops the loop from vectorising, and torch's
vectorised functions may then be faster. For such a program the kernel is timed against ``cell.step``
once, when it is first used (64 members of the grid's own data, its first steps, alternated, the
best of three each), and the faster path is kept: the decision is cached in this process and on
disk beside the kernel (``choice_<key>-<threads>.json`` in the kernel cache), so a later process
reuses it. A program without such a call always takes the fused kernel, without a measurement.
Either path gives the same numbers up to float rounding (the kernel passed its self-check), so such a
cell's surface may differ in its last digits between machines that decided differently; the file's
``path`` and ``path_reason`` attributes say which path computed it (``engine.computing_path``).
"""
from __future__ import annotations

import time

import torch

from .. import runtime
from .codegen import scalar_calls

MEMBERS = 64  # members the measurement times (copies of the first one: the cost does not depend on values)
STEPS = 32  # at most this many steps of the data
REPEATS = 3

_DECIDED: dict[tuple[str, int], dict] = {}  # (kernel key, threads) -> the measurement


def torch_is_faster(kernel, params: dict, data, threads: int | None, run_fused, run_torch) -> str | None:
    """Why torch computes this program instead of the fused kernel (a measurement), or None: the
    kernel is used (every program without a scalar libm call, and those it measured faster).
    run_fused(sample, Ts, workers) and run_torch(sample, Ts) compute a sample's losses each way."""
    calls = scalar_calls(kernel.program)
    if not calls:
        return None
    workers = threads or runtime.default_threads()
    key = (kernel.key, workers)
    found = _DECIDED.get(key)
    if found is None:
        found = _read(kernel, workers)
        if found is None:
            found = _measure(params, data, workers, run_fused, run_torch)
            _write(kernel, workers, found)
        _DECIDED[key] = found
    if found["fused_s"] <= found["torch_s"]:
        return None
    return (f"torch measured faster for this cell (the kernel calls libm per value for {', '.join(sorted(calls))}: "
            f"{found['fused_s'] * 1e3:.2f} ms fused against {found['torch_s'] * 1e3:.2f} ms torch on a sample)")


def _measure(params, data, workers, run_fused, run_torch) -> dict:
    sample = {k: v[:1].expand(MEMBERS, *v.shape[1:]).contiguous() for k, v in params.items()}
    Ts = tuple(T for T in sorted(data.targets) if T <= STEPS) or (min(data.targets),)
    best = {"fused_s": float("inf"), "torch_s": float("inf")}
    runs = {"fused_s": lambda: run_fused(sample, Ts, workers), "torch_s": lambda: run_torch(sample, Ts)}
    with torch.no_grad():
        for fn in runs.values():  # warm-up: lazy imports, the lanes / wide loop's compilation
            fn()
        for _ in range(REPEATS):
            for name, fn in runs.items():
                t0 = time.perf_counter()
                fn()
                best[name] = min(best[name], time.perf_counter() - t0)
    return best


def _name(kernel, workers) -> str:
    return f"choice_{kernel.key}-{workers}"


def _read(kernel, workers) -> dict | None:
    found = runtime.read_note(_name(kernel, workers))
    try:
        return {"fused_s": float(found["fused_s"]), "torch_s": float(found["torch_s"])}
    except (KeyError, TypeError, ValueError):
        return None


def _write(kernel, workers, found) -> None:
    """The measurement beside the kernel (``runtime.write_note``)."""
    runtime.write_note(_name(kernel, workers), found)
