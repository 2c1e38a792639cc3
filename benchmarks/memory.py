"""Peak memory of a 1001 x 1001 grid as T grows, against the memory budget.

Each case runs ``landscape.grid`` in a fresh process with an explicit budget (``memory=``) and
reports how far the resident set grew above its level just before the call: the peak resident
set (VmHWM, reset just before the call through /proc/self/clear_refs; where that is refused,
``resource.getrusage``'s ru_maxrss, which also counts the peak of the imports) minus the level
before (/proc/self/statm). The budget bounds
what one chunk may use and the final read of the surface (``plan.check_surface_read``: 8 T x 1001²
need about 122 MiB, so the budget is 128 MiB); the returned surface (len(T) x 1001 x 1001 float64)
is held on top, so the check is  peak increase <= budget + surface.  The engine keeps the state, not its history, so the
peak should not grow with T.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from .common import Row, Settings

NAME = "memory"
MiB = 1 << 20

# a child's resident-set measurement: rss_now(), reset_peak() and peak_rss(reset) (needs os, resource)
PEAK_RSS = r"""
def rss_now():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

def reset_peak():  # Linux >= 4.0: writing 5 to clear_refs resets the peak (VmHWM) to the current RSS
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False

def peak_rss(reset):
    if reset:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
"""

CHILD = r"""
import json, os, resource, sys, time
import torch
torch.set_num_threads(int(sys.argv[1]))
import landscape
from landscape import Axis, GridSpec

""" + PEAK_RSS + r"""
case, out, budget = json.loads(sys.argv[2]), sys.argv[3], int(sys.argv[4])
kw = dict(cell=case["cell"], task=case["task"], n=case["n"], fit=case["fit"],
          x=Axis(*case["x"]), y=Axis(*case["y"]))
warm = GridSpec.of(T=(2,), **{**kw, "x": Axis(case["x"][0], case["x"][1], case["x"][2], 5),
                            "y": Axis(case["y"][0], case["y"][1], case["y"][2], 5)})
landscape.grid(warm, out=out + ".warm.h5", force=True, device="cpu", progress=False)  # torch, h5py warmed up
base = rss_now()
reset = reset_peak()
t0 = time.perf_counter()
res = landscape.grid(GridSpec.of(T=tuple(case["T"]), **kw), out=out, force=True, device="cpu", memory=budget,
                     progress=False)
seconds = time.perf_counter() - t0
peak = peak_rss(reset)
print(json.dumps({"base": base, "peak": peak, "seconds": seconds, "surface": res.surface.loss.nbytes,
                  "how": "VmHWM after clear_refs" if reset else "ru_maxrss (includes the peak before the call)"}))
"""


def cases(s: Settings) -> tuple[int, list[dict]]:
    num = 101 if s.quick else 1001
    budget = (16 if s.quick else 128) * MiB  # the largest case's final read needs about 122 MiB
    Ts = [(1,), (20,)] if s.quick else [(1,), (10,), (50,), (200,), (1, 2, 5, 10, 20, 50, 100, 200)]
    out = []
    for T in Ts:
        out.append(dict(cell="pascanu", task="target", n=1, fit="auto", T=T,
                        x=("w", 4.5, 5.5, num), y=("b", -2.9, -1.9, num)))
    for T in Ts if s.quick else [(1,), (50,), (200,), (1, 2, 5, 10, 20, 50, 100, 200)]:
        out.append(dict(cell="srnn", task="latch", n=10, fit="auto", T=T,
                        x=("w", -1.0, 3.0, num), y=("b", -1.5, 1.5, num)))
    return budget, out


def run(s: Settings) -> list[Row]:
    budget, todo = cases(s)
    rows = []
    env = {**os.environ, "OMP_NUM_THREADS": str(s.threads)}
    env.pop("TRITON_INTERPRET", None)
    with tempfile.TemporaryDirectory() as tmp:
        for k, case in enumerate(todo):
            out = Path(tmp) / f"m{k}.h5"
            res = subprocess.run([sys.executable, "-c", CHILD, str(s.threads), json.dumps(case), str(out), str(budget)],
                                 capture_output=True, text=True, env=env)
            if res.returncode != 0:
                raise RuntimeError(f"memory case {case} failed:\n{res.stderr[-2000:]}")
            m = json.loads(res.stdout.strip().splitlines()[-1])
            grew = max(0, m["peak"] - m["base"])
            allowed = budget + m["surface"]
            T = case["T"]
            t_text = f"T={T[0]}" if len(T) == 1 else f"T={','.join(map(str, T))}"
            name = (f"{case['cell']} {case['task']}" + (f" n={case['n']}" if case["task"] != "target" else "")
                    + f" {case['x'][3]}x{case['y'][3]} {t_text}")
            note = (f"peak +{grew / MiB:.1f} MiB over {m['base'] / MiB:.0f} MiB before the call ({m['how']}); budget "
                    f"{budget / MiB:.0f} MiB + surface {m['surface'] / MiB:.1f} MiB; {m['seconds']:.1f} s")
            for path in Path(tmp).glob("m*.h5*"):
                path.unlink()
            rows.append(Row(NAME, name, "peak increase", "budget + surface", grew / MiB, allowed / MiB, "MiB",
                            grew / allowed, "peak / (budget + surface)", "<= 1", note=note,
                            extra={"seconds": m["seconds"], "budget_mib": budget / MiB,
                                   "surface_mib": m["surface"] / MiB}).check())
    return rows
