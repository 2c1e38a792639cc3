"""Peak memory of ``grid --dynamics``'s dynamics (``dynamics_map.grid_fields`` on one chunk of P
grid points) against its estimate, P x ``plan.dynamics_bytes_per_member``, which sizes the chunks.

    python -m benchmarks.dynamics_memory            # the cases below, one fresh process each

Each case runs in a fresh process: the grid's chunk of P points is set up as ``surface.compute_chunk``
sets it up (parameters, the task's data), one small chunk is computed first (torch warmed up), then
the resident set's peak (VmHWM, reset just before the call through /proc/self/clear_refs; where
that is refused, ru_maxrss, which also counts the peak before the call) minus its level before the
call (/proc/self/statm) is the measured peak. tracemalloc's peak is printed beside it (numpy's and
Python's allocations; torch's CPU tensors bypass it). Prints one row per case: the estimate is meant
to be an upper bound (ratio estimate / measured >= 1) that is not absurdly loose.
"""
from __future__ import annotations

import json
import subprocess
import sys

from .memory import PEAK_RSS

MiB = 1 << 20

CHILD = r"""
import json, os, resource, sys, tracemalloc
import numpy as np
import torch
torch.set_num_threads(1)
from landscape import dynamics_map, engine
from landscape.plan import dynamics_bytes_per_member
from landscape.resolved import resolve
from landscape.spec import GridSpec

""" + PEAK_RSS + r"""
case = json.loads(sys.argv[1])
r = resolve(GridSpec.of(dynamics=True, **case["spec"]))
problem = r.problem
data = problem.task.make(r.Ts, r.n, 0).to(torch.float64, torch.device("cpu"))
xs = torch.as_tensor(r.x.values(), dtype=torch.float64)
ys = torch.as_tensor(r.y.values(), dtype=torch.float64)

def chunk(start, stop):
    flat = torch.arange(start, stop)
    i, j = flat // r.y.num, flat % r.y.num
    params = engine.chunk_params(problem.base, r.refs, (xs[i], ys[j]), torch.float64, torch.device("cpu"))
    return params, np.arange(start, stop)

params, members = chunk(0, 2)
dynamics_map.grid_fields(problem, params, members, data, r.Ts, r.input, r.dynamics_options)  # warm-up
P = case["P"]
params, members = chunk(0, P)
base = rss_now()
reset = reset_peak()
tracemalloc.start()
dynamics_map.grid_fields(problem, params, members, data, r.Ts, r.input, r.dynamics_options)
traced = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()
peak = peak_rss(reset)
estimate = P * dynamics_bytes_per_member(problem, r.dynamics_options, r.dynamics_sequences)
print(json.dumps({"measured": peak - base, "traced": traced, "estimate": estimate,
                  "how": "VmHWM after clear_refs" if reset else "ru_maxrss (includes the peak before the call)"}))
"""

CASES = [  # (label, P, spec)
    ("srnn H=1, latch, 64 points", 64, dict(cell="srnn", task="latch", T=(10, 50), n=100, x="w:0:3:8", y="b:-1.5:1.5:8")),
    ("srnn H=1, latch, 256 points", 256, dict(cell="srnn", task="latch", T=(10, 50), n=100, x="w:0:3:16",
                                              y="b:-1.5:1.5:16")),
    ("gru H=1, latch, 64 points", 64, dict(cell="gru", task="latch", T=(10, 50), n=100, x="block_w:-1:5:8",
                                           y="block_b:-1.5:1.5:8")),
    ("lstm H=2, latch, 64 points", 64, dict(cell="lstm", task="latch", hidden=2, T=(10, 50), n=100,
                                            x="block_w:-1:5:8", y="block_b:-1.5:1.5:8")),
]


def measure(P: int, spec: dict, timeout: float = 900) -> dict:
    """One case in a fresh process: {"measured", "traced", "estimate" (bytes), "how"}."""
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps({"P": P, "spec": spec})], capture_output=True,
                         text=True, timeout=timeout)
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    print(f"{'case':32s} {'measured MiB':>13s} {'traced MiB':>11s} {'estimate MiB':>13s} {'estimate/measured':>18s}")
    for label, P, spec in CASES:
        m = measure(P, spec)
        print(f"{label:32s} {m['measured'] / MiB:13.1f} {m['traced'] / MiB:11.1f} {m['estimate'] / MiB:13.1f} "
              f"{m['estimate'] / max(m['measured'], 1):18.2f}   ({m['how']})", flush=True)


if __name__ == "__main__":
    main()
