"""Inlinable, vectorisable elementary functions for numba kernels: tanh, sigmoid, exp (float64 and
float32), the softplus of the readout loss and fit, the functions a user's cell may use (log, log1p,
log2, expm1, exp2, asinh, sin, cos, tan, atan; floor, ceil, trunc, round), and the LLVM helpers they need.

numba's ``math.tanh``/``math.exp`` call libm one value at a time, which stops LLVM's loop
vectoriser; these are branch-free (selects, not jumps), so a loop that calls them becomes AVX2 or
AVX-512 code. Each starts from the reduction e^y = 2^k e^r, |r| <= ln 2 / 2 (k = round(y / ln 2)
read off the low bits of y / ln 2 + 1.5 * 2^52, r by a Cody-Waite step with FMAs) and builds 2^k
from the bits of the rounded k (one shift). The polynomials are near-minimax (Remez, ``remez.py``):

    tanh(x)    with |x| = rho - k ln2 / 2 (|rho| <= ln2 / 4) and s = 2^k:
               tanh|x| = ((1 - s) + tau (1 + s)) / ((1 + s) + tau (1 - s)), tau = tanh(rho) = rho G(rho^2)
               (G of degree 6 in float64, 2 in float32: exact in form at k = 0, so accurate near 0)
    sigmoid(x) = 1 / (1 + e) for x >= 0, e / (1 + e) below, e = exp(-|x|)  (e in (0, 1]: no overflow)
    exp(x)     = 2^k1 (2^k2 e^r), k1 + k2 = k   (two scalings: subnormal results round once)
    softplus(q) = max(q, 0) + log1p(exp(-|q|)), log1p on [0, 1] by 2 atanh(f / (2 + f))
    sigmoid32fast(x) = 1/2 + tanh(x / 2) / 2  (the opt-in ``fast`` class only: absolute accuracy)

with e^r - 1 = r + r^2 Q(r), Q of degree 9 (float64) or 4 (float32). One division each; the rest
is about 20 FMAs and bit operations.

The user-cell functions: log and log1p by fdlibm's method (u = 2^k (1 + f), 1 + f in [sqrt(1/2), sqrt 2),
log(1 + f) = f - (f^2/2 - s (f^2/2 + R)) with the same atanh polynomial, log1p adding the rounding of
1 + x divided by u); expm1 = fma(2^k, e^r - 1, 2^k - 1); exp2 with r = x - round(x) exact; asinh =
log1p(a + a^2 / (1 + sqrt(1 + a^2))); sin, cos, tan reduced by k pi/2 in three FMA steps (exact first
step) to |r| <= pi/4 and fdlibm's kernel polynomials, for |x| < 2^50 (NaN beyond: the reduction no
longer holds there); atan reduced to |r| <= tan(pi/8) (pi/2 + atan(-1/a), pi/4 + atan((a - 1) / (a + 1)))
and a degree-10 polynomial in r^2; the roundings are LLVM's own (exact). Their float32 forms go
through float64.

Special values follow torch: tanh(+-inf) = +-1, tanh(-0) = -0, sigmoid(+inf) = 1, sigmoid(-inf) = 0,
exp(-inf) = 0, exp(+inf) = inf, NaN in -> NaN out (every clamp is written so that a NaN passes).
The measured errors (tests/test_mathfn.py, against long-double references) are ``ULP_BOUNDS``.

Also here: ``fma`` (llvm.fma, one rounding), bit casts for the 2^k scaling, ``radd`` (an add a
reduction loop may reassociate, so that it vectorises), and ``prefer_wide_vectors()``, which marks
the calling function ``"prefer-vector-width"="512"`` so that LLVM uses zmm registers on AVX-512
machines (its default x86 tuning stops at 256 bits).
"""
from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

# Error bounds in ulps of the correctly rounded result (for a subnormal result, of the subnormal
# spacing): the largest error seen over 1e7 points per function (uniform over the range, a band
# around 0, the tails, the underflow and overflow edges) was tanh 2.65, sigmoid 2.32, exp 1.08,
# softplus 2.74 in float64 and tanh 2.52, sigmoid 2.30, exp 1.07 in float32; tests/test_mathfn.py
# fails above these bounds (1e6 points each).
# sigmoid32fast (the opt-in fast class): the largest absolute error seen over 1e7 points was 1.02e-7,
# and 1.71 ulp for x >= 0; tests/test_fast_math.py fails above these bounds
FAST_SIGMOID32_ABS = 1.1e-7
FAST_SIGMOID32_ULP = 2.0
ULP_BOUNDS = {
    ("tanh", "float64"): 2.8, ("sigmoid", "float64"): 2.5, ("exp", "float64"): 1.2, ("softplus", "float64"): 3.0,
    ("tanh", "float32"): 2.7, ("sigmoid", "float32"): 2.5, ("exp", "float32"): 1.2,
}
# The functions a user's cell reaches (none of the built-in cells uses them), measured the same way
# (1e7 points each: the whole domain log-spaced, bands near 1 and around 0, the trig functions up to
# |x| = 1e15): log 0.84, log1p 0.85, log2 0.93, expm1 2.26, exp2 1.08, asinh 1.68, sin 1.46, cos 1.82,
# tan 2.88, atan 1.83 (5e6 points) in float64; their float32 forms (through float64) 0.500 (correctly
# rounded but for double rounding). tests/test_mathfn.py fails above these bounds (1e6 points each).
ULP_BOUNDS.update({(name, "float64"): bound for name, bound in (
    ("log", 1.0), ("log1p", 1.0), ("log2", 1.1), ("expm1", 2.5), ("exp2", 1.2), ("asinh", 1.9), ("sin", 1.6),
    ("cos", 2.0), ("tan", 3.1), ("atan", 2.0))})
ULP_BOUNDS.update({(name, "float32"): 0.51 for name in ("log", "log1p", "log2", "expm1", "exp2", "asinh", "sin",
                                                         "cos", "tan", "atan")})


# ---------------------------------------------------------------------------------------------
# LLVM helpers


@intrinsic
def fma(typingctx, a, b, c):
    """a * b + c with one rounding (llvm.fma: vfmadd on x86); a, b, c of one float type."""
    if not (isinstance(a, types.Float) and a == b == c):
        return None
    sig = a(a, b, c)

    def codegen(context, builder, signature, args):
        ty = args[0].type
        fn = builder.module.declare_intrinsic("llvm.fma", [ty], ir.FunctionType(ty, [ty, ty, ty]))
        return builder.call(fn, args)

    return sig, codegen


def _bitcast(src, dst, dst_ir):
    @intrinsic
    def cast(typingctx, v):
        if v != src:
            return None

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], dst_ir)

        return dst(v), codegen

    return cast


f64_bits = _bitcast(types.float64, types.int64, ir.IntType(64))
f32_bits = _bitcast(types.float32, types.int32, ir.IntType(32))


def _from_bits(dst, dst_ir, width):
    @intrinsic
    def cast(typingctx, v):
        """The float whose bits are the low ``width`` bits of the integer v."""
        if not isinstance(v, types.Integer):
            return None

        def codegen(context, builder, signature, args):
            val = args[0]
            if val.type.width > width:
                val = builder.trunc(val, ir.IntType(width))
            elif val.type.width < width:
                val = builder.sext(val, ir.IntType(width))
            return builder.bitcast(val, dst_ir)

        return dst(v), codegen

    return cast


bits_f64 = _from_bits(types.float64, ir.DoubleType(), 64)
bits_f32 = _from_bits(types.float32, ir.FloatType(), 32)


@intrinsic
def registers(typingctx, k):
    """k, a tuple of floats, each passed through an empty inline asm: LLVM no longer sees the values
    as constants. Called once before a kernel's loops on a function's constants (``TANH32_K``, ...),
    it keeps them in registers through the loops: as constants, LLVM on x86 reloads each (a
    broadcast from the constant pool) in every iteration of a vectorised loop. The same values, so
    the same results."""
    if not (isinstance(k, types.BaseTuple) and all(isinstance(t, types.Float) for t in k.types)):
        return None

    def codegen(context, builder, signature, args):
        out = args[0]
        for i in range(len(k.types)):
            v = builder.extract_value(out, i)
            v = builder.asm(ir.FunctionType(v.type, [v.type]), "", "=x,0", [v], side_effect=False)
            out = builder.insert_value(out, v, i)
        return out

    return k(k), codegen


@intrinsic
def prefer_wide_vectors(typingctx):
    """Mark the calling function "prefer-vector-width"="512": LLVM's loop vectoriser then uses
    512-bit registers where the CPU has them (x86 tunings default to 256). A no-op elsewhere."""

    def codegen(context, builder, signature, args):
        set.add(builder.function.attributes, '"prefer-vector-width"="512"')  # a string attribute
        return context.get_dummy_value()

    return types.none(), codegen


# ---------------------------------------------------------------------------------------------
# float64

_LOG2E = 1.4426950408889634
_LN2_HI = 0.6931471803691238  # ln 2 = _LN2_HI + _LN2_LO (the high part has trailing zero bits)
_LN2_LO = 1.9082149292705877e-10
# t = y / ln 2 + _SHIFT rounds y / ln 2 to an integer k held in t's low bits; with the exponent bias
# added to the shift, (bits of t) << 52 is the float 2^k itself (one shift, no add)
_SHIFT = 6755399441055744.0 + 1023  # 1.5 * 2^52 + bias
_SHIFT60 = 6755399441055744.0 + 1023 + 60  # sigmoid: 2^(k + 60), normal down to k = -1083
_SHIFT0 = 6755399441055744.0  # exp: the bare k (two scalings)
_TWO_M60 = 2.0 ** -60

# e^r - 1 = r + r^2 Q(r) on |r| <= ln2/2, Q = sum _Q[i] r^i (remez.py; truncation 1.8e-17 relative)
_Q0 = 0.5000000000000006
_Q1 = 0.16666666666666588
_Q2 = 0.041666666666576826
_Q3 = 0.008333333333389504
_Q4 = 0.0013888888931539237
_Q5 = 0.00019841269719088152
_Q6 = 2.4801505306664463e-05
_Q7 = 2.7557407499395133e-06
_Q8 = 2.7626024113497993e-07
_Q9 = 2.505377740892466e-08
# tanh(rho) = rho G(rho^2) on |rho| <= ln2 / 4 (remez.py; truncation 3.7e-18 relative)
_G0 = 1.0
_G1 = -0.3333333333333211
_G2 = 0.13333333332680797
_G3 = -0.053968252662672585
_G4 = 0.02186936403069244
_G5 = -0.008857129664796558
_G6 = 0.0034429954737528108
_HALF_LN2 = 0.5 * 0.6931471805599453


_EXPM1_64_K = (_Q0, _Q1, _Q2, _Q3, _Q4, _Q5, _Q6, _Q7, _Q8, _Q9)


@njit(inline="always")
def _expm1_poly64(r, q):
    """e^r - 1 for |r| <= ln2/2: r + r^2 Q(r), Q by its even and odd parts in r^2 (half the
    dependency chain of Horner in r, the same number of FMAs); q: the coefficients _Q0.._Q9."""
    q0, q1, q2, q3, q4, q5, q6, q7, q8, q9 = q
    u = r * r
    even = fma(fma(fma(fma(q8, u, q6), u, q4), u, q2), u, q0)
    odd = fma(fma(fma(fma(q9, u, q7), u, q5), u, q3), u, q1)
    return fma(u, fma(r, odd, even), r)


# The constants of tanh64, sigmoid64 and exp64, for their ``_with`` forms (which kernels call with
# these passed through ``registers``)
TANH64_K = (20.0, -2.0 * _LOG2E, _SHIFT, _HALF_LN2, 1.0, _G0, _G1, _G2, _G3, _G4, _G5, _G6)
SIGMOID64_K = (-746.0, _LOG2E, _SHIFT60, -_LN2_HI, -_LN2_LO, _TWO_M60, 1.0) + _EXPM1_64_K
EXP64_K = (-746.0, 710.0, _LOG2E, _SHIFT0, -_LN2_HI, -_LN2_LO) + _EXPM1_64_K


@njit(inline="always")
def tanh64(x):
    """tanh of a float64 (``tanh64_with``)."""
    return tanh64_with(x, TANH64_K)


@njit(inline="always")
def sigmoid64(x):
    """sigmoid of a float64 (``sigmoid64_with``)."""
    return sigmoid64_with(x, SIGMOID64_K)


@njit(inline="always")
def exp64(x):
    """e^x of a float64 (``exp64_with``)."""
    return exp64_with(x, EXP64_K)


@njit(inline="always")
def tanh64_with(x, c):
    """tanh of a float64, c = ``TANH64_K``. With |x| = rho - k ln2 / 2 (k = round(-2|x| / ln 2), |rho| <= ln2 / 4),
    e^(-2|x|) = s (1 - tau) / (1 + tau) with s = 2^k and tau = tanh(rho), so

        tanh|x| = ((1 - s) + tau (1 + s)) / ((1 + s) + tau (1 - s))

    exact in form at k = 0 (tanh(rho) itself: no cancellation near 0); |x| > 20 gives +-1."""
    big, m2log2e, shift, half_ln2, one, g0, g1, g2, g3, g4, g5, g6 = c
    a = abs(x)
    a = big if a > big else a  # NaN passes
    t = fma(a, m2log2e, shift)  # k in [-58, 0]
    kf = t - shift
    rho = fma(kf, half_ln2, a)  # one constant: its error counts as e^(-2|x|), which is small then
    u = rho * rho
    tau = rho * fma(fma(fma(fma(fma(fma(g6, u, g5), u, g4), u, g3), u, g2), u, g1), u, g0)
    s = bits_f64(f64_bits(t) << 52)  # 2^k
    num = fma(tau, one + s, one - s)
    den = fma(tau, one - s, one + s)
    return math.copysign(num / den, x)


@njit(inline="always")
def sigmoid64_with(x, c):
    """1 / (1 + e^-x) of a float64, as 1 / (1 + e) or e / (1 + e) with e = exp(-|x|); c = ``SIGMOID64_K``."""
    lo, log2e, shift60, m_ln2_hi, m_ln2_lo, two_m60, one = c[:7]
    y = -abs(x)
    y = lo if y < lo else y  # below, e rounds to 0; NaN passes
    t = fma(y, log2e, shift60)
    kf = t - shift60
    r = fma(kf, m_ln2_hi, y)
    r = fma(kf, m_ln2_lo, r)
    p = _expm1_poly64(r, c[7:])
    s = bits_f64(f64_bits(t) << 52)  # 2^(k + 60)
    e = fma(s, p, s) * two_m60  # e^y, rounded once into the subnormals where it must be
    num = one if x >= 0.0 else e
    return num / (one + e)


@njit(inline="always")
def exp64_with(x, c):
    """e^x of a float64 (overflow -> inf, underflow through the subnormals to 0); c = ``EXP64_K``."""
    lo, hi, log2e, shift0, m_ln2_hi, m_ln2_lo = c[:6]
    y = lo if x < lo else x
    y = hi if y > hi else y
    t = fma(y, log2e, shift0)
    kf = t - shift0
    r = fma(kf, m_ln2_hi, y)
    r = fma(kf, m_ln2_lo, r)
    p = _expm1_poly64(r, c[6:])
    k = f64_bits(t) - f64_bits(_SHIFT0)
    k1 = k >> 1
    s1 = bits_f64((k1 + 1023) << 52)
    s2 = bits_f64((k - k1 + 1023) << 52)
    return fma(s1, p, s1) * s2


# log(1 + e) for e in [0, 1]: e > sqrt2 - 1 is halved first (log(1 + e) = ln 2 + log1p((e - 1) / 2)),
# then log1p(f) = 2 atanh(s) = 2 s + s z R(z), s = f / (2 + f), z = s^2 <= 0.0295 (remez.py;
# truncation 1.2e-18 relative)
_SQRT2_M1 = 0.41421356237309503
_LN2 = 0.6931471805599453
_A0 = 0.6666666666666734
_A1 = 0.39999999999414315
_A2 = 0.28571428742475596
_A3 = 0.2222219856342284
_A4 = 0.18183564869538388
_A5 = 0.1531403576912601
_A6 = 0.14796106048904376


@njit(inline="always")
def log1p_unit64(e):
    """log(1 + e) for e in [0, 1] (NaN passes)."""
    big = e > _SQRT2_M1
    f = 0.5 * (e - 1.0) if big else e
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    r = fma(fma(fma(_A6, w, _A4), w, _A2), w, _A0) + z * fma(fma(_A5, w, _A3), w, _A1)
    lg = fma(s * z, r, 2.0 * s)
    return lg + _LN2 if big else lg


@njit(inline="always")
def softplus64(q):
    """log(1 + e^q) of a float64, as max(q, 0) + log1p(e^-|q|): exact for large |q|, +inf at +inf,
    0 at -inf, NaN for NaN (torch's readout loss formula)."""
    y = -abs(q)
    y = -746.0 if y < -746.0 else y
    t = fma(y, _LOG2E, _SHIFT60)
    kf = t - _SHIFT60
    r = fma(kf, -_LN2_HI, y)
    r = fma(kf, -_LN2_LO, r)
    p = _expm1_poly64(r, _EXPM1_64_K)
    s = bits_f64(f64_bits(t) << 52)
    e = fma(s, p, s) * _TWO_M60  # e^-|q|
    m = 0.0 if q < 0.0 else q  # NaN passes
    return m + log1p_unit64(e)


# ---------------------------------------------------------------------------------------------
# float64: the other functions a user's cell reaches through the tracer (log, log1p, expm1, log2, exp2,
# asinh, sin, cos, tan, atan, floor, ceil, trunc, round). No built-in cell uses them: what they replace is a
# scalar libm call (numba's math.log, ...), which keeps the loop from vectorising.

_INF = math.inf
_TINY64 = 2.2250738585072014e-308  # the smallest normal float64
_TWO54 = 2.0 ** 54
_SQRT_HALF_BITS = 0x3FE6A09E667F3BCD  # bits of sqrt(1/2): the log's mantissa is kept in [sqrt(1/2), sqrt 2)
_EXP_MASK = 0xFFF << 52  # sign and exponent bits (as an int64, negative)
_EXP_MASK -= 1 << 64
_LN2_HI_LOG = 6.93147180369123816490e-01  # ln 2 = hi + lo, hi with 32 trailing zero bits (k * hi is exact)
_LN2_LO_LOG = 1.90821492927058770002e-10
_INV_LN2_HI = 1.4426950408889634  # 1 / ln 2 = hi + lo
_INV_LN2_LO = 2.0355273740931033e-17
_LN2_LO2 = 2.3190468138462996e-17  # ln 2 - _LN2 (for exp2's reduction)
_EXP2_SHIFT0 = 6755399441055744.0  # 1.5 * 2^52: adding it rounds to an integer held in the low bits


@njit(inline="always")
def _log_parts(u):
    """(k, f) with u = 2^k (1 + f), 1 + f in [sqrt(1/2), sqrt 2), for a normal positive u (garbage
    otherwise: the callers select the special cases)."""
    ix = f64_bits(u)
    tmp = ix - _SQRT_HALF_BITS
    k = tmp >> 52  # arithmetic shift: the exponent, one less where the mantissa is below sqrt(1/2)
    z = bits_f64(ix - (tmp & _EXP_MASK))  # 1 + f
    return k, z - 1.0  # exact (Sterbenz)


@njit(inline="always")
def _log1p_reduced(f):
    """(hfsq, s (hfsq + R)) for 1 + f in [sqrt(1/2), sqrt 2): log(1 + f) = f - (hfsq - s (hfsq + R)) with
    hfsq = f^2 / 2, s = f / (2 + f), R = 2 atanh(s) - 2 s = z A(z), z = s^2 (fdlibm's kernel; A the
    polynomial of log1p_unit64)."""
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    r = fma(fma(fma(_A6, w, _A4), w, _A2), w, _A0) + z * fma(fma(_A5, w, _A3), w, _A1)
    hfsq = 0.5 * f * f
    return hfsq, s * (hfsq + z * r)


@njit(inline="always")
def log64(x):
    """Natural log of a float64: log 0 = -inf, log of a negative = NaN, log inf = inf (subnormals
    scaled by 2^54 first)."""
    sub = x < _TINY64
    u = x * _TWO54 if sub else x
    k, f = _log_parts(u)
    k = k - 54 if sub else k
    hfsq, corr = _log1p_reduced(f)
    dk = float(k)
    out = fma(dk, _LN2_HI_LOG, -((hfsq - fma(dk, _LN2_LO_LOG, corr)) - f))
    out = -_INF if x == 0.0 else out
    out = math.nan if x < 0.0 else out
    return out if x < _INF else x  # +inf and NaN pass


@njit(inline="always")
def log1p64(x):
    """log(1 + x) of a float64 (fdlibm's method: log of u = 1 + x, plus the rounding of the add
    divided by u): x for |x| < 2^-54 (so -0 stays -0), -inf at -1, NaN below, inf at inf."""
    u = 1.0 + x
    k, f = _log_parts(u)
    c = (1.0 - (u - x)) if u >= 2.0 else (x - (u - 1.0))  # the add's rounding error, exactly
    c = c / u
    hfsq, corr = _log1p_reduced(f)
    dk = float(k)
    out = fma(dk, _LN2_HI_LOG, -((hfsq - (fma(dk, _LN2_LO_LOG, c) + corr)) - f))
    out = x if abs(x) < 5.551115123125783e-17 else out
    out = -_INF if x == -1.0 else out
    out = math.nan if x < -1.0 else out
    return out if x < _INF else x


@njit(inline="always")
def log2_64(x):
    """log2 of a float64: k + log(1 + f) / ln 2, the division as a product by 1/ln 2 in two parts."""
    sub = x < _TINY64
    u = x * _TWO54 if sub else x
    k, f = _log_parts(u)
    k = k - 54 if sub else k
    hfsq, corr = _log1p_reduced(f)
    lg = f - (hfsq - corr)  # log(1 + f), |lg| <= ln2 / 2
    lo = (f - lg) - (hfsq - corr)  # the rounding of lg (f - lg is exact)
    out = float(k) + fma(lg, _INV_LN2_HI, fma(lg, _INV_LN2_LO, lo * _INV_LN2_HI))
    out = -_INF if x == 0.0 else out
    out = math.nan if x < 0.0 else out
    return out if x < _INF else x


@njit(inline="always")
def expm1_64(x):
    """e^x - 1 of a float64, as 2^k (1 + p) - 1 = fma(2^k, p, 2^k - 1) with p = e^r - 1 (2^k - 1 is
    exact for k < 60; above, the - 1 does not count and 2^k is applied in two halves so that it
    overflows only where the result does): x for |x| < 2^-54, -1 below -40, inf above 710."""
    y = -40.0 if x < -40.0 else x
    y = 710.0 if y > 710.0 else y  # NaN passes
    t = fma(y, _LOG2E, _SHIFT0)
    kf = t - _SHIFT0
    r = fma(kf, -_LN2_HI, y)
    r = fma(kf, -_LN2_LO, r)
    p = _expm1_poly64(r, _EXPM1_64_K)
    k = f64_bits(t) - f64_bits(_SHIFT0)
    half = bits_f64((k + 1022) << 52)  # 2^(k - 1)
    s = 2.0 * half
    small = fma(s, p, s - 1.0)
    big = 2.0 * fma(half, p, half)
    out = small if k < 60 else big
    return x if abs(x) < 5.551115123125783e-17 else out


@njit(inline="always")
def exp2_64(x):
    """2^x of a float64: k = round(x), 2^k e^(r ln 2) with r = x - k exact and r ln 2 in two parts."""
    y = -1075.0 if x < -1075.0 else x
    y = 1025.0 if y > 1025.0 else y
    t = y + _EXP2_SHIFT0
    kf = t - _EXP2_SHIFT0
    r = y - kf  # exact, |r| <= 1/2
    rl = fma(r, _LN2, r * _LN2_LO2)  # r ln 2 (|rl| <= ln2 / 2)
    p = _expm1_poly64(rl, _EXPM1_64_K)
    k = f64_bits(t) - f64_bits(_EXP2_SHIFT0)
    k1 = k >> 1
    s1 = bits_f64((k1 + 1023) << 52)
    s2 = bits_f64((k - k1 + 1023) << 52)
    return fma(s1, p, s1) * s2


@njit(inline="always")
def asinh64(x):
    """asinh of a float64: sign(x) log1p(a + a^2 / (1 + sqrt(1 + a^2))), a = |x| (no cancellation
    near 0); a > 2^28: log(a) + ln 2 (a^2 would overflow, and 1 + a^2 rounds to a^2 there)."""
    a = abs(x)
    small = log1p64(a + a * a / (1.0 + math.sqrt(fma(a, a, 1.0))))
    big = log64(a) + _LN2
    out = big if a > 268435456.0 else small
    return math.copysign(out, x)


# sin and cos on |r| <= pi/4: fdlibm's __kernel_sin / __kernel_cos minimax coefficients (error
# below 2^-58 relative there); sin r = r + r^3 S(r^2), cos r = 1 - r^2/2 + r^4 C(r^2)
_S1 = -1.66666666666666324348e-01
_S2 = 8.33333333332248946124e-03
_S3 = -1.98412698298579493134e-04
_S4 = 2.75573137070700676789e-06
_S5 = -2.50507602534068634195e-08
_S6 = 1.58969099521155010221e-10
_C1 = 4.16666666666666019037e-02
_C2 = -1.38888888888741095749e-03
_C3 = 2.48015872894767294178e-05
_C4 = -2.75573143513906633035e-07
_C5 = 2.08757232129817482790e-09
_C6 = -1.13596475577881948265e-11
_PIO2_1 = 1.5707963267948966  # pi/2 = _PIO2_1 + _PIO2_2 + _PIO2_3 (to about 1e-49)
_PIO2_2 = 6.123233995736766e-17
_PIO2_3 = -1.4973849048591698e-33
_INV_PIO2 = 0.6366197723675814
_TRIG_MAX = 2.0 ** 50  # |x| up to here: k = round(x 2/pi) fits the shift and the reduction holds


@njit(inline="always")
def _trig_reduce(x):
    """(q, sin r, cos r) with x = k pi/2 + r, |r| <= pi/4, q = k mod 4. The first FMA step is exact
    (x and k _PIO2_1 agree to their last bits), the next two leave half an ulp of r."""
    t = fma(x, _INV_PIO2, _SHIFT0)
    kf = t - _SHIFT0
    r = fma(-kf, _PIO2_1, x)
    r = fma(-kf, _PIO2_2, r)
    r = fma(-kf, _PIO2_3, r)
    q = f64_bits(t) & 3  # the low bits of k (two's complement: also for k < 0)
    z = r * r
    ps = fma(fma(fma(fma(_S6, z, _S5), z, _S4), z, _S3), z, _S2)
    sn = fma(r * z, fma(z, ps, _S1), r)
    pc = z * fma(fma(fma(fma(fma(_C6, z, _C5), z, _C4), z, _C3), z, _C2), z, _C1)
    hz = 0.5 * z
    w = 1.0 - hz
    cs = w + (((1.0 - w) - hz) + z * pc)  # fdlibm: the rounding of 1 - z/2 added back
    return q, sn, cs


@njit(inline="always")
def sin64(x):
    """sin of a float64: x for |x| < 2^-27 (so -0 stays -0); NaN for +-inf, NaN, and |x| >= 2^50,
    where this reduction no longer holds (documented: a user cell's state that large is NaN'd)."""
    q, sn, cs = _trig_reduce(x)
    out = cs if q & 1 else sn
    out = -out if q & 2 else out
    out = x if abs(x) < 7.450580596923828e-09 else out
    return out if abs(x) < _TRIG_MAX else math.nan


@njit(inline="always")
def cos64(x):
    """cos of a float64; NaN for +-inf, NaN and |x| >= 2^50 (as sin64)."""
    q, sn, cs = _trig_reduce(x)
    out = sn if q & 1 else cs
    out = -out if (q + 1) & 2 else out
    return out if abs(x) < _TRIG_MAX else math.nan


@njit(inline="always")
def tan64(x):
    """tan of a float64: sin r / cos r, or -cos r / sin r in odd quadrants; NaN as sin64."""
    q, sn, cs = _trig_reduce(x)
    out = -cs / sn if q & 1 else sn / cs
    out = x if abs(x) < 7.450580596923828e-09 else out
    return out if abs(x) < _TRIG_MAX else math.nan


# atan(r) = r + r u T(u), u = r^2 <= tan(pi/8)^2 (remez.py; truncation 0.012 ulp relative)
_T0 = -0.333333333333332
_T1 = 0.19999999999953205
_T2 = -0.14285714280162065
_T3 = 0.11111110781920677
_T4 = -0.09090897718269297
_T5 = 0.07692059589300058
_T6 = -0.06663097706449966
_T7 = 0.058478481036093294
_T8 = -0.05039138943023652
_T9 = 0.03806080436787674
_T10 = -0.01790354854579183
_TAN_3PI8 = 2.414213562373095  # 1 + sqrt 2
_PIO4_HI = 0.7853981633974483  # pi/4 = hi + lo
_PIO4_LO = 3.061616997868383e-17


@njit(inline="always")
def atan64(x):
    """atan of a float64: with a = |x|, atan a = pi/2 + atan(-1/a) above tan(3pi/8), pi/4 + atan((a - 1)
    / (a + 1)) above tan(pi/8), else atan a; each reduced argument |r| <= tan(pi/8), the constant
    added in two parts. +-inf -> +-pi/2, -0 -> -0."""
    a = abs(x)
    big = a > _TAN_3PI8
    mid = a > _SQRT2_M1
    num = -1.0 if big else (a - 1.0 if mid else a)
    den = a if big else (a + 1.0 if mid else 1.0)
    r = num / den
    hi = _PIO2_1 if big else (_PIO4_HI if mid else 0.0)
    lo = _PIO2_2 if big else (_PIO4_LO if mid else 0.0)
    u = r * r
    w = u * u
    even = fma(fma(fma(fma(fma(_T10, w, _T8), w, _T6), w, _T4), w, _T2), w, _T0)
    odd = fma(fma(fma(fma(_T9, w, _T7), w, _T5), w, _T3), w, _T1)
    poly = fma(u, odd, even)
    out = hi + (r + fma(r * u, poly, lo))
    return math.copysign(out, x)


def _llvm_unary(llvm_name: str, doc: str):
    @intrinsic
    def fn(typingctx, a):
        if not isinstance(a, types.Float):
            return None

        def codegen(context, builder, signature, args):
            ty = args[0].type
            f = builder.module.declare_intrinsic(llvm_name, [ty], ir.FunctionType(ty, [ty]))
            return builder.call(f, args)

        return a(a), codegen

    fn.__doc__ = doc
    return fn


# exact, and vectorised by LLVM (vroundpd); numba's math.floor returns an int, which inf and NaN break
floor = _llvm_unary("llvm.floor", "torch.floor of a float (llvm.floor): inf and NaN pass.")
ceil = _llvm_unary("llvm.ceil", "torch.ceil of a float (llvm.ceil).")
trunc = _llvm_unary("llvm.trunc", "torch.trunc of a float (llvm.trunc).")
round_even = _llvm_unary("llvm.rint", "torch.round of a float: to nearest, ties to even (llvm.rint).")


def _via64(fn64, name: str):
    """The float32 form of a float64 function: computed in float64 and rounded once (within half an
    ulp of float32 plus the float64 error, 2^-29 of that ulp; vectorised with the conversions)."""
    @njit(inline="always")
    def fn32(x):
        return np.float32(fn64(np.float64(x)))

    fn32.__doc__ = f"{name} of a float32, through {fn64.__name__} in float64 (one rounding to float32)."
    return fn32


log32 = _via64(log64, "log")
log1p32 = _via64(log1p64, "log1p")
log2_32 = _via64(log2_64, "log2")
expm1_32 = _via64(expm1_64, "expm1")
exp2_32 = _via64(exp2_64, "exp2")
asinh32 = _via64(asinh64, "asinh")
sin32 = _via64(sin64, "sin")
cos32 = _via64(cos64, "cos")
tan32 = _via64(tan64, "tan")
atan32 = _via64(atan64, "atan")


# ---------------------------------------------------------------------------------------------
# float32 (every constant a float32, so nothing is promoted to float64)

_F = np.float32
_LOG2E_32 = _F(1.442695)
_M2LOG2E_32 = _F(-2.0 * 1.4426950408889634)
_LN2_HI_32 = _F(0.693359375)
_LN2_LO_32 = _F(-2.12194440e-4)
_SHIFT_32 = _F(12582912.0 + 127)  # 1.5 * 2^23 + bias
_SHIFT30_32 = _F(12582912.0 + 127 + 30)
_SHIFT0_32 = _F(12582912.0)
_TWO_M30_32 = _F(2.0 ** -30)
_ONE_32, _TWO_32, _M_TWO_32, _ZERO_32, _HALF_32 = _F(1.0), _F(2.0), _F(-2.0), _F(0.0), _F(0.5)
_P10_32, _M104_32, _P89_32 = _F(10.0), _F(-104.0), _F(89.0)
_I127_32 = np.int32(127)
_I23_32 = np.int32(23)

# e^r - 1 = r + r^2 Q(r), Q of degree 4 (remez.py; truncation 1.3e-8 relative = 0.22 ulp)
_P0_32 = _F(0.49999998155160547)
_P1_32 = _F(0.16666543670219242)
_P2_32 = _F(0.04166719964304031)
_P3_32 = _F(0.008366513935994756)
_P4_32 = _F(0.0013882522982763927)
# tanh(rho) = rho G(rho^2), |rho| <= ln2 / 4, G of degree 2 (remez.py; truncation 4.5e-8 = 0.75 ulp);
# the float32 reduction takes ln 2 in one constant: its error shrinks with e^(-2|x|) (tested)
_G0_32 = _F(0.9999999551922804)
_G1_32 = _F(-0.33330644248399366)
_G2_32 = _F(0.13093552889457674)
_HALF_LN2_32 = _F(0.5 * 0.6931471805599453)


_EXPM1_32_K = (_P0_32, _P1_32, _P2_32, _P3_32, _P4_32)
# The constants of tanh32, sigmoid32, sigmoid32fast and exp32, for their ``_with`` forms (as float64's)
TANH32_K = (_P10_32, _M2LOG2E_32, _SHIFT_32, _HALF_LN2_32, _ONE_32, _G0_32, _G1_32, _G2_32)
SIGMOID32_K = (_M104_32, _LOG2E_32, _SHIFT30_32, -_LN2_HI_32, -_LN2_LO_32, _TWO_M30_32, _ONE_32) + _EXPM1_32_K
SIGMOID32FAST_K = (_HALF_32,) + TANH32_K
EXP32_K = (_M104_32, _P89_32, _LOG2E_32, _SHIFT0_32, -_LN2_HI_32, -_LN2_LO_32) + _EXPM1_32_K


@njit(inline="always")
def _expm1_poly32(r, q):
    p0, p1, p2, p3, p4 = q
    u = r * r
    even = fma(fma(p4, u, p2), u, p0)
    odd = fma(p3, u, p1)
    return fma(u, fma(r, odd, even), r)


@njit(inline="always")
def tanh32_with(x, c):
    """tanh of a float32 (computed in float32), as tanh64; c = ``TANH32_K``."""
    big, m2log2e, shift, half_ln2, one, g0, g1, g2 = c
    a = abs(x)
    a = big if a > big else a
    t = fma(a, m2log2e, shift)
    kf = t - shift
    rho = fma(kf, half_ln2, a)
    u = rho * rho
    tau = rho * fma(fma(g2, u, g1), u, g0)
    s = bits_f32(f32_bits(t) << _I23_32)
    num = fma(tau, one + s, one - s)
    den = fma(tau, one - s, one + s)
    return math.copysign(num / den, x)


@njit(inline="always")
def sigmoid32_with(x, c):
    """sigmoid of a float32 (computed in float32); c = ``SIGMOID32_K``."""
    lo, log2e, shift30, m_ln2_hi, m_ln2_lo, two_m30, one = c[:7]
    y = -abs(x)
    y = lo if y < lo else y
    t = fma(y, log2e, shift30)
    kf = t - shift30
    r = fma(kf, m_ln2_hi, y)
    r = fma(kf, m_ln2_lo, r)
    p = _expm1_poly32(r, c[7:])
    s = bits_f32(f32_bits(t) << _I23_32)
    e = fma(s, p, s) * two_m30
    num = one if x >= _ZERO_32 else e
    return num / (one + e)


@njit(inline="always")
def sigmoid32fast_with(x, c):
    """sigmoid of a float32 as 1/2 + tanh(x / 2) / 2: the opt-in ``fast`` accuracy class (XLA's
    float32 logistic has this form: the same errors in kind); c = ``SIGMOID32FAST_K``. About 15 %
    cheaper than ``sigmoid32`` (lstm float32: 1.83 -> 1.69 ns per cell-step); its error is absolute,
    not relative: within ``FAST_SIGMOID32_ABS`` of the true value everywhere and within
    ``FAST_SIGMOID32_ULP`` ulps for x >= 0, but where sigmoid(x) is small it keeps only the bits of
    1/2's spacing: sigmoid(-10) = 4.54e-5 comes out 3.9e-8 low (1.1e4 of its ulps), x between -17 and
    -16.6 gives 0 or 6e-8, and every x below -17 gives 0 (the true value < 4.2e-8)."""
    half = c[0]
    return fma(half, tanh32_with(half * x, c[1:]), half)


@njit(inline="always")
def exp32_with(x, c):
    """e^x of a float32; c = ``EXP32_K``."""
    lo, hi, log2e, shift0, m_ln2_hi, m_ln2_lo = c[:6]
    y = lo if x < lo else x
    y = hi if y > hi else y
    t = fma(y, log2e, shift0)
    kf = t - shift0
    r = fma(kf, m_ln2_hi, y)
    r = fma(kf, m_ln2_lo, r)
    p = _expm1_poly32(r, c[6:])
    k = f32_bits(t) - f32_bits(_SHIFT0_32)
    k1 = k >> np.int32(1)
    s1 = bits_f32((k1 + _I127_32) << _I23_32)
    s2 = bits_f32((k - k1 + _I127_32) << _I23_32)
    return fma(s1, p, s1) * s2


@njit(inline="always")
def tanh32(x):
    """tanh of a float32 (``tanh32_with``)."""
    return tanh32_with(x, TANH32_K)


@njit(inline="always")
def sigmoid32(x):
    """sigmoid of a float32 (``sigmoid32_with``)."""
    return sigmoid32_with(x, SIGMOID32_K)


@njit(inline="always")
def sigmoid32fast(x):
    """The fast class's sigmoid of a float32 (``sigmoid32fast_with``)."""
    return sigmoid32fast_with(x, SIGMOID32FAST_K)


@njit(inline="always")
def exp32(x):
    """e^x of a float32 (``exp32_with``)."""
    return exp32_with(x, EXP32_K)


# ---------------------------------------------------------------------------------------------
# torch's NaN-propagating comparisons (any dtype)


@njit(inline="always")
def maximum(a, b):
    """torch.maximum: the larger, NaN if either is NaN."""
    return a if (a > b or a != a) else b


@njit(inline="always")
def minimum(a, b):
    """torch.minimum: the smaller, NaN if either is NaN."""
    return a if (a < b or a != a) else b


@njit(inline="always")
def clamp(x, lo, hi):
    """torch.clamp(x, lo, hi): NaN stays NaN."""
    y = lo if x < lo else x
    return hi if y > hi else y


@njit(inline="always")
def clamp_min(x, lo):
    return lo if x < lo else x


@njit(inline="always")
def clamp_max(x, hi):
    return hi if x > hi else x


@intrinsic
def radd(typingctx, a, b):
    """a + b marked reassociable: a loop summing with it is vectorised (partial sums per lane,
    added at the end), which strict IEEE order forbids. Only for accumulations."""
    if not (isinstance(a, types.Float) and a == b):
        return None

    def codegen(context, builder, signature, args):
        return builder.fadd(args[0], args[1], flags=("reassoc", "nsz"))

    return a(a, b), codegen
