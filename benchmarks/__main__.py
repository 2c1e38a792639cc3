"""python -m benchmarks [--quick] [--only NAME,...] [--out DIR] [--threads N] [--repeats R] [--clock cpu|wall]

Runs the benchmarks, prints a table of the ratios and writes it as CSV to DIR (default
benchmarks/results/): ``<date>.csv`` and ``latest.csv``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import (dynamics_jacobian_wide, dynamics_lyapunov, dynamics_map, floor, fused_cpu, fused_small_h, fusion,
               grid_vs_loop, memory, process, scaling, training, user_cell)
from .common import Settings, machine, pin, table, write_csv

MODULES = {m.NAME: m for m in (grid_vs_loop, floor, training, memory, fused_cpu, fused_small_h, user_cell, scaling,
                                process, dynamics_map, dynamics_jacobian_wide, dynamics_lyapunov, fusion)}
# fusion compiles C: on request only. fused-cpu and scaling need numba (a core dependency; they skip
# themselves with a note without it); their JAX rows, and process's, are skipped with a note without jax.
DEFAULT = [name for name in MODULES if name != fusion.NAME]
DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def parse(argv):
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes and one repeat: a smoke run, not a measurement")
    p.add_argument("--only", help=f"comma list of benchmarks to run: {', '.join(MODULES)} (default all but {fusion.NAME}, "
                        "which compiles C kernels)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the CSV (default benchmarks/results)")
    p.add_argument("--threads", type=int, default=1,
                   help="cores, torch threads and fused-kernel workers for both sides (default 1: on a shared machine "
                        "more threads measure the neighbours; the scaling and distributed benchmarks widen it "
                        "for their own timings)")
    p.add_argument("--repeats", type=int, help="timings per side, medians reported (default 3; 1 with --quick)")
    p.add_argument("--clock", choices=("cpu", "wall"),
                   help="cpu: process CPU time (default with one thread); wall: elapsed time (default otherwise)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse(argv)
    names = list(DEFAULT) if not args.only else [s.strip() for s in args.only.split(",") if s.strip()]
    bad = [n for n in names if n not in MODULES]
    if bad:
        print(f"unknown benchmark {bad[0]!r}; choose from: {', '.join(MODULES)}", file=sys.stderr)
        return 2
    if args.threads < 1:
        print(f"--threads must be >= 1, got {args.threads}", file=sys.stderr)
        return 2
    pin(args.threads)  # one core, one thread per library, for every side (and the processes they start)
    settings = Settings(quick=args.quick, repeats=args.repeats or (1 if args.quick else 3), threads=args.threads,
                        clock=args.clock or ("cpu" if args.threads == 1 else "wall"))
    info = machine()
    print(f"benchmarks on {info['cpu']} ({info['cores']} cores), torch {info['torch']}, {settings.threads} thread(s), "
          f"{settings.clock} clock, medians of {settings.repeats}" + (" -- QUICK: sizes too small to mean anything"
                                                                      if settings.quick else ""), flush=True)
    rows = []
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for name in names:
        start = time.perf_counter()
        got = MODULES[name].run(settings)
        rows.extend(got)
        print(f"  {name}: {len(got)} rows in {time.perf_counter() - start:.0f} s", flush=True)
        write_csv(rows, args.out / f"{stamp}.csv", settings)  # after each benchmark: a crash keeps what was measured
    write_csv(rows, args.out / "latest.csv", settings)
    print()
    print(table(rows))
    print(f"\nwrote {args.out / f'{stamp}.csv'} (and latest.csv)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
