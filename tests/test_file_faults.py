"""Every file kind attacked the way issue 24 found its faults (the campaign is tests/file_faults.py,
runnable against any tree to count before and after): surfaces (plain, --grads, plane) and
fixed-point files. What counts: refused in one line, read back identical; never served with a
changed number, an internal error, a hang or a crash. Plus the cases one by one: a plane grid
without its plane, chunks copied between files, older formats, `landscape check`, `cache ls --check`."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

import landscape
from landscape import Axis, GridSpec
from landscape import store
from landscape.cli import main
from landscape.store import CorruptSurface, UntrustedFile
from landscape.store.fixedpoints import check_fixed_point_file, read_fixed_point_file
from landscape.store.reader import chunk_values

ROOT = Path(__file__).resolve().parents[1]
CAMPAIGN = ROOT / "tests" / "file_faults.py"
BAD = ("changed", "internal", "hang", "crash")

SURFACE = GridSpec.of(cell="pascanu", task="target", T=(1, 5), n=1, x=Axis("w", 4.5, 5.5, 4), y=Axis("b", -2.9, -1.9, 3))
PLANE = GridSpec.of(cell="srnn", task="latch", T=(1, 5), n=4, directions="random", x=Axis("a", -1, 1, 4),
                    y=Axis("b", -1, 1, 3))


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LANDSCAPE_CACHE", str(tmp_path / "cache"))


def cli(*args):
    r = CliRunner().invoke(main, [str(a) for a in args])
    assert r.exception is None or isinstance(r.exception, SystemExit), r.output
    return r.exit_code, [line for line in r.output.splitlines() if line.strip()]


def campaign(kind: str, folder: Path, every: int) -> dict:
    r = subprocess.run([sys.executable, str(CAMPAIGN), kind, str(folder), "--every", str(every)], cwd=ROOT,
                       capture_output=True, text=True, timeout=3000)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.splitlines()[-1])


def assert_no_accident_served(counts: dict) -> None:
    bad = {attack: {k: n for k, n in row.items() if k in BAD} for attack, row in counts.items()}
    assert not any(bad.values()), (bad, counts)
    for attack in ("truncation", "member deleted", "unit copied from another spec", "unit moved within the file",
                   "values edited with h5py", "made by hand with h5py"):
        assert counts[attack].get("refused", 0) == sum(counts[attack].values()), (attack, counts[attack])


@pytest.mark.parametrize("kind", ["surface", "grads", "plane", "fixedpoints"])
def test_a_sample_of_every_attack_is_refused_or_harmless(kind, tmp_path):
    counts = campaign(kind, tmp_path / kind, every=1499)
    assert_no_accident_served(counts)
    assert sum(counts["byte flip"].values()) > 4


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["surface", "grads", "plane", "fixedpoints"])
def test_every_401st_byte_flipped_four_ways_and_every_other_attack(kind, tmp_path):
    """CI's sweep; the README's counts are the denser one, `python -m tests.file_faults KIND DIR --every 97`
    (about 15 minutes for the four kinds on a loaded 2-core machine)."""
    counts = campaign(kind, tmp_path / kind, every=401)
    assert_no_accident_served(counts)
    assert counts["byte flip"].get("refused", 0) > 20


# ---------------------------------------------------------------------------------------------
# surfaces: chunks bound to their place, the plane, older formats


def test_a_chunk_with_its_digest_copied_from_another_spec_or_moved_is_refused(tmp_path):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    landscape.grid(SURFACE, out=a, chunk_size=4, progress=False)
    other = GridSpec.of(cell="pascanu", task="target", T=(1, 5), n=1, x=Axis("w", 4.75, 5.5, 4), y=Axis("b", -2.9, -1.9, 3))
    landscape.grid(other, out=b, chunk_size=4, progress=False)
    clean = a.read_bytes()
    with h5py.File(b, "r") as g:
        theirs = {k: g[k][()] for k in ("loss", "digest", "nan_count")}

    def copy_chunk(f, src: dict, c_src: int, c_dst: int):
        loss = f["loss"][()]
        flat, s = loss.reshape(2, 12), src["loss"].reshape(2, 12)
        flat[:, 4 * c_dst:4 * c_dst + 4] = s[:, 4 * c_src:4 * c_src + 4]
        f["loss"][...] = flat.reshape(loss.shape)
        f["digest"][c_dst], f["nan_count"][c_dst] = src["digest"][c_src], src["nan_count"][c_src]

    for change in (lambda f: copy_chunk(f, theirs, 1, 1),  # another spec's chunk in its own place
                   lambda f: copy_chunk(f, {k: f[k][()] for k in theirs}, 0, 2)):  # our chunk 0 as chunk 2
        a.write_bytes(clean)
        with h5py.File(a, "r+") as f:
            change(f)
        with pytest.raises(CorruptSurface, match="does not match its digest"):
            landscape.load(a)
        with pytest.raises(CorruptSurface):
            landscape.grid(SURFACE, out=a, chunk_size=4, progress=False)


def test_a_plane_grid_without_its_plane_is_refused_never_served_nor_resumed_over(tmp_path):
    out = tmp_path / "plane.h5"
    landscape.grid(PLANE, out=out, chunk_size=4, progress=False)
    clean = out.read_bytes()
    with h5py.File(out, "r+") as f:
        del f["plane"]
    with pytest.raises(CorruptSurface, match="without its plane"):
        landscape.load(out)
    with pytest.raises(CorruptSurface, match="without its plane"):
        landscape.grid(PLANE, out=out, chunk_size=4, progress=False)
    code, lines = cli("plot", out, "--out", tmp_path / "p.png")
    assert code == 2 and len(lines) == 1 and "without its plane" in lines[0]
    # incomplete: the run that resumes would build a new plane; refused, and the file is kept
    out.write_bytes(clean)
    with h5py.File(out, "r+") as f:
        f["done"][1] = False
        f.attrs.modify("complete", False)
        del f["plane"]
    before = out.read_bytes()
    with pytest.raises(CorruptSurface, match="without its plane"):
        landscape.grid(PLANE, out=out, chunk_size=4, progress=False)
    assert out.read_bytes() == before
    assert not landscape.grid(PLANE, out=out, chunk_size=4, progress=False, force=True).cached
    assert landscape.load(out).complete


def test_an_incomplete_plane_grid_resumes_on_its_own_plane(tmp_path):
    out = tmp_path / "plane.h5"
    truth = landscape.grid(PLANE, out=tmp_path / "whole.h5", chunk_size=4, progress=False).surface
    out.write_bytes((tmp_path / "whole.h5").read_bytes())
    with h5py.File(out, "r+") as f:
        f["done"][1] = False
        f.attrs.modify("complete", False)
    resumed = landscape.grid(PLANE, out=out, chunk_size=4, progress=False)
    assert not resumed.cached and resumed.computed_points == 4
    assert np.array_equal(resumed.surface.loss, truth.loss, equal_nan=True)


def as_format_2(path: Path) -> None:
    """The file as format 2 wrote it: the same, its digests not bound to their place."""
    with h5py.File(path, "r+") as f:
        loss, done = f["loss"][()], f["done"][()]
        fields = {k: f[k][()] for k in ("grad", "hessian_eigvals", "grad_norm_t", "grad_norm_c_t") if k in f}
        size = int(f.attrs["chunk_size"])
        for c in np.nonzero(done)[0]:
            stop = min((c + 1) * size, loss.shape[1] * loss.shape[2])
            f["digest"][c] = np.uint64(store.chunk_digest(chunk_values(loss, fields, c * size, stop)))
        f.attrs.modify("format_version", 2)


def test_format_2_files_are_still_read_with_their_checks_and_not_resumed(tmp_path):
    out = tmp_path / "v2.h5"
    truth = landscape.grid(SURFACE, out=tmp_path / "v3.h5", chunk_size=4, progress=False).surface
    out.write_bytes((tmp_path / "v3.h5").read_bytes())
    as_format_2(out)
    s = landscape.load(out)
    assert s.checked and np.array_equal(s.loss, truth.loss, equal_nan=True)
    assert landscape.grid(SURFACE, out=out, chunk_size=4, progress=False).cached
    with h5py.File(out, "r+") as f:  # format 2 still has its (unbound) digests
        f["loss"][0, 0, 0] = 0.5
    with pytest.raises(CorruptSurface, match="chunk 0 .* does not match its digest"):
        landscape.load(out)
    out.write_bytes((tmp_path / "v3.h5").read_bytes())
    as_format_2(out)
    with h5py.File(out, "r+") as f:
        f["done"][2] = False
        f.attrs.modify("complete", False)
    code, lines = cli("grid", "--cell", "pascanu", "--task", "target", "--T", "1,5", "--n", "1", "--x",
                      "w:4.5:5.5:4", "--y", "b:-2.9:-1.9:3", "--chunk-size", "4", "--out", out)
    assert code == 2 and len(lines) == 1 and "format version 2" in lines[0] and "--force" in lines[0], lines


def test_format_1_is_refused_with_the_way_to_recompute(tmp_path):
    out = tmp_path / "v1.h5"
    landscape.grid(SURFACE, out=out, chunk_size=4, progress=False)
    with h5py.File(out, "r+") as f:
        f.attrs.modify("format_version", 1)
    with pytest.raises(UntrustedFile, match="cannot be verified .*format version 1.*--force"):
        landscape.load(out)


# ---------------------------------------------------------------------------------------------
# fixed-point files


@pytest.fixture(scope="module")
def fixed_point_run():
    from landscape.attractors import compute_fixed_points, resolve_fixed_point_model, search_options
    from landscape.model import ModelSpec

    problem, _ = resolve_fixed_point_model(ModelSpec(cell="srnn", task="latch", hidden=2, set=(("w", "2"),)))
    return compute_fixed_points(problem, np.array([0.0, 0.5, 1.0]), 5, 4, 0, search_options(8, 0), steps=20)


def test_a_fixed_point_file_reads_back_what_was_computed(fixed_point_run, tmp_path):
    from landscape.attractors import spectral_radius, stability, write_fixed_points

    run, res = fixed_point_run, fixed_point_run.result
    path = write_fixed_points(run, tmp_path / "fp.h5")
    fp = read_fixed_point_file(path)
    for name, want in (("x", run.inputs), ("points", res.points), ("residual", res.residual), ("kind", res.kind),
                       ("count", res.count), ("eigenvalues_real", res.eigenvalues.real),
                       ("spectral_radius", spectral_radius(res)), ("trajectories", run.trajectories),
                       ("attractors/ends", run.attractors.ends)):
        assert np.array_equal(fp.data[name], want, equal_nan=True), name
    assert [[s.decode() for s in row] for row in fp.data["stability"]] == stability(res).astype(str).tolist()
    assert fp.attrs["cell"] == "srnn" and fp.group_attrs["attractors"]["steps"] == 20
    np.testing.assert_array_equal(fp.data["bound"], res.bound)
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == "landscape-fixedpoints" and f.attrs["format_version"] == 3
        assert all(ds.fletcher32 for ds in _datasets(f))
    assert not list(tmp_path.glob(".*"))  # no temporary or lock file left


def _datasets(f):
    out = []
    f.visititems(lambda name, obj: out.append(obj) if isinstance(obj, h5py.Dataset) else None)
    return out


def test_a_fixed_point_file_of_before_or_edited_by_hand_is_refused_in_one_line(fixed_point_run, tmp_path):
    from landscape.attractors import write_fixed_points

    path = write_fixed_points(fixed_point_run, tmp_path / "fp.h5")
    clean = path.read_bytes()
    cases = {
        "without checksums or digests": lambda f: f.attrs.__delitem__("format_version"),  # as an older landscape wrote
        # version 2 counted points at the search bound as slow points: refused, naming the way out
        "format version 2, which counted points at the search bound as slow points); it was not used: compute it "
        "again with `landscape fixedpoints": lambda f: f.attrs.modify("format_version", 2),
        "input 1 does not match its digest": lambda f: f["points"].__setitem__((1, 0, 0), 0.5),
        "root attribute 'T' differs from its spec": lambda f: f.attrs.modify("T", 6),
        "its groups (none) differ from its spec": lambda f: f.__delitem__("attractors"),
        "dataset 'trajectories' is missing": lambda f: f.__delitem__("trajectories"),
        "input 0 does not match its digest": lambda f: (  # inputs 0 and 1 swapped, digests with them
            [f[n].__setitem__(slice(0, 2), f[n][()][[1, 0]]) for n in ("x", "points", "count", "digest")]),
    }
    for reason, change in cases.items():
        path.write_bytes(clean)
        with h5py.File(path, "r+") as f:
            change(f)
        with pytest.raises(CorruptSurface, match=re.escape(reason)):
            check_fixed_point_file(path)
        code, lines = cli("check", path)
        assert code == 1 and len(lines) == 1 and reason in lines[0] and str(path) in lines[0], lines


# ---------------------------------------------------------------------------------------------
# landscape check, cache ls --check


def test_check_says_one_line_per_file_and_exits_0_1_or_2(fixed_point_run, tmp_path):
    from landscape.attractors import write_fixed_points

    good = landscape.grid(SURFACE, out=tmp_path / "s.h5", chunk_size=4, progress=False).path
    fp = write_fixed_points(fixed_point_run, tmp_path / "fp.h5")
    code, lines = cli("check", good, fp)
    assert code == 0 and len(lines) == 2 and all(line.startswith("ok: ") for line in lines), lines
    bad = tmp_path / "bad.h5"
    bad.write_bytes(good.read_bytes())
    with h5py.File(bad, "r+") as f:
        f["loss"][1, 1, 1] = 2.0
    code, lines = cli("check", good, bad)
    assert code == 1 and lines[0].startswith("ok: ") and lines[1].startswith("DAMAGED: ") and "digest" in lines[1]
    (tmp_path / "foreign.h5").write_bytes(b"")
    with h5py.File(tmp_path / "foreign.h5", "w") as f:
        f["x"] = 1
    for args in ((bad, tmp_path / "missing.h5"), (tmp_path,), (tmp_path / "foreign.h5",)):
        code, lines = cli("check", *args)
        assert code == 2 and len(lines) == len(args) and lines[-1].startswith("NOT CHECKED: "), lines


def test_cache_ls_check_verifies_every_kind_it_finds(fixed_point_run, tmp_path):
    from landscape.attractors import write_fixed_points

    landscape.grid(SURFACE, chunk_size=4, progress=False)
    cache = store.cache_dir()
    write_fixed_points(fixed_point_run, cache / "fp.h5")
    (cache / "fp-bad.h5").write_bytes((cache / "fp.h5").read_bytes())
    with h5py.File(cache / "fp-bad.h5", "r+") as f:
        f["residual"][0, 0] = 1.0
    code, lines = cli("cache", "ls", "--check")
    assert code == 0, lines
    assert any("fp.h5  ok: " in line for line in lines), lines
    assert any("fp-bad.h5  DAMAGED: " in line and "input 0 does not match its digest" in line for line in lines), lines
    assert any(" complete " in line for line in lines), lines
