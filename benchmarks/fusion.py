"""Would fusing the srnn step's two passes beat the tanh floor on the CPU? (``--only fusion``)

The engine's srnn step is two in-place passes over a cache-sized block, ``addcmul`` (w h + b + u x_t)
and ``tanh_``; the floor benchmark shows the unroll at about floor + the addcmul pass. This one
times the ways of doing both in one pass, on one block of the floor benchmark's shape, against the
same floor (T in-place ``tanh_`` over the block) and the eager step, in the same run:

- C kernels that keep the state in registers through all T and call a vector tanh of the libraries
  at hand: Sleef's (exported by libtorch_cpu: the 1-ulp and the 3.5-ulp versions) and glibc's
  libmvec (``#pragma omp simd`` with -ffast-math);
- MKL's ``vmdTanh`` (what torch's ``tanh_`` calls on x86, bit for bit) on L1-sized tiles, the
  affine part of each tile in C before it;
- the affine pass in C over the whole block, then one ``vmdTanh`` of the block;
- ``torch.compile`` of the step (inductor's C++ with at::vec, which uses Sleef).

Not in the default run: it compiles C with the system compiler (``$CC``, else ``cc``) against
libtorch_cpu, so it needs x86-64, a torch built with MKL and a compiler; where any is missing it
says so and gives no rows. Nothing here is used by the engine: these numbers are why.
"""
from __future__ import annotations

import ctypes
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

from .common import Row, Settings, clock_extras, timed

NAME = "fusion"

VML_HA = 0x140102  # VML_HA | VML_FTZDAZ_OFF | VML_ERRMODE_IGNORE: torch's mode, bit for bit with tanh_

_REGISTERS = r"""
#include <stdint.h>
#include <string.h>
typedef double V __attribute__((vector_size(VBYTES)));
#define LANES (VBYTES / 8)
#define U 4 /* independent vectors per tile: their tanh calls overlap */
V TANH10(V);
V TANH35(V);
#define KERNEL(name, vtanh)                                                                        \
void name(double* h, const double* w, const double* rows, int64_t P, int64_t N, int64_t T) {       \
  for (int64_t p = 0; p < P; ++p) {                                                                \
    V wp = (V){0} + w[p];                                                                          \
    for (int64_t n0 = 0; n0 + LANES * U <= N; n0 += LANES * U) {                                   \
      V s[U];                                                                                      \
      for (int j = 0; j < U; ++j) memcpy(&s[j], h + p * N + n0 + j * LANES, sizeof(V));            \
      for (int64_t t = 0; t < T; ++t) {                                                            \
        const double* r = rows + t * N + n0;                                                       \
        for (int j = 0; j < U; ++j) {                                                              \
          V x; memcpy(&x, r + j * LANES, sizeof(V)); s[j] = vtanh(wp * s[j] + x);                  \
        }                                                                                          \
      }                                                                                            \
      for (int j = 0; j < U; ++j) memcpy(h + p * N + n0 + j * LANES, &s[j], sizeof(V));            \
    }                                                                                              \
  }                                                                                                \
}
KERNEL(sleef10, TANH10)
KERNEL(sleef35, TANH35)

void vmdTanh(int n, const double* a, double* r, unsigned long long mode);

void mkl_tiles(double* h, const double* w, const double* rows, int64_t P, int64_t N, int64_t T) {
  double a[1024];
  for (int64_t p = 0; p < P; ++p) {
    for (int64_t n0 = 0; n0 < N; n0 += 1024) {
      int64_t m = N - n0 < 1024 ? N - n0 : 1024;
      double* restrict hp = h + p * N + n0;
      for (int64_t t = 0; t < T; ++t) {
        const double* restrict r = rows + t * N + n0;
        for (int64_t i = 0; i < m; ++i) a[i] = w[p] * hp[i] + r[i];
        vmdTanh((int)m, a, hp, VML_HA);
      }
    }
  }
}

void affine_then_mkl(double* h, const double* w, const double* rows, int64_t P, int64_t N, int64_t T) {
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t p = 0; p < P; ++p) {
      double* restrict hp = h + p * N;
      const double* restrict r = rows + t * N;
      for (int64_t i = 0; i < N; ++i) hp[i] = w[p] * hp[i] + r[i];
    }
    vmdTanh((int)(P * N), h, h, VML_HA);
  }
}
"""

_LIBMVEC = r"""
#include <math.h>
#include <stdint.h>
void libmvec(double* h, const double* w, const double* rows, int64_t P, int64_t N, int64_t T) {
  for (int64_t p = 0; p < P; ++p)
    for (int64_t n0 = 0; n0 < N; n0 += 64) {
      int64_t n1 = n0 + 64 < N ? n0 + 64 : N;
      double* restrict hp = h + p * N;
      for (int64_t t = 0; t < T; ++t) {
        const double* restrict r = rows + t * N;
#pragma omp simd
        for (int64_t n = n0; n < n1; ++n) hp[n] = tanh(w[p] * hp[n] + r[n]);
      }
    }
}
"""

# torch's CPU capability -> vector bytes, compiler flags, Sleef's tanh (1 ulp, 3.5 ulp) of that width
_ISA = {
    "AVX512": (64, ["-mavx512f", "-mfma"], "Sleef_tanhd8_u10avx512f", "Sleef_tanhd8_u35avx512f"),
    "AVX2": (32, ["-mavx2", "-mfma"], "Sleef_tanhd4_u10avx2", "Sleef_tanhd4_u35avx2"),
}


def _unavailable() -> str | None:
    if platform.machine() not in ("x86_64", "AMD64"):
        return f"needs x86-64, this is {platform.machine()}"
    if not torch.backends.mkl.is_available():
        return "this torch is built without MKL"
    if torch.backends.cpu.get_cpu_capability() not in _ISA:
        return f"needs AVX2 or AVX-512, torch reports {torch.backends.cpu.get_cpu_capability()}"
    if shutil.which(os.environ.get("CC", "cc")) is None:
        return "no C compiler ($CC or cc)"
    return None


def _build(folder: Path) -> tuple[ctypes.CDLL, ctypes.CDLL]:
    vbytes, flags, t10, t35 = _ISA[torch.backends.cpu.get_cpu_capability()]
    lib = Path(torch.__file__).parent / "lib"
    cc = os.environ.get("CC", "cc")
    link = [f"-L{lib}", "-ltorch_cpu", f"-Wl,-rpath,{lib}"]
    out = []
    for stem, source, extra in (("registers", _REGISTERS, [f"-DVBYTES={vbytes}", f"-DTANH10={t10}",
                                                          f"-DTANH35={t35}", f"-DVML_HA={VML_HA}ULL"]),
                                ("libmvec", _LIBMVEC, ["-ffast-math", "-fopenmp-simd"])):
        src, so = folder / f"{stem}.c", folder / f"{stem}.so"
        src.write_text(source)
        subprocess.run([cc, "-O3", "-std=gnu11", "-shared", "-fPIC", *flags, *extra, str(src), "-o", str(so),
                        *link, "-lm"], check=True, capture_output=True, text=True)
        out.append(ctypes.CDLL(str(so)))
    return out[0], out[1]


def run(s: Settings) -> list[Row]:
    why = _unavailable()
    if why:
        print(f"  fusion: skipped ({why})", flush=True)
        return []
    P, N, T, blocks = (8, 64, 5, 1) if s.quick else (101, 1024, 100, 20)  # N a multiple of 4 vectors
    g = torch.Generator().manual_seed(0)
    w = torch.rand(P, generator=g, dtype=torch.float64) * 4 - 1  # the latch grid's w range
    rows = torch.randn(T, N, generator=g, dtype=torch.float64) * 0.5  # b + u x_t
    h0 = torch.rand(P, N, generator=g, dtype=torch.float64) * 2 - 1
    h = torch.empty_like(h0)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            regs, mvec = _build(Path(tmp))
        except subprocess.CalledProcessError as e:
            last = (e.stderr.strip().splitlines() or ["no message"])[-1]
            print(f"  fusion: skipped (the C kernels did not compile: {last})", flush=True)
            return []
        args = (ctypes.c_void_p(h.data_ptr()), ctypes.c_void_p(w.data_ptr()), ctypes.c_void_p(rows.data_ptr()),
                ctypes.c_int64(P), ctypes.c_int64(N), ctypes.c_int64(T))
        kernels = {"sleef10": regs.sleef10, "sleef35": regs.sleef35, "libmvec": mvec.libmvec,
                   "mkl_tiles": regs.mkl_tiles, "affine_then_mkl": regs.affine_then_mkl}
        column = w[:, None]

        @torch.compile(dynamic=False, fullgraph=True)
        def compiled_step(h, w, row):
            h.copy_(torch.tanh(torch.addcmul(row, h, w)))

        def repeat(step_all):
            def fn():
                for _ in range(blocks):
                    h.copy_(h0)
                    step_all()
            return fn

        def compiled_all():
            for t in range(T):
                compiled_step(h, column, rows[t])

        def eager_all():  # the engine's step
            for t in range(T):
                torch.addcmul(rows[t], h, column, out=h).tanh_()

        def floor_all():
            for _ in range(T):
                h.tanh_()

        funcs = {name: repeat(lambda f=f: f(*args)) for name, f in kernels.items()}
        funcs["torch.compile"] = repeat(compiled_all)
        funcs["eager"] = repeat(eager_all)
        funcs["floor"] = repeat(floor_all)
        h.copy_(h0)
        eager_all()
        want = h.clone()  # what every candidate must give
        errors = {}
        for name, fn in list(funcs.items()):  # once, untimed: compiles torch.compile's step; checks the numbers
            try:
                fn()
            except Exception as e:  # inductor needs a C++ compiler: the other rows stand without it
                if name != "torch.compile":
                    raise
                print(f"  fusion: no torch.compile row ({type(e).__name__}: {str(e).splitlines()[0][:120]})",
                      flush=True)
                del funcs[name]
                continue
            errors[name] = float((h - want).abs().max())
        res = timed(s, funcs)
    f = res["floor"]["median"]
    labels = {"sleef10": "C, state in registers, Sleef tanh (1 ulp)",
              "sleef35": "C, state in registers, Sleef tanh (3.5 ulp)",
              "libmvec": "C, state in registers, glibc libmvec tanh",
              "mkl_tiles": "C affine + MKL vmdTanh on tiles of 1024",
              "affine_then_mkl": "C affine pass + MKL vmdTanh of the block",
              "torch.compile": "torch.compile of the step (inductor)",
              "eager": "eager addcmul + tanh_ (the engine's step)"}
    steps = blocks * P * N * T
    out = []
    for key, label in labels.items():
        if key not in res:
            continue
        c = res[key]["median"]
        out.append(Row(NAME, f"srnn step, one block {P}x{N}, T={T}", label, "tanh_ floor (same block)", c, f, "s",
                       c / f, "candidate / floor (time)",
                       note=f"{c / steps * 1e9:.2f} ns per cell-step; max |difference| from the eager step "
                            f"{errors[key]:.1e}", extra=clock_extras(res, key, "floor")).check())
    return out
