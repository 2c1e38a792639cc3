"""The four terms of the LSTM's dc_t/dc_{t-1} against t, and the products they make along t.

Draws a result of ``landscape.analyses.lstm_terms.compute`` (``LSTMTermsResult``): per forget bias
b_f, the median over sequences of |term| at every t, its 10-90 % band, and the log10 running
products. Compute lives in ``landscape.lstm_terms`` and the analysis; this module only draws.
"""
from __future__ import annotations

import numpy as np

from .style import figure_of, new_figure

TERM_STYLE = {  # name -> (label, colour, line style)
    "forget": (r"$\mathrm{diag}(f_t)$", "tab:blue", "-"),
    "through_f": (r"$\mathrm{diag}(c_{t-1})\,\partial f_t/\partial c_{t-1}$", "tab:orange", "-"),
    "through_z": (r"$\mathrm{diag}(i_t)\,\partial z_t/\partial c_{t-1}$", "tab:green", "-"),
    "through_i": (r"$\mathrm{diag}(z_t)\,\partial i_t/\partial c_{t-1}$", "tab:purple", "-"),
    "total": (r"total $\partial c_t/\partial c_{t-1}$", "k", "--"),
}
BF_COLOURS = ("tab:red", "tab:olive", "tab:cyan", "tab:brown", "tab:pink")


def plot_terms_vs_t(result, index: int = 0, ax=None, legend: bool = True):
    """|term| against t (median over the sequences, log scale) for the forget bias
    ``result.b_f[index]``, with the 10-90 % band of the forget term and of the total."""
    _, ax = figure_of(ax)
    t = result.t
    for name, (label, colour, style) in TERM_STYLE.items():
        med = result.median[name][index]
        ok = med > 0
        ax.plot(t[ok], med[ok], color=colour, linestyle=style, label=label)
        if name in ("forget", "total"):
            lo, hi = result.q10[name][index], result.q90[name][index]
            ax.fill_between(t, np.maximum(lo, 1e-300), hi, color=colour, alpha=0.15, linewidth=0)
    ax.set_yscale("log")
    ax.set_xlabel("t")
    ax.set_ylabel("|term| (median over sequences)")
    ax.set_title(f"$b_f$ = {result.b_f[index]:g}")
    if legend:
        ax.legend(loc="lower right")
    return ax


def plot_products(result, ax=None, legend: bool = True):
    """log10 of the running product from c_1 to c_t against t, per forget bias (colour): of the
    total one-step Jacobians (solid), of the forget term alone (dashed) and the whole derivative
    d c_t / d c_1 with the output-gate paths (dotted); medians over the sequences."""
    from matplotlib.lines import Line2D

    _, ax = figure_of(ax)
    t = result.t[1:]
    styles = (("-", "product of totals", "prod_total"), ("--", r"product of $f_t$ alone", "prod_forget"),
              (":", r"whole $\partial c_t/\partial c_1$", "whole"))
    for k, b in enumerate(result.b_f):
        colour = BF_COLOURS[k % len(BF_COLOURS)]
        for style, _, key in styles:
            ax.plot(t, getattr(result, key)[k], color=colour, linestyle=style)
    ax.set_xlabel("t")
    ax.set_ylabel(r"$\log_{10}$ |product from $c_1$ to $c_t$|")
    if legend:
        colours = [Line2D([], [], color=BF_COLOURS[k % len(BF_COLOURS)], label=f"$b_f$ = {b:g}")
                   for k, b in enumerate(result.b_f)]
        ax.legend(handles=colours, loc="lower left")
    ax.set_title("products: solid of the totals,\ndashed of $f_t$ alone,\n"
                 r"dotted: the whole $\partial c_t/\partial c_1$")
    return ax


def plot_lstm_terms(result):
    """One panel of terms per forget bias, then the products: a double-width Figure."""
    B = len(result.b_f)
    fig = new_figure("double", aspect=0.36)
    axes = fig.subplots(1, B + 1, sharex=True, gridspec_kw={"width_ratios": [1] * B + [1.25]})
    ymin = min(float(np.min(m[m > 0])) for m in (result.median[n] for n in TERM_STYLE) if np.any(m > 0))
    for k in range(B):
        plot_terms_vs_t(result, k, ax=axes[k], legend=k == 0)
        axes[k].set_ylim(max(ymin, 1e-8) / 2, 2.0)
        if k:
            axes[k].set_ylabel("")
    plot_products(result, ax=axes[B], legend=True)
    fig.suptitle("The four terms of " + r"$\partial c_t/\partial c_{t-1}$" + f" for the one-unit {result.cell} "
                 f"on the latch task\n({result.init}; medians and 10-90 % bands over N = {result.n} sequences)")
    return fig
