"""`landscape grid --dynamics` of a 4-unit GRU with the fused Jacobian of the state map against the
same command from before it (``StateMap.jacobian`` by torch's autograd), as whole processes.

The command (issue 27, item 3):

    landscape grid --cell gru --hidden 4 --task latch --x w_h[0,0]:-4:4:11 --y b_h[0]:-2:2:11 --T 10,50
                   --dynamics --out F.h5

candidate: this checkout; baseline: the commit before ``landscape/kernels/numba/jacobian.py`` was
added (``--baseline-rev`` to name another), exported with ``git archive`` into a temporary folder.
Each side is a fresh ``python -P -m landscape`` process (-P: its PYTHONPATH, not the folder it runs in) with a fresh $LANDSCAPE_CACHE (so it computes
the grid), started alternately and pinned to one core (``process.child``); the time is its CPU time,
medians of ``--repeats`` (3). Both sides run once first, untimed, to fill the kernel cache. The
row's note says whether the two files' dynamics fields (the counts and lambda_T) are bit-identical.

A second row, in this process (pinned to one core, ``common.pin``): ``dynamics_map`` on the same 121
points (the part of the command that calls ``StateMap.jacobian``) with the kernel and with
$LANDSCAPE_FAST=0 (autograd), alternated, CPU time, medians; its note says whether the counts agree.

    python -m benchmarks.dynamics_jacobian [--baseline-rev REV] [--repeats N]
"""
from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import h5py

from .common import Settings, pin, speedup_row, table, timed
from .process import ROOT, alternate, child, process_row

NAME = "dynamics-jacobian"
ARGS = ("grid", "--cell", "gru", "--hidden", "4", "--task", "latch", "--x", "w_h[0,0]:-4:4:11", "--y",
        "b_h[0]:-2:2:11", "--T", "10,50", "--dynamics")
FIELDS = ("lyapunov", "n_at_bound", "n_cycles", "n_degenerate", "n_fixed", "n_marginal", "n_stable_cycles",
          "n_stable_fixed", "unsettled")


def baseline_rev() -> str:
    """The parent of the commit that added the fused Jacobian."""
    added = subprocess.run(["git", "log", "--format=%H", "--diff-filter=A", "--", "landscape/kernels/numba/jacobian.py"],
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    if not added:
        raise SystemExit("landscape/kernels/numba/jacobian.py has no commit here: give --baseline-rev")
    return f"{added[-1]}^"


def export(rev: str, folder: Path) -> Path:
    """The tree of ``rev`` written into folder (git archive)."""
    data = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def fields(path: Path) -> dict[str, bytes]:
    with h5py.File(path) as f:
        return {k: f[k][()].tobytes() for k in FIELDS}


def run(s: Settings, rev: str) -> list:
    with tempfile.TemporaryDirectory(prefix="landscape-bench-") as tmp:
        tmp = Path(tmp)
        base = export(rev, tmp / "baseline")
        count = iter(range(1 << 30))

        def side(tree: Path):
            def go():
                i = next(count)
                out = tmp / f"out{i}.h5"
                got = child([sys.executable, "-P", "-m", "landscape", *ARGS, "--out", str(out)],
                            {"PYTHONPATH": str(tree), "LANDSCAPE_CACHE": str(tmp / f"cache{i}")})
                got["file"] = out
                return got
            return go

        sides = {"fused": side(ROOT), "autograd": side(base)}
        for fn in sides.values():  # the kernel cache filled (numba's compilation is not the subject)
            fn()
        res = alternate(s, sides)
        same = fields(res["fused"]["last"]["file"]) == fields(res["autograd"]["last"]["file"])
        note = ("dynamics fields bit-identical" if same else "DYNAMICS FIELDS DIFFER") + f"; baseline {rev}"
        return [process_row("gru H=4 11x11 --dynamics, T=10,50 (whole process)", "fused Jacobian",
                            "autograd Jacobian", res, "fused", "autograd", note=note, benchmark=NAME)]


def in_process(s: Settings) -> list:
    import numpy as np
    import torch

    from landscape import engine, resolve
    from landscape.dynamics_map import dynamics_map
    from landscape.spec import GridSpec

    r = resolve(GridSpec.of(cell="gru", hidden=4, task="latch", x="w_h[0,0]:-4:4:11", y="b_h[0]:-2:2:11", T=(10, 50),
                            dynamics=True))
    xs, ys = torch.as_tensor(r.x.values()), torch.as_tensor(r.y.values())
    flat = torch.arange(len(xs) * len(ys))
    params = engine.chunk_params(r.problem.base, r.refs, (xs[flat // len(ys)], ys[flat % len(ys)]), torch.float64,
                                 torch.device("cpu"))
    got = {}

    def side(fast: str):
        def go():
            os.environ["LANDSCAPE_FAST"] = fast
            got[fast] = dynamics_map(r.problem, params, r.input, r.dynamics_options, members=np.arange(flat.numel()))
        return go

    before = os.environ.get("LANDSCAPE_FAST")
    try:
        res = timed(s, {"fused": side("1"), "autograd": side("0")}, warmup={"fused": side("1")})
    finally:
        os.environ.pop("LANDSCAPE_FAST", None) if before is None else os.environ.update(LANDSCAPE_FAST=before)
    same = all(np.array_equal(getattr(got["1"], k), getattr(got["0"], k))
               for k in ("n_fixed", "n_stable_fixed", "n_cycles", "n_degenerate", "n_at_bound", "unsettled"))
    note = "counts identical" if same else "COUNTS DIFFER"
    return [speedup_row(NAME, "gru H=4, 121 points: dynamics_map (in process)", "fused Jacobian",
                        "autograd (LANDSCAPE_FAST=0)", res, "fused", "autograd", note=note)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline-rev", default=None, help="the git revision to compare with (default: before the kernel)")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args(argv)
    s = Settings(repeats=a.repeats)
    rows = run(s, a.baseline_rev or baseline_rev())
    pin()
    rows += in_process(s)
    print(table(rows))
    return 0 if all(r.meets != "FLAG" and "DIFFER" not in r.note for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
