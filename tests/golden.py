"""Golden files: a handful of surfaces and a training run made through the command line, reduced to
their keys and the SHA-256 of every dataset, so a reshaping of the code can be checked bit for bit.

    python -m tests.golden write            # tests/data/golden.json from today's code
    python -m tests.golden compare          # today's code against tests/data/golden.json

``tests/test_golden.py`` recomputes them in the test suite: keys and specs must be identical and every
value equal to 1e-12 relative (bit-identical on the machine that wrote the file; the test reports how
many datasets differ in any bit). Every cell family, fixed and optimal readouts, --grads, a plane grid,
H = 2 and a training run are covered.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np

GOLDEN = Path(__file__).parent / "data" / "golden.json"
SMALL = ["--x", "w:0.5:2.5:7", "--y", "b:-1:1:5", "--n", "40"]
CASES = {  # name -> the `landscape` arguments (an --out is appended)
    "srnn-latch-fixed": ["grid", "--cell", "srnn", "--T", "3,20", "--readout", "fixed", *SMALL],
    "srnn-latch-optimal": ["grid", "--cell", "srnn", "--T", "3,20", *SMALL],
    "pascanu-target": ["grid", "--cell", "pascanu", "--task", "target", "--x", "w:4.5:5.5:6",
                       "--y", "b:-2.9:-1.9:5", "--T", "1,10,50"],
    "lstm-latch-optimal": ["grid", "--cell", "lstm", "--T", "5,15", "--x", "b_f:-2:3:5", "--y", "w_z:-2:3:6",
                           "--n", "30"],
    "lstm-hard-fixed-f32": ["grid", "--cell", "lstm", "--cell-opt", "gate=hard_sigmoid", "--T", "8",
                            "--x", "b_f:-2:3:5", "--y", "w_z:-2:3:4", "--n", "30", "--readout", "fixed",
                            "--dtype", "float32"],
    "gru-latch-grads": ["grid", "--cell", "gru", "--T", "4,9", "--x", "block_w:-2:2:4", "--y", "block_b:-1:1:3",
                        "--n", "20", "--readout", "fixed", "--grads"],
    "mut1-relay": ["grid", "--cell", "mut1", "--task", "relay", "-H", "1", "--T", "6", "--x", "block_w:-2:2:4",
                   "--y", "block_b:-1:1:5", "--n", "30"],
    "lstm1997-two-sequence": ["grid", "--cell", "lstm1997", "--task", "two-sequence", "--T", "10",
                              "--x", "block_w:-2:2:4", "--y", "block_b:-1:1:3", "--n", "30"],
    "srnn-H2": ["grid", "--cell", "srnn", "-H", "2", "--T", "5,12", "--x", "w[0,1]:-1:1:5",
                "--y", "b[1]:-1:1:4", "--n", "30"],
    "plane-random": ["grid", "--cell", "gru", "--directions", "random", "--x", "a:-1:1:5", "--y", "b:-1:1:4",
                     "--T", "6", "--n", "30"],
    "train": ["train", "--cell", "srnn", "--T", "5,8", "--repeats", "2", "--epochs", "2", "--n", "64",
              "--protocol", "stratified", "--record-steps", "-q"],
}


def digests(path: Path) -> dict:
    """Root attributes that name the result (key, spec, format) and the SHA-256 of every dataset."""
    out = {"datasets": {}}
    with h5py.File(path, "r") as f:
        for name in ("key", "spec", "format", "format_version"):
            if name in f.attrs:
                value = f.attrs[name]
                out[name] = value.decode() if isinstance(value, bytes) else (
                    value.item() if hasattr(value, "item") else value)

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and obj.dtype.kind in "fiub":
                data = np.ascontiguousarray(obj[()])
                out["datasets"][name] = {"sha256": hashlib.sha256(data.tobytes()).hexdigest(),
                                         "shape": list(data.shape), "dtype": str(data.dtype),
                                         "sum": float(np.nansum(data.astype(np.float64)))}
            elif isinstance(obj, h5py.Group) and "spec" in obj.attrs:  # a training group's spec
                value = obj.attrs["spec"]
                out.setdefault("group_specs", {})[name] = value.decode() if isinstance(value, bytes) else str(value)
        f.visititems(visit)
    return out


def make(name: str, folder: Path) -> dict:
    out = folder / f"{name}.h5"
    env = {**os.environ, "LANDSCAPE_CACHE": str(folder / "cache"), "MPLBACKEND": "Agg"}
    cmd = [sys.executable, "-m", "landscape", *CASES[name], "--out", str(out)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr}")
    return digests(out)


def make_all(names=None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        return {name: make(name, Path(tmp)) for name in (names or CASES)}


def main(argv) -> int:
    if argv[:1] == ["write"]:
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(make_all(), indent=1, sort_keys=True) + "\n")
        print(f"wrote {GOLDEN}")
        return 0
    if argv[:1] == ["compare"]:
        golden, now = json.loads(GOLDEN.read_text()), make_all()
        bad = 0
        for name in CASES:
            g, n = golden[name], now[name]
            same_key = all(g.get(a) == n.get(a) for a in ("key", "spec", "format", "format_version", "group_specs"))
            diff = sorted(k for k in set(g["datasets"]) | set(n["datasets"])
                          if g["datasets"].get(k, {}).get("sha256") != n["datasets"].get(k, {}).get("sha256"))
            bad += (not same_key) + len(diff)
            print(f"{name:24s} key, spec and format {'same' if same_key else 'DIFFERENT'}; "
                  f"{len(n['datasets']) - len(diff)} of {len(n['datasets'])} datasets bit-identical"
                  + (f"; differ: {', '.join(diff)}" if diff else ""))
        return 1 if bad else 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
