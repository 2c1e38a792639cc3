"""`landscape grid`: the loss over a 2-D grid of two parameters, at every T, into HDF5."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click
import numpy as np

from ..errors import LandscapeError
from ..plan import parse_bytes
from ..spec import DTYPES, MATH_CLASSES, Axis, GridSpec, parse_T
from .options import device_option, fit_option, model_options, scheduler_option, threads_option


@click.command("grid")
@model_options()
@click.option("--x", "x", metavar="NAME:MIN:MAX:NUM", help="First axis (rows, index i), e.g. w:-1:3:201; "
              "append :log for a log-spaced axis; block_w and block_b name the cell's block-input weight and "
              "bias (matching planes across cells). Default: the cell's default axes (see README).")
@click.option("--y", "y", metavar="NAME:MIN:MAX:NUM", help="Second axis (columns, index j), e.g. b:-1.5:1.5:201.")
@click.option("--T", "T", default="50", show_default=True, help="Sequence lengths, a comma list: 1,5,10,50.")
@click.option("--n", type=int, help="Number of sequences (default: the task's, 1000 for latch).")
@click.option("--seed", default=0, show_default=True, help="Seed of the task's data.")
@click.option("--base", "base_file", type=click.Path(dir_okay=False),
              help="HDF5 file whose parameter datasets (at / or /params) give the base point.")
@click.option("--base-model", metavar="FILE.pt|RUN.h5:GROUP[:REPEAT]",
              help="A trained model as the base point: a torch.nn.RNN/LSTM/GRU state_dict (optional Linear head), "
                   "or a member of a `landscape train --out RUN.h5` run. Its cell, options and size are adopted.")
@click.option("--directions", type=click.Choice(("random", "hessian", "pca", "path", "models", "line")),
              help="Sweep a plane around the base point, theta = base + a d1 + b d2 (axes a and b, default "
                   "-1..1): random (filter-normalised), hessian (top two eigenvectors at the largest T), pca "
                   "(of the training trajectory), path (the same through the member's end point, with the fraction of "
                   "the path's variance it captures printed), models (through --models A --models B), line (to "
                   "--models A).")
@click.option("--models", "models", multiple=True, metavar="MODEL",
              help="The other models of --directions models (two) or line (one), as --base-model.")
@click.option("--direction-seed", default=0, show_default=True, help="Seed of --directions random.")
@fit_option("How the readout of a classification task is set (its fit): fixed at the base point "
            "(out_w, out_b), or optimal (fitted per point and T; auto = optimal where the task has a readout).")
@click.option("--readout-l2", default=1e-4, show_default=True,
              help="Ridge penalty on out_w for --fit optimal (keeps the optimum finite).")
@click.option("--grads", is_flag=True, help="Also store the gradient analysis: grad (dL/d(x, y)), "
              "hessian_eigvals (of the 2x2 Hessian in the grid plane) at every T, and grad_norm_t "
              "(||dL_Tmax/dh_t||, and grad_norm_c_t for LSTM cells); memory grows with T_max.")
@click.option("--dynamics", is_flag=True, help="Also store the cell's dynamics at every point: the numbers of "
              "fixed points and of cycles of period 1..8 (and the stable ones), roots at the search bound, "
              "degenerate and unsettled starts, for the map at a constant input (--input), and the largest "
              "finite-time Lyapunov exponent lambda_T at every T (over the task's first 100 sequences). "
              "`landscape plot --overlay bifurcations` draws the lines where they change (docs/dynamics.md).")
@click.option("--input", "dynamics_input", type=float, metavar="X",
              help="The constant input of --dynamics' map (every input component; default: the task's input mean).")
@device_option()
@click.option("--dtype", type=click.Choice(DTYPES), default="float64", show_default=True,
              help="Floating-point type of the computation.")
@click.option("--math", "math_class", type=click.Choice(MATH_CLASSES), default="exact", show_default=True,
              help="The fused kernels' accuracy class: fast computes float32's sigmoid as 1/2 + tanh(x/2)/2 "
                   "(within 1.1e-7 absolute, as XLA does). Part of the cache key; float64 and torch compute exact.")
@click.option("--out", type=click.Path(dir_okay=False), help="Output .h5 file (default: the cache); a figure "
              "is --plot's.")
@click.option("--force", is_flag=True, help="Recompute even if the result is cached.")
@click.option("--chunk-size", type=int, help="Grid points per chunk (default: from the memory budget).")
@click.option("--memory", help="Memory budget of a chunk, e.g. 512M or 4G (default 1G on the CPU, "
              "half the free memory on a GPU; or $LANDSCAPE_MEMORY).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no notes, only the summary.")
@click.option("--plot", "plot_kind", metavar="KIND", help="Also draw the surface, as `landscape plot --kind KIND` "
              "(contour, surface, panels, interactive, ...).")
@click.option("--plot-out", type=click.Path(dir_okay=False), metavar="FIG",
              help="--plot's file; the format from the extension [default: NAME-KEY-KIND.png here; .html, .gif for "
                   "the kinds that write those].")
@threads_option()
@scheduler_option()
def command(model, x, y, T, n, seed, base_file, base_model, directions, models, direction_seed, fit, readout_l2,
            grads, dynamics, dynamics_input, device, dtype, math_class, out, force, chunk_size, memory, quiet, scheduler, plot_kind,
            plot_out):
    """Evaluate the loss over a grid of two parameters at every T of a list, from one unroll.

    \b
    landscape grid --cell srnn --T 50
    landscape grid --cell pascanu --task target --x w:4.5:5.5:201 --y b:-2.9:-1.9:201 --T 1,5,10,50
    landscape grid --cell examples/cells/mgu.py:MGU --T 10,50
    landscape grid --base-model gru.pt --task relay --directions hessian --x a:-1:1:51 --y b:-1:1:51 --T 10,20,40
    landscape grid --cell gru --x block_w:-4:4:81 --y block_b:-2:2:81 --T 10,50 --dynamics
    """
    from ..surface import grid

    _check_outputs(out, plot_kind, plot_out)  # before anything is computed
    spec = GridSpec(
        model=replace(model, base_file=base_file, base_model=base_model), T=parse_T(T),
        x=Axis.parse(x) if x else None, y=Axis.parse(y) if y else None, n=n, seed=seed, dtype=dtype, math=math_class,
        fit=fit,
        readout_l2=readout_l2, grads=grads, dynamics=dynamics, input=dynamics_input, directions=directions,
        models=tuple(models),
        direction_seed=direction_seed)
    note = (lambda msg: None) if quiet else (lambda msg: click.echo(msg, err=True))
    result = grid(spec, out=out, device=device, force=force, chunk_size=chunk_size,
                  memory=parse_bytes(memory) if memory else None, progress=False if quiet else None,
                  on_message=note, scheduler=scheduler)
    s = result.surface
    if result.cached:
        click.echo(f"read from the cache (computed earlier on {result.device}): {result.path}")
    else:
        click.echo(f"computed {result.computed_points} points x {len(s.T)} lengths on {result.device} in "
                   f"{result.seconds:.2f} s ({result.points_per_second:,.0f} points/s)")
        click.echo(f"wrote {result.path}")
    click.echo(f"grid {s.x_name} [{s.x[0]:g}, {s.x[-1]:g}] x {s.y_name} [{s.y[0]:g}, {s.y[-1]:g}], "
               f"{len(s.x)} x {len(s.y)} points; cell {s.spec['cell']}, task {s.spec['task']}, "
               f"readout {s.spec['readout']}")
    for k, T_k in enumerate(s.T):
        click.echo(f"  T={T_k:<5d} loss {_range(s.loss[k])}")
        if "grad" in s.fields:
            norm = np.sqrt((s.fields["grad"][k] ** 2).sum(-1))
            click.echo(f"          |grad| {_range(norm)}")
        if "lyapunov" in s.fields:
            click.echo(f"          lambda_T {_range(s.fields['lyapunov'][k])}")
    if "n_fixed" in s.fields:
        cycles = s.fields["n_cycles"][..., 1:].sum(-1)
        click.echo(f"  dynamics: fixed points {_range(s.fields['n_fixed'])}; cycles of period 2..K {_range(cycles)}")
    if directions == "path":
        from ..directions import read_plane
        from ..store.integrity import open_file

        with open_file(result.path) as f:  # the verified file's plane
            plane = read_plane(f["plane"])
        click.echo(f"  the path plane holds {dict(plane.info)['variance_captured']:.1%} of the path's variance "
                   f"(PC1 {float(plane.values[0]):.1%}, PC2 {float(plane.values[1]):.1%})")
    if "grad_norm_t" in s.fields or "n_fixed" in s.fields:
        click.echo(f"  stored: {', '.join(sorted(s.fields))}")
    if plot_kind is not None:
        from . import plot

        figure = plot_out or _default_figure(result.path, plot_kind)
        click.get_current_context().invoke(plot.command, files=(str(result.path),), kind=plot_kind, out=figure)


def _check_outputs(out: str | None, plot_kind: str | None, plot_out: str | None) -> None:
    """One line for an --out that is not an HDF5 name (a figure is --plot's: writing HDF5 under
    x.png would mislead) and for a bad --plot kind or --plot-out extension."""
    if out is not None and Path(out).suffix.lower() not in (".h5", ".hdf5"):
        raise LandscapeError(f"--out {out} is the surface's HDF5 file: end it in .h5 (for a figure add "
                             f"--plot KIND --plot-out {Path(out).name})")
    if plot_kind is None:
        if plot_out is not None:
            raise LandscapeError("--plot-out needs --plot KIND")
        return
    from ..figures.kinds import get_kind

    get_kind(plot_kind).check_output(plot_out or _default_figure(Path("x.h5"), plot_kind))


def _default_figure(path: Path, kind: str) -> str:
    """--plot's file when --plot-out is not given: NAME-KEY-KIND.png (or the kind's own format) here."""
    from ..figures.kinds import get_kind

    formats = get_kind(kind).formats
    return f"{Path(path).stem}-{kind}.{formats[0] if formats else 'png'}"


def _range(values: np.ndarray) -> str:
    finite = values[np.isfinite(values)]
    text = f"min {finite.min():.6g}  max {finite.max():.6g}" if finite.size else "no finite values"
    extra = [f"{int(c)} {lab}" for c, lab in ((np.isposinf(values).sum(), "+inf"), (np.isneginf(values).sum(), "-inf"),
                                             (np.isnan(values).sum(), "NaN")) if c]
    return text + (f"  ({', '.join(extra)})" if extra else "")
