"""The Jacobian of the state map of cells with 9 to 32 units (issue 27, item 3): ``StateMap.jacobian``
with the fused kernel in matrix form (``landscape/kernels/numba/jacobian_wide.py``) against
``StateMap.autograd_jacobian``, and ``dynamics_map`` with the kernel against $LANDSCAPE_FAST=0.

Rows, in this process pinned to one core (``common.pin``), CPU time, the sides alternated, medians
of ``--repeats``:

- ``StateMap.jacobian`` at H = 16 and 32, gru and lstm, P = 64 members x M = 32 states
  (N(0, 1.5^2 / H) parameters, states uniform in [-1, 1]); the note says how far J is from autograd's;
- ``dynamics_map`` of a 16-unit gru (the latch task's model, its weights N(0, 1.5^2 / H): a trained
  network's scale), ``--members`` (8) members; the note says whether the counts are identical;
- the cold build of each kernel (a fresh process, an empty $LANDSCAPE_KERNELS): the matrix form
  at H = ``--build-h`` (12) against the straight-line code (``jacobian.generate``) at the same H,
  once each (the straight-line build takes about half a minute at H = 12; ``--build-h 0``: none).

    python -m benchmarks.dynamics_jacobian_wide [--repeats N] [--members P] [--build-h H]

(``run(settings)``: the form ``python -m benchmarks`` calls.)
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

from .common import Row, Settings, pin, speedup_row, table, timed
from .process import alternate, child, process_row

NAME = "dynamics-jacobian-wide"
GAIN = 1.5  # the recurrent weights' scale: N(0, GAIN^2 / H), as a trained network's

# a fresh process: the cold build of one kernel, its CPU time printed as JSON ("straight": the
# straight-line generator at any H, "wide": the matrix form at any H)
BUILD = """
import json, sys, time
from landscape.cells import get_cell
from landscape.kernels.numba import jacobian
cell, H, form = sys.argv[1], int(sys.argv[2]), sys.argv[3]
jacobian.STRAIGHT_H = 32 if form == "straight" else 0
t = time.process_time()
kernel = jacobian.jacobian_kernel(get_cell(cell), H, 1)
print(json.dumps({"cpu": time.process_time() - t, "why": jacobian.why_not(get_cell(cell), H, 1)}))
"""


def population(cell, H: int, P: int, M: int, seed: int = 0):
    """(params, x, s): N(0, GAIN^2 / H) parameters (P, *shape), an input (P, 1), states (P, M, S) in [-1, 1]."""
    import torch

    g = torch.Generator().manual_seed(seed)
    params = {k: torch.randn((P, *shape), generator=g, dtype=torch.float64) * GAIN / H ** 0.5
              for k, shape in cell.param_shapes(H, 1).items()}
    x = torch.randn((P, 1), generator=g, dtype=torch.float64)
    s = torch.rand((P, M, H * len(cell.state_names)), generator=g, dtype=torch.float64) * 2 - 1
    return params, x, s


def jacobian_rows(s: Settings, P: int = 64, M: int = 32) -> list[Row]:
    from landscape.cells import get_cell
    from landscape.fixedpoints import StateMap

    rows = []
    for name in ("gru", "lstm"):
        for H in (16, 32):
            cell = get_cell(name)
            params, x, states = population(cell, H, P, M)
            F = StateMap(cell, params, x)
            if F._kernel() is None:
                from landscape.kernels.numba import jacobian

                raise SystemExit(f"no kernel for {name} H={H}: {jacobian.why_not(cell, H, 1)}")
            got = {}
            res = timed(s, {"fused": lambda: got.update(fused=F.jacobian(states)),
                            "autograd": lambda: got.update(autograd=F.autograd_jacobian(states))},
                        warmup={"fused": lambda: F.jacobian(states[:, :1])})
            diff = (got["fused"][1] - got["autograd"][1]).abs().max().item()
            scale = got["autograd"][1].abs().max().item()
            note = f"max |J - J_autograd| {diff:.2g} (max |J| {scale:.2g})"
            rows.append(speedup_row(NAME, f"{name} H={H}: StateMap.jacobian, P={P} x M={M}", "fused (matrix form)",
                                    "autograd", res, "fused", "autograd", note=note))
    return rows


def dynamics_row(s: Settings, P: int) -> list[Row]:
    import numpy as np
    import torch

    from landscape.dynamics_map import DynamicsOptions, dynamics_map
    from landscape.model import ModelSpec
    from landscape.problem import resolve_model
    from landscape.store.format import COUNT_FIELDS, PERIOD_FIELDS

    H = 16
    problem = resolve_model(ModelSpec(cell="gru", task="latch", hidden=H))
    g = torch.Generator().manual_seed(1)
    params = {k: v.to(torch.float64).unsqueeze(0).repeat(P, *([1] * v.dim())) for k, v in problem.base.items()}
    for k in problem.cell.param_shapes(H, problem.D):
        params[k] = torch.randn(params[k].shape, generator=g, dtype=torch.float64) * GAIN / H ** 0.5
    opts = DynamicsOptions()
    got = {}

    def side(fast: str):
        def go():
            os.environ["LANDSCAPE_FAST"] = fast
            got[fast] = dynamics_map(problem, params, 0.0, opts, members=np.arange(P))
        return go

    before = os.environ.get("LANDSCAPE_FAST")
    try:
        res = timed(s, {"fused": side("1"), "autograd": side("0")}, warmup={"fused": side("1")})
    finally:
        os.environ.pop("LANDSCAPE_FAST", None) if before is None else os.environ.update(LANDSCAPE_FAST=before)
    same = all(np.array_equal(getattr(got["1"], k), getattr(got["0"], k)) for k in (*COUNT_FIELDS, *PERIOD_FIELDS))
    fixed = int(np.asarray(got["1"].n_fixed).sum())
    note = ("counts identical" if same else "COUNTS DIFFER") + f"; {fixed} fixed points in all"
    return [speedup_row(NAME, f"gru H={H}, {P} members (latch, N(0, {GAIN}^2/H) weights): dynamics_map",
                        "fused Jacobian", "autograd (LANDSCAPE_FAST=0)", res, "fused", "autograd", note=note)]


def build_rows(s: Settings, H: int) -> list[Row]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="landscape-bench-") as tmp:
        count = iter(range(1 << 30))
        for name in ("gru", "lstm"):
            def side(form):
                def go():
                    folder = f"{tmp}/{next(count)}"
                    out = child([sys.executable, "-c", BUILD, name, str(H), form],
                                {"LANDSCAPE_KERNELS": folder, "LANDSCAPE_CACHE": f"{folder}-cache"})
                    got = json.loads(out["stdout"].splitlines()[-1])
                    if got["why"]:
                        raise SystemExit(f"{name} H={H} {form}: no kernel: {got['why']}")
                    return {**out, "cpu": got["cpu"], "wall": out["wall"]}
                return go

            res = alternate(s, {"wide": side("wide"), "straight": side("straight")}, repeats=1)
            rows.append(process_row(f"{name} H={H}: cold build of the Jacobian kernel (fresh process)", "matrix form",
                                    "straight-line code", res, "wide", "straight", benchmark=NAME,
                                    note="CPU time of the build alone; wall: the whole process"))
    return rows


def run(s: Settings, members: int = 8, build_h: int = 12) -> list[Row]:
    """Every row (``--quick``: no builds, 8 x 4 points, 2 members: a smoke run), each note ending
    with the load average when it was measured."""
    if s.quick:
        rows = jacobian_rows(s, P=8, M=4) + dynamics_row(s, 2)
    else:
        rows = (build_rows(s, build_h) if build_h else []) + jacobian_rows(s) + dynamics_row(s, members)
    for r in rows:
        r.note += f"; load {r.extra['load']:.1f}"
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--members", type=int, default=8, help="members of the dynamics_map row")
    ap.add_argument("--build-h", type=int, default=12, help="H of the cold-build rows (0: none)")
    a = ap.parse_args(argv)
    pin()
    rows = run(Settings(repeats=a.repeats), a.members, a.build_h)
    print(table(rows))
    return 0 if all(r.meets != "FLAG" and "DIFFER" not in r.note for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
