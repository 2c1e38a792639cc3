"""What a new user trips over (issue 23, item 2): each test runs what the README shows."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run_script(tmp_path, source: str, timeout: float = 180) -> subprocess.CompletedProcess:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(source))
    env = {"PYTHONPATH": str(ROOT), "LANDSCAPE_CACHE": str(tmp_path / "cache"), "MPLBACKEND": "Agg",
           "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=timeout)


# --- the Dask snippet ---------------------------------------------------------------------------

SNIPPET = """
    import landscape, landscape.distributed
    {guard}
    {indent}with landscape.distributed.use("local:2"):
    {indent}    landscape.grid(cell="pascanu", task="target", x="w:4.5:5.5:5", y="b:-2.9:-1.9:5", T=(5,))
    {indent}print("done")
"""


def test_the_dask_snippet_without_its_guard_says_which_guard(tmp_path):
    pytest.importorskip("distributed")
    r = _run_script(tmp_path, SNIPPET.format(guard="", indent=""))
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert "Nanny failed to start" in last and 'if __name__ == "__main__":' in last, r.stderr
    # each worker that re-imported the script stopped with that one line, not a traceback of its own
    assert r.stderr.count("Traceback") == 1, r.stderr
    assert "8787" not in r.stderr


def test_the_readme_dask_snippet_runs_as_a_script_without_port_warnings(tmp_path):
    pytest.importorskip("distributed")
    r = _run_script(tmp_path, SNIPPET.format(guard='if __name__ == "__main__":', indent="    "))
    assert r.returncode == 0 and r.stdout.strip().endswith("done"), r.stderr
    assert "8787" not in r.stderr and "Warning" not in r.stderr, r.stderr


def test_the_readme_shows_the_guard():
    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index('with landscape.distributed.use("local:4")') - 200:]
    assert 'if __name__ == "__main__":' in block[:400]


# --- progress where no bar is drawn -------------------------------------------------------------

def test_a_grid_outside_a_terminal_prints_progress_lines_with_the_time_left(tmp_path, monkeypatch, capsys):
    import landscape
    from landscape import progress

    monkeypatch.setattr(progress, "EVERY_S", 0.0)  # a line after every chunk
    landscape.grid(cell="pascanu", task="target", x="w:4.5:5.5:8", y="b:-2.9:-1.9:5", T=(5,), chunk_size=10,
                   out=tmp_path / "g.h5")
    lines = [s for s in capsys.readouterr().err.splitlines() if "chunks" in s]
    # 40 points in 4 chunks: a line after chunks 1, 2, 3 (the last one ends the run: no line)
    assert [s.split(": ")[1].split(" (")[0] for s in lines] == ["1 of 4 chunks", "2 of 4 chunks", "3 of 4 chunks"]
    assert all(s.startswith("pascanu target: ") and s.endswith(" left") and "about " in s for s in lines)


def test_quiet_means_no_progress_lines(tmp_path, monkeypatch, capsys):
    import landscape
    from landscape import progress

    monkeypatch.setattr(progress, "EVERY_S", 0.0)
    landscape.grid(cell="pascanu", task="target", x="w:4.5:5.5:8", y="b:-2.9:-1.9:5", T=(5,), chunk_size=10,
                   out=tmp_path / "g.h5", progress=False)
    assert "chunks" not in capsys.readouterr().err


def test_the_time_left_is_the_measured_rate(monkeypatch):
    from landscape import progress

    clock = iter([100.0, 110.0, 160.0])  # start; 10 s for the first unit; 60 s for two of eight
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(progress, "EVERY_S", 5.0)
    import io

    out = io.StringIO()
    lines = progress.Lines(8, "chunks", "x", True, stream=out)
    lines.update()  # 10 s for 1 of 8: 70 s left
    lines.update()  # 60 s for 2 of 8: 180 s left
    assert out.getvalue().splitlines() == ["x: 1 of 8 chunks (12 %), 10 s so far, about 1 min 10 s left",
                                           "x: 2 of 8 chunks (25 %), 1 min 0 s so far, about 3 min 0 s left"]


def test_a_long_grid_is_announced_with_its_estimate(tmp_path, monkeypatch, capsys):
    """--grads on an 81 x 81 srnn grid at T = 50 (1000 sequences): over a minute by the cost model,
    so one line says so before the first chunk; the run itself is cut short after that line."""
    import landscape
    from landscape import progress, surface

    expected = progress.grid_estimate("srnn", 81 * 81, 1000, 50, grads=True)
    assert expected == pytest.approx(81 * 81 * 1000 * 50 * 6e-9 * 40)

    class Stop(Exception):
        pass

    def stop(*args, **kwargs):
        raise Stop

    monkeypatch.setattr(surface, "compute_chunk", stop)
    with pytest.raises(Stop):
        landscape.grid(cell="srnn", x="w:-1:3:81", y="b:-1.5:1.5:81", T=(50,), grads=True, out=tmp_path / "g.h5")
    err = capsys.readouterr().err
    assert f"srnn latch: 6561 points x 1000 sequences x 50 steps with --grads may take about " \
           f"{progress.duration(expected)} on one CPU thread" in err


def test_training_outside_a_terminal_prints_progress_lines(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from landscape import progress
    from landscape.cli import main

    monkeypatch.setattr(progress, "EVERY_S", 0.0)
    r = CliRunner().invoke(main, ["train", "--cell", "srnn", "--T", "4,6,8", "--repeats", "2", "--n", "64",
                                  "--epochs", "3", "--out", str(tmp_path / "runs.csv")])
    assert r.exit_code == 0, r.output
    lines = [s for s in r.output.splitlines() if s.startswith("training: ")]
    # one population of 6 models trained for 3 epochs: a line after the first and the second epoch
    assert [s.split(" (")[0] for s in lines] == ["training: 1 of 3 epochs", "training: 2 of 3 epochs"], r.output


# --- parameter names as mathematics -------------------------------------------------------------

@pytest.mark.parametrize("name, shown", [
    ("w", "$w$"), ("b_z", "$b_{z}$"), ("w_hh[0,1]", "$w_{hh}[0,1]$"), ("b_f[2]", "$b_{f}[2]$"),
    ("alpha", "$\\alpha$"), ("w_alpha", "$w_{\\alpha}$"), ("out_w", "$\\mathrm{out}_{w}$"),
    ("block_b", "$\\mathrm{block}_{b}$"),
    ("a$b", "a$b"), ("w[", "w["), ("x\\y", "x\\y"), ("50%", "50%"),  # another shape: as it is
])
def test_param_label(name, shown):
    from landscape.figures.labels import param_label

    assert param_label(name) == shown


def test_every_param_label_renders():
    """Each label of a built-in cell's parameters parses as mathtext (a bad one raises on drawing)."""
    from matplotlib.mathtext import MathTextParser

    from landscape.cells import get_cell
    from landscape.figures.labels import param_label

    parser = MathTextParser("agg")
    for cell in ("srnn", "pascanu", "lstm", "gru"):
        for name in get_cell(cell).param_shapes(1, 1):
            for index in ("", "[0,0]"):
                label = param_label(name + index)
                assert label.startswith("$") and parser.parse(label, dpi=72), label


# --- the commands -------------------------------------------------------------------------------

SMALL = ["--cell", "pascanu", "--task", "target", "--x", "w:4.5:5.5:9", "--y", "b:-2.9:-1.9:7", "--T", "2,5", "-q"]


@pytest.fixture
def cli(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from landscape.cli import main

    monkeypatch.setenv("LANDSCAPE_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)

    def invoke(*args):
        return CliRunner().invoke(main, [str(a) for a in args])
    return invoke


def test_plot_takes_the_key_that_cache_ls_prints(cli, tmp_path):
    assert cli("grid", *SMALL).exit_code == 0
    key = cli("cache", "ls").output.splitlines()[1].split()[0]
    for ref in (key, key[:6]):
        r = cli("plot", ref, "--out", tmp_path / f"{ref}.png")
        assert r.exit_code == 0 and (tmp_path / f"{ref}.png").stat().st_size > 0, r.output
    r = cli("plot", "0" * 16, "--out", tmp_path / "none.png")
    assert r.exit_code != 0 and r.output.count("\n") == 1 and "no cached surface matches" in r.output


def test_grid_plots_in_the_same_command(cli, tmp_path):
    r = cli("grid", *SMALL, "--plot", "panels", "--plot-out", tmp_path / "p.pdf")
    assert r.exit_code == 0 and (tmp_path / "p.pdf").read_bytes().startswith(b"%PDF"), r.output
    r = cli("grid", *SMALL, "--plot", "contour")  # default name: NAME-KEY-contour.png here
    (default,) = tmp_path.glob("pascanu-target-*-contour.png")
    assert r.exit_code == 0 and f"wrote {default.name}" in r.output


@pytest.mark.parametrize("args, message", [
    (["--out", "x.png"], "--out x.png is the surface's HDF5 file: end it in .h5"),
    (["--plot", "bogus"], "unknown kind 'bogus'"),
    (["--plot", "contour", "--plot-out", "x.jpg"], "cannot tell the figure format of 'x.jpg'"),
    (["--plot-out", "x.png"], "--plot-out needs --plot KIND"),
])
def test_grid_refuses_bad_outputs_before_computing(cli, tmp_path, args, message):
    r = cli("grid", *SMALL, *args)
    assert r.exit_code == 2 and r.output.count("\n") == 1 and message in r.output, r.output
    assert not (tmp_path / "cache").exists() and not list(tmp_path.glob("x.*"))  # nothing computed or written


def test_the_interactive_page_opens_at_the_largest_T_or_show_T(cli, tmp_path):
    pytest.importorskip("plotly")
    import json
    import re

    assert cli("grid", *SMALL).exit_code == 0
    key = cli("cache", "ls").output.splitlines()[1].split()[0]

    def start(*extra):
        r = cli("plot", key, "--kind", "interactive", "--out", tmp_path / "p.html", *extra)
        assert r.exit_code == 0, r.output
        payload = re.search(r"id='landscape-data'>(.*?)</script>", (tmp_path / "p.html").read_text(), re.S)
        data = json.loads(payload.group(1))
        return data["T"][data["start"]]
    assert start() == 5 and start("--show-T", "2") == 2
    r = cli("plot", key, "--kind", "contour", "--out", tmp_path / "c.png", "--show-T", "2")
    assert r.exit_code == 2 and "--show-T applies to --kind interactive" in r.output


def test_cache_ls_aligns_a_cell_given_as_a_file(cli):
    mgu = ROOT / "examples" / "cells" / "mgu.py"
    assert cli("grid", *SMALL).exit_code == 0
    r = cli("grid", "--cell", f"{mgu}:MGU", "--x", "w_f:-1:1:3", "--y", "b_f:-1:1:3", "--T", "2", "-q")
    assert r.exit_code == 0, r.output
    out = cli("cache", "ls").output.splitlines()
    assert out[0].endswith("(2 surfaces)")
    rows = out[1:]
    assert len(rows) == 2 and len({row.index(" T=") for row in rows}) == 1, out  # T= starts one column
    assert len({row.index(" MB") for row in rows}) == 1, out


def test_plot_and_reproduce_offer_every_style(cli):
    from landscape.figures.style import STYLES

    for command in ("plot", "reproduce"):
        help_text = " ".join(cli(command, "--help").output.split())
        assert " | ".join(STYLES) in help_text, help_text


def test_reproduce_style_reaches_the_figures_drawn_in_paper():
    import matplotlib as mpl

    from landscape.figures.style import paper_is, use_style

    with paper_is("paper-serif"), use_style("paper"):
        assert mpl.rcParams["font.family"] == ["serif"] and mpl.rcParams["font.size"] == 7
    with paper_is("talk"), use_style("paper"):
        assert mpl.rcParams["font.size"] == 12
    with use_style("paper"):  # outside the block: paper again
        assert mpl.rcParams["font.family"] == ["sans-serif"]


def test_a_training_run_opens_in_xarray_as_docs_format_shows(cli, tmp_path):
    xr = pytest.importorskip("xarray")
    pytest.importorskip("h5netcdf")
    r = cli("train", "--cell", "srnn", "--T", "4", "--repeats", "2", "--n", "64", "--epochs", "2", "--out",
            tmp_path / "run.h5", "-q")
    assert r.exit_code == 0, r.output
    assert "group=\"runs/gru-T10/metrics\"" in (ROOT / "docs" / "format.md").read_text()
    with xr.open_dataset(tmp_path / "run.h5", engine="h5netcdf") as root:
        assert not root.data_vars  # the root is empty: the docs say to name a group
    with xr.open_dataset(tmp_path / "run.h5", engine="h5netcdf", group="runs/srnn-T4/metrics") as m:
        assert m["train_loss"].dims == ("epoch", "member") and m["train_loss"].shape == (3, 2)
    tree = xr.open_datatree(tmp_path / "run.h5", engine="h5netcdf")
    assert list(tree["runs"].children) == ["srnn-T4"]
    tree.close()
