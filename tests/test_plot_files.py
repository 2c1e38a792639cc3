"""`landscape plot` kinds that write their own file: the interactive page and the animations, from
the command line (their contents are tested in test_page.py and test_animation.py)."""
from __future__ import annotations

import shutil

import pytest
from click.testing import CliRunner

import landscape
from landscape import Axis, GridSpec
from landscape.cli import main


@pytest.fixture(scope="module")
def surface_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("plot") / "p.h5"
    landscape.grid(GridSpec.of(cell="pascanu", task="target", T=(1, 10, 50), x=Axis("w", 4.5, 5.5, 21),
                            y=Axis("b", -2.9, -1.9, 17)), out=path, device="cpu")
    return path


def test_the_interactive_page_from_the_command_line(surface_file, tmp_path):
    pytest.importorskip("plotly")
    out = tmp_path / "p.html"
    r = CliRunner().invoke(main, ["plot", str(surface_file), "--kind", "interactive", "--log", "--out", str(out)])
    assert r.exit_code == 0, r.output
    text = out.read_text()
    assert text.startswith("<!DOCTYPE html>") and "landscape-plot" in text and "<script src=" not in text


@pytest.mark.parametrize("kind", ["animation", "animation-3d"])
def test_the_animations_from_the_command_line(surface_file, tmp_path, kind):
    from PIL import Image

    out = tmp_path / f"{kind}.gif"
    r = CliRunner().invoke(main, ["plot", str(surface_file), "--kind", kind, "--out", str(out), "--fps", "4"])
    assert r.exit_code == 0, r.output
    with Image.open(out) as im:
        assert im.n_frames == 3  # one per T


@pytest.mark.parametrize("args,message", [
    (["--kind", "interactive", "--symlog", "--out", "x.html"], "draws a linear or log scale, not symlog"),
    (["--kind", "animation", "--out", "x.png"], "writes .gif or .mp4, not 'x.png'"),
    (["--kind", "interactive", "--out", "x.gif"], "writes .html or .htm"),
    (["--kind", "animation", "--at", "w=5", "--out", "x.gif"], "--at applies to slices and gradnorm"),
    (["--kind", "animation-3d", "--folds", "--out", "x.gif"], "--folds and --basin draw on 2-D"),
    (["--kind", "contour", "--out", "x.html"], "a .html file is written by --kind interactive"),
])
def test_bad_options_are_one_line(surface_file, tmp_path, args, message):
    args = [a if not a.startswith("x.") else str(tmp_path / a) for a in args]
    r = CliRunner().invoke(main, ["plot", str(surface_file), *args])
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1 and message in r.output, r.output


def test_mp4_needs_ffmpeg(surface_file, tmp_path):
    out = tmp_path / "a.mp4"
    r = CliRunner().invoke(main, ["plot", str(surface_file), "--kind", "animation", "--out", str(out)])
    if shutil.which("ffmpeg"):
        assert r.exit_code == 0 and out.stat().st_size > 1000, r.output
    else:
        assert r.exit_code == 2 and "ffmpeg" in r.output
