"""Bengio, Simard & Frasconi 1994, Fig. 2: how often gradient descent learns to latch one bit.

The minimal task (REFERENCE.md §3): one tanh unit x_t = tanh(w x_{t-1} + h_t), x_0 = 0 (the
``srnn`` cell with u = 1, b = 0). Two classes; the first L = 3 inputs h_1..h_L are free
parameters, one set per class; the inputs after them are Gaussian noise of variance s; the
targets are d = +-0.8 and the cost 1/2 sum_n (x_T - d_n)^2 over the training sequences.

(b) frequency of convergence against T = 5..60 at s = 0.2, w_0 = 1.25, w fixed: only the h_t
    are trained (as the figure's caption says);
(a) convergence density over the initial weight w_0 (0.5..2.5) x s (0..1) at T = 20, 18 runs per
    pair, w trained together with the h_t (w_0 is its initial value).

What the paper leaves open (REFERENCE §3 [?]) and this module chooses (all in ``Config``):
  training set   M = 5 sequences per class, their noise drawn once per run (a fixed set)
  initial h_t    uniform in [-0.1, 0.1], a fresh draw per run
  training       full-batch gradient descent on the summed cost, learning rate 0.1, at most
                 200 epochs; a run stops when it has converged
  runs           20 per T in (b) (T = 5..60), 18 per (w0, s) pair in (a) (11 x 11 pairs)
  convergence    every training sequence ends within 0.4 of its target, |x_T - d| < 0.4 (right
                 side of zero with a margin; the attractors of w = 1.25 sit at +-0.71)
Both panels are also computed the other way round (b with w trained, a with w fixed) and drawn
dashed / as a second map, because with w fixed at 1.25 Gaussian noise of variance 0.2
(sd 0.45) flips the latch within a few steps (the unit's input threshold is 0.08): the fixed-w
curve falls much faster than the paper's, the trained-w curve is closer to it.

Outputs: bengio-fig2.csv (one row per run: panel, w_trained, T, w0, s, run, converged, epochs,
final cost, final w), bengio-fig2-summary.csv, bengio-fig2.pdf/.png.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

NAME = "bengio-fig2"
DESCRIPTION = "Bengio et al. 1994 Fig. 2: convergence frequency of a latching tanh unit vs T, and over w0 x s"

# read off the paper's Fig. 2(b) (REFERENCE.md §3)
PAPER_B = {12: 1.0, 20: 0.8, 28: 0.5, 35: 0.3, 45: 0.05}


@dataclass(frozen=True)
class Config:
    L: int = 3
    M: int = 5  # training sequences per class
    lr: float = 0.1
    epochs: int = 200
    h_init: float = 0.1
    margin: float = 0.4
    target: float = 0.8
    T_b: tuple[int, ...] = tuple(range(5, 61))
    runs_b: int = 20
    s_b: float = 0.2
    w0_b: float = 1.25
    T_a: int = 20
    w0_a: tuple[float, ...] = tuple(np.round(np.linspace(0.5, 2.5, 11), 3))
    s_a: tuple[float, ...] = tuple(np.round(np.linspace(0.0, 1.0, 11), 3))
    runs_a: int = 18
    seed: int = 0


CONFIGS = {
    "quick": Config(T_b=(5, 15, 30), runs_b=4, w0_a=(0.75, 1.5, 2.25), s_a=(0.1, 0.5), runs_a=3, epochs=60),
    "default": Config(),
}


def simulate(T, w0, s, train_w: bool, config: Config, seed: int, dtype=torch.float64) -> dict:
    """Train one population of runs, each its own (T, w0, s): arrays (P,) in, dict of (P,) out.

    Returns converged (bool), epochs (to convergence, or config.epochs), cost (final), w (final).
    """
    from ..cells import get_cell
    from ..train.optim import PopulationOptimizer
    from ..train.population import unroll_outputs

    T = torch.as_tensor(np.asarray(T), dtype=torch.long)
    P, L, M = T.numel(), config.L, config.M
    N = 2 * M
    g = torch.Generator().manual_seed(seed)
    sign = torch.cat([torch.ones(M), -torch.ones(M)]).to(dtype)  # (N,) class +1 then -1
    d = config.target * sign  # (N,)
    S = int(T.max())
    sd = torch.as_tensor(np.sqrt(np.asarray(s, dtype=float)), dtype=dtype).reshape(1, P, 1, 1)
    noise = torch.randn((S - L, P, N, 1), generator=g, dtype=dtype) * sd  # (S - L, P, N, 1)
    h = ((torch.rand((P, 2, L), generator=g, dtype=dtype) * 2 - 1) * config.h_init).requires_grad_()
    w = torch.as_tensor(np.asarray(w0, dtype=float), dtype=dtype).reshape(P, 1, 1).clone().requires_grad_(train_w)
    cell = get_cell("srnn")
    fixed = {"u": torch.ones(P, 1, 1, dtype=dtype), "b": torch.zeros(P, 1, dtype=dtype)}
    trained = {"h": h, **({"w": w} if train_w else {})}
    lr = torch.full((P,), config.lr, dtype=dtype)
    opt = PopulationOptimizer("sgd", trained, lr)
    cls = torch.cat([torch.zeros(M, dtype=torch.long), torch.ones(M, dtype=torch.long)])  # (N,) index into h
    ends = T.reshape(P, 1).expand(P, N)
    converged = torch.zeros(P, dtype=torch.bool)
    epochs = torch.full((P,), config.epochs, dtype=torch.long)
    cost = torch.zeros(P, dtype=dtype)
    for epoch in range(config.epochs + 1):
        lead = h[:, cls, :].permute(2, 0, 1).unsqueeze(-1)  # (L, P, N, 1) the trainable inputs
        x = torch.cat([lead, noise])  # (S, P, N, 1)
        out = unroll_outputs(cell, {"w": w, **fixed}, x, ends, 1)[..., 0]  # (P, N)
        err = out - d
        cost = 0.5 * (err ** 2).sum(-1)  # (P,)
        with torch.no_grad():
            now = (err.abs() < config.margin).all(-1) & ~converged
            epochs[now] = epoch
            converged |= now
            lr.mul_((~converged).to(dtype))  # a converged run stops
        if epoch == config.epochs or bool(converged.all()):
            break
        grads = torch.autograd.grad(cost.sum(), list(trained.values()))
        opt.step(dict(zip(trained, grads)))
    return {"converged": converged.numpy(), "epochs": epochs.numpy(), "cost": cost.detach().numpy(),
            "w": w.detach().reshape(P).numpy()}


def compute(config: Config) -> list[dict]:
    """One row per run, both panels, w fixed and trained (one CPU thread, subnormals flushed:
    see ``landscape.train.train_population``)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    flushed = torch.set_flush_denormal(True)
    try:
        return _compute(config)
    finally:
        torch.set_num_threads(old)
        if flushed:
            torch.set_flush_denormal(False)


def _compute(config: Config) -> list[dict]:
    rows = []
    # (b): T sweep
    T = np.repeat(np.array(config.T_b), config.runs_b)
    run = np.tile(np.arange(config.runs_b), len(config.T_b))
    for k, train_w in enumerate((False, True)):
        r = simulate(T, np.full(T.size, config.w0_b), np.full(T.size, config.s_b), train_w, config,
                     seed=config.seed * 100 + 10 + k)
        rows += _rows("b", train_w, T, np.full(T.size, config.w0_b), np.full(T.size, config.s_b), run, r)
    # (a): w0 x s at T_a
    w0, s = np.meshgrid(config.w0_a, config.s_a, indexing="ij")
    w0 = np.repeat(w0.ravel(), config.runs_a)
    s = np.repeat(s.ravel(), config.runs_a)
    run = np.tile(np.arange(config.runs_a), len(config.w0_a) * len(config.s_a))
    T = np.full(w0.size, config.T_a)
    for k, train_w in enumerate((True, False)):
        r = simulate(T, w0, s, train_w, config, seed=config.seed * 100 + 20 + k)
        rows += _rows("a", train_w, T, w0, s, run, r)
    return rows


def _rows(panel, train_w, T, w0, s, run, r):
    return [{"panel": panel, "w_trained": int(train_w), "T": int(T[i]), "w0": float(w0[i]), "s": float(s[i]),
             "run": int(run[i]), "converged": int(r["converged"][i]), "epochs": int(r["epochs"][i]),
             "cost": float(r["cost"][i]), "w_final": float(r["w"][i])} for i in range(len(T))]


def summarise(rows) -> list[dict]:
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["panel"], r["w_trained"], r["T"], r["w0"], r["s"]), []).append(r)
    out = []
    for (panel, wt, T, w0, s), rs in sorted(groups.items()):
        out.append({"panel": panel, "w_trained": wt, "T": T, "w0": w0, "s": s, "runs": len(rs),
                    "frequency": float(np.mean([r["converged"] for r in rs])),
                    "mean_epochs": float(np.mean([r["epochs"] for r in rs]))})
    return out


def run(out_dir, quick: bool = False, device: str = "auto", progress: bool | None = None) -> list[Path]:
    from .report import write_csv

    config = CONFIGS["quick" if quick else "default"]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rows = compute(config)
    summary = summarise(rows)
    stem = "bengio-fig2-quick" if quick else "bengio-fig2"
    paths = [write_csv(out / f"{stem}.csv", rows), write_csv(out / f"{stem}-summary.csv", summary)]
    paths += plot(summary, config, out, stem, quick)
    seconds = time.perf_counter() - start
    b = {(r["w_trained"], r["T"]): r["frequency"] for r in summary if r["panel"] == "b"}
    print(f"{NAME}: {len(rows)} runs in {seconds:.0f} s; frequency of convergence at s = {config.s_b}, "
          f"w0 = {config.w0_b} (w fixed | w trained | paper):")
    for T, paper in PAPER_B.items():
        near = min(config.T_b, key=lambda t: abs(t - T))
        print(f"  T = {T:>2}{'' if near == T else f' (nearest run: {near})'}: {b.get((0, near), float('nan')):.2f} | "
              f"{b.get((1, near), float('nan')):.2f} | {paper:.2f}")
    for p in paths:
        print(f"  wrote {p}")
    return paths


def plot(summary, config: Config, out: Path, stem: str, quick: bool) -> list[Path]:
    from ..figures import new_figure, use_style
    from .common import save_pdf_png

    with use_style("paper"):
        fig = new_figure("double", aspect=0.34)
        gs = fig.add_gridspec(1, 4, width_ratios=[1, 1, 0.06, 2.2])
        maps = [fig.add_subplot(gs[0, 0]), fig.add_subplot(gs[0, 1])]
        cax = fig.add_subplot(gs[0, 2])
        ax = fig.add_subplot(gs[0, 3])
        w0s, ss = np.array(config.w0_a), np.array(config.s_a)
        for a, wt in zip(maps, (1, 0)):
            grid = np.full((len(w0s), len(ss)), np.nan)
            for r in summary:
                if r["panel"] == "a" and r["w_trained"] == wt:
                    grid[int(np.argmin(abs(w0s - r["w0"]))), int(np.argmin(abs(ss - r["s"])))] = r["frequency"]
            dw = (w0s[1] - w0s[0]) / 2 if len(w0s) > 1 else 0.5
            ds = (ss[1] - ss[0]) / 2 if len(ss) > 1 else 0.5
            im = a.imshow(grid.T, origin="lower", cmap="gray", vmin=0, vmax=1, aspect="auto",
                          extent=(w0s[0] - dw, w0s[-1] + dw, ss[0] - ds, ss[-1] + ds), interpolation="nearest")
            a.set_xlabel("initial weight $w_0$")
            a.set_title(f"(a) T = {config.T_a}, w {'trained' if wt else 'fixed'}")
        maps[0].set_ylabel("noise variance s")
        maps[1].tick_params(labelleft=False)
        fig.colorbar(im, cax=cax, label="convergence frequency")
        for wt, style in ((0, dict(color="k", width=0.8, label="w fixed at $w_0$ (caption)")),):
            sel = sorted((r for r in summary if r["panel"] == "b" and r["w_trained"] == wt), key=lambda r: r["T"])
            ax.bar([r["T"] for r in sel], [r["frequency"] for r in sel], **style)
        sel = sorted((r for r in summary if r["panel"] == "b" and r["w_trained"] == 1), key=lambda r: r["T"])
        ax.plot([r["T"] for r in sel], [r["frequency"] for r in sel], color="tab:blue", marker=".",
                markersize=3, linewidth=0.9, label="w trained from $w_0$")
        ax.plot(list(PAPER_B), list(PAPER_B.values()), "D", color="tab:red", markersize=3.5,
                label="read off the paper")
        ax.set_xlabel("sequence length T")
        ax.set_ylabel("frequency of convergence")
        ax.set_ylim(0, 1.05)
        ax.set_title(f"(b) s = {config.s_b}, $w_0$ = {config.w0_b}, {config.runs_b} runs per T")
        ax.legend(loc="upper right")
        fig.suptitle(f"Bengio et al. 1994 Fig. 2 redone: {config.M} training sequences per class, gradient descent "
                     f"(lr {config.lr}, <= {config.epochs} epochs);\na run has converged when every training "
                     f"sequence ends within {config.margin} of its target")
        return save_pdf_png(fig, out, stem, quick)
