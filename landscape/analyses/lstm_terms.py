"""The blog's four terms of the LSTM's dc_t/dc_{t-1}, in numbers (seed 002: "Why are LSTMs better
than Elman RNNs?", docs/reference.md §6).

The claim: dc_t/dc_{t-1} = diag(f_t) + (three terms through the gates), and the first, the forget
gate itself, carries the gradient. Here each term is computed separately along the latch task's
sequences (``landscape.lstm_terms``; convention in its docstring: h_{t-1} = o_{t-1} tanh(c_{t-1})
with o_{t-1} held, which is exact for these cells) for the one-unit ``lstm`` at forget bias
b_f = 0, 1, 2:

  base   the cell's default point (every weight 1, every other bias 0) with b_f set: the figure;
  keras  a population of Keras-2-initialised one-unit LSTMs (glorot/orthogonal, as the question's
         code) with b_f set: the CSV's second block, means over the population.

Result (T = 50, N = 1000; docs/results/lstm-terms-summary.csv): the claim holds as a share and
fails as a product at the base point. There the forget term is 66 / 82 / 90 % of the summed sizes
at b_f = 0 / 1 / 2, but the block-input term diag(i_t) dz_t/dc_{t-1} (|.| ~ 0.24 at b_f = 0,
weights 1) is what keeps the gradient alive: log10 |product of the totals| from c_1 to c_50 is
-5.9 / -1.6 / -0.9 against -14.5 / -4.9 / -1.7 for the product of f_t alone. For Keras-initialised
cells (small weights) the forget term carries it (83-90 %) and the two products agree within
0.6 decades (the gate terms there even lower the total: -15.4 against -14.8 at b_f = 0). The
output-gate paths the blog leaves out change the whole d c_50 / d c_1 by <= 0.3 decades.

Outputs: lstm-terms.csv (one row per init and b_f: the mean |term| of each term over the
sequences and t, its share of the four, and log10 of the median over sequences of the product of
the total one-step Jacobians from c_1 to c_T, of the forget term alone, and of the whole
derivative d c_T / d c_1 with the output-gate paths), lstm-terms.pdf/.png.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

NAME = "lstm-terms"
DESCRIPTION = "The four terms of the LSTM's dc_t/dc_{t-1} against t on the latch task at forget bias 0, 1, 2"


@dataclass(frozen=True)
class Config:
    cell: str = "lstm"
    T: int = 50
    n: int = 1000
    noise: float = 0.1  # the latch task's noise sd
    b_f: tuple[float, ...] = (0.0, 1.0, 2.0)
    keras_models: int = 100
    seed: int = 0


CONFIGS = {"quick": Config(T=8, n=16, keras_models=3), "default": Config()}


@dataclass
class LSTMTermsResult:
    """Per forget bias (axis 0, ``b_f``) and step t = 1..T (axis 1) for the base point:

    median, q10, q90   term name -> (B, T): the median and 10 / 90 % quantiles of |term| over the
                       sequences (names of ``landscape.lstm_terms.TERMS`` and "total")
    prod_total         (B, T - 1): log10 |product of the totals from c_1 to c_t|, t = 2..T, median
    prod_forget        (B, T - 1): the same for the forget term alone (prod of f_t)
    whole              (B, T - 1): log10 |d c_t / d c_1| of the whole unroll, median
    rows               the CSV rows (base and keras)
    """

    cell: str
    init: str
    T: int
    n: int
    b_f: tuple[float, ...]
    t: np.ndarray
    median: dict
    q10: dict
    q90: dict
    prod_total: np.ndarray
    prod_forget: np.ndarray
    whole: np.ndarray
    rows: list = field(default_factory=list)
    seconds: float = 0.0


def population(config: Config, init: str) -> dict[str, torch.Tensor]:
    """Parameters name -> (B * models, *shape): the base point or Keras draws, b_f set per block."""
    from ..cells import get_cell

    cell = get_cell(config.cell)
    B = len(config.b_f)
    if init == "base":
        base = cell.default_params(1, 1)
        params = {k: v.unsqueeze(0).repeat(B, *([1] * v.dim())) for k, v in base.items()}
        models = 1
    else:
        models = config.keras_models
        g = torch.Generator().manual_seed(config.seed + 1)
        params = cell.init_params("keras", 1, 1, B * models, g)
    params["b_f"] = torch.tensor(np.repeat(config.b_f, models), dtype=torch.float64).reshape(-1, 1)
    return params


def compute(config: Config) -> LSTMTermsResult:
    from ..cells import get_cell
    from ..lstm_terms import (
        TERMS,
        log10_product,
        lstm_jacobian_terms,
        summarise,
        term_sizes,
        whole_dct_dc1,
    )
    from ..tasks import get_task

    start = time.perf_counter()
    cell = get_cell(config.cell)
    data = get_task("latch", noise=config.noise).make((config.T,), config.n, config.seed)
    rows, stats = [], {}
    for init in ("base", "keras"):
        params = population(config, init)
        terms = lstm_jacobian_terms(cell, params, data, config.T, 1)  # (P, N, T, 1, 1)
        whole = whole_dct_dc1(cell, params, data, config.T, 1)  # (P, N, T, 1, 1)
        per_model = summarise(terms, whole)
        models = len(per_model) // len(config.b_f)
        for k, b in enumerate(config.b_f):
            block = per_model[k * models:(k + 1) * models]
            row = {"cell": config.cell, "init": init, "models": models, "b_f": b, "T": config.T, "n": config.n}
            for col in block[0]:
                values = np.array([r[col] for r in block])
                row[col] = float(values.mean())
                if models > 1 and col in ("share_forget", "log10_prod_total", "log10_whole_dcT_dc1"):
                    row[f"{col}_sd"] = float(values.std(ddof=1))
            rows.append(row)
        if init == "base":
            sizes = term_sizes(terms)  # (B, N, T)
            stats = {
                "median": {k: np.median(v, 1) for k, v in sizes.items()},
                "q10": {k: np.quantile(v, 0.1, 1) for k, v in sizes.items()},
                "q90": {k: np.quantile(v, 0.9, 1) for k, v in sizes.items()},
                "prod_total": np.median(log10_product(terms["total"], start=2), 1),
                "prod_forget": np.median(log10_product(terms["forget"], start=2), 1),
                "whole": np.median(np.log10(np.abs(whole[:, :, 1:, 0, 0])), 1),
            }
    assert set(stats["median"]) == {*TERMS, "total"}
    return LSTMTermsResult(cell=config.cell, init="base point: weights 1, other biases 0", T=config.T,
                           n=config.n, b_f=tuple(config.b_f), t=np.arange(1, config.T + 1), rows=rows,
                           seconds=time.perf_counter() - start, **stats)


def run(out_dir, quick: bool = False, device: str = "auto", progress: bool | None = None) -> list[Path]:
    from ..figures import use_style
    from ..figures.lstm_terms import plot_lstm_terms
    from .common import save_pdf_png
    from .report import write_csv

    config = CONFIGS["quick" if quick else "default"]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = compute(config)
    stem = "lstm-terms-quick" if quick else "lstm-terms"
    paths = [write_csv(out / f"{stem}.csv", result.rows)]
    with use_style("paper"):
        paths += save_pdf_png(plot_lstm_terms(result), out, stem, quick)
    print(f"{NAME}: one-unit {config.cell} on latch, T = {config.T}, N = {config.n}, in {result.seconds:.1f} s")
    print("  init   b_f  mean|f_t|  mean|through f|  mean|through z|  mean|through i|  share f  "
          "log10 prod total  log10 prod f  log10 whole")
    for r in result.rows:
        print(f"  {r['init']:<6} {r['b_f']:>3g}  {r['mean_abs_forget']:>9.3g}  {r['mean_abs_through_f']:>15.3g}  "
              f"{r['mean_abs_through_z']:>15.3g}  {r['mean_abs_through_i']:>15.3g}  {r['share_forget']:>7.3f}  "
              f"{r['log10_prod_total']:>16.2f}  {r['log10_prod_forget']:>12.2f}  {r['log10_whole_dcT_dc1']:>11.2f}")
    for p in paths:
        print(f"  wrote {p}")
    return paths
