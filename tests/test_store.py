"""The HDF5 store: layout, cache, resume after interruption (also SIGKILL), locking, bad files."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

import landscape
from landscape import Axis, GridSpec, engine
from landscape.errors import LandscapeError

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(cell="pascanu", task="target", T=(1, 5, 20), n=1, x=Axis("w", 4.5, 5.5, 5), y=Axis("b", -2.9, -1.9, 4))


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LANDSCAPE_CACHE", str(tmp_path / "cache"))


def test_file_layout_is_self_describing(tmp_path):
    result = landscape.grid(GridSpec.of(**SMALL), out=tmp_path / "s.h5", progress=False)
    with h5py.File(result.path, "r") as f:
        assert f["loss"].shape == (3, 5, 4)
        assert [f["loss"].dims[d][0].name for d in range(3)] == ["/T", "/w", "/b"]
        assert [f["loss"].dims[d].label for d in range(3)] == ["T", "w", "b"]
        np.testing.assert_array_equal(f["T"][()], [1, 5, 20])
        np.testing.assert_allclose(f["w"][()], np.linspace(4.5, 5.5, 5))
        attrs = dict(f.attrs)
        for key in ("format", "format_version", "spec", "key", "landscape_version", "torch_version", "device",
                    "dtype", "created", "complete"):
            assert key in attrs, key
        assert attrs["format"] == "landscape-surface" and bool(attrs["complete"])
        assert attrs["key"] == hashlib.sha256(attrs["spec"].encode()).hexdigest()[:16]
        spec = json.loads(attrs["spec"])
        assert spec["cell"] == "pascanu" and spec["x"]["name"] == "w" and spec["base"]["b"] == [-2.4]
        assert f["done"][()].all()
    s = landscape.load(result.path)
    assert (s.x_name, s.y_name) == ("w", "b") and s.at_T(5).shape == (5, 4)
    with pytest.raises(LandscapeError, match="T=7 is not in this surface"):
        s.at_T(7)


def test_same_spec_reads_the_cache_and_force_recomputes(tmp_path):
    first = landscape.grid(GridSpec.of(**SMALL), progress=False)
    assert not first.cached and first.path.parent == tmp_path / "cache"
    again = landscape.grid(GridSpec.of(**SMALL), progress=False)
    assert again.cached and again.path == first.path and again.computed_points == 0
    forced = landscape.grid(GridSpec.of(**SMALL), progress=False, force=True)
    assert not forced.cached and forced.computed_points == 20
    np.testing.assert_array_equal(forced.surface.loss, first.surface.loss)
    other = landscape.grid(GridSpec.of(**{**SMALL, "T": (1, 5)}), progress=False)
    assert other.path != first.path


def test_inf_is_stored_as_computed(tmp_path):
    """Overflowing logits give +inf losses; they are kept, not clipped or turned into NaN."""
    spec = GridSpec.of(cell="srnn", task="latch", T=(1,), n=10, fit="fixed",
                    x=Axis("out_w", 1.0, 1e308, 3, log=True), y=Axis("out_b", 1.0, 1e308, 3, log=True))
    s = landscape.grid(spec, out=tmp_path / "inf.h5", progress=False).surface
    assert np.isposinf(s.loss).sum() > 0 and np.isfinite(s.loss).sum() > 0
    assert not np.isnan(s.loss).any()


def test_an_interrupted_run_leaves_nan_and_a_done_mask_then_resumes(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = engine.unroll_losses

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "unroll_losses", failing)
    out = tmp_path / "r.h5"
    with pytest.raises(KeyboardInterrupt):
        landscape.grid(GridSpec.of(**SMALL), out=out, chunk_size=3, progress=False)
    with h5py.File(out, "r") as f:
        done = f["done"][()]
        loss = f["loss"][()]
        assert not f.attrs["complete"]
    assert done.tolist() == [True, True] + [False] * 5
    flat = loss.reshape(3, -1)
    assert np.isfinite(flat[:, :6]).all() and np.isnan(flat[:, 6:]).all()
    monkeypatch.setattr(engine, "unroll_losses", real)
    resumed = landscape.grid(GridSpec.of(**SMALL), out=out, chunk_size=3, progress=False)
    assert resumed.computed_points == 14
    fresh = landscape.grid(GridSpec.of(**SMALL), out=tmp_path / "fresh.h5", progress=False)
    # other chunk sizes may round differently in the last bit (vectorised vs scalar loop tails)
    np.testing.assert_allclose(resumed.surface.loss, fresh.surface.loss, rtol=1e-12, atol=0)


HEAVY = ("import landscape, sys; from landscape import Axis, GridSpec; "
         "landscape.grid(GridSpec.of(cell='srnn', task='latch', T=(500,), n=20000, fit='fixed', "
         "x=Axis('w', 0.0, 2.0, 4), y=Axis('b', -0.5, 0.5, 10)), out=sys.argv[1], chunk_size=2, progress=False, "
         "device='cpu')")


def _done_count(path):
    env_locking = os.environ.get("HDF5_USE_FILE_LOCKING")
    try:
        os.environ["HDF5_USE_FILE_LOCKING"] = "FALSE"
        with h5py.File(path, "r", locking=False) as f:
            return int(f["done"][()].sum()), len(f["done"])
    except (OSError, KeyError):
        return 0, 0
    finally:
        if env_locking is None:
            os.environ.pop("HDF5_USE_FILE_LOCKING", None)


def test_resume_after_sigkill_computes_only_missing_chunks(tmp_path):
    out = tmp_path / "killed.h5"
    proc = subprocess.Popen([sys.executable, "-c", HEAVY, str(out)], cwd=ROOT)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            done, total = _done_count(out) if out.exists() else (0, 0)
            if done >= 2:
                break
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    done, total = _done_count(out)
    assert 2 <= done < total == 20
    spec = GridSpec.of(cell="srnn", task="latch", T=(500,), n=20000, fit="fixed",
                    x=Axis("w", 0.0, 2.0, 4), y=Axis("b", -0.5, 0.5, 10))
    resumed = landscape.grid(spec, out=out, chunk_size=2, progress=False, device="cpu")
    assert resumed.computed_points == 2 * (total - done)
    assert resumed.surface.complete and np.isfinite(resumed.surface.loss).all()


class _Logged:
    """An h5py file or dataset whose writes and flushes are logged (the order they reach the file)."""

    def __init__(self, obj, log, name=""):
        self._obj, self._log, self._name = obj, log, name

    def __getitem__(self, key):
        return _Logged(self._obj[key], self._log, key)

    def __setitem__(self, key, value):
        self._log.append(("write", self._name))
        self._obj[key] = value

    def flush(self):
        self._log.append(("flush", ""))
        self._obj.flush()

    def __getattr__(self, name):
        return getattr(self._obj, name)


def test_a_chunk_reaches_the_file_before_its_done_flag(tmp_path):
    # HDF5 writes the small contiguous "done" dataset through at once but keeps the loss's chunks
    # in its cache until a flush: a process killed between the two left a chunk flagged done and
    # still NaN (seen in the SIGKILL test above). The values must be flushed before the flag.
    from landscape.store import SurfaceContents, SurfaceWriter

    r = landscape.resolve(GridSpec.of(cell="pascanu", task="target", T=(3,), n=1, x=Axis("w", 0, 1, 3),
                                   y=Axis("b", 0, 1, 4)))
    w = SurfaceWriter(tmp_path / "s.h5", SurfaceContents(r.canonical(), [3], "w", r.x.values(), "b", r.y.values(), 5))
    log = []
    w.file = _Logged(w.file, log)
    w.write_chunk(0, {"loss": np.ones((1, 5))})
    flag = log.index(("write", "done"))
    last_value = max(i for i, e in enumerate(log) if e == ("write", "loss"))
    assert ("flush", "") in log[last_value:flag], log
    w.file = w.file._obj
    w.finish(), w.close()
    s = landscape.load(tmp_path / "s.h5")
    assert np.isfinite(s.loss).sum() == 5


def test_two_processes_on_the_same_spec_both_succeed(tmp_path):
    code = ("import landscape, sys; from landscape import Axis, GridSpec; "
            "r = landscape.grid(GridSpec.of(cell='srnn', task='latch', T=(60,), n=2000, fit='fixed', "
            "x=Axis('w', 0.0, 2.0, 5), y=Axis('b', -0.5, 0.5, 6)), progress=False, device='cpu', chunk_size=3); "
            "print('cached' if r.cached else 'computed', r.computed_points)")
    env = {**os.environ, "LANDSCAPE_CACHE": str(tmp_path / "shared")}
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = sorted(p.communicate(timeout=300)[0].split() for p in procs)
    assert all(p.returncode == 0 for p in procs)
    assert sum(int(o[1]) for o in outputs) == 30  # every point computed exactly once
    files = list((tmp_path / "shared").glob("*.h5"))
    assert len(files) == 1
    s = landscape.load(files[0])
    assert s.complete and np.isfinite(s.loss).all()


def test_corrupt_or_foreign_file_at_the_cache_path_is_refused_then_forced(tmp_path):
    first = landscape.grid(GridSpec.of(**SMALL), progress=False)
    path = first.path
    path.write_bytes(b"this is not hdf5")
    with pytest.raises(LandscapeError, match="not a readable HDF5 file"):
        landscape.grid(GridSpec.of(**SMALL), progress=False)
    path.unlink()
    with h5py.File(path, "w") as f:
        f["loss"] = np.zeros((1, 2, 2))
        f.attrs["format"] = "something-else"
    with pytest.raises(LandscapeError, match="not a landscape surface file"):
        landscape.grid(GridSpec.of(**SMALL), progress=False)
    forced = landscape.grid(GridSpec.of(**SMALL), progress=False, force=True)
    assert forced.surface.complete
    np.testing.assert_array_equal(forced.surface.loss, first.surface.loss)


def test_out_file_of_another_spec_is_refused(tmp_path):
    out = tmp_path / "a.h5"
    landscape.grid(GridSpec.of(**SMALL), out=out, progress=False)
    before = out.read_bytes()
    with pytest.raises(LandscapeError, match="holds a different surface"):
        landscape.grid(GridSpec.of(**{**SMALL, "seed": 1, "T": (2,)}), out=out, progress=False)
    assert out.read_bytes() == before


def test_unwritable_out_is_detected_before_computing(tmp_path, monkeypatch):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    monkeypatch.setattr(engine, "unroll_losses", lambda *a, **k: pytest.fail("computed before checking --out"))
    with pytest.raises(LandscapeError, match="cannot write"):
        landscape.grid(GridSpec.of(**SMALL), out=blocker / "sub" / "s.h5", progress=False)
    with pytest.raises(LandscapeError, match="is a folder"):
        landscape.grid(GridSpec.of(**SMALL), out=tmp_path, progress=False)


def test_read_base_point_checks_shapes(tmp_path):
    with h5py.File(tmp_path / "b.h5", "w") as f:
        f["w"] = np.ones((2, 2))
    with pytest.raises(LandscapeError, match=r"w has shape \(2, 2\), this cell needs \(1, 1\)"):
        landscape.resolve(GridSpec.of(**SMALL, base_file=str(tmp_path / "b.h5")))
    with h5py.File(tmp_path / "none.h5", "w") as f:
        f["zzz"] = 1.0
    with pytest.raises(LandscapeError, match="holds none of this cell's parameters"):
        landscape.resolve(GridSpec.of(**SMALL, base_file=str(tmp_path / "none.h5")))


@pytest.mark.parametrize("ny", [1, 3, 7])
@pytest.mark.parametrize("max_rows", [None, 1, 2])
def test_row_blocks_cover_each_index_once(ny, max_rows):
    from landscape.store.writer import row_blocks

    nx = 5
    for start in range(nx * ny):
        for stop in range(start + 1, nx * ny + 1):
            seen = []
            for i0, i1, j0, j1, p0, p1 in row_blocks(start, stop, ny, max_rows):
                assert (i1 - i0) * (j1 - j0) == p1 - p0
                assert i1 - i0 == 1 or (j0, j1) == (0, ny)  # a piece of one row, or whole rows
                assert max_rows is None or i1 - i0 <= max_rows
                seen += [i * ny + j for i in range(i0, i1) for j in range(j0, j1)]
            assert seen == list(range(start, stop))


def test_slab_writes_equal_one_write_per_chunk(tmp_path, monkeypatch):
    """Whole rows written a row at a time (the smallest slab) give the same file as one slab."""
    from landscape.store import writer

    spec = GridSpec.of(cell="srnn", task="latch", n=16, T=(2, 5), fit="fixed", grads=True,
                    x=Axis("w", 0.0, 2.0, 5), y=Axis("b", -0.5, 0.5, 6))
    whole = landscape.grid(spec, out=tmp_path / "whole.h5", chunk_size=13, progress=False)
    monkeypatch.setattr(writer, "WRITE_SLAB_BYTES", 1)
    rows = landscape.grid(spec, out=tmp_path / "rows.h5", chunk_size=13, progress=False)
    with h5py.File(whole.path, "r") as a, h5py.File(rows.path, "r") as b:
        names = [k for k in a if isinstance(a[k], h5py.Dataset) and k != "done"]
        assert "loss" in names and len(names) > 3
        for k in names:
            np.testing.assert_array_equal(a[k][()], b[k][()], err_msg=k)


# ---------------------------------------------------------------------------------------------
# xarray (h5netcdf): every file the project writes opens with every dimension named, no warning


def _open_xarray_strictly(path, group=None):
    import warnings

    xr = pytest.importorskip("xarray")
    pytest.importorskip("h5netcdf")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return xr.open_dataset(path, engine="h5netcdf", group=group).load()


def test_surfaces_open_in_xarray_with_named_dimensions_and_plain_h5py_sees_the_same(tmp_path):
    plain = landscape.grid(GridSpec.of(**SMALL), out=tmp_path / "s.h5", chunk_size=7, progress=False).surface
    ds = _open_xarray_strictly(tmp_path / "s.h5")
    assert ds["loss"].dims == ("T", "w", "b") and ds["done"].dims == ("chunk",) == ds["nan_count"].dims
    np.testing.assert_array_equal(ds["loss"].values, plain.loss)
    np.testing.assert_array_equal(ds["w"].values, plain.x)
    assert ds.attrs["spec"] == json.dumps(plain.spec, sort_keys=True, separators=(",", ":"))
    spec = GridSpec.of(cell="lstm", task="latch", n=8, T=(2, 5), fit="fixed", grads=True,
                    x=Axis("b_f", -1.0, 2.0, 3), y=Axis("w_z", 0.0, 1.0, 4))
    g = landscape.grid(spec, out=tmp_path / "g.h5", chunk_size=5, progress=False).surface
    ds = _open_xarray_strictly(tmp_path / "g.h5")
    assert ds["grad"].dims == ("T", "b_f", "w_z", "component") == ds["hessian_eigvals"].dims
    assert ds["grad_norm_t"].dims == ("b_f", "w_z", "t") == ds["grad_norm_c_t"].dims
    np.testing.assert_array_equal(ds["t"].values, np.arange(1, 6))
    for name, values in g.fields.items():
        np.testing.assert_array_equal(ds[name].values, values)
    mem = g.to_xarray()
    for name in mem.variables:
        assert mem[name].dims == ds[name].dims, name
        np.testing.assert_array_equal(mem[name].values, ds[name].values)
    with h5py.File(tmp_path / "g.h5", "r") as f:  # what plain h5py readers rely on
        assert f["loss"].shape == (2, 3, 4) and f["grad"].shape == (2, 3, 4, 2) and f["grad_norm_t"].shape == (3, 4, 5)
        for key in ("format", "format_version", "spec", "key", "landscape_version", "torch_version", "device",
                    "dtype", "created", "complete", "chunk_size"):
            assert key in f.attrs
        assert isinstance(f.attrs["spec"], str) and f.attrs["format"] == "landscape-surface"


def test_training_results_open_in_xarray_with_named_dimensions(tmp_path):
    from landscape.train import Member, TrainSpec
    from landscape.train.results import ResultStore, run_groups

    spec = TrainSpec.of(cell="lstm", task="latch", n=48, epochs=2, batch=8, dtype="float64", record_steps=True)
    out = tmp_path / "runs.h5"
    run_groups([(spec, [Member(T=3, seed=r, data_seed=3, group="lstm-T3") for r in range(2)])], out=out, device="cpu")
    xr = pytest.importorskip("xarray")
    _open_xarray_strictly(out)
    with h5py.File(out, "r") as f:
        groups = [f"runs/lstm-T3/{part}" for part in f["runs/lstm-T3"] if isinstance(f["runs/lstm-T3"][part], h5py.Group)]
    assert sorted(groups) == [f"runs/lstm-T3/{p}" for p in ("metrics", "params", "step_metrics", "step_params")]
    arrays = ResultStore(out).arrays("lstm-T3")  # what plain h5py readers see is unchanged
    assert set(arrays) == {"metrics", "params", "step_params", "step_metrics"}
    for group in ["runs", "runs/lstm-T3", *groups]:
        ds = _open_xarray_strictly(out, group)
        part = group.rsplit("/", 1)[-1]
        for name, var in ds.data_vars.items():
            if part in arrays:
                np.testing.assert_array_equal(var.values, arrays[part][name])
                lead = {"metrics": "epoch", "params": "epoch", "step_params": "step", "step_metrics": "update"}[part]
                assert var.dims[:2] == (lead, "member") and all(d.startswith(f"{name}_dim") for d in var.dims[2:])
    assert xr.open_datatree(out, engine="h5netcdf")["runs/lstm-T3/params"]["w_f"].dims == \
        ("epoch", "member", "w_f_dim0", "w_f_dim1")
