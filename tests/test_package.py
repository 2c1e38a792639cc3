"""The package as a user installs it (issue 23, item 3): `python -m build` makes an sdist and a
wheel named rnn-landscape (the name `landscape` on the package index is an unrelated project); the
wheel, built from the sdist, installs into a fresh virtual environment and runs the headline
command. The fresh environment borrows this one's dependencies (torch, numba, ... through a .pth
line: nothing is downloaded) but not its landscape, which must come from the wheel."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DIST = "rnn-landscape"

pytestmark = pytest.mark.slow


def _build(out: Path) -> tuple[Path, Path]:
    """(sdist, wheel) of the working tree; the wheel is built from the sdist, so a file the sdist
    lacks fails here. Without build isolation where this environment can build (nothing fetched)."""
    if importlib.util.find_spec("build") is None:
        pytest.fail("the test extra installs `build`; pip install -e '.[test]'")
    isolation = ["--no-isolation"] if _can_build_here() else []  # isolated: setuptools from the index
    r = subprocess.run([sys.executable, "-m", "build", *isolation, "--outdir", str(out), str(ROOT)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (sdist,) = out.glob("rnn_landscape-*.tar.gz")
    (wheel,) = out.glob("rnn_landscape-*-py3-none-any.whl")
    return sdist, wheel


def _can_build_here() -> bool:
    try:
        import setuptools
    except ImportError:
        return False
    return tuple(int(p) for p in setuptools.__version__.split(".")[:2]) >= (70, 1)


def test_the_wheel_installs_into_a_fresh_environment_and_runs_the_headline_command(tmp_path):
    sdist, wheel = _build(tmp_path / "dist")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        entry = z.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    assert f"\nName: {DIST}\n" in meta and "landscape/__init__.py" in names
    assert "landscape = landscape.cli:main" in entry  # the command keeps its name

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # this environment's dependencies, after the fresh one's own site-packages (a .pth line adds a
    # folder to the path; the .pth files inside it, such as an editable landscape's, are not read)
    (site / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # no PYTHONPATH: a checkout on it (with the egg-info the sdist left there) would be found instead
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(LANDSCAPE_CACHE=str(tmp_path / "cache"), MPLBACKEND="Agg")
    r = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--quiet",
                        str(wheel)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    where = subprocess.run([str(python), "-c", "import importlib.metadata as m, landscape; "
                            f"print(landscape.__file__); print(m.version('{DIST}'))"],
                           capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert where.returncode == 0, where.stderr
    path, version = where.stdout.split()
    assert Path(path).is_relative_to(site), path  # the wheel's landscape, not this checkout's
    assert version in wheel.name

    r = subprocess.run([str(env_dir / "bin" / "landscape"), "grid", "--cell", "srnn", "--T", "50",
                        "--x", "w:-1:3:21", "--y", "b:-1.5:1.5:21"],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "computed 441 points x 1 lengths" in r.stdout and "T=50    loss min" in r.stdout, r.stdout
    assert list((tmp_path / "cache").glob("srnn-latch-*.h5"))
