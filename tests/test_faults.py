"""Fault injection: a cached surface is never served with wrong numbers, and every fault is one
`error:` line with exit status 2 that leaves no file a later run would wrongly trust.

The truth each test compares against: the bytes of a file as written (a flip changes them; the
reader must refuse, or return exactly the written numbers), a fresh computation of the same spec
(after a resume), the points where a custom cell is NaN by construction (sqrt(w), w < 0), and the
process's measured peak memory (the memory plan)."""
from __future__ import annotations

import dataclasses
import errno
import os
import re
import select
import signal
import subprocess
import sys
import textwrap
import time
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

import landscape
from landscape import Axis, GridSpec
from landscape import store
from landscape.cli import main
from landscape.errors import LandscapeError
from landscape.store import CorruptSurface, writer
from landscape.store.reader import chunk_values

ROOT = Path(__file__).resolve().parents[1]
SMALL = GridSpec.of(cell="pascanu", task="target", T=(1, 5, 20), n=1, x=Axis("w", 4.5, 5.5, 5), y=Axis("b", -2.9, -1.9, 4))
SMALL_ARGS = ["--cell", "pascanu", "--task", "target", "--x", "w:4.5:5.5:5", "--y", "b:-2.9:-1.9:4", "--T", "1,5,20",
              "--n", "1"]
GRADS = GridSpec.of(cell="lstm", task="latch", T=(2, 4), n=8, fit="fixed", grads=True, x=Axis("b_f", -1, 2, 3),
                 y=Axis("w_z", 0, 1, 4))
SQRT_CELL = '''
from dataclasses import dataclass

import torch

from landscape.cells.base import Cell, ParamDecl, bias, linear


@dataclass(frozen=True)
class SqrtCell(Cell):
    """h' = sqrt(w) h + b: finite parameters everywhere, NaN wherever w < 0."""

    name = "sqrtcell"
    summary = "h' = sqrt(w) h + b"
    equations = "h' = sqrt(w) h + b"
    params = (ParamDecl("w", "recurrent", default=1.0), ParamDecl("u", "input", default=1.0),
              ParamDecl("b", "bias", default=0.0))
    default_axes = ("w:-1:1:5", "b:-1:1:4")

    def step(self, p, state, x):
        (h,) = state
        return (linear(h, torch.sqrt(p["w"])) + bias(p["b"]),)
'''


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LANDSCAPE_CACHE", str(tmp_path / "cache"))


def cli(*args):
    """(exit code, the non-empty output lines); an exception other than SystemExit is a failure."""
    r = CliRunner().invoke(main, [str(a) for a in args])
    assert r.exception is None or isinstance(r.exception, SystemExit), r.output
    return r.exit_code, [line for line in r.output.splitlines() if line.strip()]


def assert_one_error(args, *needles):
    code, lines = cli(*args)
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (code, lines)
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def data_regions(path) -> list[tuple[str, int, int]]:
    """(dataset, file offset, stored bytes) of every stored HDF5 chunk (the data and its checksum)."""
    out = []
    with h5py.File(path, "r") as f:
        for name, ds in f.items():
            for i in range(ds.id.get_num_chunks()):
                info = ds.id.get_chunk_info(i)
                out.append((name, info.byte_offset, info.size))
    return out


def flip(path, offset, mask=0x5A) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ mask]))


def edit(path, fn) -> None:
    with h5py.File(path, "r+") as f:
        fn(f)


def same_numbers(a, b) -> bool:
    if set(a.fields) != set(b.fields) or a.spec != b.spec or a.complete != b.complete:
        return False
    pairs = [(a.loss, b.loss), (a.T, b.T), (a.x, b.x), (a.y, b.y), (a.done, b.done)]
    pairs += [(a.fields[k], b.fields[k]) for k in a.fields]
    return all(x.shape == y.shape and np.array_equal(x, y, equal_nan=True) for x, y in pairs)


# ---------------------------------------------------------------------------------------------
# corruption of a cached file


def test_a_flipped_byte_in_any_dataset_is_detected_and_the_file_is_kept(tmp_path):
    out = tmp_path / "g.h5"
    first = landscape.grid(GRADS, out=out, chunk_size=5, progress=False)
    clean = out.read_bytes()
    regions = data_regions(out)
    names = {name for name, _, _ in regions}
    assert {"loss", "grad", "hessian_eigvals", "grad_norm_t", "grad_norm_c_t", "T", "b_f", "w_z", "done",
            "nan_count", "digest", "chunk", "component", "t"} <= names
    tried = detected = 0
    for name, offset, size in regions:
        # the first, a middle and the last data byte, and a byte of the trailing fletcher32 checksum
        for at in sorted({0, size // 2, size - 5, size - 2}):
            out.write_bytes(clean)
            flip(out, offset + at)
            damaged = out.read_bytes()
            tried += 1
            with pytest.raises(CorruptSurface) as err:
                landscape.grid(GRADS, out=out, chunk_size=5, progress=False)
            detected += 1
            assert str(out) in str(err.value) and "--force" in str(err.value)
            assert out.read_bytes() == damaged  # refused, not overwritten
            with pytest.raises(CorruptSurface):
                landscape.load(out)
    assert detected == tried >= 4 * len(names) - 8
    forced = landscape.grid(GRADS, out=out, chunk_size=5, progress=False, force=True)
    assert same_numbers(forced.surface, first.surface)


SWEEP = textwrap.dedent('''
    import sys, numpy as np, landscape
    path, copy, stride = sys.argv[1], sys.argv[2], int(sys.argv[3])
    clean = open(path, "rb").read()
    ref = landscape.load(path)
    def same(a, b):
        pairs = [(a.loss, b.loss), (a.T, b.T), (a.x, b.x), (a.y, b.y), (a.done, b.done)]
        pairs += [(a.fields[k], b.fields[k]) for k in a.fields]
        return (a.spec == b.spec and a.complete == b.complete and set(a.fields) == set(b.fields)
                and all(x.shape == y.shape and np.array_equal(x, y, equal_nan=True) for x, y in pairs))
    counts = {"detected": 0, "harmless": 0, "wrong": []}
    for offset in range(0, len(clean), stride):
        for mask in (0x01, 0xA5):
            b = bytearray(clean)
            b[offset] ^= mask
            open(copy, "wb").write(b)
            try:
                s = landscape.load(copy)
            except landscape.LandscapeError:
                counts["detected"] += 1
                continue
            if same(s, ref):
                counts["harmless"] += 1
            else:
                counts["wrong"].append(offset)
    print(counts["detected"], counts["harmless"], len(counts["wrong"]), counts["wrong"][:10])
''')


def test_a_flip_anywhere_in_the_file_is_detected_or_changes_no_number(tmp_path):
    """Every 89th byte of a whole file (metadata included), two patterns each, in a separate
    process (a damaged HDF5 file could crash it): each read either refuses the file with a
    LandscapeError or returns exactly the numbers written."""
    out = tmp_path / "s.h5"
    landscape.grid(SMALL, out=out, chunk_size=7, progress=False)
    r = subprocess.run([sys.executable, "-c", SWEEP, str(out), str(tmp_path / "copy.h5"), "89"], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    detected, harmless, wrong, where = r.stdout.split(maxsplit=3)
    assert int(wrong) == 0, f"undetected changes at offsets {where}"
    assert int(detected) > 100 and int(detected) + int(harmless) == 2 * len(range(0, out.stat().st_size, 89))


def test_complete_and_done_are_checked_against_each_other_and_the_values(tmp_path):
    out = tmp_path / "s.h5"
    landscape.grid(SMALL, out=out, chunk_size=3, progress=False)
    clean = out.read_bytes()
    cases = {
        "complete but 1 of 7 chunks are not done": lambda f: f["done"].__setitem__(2, False),
        "chunk 1 (grid points 3..5) does not match its digest": lambda f: f["loss"].__setitem__((1, 1, 0), np.nan),
        "chunk 4 (grid points 12..14) does not match its digest": lambda f: f["loss"].__setitem__((0, 3, 1), 0.25),
        "differs from its chunks' counts": lambda f: f.attrs.modify("computed_nan", 3),
        "NaN values where 0 were computed": lambda f: (f["loss"].__setitem__((2, 0, 0), np.nan),
                                                       f["digest"].__setitem__(0, np.uint64(store.chunk_digest(
                                                           chunk_values(f["loss"][()], {}, 0, 3),
                                                           store.chunk_place(f.attrs["key"], 0, {}))))),
    }
    for reason, change in cases.items():
        out.write_bytes(clean)
        edit(out, change)
        with pytest.raises(CorruptSurface, match=re.escape(reason)):
            landscape.grid(SMALL, out=out, chunk_size=3, progress=False)
        line = assert_one_error(["grid", *SMALL_ARGS, "--out", out], "is corrupt", reason, "--force")
        assert str(out) in line
        assert_one_error(["plot", out, "--out", tmp_path / "p.png"], "is corrupt")
    # an incomplete file whose never-written chunk is flagged done: not resumed over, refused
    out.write_bytes(clean)
    def stop_after_two_chunks(f):
        flat = f["loss"][()].reshape(3, 20)
        flat[:, 6:] = np.nan
        f["loss"][...] = flat.reshape(3, 5, 4)
        f["done"][...] = [True, True, False, False, False, False, False]
        f["nan_count"][2:] = 0
        f.attrs.modify("complete", False)

    edit(out, stop_after_two_chunks)
    resumable = out.read_bytes()
    edit(out, lambda f: f["done"].__setitem__(3, True))
    with pytest.raises(CorruptSurface, match="chunk 3"):
        landscape.grid(SMALL, out=out, chunk_size=3, progress=False)
    out.write_bytes(resumable)  # the same file without the false flag resumes
    assert landscape.grid(SMALL, out=out, chunk_size=3, progress=False).computed_points == 14


def test_truncated_non_json_spec_and_bad_layouts_are_one_line(tmp_path):
    out = tmp_path / "s.h5"
    landscape.grid(SMALL, out=out, progress=False)
    clean = out.read_bytes()
    for keep in (len(clean) // 2, len(clean) - 100, 1000):
        out.write_bytes(clean[:keep])
        assert_one_error(["grid", *SMALL_ARGS, "--out", out], "is corrupt (not a readable HDF5 file")
        assert out.stat().st_size == keep
    layouts = {
        "its spec attribute is not JSON": lambda f: f.attrs.modify("spec", "{not json"),
        "dataset 'loss' has shape (3, 4, 4), its spec needs (3, 5, 4)":
            lambda f: (f.__delitem__("loss"), f.create_dataset("loss", data=np.zeros((3, 4, 4)), fletcher32=True)),
        "loss is not attached to its dimension scales":
            lambda f: (f.__delitem__("loss"), f.create_dataset("loss", data=np.zeros((3, 5, 4)), fletcher32=True)),
        "dataset 'loss' has no checksum": lambda f: (f.__delitem__("loss"), f.create_dataset("loss", data=np.zeros((3, 5, 4)))),
        "the axis values of 'w' differ": lambda f: f["w"].__setitem__(0, 4.4),
    }
    for reason, change in layouts.items():
        out.write_bytes(clean)
        edit(out, change)
        assert_one_error(["grid", *SMALL_ARGS, "--out", out], reason)
        assert_one_error(["plot", out, "--out", tmp_path / "p.png"], reason)
        with pytest.raises(CorruptSurface, match=re.escape(reason)):
            landscape.load(out)
    # the same damage in the cache: ls lists it as corrupt (one line), show refuses it
    out.write_bytes(clean)
    edit(out, layouts["its spec attribute is not JSON"])
    (tmp_path / "cache").mkdir()
    os.replace(out, tmp_path / "cache" / "pascanu-target-0000000000000000.h5")
    code, lines = cli("cache", "ls")
    assert code == 0 and "CORRUPT" in lines[1] and "not JSON" in lines[1] and len(lines) == 2
    assert_one_error(["cache", "show", tmp_path / "cache" / "pascanu-target-0000000000000000.h5"], "not JSON")


def test_a_folder_at_the_cache_path_and_a_refused_out_leave_one_line_and_no_lock(tmp_path):
    r = landscape.resolve(SMALL)
    store.cache_path(r.name, r.key()).mkdir(parents=True)
    assert_one_error(["grid", *SMALL_ARGS], "is a folder")
    out = tmp_path / "mine.h5"
    landscape.grid(SMALL, out=out, progress=False)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert_one_error(["grid", *SMALL_ARGS[:-4], "--T", "2", "--n", "1", "--out", out], "holds a different surface")
    edit(out, lambda f: f["loss"].__setitem__((0, 0, 0), 9.0))
    assert_one_error(["grid", *SMALL_ARGS, "--out", out], "is corrupt")
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no .mine.h5.lock, no temporary


# ---------------------------------------------------------------------------------------------
# NaN computed from finite inputs


def test_computed_nan_is_counted_kept_apart_from_missing_and_served(tmp_path):
    cell = tmp_path / "sqrtcell.py"
    cell.write_text(SQRT_CELL)
    out = tmp_path / "nan.h5"
    args = ["grid", "--cell", f"{cell}:SqrtCell", "--task", "target", "--T", "1,3", "--chunk-size", "3", "--out", out]
    code, lines = cli(*args)
    assert code == 0, lines
    s = landscape.load(out)
    w = s.x[:, None] * np.ones_like(s.y)[None, :]  # (nx, ny)
    np.testing.assert_array_equal(np.isnan(s.loss), np.broadcast_to(w < 0, s.loss.shape))  # the truth: sqrt(w < 0)
    assert s.complete and s.checked and s.computed_nan == 2 * int((w < 0).sum()) == 16
    with h5py.File(out, "r") as f:
        assert int(f.attrs["computed_nan"]) == 16 and int(f["loss"].attrs["computed_nan"]) == 16
        assert int(f["nan_count"][()].sum()) == 16 and f["done"][()].all()
    assert any("(8 NaN)" in line for line in lines)  # the summary says it, per T
    again = cli(*args)
    assert again[0] == 0 and "read from the cache" in again[1][0]
    # a NaN value that was never written (the chunk's flag set by hand) is not a computed one
    edit(out, lambda f: (f["loss"].__setitem__((0, 4, 3), np.nan)))
    assert_one_error(args, "chunk 6", "is corrupt")


# ---------------------------------------------------------------------------------------------
# full disk


@contextmanager
def mounted(target: Path, *options):
    target.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", *options, str(target)], capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"cannot mount here ({r.stderr.strip()}); the patched tests cover this")
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], capture_output=True)


def test_a_full_disk_mid_run_is_one_line_keeps_the_done_chunks_and_resumes(tmp_path, monkeypatch):
    out = tmp_path / "s.h5"
    real = h5py.File.flush
    calls = {"n": 0}

    def full(self):
        calls["n"] += 1
        if calls["n"] == 5:  # the first flush of the third chunk, as HDF5 reports a full disk
            raise RuntimeError("Unable to flush file's cached information (file write failed: time = ..., "
                               "filename = 's.h5', file descriptor = 13, errno = 28, error message = 'No space "
                               "left on device', buf = 0x5570, total write size = 12201)")
        if calls["n"] == 105:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(self)

    monkeypatch.setattr(h5py.File, "flush", full)
    with pytest.raises(LandscapeError, match="cannot write .*No space left on device.*resumes") as err:
        landscape.grid(SMALL, out=out, chunk_size=3, progress=False)
    assert "\n" not in str(err.value)
    monkeypatch.setattr(h5py.File, "flush", real)
    partial = landscape.load(out)
    assert not partial.complete and partial.done.tolist() == [True, True] + [False] * 5
    assert [p.name for p in tmp_path.iterdir()] == ["s.h5"]  # no lock, no temporary left
    resumed = landscape.grid(SMALL, out=out, chunk_size=3, progress=False)
    assert resumed.computed_points == 14 and resumed.surface.complete
    fresh = landscape.grid(SMALL, out=tmp_path / "fresh.h5", chunk_size=3, progress=False)
    assert same_numbers(resumed.surface, fresh.surface)
    # the same through the command: one line, exit 2; and as an OSError
    monkeypatch.setattr(h5py.File, "flush", full)
    for start in (0, 100):
        calls["n"] = start
        assert_one_error(["grid", *SMALL_ARGS, "--chunk-size", "3", "--out", tmp_path / f"cli{start}.h5"],
                         "No space left on device")
        assert landscape.load(tmp_path / f"cli{start}.h5").done.sum() == 2


def test_a_real_full_disk(tmp_path, monkeypatch):
    """A small tmpfs: a file that does not fit is refused whole (nothing left behind); a file
    that was created keeps its space, so filling the disk afterwards does not stop the run."""
    with mounted(tmp_path / "tiny", "-t", "tmpfs", "-o", "size=16k", "tmpfs") as tiny:
        assert_one_error(["grid", *SMALL_ARGS, "--out", tiny / "s.h5"], "cannot write", "No space left on device")
        assert list(tiny.iterdir()) == []
    with mounted(tmp_path / "disk", "-t", "tmpfs", "-o", "size=512k", "tmpfs") as disk:
        real = writer.create_whole

        def create_then_fill(*args):
            real(*args)
            fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)  # take every byte left
            try:
                while True:
                    os.write(fd, b"\0" * 4096)
            except OSError as err:
                assert err.errno == errno.ENOSPC
            finally:
                os.close(fd)

        monkeypatch.setattr(writer, "create_whole", create_then_fill)
        spec = dataclasses.replace(SMALL, x=Axis("w", 4.5, 5.5, 60), y=Axis("b", -2.9, -1.9, 50))
        r = landscape.grid(spec, out=disk / "s.h5", chunk_size=700, progress=False)
        assert r.surface.complete and r.surface.checked and np.isfinite(r.surface.loss).all()
        assert os.statvfs(disk).f_bavail == 0


# ---------------------------------------------------------------------------------------------
# read-only caches


def test_a_complete_result_is_served_without_any_write(tmp_path, monkeypatch):
    import landscape.surface as surface

    first = landscape.grid(SMALL, progress=False)
    out = tmp_path / "mine.h5"
    landscape.grid(SMALL, out=out, progress=False)

    def no_write(*args, **kwargs):
        raise AssertionError("a write was attempted to serve a complete result")

    for name in ("check_writable", "locked", "SurfaceWriter"):
        monkeypatch.setattr(surface, name, no_write)
    for kwargs in ({}, {"out": out}):
        again = landscape.grid(SMALL, progress=False, **kwargs)
        assert again.cached and same_numbers(again.surface, first.surface)


def test_a_read_only_mount_serves_complete_results_and_refuses_the_rest_in_one_line(tmp_path, monkeypatch):
    landscape.grid(SMALL, progress=False)
    landscape.grid(SMALL, out=tmp_path / "cache" / "mine.h5", progress=False)
    with mounted(tmp_path / "ro", "--bind", str(tmp_path / "cache")) as ro:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(ro)], check=True)
        with pytest.raises(OSError):
            (ro / "probe").write_text("x")
        monkeypatch.setenv("LANDSCAPE_CACHE", str(ro))
        code, lines = cli("grid", *SMALL_ARGS)
        assert code == 0 and lines[0].startswith("read from the cache")
        code, lines = cli("grid", *SMALL_ARGS, "--out", ro / "mine.h5")
        assert code == 0 and lines[0].startswith("read from the cache")
        code, lines = cli("cache", "ls")
        assert code == 0 and "complete" in lines[1]
        assert_one_error(["grid", *SMALL_ARGS[:-4], "--T", "3", "--n", "1"], "cannot write", "Read-only file system")
        assert_one_error(["grid", *SMALL_ARGS, "--force"], "Read-only file system")


# ---------------------------------------------------------------------------------------------
# format version 1


def as_format_1(src: Path, dst: Path) -> None:
    """The file an earlier landscape wrote for the same surface: contiguous datasets without
    checksums, no nan_count, digest or chunk scale, format_version 1."""
    with h5py.File(src, "r") as f, h5py.File(dst, "w") as g:
        for k, v in f.attrs.items():
            if k != "computed_nan":
                g.attrs[k] = v
        g.attrs["format_version"] = 1
        scales = []
        for name in ("T", "w", "b"):
            ds = g.create_dataset(name, data=f[name][()])
            ds.make_scale(name)
            scales.append(ds)
        loss = g.create_dataset("loss", data=f["loss"][()], fillvalue=np.nan)
        for d, scale in enumerate(scales):
            loss.dims[d].attach_scale(scale)
        g.create_dataset("done", data=f["done"][()])


def test_format_1_files_cannot_be_verified_and_are_refused_in_one_line(tmp_path):
    """A format-1 file has no checksums or digests: an edited value could not be told. It is never
    served (not by load, grid, plot or the cache); --force computes it again."""
    landscape.grid(SMALL, out=tmp_path / "v2.h5", chunk_size=3, progress=False)
    old = tmp_path / "v1.h5"
    as_format_1(tmp_path / "v2.h5", old)
    with pytest.raises(store.UntrustedFile, match="format version 1"):
        landscape.load(old)
    assert_one_error(["grid", *SMALL_ARGS, "--chunk-size", "3", "--out", old], "format version 1", "--force")
    assert_one_error(["plot", old, "--out", tmp_path / "p.png"], "format version 1", "cannot be verified")
    r = landscape.resolve(SMALL)
    (tmp_path / "cache").mkdir()
    store.cache_path(r.name, r.key()).write_bytes(old.read_bytes())
    code, lines = cli("cache", "ls")
    assert code == 0 and "format version 1" in lines[1] and "complete" not in lines[1]
    edit(old, lambda f: (f.attrs.modify("complete", False), f["done"].__setitem__(0, False)))
    assert_one_error(["grid", *SMALL_ARGS, "--chunk-size", "3", "--out", old], "format version 1", "--force")
    code, _ = cli("grid", *SMALL_ARGS, "--chunk-size", "3", "--out", old, "--force", "-q")
    assert code == 0 and landscape.load(old).checked


# ---------------------------------------------------------------------------------------------
# memory, the Python API, non-finite values


def test_a_grid_whose_data_cannot_fit_is_refused_before_anything_is_made(monkeypatch, tmp_path):
    from landscape.tasks import builtin

    monkeypatch.setattr(builtin.Latch, "make", lambda *a: pytest.fail("data made before the plan"))
    spec = GridSpec.of(cell="srnn", task="latch", T=(100000,), fit="fixed", x=Axis("w", 0, 1, 5), y=Axis("b", 0, 1, 5))
    with pytest.raises(LandscapeError, match=r"100000 steps x 1000 sequences .* need about 2\.\d GiB .* budget is 1\.0 GiB"):
        landscape.grid(spec, progress=False)
    assert not (tmp_path / "cache").exists()
    assert_one_error(["grads", "--memory", "inf"], "memory size 'inf' must be a positive, finite size")


MEASURE = textwrap.dedent('''
    import os, sys, landscape
    from landscape import Axis, GridSpec
    def rss():  # now, and the peak since the last reset (Linux: VmHWM, reset through clear_refs)
        with open("/proc/self/status") as f:
            fields = dict(line.split(":", 1) for line in f)
        return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024
    def reset():
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    def peak():
        return rss()[1] - before
    spec = dict(cell="srnn", task="latch", fit="fixed", x=Axis("w", 0, 1, 2), y=Axis("b", 0, 1, 2))
    landscape.grid(GridSpec.of(T=(5,), n=10, **spec), out=sys.argv[1] + "/warm.h5", progress=False, device="cpu")
    for budget in (400 << 20, 600 << 20):
        reset()
        before = rss()[0]
        try:
            landscape.grid(GridSpec.of(T=(1000,), n=20000, **spec), out=sys.argv[1] + "/big.h5", progress=False,
                           device="cpu", memory=budget)
            print("ran", peak())
        except landscape.LandscapeError as err:
            print("refused", peak())
''')


def test_the_memory_plan_counts_the_inputs_measured(tmp_path):
    """T = 1000 x 20000 sequences: 160 MB of float64 inputs, about 480 MB while they are made
    (the plan's count). A budget below that is refused before allocating; one above it holds, as
    measured by the growth of the process's peak resident memory (VmHWM, reset before each call)."""
    r = subprocess.run([sys.executable, "-c", MEASURE, str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    (refused, grew_refused), (ran, grew) = [line.split() for line in r.stdout.splitlines()]
    assert refused == "refused" and int(grew_refused) < 20 << 20
    assert ran == "ran" and 400 << 20 < int(grew) <= 600 << 20, grew


def test_python_api_takes_axis_text_and_says_what_else_is_wrong(tmp_path):
    api = landscape.grid(cell="pascanu", task="target", T=(5,), x="w:4.5:5.5:5", y="b:-2.9:-1.9:4",
                         out=tmp_path / "a.h5", progress=False)
    ref = landscape.grid(GridSpec.of(cell="pascanu", task="target", T=(5,), x=Axis("w", 4.5, 5.5, 5),
                                  y=Axis("b", -2.9, -1.9, 4)), out=tmp_path / "b.h5", progress=False)
    np.testing.assert_array_equal(api.surface.loss, ref.surface.loss)
    assert api.surface.spec["x"] == {"name": "w", "lo": 4.5, "hi": 5.5, "num": 5, "log": False}
    with pytest.raises(TypeError, match="GridSpec.x must be an Axis or a text NAME:MIN:MAX:NUM, not int"):
        landscape.grid(x=5, progress=False)
    with pytest.raises(TypeError, match="must be a GridSpec, not dict"):
        landscape.grid({"cell": "srnn"}, progress=False)
    with pytest.raises(LandscapeError, match="malformed axis"):
        landscape.grid(x="w:0:1", progress=False)


# ---------------------------------------------------------------------------------------------
# processes: the lock holder killed while others wait; `cache ls` meanwhile


SLOW_CELL = '''
import time
from dataclasses import dataclass

import torch

from landscape.cells.base import Cell, ParamDecl, bias, linear


@dataclass(frozen=True)
class SlowCell(Cell):
    """The Elman cell, 2 ms a step whatever the machine's load (a long run that costs no CPU). The
    fused kernels trace ``step`` once and would drop the sleep: the test runs with LANDSCAPE_FAST=0."""

    name = "slow"
    summary = "tanh(w h + b), slowly"
    equations = "h' = tanh(w h + u x + b)"
    params = (ParamDecl("w", "recurrent", default=1.0), ParamDecl("u", "input", default=1.0),
              ParamDecl("b", "bias", default=0.0))
    default_axes = ("w:0:2:4", "b:-0.5:0.5:4")

    def step(self, p, state, x):
        time.sleep(0.002)
        (h,) = state
        return (torch.tanh(linear(h, p["w"]) + bias(p["b"]) + linear(x, p["u"])),)
'''


def _done(path) -> int:
    try:
        with h5py.File(path, "r", locking=False) as f:
            return int(f["done"][()].sum())
    except (OSError, KeyError):
        return 0


def test_the_lock_holder_killed_while_two_others_wait(tmp_path):
    """Three processes start on one spec: one computes, two wait for its lock. The one computing
    is killed (SIGKILL) once a chunk is done; the two waiting finish the surface between them,
    each point computed once, and the file checks out."""
    env = {**os.environ, "LANDSCAPE_CACHE": str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1", "LANDSCAPE_FAST": "0"}
    (tmp_path / "slow.py").write_text(SLOW_CELL)
    command = [sys.executable, "-m", "landscape", "grid", "--cell", f"{tmp_path / 'slow.py'}:SlowCell", "--task",
               "latch", "--readout", "fixed", "--T", "250", "--n", "10", "--chunk-size", "2"]  # 8 chunks of 0.5 s
    procs = [subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    try:
        waiting = set()
        deadline = time.time() + 120
        while len(waiting) < 2 and time.time() < deadline:
            ready, _, _ = select.select([p.stderr for p in procs if p not in waiting], [], [], 1)
            for p in procs:
                if p.stderr in ready and "waiting for it" in p.stderr.readline():
                    waiting.add(p)
        assert len(waiting) == 2
        (holder,) = [p for p in procs if p not in waiting]
        deadline = time.time() + 120
        while not list((tmp_path / "cache").glob("*.h5")) and time.time() < deadline:
            time.sleep(0.02)  # the holder creates the file once it holds the lock
        path = next((tmp_path / "cache").glob("*.h5"))
        while _done(path) < 1 and time.time() < deadline:
            time.sleep(0.02)
        code, lines = cli("cache", "ls")
        assert code == 0 and "being written" in lines[1], lines
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        assert holder.poll() == -signal.SIGKILL
        killed_done = _done(path)
        assert 1 <= killed_done < 8
        results = [p.communicate(timeout=300) for p in waiting]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            for pipe in (p.stdout, p.stderr):
                pipe.close()
    assert all(p.returncode == 0 for p in waiting), results
    outs = sorted(out for out, _ in results)
    assert f"computed {2 * (8 - killed_done)} points" in outs[0] and "read from the cache" in outs[1], outs
    s = landscape.load(path)
    assert s.complete and s.checked and np.isfinite(s.loss).all()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [path.name]  # no lock left
    code, lines = cli("cache", "ls")
    assert "complete" in lines[1] and "being written" not in lines[1]


def test_a_parameter_named_like_a_dataset_of_the_file_is_refused(tmp_path):
    (tmp_path / "tcell.py").write_text(SQRT_CELL.replace('ParamDecl("b", "bias"', 'ParamDecl("t", "bias"')
                                       .replace('p["b"]', 'p["t"]').replace('"b:-1:1:4"', '"t:-1:1:4"'))
    assert_one_error(["grid", "--cell", f"{tmp_path / 'tcell.py'}:SqrtCell", "--task", "target", "--x", "w:0:1:3",
                      "--y", "t:0:1:3", "--out", tmp_path / "t.h5"], "a parameter named 't' cannot be a grid axis")
    assert not (tmp_path / "t.h5").exists()


def test_a_file_whose_lock_is_held_is_being_written_for_ls_load_and_rm(tmp_path):
    first = landscape.grid(SMALL, progress=False)
    edit(first.path, lambda f: f["loss"].__setitem__((0, 0, 0), 7.0))  # as a reader may see a chunk mid-write
    with store.locked(first.path):
        code, lines = cli("cache", "ls")
        assert code == 0 and "being written" in lines[1] and "CORRUPT" not in lines[1]
        with pytest.raises(LandscapeError, match="is being written by another process"):
            landscape.load(first.path)
        assert_one_error(["cache", "rm", first.path], "being written by another process; not removed")
        assert first.path.exists()
    code, lines = cli("cache", "ls")  # reads the attributes only
    assert "complete" in lines[1]
    code, lines = cli("cache", "ls", "--check")  # reads and verifies every dataset
    assert code == 0 and "CORRUPT" in lines[1] and "does not match its digest" in lines[1]
    code, lines = cli("cache", "rm", first.path)
    assert code == 0 and not first.path.exists() and list((tmp_path / "cache").iterdir()) == []


def test_a_damaged_global_heap_is_refused_rather_than_read(tmp_path):
    """The text attributes live in an HDF5 global heap, which has no checksum; HDF5 2.0 loops
    forever reading a string from a heap whose size field is wrong (found by the sweep above, at
    stride 1). The reader checks the heap's structure first. In a separate process, with a limit."""
    out = tmp_path / "s.h5"
    landscape.grid(SMALL, out=out, progress=False)
    data = out.read_bytes()
    at = data.find(b"GCOL")
    assert at > 0
    for offset, mask in ((at + 8, 0xA5), (at + 9, 0x01), (at + 4, 0x02), (at + 24, 0x10)):
        b = bytearray(data)
        b[offset] ^= mask
        out.write_bytes(b)
        r = subprocess.run([sys.executable, "-c", "import sys, landscape\ntry:\n    landscape.load(sys.argv[1])\n"
                            "except landscape.LandscapeError as err:\n    print(err)", str(out)],
                           cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and "is corrupt" in r.stdout, (offset, r.stdout, r.stderr[-500:])


def test_the_plane_of_a_plane_grid_is_checked_too(tmp_path):
    """A plane grid's parameters are theta = origin + a d1 + b d2, stored in /plane: a changed
    direction would make a resumed run compute other points. Its group carries a digest."""
    spec = GridSpec.of(cell="srnn", task="latch", n=8, T=(3,), directions="random", x=Axis("a", -1, 1, 3),
                    y=Axis("b", -1, 1, 3))
    out = tmp_path / "plane.h5"
    landscape.grid(spec, out=out, progress=False)
    with h5py.File(out, "r") as f:
        assert int(f["plane"].attrs["digest"]) == store.group_digest(f["plane"])
        offset = f["plane/d1"].id.get_offset()
    flip(out, offset + 3)
    with pytest.raises(CorruptSurface, match="group 'plane' does not match its digest"):
        landscape.grid(spec, out=out, progress=False)
    # the plane's digest rewritten to match: the chunks' digests bind the plane's, so still refused
    edit(out, lambda f: f["plane"].attrs.modify("digest", np.uint64(store.group_digest(f["plane"]))))
    with pytest.raises(CorruptSurface, match="chunk 0 .* does not match its digest"):
        landscape.grid(spec, out=out, progress=False)
    assert not landscape.grid(spec, out=out, progress=False, force=True).cached
