"""The fused kernels' elementary functions (landscape.kernels.numba.mathfn) against long-double references.

About 1e6 points per function and dtype: uniform over the range that matters, a dense band around 0,
the tails where the result saturates or underflows (subnormal results included), and the special
values +-0, +-inf, NaN. Errors are in units in the last place of the correctly rounded result
(for subnormal results, of the subnormal spacing); the bounds are ``mathfn.ULP_BOUNDS``.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("numba")

from numba import njit  # noqa: E402

from landscape.kernels.numba import mathfn  # noqa: E402

LD = np.longdouble
REFS = {
    "tanh": np.tanh,
    "sigmoid": lambda v: 1 / (1 + np.exp(-v)),
    "exp": np.exp,
    "softplus": lambda v: np.maximum(v, 0) + np.log1p(np.exp(-np.abs(v))),
}
# where each function's result goes from O(1) to saturated or underflowing, per dtype
LIMITS = {("tanh", 64): 25.0, ("sigmoid", 64): 760.0, ("exp", 64): 745.0, ("softplus", 64): 760.0,
          ("tanh", 32): 12.0, ("sigmoid", 32): 110.0, ("exp", 32): 104.0}
CASES = [("tanh", 64), ("sigmoid", 64), ("exp", 64), ("softplus", 64), ("tanh", 32), ("sigmoid", 32), ("exp", 32)]


def vectorised(fn):
    @njit(error_model="numpy")
    def apply(a, out):
        mathfn.prefer_wide_vectors()
        for i in range(a.shape[0]):
            out[i] = fn(a[i])

    return apply


def points(name, bits, n=1_000_000, seed=0):
    dt = np.float64 if bits == 64 else np.float32
    rng = np.random.default_rng(seed)
    lim = LIMITS[(name, bits)]
    tiny = np.finfo(dt).tiny
    hi = 709.7 if bits == 64 else 88.7
    parts = [rng.uniform(-lim, lim, n // 2), rng.uniform(-3, 3, n // 4),
             np.geomspace(float(tiny), 1, n // 16), -np.geomspace(float(tiny), 1, n // 16)]
    if name == "exp":  # the overflow and underflow edges, subnormal results
        lo = -745.1 if bits == 64 else -103.9
        parts += [rng.uniform(lo, lo + 40, n // 16), rng.uniform(hi - 5, hi, n // 16)]
    else:
        parts += [rng.uniform(-lim - 30, -lim + 30, n // 16), rng.uniform(lim - 30, lim + 30, n // 16)]
    x = np.concatenate(parts).astype(dt)
    if name == "exp":
        x = x[x <= hi]
    return x


def ulp_error(got, ref, dt) -> np.ndarray:
    spacing = np.spacing(np.maximum(np.abs(ref), np.finfo(dt).tiny).astype(dt)).astype(LD)
    return np.abs(got.astype(LD) - ref) / spacing


@pytest.mark.parametrize("name,bits", CASES, ids=[f"{n}{b}" for n, b in CASES])
def test_ulp_error_within_the_stated_bound(name, bits):
    dt = np.float64 if bits == 64 else np.float32
    fn = vectorised(getattr(mathfn, f"{name}{bits}"))
    x = points(name, bits)
    got = np.empty_like(x)
    fn(x, got)
    ref = REFS[name](x.astype(LD))
    err = ulp_error(got, ref, dt)
    bound = mathfn.ULP_BOUNDS[(name, f"float{bits}")]
    worst = float(err.max())
    assert worst <= bound, f"{name}{bits}: {worst:.3f} ulp at x = {x[int(err.argmax())]!r}"
    assert worst > 0.3  # the measurement measures something (a perfect match would be suspicious)



# the functions the generated kernels call with their constants in registers: (mathfn name, points, bits)
KERNEL_FUNCTIONS = [("tanh64", "tanh", 64), ("sigmoid64", "sigmoid", 64), ("exp64", "exp", 64), ("tanh32", "tanh", 32),
                    ("sigmoid32", "sigmoid", 32), ("exp32", "exp", 32), ("sigmoid32fast", "sigmoid", 32)]


@pytest.mark.parametrize("name,kind,bits", KERNEL_FUNCTIONS, ids=[c[0] for c in KERNEL_FUNCTIONS])
def test_constants_in_registers_give_the_same_bits(name, kind, bits):
    """What the generated kernels call, ``<name>_with(x, registers(<NAME>_K))`` (the constants made
    opaque to LLVM, held in registers), against the function itself: the same bits, NaNs and
    infinities included (a wrong order in the constants' tuple would change every value)."""
    plain, with_k, K = getattr(mathfn, name), getattr(mathfn, f"{name}_with"), getattr(mathfn, f"{name.upper()}_K")

    @njit(error_model="numpy", fastmath={"contract"})
    def both(a, out_plain, out_with):
        c = mathfn.registers(K)
        mathfn.prefer_wide_vectors()
        for i in range(a.shape[0]):
            out_plain[i] = plain(a[i])
            out_with[i] = with_k(a[i], c)

    x = points(kind, bits, n=200_000)
    x = np.concatenate([x, np.array([0.0, -0.0, np.inf, -np.inf, np.nan], x.dtype)])
    a, b = np.empty_like(x), np.empty_like(x)
    both(x, a, b)
    ints = np.uint64 if bits == 64 else np.uint32
    assert np.array_equal(a.view(ints), b.view(ints))
    assert np.unique(a).size > x.size // 4  # the values vary (not a constant on both sides)

# the functions a user's cell reaches (mathfn's second float64 section; float32 through float64)
USER_REFS = {"log": np.log, "log1p": np.log1p, "log2": np.log2, "expm1": np.expm1, "exp2": np.exp2,
             "asinh": np.arcsinh, "sin": np.sin, "cos": np.cos, "tan": np.tan, "atan": np.arctan}
USER_CASES = [(name, bits) for name in USER_REFS for bits in (64, 32)]


def user_fn(name, bits):
    """mathfn's function: log64, log2_64 (a name ending in a digit takes an underscore)."""
    return getattr(mathfn, f"{name}{'_' if name[-1].isdigit() else ''}{bits}")


def user_points(name, bits, n=1_000_000, seed=0):
    """Uniform over the range that matters, bands where the function is delicate (log near 1, the
    trig functions over many periods), and log-spaced magnitudes over the whole domain."""
    dt = np.float64 if bits == 64 else np.float32
    rng = np.random.default_rng(seed)
    fin = np.finfo(dt)
    sub, big = float(fin.smallest_subnormal), float(fin.max)

    def mags(lo, hi, k):
        with np.errstate(over="ignore"):  # geomspace's last power may overflow before it is clipped
            return np.clip(np.geomspace(lo, hi, k), lo, hi)

    parts = {
        "log": [mags(sub, big, n // 2), rng.uniform(0.5, 2, n // 4), rng.uniform(1 - 1e-3, 1 + 1e-3, n // 4)],
        "log2": [mags(sub, big, n // 2), rng.uniform(0.5, 2, n // 4), rng.uniform(1 - 1e-3, 1 + 1e-3, n // 4)],
        "log1p": [rng.uniform(-1, 4, n // 2), rng.uniform(-0.3, 0.42, n // 4), mags(sub, big, n // 8),
                  -mags(sub, 1, n // 8) * (1 - fin.eps)],
        "expm1": [rng.uniform(-45, np.log(big) * 0.99999, n // 2), rng.uniform(-3, 3, n // 4),
                  mags(sub, 1, n // 8), -mags(sub, 1, n // 8)],
        "exp2": [rng.uniform(np.log2(sub) - 1, np.log2(big) * 0.99999, n // 2), rng.uniform(-3, 3, n // 4),
                 mags(sub, 1, n // 8), -mags(sub, 1, n // 8)],
        "asinh": [rng.uniform(-50, 50, n // 2), mags(sub, big, n // 4), -mags(sub, big, n // 4)],
        "atan": [rng.uniform(-5, 5, n // 2), rng.uniform(0.3, 3, n // 4), mags(sub, big, n // 8), -mags(sub, big, n // 8)],
    }
    trig = [rng.uniform(-10, 10, n // 2), rng.uniform(-1e6, 1e6, n // 4), mags(sub, 1e15, n // 8),
            -mags(sub, 1e15, n // 8)]
    x = np.concatenate(parts.get(name, trig)).astype(dt)
    return x[np.isfinite(x)]


@pytest.mark.parametrize("name,bits", USER_CASES, ids=[f"{n}{b}" for n, b in USER_CASES])
def test_user_functions_within_the_stated_bound(name, bits):
    dt = np.float64 if bits == 64 else np.float32
    x = user_points(name, bits)
    got = np.empty_like(x)
    vectorised(user_fn(name, bits))(x, got)
    with np.errstate(divide="ignore", invalid="ignore"):
        ref = USER_REFS[name](x.astype(LD))
    ok = np.isfinite(ref) & (np.abs(ref) <= np.finfo(dt).max)
    assert np.array_equal(got[~ok], ref[~ok].astype(dt), equal_nan=True)  # the infinities where the truth has them
    err = ulp_error(got[ok], ref[ok], dt)
    bound = mathfn.ULP_BOUNDS[(name, f"float{bits}")]
    worst = float(err.max())
    assert worst <= bound, f"{name}{bits}: {worst:.3f} ulp at x = {x[ok][int(err.argmax())]!r}"
    assert worst > 0.3


def test_user_functions_special_values():
    """torch's values at the edges: log(0) = -inf, log(< 0) = NaN, log1p(-1) = -inf, expm1(-inf) = -1,
    sin(inf) = NaN, and the signed zeros."""
    inf, nan = np.inf, np.nan
    want = {
        "log": ([0.0, -0.0, -1.0, inf, -inf, nan, 1.0], [-inf, -inf, nan, inf, nan, nan, 0.0]),
        "log2": ([0.0, -1.0, inf, nan, 1.0, 1024.0], [-inf, nan, inf, nan, 0.0, 10.0]),
        "log1p": ([0.0, -0.0, -1.0, -2.0, inf, -inf, nan], [0.0, -0.0, -inf, nan, inf, nan, nan]),
        "expm1": ([0.0, -0.0, inf, -inf, nan, 1e4, -1e4], [0.0, -0.0, inf, -1.0, nan, inf, -1.0]),
        "exp2": ([0.0, inf, -inf, nan, 10.0, -1074.0, 1024.0, -1076.0], [1.0, inf, 0.0, nan, 1024.0, 5e-324, inf, 0.0]),
        "asinh": ([0.0, -0.0, inf, -inf, nan], [0.0, -0.0, inf, -inf, nan]),
        "sin": ([0.0, -0.0, inf, -inf, nan], [0.0, -0.0, nan, nan, nan]),
        "cos": ([0.0, -0.0, inf, -inf, nan], [1.0, 1.0, nan, nan, nan]),
        "tan": ([0.0, -0.0, inf, -inf, nan], [0.0, -0.0, nan, nan, nan]),
        "atan": ([0.0, -0.0, inf, -inf, nan, 1.0], [0.0, -0.0, np.pi / 2, -np.pi / 2, nan, np.pi / 4]),
    }
    for name, (xs, ys) in want.items():
        for bits in (64, 32):
            dt = np.float64 if bits == 64 else np.float32
            x, y = np.array(xs, dtype=dt), np.array(ys, dtype=dt)
            got = np.empty_like(x)
            vectorised(user_fn(name, bits))(x, got)
            np.testing.assert_array_equal(got, y, err_msg=f"{name}{bits}")
            assert np.array_equal(np.signbit(got[y == 0]), np.signbit(y[y == 0])), f"{name}{bits}: signed zeros"


def test_roundings_are_torchs():
    """floor, ceil, trunc and round (ties to even, as torch.round) of halves, huge values, inf, NaN."""
    import torch

    x = np.array([-2.5, -1.5, -0.5, -0.0, 0.0, 0.5, 1.5, 2.5, 0.49999999999999994, 4503599627370497.0, 1e30,
                  np.inf, -np.inf, np.nan, -0.7, 0.7], dtype=np.float64)
    for name, fn in (("floor", torch.floor), ("ceil", torch.ceil), ("trunc", torch.trunc), ("round_even", torch.round)):
        for dt in (np.float64, np.float32):
            xd = x.astype(dt)
            got = np.empty_like(xd)
            vectorised(getattr(mathfn, name))(xd, got)
            want = fn(torch.from_numpy(xd)).numpy()
            np.testing.assert_array_equal(got, want, err_msg=name)
            assert np.array_equal(np.signbit(got), np.signbit(want)), name


def test_trig_beyond_its_range_is_nan():
    """|x| >= 2^50: the reduction no longer holds, and the trig functions say so (NaN), not a wrong value."""
    x = np.array([2.0 ** 50, -(2.0 ** 50), 1e300], dtype=np.float64)
    for name in ("sin", "cos", "tan"):
        got = np.empty_like(x)
        vectorised(user_fn(name, 64))(x, got)
        assert np.isnan(got).all(), name


@pytest.mark.parametrize("name,bits", CASES, ids=[f"{n}{b}" for n, b in CASES])
def test_special_values(name, bits):
    dt = np.float64 if bits == 64 else np.float32
    fn = vectorised(getattr(mathfn, f"{name}{bits}"))
    sub = np.finfo(dt).smallest_subnormal
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, sub, -sub, 1e30, -1e30], dtype=dt)
    got = np.empty_like(x)
    fn(x, got)
    want = {
        "tanh": [0.0, -0.0, 1.0, -1.0, np.nan, sub, -sub, 1.0, -1.0],
        "sigmoid": [0.5, 0.5, 1.0, 0.0, np.nan, 0.5, 0.5, 1.0, 0.0],
        "exp": [1.0, 1.0, np.inf, 0.0, np.nan, 1.0, 1.0, np.inf, 0.0],
        "softplus": [math.log(2), math.log(2), np.inf, 0.0, np.nan, math.log(2), math.log(2), 1e30, 0.0],
    }[name]
    np.testing.assert_array_equal(got, np.array(want, dtype=dt))
    if name == "tanh":
        assert np.signbit(got[1]) and not np.signbit(got[0])  # tanh(-0) = -0


def test_range_edges():
    """tanh and sigmoid never leave [-1, 1] and [0, 1]; exp overflows exactly where it must."""
    for bits in (64, 32):
        dt = np.float64 if bits == 64 else np.float32
        x = np.linspace(-60, 60, 200001).astype(dt)
        for name, lo, hi in (("tanh", -1, 1), ("sigmoid", 0, 1)):
            out = np.empty_like(x)
            vectorised(getattr(mathfn, f"{name}{bits}"))(x, out)
            assert out.min() >= lo and out.max() <= hi
        big = np.array([np.log(np.finfo(dt).max) * 0.99999, np.log(np.finfo(dt).max) * 1.00001], dtype=dt)
        out = np.empty_like(big)
        vectorised(getattr(mathfn, f"exp{bits}"))(big, out)
        assert np.isfinite(out[0]) and out[1] == np.inf


def test_torch_semantics_helpers():
    @njit
    def ops(a, b):
        return mathfn.maximum(a, b), mathfn.minimum(a, b), mathfn.clamp(a, -1.0, 1.0)

    assert ops(2.0, 1.0) == (2.0, 1.0, 1.0)
    assert all(math.isnan(v) for v in ops(math.nan, 1.0))
    mx, mn, _ = ops(1.0, math.nan)
    assert math.isnan(mx) and math.isnan(mn)
