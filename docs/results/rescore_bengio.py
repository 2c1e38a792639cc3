"""Rewrite the paper columns of the stored bengio-fig2 tables with today's PAPER_B (the frequencies,
from the runs, are kept as they are):

    PYTHONPATH=. python docs/results/rescore_bengio.py docs/results/bengio-fig2-summary.csv docs/results/bengio-fig2-sensitivity.csv
"""
import csv
import math
import sys

from landscape.analyses.bengio_fig2 import PAPER_B, max_dev


def rows_of(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def write(path, rows):
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def main(summary, sensitivity):
    rows = rows_of(summary)
    for r in rows:
        r["paper"] = PAPER_B.get(int(r["T"]), math.nan) if r["panel"] == "b" else math.nan
    write(summary, rows)
    rows = rows_of(sensitivity)
    setting = ("M", "noise", "lr", "w_trained", "criterion", "threshold", "epochs")
    freq = {}
    for r in rows:
        freq.setdefault(tuple(r[k] for k in setting), {})[int(r["T"])] = float(r["frequency"])
    for r in rows:
        r["paper"] = PAPER_B.get(int(r["T"]), math.nan)
        r["max_dev_vs_paper"] = max_dev(freq[tuple(r[k] for k in setting)])
    write(sensitivity, rows)


if __name__ == "__main__":
    main(*sys.argv[1:])
