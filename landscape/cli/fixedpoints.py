"""`landscape fixedpoints`: the fixed points of a model under constant inputs, as a table, a file
and a figure. The computing is ``landscape.attractors``, the figure ``landscape.figures.fixedpoints``.
"""
from __future__ import annotations

import math

import click
import numpy as np

from ..errors import LandscapeError
from .options import model_options, threads_option

from ..attractors import (DEFAULT_STARTS, KIND_LABELS, FIGURE_SUFFIXES, FILE_SUFFIXES, FixedPointRun, check_output,
                          compute_fixed_points, counts, describe_model, resolve_fixed_point_model, search_options,
                          signed, stability, write_fixed_points)


def parse_inputs(text: str | None, D: int) -> np.ndarray | None:
    """'-1,0,1' -> array([-1., 0., 1.]); None -> [0.] for a cell with input, None without one."""
    if text is None:
        return np.zeros(1) if D > 0 else None
    if D == 0:
        raise LandscapeError(f"--input {text}: this model has no input (input size 0); drop --input")
    items = [s.strip() for s in str(text).split(",")]
    if not any(items):
        raise LandscapeError("--input is empty; give numbers separated by commas, e.g. --input=-1,0,1")
    values = []
    for item in items:
        try:
            v = float(item)
        except ValueError:
            raise LandscapeError(f"--input {text}: {item!r} is not a number; give numbers separated by "
                                 f"commas, e.g. --input=-1,0,1") from None
        if not math.isfinite(v):
            raise LandscapeError(f"--input {text}: {item!r} is not finite; give finite numbers")
        values.append(v)
    if len(set(values)) != len(values):
        raise LandscapeError(f"--input {text}: a value is given twice; give each input once")
    return np.asarray(values, dtype=float)


@click.command("fixedpoints")
@model_options(set_help="Change one parameter of the model (repeatable): b=0.5, w[0,1]=0.5.")
@click.option("--base-model", metavar="FILE.pt|RUN.h5:GROUP[:REPEAT]",
              help="The trained model: a torch.nn.RNN/LSTM/GRU state_dict (optional Linear head) or a member of a "
                   "`landscape train --out RUN.h5` run; its cell, options and size are adopted. Default: the "
                   "cell's base point (--cell, --set).")
@click.option("--input", "input_", metavar="VALUE[,VALUE...]",
              help="Constant input values, one search each (every input component takes the value); write "
                   "negative values as --input=-1,0,1. Default: 0 (none for a cell without input).")
@click.option("--starts", default=DEFAULT_STARTS, show_default=True, type=int,
              help="Starts per input: half from states visited on the task's sequences, half random.")
@click.option("--T", "T", default=50, show_default=True, type=int, help="Length of those sequences.")
@click.option("--n", default=200, show_default=True, type=int, help="Number of those sequences.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the sequences and the starts.")
@click.option("--bound", type=float, help="Largest |state| a point may have (default: 4 x the largest |state| the "
              "sequences visit); points found at it are listed as 'at bound', never as fixed or slow points.")
@click.option("--steps", default=1000, show_default=True, type=int,
              help="Also run the map this many steps at each input from the visited starts and report where "
                   "they settle (fixed points, 2-cycles, unsettled); 0: do not.")
@click.option("--out", type=click.Path(dir_okay=False), help="Write the points: FILE.csv (one row per point) "
              "or FILE.h5 (arrays, with the complex eigenvalues and the sequences' states).")
@click.option("--plot", "plot", type=click.Path(dir_okay=False),
              help="Draw them in the PCA plane of the visited states, one panel per input: FIG.png|.pdf|.svg.")
@threads_option()
def command(model, base_model, input_, starts, T, n, seed, bound, steps, out, plot):
    """Fixed points of a (trained) model under constant inputs: residual, eigenvalue moduli, stability.

    \b
    landscape fixedpoints --base-model gru.pt --task relay --input=-1,0,1
    landscape fixedpoints --base-model run.h5:gru-T10:0 --task relay --input=-1,0,1 --out fp.h5 --plot fp.png
    landscape fixedpoints --cell srnn --task latch -H 2 --set w=2 --input=0
    """
    from ..spec import parse_T

    T = parse_T(int(T) if isinstance(T, int) else T)[0]
    out_path = check_output(out, FILE_SUFFIXES, "--out")
    plot_path = check_output(plot, FIGURE_SUFFIXES, "--plot")
    problem, _ = resolve_fixed_point_model(model, base_model)
    inputs = parse_inputs(input_, problem.D)
    options = search_options(starts, seed, bound)
    if steps < 0:
        raise LandscapeError(f"--steps must be >= 0 (0: no simulation), got {steps}")
    run = compute_fixed_points(problem, inputs, T, n, seed, options, source=base_model or "", steps=steps)
    _print_table(run)
    if out_path:
        click.echo(f"wrote {write_fixed_points(run, out_path)}")
    if plot_path:
        from ..figures import use_style
        from ..figures.style import save_figure

        from ..figures.fixedpoints import plot_fixed_point_panels

        with use_style("paper"):
            fig = plot_fixed_point_panels(run, title=describe_model(problem, base_model or ""))
            click.echo(f"wrote {save_figure(fig, plot_path)}")


def _print_table(run: FixedPointRun) -> None:
    res, stab = run.result, stability(run.result)
    opts = res.options
    click.echo(f"{describe_model(run.problem, run.source)}; {opts.n_visited + opts.n_random} starts per input "
               f"({opts.n_visited} from {run.trajectories.shape[1]} sequences of T = {run.T}, {opts.n_random} random)")
    n_eig = min(3, res.points.shape[-1])
    header = ["input", "#", "kind", "stability", "residual", "|s|max"] + [f"|lambda_{j + 1}|" for j in range(n_eig)]
    table = [header]
    for i, x in enumerate(run.inputs):
        for k in range(int(res.count[i])):
            ev = np.abs(res.eigenvalues[i, k, :n_eig])
            table.append(["-" if not run.has_input else signed(x), str(k), KIND_LABELS[int(res.kind[i, k])],
                          stab[i, k] or "-", f"{res.residual[i, k]:.1e}", f"{np.abs(res.points[i, k]).max():.4f}"]
                         + [f"{v:.4f}" for v in ev])
    widths = [max(len(r[c]) for r in table) for c in range(len(header))]
    for r in table:
        click.echo("  " + "  ".join(s.rjust(w) for s, w in zip(r, widths)))
    for c in counts(run):
        x = "no input" if not run.has_input else f"x = {signed(c['input'])}"
        click.echo(f"  {x}: {c['fixed']} fixed ({c['stable']} stable, {c['unstable']} unstable, {c['marginal']} "
                   f"marginal), {c['slow']} slow; {c['dropped']} starts converged to neither")
        if c["at_bound"]:
            click.echo(f"  {' ' * len(x)}  {c['at_bound']} at the search bound |s| = {c['bound']:.4g} (rounding where a "
                       f"gate saturates, not fixed or slow points; --bound moves it)")
        if run.attractors is not None:
            click.echo(f"  {' ' * len(x)}  run {run.attractors.steps} steps from {c['starts']} visited states: "
                       f"{c['to_fixed']} settle on {c['fixed_attractors']} fixed point(s), {c['to_cycle']} on "
                       f"{c['cycles']} 2-cycle(s), {c['unsettled']} unsettled")
