"""Training data for a population: data sets made once per data seed, each model's split into
training and evaluation rows (its protocol), and each model's shuffle per epoch.

Protocols (docs/reference.md §1):

``keras-split``  Keras' ``validation_split``: the validation set is the LAST ``val_fraction`` of the
                 rows, taken before any shuffling (for latch these are all label 0); the model
                 trains on the first rows, shuffled every epoch.
``stratified``   the rows are shuffled (seeded by the data seed) and split class by class, so the
                 validation set has the class balance of the data; a fresh test set (another seed,
                 ``n_test`` rows) measures generalisation.
``all``          no validation: train on every row (tasks without classes: target, bengio).

Shuffling is counter-based: a model's order in epoch e is the argsort of a 32-bit hash of
(seed, e, row), so it depends only on the model's own seed, never on its place in the population,
and the whole population is shuffled in one vectorised call.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from dataclasses import dataclass

from ..lazy import torch

from ..tasks import Task
from ..errors import LandscapeError

if TYPE_CHECKING:
    from torch import Tensor

PROTOCOLS = ("keras-split", "stratified", "all")
_M32 = 0xFFFFFFFF


def check_protocol(name: str) -> str:
    if name not in PROTOCOLS:
        raise LandscapeError(f"unknown protocol {name!r}; choose from: {', '.join(PROTOCOLS)}")
    return name


def hash32(x: Tensor) -> Tensor:
    """A 32-bit integer mixer (Wellons' lowbias32 shape, multipliers < 2^31 so int64 never
    overflows), elementwise on int64 tensors holding values in [0, 2^32)."""
    x = x & _M32
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _M32
    x = x ^ (x >> 15)
    x = (x * 0x446CA68B) & _M32
    return x ^ (x >> 16)


def epoch_orders(seeds: Tensor, epoch: int, n: int) -> Tensor:
    """Each model's order of its n training rows in an epoch: seeds (P,) int64 -> (P, n) long."""
    key = hash32(hash32(seeds) ^ hash32(torch.full_like(seeds, epoch + 0x5BD1E995)))  # (P,)
    rows = hash32(torch.arange(n, dtype=torch.int64) + 0x27D4EB2F)  # (n,)
    keys = hash32(key.unsqueeze(-1) ^ rows)  # (P, n)
    return torch.argsort(keys, dim=-1, stable=True)


def derived_seed(seed: int, salt: int) -> int:
    """A seed for a second stream (the stratified split, the test set) of a data seed."""
    return int(hash32(torch.tensor([int(seed) * 1_000_003 + salt], dtype=torch.int64))[0]) + salt


@dataclass
class Split:
    """One (data seed, protocol): the training rows and the evaluation rows of its data set."""

    train: Tensor  # (n_train,) rows of the data set
    val: Tensor | None  # (n_val,) rows of the data set, or None
    test_seed: int | None  # seed of the fresh test set (stratified), or None


def split_rows(protocol: str, labels: Tensor | None, n: int, val_fraction: float, data_seed: int) -> Split:
    """The rows of one data set under a protocol (see the module docstring).

    labels (n,) class labels (0/1) or None for tasks without classes.
    """
    if protocol == "all":
        return Split(torch.arange(n), None, None)
    n_train = int(n * (1.0 - val_fraction))  # as Keras: split_at = int(n * (1 - validation_split))
    if n_train < 1 or n_train >= n:
        raise LandscapeError(f"validation fraction {val_fraction} leaves {n_train} of {n} rows for "
                             f"training; choose a fraction that leaves both sets non-empty")
    if protocol == "keras-split":
        return Split(torch.arange(n_train), torch.arange(n_train, n), None)
    if labels is None:
        raise LandscapeError("protocol stratified needs a task with classes; use keras-split or all")
    g = torch.Generator().manual_seed(derived_seed(data_seed, 1))
    classes = torch.unique(labels)
    n_val = n - n_train
    counts = torch.stack([(labels == c).sum() for c in classes]).to(torch.float64)
    quota = counts * n_val / n  # largest remainder: class quotas summing to exactly n_val
    take = torch.floor(quota).long()
    short = n_val - int(take.sum())
    if short:
        take[torch.argsort(quota - take, descending=True, stable=True)[:short]] += 1
    val, train = [], []
    for c, k in zip(classes, take.tolist()):
        rows = torch.nonzero(labels == c).squeeze(-1)
        rows = rows[torch.randperm(rows.numel(), generator=g)]
        val.append(rows[:k])
        train.append(rows[k:])
    train = torch.cat(train)
    train = train[torch.randperm(train.numel(), generator=g)]
    val = torch.sort(torch.cat(val)).values
    return Split(train, val, derived_seed(data_seed, 2))


def make_inputs(task: Task, Ts: tuple[int, ...], n: int, seed: int):
    """task.make with its inputs laid out row-major for gathering: (n, T_max, D) or None."""
    data = task.make(tuple(sorted(set(Ts))), n, seed)
    x = None if data.inputs is None else data.inputs.permute(1, 0, 2).contiguous()
    return data, x
