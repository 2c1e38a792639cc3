"""`landscape grads`: per-timestep gradient norms and Jacobian factors at one or more parameter points.

Each --at point is the base point (resolved exactly as for `landscape grid`, with --set) plus its own
NAME=VALUE overrides. Prints the loss at T, ||dL_T/ds_t|| at log-spaced t and the Jacobian factors
ds_t/ds_{t-1} (for the LSTM family dc_t/dc_{t-1}, split into the forget term and the rest);
``--out FILE.csv`` writes the full per-t table. The computing is ``landscape.points``.
"""
from __future__ import annotations

import csv
import math

import click
import numpy as np

from ..errors import LandscapeError
from ..gradients import GRAD_NORM_METHODS
from ..plan import parse_bytes
from ..points import log_spaced, parse_at
from ..spec import DTYPES, parse_T
from .options import device_option, fit_option, model_options, threads_option


@click.command("grads")
@model_options(set_help="Base-point value of a parameter for every point (repeatable), as in `landscape grid`.")
@click.option("--T", "T", default="50", show_default=True, help="The sequence length (one value).")
@click.option("--at", "ats", multiple=True, metavar="NAME=VALUE[,NAME=VALUE...]",
              help="A point to analyse (repeatable): the base point with these values, e.g. "
                   "--at w_z=1.2,b_f=0.3. Default: the base point alone.")
@click.option("--n", type=int, help="Number of sequences (default: the task's, 1000 for latch).")
@click.option("--seed", default=0, show_default=True, help="Seed of the task's data.")
@fit_option("How the readout is set (its fit): fixed (out_w, out_b of the point) or optimal (fitted at T, "
            "then held fixed for the backward; auto = optimal where the task has one).")
@click.option("--readout-l2", default=1e-4, show_default=True, help="Ridge penalty of the optimal readout.")
@click.option("--method", type=click.Choice(GRAD_NORM_METHODS), default="auto", show_default=True,
              help="Per-timestep norms by autograd (memory O(T)) or, for one-state cells with H = 1, the "
                   "exact scalar scheme (memory O(1) per step); auto picks scalar where it applies.")
@click.option("--rows", default=12, show_default=True, help="How many log-spaced t to print.")
@device_option()
@click.option("--dtype", type=click.Choice(DTYPES), default="float64", show_default=True,
              help="Floating-point type of the computation.")
@click.option("--memory", help="Memory budget, e.g. 512M or 4G (default 1G on the CPU; or $LANDSCAPE_MEMORY).")
@click.option("--out", type=click.Path(dir_okay=False), help="Write the full per-t table as CSV.")
@threads_option()
def command(model, T, ats, n, seed, fit, readout_l2, method, rows, device, dtype, memory, out):
    """Per-timestep gradient norms ||dL_T/dh_t|| and Jacobian factors at parameter points.

    \b
    landscape grads --cell lstm --task latch --T 100 --at w_z=1.2,b_f=0.3 --at b_f=2
    landscape grads --cell pascanu --task target --T 50 --at w=5,b=-2.6 --out grads.csv
    """
    from ..points import analyse_points

    Ts = parse_T(T)
    if len(Ts) != 1:
        raise LandscapeError(f"grads takes one length --T; got {T!r}")
    (T,) = Ts
    points = [(text, parse_at(text)) for text in ats] or None
    res = analyse_points(model, T, points, n=n, seed=seed, dtype=dtype, fit=fit, readout_l2=readout_l2,
                         method=method, device=device, memory=parse_bytes(memory) if memory else None)
    r, jf, steps = res.problem, res.factors, res.steps
    table = res.table()
    s = jf.state
    click.echo(f"{r.cell.describe()} on {r.task.name}, T={T}, N={res.n}, H={r.H}, readout {r.readout.label}, "
               f"{dtype} on {res.device}")
    show = log_spaced(steps, rows)
    for p, (label, items) in enumerate(zip(res.labels, res.values)):
        click.echo(f"point {p + 1}: {', '.join(f'{k}={v:g}' for k, v in items) or label}")
        click.echo(f"  loss at T={T}: {float(res.loss[p]):.6g}")
        head = ["t"] + [f"|dL/d{k}_t|" for k in res.norms] + [f"mean |d{s}_t/d{s}_t-1|"]
        terms = ("through_f", "through_z", "through_i") if res.terms is not None else ()
        if jf.forget is not None:
            head += ["mean f_t"] + ([f"|via {t[-1]}|" for t in terms] if terms else ["mean |rest|"])
        rows_out = []
        for t in show:
            row = table[p][t - 1]
            cols = [str(t)] + [_fmt(row[f"grad_norm_{k}"]) for k in res.norms] + [_fmt(row["factor_mean"])]
            if jf.forget is not None:
                cols += [_fmt(row["forget_mean"])] + ([_fmt(row[f"{t}_mean"]) for t in terms] if terms
                                                        else [_fmt(row["remainder_mean"])])
            rows_out.append(cols)
        _echo_table(head, rows_out)
        size = jf.factor_size()[p]  # (N, T)
        geo = float(np.exp(np.mean(np.log(size)))) if np.all(size > 0) else 0.0
        log10_end = jf.log_product[p, :, -1] / math.log(10)
        click.echo(f"  Jacobian factors over t = 1..{steps}: mean |d{s}_t/d{s}_t-1| = {_fmt(size.mean())} "
                   f"(geometric mean {_fmt(geo)}); log10 ||d{s}_{steps}/d{s}_0||: mean over sequences "
                   f"{_fmt(float(np.mean(log10_end)))}")
        if jf.forget is not None:
            click.echo(f"  forget-gate term: mean f_t = {_fmt(float(jf.forget[p].mean()))}; remainder: "
                       f"mean |.| = {_fmt(float(jf.remainder_size()[p].mean()))}")
        if res.terms is not None:
            from ..lstm_terms import log10_product, term_sizes

            sizes = term_sizes(res.terms)
            shares = {k: float(sizes[k][p].mean()) for k in ("forget", "through_f", "through_z", "through_i")}
            forget_share = shares["forget"] / max(sum(shares.values()), 1e-300)
            prod = log10_product(res.terms["total"][p:p + 1])[0, :, -1].mean()
            prod_f = log10_product(res.terms["forget"][p:p + 1])[0, :, -1].mean()
            click.echo(f"  the four terms of dc_t/dc_t-1 (the blog's): forget share {forget_share:.2f}; log10 "
                       f"|dc_{steps}/dc_0| through the step Jacobians {_fmt(float(prod))}, through f_t alone "
                       f"{_fmt(float(prod_f))}")
    if out:
        _write_csv(out, res, table)
        click.echo(f"wrote {out}")


def _fmt(v: float) -> str:
    if isinstance(v, (float, np.floating)) and not math.isfinite(v):
        return str(v)
    return f"{v:.4g}"


def _echo_table(head, rows):
    cells = [head] + rows
    widths = [max(len(r[k]) for r in cells) for k in range(len(head))]
    for r in cells:
        click.echo("  " + "  ".join(c.rjust(w) for c, w in zip(r, widths)))


def _write_csv(path, res, table):
    names = sorted({name for items in res.values for name, _ in items})
    cols = list(table[0][0])
    try:
        with open(path, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["point", *names, "T", "t", *cols])
            for p, q in enumerate(res.points):
                values = [repr(q.value(name)) for name in names]
                for t, row in enumerate(table[p], start=1):
                    writer.writerow([p + 1, *values, res.T, t, *(repr(row[c]) for c in cols)])
    except OSError as err:
        raise LandscapeError(f"cannot write {path!r}: {err.strerror}") from None
