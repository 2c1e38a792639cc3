"""landscape.dynamics against independent truths: the maps written out here, finite differences,
closed-form folds, brute-force iteration, and a per-point loop for the vectorised grid."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from landscape import dynamics as dyn
from landscape.errors import LandscapeError


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# the maps and their slopes, written independently of the module
def F(cell, x, w, b, c=0.0):
    return np.tanh(w * x + b + c) if cell == "srnn" else w * sigmoid(x) + b + c


def dF(cell, x, w, b, c=0.0):
    if cell == "srnn":
        return w * (1.0 - np.tanh(w * x + b + c) ** 2)
    return w * sigmoid(x) * (1.0 - sigmoid(x))


CASES = [  # (cell, w, b) including saturated, negative-w and zero-w maps
    ("pascanu", 5.0, -2.4), ("pascanu", 5.0, -3.0), ("pascanu", 5.0, -2.0), ("pascanu", 4.5, -2.25),
    ("pascanu", 8.0, -4.0), ("pascanu", 30.0, -15.0), ("pascanu", -6.0, 3.0), ("pascanu", 0.0, 1.3),
    ("pascanu", 3.0, -1.0), ("pascanu", 50.0, -10.0),
    ("srnn", 2.0, 0.0), ("srnn", 2.0, 0.3), ("srnn", 0.5, 1.0), ("srnn", 25.0, 3.0),
    ("srnn", -3.0, 0.4), ("srnn", 0.0, -0.7), ("srnn", 1.5, -0.2), ("srnn", 4.0, 2.0),
]


@pytest.mark.parametrize("cell,w,b", CASES)
def test_fixed_points_satisfy_the_map(cell, w, b):
    pts = dyn.fixed_points(cell, w, b)
    assert 1 <= len(pts) <= 3
    states = [p.state for p in pts]
    assert states == sorted(states)
    for p in pts:
        assert abs(F(cell, p.state, w, b) - p.state) < 1e-10
        assert p.multiplier == pytest.approx(dF(cell, p.state, w, b), abs=1e-9)
        h = 1e-6  # the multiplier as a central finite difference of the map
        fd = (F(cell, p.state + h, w, b) - F(cell, p.state - h, w, b)) / (2 * h)
        assert p.multiplier == pytest.approx(fd, abs=1e-6)
        assert p.stable == (abs(p.multiplier) < 1)
        assert p.output == pytest.approx(p.state if cell == "srnn" else sigmoid(p.state), abs=1e-15)


@pytest.mark.parametrize("cell,w,b", CASES)
def test_fixed_points_match_a_brute_force_scan(cell, w, b):
    """Independent count: sign changes of F(x) - x on a very fine grid (no fold nearby here)."""
    if cell == "srnn":
        x = np.unique(np.tanh(np.linspace(-40, 40, 400001)))  # saturates to +-1 exactly
    else:
        x = np.linspace(b + min(w, 0) - 1, b + max(w, 0) + 1, 400001)
    g = F(cell, x, w, b) - x
    expected = np.count_nonzero(np.sign(g[:-1]) * np.sign(g[1:]) < 0) + np.count_nonzero(g == 0)
    if w == 0.0:
        expected = 1
    assert len(dyn.fixed_points(cell, w, b)) == expected


def test_input_drive_adds_to_the_bias():
    a = dyn.fixed_points("pascanu", 5.0, -2.9, c=0.5)
    b = dyn.fixed_points("pascanu", 5.0, -2.4)
    assert [p.state for p in a] == pytest.approx([p.state for p in b], abs=1e-12)
    assert float(dyn.fold_points("srnn", 2.0, c=0.25).b1) == pytest.approx(
        float(dyn.fold_points("srnn", 2.0).b1) - 0.25, abs=1e-14)


def test_pascanu_fold_points_at_w5():
    f = dyn.fold_points("pascanu", 5.0)
    b1, b2 = float(f.b1), float(f.b2)
    assert b2 < b1
    # independent closed form: sigmoid(x)(1 - sigmoid(x)) = 1/5 -> sigmoid = (1 -+ sqrt(1/5)) / 2
    for s, b in (((1 - np.sqrt(0.2)) / 2, b1), ((1 + np.sqrt(0.2)) / 2, b2)):
        x = np.log(s / (1 - s))
        assert b == pytest.approx(x - 5 * s, abs=1e-12)
    assert b1 == pytest.approx(-2.344390, abs=1e-6) and b2 == pytest.approx(-2.655610, abs=1e-6)
    for b, x in ((b1, float(f.state1)), (b2, float(f.state2))):
        assert abs(F("pascanu", x, 5.0, b) - x) < 1e-10
        assert abs(abs(dF("pascanu", x, 5.0, b)) - 1) < 1e-10


@pytest.mark.parametrize("cell,w", [("pascanu", 4.2), ("pascanu", 5.0), ("pascanu", 7.0),
                                    ("pascanu", 20.0), ("srnn", 1.1), ("srnn", 2.0), ("srnn", 6.0)])
@pytest.mark.parametrize("c", [0.0, 0.3])
def test_count_changes_exactly_across_the_folds(cell, w, c):
    f = dyn.fold_points(cell, w, c)
    b1, b2 = float(f.b1), float(f.b2)
    eps = 1e-6
    counts = {b: len(dyn.fixed_points(cell, w, b, c)) for b in
              (b2 - eps, b2 + eps, b1 - eps, b1 + eps)}
    assert counts == {b2 - eps: 1, b2 + eps: 3, b1 - eps: 3, b1 + eps: 1}
    grid = dyn.fixed_point_grid(cell, [w], list(counts), c)
    assert grid.n_fixed[0].tolist() == [1, 3, 3, 1]
    assert grid.n_stable[0].tolist() == [1, 2, 2, 1]
    # exactly at a fold the double root is found once, with |F'| = 1, and is not stable
    for b, x in ((b1, float(f.state1)), (b2, float(f.state2))):
        pts = dyn.fixed_points(cell, w, b, c)
        assert len(pts) == 2
        fold = min(pts, key=lambda p: abs(p.state - x))
        assert abs(fold.state - x) < 1e-9
        assert abs(abs(dF(cell, fold.state, w, b, c)) - 1) < 1e-10
        assert not fold.stable
        assert dyn.fixed_point_grid(cell, [w], [b], c).n_fixed[0, 0] == 2


@pytest.mark.parametrize("cell", dyn.DYNAMICS_CELLS)
@pytest.mark.parametrize("c", [0.0, -0.4])
def test_fold_curve_points_are_double_roots(cell, c):
    curve = dyn.fold_curve(cell, w_max=12.0, num=50, c=c)
    for branch in (curve.lower, curve.upper):
        assert branch.w.shape == branch.b.shape == branch.state.shape == (50,)
        for w, b, x in zip(branch.w, branch.b, branch.state):
            assert abs(F(cell, x, w, b, c) - x) < 1e-10  # a fixed point ...
            assert abs(dF(cell, x, w, b, c) - 1) < 1e-10  # ... with multiplier 1: a double root
    assert np.all(curve.lower.b >= curve.upper.b)  # b1 >= b2, meeting at the cusp
    assert curve.lower.b[0] == pytest.approx(curve.upper.b[0], abs=1e-12)


def test_fold_curve_matches_its_parametrisation_by_state():
    """srnn: w = 1/(1 - h^2), b = artanh(h) - w h - c;
    pascanu: w sigmoid'(x) = 1, b = x - w sigmoid(x) - c."""
    c = 0.2
    for h in (-0.9, -0.5, 0.3, 0.8):
        w = 1 / (1 - h * h)
        f = dyn.fold_points("srnn", w, c)
        b, state = (f.b2, f.state2) if h > 0 else (f.b1, f.state1)
        assert float(state) == pytest.approx(h, abs=1e-12)
        assert float(b) == pytest.approx(np.arctanh(h) - w * h - c, abs=1e-12)
    for x in (-3.0, -1.0, 0.5, 2.0):
        w = 1 / (sigmoid(x) * (1 - sigmoid(x)))
        f = dyn.fold_points("pascanu", w, c)
        b, state = (f.b2, f.state2) if x > 0 else (f.b1, f.state1)
        assert float(state) == pytest.approx(x, abs=1e-10)
        assert float(b) == pytest.approx(x - w * sigmoid(x) - c, abs=1e-10)


def test_no_folds_below_the_cusp():
    assert np.all(np.isnan(dyn.fold_points("pascanu", [3.9, 0.0, -5.0]).b1))
    assert np.all(np.isnan(dyn.fold_points("srnn", [0.99, -2.0]).b2))
    with pytest.raises(LandscapeError, match="cusp"):
        dyn.fold_curve("pascanu", w_max=3.0)


def test_srnn_below_w1_has_one_fixed_point():
    w = np.linspace(-3.0, 1.0, 41)
    b = np.linspace(-3.0, 3.0, 31)
    grid = dyn.fixed_point_grid("srnn", w, b)
    assert np.all(grid.n_fixed == 1)
    inside = np.abs(w) < 1  # |F'| = |w|(1 - h^2) < 1: stable
    assert np.all(grid.n_stable[inside] == 1)
    for wi in (0.0, 0.5, 0.999, 1.0):
        for bi in (-2.0, -0.1, 0.7):
            (p,) = dyn.fixed_points("srnn", wi, bi)
            assert p.stable
    (p,) = dyn.fixed_points("srnn", 1.0, 0.0)  # the cusp itself: h = 0 with F' = 1, marginal
    assert p.state == pytest.approx(0.0, abs=1e-12) and not p.stable


@pytest.mark.parametrize("cell", dyn.DYNAMICS_CELLS)
def test_grid_agrees_with_the_per_point_loop(cell):
    rng = np.random.default_rng(0)
    w = np.sort(rng.uniform(-6, 12, 13)) if cell == "pascanu" else np.sort(rng.uniform(-3, 5, 13))
    b = np.sort(rng.uniform(-7, 2, 11)) if cell == "pascanu" else np.sort(rng.uniform(-3, 3, 11))
    grid = dyn.fixed_point_grid(cell, w, b)
    assert grid.n_fixed.shape == (13, 11) and grid.stable_values.shape == (13, 11, 3)
    assert np.any(grid.n_fixed == 3) and np.any(grid.n_fixed == 1)
    for i, wi in enumerate(w):
        for j, bj in enumerate(b):
            pts = dyn.fixed_points(cell, wi, bj)
            assert grid.n_fixed[i, j] == len(pts)
            stable = [p.state for p in pts if p.stable]
            assert grid.n_stable[i, j] == len(stable)
            got = grid.stable_values[i, j]
            assert got[:len(stable)] == pytest.approx(stable, abs=1e-10)
            assert np.all(np.isnan(got[len(stable):]))
            for p in pts:
                assert grid.fixed[i, j, p.branch] == pytest.approx(p.state, abs=1e-10)


def test_grid_is_ij_indexed_on_a_non_square_grid():
    w, b = np.array([3.0, 5.0, 6.0]), np.array([-2.6, -2.0])  # folds at w = 6: -3.415, -2.585
    grid = dyn.fixed_point_grid("pascanu", w, b)
    assert grid.n_fixed.shape == (3, 2)
    assert grid.n_fixed.tolist() == [[1, 1], [3, 1], [3, 1]]


@pytest.mark.parametrize("cell,x0,ws", [("pascanu", 0.5, [4.6, 5.0, 5.5, 7.0]),
                                        ("pascanu", -0.8, [5.0, 6.0]),
                                        ("srnn", 0.3, [1.5, 2.0, 3.0]), ("srnn", -0.6, [3.0])])
def test_basin_boundary_separates_the_attractors(cell, x0, ws):
    bb = dyn.basin_boundary(cell, x0, ws)
    assert np.all(np.isfinite(bb.b))
    for w, b in zip(ws, bb.b):
        (mid,) = [p for p in dyn.fixed_points(cell, w, b) if p.branch == 1]
        assert mid.state == pytest.approx(x0, abs=1e-9) and not mid.stable  # x0 is the saddle
        delta = 1e-4
        below, above = dyn.attractor_reached(cell, x0, [w], [b - delta, b + delta])[0]
        low = [p.state for p in dyn.fixed_points(cell, w, b - delta) if p.stable]
        high = [p.state for p in dyn.fixed_points(cell, w, b + delta) if p.stable]
        assert len(low) == len(high) == 2
        assert below == pytest.approx(low[0], abs=1e-8)  # lower attractor just below the curve
        assert above == pytest.approx(high[1], abs=1e-8)  # upper attractor just above


def test_basin_boundary_over_a_grid():
    """Iterate a whole (w, b) grid from x0 = 0.5: in the bistable region the upper attractor is
    reached exactly above the boundary curve."""
    w = np.linspace(4.6, 6.0, 15)
    b = np.linspace(-3.4, -1.8, 161)
    final = dyn.attractor_reached("pascanu", 0.5, w, b, steps=1500)  # (nw, nb)
    grid = dyn.fixed_point_grid("pascanu", w, b)
    boundary = dyn.basin_boundary("pascanu", 0.5, w).b[:, None]  # (nw, 1)
    bistable = grid.n_stable == 2
    assert bistable.sum() > 100
    upper = np.abs(final - grid.stable_values[..., 1]) < 1e-6
    lower = np.abs(final - grid.stable_values[..., 0]) < 1e-6
    assert np.all(upper | lower | ~bistable)
    clear = bistable & (np.abs(b[None, :] - boundary) > 1e-9)
    above_curve = np.broadcast_to(b[None, :] > boundary, final.shape)
    assert np.array_equal(upper[clear], above_curve[clear])


def test_basin_boundary_absent_where_x0_cannot_be_a_saddle():
    bb = dyn.basin_boundary("pascanu", 0.5, [3.0, 4.0, 4.3, 5.0])
    # 4 sigmoid'(0.5) = 0.94 < 1 and 4.3 sigmoid'(0.5) = 1.0105 > 1
    assert np.isnan(bb.b[:2]).all() and np.isfinite(bb.b[2:]).all()
    with pytest.raises(LandscapeError, match=r"\(-1, 1\)"):
        dyn.basin_boundary("srnn", 1.0, [2.0])


def test_bifurcation_diagram_pascanu_fig3():
    b = np.linspace(-3.2, -1.8, 281)
    d = dyn.bifurcation_diagram("pascanu", 5.0, b)
    b1, b2 = float(d.folds.b1), float(d.folds.b2)
    assert d.fixed.shape == d.output.shape == d.stable.shape == (281, 3)
    bistable = (b > b2) & (b < b1)
    assert bistable.any() and (~bistable).any()
    assert np.array_equal(d.n_stable == 2, bistable)  # two attractors coexist exactly there
    assert np.array_equal(np.isfinite(d.attractors[:, 0]), b < b1)  # lower attractor until b1
    assert np.array_equal(np.isfinite(d.attractors[:, 2]), b > b2)  # upper attractor from b2
    assert np.array_equal(np.isfinite(d.unstable[:, 1]), bistable)  # the dashed branch
    assert np.isnan(d.attractors[:, 1]).all() and np.isnan(d.unstable[:, [0, 2]]).all()
    ok = np.isfinite(d.fixed)
    assert d.output[ok] == pytest.approx(sigmoid(d.fixed[ok]), abs=1e-15)
    assert np.all((d.output[ok] > 0) & (d.output[ok] < 1))
    # branches are ordered and continuous; the unstable branch falls with b, attractors rise
    assert np.all(d.attractors_output[bistable, 0] < d.unstable_output[bistable, 1])
    assert np.all(d.unstable_output[bistable, 1] < d.attractors_output[bistable, 2])
    assert np.all(np.diff(d.unstable[bistable, 1]) < 0)
    for k in (0, 2):
        v = d.attractors[:, k]
        assert np.all(np.diff(v[np.isfinite(v)]) > 0)
    for k in (0, 60, 140, 200, 280):  # against the careful per-point solver
        pts = dyn.fixed_points("pascanu", 5.0, b[k])
        assert [d.fixed[k, p.branch] for p in pts] == pytest.approx([p.state for p in pts], abs=1e-10)


def test_bifurcation_diagram_srnn_without_folds():
    d = dyn.bifurcation_diagram("srnn", 0.8, np.linspace(-1, 1, 21))
    assert np.isfinite(d.fixed[:, 0]).all() and np.isnan(d.fixed[:, 1:]).all()
    assert d.stable[:, 0].all() and np.isnan(d.folds.b1)


def test_unknown_cell_names_the_choices():
    with pytest.raises(LandscapeError, match="choose from: srnn, pascanu"):
        dyn.fixed_points("lstm", 1.0, 0.0)
    with pytest.raises(LandscapeError, match="choose from: srnn, pascanu"):
        dyn.fold_points("gru", 5.0)


# ---------------------------------------------------------------------------------------------
# the CLI command


@pytest.fixture
def cli():
    from click.testing import CliRunner

    from landscape.cli.dynamics import command

    runner = CliRunner()
    return lambda *args: runner.invoke(command, list(args))


def test_cli_folds(cli):
    res = cli("folds", "--cell", "pascanu", "--w", "5")
    assert res.exit_code == 0, res.output
    assert "-2.655610" in res.output and "-2.344390" in res.output


def test_cli_fixed_points(cli):
    res = cli("fixed-points", "--cell", "pascanu", "--w", "5", "--b", "-2.4")
    assert res.exit_code == 0, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 2 + 3
    assert [ln.split()[-2] for ln in lines[2:]] == ["stable", "unstable", "stable"]


def test_cli_bifurcation_writes_csv(cli, tmp_path):
    out = tmp_path / "fig3.csv"
    res = cli("bifurcation", "--cell", "pascanu", "--w", "5", "--b", "-3.2:-1.8:29", "--out", str(out))
    assert res.exit_code == 0, res.output
    assert "b2 = -2.655610, b1 = -2.344390" in res.output
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 29
    assert float(rows[0]["b"]) == pytest.approx(-3.2) and float(rows[-1]["b"]) == pytest.approx(-1.8)
    assert rows[14]["stability"] == "S U S" and rows[0]["stability"] == "S - -"


def test_cli_basin(cli):
    res = cli("basin", "--cell", "srnn", "--x0", "0.3", "--w", "0.5,2")
    assert res.exit_code == 0, res.output
    assert f"{np.arctanh(0.3) - 0.6:.6f}" in res.output


def test_cli_every_option_has_help(cli):
    from landscape.cli.dynamics import command

    assert command.name == "dynamics"
    assert set(command.commands) == {"fixed-points", "folds", "bifurcation", "basin"}
    for sub in command.commands.values():
        for param in sub.params:
            assert param.help, f"{sub.name} {param.name} has no help"
        assert cli(sub.name, "--help").exit_code == 0


@pytest.mark.parametrize("args,message", [
    (("folds", "--cell", "lstm", "--w", "5"), "choose from: srnn, pascanu"),
    (("bifurcation", "--cell", "pascanu", "--w", "5", "--b", "-3.2:-1.8"), "MIN:MAX:NUM"),
    (("bifurcation", "--cell", "pascanu", "--w", "5", "--b", "a:b:3"), "--b"),
    (("fixed-points", "--cell", "srnn", "--w", "2", "--b", "0:1:0"), "NUM"),
    (("bifurcation", "--cell", "pascanu", "--w", "4,5", "--b", "0"), "one w"),
])
def test_cli_bad_input_is_a_landscape_error(cli, args, message):
    res = cli(*args)
    assert isinstance(res.exception, LandscapeError)
    assert message in str(res.exception) and "\n" not in str(res.exception)
