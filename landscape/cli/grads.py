"""`landscape grads`: per-timestep gradient norms and Jacobian factors at one or more parameter points.

Each --at point is the base point (resolved exactly as for `landscape grid`, with --set) plus its own
NAME=VALUE overrides. Prints the loss at T, ||dL_T/ds_t|| at log-spaced t and the Jacobian factors
ds_t/ds_{t-1} (for the LSTM family dc_t/dc_{t-1}, split into the forget term and the rest);
``--out FILE.csv`` writes the full per-t table.
"""
from __future__ import annotations

import csv
import math
import re
from dataclasses import replace

import click
import numpy as np
import torch

from .. import engine, gradients
from ..cells import parse_param_ref
from ..tasks import READOUT_PARAMS
from ..errors import LandscapeError
from ..spec import DTYPES, READOUTS, GridSpec, parse_assignments, parse_T
from .options import threads_option

_TOP_COMMAS = re.compile(r",(?![^\[]*\])")  # commas outside [i,j]


def parse_at(text: str) -> tuple[tuple[str, float], ...]:
    """'w_z=1.2,b_f=0.3' or 'w[0,1]=0.5,b=1' -> (('w_z', 1.2), ('b_f', 0.3)); one clear error else."""
    usage = "write NAME=VALUE[,NAME=VALUE...], e.g. --at w=5,b=-2.4 or --at w[0,1]=0.5"
    items = [s.strip() for s in _TOP_COMMAS.split(text.strip())]
    if not text.strip() or any(not s for s in items):
        raise LandscapeError(f"malformed --at {text!r}; {usage}")
    out = []
    for item in items:
        if item.count("=") != 1:
            raise LandscapeError(f"malformed --at {text!r} (at {item!r}); {usage}")
        name, value = (s.strip() for s in item.split("="))
        if not name:
            raise LandscapeError(f"malformed --at {text!r} (at {item!r}); {usage}")
        try:
            number = float(value)
        except ValueError:
            raise LandscapeError(f"--at {text!r}: the value of {name} must be a number, got {value!r}") from None
        if not math.isfinite(number):
            raise LandscapeError(f"--at {text!r}: the value of {name} must be finite, got {value!r}")
        out.append((name, number))
    return tuple(out)


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def _value(r, ref: str) -> float:
    """The base-point value of a scalar reference ('w', 'w[0,1]') in a Resolved."""
    name, idx = parse_param_ref(ref, {k: tuple(v.shape) for k, v in r.base.items()}, r.cell.name)
    return float(r.base[name][idx])


def _steps(r, T: int) -> int:
    """Steps the longest sequence of nominal length T takes (two-sequence: up to (1 + spread) T)."""
    return T + (math.floor(r.task.spread * T) if r.task.name == "two-sequence" else 0)


def log_spaced(steps: int, rows: int) -> np.ndarray:
    """About ``rows`` distinct integers from 1 to steps, log-spaced, always with 1 and steps."""
    return np.unique(np.round(np.geomspace(1, steps, max(2, rows))).astype(int))


@click.command("grads")
@click.option("--cell", default="srnn", show_default=True, help="Cell name (see `landscape cells`).")
@click.option("--task", default="latch", show_default=True, help="Task name (see `landscape tasks`).")
@click.option("--T", "T", default="50", show_default=True, help="The sequence length (one value).")
@click.option("--at", "ats", multiple=True, metavar="NAME=VALUE[,NAME=VALUE...]",
              help="A point to analyse (repeatable): the base point with these values, e.g. "
                   "--at w_z=1.2,b_f=0.3. Default: the base point alone.")
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE",
              help="Base-point value of a parameter for every point (repeatable), as in `landscape grid`.")
@click.option("--hidden", "-H", type=int, help="Hidden units (default: the task's, 1 for latch).")
@click.option("--n", type=int, help="Number of sequences (default: the task's, 1000 for latch).")
@click.option("--seed", default=0, show_default=True, help="Seed of the task's data.")
@click.option("--cell-opt", "cell_opts", multiple=True, metavar="KEY=VALUE",
              help="Cell option (repeatable), e.g. gate=hard_sigmoid.")
@click.option("--task-set", "task_sets", multiple=True, metavar="KEY=VALUE",
              help="Task parameter (repeatable), e.g. noise=0.2.")
@click.option("--readout", type=click.Choice(READOUTS), default="auto", show_default=True,
              help="Readout of classification tasks: fixed (out_w, out_b of the point) or optimal "
                   "(fitted at T, then held fixed for the backward; auto = optimal where the task has one).")
@click.option("--readout-l2", default=1e-4, show_default=True, help="Ridge penalty of the optimal readout.")
@click.option("--method", type=click.Choice(gradients.GRAD_NORM_METHODS), default="auto", show_default=True,
              help="Per-timestep norms by autograd (memory O(T)) or, for one-state cells with H = 1, the "
                   "exact scalar scheme (memory O(1) per step); auto picks scalar where it applies.")
@click.option("--rows", default=12, show_default=True, help="How many log-spaced t to print.")
@click.option("--device", default="auto", show_default=True, help="auto (CUDA when present), cpu or cuda.")
@click.option("--dtype", type=click.Choice(list(DTYPES)), default="float64", show_default=True,
              help="Floating-point type of the computation.")
@click.option("--memory", help="Memory budget, e.g. 512M or 4G (default 1G on the CPU; or $LANDSCAPE_MEMORY).")
@click.option("--out", type=click.Path(dir_okay=False), help="Write the full per-t table as CSV.")
@threads_option()
def command(cell, task, T, ats, sets, hidden, n, seed, cell_opts, task_sets, readout, readout_l2, method,
            rows, device, dtype, memory, out):
    """Per-timestep gradient norms ||dL_T/dh_t|| and Jacobian factors at parameter points.

    \b
    landscape grads --cell lstm --task latch --T 100 --at w_z=1.2,b_f=0.3 --at b_f=2
    landscape grads --cell pascanu --task target --T 50 --at w=5,b=-2.6 --out grads.csv
    """
    Ts = parse_T(T)
    if len(Ts) != 1:
        raise LandscapeError(f"grads takes one length --T; got {T!r}")
    (T,) = Ts
    spec = GridSpec(cell=cell, task=task, T=Ts, hidden=hidden, n=n, seed=seed, dtype=dtype, readout=readout,
                    readout_l2=readout_l2, set=parse_assignments(sets, "--set"),
                    cell_options=parse_assignments(cell_opts, "--cell-opt"),
                    task_options=parse_assignments(task_sets, "--task-set"))
    r = gradients.resolve_point(spec)
    points = [(text, parse_at(text)) for text in ats] or [("base point", ())]
    resolved = []
    for text, items in points:
        for name, _ in items:
            if r.readout == "optimal" and name.split("[")[0].strip() in READOUT_PARAMS:
                raise LandscapeError(f"--at {text}: {name} is fitted with --readout optimal; "
                                     f"use --readout fixed to set it")
        try:
            resolved.append(gradients.resolve_point(replace(spec, set=spec.set + items)))
        except LandscapeError as err:
            raise LandscapeError(f"--at {text}: {err}") from None
    P = len(resolved)
    if method == "scalar" and not gradients.scalar_method_applies(r.cell, r.H):
        raise LandscapeError(f"--method scalar needs a one-state cell with H = 1; {r.cell.name} has states "
                             f"{', '.join(r.cell.state_names)} and H = {r.H}")

    dev = engine.resolve_device(device)
    budget = engine.memory_budget(dev, engine.parse_bytes(memory) if memory else None)
    steps = _steps(r, T)
    item = torch.finfo(r.torch_dtype).bits // 8
    need = (steps * r.n * max(r.D, 1) * (8 + item)  # the data, made in float64 then cast
            + P * (gradients.grad_norm_bytes_per_member(r.cell, r.n, r.H, r.torch_dtype, steps, method)
                   + gradients.jacobian_bytes_per_member(r.cell, r.n, r.H, steps)
                   + engine.bytes_per_member(r.cell, r.n, r.H, r.torch_dtype, 1, r.readout == "optimal")))
    if need > budget:
        raise LandscapeError(
            f"T={T} needs about {_human(need)} for the per-timestep gradients and Jacobian factors of {P} "
            f"point(s) over {r.n} sequences, over the memory budget of {_human(budget)}; lower --T or --n, "
            f"or raise --memory (or $LANDSCAPE_MEMORY)")

    data = r.task.make(Ts, r.n, seed).to(r.torch_dtype, dev)
    params = {k: torch.stack([q.base[k] for q in resolved]).to(dtype=r.torch_dtype, device=dev) for k in r.base}
    loss = engine.unroll_losses(r.cell, params, data, r.task, Ts, r.readout, r.spec.readout_l2, r.H)[0]  # (P,)
    norms = gradients.grad_norms_t(r.cell, params, data, r.task, T, r.readout, r.spec.readout_l2, r.H, method)
    jf = gradients.jacobian_factors(r.cell, params, data, steps, r.H)
    table = _table(jf, norms, loss)

    s = jf.state
    click.echo(f"{r.cell.describe()} on {r.task.name}, T={T}, N={r.n}, H={r.H}, readout {r.readout}, "
               f"{spec.dtype} on {dev}")
    names = sorted({name for _, items in points for name, _ in items})
    show = log_spaced(steps, rows)
    for p, ((text, items), q) in enumerate(zip(points, resolved)):
        label = ", ".join(f"{k}={v:g}" for k, v in items) or text
        click.echo(f"point {p + 1}: {label}")
        click.echo(f"  loss at T={T}: {float(loss[p]):.6g}")
        head = ["t"] + [f"|dL/d{k}_t|" for k in norms] + [f"mean |d{s}_t/d{s}_t-1|"]
        if jf.forget is not None:
            head += ["mean f_t", "mean |rest|"]
        rows_out = []
        for t in show:
            row = table[p][t - 1]
            cols = [str(t)] + [_fmt(row[f"grad_norm_{k}"]) for k in norms] + [_fmt(row["factor_mean"])]
            if jf.forget is not None:
                cols += [_fmt(row["forget_mean"]), _fmt(row["remainder_mean"])]
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
    if out:
        _write_csv(out, points, resolved, names, table, T)
        click.echo(f"wrote {out}")


def _table(jf, norms, loss) -> list[list[dict]]:
    """Per point, per t: a dict of the CSV columns (means over the sequences)."""
    P, N, steps = jf.log_product.shape
    size = jf.factor_size()  # (P, N, steps)
    cols = {f"grad_norm_{k}": v.cpu().numpy() for k, v in norms.items()}  # (P, steps)
    cols["factor_mean"] = size.mean(1)
    cols["log10_product_mean"] = (jf.log_product / math.log(10)).mean(1)
    if jf.forget is not None:
        cols["forget_mean"] = jf.forget.mean(axis=(1, 3))
        cols["remainder_mean"] = jf.remainder_size().mean(1)
    for g, v in jf.gates.items():
        cols[f"gate_{g}_mean"] = v.mean(axis=(1, 3))
    loss = loss.detach().cpu().numpy()
    return [[{"loss_T": float(loss[p]), **{k: float(v[p, t]) for k, v in cols.items()}} for t in range(steps)]
            for p in range(P)]


def _fmt(v: float) -> str:
    if isinstance(v, (float, np.floating)) and not math.isfinite(v):
        return str(v)
    return f"{v:.4g}"


def _echo_table(head, rows):
    cells = [head] + rows
    widths = [max(len(r[k]) for r in cells) for k in range(len(head))]
    for r in cells:
        click.echo("  " + "  ".join(c.rjust(w) for c, w in zip(r, widths)))


def _write_csv(path, points, resolved, names, table, T):
    cols = list(table[0][0])
    try:
        with open(path, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["point", *names, "T", "t", *cols])
            for p, q in enumerate(resolved):
                values = [repr(_value(q, name)) for name in names]
                for t, row in enumerate(table[p], start=1):
                    writer.writerow([p + 1, *values, T, t, *(repr(row[c]) for c in cols)])
    except OSError as err:
        raise LandscapeError(f"cannot write {path!r}: {err.strerror}") from None
