"""`landscape train`: train a population of models (lengths x repeats) and print a summary."""
from __future__ import annotations

import time
from dataclasses import replace

import click

from ..cells import cell_class
from ..errors import LandscapeError
from ..readouts import TRAIN_KINDS
from ..spec import DTYPES, parse_T
from ..train import INITS, OPTIMIZERS, PROTOCOLS, Member, TrainSpec
from .options import device_option, model_options, scheduler_option, torch_threads_option


def _optimizer(ctx, param, value):
    if value not in OPTIMIZERS:
        raise LandscapeError(f"unknown optimizer {value!r}; choose from: {', '.join(OPTIMIZERS)}")
    return value


@click.command("train")
@model_options(set_help="Override an initial value (repeatable), e.g. b_f=2 or w[0,1]=0.5.",
               hidden_help="Hidden units (default: the task's).")
@click.option("--T", "T", default="10,50,100", show_default=True, help="Sequence lengths, a comma list.")
@click.option("--repeats", default=5, show_default=True, help="Models per length (see --seed).")
@click.option("--epochs", default=5, show_default=True, help="Passes over the training rows.")
@click.option("--batch", default=16, show_default=True, help="Mini-batch size.")
@click.option("--optimizer", default="adam-keras", show_default=True, callback=_optimizer,
              help="adam (torch: eps 1e-8 on sqrt(v_hat)), adam-keras (Keras 2: eps 1e-7 on sqrt(v)) or sgd.")
@click.option("--lr", default=1e-3, show_default=True, help="Learning rate.")
@click.option("--clip", type=float, help="Clip each model's global gradient norm at this threshold "
              "(Pascanu et al. 2013, Algorithm 1). Default: no clipping.")
@click.option("--omega", type=float, default=0.0, show_default=True, help="Weight alpha of Pascanu et al. 2013's "
              "regulariser Omega (the error signal keeps its norm one step back; docs/training.md). 0: none.")
@click.option("--init", default="keras", show_default=True, type=click.Choice(INITS),
              help="Initialisers: keras (Keras 2 defaults), torch (torch.nn's), base (the cell's base point).")
@click.option("--protocol", default="keras-split", show_default=True, type=click.Choice(PROTOCOLS),
              help="keras-split: validate on the LAST 20% of rows (as Keras; one class for latch); "
                   "stratified: shuffled stratified split plus a fresh test set; all: no validation.")
@click.option("--readout", default="dense2", show_default=True, type=click.Choice(TRAIN_KINDS),
              help="The readout kind of a classification task: dense2 (Keras Dense(2, softmax)) or logistic "
                   "(one logit, the grids' readout).")
@click.option("--n", default=10000, show_default=True, help="Sequences per data set.")
@click.option("--seed", default=0, show_default=True,
              help="Base seed: model r of length T uses seed + 1000 T + r; its data seed + T.")
@click.option("--dtype", default="float32", show_default=True, type=click.Choice(DTYPES),
              help="Floating-point type of the training (Keras trains in float32).")
@click.option("--success", default=0.9, show_default=True, help="A model succeeds when its final "
              "validation (or test, for stratified) accuracy exceeds this.")
@click.option("--record-steps", type=click.IntRange(min=1), is_flag=False, flag_value=1, default=None, metavar="[K]",
              help="Also record every member's parameters, batch loss and gradient norm every K-th step (default "
                   "1: every step) and after the last: its path, for `landscape grid --base-model RUN.h5:GROUP:REPEAT "
                   "--directions path`, `landscape plot --paths` and the cliff hits printed here; needs an .h5 --out.")
@click.option("--cliff-loss", default=None, type=float, metavar="X", help="Cliff hits (with --record-steps): a "
              "loss jump larger than X times the running median |loss change| [default: 10].")
@click.option("--cliff-grad", default=None, type=float, metavar="Y", help="Cliff hits: and a gradient norm larger "
              "than Y times its running median [default: 5].")
@click.option("--compile", "use_compile", is_flag=True,
              help="Fuse the unroll with torch.compile: faster for long runs, about a minute to compile.")
@click.option("--out", type=click.Path(dir_okay=False),
              help="Results file, .csv (tidy rows) or .h5 (rows and arrays). A rerun skips the (cell, T) "
                   "groups already saved there.")
@device_option()
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@torch_threads_option()
@scheduler_option()
def command(model, T, repeats, epochs, batch, optimizer, lr, clip, omega, init, protocol, readout, n, seed, dtype,
            success, record_steps, cliff_loss, cliff_grad, use_compile, out, device, quiet, threads, scheduler):
    """Train REPEATS models at every length T, all at once, and summarise their final accuracy.

    \b
    landscape train --cell lstm --cell-opt gate=hard_sigmoid --T 10,50,100 --repeats 10
    landscape train --cell srnn --T 20 --optimizer sgd --lr 0.1 --clip 1 --out runs.csv
    landscape train --cell examples/cells/mgu.py:MGU --T 10,50
    """
    from ..train.results import run_groups
    from ..train.summary import SUCCESS_METRIC, summary_by_T

    Ts = parse_T(T)
    if repeats < 1:
        raise LandscapeError(f"repeats must be >= 1, got {repeats}")
    spec = TrainSpec(model=replace(model, set=()), n=n, epochs=epochs, batch=batch, optimizer=optimizer,
                     readout=readout, dtype=dtype, record_steps=record_steps or False, omega=omega)
    if record_steps and not (out and out.lower().endswith((".h5", ".hdf5"))):
        raise LandscapeError("--record-steps keeps the trajectories in HDF5: give --out RUN.h5")
    name = cell_class(model.cell).name  # the group of a user's FILE.py:Class is named after the cell
    members = [Member(T=t, seed=seed + 1000 * t + r, data_seed=seed + t, lr=lr, clip=clip, init=init,
                      protocol=protocol, set=model.set, group=f"{name}-T{t}", labels=(("repeat", r),))
               for t in Ts for r in range(repeats)]
    note = (lambda msg: None) if quiet else (lambda msg: click.echo(msg, err=True))
    start = time.perf_counter()
    rows = run_groups([(spec, members)], out=out, device=device, progress=False if quiet else None,
                      compile=use_compile, on_message=note, threads=threads, scheduler=scheduler)
    seconds = time.perf_counter() - start
    groups = {m.group for m in members}
    summary = summary_by_T([r for r in rows if r["group"] in groups], protocol, success)
    metric = SUCCESS_METRIC[protocol]
    click.echo(f"{model.cell} on {model.task}: {len(members)} models, {epochs} epochs, {optimizer} lr={lr:g}"
               f"{'' if clip is None else f' clip={clip:g}'}{f' omega={omega:g}' if omega else ''}, "
               f"protocol {protocol}; {seconds:.1f} s")
    click.echo(f"{'T':>5}  {'n':>3}  {metric + ' mean':>14}  {'sd':>6}  {'success':>8}  {'train_loss':>10}")
    for row in summary:
        click.echo(f"{row['T']:>5}  {row['n']:>3}  {row[metric + '_mean']:>14.3f}  {row[metric + '_sd']:>6.3f}  "
                   f"{row['success']:>8.2f}  {row['train_loss_mean']:>10.4f}")
    for row in summary:
        if row["diverged"]:
            click.echo(f"T = {row['T']}: {row['diverged']} of {row['n']} models diverged (final training loss NaN or "
                       f"infinite): they count as failures, and train_loss is the mean over the others")
    if record_steps:
        _print_cliffs(out, sorted(groups), protocol, success, cliff_loss, cliff_grad)
    if out:
        click.echo(f"wrote {out}")


def _print_cliffs(out, groups, protocol, success, loss_factor, grad_factor) -> None:
    """Per group: the members' fates and cliff hits along their recorded paths (``train.paths``)."""
    from ..train.paths import CliffThresholds, load_paths, path_summary

    thresholds = CliffThresholds.of(loss_factor, grad_factor)
    click.echo(f"cliff hits: batch loss change > {thresholds.loss_factor:g} x its running median and gradient "
               f"norm > {thresholds.grad_factor:g} x its running median (window {thresholds.window})")
    for group in groups:
        paths = load_paths(out, group, success=success)
        for line in path_summary(paths, thresholds):
            click.echo(f"  {group}: {line}")
