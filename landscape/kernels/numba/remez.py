"""Derive mathfn's polynomial coefficients: ``python -m landscape.kernels.numba.remez`` (needs mpmath).

A Remez exchange in 40-digit arithmetic for the weighted minimax polynomial of each function on
its reduced interval (the weight makes the error relative to the function mathfn computes):

- Q: (e^r - 1 - r) / r^2 on |r| <= ln2 / 2, relative to e^r - 1 (degree 9 for float64, 4 for float32);
- G: tanh(rho) / rho in u = rho^2, |rho| <= ln2 / 4, relative (degree 6 for float64, 2 for float32);
- A: (2 atanh(s) / s - 2) / z in z = s^2, |s| <= (sqrt2 - 1) / (sqrt2 + 1), relative to log1p
  (degree 6);
- T: (atan(r) / r - 1) / u in u = r^2, |r| <= tan(pi/8), relative to atan (degree 10).

It prints the coefficients as mathfn holds them and each fit's truncation error (in ulps of the
dtype); a run reproduces the tables in mathfn.py. Not imported by the library.
"""
from __future__ import annotations


def remez(f, w, a, b, n, iters=25, grid=3001):
    """The polynomial c (degree n, c[0] first) minimising max |w(x) (f(x) - c(x))| on [a, b], and
    that maximum."""
    import mpmath as mp

    m = n + 2
    xs = [(a + b) / 2 - (b - a) / 2 * mp.cos(mp.pi * (i + 0.5) / m) for i in range(m)]
    xs = [x if abs(x) > 1e-20 else (b - a) * mp.mpf("1e-3") for x in xs]
    pts = [a + (b - a) * mp.mpf(j) / grid for j in range(grid + 1)]
    fv, wv = [f(x) for x in pts], [w(x) for x in pts]
    c, err = None, None
    for _ in range(iters):
        A, rhs = mp.matrix(m, m), mp.matrix(m, 1)
        for i, x in enumerate(xs):
            for k in range(n + 1):
                A[i, k] = x ** k
            A[i, n + 1] = (-1) ** i / w(x)
            rhs[i] = f(x)
        sol = mp.lu_solve(A, rhs)
        c, level = [sol[k] for k in range(n + 1)], abs(sol[n + 1])
        vals = [wv[j] * (fv[j] - mp.polyval(c[::-1], pts[j])) for j in range(grid + 1)]
        runs, cur = [], [0]  # alternating extrema: the largest of each run of one sign
        for j in range(1, grid + 1):
            if (vals[j] >= 0) == (vals[cur[0]] >= 0):
                cur.append(j)
            else:
                runs.append(cur)
                cur = [j]
        runs.append(cur)
        ext = [max(r, key=lambda j: abs(vals[j])) for r in runs]
        err = max(abs(v) for v in vals)
        while len(ext) > m:
            ext = ext[1:] if abs(vals[ext[0]]) < abs(vals[ext[-1]]) else ext[:-1]
        if len(ext) < m or err < level * (1 + mp.mpf("1e-6")):
            break
        xs = [pts[j] for j in ext]
    return c, err


def main():
    import mpmath as mp

    mp.mp.dps = 40
    ln2 = mp.log(2)
    fits = {
        "Q": (lambda r: (mp.expm1(r) - r) / r ** 2 if r != 0 else mp.mpf(1) / 2,
              lambda r: abs(r * r / mp.expm1(r)) if r != 0 else mp.mpf(0), -ln2 / 2, ln2 / 2, {"float64": 9, "float32": 4}),
        "G": (lambda u: mp.tanh(mp.sqrt(u)) / mp.sqrt(u) if u > 0 else mp.mpf(1),
              lambda u: mp.sqrt(u) / mp.tanh(mp.sqrt(u)) if u > 0 else mp.mpf(1), mp.mpf(0),
              (ln2 / 4) ** 2 * mp.mpf("1.0001"), {"float64": 6, "float32": 2}),
        "A": (lambda z: (2 * mp.atanh(mp.sqrt(z)) / mp.sqrt(z) - 2) / z if z > 0 else mp.mpf(2) / 3,
              lambda z: z / 2, mp.mpf(0), ((mp.sqrt(2) - 1) / (mp.sqrt(2) + 1)) ** 2 * mp.mpf("1.0001"), {"float64": 6}),
        "T": (lambda u: (mp.atan(mp.sqrt(u)) / mp.sqrt(u) - 1) / u if u > 0 else mp.mpf(-1) / 3,
              lambda u: u * mp.sqrt(u) / mp.atan(mp.sqrt(u)) if u > 0 else mp.mpf(0), mp.mpf(0),
              mp.tan(mp.pi / 8) ** 2 * mp.mpf("1.0001"), {"float64": 10}),
    }
    for name, (f, w, a, b, degrees) in fits.items():
        for dtype, n in degrees.items():
            c, err = remez(f, w, a, b, n)
            ulp = mp.mpf(2) ** (-53 if dtype == "float64" else -24)
            print(f"{name} ({dtype}, degree {n}): truncation {mp.nstr(err, 3)} relative = {mp.nstr(err / ulp, 3)} ulp")
            for i, ci in enumerate(c):
                print(f"    _{name}{i} = {float(ci)!r}")


if __name__ == "__main__":
    main()
