"""A grid computed from its recipe (``landscape.recipe``) against the same grid computed in full:
the same file, bit for bit (every dataset, the spec, the key, the attributes but the time), for
every readout, both dtypes, default and aliased axes, non-square grids and other chunk sizes; a
recipe that fails its check is never used; the specs it does not cover never use one; the command
line computes from one without importing torch."""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest

import landscape
from landscape import Axis, GridSpec, recipe, surface
from landscape.errors import LandscapeError

pytestmark = pytest.mark.recipes
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def recipes_here(tmp_path, monkeypatch):
    """Recipes in this test's folder (the kernels stay in the shared kernel cache: compiled once)."""
    folder = tmp_path / "recipes"
    monkeypatch.setattr(recipe, "folder", lambda: folder)
    return folder


def specs():
    return {
        "srnn-fixed": GridSpec.of(cell="srnn", task="latch", T=(5, 20), n=64, fit="fixed",
                                  x=Axis.parse("w:-1:3:9"), y=Axis.parse("b:-1.5:1.5:7")),
        "lstm-optimal-f32": GridSpec.of(cell="lstm", task="latch", T=(3, 12), n=40, dtype="float32",
                                        x=Axis.parse("block_w:-4:4:6"), y=Axis.parse("block_b:-2:2:5")),
        "gru-default-axes": GridSpec.of(cell="gru", task="latch", T=(8,), n=48),
        "pascanu-identity": GridSpec.of(cell="pascanu", task="target", T=(5, 10),
                                        x=Axis.parse("w:4.5:5.5:7"), y=Axis.parse("b:-2.9:-1.9:8")),
        "srnn-readout-axis-set": GridSpec.of(cell="srnn", task="latch", T=(6,), n=50, fit="fixed",
                                             x=Axis.parse("out_w:-3:3:5"), y=Axis.parse("b:-1:1:6"), set=(("w", 1.5),)),
    }


def contents(path: Path) -> tuple[dict, dict]:
    """(datasets, attributes but the creation time) of a surface file."""
    data = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: data.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
        attrs = {k: str(v) for k, v in f.attrs.items() if k != "created"}
    return data, attrs


def assert_same_file(a: Path, b: Path) -> None:
    da, aa = contents(a)
    db, ab = contents(b)
    assert aa == ab
    assert da.keys() == db.keys()
    for name in da:
        assert da[name].dtype == db[name].dtype and np.array_equal(da[name], db[name], equal_nan=True), name


def no_full_resolution(monkeypatch):
    """Fail if the grid resolves its spec in full (it must come from the recipe)."""
    monkeypatch.setattr(surface, "resolve", lambda spec: pytest.fail("resolved in full: the recipe was not used"))


@pytest.mark.parametrize("case", list(specs()))
def test_a_grid_from_its_recipe_is_the_full_grids_file_bit_for_bit(case, tmp_path, monkeypatch):
    spec = specs()[case]
    full = landscape.grid(spec, out=tmp_path / "full.h5", progress=False)
    assert full.surface.attrs["path"] == "fused-numba"
    assert recipe.lookup(spec, "cpu") is not None, "the full run left no recipe"
    with monkeypatch.context() as m:
        no_full_resolution(m)
        again = landscape.grid(spec, out=tmp_path / "again.h5", progress=False, device="cpu")
    assert not again.cached
    assert_same_file(full.path, again.path)


def test_other_axes_ranges_other_chunks_same_numbers_as_the_full_path(tmp_path, monkeypatch):
    """One recipe serves a grid of other ranges and sizes (non-square, a log axis), in chunks of
    any size, with the numbers of the full path computed without recipes."""
    spec = specs()["srnn-fixed"]
    landscape.grid(spec, out=tmp_path / "first.h5", progress=False)
    other = replace(spec, x=Axis.parse("w:0.1:4:13:log"), y=Axis.parse("b:-3:0:4"))
    with monkeypatch.context() as m:
        no_full_resolution(m)
        from_recipe = landscape.grid(other, out=tmp_path / "recipe.h5", chunk_size=5, progress=False)
    monkeypatch.setenv("LANDSCAPE_RECIPES", "0")
    full = landscape.grid(other, out=tmp_path / "full.h5", chunk_size=5, progress=False)
    assert_same_file(full.path, from_recipe.path)
    np.testing.assert_array_equal(  # and another chunk size: the same numbers (member blocks are independent)
        landscape.grid(other, out=tmp_path / "full7.h5", chunk_size=7, progress=False).surface.loss,
        from_recipe.surface.loss)


def test_a_one_point_chunk_leaves_the_recipes_base_point_alone(tmp_path, monkeypatch):
    """9 points in chunks of 4: the last chunk is one point (whose parameters once shared the
    problem's base tensors); the recipe keeps the base point of the spec as it was resolved."""
    spec = GridSpec.of(cell="srnn", task="latch", T=(5,), n=40, fit="fixed", x=Axis.parse("w:-1:3:3"),
                       y=Axis.parse("b:-1:1:3"))
    full = landscape.grid(spec, out=tmp_path / "full.h5", chunk_size=4, progress=False)
    with monkeypatch.context() as m:
        no_full_resolution(m)
        again = landscape.grid(spec, out=tmp_path / "again.h5", chunk_size=4, progress=False)
    assert_same_file(full.path, again.path)


def test_the_recipe_computes_what_the_cache_key_says(tmp_path):
    """Its file lands at the cache key of the full resolution, under the same canonical spec."""
    spec = specs()["gru-default-axes"]
    landscape.grid(spec, out=tmp_path / "first.h5", progress=False)
    r = recipe.lookup(spec, "cpu")
    full = landscape.resolve(spec)
    assert (r.canonical(), r.key(), r.name, r.x, r.y, r.Ts, r.n) == \
           (full.canonical(), full.key(), full.name, full.x, full.y, full.Ts, full.n)


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "version", "garbage"])
def test_a_damaged_recipe_is_never_used_and_is_written_again(damage, tmp_path, recipes_here):
    spec = specs()["srnn-fixed"]
    first = landscape.grid(spec, out=tmp_path / "first.h5", progress=False)
    (path,) = recipes_here.glob("*.npz")
    raw = bytearray(path.read_bytes())
    if damage == "flip":  # a byte of the stored arrays (past the zip's own headers, before its directory)
        raw[len(raw) // 2] ^= 0x40
    elif damage == "truncate":
        raw = raw[: len(raw) // 3]
    elif damage == "empty":
        raw = bytearray()
    elif damage == "garbage":
        raw = bytearray(os.urandom(len(raw)))
    if damage == "version":
        meta, arrays = recipe._read(path)
        recipe._write(path, {**meta, "version": recipe.RECIPE_VERSION + 1}, arrays)
    else:
        path.write_bytes(bytes(raw))
    assert recipe.lookup(spec, "cpu") is None
    again = landscape.grid(spec, out=tmp_path / "again.h5", progress=False)
    assert_same_file(first.path, again.path)
    assert recipe.lookup(spec, "cpu") is not None  # the full run wrote it again


def test_a_recipe_whose_kernel_source_was_changed_fails_its_check(tmp_path, recipes_here):
    spec = specs()["srnn-fixed"]
    landscape.grid(spec, out=tmp_path / "first.h5", progress=False)
    (path,) = recipes_here.glob("*.npz")
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    source = arrays["kernel_source"].tobytes().replace(b"def run_wide", b"def run_wide_")
    arrays["kernel_source"] = np.frombuffer(source, dtype=np.uint8)
    np.savez(path, **arrays)  # the digest of the original contents kept
    assert recipe.lookup(spec, "cpu") is None


def test_the_recipe_key_follows_the_code_and_ignores_only_the_axes_ranges(monkeypatch):
    spec = specs()["srnn-fixed"]
    key = recipe.recipe_key(spec)
    assert recipe.recipe_key(replace(spec, x=Axis.parse("w:0:1:99"))) == key
    for other in (replace(spec, x=Axis.parse("u:0:1:9")), replace(spec, seed=1), replace(spec, n=65),
                  replace(spec, T=(5,)), replace(spec, dtype="float32"), replace(spec, math="fast"),
                  replace(spec, fit="optimal"), replace(spec, model=replace(spec.model, set=(("u", 0.5),)))):
        assert recipe.recipe_key(other) != key, other
    monkeypatch.setattr(recipe, "fingerprint", lambda: "other code")
    assert recipe.recipe_key(spec) != key


def test_the_fingerprint_covers_every_source_file_of_the_package():
    root = Path(recipe.__file__).parent
    assert len(list(root.rglob("*.py"))) > 50
    recipe.fingerprint.cache_clear()
    first = recipe.fingerprint()
    recipe.fingerprint.cache_clear()
    assert recipe.fingerprint() == first  # deterministic


@pytest.mark.parametrize("why", ["grads", "dynamics", "user-cell", "gpu-device", "cuda", "fast-off", "recipes-off",
                                 "cluster"])
def test_specs_a_recipe_does_not_cover_never_use_one(why, monkeypatch):
    spec = specs()["srnn-fixed"]
    device, scheduler = "auto", None
    if why == "grads":
        spec = replace(spec, grads=True)
    elif why == "dynamics":
        spec = replace(spec, dynamics=True)
    elif why == "user-cell":
        spec = replace(spec, model=replace(spec.model, cell=str(ROOT / "examples/cells/mgu.py") + ":MGU"))
    elif why == "gpu-device":
        monkeypatch.setattr(recipe, "GPU_DEVICE_FILES", (__file__,))  # a file that exists: "auto" may mean a GPU
    elif why == "cuda":
        device = "cuda"
    elif why == "fast-off":
        monkeypatch.setenv("LANDSCAPE_FAST", "0")
    elif why == "recipes-off":
        monkeypatch.setenv("LANDSCAPE_RECIPES", "0")
    elif why == "cluster":  # its workers may have a GPU, which "auto" would pick
        scheduler = "tcp://10.0.0.5:8786"
    assert recipe.why_not(spec, device, scheduler) is not None
    assert recipe.lookup(spec, device, scheduler) is None


@pytest.mark.parametrize("device,scheduler", [("auto", "local:2"), ("auto", "threads:2"), ("cpu", "tcp://10.0.0.5:8786")])
def test_a_cluster_of_cpu_workers_may_use_a_recipe(device, scheduler):
    """Workers on this machine (a machine without a GPU device: these tests' own), or any workers
    on --device cpu: the recipe's CPU numbers are theirs."""
    if any(os.path.exists(f) for f in recipe.GPU_DEVICE_FILES):
        pytest.skip("this machine has a GPU device: auto may pick it")
    assert recipe.why_not(specs()["srnn-fixed"], device, scheduler) is None


def test_problems_known_only_once_resolved_get_no_recipe(tmp_path, recipes_here):
    """Two units (the unit kernels): computed, no recipe."""
    spec = GridSpec.of(cell="srnn", task="latch", T=(4,), fit="fixed", hidden=2, x=Axis.parse("w[0,0]:-1:1:3"),
                       y=Axis.parse("b[0]:-1:1:3"))
    assert recipe.why_not(spec, "cpu") is None
    landscape.grid(spec, out=tmp_path / "g.h5", progress=False)
    assert not list(recipes_here.glob("*.npz"))


def test_few_sequences_run_the_lanes_loop_from_the_recipe_too(tmp_path, monkeypatch):
    """Below unroll.WIDE_MIN_N sequences the full run checks and uses the lanes loop; the recipe
    records that it passed, and runs it."""
    spec = GridSpec.of(cell="lstm", task="latch", T=(7,), n=12, x=Axis.parse("block_w:-2:2:5"),
                       y=Axis.parse("block_b:-1:1:4"))
    full = landscape.grid(spec, out=tmp_path / "full.h5", progress=False)
    r = recipe.lookup(spec, "cpu")
    assert r.recipe.kernel.usable("lanes")
    with monkeypatch.context() as m:
        no_full_resolution(m)
        again = landscape.grid(spec, out=tmp_path / "again.h5", progress=False)
    assert_same_file(full.path, again.path)


@pytest.mark.parametrize("case", ["srnn-fixed", "lstm-optimal-f32"])
def test_a_bad_axis_is_refused_as_the_full_resolution_refuses_it(case, tmp_path):
    spec = specs()[case]
    landscape.grid(spec, out=tmp_path / "first.h5", progress=False)
    name = spec.x.name
    for bad in (replace(spec, x=Axis(name, 3.0, -1.0, 9)), replace(spec, y=Axis(spec.y.name, -1.0, 1.0, 1)),
                replace(spec, x=Axis(name, -1.0, 1e39, 9) if spec.dtype == "float32" else Axis(name, -1.0, 1.0, 9, True)),
                ):
        assert recipe.recipe_key(bad) == recipe.recipe_key(spec)  # the recipe path is the one refusing
        with pytest.raises(LandscapeError) as from_recipe:
            landscape.grid(bad, out=tmp_path / "bad.h5", progress=False)
        with pytest.raises(LandscapeError) as full:
            landscape.resolve(bad)
        assert str(from_recipe.value) == str(full.value)
    assert not (tmp_path / "bad.h5").exists()


def test_an_unwritable_recipe_folder_is_no_error(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setattr(recipe, "folder", lambda: blocker / "recipes")
    spec = specs()["srnn-fixed"]
    result = landscape.grid(spec, out=tmp_path / "g.h5", progress=False)
    assert result.surface.loss.shape == (2, 9, 7)
    assert recipe.lookup(spec, "cpu") is None


@pytest.mark.slow
def test_the_command_line_computes_from_the_recipe_without_importing_torch(tmp_path):
    """Two `landscape grid` processes: the first computes in full and writes the recipe, the
    second (other ranges) imports neither torch nor scipy's optimisers, and says which path computed."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LANDSCAPE_CACHE": str(tmp_path / "cache"),
           "LANDSCAPE_KERNELS": str(tmp_path / "kernels"), "LANDSCAPE_RECIPES": "1"}
    args = ["grid", "--cell", "srnn", "--task", "latch", "--T", "10", "--n", "64", "--readout", "fixed",
            "--threads", "1"]

    def run(*extra, importtime=False):
        cmd = [sys.executable, *(["-X", "importtime"] if importtime else []), "-m", "landscape", *args, *extra]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr[-2000:]
        return out

    run("--x", "w:-1:3:11", "--y", "b:-1:1:9", "--out", str(tmp_path / "full.h5"))
    assert list((tmp_path / "kernels" / "recipes").glob("*.npz"))
    second = run("--x", "w:-1:3:5", "--y", "b:-1:1:4", "--out", str(tmp_path / "recipe.h5"), importtime=True)
    imported = {line.rsplit("|", 1)[1].strip().split(".")[0] for line in second.stderr.splitlines()
                if line.startswith("import time:") and "|" in line}
    assert "torch" not in imported and "numba" in imported
    assert "computed by the fused numba kernel" in second.stderr
    env["LANDSCAPE_RECIPES"] = "0"
    run("--x", "w:-1:3:5", "--y", "b:-1:1:4", "--out", str(tmp_path / "without.h5"))
    assert_same_file(tmp_path / "without.h5", tmp_path / "recipe.h5")


def test_an_interrupted_grid_from_its_recipe_resumes_to_the_same_file(tmp_path, monkeypatch):
    spec = specs()["lstm-optimal-f32"]
    full = landscape.grid(spec, out=tmp_path / "full.h5", chunk_size=4, progress=False)
    real, calls = recipe.RecipeGrid.compute, {"n": 0}

    def dies_on_the_third(self, start, stop):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, start, stop)

    out = tmp_path / "resumed.h5"
    with monkeypatch.context() as m:
        m.setattr(recipe.RecipeGrid, "compute", dies_on_the_third)
        with pytest.raises(KeyboardInterrupt):
            landscape.grid(spec, out=out, chunk_size=4, progress=False)
    with h5py.File(out, "r") as f:
        assert f["done"][()].tolist()[:3] == [True, True, False] and not f.attrs["complete"]
    no_full_resolution(monkeypatch)
    resumed = landscape.grid(spec, out=out, chunk_size=4, progress=False)
    assert resumed.computed_points == 6 * 5 - 8
    assert_same_file(full.path, out)
