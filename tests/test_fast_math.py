"""The opt-in ``fast`` accuracy class of the fused CPU kernels: float32's sigmoid as
1/2 + tanh(x/2)/2 (``mathfn.sigmoid32fast``, XLA's float32 logistic's form). Its errors against
long double are the stated bounds (absolute everywhere, ulps for x >= 0); a kernel of the fast class
is a different module (source, hence cache key) whose outputs stay near the exact kernel's; the
default kernels are the exact ones, and float64 kernels do not change with the class."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

pytest.importorskip("numba")

from landscape.cells import get_cell  # noqa: E402
from landscape.kernels.numba import mathfn  # noqa: E402
from landscape.kernels.numba.codegen import generate, source_key  # noqa: E402
from landscape.kernels.numba.unroll import fused_kernel  # noqa: E402
from landscape.kernels.trace import trace_cell  # noqa: E402
from tests.test_mathfn import LD, points, vectorised  # noqa: E402


@pytest.fixture(scope="module")
def fast_sigmoid():
    return vectorised(mathfn.sigmoid32fast)


def test_fast_sigmoid_error_is_within_its_stated_bounds(fast_sigmoid):
    x = points("sigmoid", 32)
    got = np.empty_like(x)
    fast_sigmoid(x, got)
    ref = 1 / (1 + np.exp(-x.astype(LD)))
    err = np.abs(got.astype(LD) - ref)
    assert float(err.max()) <= mathfn.FAST_SIGMOID32_ABS
    pos = x >= 0
    spacing = np.spacing(np.abs(ref[pos]).astype(np.float32)).astype(LD)
    assert float((err[pos] / spacing).max()) <= mathfn.FAST_SIGMOID32_ULP
    # the class's price, stated in its docstring: relative accuracy is lost where sigmoid is small
    assert float(got[(x < -17)].max()) == 0.0
    exact = np.empty_like(x)
    vectorised(mathfn.sigmoid32)(x, exact)
    assert float(exact[(x < -18) & (x > -80)].min()) > 0


def test_fast_sigmoid_special_values(fast_sigmoid):
    x = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0], np.float32)
    got = np.empty_like(x)
    fast_sigmoid(x, got)
    assert got[0] == 1 and got[1] == 0 and math.isnan(got[2]) and got[3] == 0.5 and got[4] == 0.5


def _program(name, dtype):
    return trace_cell(get_cell(name), 1, dtype)


def test_fast_class_is_another_float32_kernel_and_the_same_float64_one():
    p32, p64 = _program("lstm", torch.float32), _program("lstm", torch.float64)
    exact32, fast32 = generate(p32, torch.float32), generate(p32, torch.float32, "fast")
    assert generate(p32, torch.float32, "exact") == exact32 and "sigmoid32fast" not in exact32  # the default is exact
    assert fast32.count("sigmoid32fast_with(") == 2 * 3 and source_key(fast32) != source_key(exact32)  # 3 gates, 2 loops
    assert generate(p64, torch.float64, "fast") == generate(p64, torch.float64)
    with pytest.raises(ValueError, match="choose from: exact, fast"):
        generate(p32, torch.float32, "quick")


def test_fast_lstm_kernel_stays_near_the_exact_one():
    cell, T, N, P = get_cell("lstm"), 30, 64, 6
    g = torch.Generator().manual_seed(0)
    shapes = cell.param_shapes(1, 1)
    params = {k: torch.randn((P, *s), generator=g, dtype=torch.float32) for k, s in shapes.items()}
    x = torch.randn(T, N, generator=g, dtype=torch.float32)
    ends = [torch.full((N,), T)]
    exact = fused_kernel(cell, 1, torch.float32).outputs(params, x, ends, 0.0, threads=1)
    fast_kernel = fused_kernel(cell, 1, torch.float32, "fast")
    assert fast_kernel is not None and fast_kernel.key != fused_kernel(cell, 1, torch.float32).key
    fast = fast_kernel.outputs(params, x, ends, 0.0, threads=1)
    diff = float((fast - exact).abs().max())
    assert 0 < diff < 1e-4  # different numbers (the class changes them), by a few float32 roundings per step


def test_grid_math_fast_is_its_own_surface_near_the_exact_one(tmp_path, monkeypatch):
    """`landscape grid --math fast` (GridSpec.math): another key and spec (the default's spec has no
    "math" entry, so every existing key is unchanged), computed by the fused kernel of the fast class:
    float32 losses differ from the exact ones, by little; float64 is the exact kernel's, bit for bit."""
    import json

    import landscape
    from landscape.errors import LandscapeError
    from landscape.resolved import resolve
    from landscape.spec import GridSpec

    monkeypatch.setenv("LANDSCAPE_CACHE", str(tmp_path))
    fields = dict(cell="lstm", task="latch", T=(10, 50), x="b_f:-4:6:9", y="w_z:-4:6:7", n=64, fit="fixed")
    got = {}
    for dtype in ("float32", "float64"):
        for math_class in ("exact", "fast"):
            spec = GridSpec.of(**fields, dtype=dtype, math=math_class)
            doc = json.loads(resolve(spec).canonical())
            assert doc.get("math") == (None if math_class == "exact" else "fast")
            s = landscape.grid(spec, out=tmp_path / f"{dtype}-{math_class}.h5", progress=False).surface
            assert s.attrs["path"] == "fused-numba"
            got[dtype, math_class] = (resolve(spec).key(), np.asarray(s.loss))
    for dtype in ("float32", "float64"):
        assert got[dtype, "exact"][0] != got[dtype, "fast"][0]
    exact, fast = got["float32", "exact"][1], got["float32", "fast"][1]
    assert not np.array_equal(exact, fast)
    np.testing.assert_allclose(fast, exact, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(got["float64", "fast"][1], got["float64", "exact"][1])
    with pytest.raises(LandscapeError, match="unknown math class 'quick'; choose from: exact, fast"):
        resolve(GridSpec.of(**fields, math="quick"))
