"""Latching rates with 95 % Wilson intervals from `landscape train` result files (one file per base seed).

    python docs/results/latching_rates.py SUMMARY.csv MODELS.csv RUN.csv [RUN.csv ...]

A model has latched when its final test accuracy (stratified protocol) exceeds 0.9, the criterion
of `landscape train --success` and of `reproduce latching`. Writes one summary row per file and a
pooled row, and one row per model.
"""
import csv
import math
import sys

SUCCESS = 0.9


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The 95 % Wilson score interval of k successes in n trials."""
    p, d = k / n, 1 + z * z / n
    centre, half = (p + z * z / (2 * n)) / d, z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return centre - half, centre + half


def main(summary_path, models_path, *runs):
    summary, models = [], []
    for path in runs:
        rows = [r for r in csv.DictReader(open(path, newline=""))]
        last = max(int(r["epoch"]) for r in rows)
        rows = sorted((r for r in rows if int(r["epoch"]) == last), key=lambda r: (int(r["T"]), int(r["repeat"])))
        for r in rows:
            models.append({"file": path.rsplit("/", 1)[-1], "cell": r["cell"], "T": r["T"], "repeat": r["repeat"],
                           "seed": r["seed"], "data_seed": r["data_seed"], "test_acc": f"{float(r['test_acc']):.4f}",
                           "latched": int(float(r["test_acc"]) > SUCCESS)})
    groups = {}
    for m in models:
        groups.setdefault(m["file"], []).append(m["latched"])
    groups["pooled"] = [m["latched"] for m in models]
    for name, ok in groups.items():
        lo, hi = wilson(sum(ok), len(ok))
        summary.append({"file": name, "models": len(ok), "latched": sum(ok), "rate": round(sum(ok) / len(ok), 3),
                        "wilson95_lo": round(lo, 3), "wilson95_hi": round(hi, 3)})
    for path, rows in ((summary_path, summary), (models_path, models)):
        with open(path, "w", newline="") as fh:
            w = csv.DictWriter(fh, list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    for s in summary:
        print(f"{s['file']}: {s['latched']}/{s['models']} = {s['rate']:.2f} (95 % CI {s['wilson95_lo']:.2f}-"
              f"{s['wilson95_hi']:.2f})")


if __name__ == "__main__":
    main(*sys.argv[1:])
