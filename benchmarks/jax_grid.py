"""A loss landscape in JAX, as a script a JAX user would run: ``python benchmarks/jax_grid.py PROBLEM.npz
--x w:-1:3:151 --y b:-1.5:1.5:151 --out F.h5``.

The whole-process baseline of ``landscape grid`` (``benchmarks/process.py``): import JAX, read the
problem, build the grid of parameters, run the jitted computation of ``jax_baseline.make_losses``
(the cell's step under ``lax.scan``, the grid points in chunks of 32 as a batch dimension, the fixed
or the optimal readout by a vmapped Newton fit, x64 for float64, one core), and write the loss
(1, nx, ny) with its coordinates ``T`` and one dataset per axis, attached as HDF5 dimension scales,
with h5py. Neither torch nor landscape is imported.

PROBLEM.npz holds what the grid does not vary (written by the benchmark from landscape's own task,
so both compute the same numbers): ``cell``, ``dtype``, ``T``, ``inputs`` (T, N) or an empty
array, ``target`` (N,), ``h0``, ``readout`` (logistic | optimal | identity), ``l2``, and the base
point as ``param_NAME`` scalars (the fixed readout's ``param_out_w``, ``param_out_b`` among them).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script: its folder's jax_baseline
from jax_baseline import make_losses  # noqa: E402


def axis(text: str) -> tuple[str, np.ndarray]:
    name, lo, hi, num = text.split(":")
    return name, np.linspace(float(lo), float(hi), int(num))


def main(argv=None) -> int:
    start = time.perf_counter()
    p = argparse.ArgumentParser(prog="jax_grid.py", description=__doc__.split("\n\n")[0])
    p.add_argument("problem", type=Path)
    p.add_argument("--x", required=True, help="NAME:MIN:MAX:NUM, the rows (index i)")
    p.add_argument("--y", required=True, help="NAME:MIN:MAX:NUM, the columns (index j)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--chunk", type=int, default=32, help="grid points per scan (0: all in one)")
    args = p.parse_args(argv)

    import h5py

    d = np.load(args.problem)
    cell, dtype, T, readout = str(d["cell"]), str(d["dtype"]), int(d["T"]), str(d["readout"])
    (xn, xv), (yn, yv) = axis(args.x), axis(args.y)
    base = {k[len("param_"):]: float(d[k]) for k in d.files if k.startswith("param_")}
    out_w, out_b = base.pop("out_w", 0.0), base.pop("out_b", 0.0)
    params = {k: np.float64(v) for k, v in base.items()}
    params[xn] = np.repeat(xv, len(yv))  # "ij": point (i, j) is flat i * ny + j
    params[yn] = np.tile(yv, len(xv))
    x = d["inputs"] if d["inputs"].size else None
    run, P = make_losses(cell, params, x, len(d["target"]), T, float(d["h0"]), dtype, readout, d["target"],
                         out_w, out_b, chunk=args.chunk, l2=float(d["l2"]))
    loss = run().reshape(1, len(xv), len(yv))

    with h5py.File(args.out, "w") as f:
        ds = f.create_dataset("loss", data=loss)
        for i, (name, values) in enumerate((("T", np.array([T])), (xn, xv), (yn, yv))):
            f[name] = values
            f[name].make_scale(name)
            ds.dims[i].attach_scale(f[name])
        f.attrs["cell"], f.attrs["dtype"], f.attrs["readout"] = cell, dtype, readout
    print(f"computed {P} points in {time.perf_counter() - start:.2f} s (process start to file); wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
