"""`landscape train`: train a population of models (lengths x repeats) and print a summary."""
from __future__ import annotations

import time

import click
import numpy as np

from ..errors import LandscapeError
from ..spec import parse_assignments, parse_T
from ..train import INITS, OPTIMIZERS, PROTOCOLS, READOUTS, Member, TrainSpec
from ..train.results import run_groups
from .options import threads_option


def _optimizer(ctx, param, value):
    if value not in OPTIMIZERS:
        raise LandscapeError(f"unknown optimizer {value!r}; choose from: {', '.join(OPTIMIZERS)}")
    return value


@click.command("train")
@click.option("--cell", default="srnn", show_default=True, help="Cell name (see `landscape cells`).")
@click.option("--cell-opt", "cell_opts", multiple=True, metavar="KEY=VALUE",
              help="Cell option (repeatable), e.g. gate=hard_sigmoid, form=reset_before.")
@click.option("--task", default="latch", show_default=True, help="Task name (see `landscape tasks`).")
@click.option("--task-set", "task_sets", multiple=True, metavar="KEY=VALUE",
              help="Task parameter (repeatable), e.g. noise=0.2.")
@click.option("--T", "T", default="10,50,100", show_default=True, help="Sequence lengths, a comma list.")
@click.option("--repeats", default=5, show_default=True, help="Models per length (see --seed).")
@click.option("--epochs", default=5, show_default=True, help="Passes over the training rows.")
@click.option("--batch", default=16, show_default=True, help="Mini-batch size.")
@click.option("--optimizer", default="adam-keras", show_default=True, callback=_optimizer,
              help="adam (torch: eps 1e-8 on sqrt(v_hat)), adam-keras (Keras 2: eps 1e-7 on sqrt(v)) or sgd.")
@click.option("--lr", default=1e-3, show_default=True, help="Learning rate.")
@click.option("--clip", type=float, help="Clip each model's global gradient norm at this threshold "
              "(Pascanu et al. 2013, Algorithm 1). Default: no clipping.")
@click.option("--init", default="keras", show_default=True, type=click.Choice(INITS),
              help="Initialisers: keras (Keras 2 defaults), torch (torch.nn's), base (the cell's base point).")
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE",
              help="Override an initial value (repeatable), e.g. b_f=2 or w[0,1]=0.5.")
@click.option("--protocol", default="keras-split", show_default=True, type=click.Choice(PROTOCOLS),
              help="keras-split: validate on the LAST 20% of rows (as Keras; one class for latch); "
                   "stratified: shuffled stratified split plus a fresh test set; all: no validation.")
@click.option("--readout", default="dense2", show_default=True, type=click.Choice(READOUTS),
              help="dense2: Keras Dense(2, softmax); logistic: one logit (the grids' readout).")
@click.option("--hidden", "-H", type=int, help="Hidden units (default: the task's).")
@click.option("--n", default=10000, show_default=True, help="Sequences per data set.")
@click.option("--seed", default=0, show_default=True,
              help="Base seed: model r of length T uses seed + 1000 T + r; its data seed + T.")
@click.option("--dtype", default="float32", show_default=True, type=click.Choice(["float32", "float64"]),
              help="Floating-point type of the training (Keras trains in float32).")
@click.option("--success", default=0.9, show_default=True, help="A model succeeds when its final "
              "validation (or test, for stratified) accuracy exceeds this.")
@click.option("--compile", "use_compile", is_flag=True,
              help="Fuse the unroll with torch.compile: faster for long runs, about a minute to compile.")
@click.option("--out", type=click.Path(dir_okay=False),
              help="Results file, .csv (tidy rows) or .h5 (rows and arrays). A rerun skips the (cell, T) "
                   "groups already saved there.")
@click.option("--device", default="auto", show_default=True, help="auto (CUDA when present), cpu or cuda.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@threads_option(expose=True)
def command(cell, cell_opts, task, task_sets, T, repeats, epochs, batch, optimizer, lr, clip, init, sets,
            protocol, readout, hidden, n, seed, dtype, success, use_compile, out, device, quiet, threads):
    """Train REPEATS models at every length T, all at once, and summarise their final accuracy.

    \b
    landscape train --cell lstm --cell-opt gate=hard_sigmoid --T 10,50,100 --repeats 10
    landscape train --cell srnn --T 20 --optimizer sgd --lr 0.1 --clip 1 --out runs.csv
    """
    Ts = parse_T(T)
    if repeats < 1:
        raise LandscapeError(f"repeats must be >= 1, got {repeats}")
    spec = TrainSpec(cell=cell, cell_options=parse_assignments(cell_opts, "--cell-opt"), task=task,
                     task_options=parse_assignments(task_sets, "--task-set"), hidden=hidden, n=n,
                     epochs=epochs, batch=batch, optimizer=optimizer, readout=readout,
                     loss_clip=1e-7 if optimizer == "adam-keras" else None, dtype=dtype)
    assign = tuple((k, float(v) if _is_number(v) else v) for k, v in parse_assignments(sets, "--set"))
    members = [Member(T=t, seed=seed + 1000 * t + r, data_seed=seed + t, lr=lr, clip=clip, init=init,
                      protocol=protocol, set=assign, group=f"{cell}-T{t}", labels=(("repeat", r),))
               for t in Ts for r in range(repeats)]
    note = (lambda msg: None) if quiet else (lambda msg: click.echo(msg, err=True))
    start = time.perf_counter()
    rows = run_groups([(spec, members)], out=out, device=device, progress=False if quiet else None,
                      compile=use_compile, on_message=note, threads=threads or None)
    seconds = time.perf_counter() - start
    groups = {m.group for m in members}
    rows = [r for r in rows if r["group"] in groups and int(r["epoch"]) == epochs]
    metric = "test_acc" if protocol == "stratified" else ("val_acc" if protocol == "keras-split" else "train_acc")
    click.echo(f"{cell} on {task}: {len(members)} models, {epochs} epochs, {optimizer} lr={lr:g}"
               f"{'' if clip is None else f' clip={clip:g}'}, protocol {protocol}; {seconds:.1f} s")
    click.echo(f"{'T':>5}  {'n':>3}  {metric + ' mean':>14}  {'sd':>6}  {'success':>8}  {'train_loss':>10}")
    for t in Ts:
        sel = [r for r in rows if int(r["T"]) == t]
        acc = np.array([float(r[metric]) for r in sel])
        loss = np.array([float(r["train_loss"]) for r in sel])
        click.echo(f"{t:>5}  {len(sel):>3}  {np.nanmean(acc):>14.3f}  {np.nanstd(acc):>6.3f}  "
                   f"{np.mean(acc > success):>8.2f}  {np.nanmean(loss):>10.4f}")
    if out:
        click.echo(f"wrote {out}")


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False
