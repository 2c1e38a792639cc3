"""No file the project reads or writes can be turned against its user by another local user: a
symlink planted at a temporary or lock name is never followed, the kernel cache runs only the
source this process generated (never stray bytecode, never bytes that differ from it) from a folder
only the user can write, names never lead out of the cache folder, and ``cache rm`` removes only
files landscape wrote.

The truth each test compares against: the bytes of the planted target (unchanged), a marker file
a planted module would create (absent), the value the generated source defines, the path the
cache folder holds, and the file after ``cache rm`` (still there)."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import h5py
import pytest
from click.testing import CliRunner

import landscape
from landscape import Axis, GridSpec, settings
from landscape.cli import main
from landscape.errors import LandscapeError
from landscape.kernels import runtime
from landscape.store import CorruptSurface, cache_path, check_surface_file
from landscape.store.cache import file_stem
from landscape.store.files import exclusive_temp
from landscape.store.integrity import check_readable

SMALL = GridSpec.of(cell="pascanu", task="target", T=(1, 5), n=1, x=Axis("w", 4.5, 5.5, 3), y=Axis("b", -2.9, -1.9, 3))
OTHER_UID = 54321  # a user that is not this one (os.chown needs root)


def cli(*args):
    r = CliRunner().invoke(main, [str(a) for a in args])
    assert r.exception is None or isinstance(r.exception, SystemExit), r.output
    return r.exit_code, [line for line in r.output.splitlines() if line.strip()]


@pytest.fixture(autouse=True)
def _private(tmp_path, monkeypatch):
    monkeypatch.setenv("LANDSCAPE_CACHE", str(tmp_path / "cache"))


# ---------------------------------------------------------------------------------------------
# temporary and lock files


def test_a_symlink_at_the_temporary_name_is_removed_not_followed(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    out = tmp_path / "s.h5"
    for name in (f".{out.name}.new", f".{out.name}.0123456789ab.new"):  # the old fixed name, and a random one
        (tmp_path / name).symlink_to(victim)
    landscape.grid(SMALL, out=out, progress=False)
    assert victim.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.h5", "victim.txt"]
    with h5py.File(out, "r") as f:
        assert f.attrs["format"] == "landscape-surface"


def test_the_temporary_file_is_created_exclusively(tmp_path, monkeypatch):
    """A name that exists (planted between the clean-up and the creation) is never opened: another
    random name is drawn."""
    import secrets

    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    names = iter(["aaaaaaaaaaaa", "bbbbbbbbbbbb"])
    monkeypatch.setattr(secrets, "token_hex", lambda n: next(names))
    real_open = os.open

    def plant_then_open(path, flags, *a):  # the attacker wins the race for the first name
        if str(path).endswith(".aaaaaaaaaaaa.new") and not os.path.lexists(path):
            os.symlink(victim, path)
        return real_open(path, flags, *a)

    monkeypatch.setattr(os, "open", plant_then_open)
    tmp = exclusive_temp(tmp_path / "s.h5")
    assert tmp.name == ".s.h5.bbbbbbbbbbbb.new" and tmp.stat().st_size == 0
    assert victim.read_bytes() == b"precious"


def test_a_symlink_at_the_lock_name_is_refused(tmp_path):
    victim = tmp_path / "elsewhere" / "victim"
    out = tmp_path / "s.h5"
    (tmp_path / ".s.h5.lock").symlink_to(victim)
    with pytest.raises(LandscapeError, match="is a symlink"):
        landscape.grid(SMALL, out=out, progress=False)
    assert not victim.exists() and not out.exists()


# ---------------------------------------------------------------------------------------------
# the kernel cache

SOURCE = "VALUE = 1\n"
EVIL = "import pathlib\npathlib.Path({marker!r}).write_text('ran')\nVALUE = 666\n"


@pytest.fixture
def kernels(tmp_path, monkeypatch):
    folder = tmp_path / "kernels"
    monkeypatch.setenv("LANDSCAPE_KERNELS", str(folder))
    monkeypatch.setattr(runtime, "_MODULES", {})
    return folder


def _load(name: str):
    try:
        return runtime.load_module(SOURCE, "cell_test", name)
    finally:
        import sys

        sys.modules.pop(name, None)


def test_the_kernel_folder_is_private(kernels):
    mod, path = _load("landscape_test_private")
    assert mod.VALUE == 1 and path == kernels / "cell_test.py"
    for folder in (kernels, kernels / "__pycache__"):  # numba keeps its cache (pickles) in __pycache__
        st = folder.stat()
        assert stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == os.getuid()


def test_planted_bytecode_is_never_run(kernels, tmp_path):
    """A .pyc in __pycache__ stamped with the source file's size and time (the import system would
    run it instead of the source) and a sourceless .pyc beside it: neither runs."""
    import importlib.util
    from importlib._bootstrap_external import _code_to_timestamp_pyc

    _, source = _load("landscape_test_pyc_a")  # writes cell_test.py
    marker = tmp_path / "marker"
    code = compile(EVIL.format(marker=str(marker)), str(source), "exec")
    st = source.stat()
    planted = _code_to_timestamp_pyc(code, int(st.st_mtime), st.st_size)
    Path(importlib.util.cache_from_source(str(source))).write_bytes(planted)
    (kernels / "cell_test.pyc").write_bytes(planted)
    mod, _ = _load("landscape_test_pyc_b")
    assert mod.VALUE == 1 and not marker.exists()


def test_a_kernel_file_whose_bytes_differ_is_replaced_not_run(kernels, tmp_path):
    _load("landscape_test_tamper_a")
    marker = tmp_path / "marker"
    (kernels / "cell_test.py").write_text(EVIL.format(marker=str(marker)))
    mod, path = _load("landscape_test_tamper_b")
    assert mod.VALUE == 1 and not marker.exists() and path.read_text() == SOURCE


def test_a_group_writable_kernel_folder_is_not_used(kernels, tmp_path, monkeypatch):
    kernels.mkdir()
    kernels.chmod(0o777)
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    assert runtime.kernel_folder() == tmp_path / "tmp" / f"landscape-kernels-{os.getuid()}"
    fallback = runtime.kernel_folder()
    fallback.chmod(0o775)  # both unsafe: one line, nothing run
    with pytest.raises(LandscapeError, match="no safe folder for the kernel cache.*writable by its group"):
        runtime.kernel_folder()


@pytest.mark.skipif(os.getuid() != 0, reason="making a folder another user's needs root (os.chown)")
def test_a_kernel_folder_owned_by_another_user_is_not_used(kernels, tmp_path, monkeypatch):
    """The fallback $TMPDIR/landscape-kernels-UID created first by another user."""
    import tempfile

    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    monkeypatch.setattr(tempfile, "tempdir", None)
    fallback = tmp_path / "tmp" / f"landscape-kernels-{os.getuid()}"
    fallback.mkdir(parents=True, mode=0o700)
    os.chown(fallback, OTHER_UID, OTHER_UID)
    kernels.mkdir(mode=0o700)
    os.chown(kernels, OTHER_UID, OTHER_UID)
    with pytest.raises(LandscapeError, match=f"owned by uid {OTHER_UID}"):
        runtime.kernel_folder()


# ---------------------------------------------------------------------------------------------
# names and the cache folder


@pytest.mark.parametrize("name", ["../../x-target", "/etc/passwd", "a/../../b", ".hidden", "..", "x\0y", ""])
def test_names_never_leave_the_cache_folder(name):
    path = cache_path(name, "0123456789abcdef")
    assert path.parent == settings.cache_dir() and not path.name.startswith(".")
    assert file_stem("lstm-b-relay") == "lstm-b-relay"  # the built-in names as they were


def test_a_user_cell_named_with_dots_stays_in_the_cache(tmp_path):
    cell = tmp_path / "evil.py"
    cell.write_text("from dataclasses import dataclass\nfrom landscape.cells.elman import SRNN\n\n\n"
                    "@dataclass(frozen=True)\nclass Evil(SRNN):\n    name = '../../escaped'\n")
    code, lines = cli("grid", "--cell", f"{cell}:Evil", "--task", "target", "--n", "1", "--x", "w:0:1:2", "--y",
                      "b:0:1:2", "--T", "2", "-q")
    assert code == 0, lines
    cache = Path(os.environ["LANDSCAPE_CACHE"])
    assert [p.name.rsplit("-", 2)[0] for p in cache.glob("*.h5")] == ["_.._escaped"]  # one name, in the folder
    assert not list(tmp_path.rglob("escaped*"))


def test_cache_rm_removes_only_files_landscape_wrote(tmp_path):
    elsewhere = tmp_path / "work"
    elsewhere.mkdir()
    killed = elsewhere / "run.h5"  # a killed training run: not readable as HDF5
    killed.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    train = elsewhere / "train.h5"
    with h5py.File(train, "w") as f:
        f.attrs["format"] = "landscape-train"
    text = elsewhere / "notes.h5"
    text.write_text("mine")
    for path in (killed, train, text):
        code, lines = cli("cache", "rm", path)
        assert code == 2 and len(lines) == 1 and "not removed" in lines[0], lines
        assert path.exists()
    surface = landscape.grid(SMALL, progress=False).path  # in the cache folder, then damaged: removed
    with open(surface, "r+b") as fh:
        fh.write(bytes(64))
    code, lines = cli("cache", "rm", surface)
    assert code == 0 and not surface.exists()
    out = landscape.grid(SMALL, out=elsewhere / "mine.h5", progress=False).path  # a surface anywhere: removed
    code, lines = cli("cache", "rm", out)
    assert code == 0 and not out.exists()


def test_an_unreadable_file_is_called_unreadable_not_corrupt(tmp_path, monkeypatch):
    """As root every file is readable, so the OS's refusal is simulated where it is first seen."""
    path = tmp_path / "s.h5"
    path.write_bytes(b"x")
    real_open = os.open

    def refuse(p, flags, *a):
        if Path(p) == path:
            raise PermissionError(13, "Permission denied", str(p))
        return real_open(p, flags, *a)

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(LandscapeError, match="cannot read .*Permission denied.*unreadable, not damaged") as err:
        check_readable(path)
    assert "corrupt" not in str(err.value) and "remove" not in str(err.value)
    code, lines = cli("plot", path, "--out", tmp_path / "f.png")
    assert code == 2 and "Permission denied" in lines[0] and "corrupt" not in lines[0]
    for read in (landscape.load, check_surface_file):  # every reader of the store, not the commands alone
        with pytest.raises(LandscapeError, match="Permission denied.*unreadable, not damaged") as err:
            read(path)
        assert not isinstance(err.value, CorruptSurface)


@pytest.mark.skipif(os.getuid() == 0, reason="root reads every file whatever its mode")
def test_a_file_without_read_permission_is_unreadable(tmp_path):
    path = tmp_path / "s.h5"
    path.write_bytes(b"x")
    path.chmod(0)
    with pytest.raises(LandscapeError, match="Permission denied"):
        check_readable(path)
