"""The fused readout kernels (landscape.kernels.numba.readout) against the torch ones in landscape.readouts:
the optimal-readout fit (the same damped Newton steps and line search, member by member) and the
logistic and identity losses."""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("numba")

from landscape.cells import get_cell  # noqa: E402
from landscape.kernels.numba import readout as fit  # noqa: E402
from landscape.readouts import fit_logistic_readout, identity_loss, logistic_loss  # noqa: E402
from landscape.tasks import get_task  # noqa: E402

F64 = torch.float64


def latch_outputs(cell_name, num, n, T, seed=0):
    """h_T of a cell over a num x num grid of two parameters on latch, from cell.step in torch:
    (P, N), and the labels (N,)."""
    cell = get_cell(cell_name)
    data = get_task("latch").make((T,), n, seed)
    names = list(cell.param_shapes(1, 1))
    a, b = torch.meshgrid(torch.linspace(-1, 3, num, dtype=F64), torch.linspace(-2, 2, num, dtype=F64), indexing="ij")
    params = {k: torch.ones(1, *s, dtype=F64) for k, s in cell.param_shapes(1, 1).items()}
    params[names[0]] = a.reshape(-1, 1, 1)
    params[names[-1]] = b.reshape(-1, 1)
    state = cell.initial_state(params, n, 1, 0.0)
    for t in range(T):
        state = cell.step(params, state, data.inputs[t])
    return cell.output(state)[..., 0], data.targets[T]


def losses(h, y, w, b):
    return logistic_loss(h.unsqueeze(-1), w, b, y)


@pytest.mark.parametrize("cell_name", ["srnn", "lstm", "gru"])
def test_fit_matches_the_torch_fit_on_latch_grids(cell_name):
    h, y = latch_outputs(cell_name, 17, 300, 25)
    wt, bt = fit_logistic_readout(h.unsqueeze(-1), y, 1e-4)
    wf, bf = map(torch.from_numpy, fit.fit_logistic_readout_1(h, y, 1e-4, threads=1))  # numpy in and out
    assert wf.shape == (h.shape[0], 1) and bf.shape == (h.shape[0], 1) and wf.dtype == F64
    torch.testing.assert_close(losses(h, y, wf, bf), losses(h, y, wt, bt), rtol=1e-12, atol=0)
    torch.testing.assert_close(wf, wt, rtol=1e-9, atol=1e-9)


def test_fit_in_degenerate_cases():
    """Exactly separable outputs (the ridge alone bounds the weight), constant outputs, a NaN
    member, and several ridges: the same losses, where the stopping rule allows it. Both fits stop
    once the Newton step is below tol (1 + |theta|), so their readouts may differ by that much and
    the losses by the loss's slope times it (near the optimum of the penalised objective the slope
    of the bare loss is l2 |out_w|)."""
    g = torch.Generator().manual_seed(1)
    N = 400
    y = torch.cat([torch.ones(N // 2), torch.zeros(N - N // 2)]).to(F64)
    h = torch.tanh(torch.randn(60, N, generator=g, dtype=F64) + 2 * (2 * y - 1) * torch.rand(60, 1, generator=g,
                                                                                              dtype=F64))
    h[0] = 2 * y - 1  # separable
    h[1] = 0.3  # constant
    h[2, 5] = float("nan")
    for l2 in (1e-6, 1e-4, 1e-1):
        wt, bt = fit_logistic_readout(h.unsqueeze(-1), y, l2)
        wf, bf = map(torch.from_numpy, fit.fit_logistic_readout_1(h, y, l2, threads=1))
        lt, lf = losses(h, y, wt, bt), losses(h, y, wf, bf)
        assert torch.equal(torch.isnan(lt), torch.isnan(lf))
        fin = ~torch.isnan(lt)
        slack = 1e-12 * lt.abs() + l2 * wt[:, 0].abs() * 1e-10 * (1 + torch.maximum(wt.abs(), bt.abs())[:, 0])
        assert bool(((lf - lt).abs() <= slack)[fin].all()), float(((lf - lt).abs() / lt.abs())[fin].max())


def test_fit_threads_agree():
    h, y = latch_outputs("srnn", 9, 200, 10)
    one = fit.fit_logistic_readout_1(h, y, 1e-4, threads=1)
    two = fit.fit_logistic_readout_1(h, y, 1e-4, threads=2)
    assert np.array_equal(one[0], two[0]) and np.array_equal(one[1], two[1])


@pytest.mark.parametrize("dtype", [F64, torch.float32])
def test_logistic_and_identity_losses(dtype):
    g = torch.Generator().manual_seed(2)
    P, N = 37, 301
    h = torch.randn(P, N, generator=g, dtype=F64) * 3
    h[3, 7] = float("inf")
    h[4, 2] = float("nan")
    y = (torch.rand(N, generator=g) > 0.4).to(F64)
    w = torch.randn(P, 1, generator=g, dtype=F64)
    b = torch.randn(P, 1, generator=g, dtype=F64)
    hd = h.to(dtype)
    for ow, ob in ((w, b), (w[:1], b[:1])):  # a readout per member, and one for all
        want = logistic_loss(hd.unsqueeze(-1).double(), ow.expand(P, 1), ob.expand(P, 1), y)
        got = torch.from_numpy(fit.logistic_losses(hd, y.to(dtype), ow.to(dtype), ob.to(dtype), threads=1))
        assert got.dtype == dtype
        torch.testing.assert_close(got.double(), want, rtol=1e-13 if dtype == F64 else 1e-6, atol=0, equal_nan=True)
    target = torch.randn(N, generator=g, dtype=F64)
    want = identity_loss(hd.unsqueeze(-1).double(), target, 0.5)
    got = torch.from_numpy(fit.identity_losses(hd, target.to(dtype), 0.5, threads=1))
    torch.testing.assert_close(got.double(), want, rtol=1e-13 if dtype == F64 else 1e-6, atol=0, equal_nan=True)


@pytest.mark.slow
def test_the_readout_kernels_are_read_from_numbas_cache_by_the_next_process(tmp_path):
    """numba's on-disk cache serves the fit and loss kernels to a second process (defined inside a
    function they were compiled by every process, 2-3 s of each grid command, and each process
    added a cache entry)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import torch\n"
        "from landscape.kernels.numba import readout as fit\n"
        "y = torch.rand(3, 20, dtype=torch.float64); t = (torch.rand(20) > 0.5).double()\n"
        "w, b = fit.fit_logistic_readout_1(y, t, 1e-4, threads=1)\n"
        "fit.logistic_losses(y, t, w, b, threads=1); fit.identity_losses(y, t, threads=1)\n"
        "k = (fit.fit_kernel, fit.logistic_kernel, fit.identity_kernel)\n"
        "print(sum(len(f.stats.cache_hits) for f in k), sum(len(f.stats.cache_misses) for f in k))\n")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    root = Path(__file__).resolve().parents[1]
    runs = [subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True,
                           timeout=300) for _ in range(2)]
    assert all(r.returncode == 0 for r in runs), runs[-1].stderr[-2000:]
    (hits1, misses1), (hits2, misses2) = (map(int, r.stdout.split()) for r in runs)
    assert misses1 == 3 and (hits2, misses2) == (3, 0)
    assert len(list((tmp_path / "numba").rglob("*.nbc"))) == 3  # one entry per kernel, not one per process
