"""The latching reproduction (docs/reference.md §1) trained as populations against one model at a time.

The reproduction trains, for srnn and lstm, one-unit models on latch at 26 lengths T x 30 repeats
(Keras defaults: Dense(2, softmax), Adam lr 1e-3, batch 16, validation_split 0.2, 5 epochs of
N = 10000 rows). The candidate is ``landscape.train.train_population``: all 26 x 30 models of a cell
in one population. The baseline is the usual script: for each model a ``torch.nn.RNN`` / ``LSTM``
with an ``nn.Linear(1, 2)`` readout, ``nn.CrossEntropyLoss`` and ``torch.optim.Adam``, trained on
its own, with the validation loss and accuracy after every epoch (as Keras reports them).

Both train the same number of steps of the same batch size on the same data: a shortened run
(fewer rows, one epoch) that keeps every length and the full population. The baseline is timed on
one repeat of each length and multiplied by 30 (one model's cost does not depend on the others).
The ratio is measured on that work; the time of the full reproduction (5 epochs of 10000 rows:
2500 steps) is extrapolated from it by the number of steps, for both.
"""
from __future__ import annotations

import math
from dataclasses import replace

import torch
import torch.nn.functional as F

from .common import Row, Settings, speedup_row, timed

NAME = "training"
LENGTHS = [2, 5, 8, 10, 15, 20, 25, 30] + list(range(30, 210, 10))  # as in the question (30 twice)
FULL_STEPS = 5 * math.ceil(8000 / 16)  # 5 epochs of the 8000 training rows of N = 10000


def run(s: Settings) -> list[Row]:
    from landscape.train import Member, TrainSpec, train_population

    lengths, repeats, n = ([2, 5], 2, 64) if s.quick else (LENGTHS, 30, 400)
    rows = []
    for cell, options in (("srnn", ()), ("lstm", (("gate", "hard_sigmoid"),))):
        spec = TrainSpec.of(cell=cell, cell_options=options, task="latch", n=n, epochs=1, batch=16,
                         optimizer="adam-keras", readout="dense2", dtype="float32")
        members = [Member(T=T, seed=r, lr=1e-3, init="keras") for T in lengths for r in range(repeats)]
        loop = _one_at_a_time(cell, lengths, n, spec.batch, spec.val_fraction)
        steps = math.ceil(int(n * (1 - spec.val_fraction)) / spec.batch)

        def population():
            train_population(spec, members, device="cpu", progress=False)

        def baseline():
            loop()
            return repeats  # one repeat of each length, times the repeats

        small = replace(spec, n=48)
        warm = {"population": lambda: train_population(small, members[:1], device="cpu", progress=False),
                "loop": _one_at_a_time(cell, lengths[:1], 48, spec.batch, spec.val_fraction)}
        res = timed(s, {"population": population, "loop": baseline}, warmup=warm)
        factor = FULL_STEPS / steps
        note = (f"{len(members)} models ({len(lengths)} lengths x {repeats} repeats), {steps} steps of batch "
                f"{spec.batch} + 2 evaluations; loop timed on 1 repeat x{repeats}. Full reproduction "
                f"(x{factor:.0f} steps) extrapolates to {res['population']['median'] * factor / 60:.1f} min as a "
                f"population vs {res['loop']['median'] * factor / 3600:.2f} h one at a time"
                + ("; lstm: Keras hard_sigmoid gates, torch.nn.LSTM sigmoid" if cell == "lstm" else ""))
        rows.append(speedup_row(NAME, f"latching {cell}: {len(members)} models, {steps} steps",
                                "train_population", f"torch.nn.{'RNN' if cell == 'srnn' else 'LSTM'} + optim, "
                                "one model at a time", res, "population", "loop", note=note))
    return rows


def _one_at_a_time(cell, lengths, n, batch, val_fraction):
    """Train one model per length for one epoch (float32), Keras' validation split and evaluations."""
    from landscape.tasks import get_task

    data = get_task("latch").make(tuple(lengths), n, 0)
    x_all = data.inputs.permute(1, 0, 2).to(torch.float32)  # (n, T_max, 1)
    y_all = data.targets[lengths[0]].long()
    n_train = int(n * (1 - val_fraction))

    def loop():
        for T in lengths:
            torch.manual_seed(T)
            rnn = (torch.nn.RNN if cell == "srnn" else torch.nn.LSTM)(1, 1, batch_first=True)
            dense = torch.nn.Linear(1, 2)
            opt = torch.optim.Adam([*rnn.parameters(), *dense.parameters()], lr=1e-3)
            x, y = x_all[:, :T], y_all

            def evaluate():
                with torch.no_grad():
                    out, _ = rnn(x[n_train:])
                    logits = dense(out[:, -1])
                    return F.cross_entropy(logits, y[n_train:]), (logits.argmax(-1) == y[n_train:]).float().mean()

            evaluate()  # epoch 0, as the population trainer records it
            order = torch.randperm(n_train)
            for start in range(0, n_train, batch):
                rows = order[start:start + batch]
                out, _ = rnn(x[rows])
                loss = F.cross_entropy(dense(out[:, -1]), y[rows])
                opt.zero_grad()
                loss.backward()
                opt.step()
            evaluate()

    return loop
