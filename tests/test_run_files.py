"""Training run files attacked as a hostile tester would: damaged copies of a valid run read through the
project's own readers (``--base-model RUN.h5:GROUP[:REPEAT]`` and the rows reader), each in a worker
process watched with a timeout, so a hang or a crash is counted, not suffered.

Each damaged copy ends as one of: refused (one-line LandscapeError), identical (read back bit for bit as
the undamaged file), changed (read with other numbers: must never happen), internal (any other
exception), hang, crash. ``python -m tests.test_run_files [FOLDER]`` prints the counts of every attack.
"""
from __future__ import annotations

import json
import os
import random
import selectors
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import h5py
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ["train", "--cell", "srnn", "--T", "5,8", "--repeats", "2", "--epochs", "2", "--n", "64",
         "--protocol", "stratified", "--record-steps", "-q"]
OTHER = [*TRAIN[:-1], "--lr", "0.01", "-q"]  # another spec, the same groups
READ_TIMEOUT = 60  # seconds a worker may take for one file before it counts as a hang (a read takes < 1 s)

WORKER = r"""
import hashlib, json, sys
import numpy as np
from landscape.errors import LandscapeError
from landscape.basemodel import load_model
from landscape.train.results import ResultStore

def digest(path):
    h = hashlib.sha256()
    for ref in (f"{path}:srnn-T5:1", f"{path}:srnn-T8"):
        m = load_model(ref)
        for k in sorted(m.params):
            h.update(k.encode() + np.ascontiguousarray(m.params[k].numpy()).tobytes())
        for k in sorted(m.trajectory or {}):
            h.update(k.encode() + np.ascontiguousarray(m.trajectory[k].numpy()).tobytes())
        h.update(repr((m.cell, m.cell_options, m.hidden, m.readout)).encode())
    rows = ResultStore(path).rows()
    h.update(json.dumps([{k: v for k, v in r.items() if k != "digest"} for r in rows], sort_keys=True,
                        default=str).encode())
    return h.hexdigest()

import torch, h5py  # before "ready": a worker's start-up is not counted against a read's timeout
print("ready", flush=True)
for line in sys.stdin:
    path = line.strip()
    try:
        out = {"outcome": "read", "digest": digest(path)}
    except LandscapeError as err:
        out = {"outcome": "refused", "lines": len(str(err).splitlines()), "msg": str(err)}
    except Exception as err:
        out = {"outcome": "internal", "msg": f"{type(err).__name__}: {err}"[:300]}
    print(json.dumps(out), flush=True)
"""


def landscape(args, env=None, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg", **(env or {})}
    return subprocess.run([sys.executable, "-m", "landscape", *args], env=env, capture_output=True, text=True, **kw)


def make_run(path: Path, args=TRAIN) -> Path:
    done = landscape([*args, "--out", str(path)], env={"LANDSCAPE_CACHE": str(path.parent / "cache")})
    assert done.returncode == 0, done.stderr
    return path


class Readers:
    """A worker process reading files one at a time; restarted after a hang or a crash."""

    def __init__(self):
        self.proc = None

    def _start(self):
        env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
        self.proc = subprocess.Popen([sys.executable, "-c", WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, env=env, start_new_session=True)
        assert self.proc.stdout.readline().strip() == "ready"

    def read(self, path: Path) -> dict:
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        self.proc.stdin.write(f"{path}\n")
        self.proc.stdin.flush()
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            ready = sel.select(READ_TIMEOUT)
        if not ready:
            self.close()
            return {"outcome": "hang"}
        line = self.proc.stdout.readline()
        if not line:
            self.close()
            return {"outcome": "crash"}
        return json.loads(line)

    def close(self):
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:  # it ended by itself (a crash)
                pass
            self.proc.wait()
            for pipe in (self.proc.stdin, self.proc.stdout):
                pipe.close()
            self.proc = None


def classify(readers: Readers, path: Path, truth: str) -> tuple[str, str]:
    out = readers.read(path)
    kind = out["outcome"]
    if kind == "read":
        kind = "identical" if out["digest"] == truth else "changed"
    elif kind == "refused" and out["lines"] != 1:
        kind = "internal"
    return kind, out.get("msg", "")


# --- the attacks: each yields (label, a function that damages a copy in place) ------------------------


def byte_flips(size: int, step: int, masks=(0x01, 0x80, 0xFF)):
    for mask in masks:
        for at in range(step // 2 % size, size, step):
            def flip(p, at=at, mask=mask):
                with open(p, "r+b") as fh:
                    fh.seek(at)
                    b = fh.read(1)[0]
                    fh.seek(at)
                    fh.write(bytes([b ^ mask]))
            yield f"flip {mask:#04x} at {at}", flip


def truncations(size: int, n: int = 40):
    for cut in sorted({int(size * i / n) for i in range(n)} | {size - 1, size - 8}):
        yield f"truncate to {cut}", lambda p, cut=cut: os.truncate(p, cut)


def _attr(where: str, name: str, value):
    def edit(p):
        with h5py.File(p, "r+") as f:
            f[where].attrs[name] = value
    return edit


def _delete_attr(where: str, name: str):
    def edit(p):
        with h5py.File(p, "r+") as f:
            del f[where].attrs[name]
    return edit


def attribute_edits():
    g = "runs/srnn-T5"
    yield "spec not JSON", _attr(g, "spec", "{not json")
    yield "spec another lr", lambda p: _attr(g, "spec", _read_attr(p, g, "spec").replace('"epochs": 2', '"epochs": 3'))(p)
    yield "members edited", lambda p: _attr(g, "members", _read_attr(p, g, "members").replace('"lr": 0.001', '"lr": 0.002'))(p)
    yield "run_key edited", _attr(g, "run_key", "0123456789abcdef")
    yield "group label edited", _attr(g, "group", "srnn-T9")
    yield "complete false", _attr(g, "complete", False)
    yield "digest edited", _attr(g, "digest", np.uint64(12345))
    yield "digest deleted", _delete_attr(g, "digest")
    yield "spec deleted", _delete_attr(g, "spec")
    yield "spec a number", _attr(g, "spec", 5)
    yield "cell renamed", lambda p: _attr(g, "spec", _read_attr(p, g, "spec").replace('"cell": "srnn"', '"cell": "gru"'))(p)
    yield "format edited", _attr("/", "format", "landscape-surface")
    yield "format_version deleted", _delete_attr("/", "format_version")
    yield "format_version 4", _attr("/", "format_version", 4)
    yield "runs_key edited", _attr("/", "runs_key", "0123456789abcdef")


def _read_attr(p, where, name) -> str:
    with h5py.File(p, "r") as f:
        v = f[where].attrs[name]
    return v.decode() if isinstance(v, bytes) else str(v)


def deletions(path: Path):
    names = []
    with h5py.File(path, "r") as f:
        f.visit(names.append)
    for name in names:
        def delete(p, name=name):
            with h5py.File(p, "r+") as f:
                if name in f:
                    del f[name]
        yield f"delete {name}", delete


def values_edited(path: Path):
    """A value rewritten with h5py in each numeric dataset (its chunk's checksum recomputed by HDF5)."""
    names = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) and o.dtype.kind in "fi"
                     and o.size else None)
    for name in names:
        def edit(p, name=name):
            with h5py.File(p, "r+") as f:
                ds = f[name]
                v = ds[()]
                v.flat[-1] = v.flat[-1] + 1
                ds[...] = v
        yield f"edit a value of {name}", edit


def copied_group(other: Path):
    """srnn-T5 (with its digest) copied from a valid run of another spec."""
    def copy(p):
        with h5py.File(p, "r+") as f, h5py.File(other, "r") as o:
            del f["runs/srnn-T5"]
            o.copy(o["runs/srnn-T5"], f["runs"], "srnn-T5")
    yield "group copied from another spec's run", copy

    def copy_all_attrs(p):  # the group and the root's key too
        copy(p)
        with h5py.File(p, "r+") as f, h5py.File(other, "r") as o:
            f.attrs["runs_key"] = o.attrs["runs_key"] if "runs_key" in o.attrs else "x"
    yield "group and runs_key copied from another spec's run", copy_all_attrs


def hand_made(path: Path):
    """The layout rebuilt with plain h5py (no checksums), attributes and all."""
    def rebuild(p):
        with h5py.File(path, "r") as src, h5py.File(p, "w") as dst:
            for k, v in src.attrs.items():
                dst.attrs[k] = v

            def visit(name, obj):
                if isinstance(obj, h5py.Group):
                    g = dst.require_group(name)
                    for k, v in obj.attrs.items():
                        g.attrs[k] = v
                else:
                    dst.create_dataset(name, data=obj[()])
            src.visititems(visit)
    yield "made by hand with h5py", rebuild


def attacks(path: Path, other: Path, step: int):
    size = path.stat().st_size
    yield from (("flip", *a) for a in byte_flips(size, step))
    yield from (("truncate", *a) for a in truncations(size))
    yield from (("attribute", *a) for a in attribute_edits())
    yield from (("delete", *a) for a in deletions(path))
    yield from (("edit value", *a) for a in values_edited(path))
    yield from (("copy group", *a) for a in copied_group(other))
    yield from (("hand made", *a) for a in hand_made(path))


def sweep(folder: Path, step: int) -> dict:
    """{attack kind: Counter(outcome)} over every attack, and the cases that are not refused or identical."""
    folder.mkdir(parents=True, exist_ok=True)
    run = make_run(folder / "run.h5")
    other = make_run(folder / "other" / "run.h5", OTHER)
    readers = Readers()
    try:
        truth = readers.read(run)
        assert truth["outcome"] == "read", truth
        counts, bad = {}, []
        copy = folder / "damaged.h5"
        for kind, label, damage in attacks(run, other, step):
            shutil.copyfile(run, copy)
            try:
                damage(copy)
            except (OSError, KeyError, ValueError, RuntimeError) as err:  # h5py refuses to edit a damaged copy
                counts.setdefault(kind, Counter())["not made"] += 1
                continue
            outcome, msg = classify(readers, copy, truth["digest"])
            counts.setdefault(kind, Counter())[outcome] += 1
            if outcome not in ("refused", "identical"):
                bad.append((kind, label, outcome, msg))
        # a file of another spec renamed into place is read as what it is: that spec's numbers
        shutil.copyfile(other, copy)
        theirs = readers.read(other)
        outcome, msg = classify(readers, copy, theirs.get("digest", "none"))
        counts["renamed into place"] = Counter({"as itself" if outcome == "identical" else outcome: 1})
        return {"counts": counts, "bad": bad}
    finally:
        readers.close()


OUTCOMES = ("refused", "identical", "changed", "internal", "hang", "crash")


def _assert_clean(result):
    problems = [b for b in result["bad"]]
    assert not problems, "\n".join(map(str, problems[:20]))


def test_damaged_run_files_are_refused_in_one_line_or_read_back_identical(tmp_path):
    result = sweep(tmp_path, step=997)
    _assert_clean(result)
    total = sum(result["counts"].values(), Counter())
    assert total["refused"] > 50 and total["changed"] == total["internal"] == total["hang"] == total["crash"] == 0


@pytest.mark.slow
def test_byte_flip_sweep_over_the_whole_run_file(tmp_path):
    result = sweep(tmp_path, step=307)  # CI's density; python -m tests.test_run_files DIR 61 for a denser one
    _assert_clean(result)


# --- killed while writing, a full disk, a planted cell -----------------------------------------------


def _arrays(path: Path) -> dict:
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: out.__setitem__(n, o[()].tobytes()) if isinstance(o, h5py.Dataset)
                     and o.dtype.kind in "fiub" else None)
    return out


KILL_TRAIN = ["train", "--cell", "srnn", "--T", "3,4,5,6,7,8", "--repeats", "2", "--epochs", "2", "--n", "64",
              "--protocol", "stratified", "--record-steps", "-q", "--scheduler", "local:1"]


def _kill_and_resume(tmp_path: Path, delays) -> list[str]:
    """Train into run.h5, SIGKILLed after each delay in turn, then to the end; the datasets of an
    uninterrupted run must come back bit for bit."""
    whole = make_run(tmp_path / "whole" / "run.h5", KILL_TRAIN)
    out = tmp_path / "killed" / "run.h5"
    out.parent.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LANDSCAPE_CACHE": str(tmp_path / "cache")}
    notes = []
    for delay in delays:
        proc = subprocess.Popen([sys.executable, "-m", "landscape", *KILL_TRAIN, "--out", str(out)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(delay)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        groups = 0
        if out.exists():
            from landscape.store.runs import read_run_file

            groups = len(read_run_file(out))  # never a file a rerun refuses
        notes.append(f"killed at {delay:.2f} s: {groups} groups saved")
    done = landscape([*KILL_TRAIN, "--out", str(out)], env={"LANDSCAPE_CACHE": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr
    assert _arrays(out) == _arrays(whole)
    return notes


def test_a_run_killed_while_writing_resumes_to_the_same_file(tmp_path):
    rng = random.Random(24)
    _kill_and_resume(tmp_path, [rng.uniform(3.0, 9.0) for _ in range(3)])


@pytest.mark.slow
def test_a_run_killed_at_many_moments_resumes_to_the_same_file(tmp_path):
    rng = random.Random(25)
    _kill_and_resume(tmp_path, [rng.uniform(2.0, 12.0) for _ in range(16)])


def test_a_full_disk_is_one_line_and_leaves_the_saved_groups(tmp_path, monkeypatch):
    from landscape.errors import LandscapeError
    from landscape.store import runs as runs_mod
    from landscape.train import Member, TrainSpec
    from landscape.train.results import run_groups

    spec = TrainSpec.of(cell="srnn", task="latch", n=32, epochs=1, batch=8)
    members = [Member(T=T, seed=0, data_seed=T, group=f"srnn-T{T}") for T in (2, 3)]
    out = tmp_path / "run.h5"
    run_groups([(spec, members[:1])], out=out, device="cpu", progress=False)
    before = out.read_bytes()
    real = runs_mod._write_group

    def full(g, run):
        real(g, run)
        if run.group == "srnn-T3":
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(runs_mod, "_write_group", full)
    with pytest.raises(LandscapeError, match=r"No space left on device \(free some space\); the groups saved"):
        run_groups([(spec, members)], out=out, device="cpu", progress=False)
    assert out.read_bytes() == before and not out.with_name(f".{out.name}.new").exists()


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mount"), reason="mounts a small tmpfs (root)")
def test_a_full_tmpfs_is_one_line(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", str(disk)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        done = landscape([*TRAIN, "--repeats", "8", "--out", str(disk / "run.h5")],
                         env={"LANDSCAPE_CACHE": str(tmp_path / "cache")}, timeout=300)
        assert done.returncode != 0 and done.returncode > 0, done.stderr  # no signal
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:") and "No space left" in lines[0], done.stderr
        if (disk / "run.h5").exists():  # the groups saved before the disk filled, whole and verified
            from landscape.store.runs import check_run_file

            check_run_file(disk / "run.h5")
        assert not (disk / ".run.h5.new").exists()
    finally:
        subprocess.run(["umount", str(disk)])


def test_a_run_file_naming_a_cell_file_does_not_import_it(tmp_path):
    """A run trained with a user cell names it by the hash of its source: --base-model never imports
    the file the run names; the user's --cell is used when its source matches."""
    cell = tmp_path / "mycell.py"
    cell.write_text((ROOT / "examples" / "cells" / "mgu.py").read_text())
    out = tmp_path / "run.h5"
    done = landscape(["train", "--cell", f"{cell}:MGU", "--T", "4", "--repeats", "1", "--epochs", "1", "--n", "32",
                      "-q", "--out", str(out)], env={"LANDSCAPE_CACHE": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr
    group = next(iter(h5py.File(out, "r")["runs"]))
    planted = tmp_path / "planted"
    cell.write_text(cell.read_text() + f"\nopen({str(planted)!r}, 'w').write('ran')\n")  # the file now runs code
    grid = ["grid", "--base-model", f"{out}:{group}", "--directions", "random", "--x", "a:-1:1:3", "--y", "b:-1:1:3",
            "--T", "4", "--n", "16", "--out", str(tmp_path / "s.h5")]
    env = {"LANDSCAPE_CACHE": str(tmp_path / "cache")}
    refused = landscape(grid, env=env)
    assert refused.returncode != 0 and "not imported from the run file" in refused.stderr, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and not planted.exists()
    other = landscape([*grid, "--cell", f"{cell}:MGU"], env=env)  # the edited file: another source
    assert other.returncode != 0 and "source hash" in other.stderr and len(other.stderr.strip().splitlines()) == 1
    planted.unlink()  # the user's own --cell is imported (their choice), the run's never
    cell.write_text((ROOT / "examples" / "cells" / "mgu.py").read_text())
    ok = landscape([*grid, "--cell", f"{cell}:MGU"], env=env)
    assert ok.returncode == 0, ok.stderr


def test_a_csv_run_is_verified_and_resumed(tmp_path):
    from landscape.errors import LandscapeError
    from landscape.train.results import ResultStore

    out = make_run(tmp_path / "run.csv", [a for a in TRAIN if a != "--record-steps"])
    rows = ResultStore(out).rows()
    assert {r["group"] for r in rows} == {"srnn-T5", "srnn-T8"} and len({r["digest"] for r in rows}) == 2
    text = out.read_text()
    first = text.splitlines()[1]
    for damaged in (text.replace(first, first.replace(",0.", ",1.", 1), 1),  # a number edited
                    text.replace(first + "\n", "", 1),  # a row lost
                    text.replace(first, first + "\n" + first, 1)):  # a row doubled
        out.write_text(damaged)
        with pytest.raises(LandscapeError, match="not a trustworthy training run") as err:
            ResultStore(out)
        assert len(str(err.value).splitlines()) == 1


def test_an_old_run_file_is_refused_with_how_to_recompute(tmp_path):
    from landscape.errors import LandscapeError
    from landscape.train.results import ResultStore

    out = make_run(tmp_path / "run.h5")
    with h5py.File(out, "r+") as f:
        del f.attrs["format_version"]
    with pytest.raises(LandscapeError, match="older landscape.*recompute"):
        ResultStore(out)


def test_training_beyond_the_memory_budget_is_one_line(tmp_path):
    done = landscape([*TRAIN, "--n", "100000", "--repeats", "50", "--out", str(tmp_path / "r.h5")],
                     env={"LANDSCAPE_MEMORY": "64M", "LANDSCAPE_CACHE": str(tmp_path / "cache")})
    assert done.returncode != 0 and done.stderr.startswith("error: training 100 models")
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "r.h5").exists()


def main(argv) -> int:
    folder = Path(argv[0]) if argv else Path("/tmp/run-file-sweep")
    step = int(argv[1]) if len(argv) > 1 else 61
    shutil.rmtree(folder, ignore_errors=True)
    result = sweep(folder, step)
    total = Counter()
    for kind, c in result["counts"].items():
        total.update(c)
        print(f"{kind:20s} " + "  ".join(f"{k} {v}" for k, v in sorted(c.items())))
    print(f"{'total':20s} " + "  ".join(f"{k} {total.get(k, 0)}" for k in (*OUTCOMES, "not made")))
    for b in result["bad"][:15]:
        print("  ", b)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
