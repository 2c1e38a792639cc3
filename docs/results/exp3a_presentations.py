"""Presentations to success in `landscape train` runs of the two-sequence task (Hochreiter &
Schmidhuber 1997 Exp. 3a), one summary row per file:

    python docs/results/exp3a_presentations.py OUT.csv RUN.csv [RUN.csv ...]

A model succeeds at the first epoch whose test accuracy (stratified protocol: 2000 fresh
sequences) exceeds 0.9; its presentations are that epoch times the training rows (80 % of n = 1000:
epoch 0 is the untrained model, 0 presentations). Models that never succeed are counted apart.
"""
import csv
import sys

SUCCESS = 0.9
N = 1000  # --n of the runs


def main(out, *runs):
    summary = []
    for path in runs:
        rows = list(csv.DictReader(open(path, newline="")))
        first = {}
        for r in sorted(rows, key=lambda r: (int(r["repeat"]), int(r["epoch"]))):
            if float(r["test_acc"]) > SUCCESS and r["repeat"] not in first:
                first[r["repeat"]] = int(r["epoch"])
        models = sorted({r["repeat"] for r in rows}, key=int)
        epochs = max(int(r["epoch"]) for r in rows)
        train_rows = int(0.8 * N)
        pres = sorted(first[m] * train_rows for m in models if m in first)
        summary.append({"cell": rows[0]["cell"], "task": rows[0]["task"], "T": rows[0]["T"],
                        "file": path.rsplit("/", 1)[-1], "models": len(models), "epochs": epochs,
                        "train_rows": train_rows, "succeeded": len(pres),
                        "presentations_each": " ".join(str(p) for p in pres),
                        "final_test_acc_mean": round(sum(float(r["test_acc"]) for r in rows
                                                         if int(r["epoch"]) == epochs) / len(models), 3)})
    with open(out, "w", newline="") as fh:
        w = csv.DictWriter(fh, list(summary[0]))
        w.writeheader()
        w.writerows(summary)
    for s in summary:
        print(s)


if __name__ == "__main__":
    main(*sys.argv[1:])
