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
