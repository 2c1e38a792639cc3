"""Pascanu, Mikolov & Bengio 2013, §4 and Fig. 7, scaled down: the temporal-order task (task
``temporal-order``, Hochreiter & Schmidhuber 1997 Exp. 6a) learned by a tanh RNN of 50 units with
plain SGD, SGD with norm clipping (SGD-C, Algorithm 1) and SGD-C with the regulariser Omega
(SGD-CR, ``--omega``; landscape/train/omega.py): the success rate against T for each.

Which version is followed: the ICML paper (docs/reference.md §14) for the numbers it states,
    lr 0.01, no momentum; clipping threshold 1; alpha = 4; minibatches of 20; 50 units, biases 0;
    a success is a model with < 1 % errors on fresh sequences.
The arXiv v2 values differ (lr 0.001, alpha = 2); the Omega is the paper's equation with norms
(the official code squares them), its gradient on the recurrent weights only (train/omega.py).

What the paper leaves open or we cannot afford, and what is chosen here:
    task        the official code's placement (tempOrder.py: the first marked symbol in
                [0.1T, 0.2T), the second in [0.5T, 0.6T)), class v0 + 2 v1; one-hot D = 6;
                a softmax over 4 logits (readout dense2 as Dense(4)) and cross-entropy
    init        Keras 2's (input glorot-uniform, recurrent orthogonal, zero biases; readout
                glorot-uniform), not the paper's "smart tanh" (sparse W_rec, 15 incoming
                connections, spectral radius 0.95): an orthogonal W_rec has spectral radius 1,
                the nearest the project's initialisers come to it
    budget      the paper allows up to 5M updates; here ``Config.epochs`` passes over
                ``Config.n`` training sequences (80 % of n; updates = epochs * 0.8 n / 20), the
                same for every method; the criterion is the paper's (< 1 % errors) on
                ``Config.n_test`` fresh sequences (the paper: 10,000)
    lengths     ``Config.lengths`` (the paper: 50 to 200 and beyond)
    seeds       ``Config.repeats`` per method and T (the paper: 5), the same seeds for every
                method (each model's data and initialisation depend on T and its repeat only)
    float32     as the paper's Theano runs (the project's training default)

Outputs (in OUT): pascanu-fig7.csv (one row per model and epoch; resumable per (method, T)
group), pascanu-fig7-summary.csv (per method and T: models, success rate, mean and sd of the final
test accuracy, mean final training loss), pascanu-fig7.pdf/.png (success rate and final test
accuracy against T, one line per method; chance is 0.25).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

NAME = "pascanu-fig7"
DESCRIPTION = "Pascanu et al. 2013 Fig. 7 scaled down: temporal order, 50-unit tanh RNN, SGD / SGD-C / SGD-CR vs T"

LR, CLIP, ALPHA, BATCH, HIDDEN = 0.01, 1.0, 4.0, 20, 50  # ICML §4
SUCCESS = 0.99  # < 1 % errors on fresh sequences
METHODS = {"SGD": (None, 0.0), "SGD-C": (CLIP, 0.0), "SGD-CR": (CLIP, ALPHA)}  # method -> (clip, alpha)


@dataclass(frozen=True)
class Config:
    lengths: tuple[int, ...]
    n: int  # sequences per data set (80 % train, 20 % validation)
    n_test: int  # fresh test sequences
    epochs: int
    repeats: int
    hidden: int = HIDDEN


CONFIGS = {
    "quick": Config(lengths=(10,), n=100, n_test=100, epochs=1, repeats=2, hidden=8),
    "default": Config(lengths=(10, 20, 40), n=2000, n_test=2000, epochs=10, repeats=5),
    "exact": Config(lengths=(10, 20, 50, 100), n=10000, n_test=10000, epochs=50, repeats=5),
}


def jobs(config: Config) -> list:
    """Two populations: SGD and SGD-C together (they differ in the clipping threshold, a member's
    setting), SGD-CR apart (Omega's weight belongs to the spec)."""
    from ..train import Member, TrainSpec

    out = []
    for alpha in sorted({a for _, a in METHODS.values()}):
        spec = TrainSpec.of(cell="srnn", task="temporal-order", hidden=config.hidden, n=config.n, n_test=config.n_test,
                            epochs=config.epochs, batch=BATCH, optimizer="sgd", readout="dense2", dtype="float32",
                            omega=alpha)
        members = [Member(T=T, seed=1000 * T + r, data_seed=T, lr=LR, clip=clip, init="keras", protocol="stratified",
                          group=f"{method}/T{T}", labels=(("method", method), ("repeat", r)))
                   for method, (clip, a) in METHODS.items() if a == alpha
                   for T in config.lengths for r in range(config.repeats)]
        out.append((spec, members))
    return out


def summarise(rows: list[dict]) -> list[dict]:
    """Per method and T: models, success rate (final test accuracy >= SUCCESS), mean and sd of the
    final test accuracy, mean final training loss."""
    import numpy as np

    from ..train.summary import final_rows

    out = []
    last = final_rows(rows)
    for method in METHODS:
        for T in sorted({int(r["T"]) for r in last}):
            sel = [r for r in last if r["method"] == method and int(r["T"]) == T]
            if not sel:
                continue
            acc = np.array([float(r["test_acc"]) for r in sel])
            out.append({"method": method, "T": T, "models": len(sel), "success_rate": float(np.mean(acc >= SUCCESS)),
                        "test_acc_mean": float(acc.mean()), "test_acc_sd": float(acc.std()),
                        "train_loss_mean": float(np.mean([float(r["train_loss"]) for r in sel])),
                        "epochs": int(sel[0]["epoch"])})
    return out


def run(out_dir, quick: bool = False, device: str = "auto", progress: bool | None = None,
        exact: bool | None = None) -> list[Path]:
    import time

    from .report import run_size, train_jobs, write_csv

    size = run_size(quick, exact)
    config = CONFIGS[size]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{NAME}-quick" if quick else NAME
    start = time.perf_counter()
    rows = train_jobs(NAME, jobs(config), out / f"{stem}.csv", device, progress, compile=False)
    summary = summarise(rows)
    paths = [out / f"{stem}.csv", write_csv(out / f"{stem}-summary.csv", summary)]
    paths += plot(summary, config, out, stem, quick)
    updates = config.epochs * (int(0.8 * config.n) // BATCH + (int(0.8 * config.n) % BATCH > 0))
    print(f"{NAME}: {time.perf_counter() - start:.0f} s ({size}); srnn H = {config.hidden}, lr {LR:g}, batch {BATCH}, "
          f"{updates} updates, {config.repeats} seeds; success = test accuracy >= {SUCCESS:g} on {config.n_test} "
          f"fresh sequences")
    for r in summary:
        print(f"  {r['method']:<7} T={r['T']:<4} success {r['success_rate']:.2f}  test accuracy "
              f"{r['test_acc_mean']:.3f} ({r['test_acc_sd']:.3f})  train loss {r['train_loss_mean']:.3f}")
    for path in paths:
        print(f"  wrote {path}")
    return paths


def plot(summary: list[dict], config: Config, out: Path, stem: str, quick: bool) -> list[Path]:
    from ..figures import new_figure, use_style
    from .common import save_pdf_png

    styles = {"SGD": ("tab:red", "o"), "SGD-C": ("tab:blue", "s"), "SGD-CR": ("tab:green", "^")}
    with use_style("paper"):
        fig = new_figure("double", aspect=0.36)
        axes = fig.subplots(1, 2, sharex=True)
        for shift, (method, (colour, marker)) in zip((0.98, 1.0, 1.02), styles.items()):
            sel = [r for r in summary if r["method"] == method]
            Ts = [r["T"] * shift for r in sel]  # side by side where the methods agree
            axes[0].plot(Ts, [r["success_rate"] for r in sel], color=colour, marker=marker, label=method)
            axes[1].errorbar(Ts, [r["test_acc_mean"] for r in sel], yerr=[r["test_acc_sd"] for r in sel],
                             color=colour, marker=marker, capsize=2, label=method)
        axes[0].set_ylabel(f"success rate (test acc. ≥ {SUCCESS:g})")
        axes[0].set_ylim(-0.05, 1.05)
        axes[1].axhline(0.25, color="0.6", linewidth=0.8, linestyle=":")
        axes[1].set_ylabel("final test accuracy (mean ± sd)")
        axes[1].set_ylim(0.0, 1.05)
        for ax in axes:
            ax.set_xlabel("T")
            ax.set_xticks(list(config.lengths))
        axes[0].legend(loc="best")
        fig.suptitle(f"temporal order, tanh RNN H = {config.hidden}, SGD lr {LR:g}, clip {CLIP:g}, α = {ALPHA:g}; "
                     f"{config.repeats} seeds, {config.epochs} epochs of {int(0.8 * config.n)} sequences")
        return save_pdf_png(fig, out, stem, quick)
