"""srnn against its hardware floor.

The floor is the least any implementation of h' = tanh(w h + u x + b) must do with torch's tanh:
one in-place ``tanh_`` per cell-step (MKL's vmdTanh on x86 builds of torch), over the blocks of
(members, sequences) the engine's ``cell.step`` path runs (``engine._blocks``: the same P N
chunking, the same cache footprint), with no affine part, no input and no loss. Candidates on the
whole population of a latch grid:

- the engine's unroll, the fused kernel (``kernels.numba``: the outputs at T, one thread), where
  numba is importable: the row that carries the <= 1.2 target, since the floor counts cell-steps;
- ``cell.step`` unrolled in torch over the same blocks (``engine.step_outputs``, the outputs at T
  read and dropped): the path from before the fused kernels, allocating, a few passes per step;
- the whole ``engine.unroll_losses(..., fast=False)`` (fixed readout): that unroll plus the loss at
  T, which is one pass of a softplus per (member, sequence), not per cell-step; its share is given
  in the note.

candidate / floor is then the price of everything beside the tanh.

Also (``math_rows``, where jax is installed): the fused kernels' tanh and sigmoid per value against
XLA's own, with both errors in ulps (whether XLA's elementary functions are cheaper).
"""
from __future__ import annotations

import numpy as np
import torch

from landscape import Axis, GridSpec, engine

from .common import GridPoints, Row, Settings, clock_extras, timed

NAME = "floor"


def run(s: Settings) -> list[Row]:
    from landscape.kernels import unavailable

    num, n, T = (8, 50, 10) if s.quick else (101, 1000, 100)
    spec = GridSpec.of(cell="srnn", task="latch", T=(T,), n=n, fit="fixed",
                    x=Axis("w", -1.0, 3.0, num), y=Axis("b", -1.5, 1.5, num))
    grid = GridPoints(spec)
    r, data, params = grid.r, grid.data, grid.params
    cpu = torch.device("cpu")
    blocks = list(engine._blocks(params, num * num, n, 1, None, cpu))  # (slice, params of the block)
    plan = [b.stop - b.start for b, _ in blocks]
    g = torch.Generator().manual_seed(0)
    starts = [torch.rand((b, n), generator=g, dtype=torch.float64) * 2 - 1 for b in plan]  # values like h's

    def candidate():
        with torch.no_grad():
            engine.unroll_losses(r.problem, params, data, r.Ts, fast=False)

    def unroll():  # cell.step over every block, the outputs at T read and dropped
        with torch.no_grad():
            for _, sub in blocks:
                for _ in engine.step_outputs(r.problem.cell, sub, data, r.Ts, 1):
                    pass

    def floor():
        for h0 in starts:
            h = h0.clone()
            for _ in range(T):
                h.tanh_()

    funcs = {"engine": candidate, "unroll": unroll, "floor": floor}
    few = {k: v[:8] if v.shape[0] == num * num else v for k, v in params.items()}
    warm = {"engine": lambda: engine.unroll_losses(r.problem, few, data, r.Ts, fast=False)}
    if unavailable("cpu") is None:
        from landscape.kernels.numba.unroll import fused_kernel

        kernel = fused_kernel(r.problem.cell, 1, grid.dtype)
        x, ends = data.inputs[..., 0], [data.ends[T] for T in r.Ts]

        def fused():  # returns nothing: ``timed`` reads a returned value as a scale
            kernel.outputs(params, x, ends, data.h0, threads=1)

        funcs["fused"] = fused
        warm["fused"] = lambda: kernel.outputs(few, x, ends, data.h0, threads=1)
    res = timed(s, funcs, warmup=warm)
    f = res["floor"]["median"]
    steps = num * num * n * T
    rows = []
    loss_share = (res["engine"]["median"] - res["unroll"]["median"]) / f
    for key, name, target in (("fused", "the fused kernel's unroll (one thread)", "<= 1.2"),
                              ("unroll", "cell.step unrolled in torch", ""),
                              ("engine", "engine.unroll_losses(fast=False)", "")):
        if key not in res:
            continue
        c = res[key]["median"]
        note = (f"{len(plan)} blocks of {min(plan)}-{max(plan)} members x {n} sequences; "
                f"floor {f / steps * 1e9:.2f} ns and candidate {c / steps * 1e9:.2f} ns per cell-step")
        if key == "engine":
            note += f"; the loss at T adds {loss_share:.2f} of the floor"
        rows.append(Row(NAME, f"srnn latch N={n} T={T} {num}x{num} readout=fixed", name, "tanh_ floor (same blocks)",
                        c, f, "s", c / f, "candidate / floor (time)", target, note=note,
                        extra=clock_extras(res, key, "floor")).check())
    return rows + math_rows(s)


# ---------------------------------------------------------------------------------------------
# the elementary functions against XLA's

MATH_N = 1 << 14  # values per pass: 64 KiB in float32, in L1/L2 (compute, not memory)


def math_rows(s: Settings) -> list[Row]:
    """tanh and sigmoid, float32 and float64: ``kernels.numba.mathfn``'s against XLA's own
    (``jnp.tanh``, ``jax.nn.sigmoid`` under jit), each as repeated passes y <- f(a y + b) over
    MATH_N values (a fori_loop for XLA), one core; the note gives both max errors in ulps against
    long double on 10^6 points (uniform on [-10, 10], a band around 0 and the negative tail). Empty
    where jax is not installed. These rows say whether XLA's elementary functions are cheaper than
    the fused kernels' (issue 27: the float32 gap)."""
    from . import jax_baseline

    if not jax_baseline.available():
        return []
    passes = 20 if s.quick else 2000
    rows = []
    for dtype in ("float32", "float64"):
        for name in ("tanh", "sigmoid"):
            ours, xla, a, b = _math_pair(name, dtype)
            x = np.random.default_rng(0).uniform(-3, 3, MATH_N).astype(dtype)
            xj = jax_baseline._jax()[1].asarray(x)
            def run_ours(reps=passes):  # returns nothing: ``timed`` reads a returned value as a scale
                ours.passes(x, reps, a, b)

            def run_xla(reps=passes):
                np.asarray(xla(xj, reps))

            res = timed(s, {"ours": run_ours, "xla": run_xla},
                        warmup={"ours": lambda: run_ours(1), "xla": lambda: run_xla(1)})
            per = MATH_N * passes
            pts = _math_points(dtype)
            e_ours = float(_ulp(ours.values(pts), _math_ref(name, pts), dtype).max())
            e_xla = float(_ulp(np.asarray(_xla_values(name)(pts)), _math_ref(name, pts), dtype).max())
            c, base = res["ours"]["median"] / per * 1e9, res["xla"]["median"] / per * 1e9
            rows.append(Row(NAME, f"{name} {dtype}, per value (passes of y <- {name}(a y + b) over {MATH_N})",
                            f"mathfn.{name}{dtype[-2:]}", f"XLA's {name} (jit)", c, base, "ns", base / c,
                            "speedup (baseline / candidate)",
                            note=f"max error: ours {e_ours:.3g} ulp, XLA's {e_xla:.3g} ulp (10^6 points against "
                                 f"long double)", extra={"repeats": len(res["ours"]["times"])}).check())
    return rows


def _math_pair(name: str, dtype: str):
    """(numba pair of ``passes``/``values``, the jitted XLA passes, a, b) for one function."""
    from types import SimpleNamespace

    from numba import njit

    from landscape.kernels.numba import mathfn

    fn = getattr(mathfn, f"{name}{dtype[-2:]}")
    opts = dict(fastmath={"contract"}, error_model="numpy", boundscheck=False)

    @njit(**opts)
    def passes(x, reps, a, b):
        mathfn.prefer_wide_vectors()
        y = x.copy()
        for _ in range(reps):
            for i in range(y.shape[0]):
                y[i] = fn(y[i] * a + b)
        return y

    @njit(**opts)
    def values(x):
        mathfn.prefer_wide_vectors()
        y = np.empty_like(x)
        for i in range(x.shape[0]):
            y[i] = fn(x[i])
        return y

    from . import jax_baseline

    jax, _, lax = jax_baseline._jax()
    f = _xla_values(name)
    a, b = (np.float32 if dtype == "float32" else np.float64)(1.5), (np.float32 if dtype == "float32" else np.float64)(
        0.25 if name == "tanh" else -0.75)
    xla = jax.jit(lambda x, reps: lax.fori_loop(0, reps, lambda _, y: f(y * a + b), x))
    return SimpleNamespace(passes=passes, values=values), xla, a, b


def _xla_values(name: str):
    from . import jax_baseline

    jax, jnp, _ = jax_baseline._jax()
    return jax.jit(jnp.tanh if name == "tanh" else jax.nn.sigmoid)


def _math_points(dtype: str) -> np.ndarray:
    rng = np.random.default_rng(1)
    return np.concatenate([rng.uniform(-10, 10, 600_000), rng.uniform(-0.01, 0.01, 200_000),
                           rng.uniform(-100, -10, 200_000)]).astype(dtype)


def _math_ref(name: str, x: np.ndarray) -> np.ndarray:
    ld = x.astype(np.longdouble)
    return np.tanh(ld) if name == "tanh" else 1 / (1 + np.exp(-ld))


def _ulp(got: np.ndarray, ref: np.ndarray, dtype: str) -> np.ndarray:
    """|got - ref| in units of the spacing of ``dtype`` at ref (the subnormal spacing below tiny)."""
    dt = np.dtype(dtype)
    spacing = np.spacing(np.maximum(np.abs(ref), np.finfo(dt).tiny).astype(dt)).astype(np.longdouble)
    return np.abs(got.astype(np.longdouble) - ref) / spacing
