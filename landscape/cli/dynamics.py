"""``landscape dynamics``: fixed points, folds, basin boundaries and bifurcation diagrams of the
one-unit srnn and pascanu maps, printed as tables (``--out FILE.csv`` also writes CSV)."""
from __future__ import annotations

import csv
import math

import click
import numpy as np

from ..cells import CELLS
from ..errors import LandscapeError

MAP_CELLS = ", ".join(name for name, cls in CELLS.builtins.items() if cls.one_unit_map is not None)

VALUES_HELP = "a number, a comma list (4,5,6) or a range MIN:MAX:NUM (linear, NUM points)"


MAX_VALUES = 10_000_000  # values of one range (80 MB)


def parse_values(text: str, option: str) -> np.ndarray:
    """'5' | '4,5,6' | '4:8:9' -> 1-D float array; LandscapeError naming the option otherwise."""
    usage = f"expected {VALUES_HELP}, e.g. -3.2:-1.8:29"
    text = text.strip()
    try:
        if ":" in text:
            parts = text.split(":")
            if len(parts) != 3:
                raise ValueError
            lo, hi, num = float(parts[0]), float(parts[1]), int(parts[2])
            if num < 1 or (num == 1 and lo != hi):
                raise LandscapeError(
                    f"bad range {text!r} for {option}: NUM must be >= 2 (or 1 with MIN = MAX)")
            if not (np.isfinite(lo) and np.isfinite(hi)):  # before linspace, which warns on them
                raise LandscapeError(f"bad value {text!r} for {option}: values must be finite numbers")
            if num > MAX_VALUES:
                raise LandscapeError(f"bad range {text!r} for {option}: NUM must be at most {MAX_VALUES}")
            values = np.linspace(lo, hi, num)
        else:
            values = np.array([float(v) for v in text.split(",")])
    except LandscapeError:
        raise
    except ValueError:
        raise LandscapeError(f"bad value {text!r} for {option}; {usage}") from None
    if values.size == 0 or not np.all(np.isfinite(values)):
        raise LandscapeError(f"bad value {text!r} for {option}: values must be finite numbers")
    return values


def _map(name: str):
    """The cell's one-unit map; LandscapeError naming the cells that have one otherwise."""
    from .. import dynamics

    return dynamics.one_unit_map(name)


def _fmt(v) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if not math.isfinite(v):
        return "-"
    return f"{v:.6f}" if abs(v) >= 5e-7 else "0.000000"  # no '-0.000000' from rounding noise


def _emit(title: str, header: list[str], rows: list[list], out: str | None) -> None:
    """Print an aligned table under a title line; also write CSV (full precision) to ``out``."""
    cells = [header] + [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(r[k]) for r in cells) for k in range(len(header))]
    click.echo(title)
    for r in cells:
        click.echo("  ".join(s.rjust(n) for s, n in zip(r, widths)))
    if out:
        try:
            with open(out, "w", newline="") as fh:
                writer = csv.writer(fh)
                writer.writerow(header)
                for row in rows:
                    writer.writerow([repr(float(v)) if isinstance(v, (float, np.floating)) else v
                                     for v in row])
        except OSError as err:
            raise LandscapeError(f"cannot write {out!r}: {err.strerror}") from None
        click.echo(f"wrote {out}")


CELL = click.option("--cell", required=True, metavar="CELL",
                    help=f"A cell with a one-unit map ({MAP_CELLS}; or FILE.py:Class): srnn is h -> "
                         f"tanh(w h + b + c), pascanu x -> w sigmoid(x) + b + c.")
C = click.option("--c", "c", default=0.0, show_default=True, type=float,
                 help="Constant input drive, added to the bias (u x for input weight u).")
OUT = click.option("--out", metavar="FILE.csv", default=None,
                   help="Also write the table to this CSV file (full precision).")


@click.group(name="dynamics")
def command():
    """Fixed points, folds, basins and bifurcation diagrams of the one-unit maps (srnn, pascanu)."""


@command.command("fixed-points")
@CELL
@click.option("--w", "w_text", required=True, metavar="VALUES", help=f"Recurrent weight w: {VALUES_HELP}.")
@click.option("--b", "b_text", required=True, metavar="VALUES", help=f"Bias b: {VALUES_HELP}.")
@C
@OUT
def fixed_points_command(cell, w_text, b_text, c, out):
    """All fixed points with their multiplier F'(x*) and stability (|F'| < 1), at each (w, b)."""
    from .. import dynamics

    m = _map(cell)
    ws, bs = parse_values(w_text, "--w"), parse_values(b_text, "--b")
    rows = []
    for w in ws:
        for b in bs:
            for p in dynamics.fixed_points(m, w, b, c):
                kind = "stable" if p.stable else ("fold" if abs(abs(p.multiplier) - 1) < 1e-9 else "unstable")
                row = [float(w), float(b), p.state]
                if m.output_name:
                    row.append(p.output)
                rows.append(row + [p.multiplier, kind, dynamics.BRANCHES[p.branch]])
    header = ["w", "b", m.state_name] + ([m.output_name] if m.output_name else []) + ["F'", "stability", "branch"]
    _emit(f"fixed points of {m.name} (c = {c:g})", header, rows, out)


@command.command("folds")
@CELL
@click.option("--w", "w_text", required=True, metavar="VALUES", help=f"Recurrent weight w: {VALUES_HELP}.")
@C
@OUT
def folds_command(cell, w_text, c, out):
    """The fold (saddle-node) points b2 < b1 at each w; two attractors coexist for b2 < b < b1."""
    from .. import dynamics

    m = _map(cell)
    ws = parse_values(w_text, "--w")
    f = dynamics.fold_points(m, ws, c)
    rows = [[float(w), float(b2), float(b1), float(s2), float(s1), float(b1 - b2)]
            for w, b2, b1, s2, s1 in zip(ws, f.b2, f.b1, f.state2, f.state1)]
    state = m.state_name
    header = ["w", "b2", "b1", f"{state} at b2", f"{state} at b1", "b1 - b2"]
    cusp = dynamics.fold_points(m, m.w_cusp, c)
    _emit(f"folds of {m.name} (c = {c:g}; none below the cusp w = {float(cusp.w):g}, b = {float(cusp.b1):g})",
          header, rows, out)


@command.command("bifurcation")
@CELL
@click.option("--w", "w_text", required=True, metavar="W", help="Recurrent weight w (one number).")
@click.option("--b", "b_text", required=True, metavar="VALUES", help=f"Biases b to scan: {VALUES_HELP}.")
@C
@OUT
def bifurcation_command(cell, w_text, b_text, c, out):
    """Fixed points against b at fixed w by branch (lower, middle, upper), S stable / U unstable."""
    from .. import dynamics

    m = _map(cell)
    ws = parse_values(w_text, "--w")
    if ws.size != 1:
        raise LandscapeError(f"bad value {w_text!r} for --w: bifurcation takes one w, e.g. --w 5")
    w = float(ws[0])
    d = dynamics.bifurcation_diagram(m, w, parse_values(b_text, "--b"), c)
    rows = []
    for k, b in enumerate(d.b):
        marks = " ".join("-" if not np.isfinite(d.fixed[k, j]) else ("S" if d.stable[k, j] else "U")
                         for j in range(3))
        row = [float(b), int(np.isfinite(d.fixed[k]).sum())] + [float(v) for v in d.fixed[k]]
        if m.output_name:
            row += [float(v) for v in d.output[k]]
        rows.append(row + [marks])
    header = ["b", "n"] + [f"{m.state_name} {n}" for n in dynamics.BRANCHES]
    if m.output_name:
        header += [f"{m.output_name.split('(')[0]} {n}" for n in dynamics.BRANCHES]
    header += ["stability"]
    title = f"bifurcation diagram of {m.name} at w = {w:g} (c = {c:g})"
    if np.isfinite(d.folds.b1):
        title += f"; folds b2 = {float(d.folds.b2):.6f}, b1 = {float(d.folds.b1):.6f}"
    _emit(title, header, rows, out)


@command.command("basin")
@CELL
@click.option("--x0", required=True, type=float,
              help="Initial state: h0 in (-1, 1) for srnn, the pre-activation x0 for pascanu.")
@click.option("--w", "w_text", required=True, metavar="VALUES", help=f"Recurrent weight w: {VALUES_HELP}.")
@C
@OUT
def basin_command(cell, x0, w_text, c, out):
    """The basin boundary of x0: the b at each w where x0 is the unstable fixed point ('-': none)."""
    from .. import dynamics

    m = _map(cell)
    bb = dynamics.basin_boundary(m, x0, parse_values(w_text, "--w"), c)
    rows = [[float(w), float(b), float(mult)] for w, b, mult in zip(bb.w, bb.b, bb.multiplier)]
    _emit(f"basin boundary of {m.name} from x0 = {x0:g} (c = {c:g}); above it x0 goes to the upper "
          "attractor", ["w", "b", "F'(x0)"], rows, out)
