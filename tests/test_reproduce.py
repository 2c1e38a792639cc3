"""`landscape reproduce`: every registered reproduction runs end to end in --quick mode (what CI
runs), writes readable data and a PDF + PNG of every figure, and the command's errors are one line."""
from __future__ import annotations

import click
import h5py
import numpy as np
import pytest
from click.testing import CliRunner

import landscape
from landscape.analyses import analyses
from landscape.cli import Group
from landscape.cli import reproduce

KNOWN = ("pascanu-fig6", "pascanu-fig3", "cliff-formation", "compare-cells", "asker-wall", "guessing", "lstm-terms",
         "relay-readings", "latching", "relay", "ablations", "bengio-fig2", "trained-relay",
         "pascanu-fig6-trajectories")  # found by the registry's discovery (a new one needs no entry)
SLOW = {  # marked slow (CI runs them; `make test-fast` does not): CPU seconds of --quick here, and why
    "cliff-formation": "12 s: 27 files, most of it drawing four nine-panel figures and an animation",
    "trained-relay": "7 s: tests/test_trained_relay.py runs the same --quick run in the quick suite",
    "latching": "4 s: tests/test_train_analyses.py runs it end to end, smaller, in the quick suite",
}


def cli():
    @click.group(cls=Group)
    def group():
        pass

    group.add_command(reproduce.command)
    return group


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LANDSCAPE_CACHE", str(tmp_path / "cache"))


def test_the_reproductions_are_registered():
    table = analyses()
    assert set(KNOWN) <= set(table) and set(SLOW) <= set(table)
    for name, module in table.items():
        assert module.NAME == name and module.DESCRIPTION and callable(module.run)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in analyses()])
def test_reproduction_runs_in_quick_mode(name, tmp_path):
    """Every registered reproduction, through the command: it says what it wrote, wrote exactly
    that, every figure as PDF and PNG, and every HDF5 file is a landscape file (surfaces complete)."""
    out = tmp_path / name
    r = CliRunner().invoke(cli(), ["reproduce", name, "--quick", "--out", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    assert f"{name}: wrote" in r.output
    written = {line.split("wrote ", 1)[1].split("/")[-1] for line in r.output.splitlines()
               if line.strip().startswith("wrote ")}
    assert written and written == {p.name for p in out.iterdir()}, (written, sorted(out.iterdir()))
    pngs = sorted(out.glob("*.png"))
    assert pngs and {p.stem for p in pngs} == {p.stem for p in out.glob("*.pdf")}  # every figure twice
    for png in pngs:
        assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 2000
    for path in out.glob("*.h5"):
        with h5py.File(path, "r") as fh:
            kind = fh.attrs["format"]
        assert kind.startswith("landscape-"), (path.name, kind)
        if kind == "landscape-surface":
            s = landscape.load(path)
            assert s.complete and np.isfinite(s.loss).any()


def test_a_file_of_another_spec_in_the_same_folder_is_recomputed(tmp_path):
    """A reproduction owns its folder: a file there from another spec (a --quick run before a full
    one, or another T list) is replaced, not an error; the same spec is then read back."""
    from dataclasses import replace

    from landscape.analyses import pascanu_fig6
    from landscape.analyses.common import grid_at

    path = tmp_path / "fig6-surface.h5"
    quick = pascanu_fig6.spec(quick=True)
    grid_at(quick, path)
    full = pascanu_fig6.spec(quick=False)
    assert full != quick and full.x.num > quick.x.num  # the full run's grid is finer
    other = replace(full, x=replace(full.x, num=quick.x.num + 2), y=replace(full.y, num=quick.y.num + 1),
                    T=(5, 50))  # another spec, small enough for CI
    result = grid_at(other, path)
    assert not result.cached and list(result.surface.T) == [5, 50]
    assert result.surface.loss.shape == (2, quick.x.num + 2, quick.y.num + 1)
    assert grid_at(other, path).cached


def test_pascanu_fig6_finds_the_wall_on_the_basin_boundary(tmp_path, capsys):
    """The wall of Fig. 6 at w = 5 lies where x0 = 0.5 is the unstable fixed point:
    b = 0.5 - 5 sigmoid(0.5) = -2.612, between the folds; plateau ~0.4, valley ~0."""
    from landscape.analyses import pascanu_fig6
    from landscape.analyses.common import grid_at

    s = grid_at(pascanu_fig6.spec(quick=True), tmp_path / "s.h5").surface
    wall = pascanu_fig6.wall(s, 0)
    assert wall["b"] == pytest.approx(0.5 - 5 / (1 + np.exp(-0.5)), abs=wall["b_step"])
    assert wall["step"] > 0.25 and 0.3 < wall["low_side"] < 0.4 and wall["high_side"] < 0.05


def test_list_default_folder_and_bad_names(tmp_path, monkeypatch):
    runner = CliRunner()
    r = runner.invoke(cli(), ["reproduce", "--list"])
    assert r.exit_code == 0 and all(name in r.output for name in analyses())
    r = runner.invoke(cli(), ["reproduce", "fig99"])
    assert r.exit_code == 2 and r.output.strip().splitlines() == [
        f"error: unknown reproduction 'fig99'; choose from: {', '.join(analyses())}"]
    r = runner.invoke(cli(), ["reproduce"])
    assert r.exit_code == 2 and "name a reproduction" in r.output
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(cli(), ["reproduce", "pascanu-fig3", "--quick"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "out" / "pascanu-fig3" / "fig3-bifurcation.pdf").exists()


def test_exact_flag_errors_and_is_passed_on(tmp_path, monkeypatch):
    runner = CliRunner()
    r = runner.invoke(cli(), ["reproduce", "pascanu-fig3", "--exact", "--out", str(tmp_path / "f3")])
    with_exact = ", ".join(k for k, m in analyses().items() if "exact" in __import__("inspect").signature(m.run).parameters)
    assert "relay" in with_exact and "latching" in with_exact
    assert r.exit_code == 2 and r.output.strip().splitlines() == [
        f"error: pascanu-fig3 has a single size; --exact applies to: {with_exact}"]
    r = runner.invoke(cli(), ["reproduce", "latching", "--exact", "--quick", "--out", str(tmp_path / "l")])
    assert r.exit_code == 2 and "choose --quick or --exact, not both" in r.output
    assert not (tmp_path / "f3").exists() and not (tmp_path / "l").exists()
    seen = {}
    module = analyses()["relay"]
    monkeypatch.setattr(module, "run", lambda out, quick=False, device="auto", progress=None, exact=None:
                        seen.update(exact=exact) or [])
    r = runner.invoke(cli(), ["reproduce", "relay", "--exact", "--out", str(tmp_path / "r")])
    assert r.exit_code == 0 and seen == {"exact": True}


def test_the_askers_wall_matches_the_notebook(tmp_path):
    """docs/reference.md §11: at w = 5 the loss (x_T - 1)^2 jumps by about 6.8 between b = -2.505 and
    -2.500 from T = 35 on, with no b below about 0.62, where for T <= 10 some b reaches about 0."""
    from landscape.analyses import asker_wall
    from landscape.analyses.common import grid_at

    rows = {r["T"]: r for r in asker_wall.summary(grid_at(asker_wall.spec(quick=True), tmp_path / "a.h5").surface)}
    for T in (35, 50):
        assert rows[T]["largest_jump"] == pytest.approx(6.8, abs=0.05)
        assert (rows[T]["jump_from_b"], rows[T]["jump_to_b"]) == pytest.approx((-2.505, -2.500), abs=1e-9)
        assert rows[T]["min_loss"] == pytest.approx(0.62, abs=0.01)
    for T in (1, 5, 10):
        assert rows[T]["min_loss"] < 1e-3
    assert rows[50]["max_loss"] == pytest.approx(15.7, abs=0.05)
