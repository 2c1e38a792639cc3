"""The fault campaign of tests/test_file_faults.py, runnable against any landscape tree (the one on
PYTHONPATH), so that the same attacks count before and after a change:

    PYTHONPATH=/work/main python tests/file_faults.py KIND FOLDER [--every K]

KIND: surface, grads, plane (surface files) or fixedpoints. Makes two valid files of different
specs with the tree's own code, damages copies of the first in every way below, reads each with the
tree's own reader in a worker process (restarted after a hang or a crash) and prints the counts as
JSON: refused (one line, a LandscapeError), identical (every number as in the clean file), changed
(served with a changed number), internal (another exception), hang (no answer in HANG_S), crash
(the worker died). The reader of a fixed-point file is ``store.fixedpoints.read_fixed_point_file``
where the tree has it, else plain h5py (every dataset and attribute: what the project offered).
"""
from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

reference_spec = None  # the clean surface's spec, in the worker
HANG_S = 30  # a read that has not answered after this long hangs
MASKS = (0x01, 0x80, 0xFF, 0x5A)
KINDS = ("surface", "grads", "plane", "fixedpoints")


# ---------------------------------------------------------------------------------------------
# the valid files


def make_surface(kind: str, path: Path, seed: int) -> None:
    import landscape
    from landscape import Axis, GridSpec

    if kind == "plane":  # another seed: another plane, other data
        spec = GridSpec.of(cell="srnn", task="latch", T=(1, 5), n=4, seed=seed, directions="random",
                           x=Axis("a", -1, 1, 4), y=Axis("b", -1, 1, 3))
    else:  # another seed: another stretch of the axis (the task has no randomness)
        spec = GridSpec.of(cell="pascanu", task="target", T=(1, 5), n=1, grads=kind == "grads",
                           x=Axis("w", 4.5 + 0.25 * seed, 5.5, 4), y=Axis("b", -2.9, -1.9, 3))
    landscape.grid(spec, out=path, chunk_size=4, progress=False)


def make_fixed_points(path: Path, seed: int) -> None:
    from landscape.attractors import compute_fixed_points, resolve_fixed_point_model, search_options, write_fixed_points
    from landscape.model import ModelSpec

    problem, _ = resolve_fixed_point_model(ModelSpec(cell="srnn", task="latch", hidden=2, set=(("w", "2"),)))
    run = compute_fixed_points(problem, np.array([0.0, 0.5, 1.0]), 5, 4, seed, search_options(8, seed), steps=20)
    write_fixed_points(run, path)


def make(kind: str, path: Path, seed: int) -> None:
    make_fixed_points(path, seed) if kind == "fixedpoints" else make_surface(kind, path, seed)


# ---------------------------------------------------------------------------------------------
# reading, in the worker


def read(kind: str, path: Path) -> dict:
    """Every number and text the tree's reader serves from the file, by name."""
    if kind != "fixedpoints":
        import landscape

        s = landscape.load(path)
        if "renamed" in path.name:  # what the grid's lookup makes of the file at the path of this spec
            from landscape.surface import _complete_match

            _complete_match(path, json.dumps(reference_spec, sort_keys=True, separators=(",", ":")))
        return {"loss": s.loss, "T": s.T, "x": s.x, "y": s.y, "done": s.done, "spec": json.dumps(s.spec, sort_keys=True),
                **{f"field {k}": v for k, v in s.fields.items()}}
    try:
        from landscape.store.fixedpoints import read_fixed_point_file
    except ImportError:  # the tree before: plain h5py was the only reader
        import h5py

        out = {}
        with h5py.File(path, "r") as f:
            out.update({f"@{k}": str(v) for k, v in f.attrs.items()})
            f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
        return out
    fp = read_fixed_point_file(path)
    return {**fp.data, **{f"@{k}": str(v) for k, v in fp.attrs.items()},
            **{f"@{g}/{k}": str(v) for g, a in fp.group_attrs.items() for k, v in a.items()}}


def same(a: dict, b: dict) -> bool:
    if set(a) != set(b):
        return False
    for k in a:
        x, y = np.asarray(a[k]), np.asarray(b[k])
        if x.shape != y.shape or x.dtype != y.dtype:
            return False
        if x.dtype.kind in "fc" and not np.array_equal(x.view(np.uint8), y.view(np.uint8)):
            return False
        if x.dtype.kind not in "fc" and not np.array_equal(x, y):
            return False
    return True


def worker(kind: str, clean: str, listfile: str, start: int) -> None:
    """Read the damaged files listed (from index start) and print 'INDEX OUTCOME' for each."""
    from landscape.errors import LandscapeError

    global reference_spec
    reference = read(kind, Path(clean))
    reference_spec = json.loads(reference["spec"]) if "spec" in reference else None
    paths = Path(listfile).read_text().split("\n")
    for i in range(start, len(paths)):
        try:
            outcome = "identical" if same(read(kind, Path(paths[i])), reference) else "changed"
        except LandscapeError as err:
            outcome = "refused" if "\n" not in str(err) else "internal"
        except Exception:  # noqa: BLE001 - what the campaign counts
            outcome = "internal"
        print(i, outcome, flush=True)


def read_all(kind: str, clean: Path, damaged: list[Path]) -> list[str]:
    """The outcome of reading each damaged file, in workers restarted after a hang or a crash."""
    listfile = clean.with_suffix(".list")
    listfile.write_text("\n".join(map(str, damaged)))
    outcomes: list[str] = []
    while len(outcomes) < len(damaged):
        p = subprocess.Popen([sys.executable, __file__, "--worker", kind, str(clean), str(listfile), str(len(outcomes))],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        deadline = time.monotonic() + HANG_S + 30  # the first answer waits for the imports too
        while len(outcomes) < len(damaged):
            ready, _, _ = select.select([p.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                p.kill()
                p.wait()
                outcomes.append("hang")
                break
            line = p.stdout.readline()
            if not line:
                p.wait()
                outcomes.append("crash" if p.returncode != 0 else "internal")
                break
            outcomes.append(line.split()[1])
            deadline = time.monotonic() + HANG_S
        else:
            p.wait()
    return outcomes


# ---------------------------------------------------------------------------------------------
# the damage


def damaged_copies(kind: str, clean: Path, other: Path, folder: Path, every: int) -> dict[str, list[Path]]:
    """Damaged copies of clean, by attack."""
    import h5py

    data = clean.read_bytes()
    out: dict[str, list[Path]] = {}
    n = [0]

    def copy(attack: str, content: bytes | None = None) -> Path:
        n[0] += 1
        p = folder / f"{attack}-{n[0]}.h5"
        p.write_bytes(data if content is None else content)
        out.setdefault(attack, []).append(p)
        return p

    def edit(attack: str, change) -> None:
        p = copy(attack)
        try:
            with h5py.File(p, "r+") as f:
                change(f)
        except Exception:  # noqa: BLE001 - an edit h5py cannot make is no attack
            out[attack].remove(p)
            p.unlink()

    for k, mask in enumerate(MASKS):
        for at in range(k * every // len(MASKS), len(data), every):
            b = bytearray(data)
            b[at] ^= mask
            copy("byte flip", bytes(b))
    for frac in (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99):
        copy("truncation", data[:int(len(data) * frac)])
    with h5py.File(clean, "r") as f:
        root_attrs = list(f.attrs)
        members = []
        f.visit(members.append)
        dataset_attrs = [(name, a) for name in members for a in f[name].attrs
                         if isinstance(f[name], h5py.Dataset) and a not in ("DIMENSION_LIST", "REFERENCE_LIST")]
    for a in root_attrs:
        edit("attribute edit", lambda f, a=a: f.attrs.modify(a, _changed(f.attrs[a])))
        edit("attribute deleted", lambda f, a=a: f.attrs.__delitem__(a))
    for name, a in dataset_attrs:
        edit("attribute edit", lambda f, name=name, a=a: f[name].attrs.modify(a, _changed(f[name].attrs[a])))
    for name in members:
        edit("member deleted", lambda f, name=name: f.__delitem__(name))
    units = _units(kind)
    with h5py.File(clean, "r") as f, h5py.File(other, "r") as g:
        n_units = len(f["x" if kind == "fixedpoints" else "digest"])
        for u in range(n_units):
            edit("unit copied from another spec", lambda f, u=u: _copy_unit(kind, g, f, u, u))
            edit("unit moved within the file", lambda f, u=u: _copy_unit(kind, f, f, (u + 1) % n_units, u))
    if kind != "fixedpoints":  # a fixed-point file is not looked up by its spec
        copy("another spec renamed into place", other.read_bytes())
    edit("values edited with h5py", lambda f: _edit_value(kind, f))
    by_hand = copy("made by hand with h5py")
    _by_hand(clean, by_hand)
    if kind == "plane":
        edit("plane altered, its digest rewritten", lambda f: _alter_plane(f))
    return out


def _changed(v):
    v = v.decode() if isinstance(v, bytes) else v
    if isinstance(v, str):
        return v[:-1] + ("x" if not v.endswith("x") else "y") if v else "x"
    if isinstance(v, np.ndarray):
        return v + 1 if v.dtype.kind in "fiu" else v
    return type(v)(not v) if isinstance(v, (bool, np.bool_)) else v + 1


def _units(kind: str) -> tuple[str, ...]:
    """The bookkeeping of a unit of work, then the datasets holding its values."""
    if kind == "fixedpoints":
        return ("digest", "x", "count", "dropped", "points", "residual", "spectral_radius", "stable", "stability",
                "kind", "eigenvalues_real", "eigenvalues_imag", "eigenvalues_abs", "attractors/ends", "attractors/kind")
    return ("digest", "nan_count", "loss", "grad", "hessian_eigvals", "grad_norm_t", "grad_norm_c_t")


def _copy_unit(kind, src, dst, u_src: int, u_dst: int) -> None:
    """Unit u_src of src (its values and bookkeeping) written over unit u_dst of dst."""
    if kind == "fixedpoints":
        for name in _units(kind):
            if name in src and name in dst and src[name].shape[1:] == dst[name].shape[1:]:
                dst[name][u_dst] = src[name][u_src]
        return
    size = int(dst.attrs["chunk_size"])
    ny = dst["loss"].shape[2]
    nx = dst["loss"].shape[1]
    a, b = u_src * size, u_dst * size
    m = min(size, nx * ny - max(a, b))
    for name in _units(kind):
        if name not in dst or name not in src:
            continue
        if name in ("digest", "nan_count"):
            dst[name][u_dst] = src[name][u_src]
            continue
        s_all, d_all = src[name][()], dst[name][()]
        per_T = d_all.shape[1:3] == (nx, ny)
        s = s_all.reshape(s_all.shape[0], nx * ny, *s_all.shape[3:]) if per_T else s_all.reshape(nx * ny, *s_all.shape[2:])
        d = d_all.reshape(d_all.shape[0], nx * ny, *d_all.shape[3:]) if per_T else d_all.reshape(nx * ny, *d_all.shape[2:])
        if per_T:
            d[:, b:b + m] = s[:, a:a + m]
        else:
            d[b:b + m] = s[a:a + m]
        dst[name][...] = d.reshape(d_all.shape)
    dst["done"][u_dst] = True


def _edit_value(kind, f) -> None:
    name = "points" if kind == "fixedpoints" else "loss"
    v = f[name][()]
    v.flat[0] = 0.125 if v.flat[0] != 0.125 else 0.25
    f[name][...] = v


def _by_hand(clean: Path, dst: Path) -> None:
    """The same datasets, groups and attributes written with plain h5py (no checksums)."""
    import h5py

    with h5py.File(clean, "r") as f, h5py.File(dst, "w") as g:
        def visit(name, obj):
            if isinstance(obj, h5py.Group):
                g.require_group(name).attrs.update({k: v for k, v in obj.attrs.items()})
            else:
                g.create_dataset(name, data=obj[()])
                g[name].attrs.update({k: v for k, v in obj.attrs.items()
                                      if k not in ("DIMENSION_LIST", "REFERENCE_LIST", "CLASS", "NAME")})
        f.visititems(visit)
        g.attrs.update({k: v for k, v in f.attrs.items()})


def _alter_plane(f) -> None:
    from landscape.store import group_digest

    d1 = f["plane/d1"][()]
    d1.flat[0] += 0.5
    f["plane/d1"][...] = d1
    f["plane"].attrs.modify("digest", np.uint64(group_digest(f["plane"])))


# ---------------------------------------------------------------------------------------------


def campaign(kind: str, folder: Path, every: int) -> dict:
    """{attack: {outcome: count}} for one file kind."""
    folder.mkdir(parents=True, exist_ok=True)
    clean, other = folder / "clean.h5", folder / "other.h5"
    make(kind, clean, 0)
    make(kind, other, 1)
    damaged = damaged_copies(kind, clean, other, folder, every)
    order = [(attack, p) for attack, paths in damaged.items() for p in paths]
    outcomes = read_all(kind, clean, [p for _, p in order])
    counts: dict = {}
    for (attack, _), outcome in zip(order, outcomes):
        row = counts.setdefault(attack, {})
        row[outcome] = row.get(outcome, 0) + 1
    shutil.rmtree(folder, ignore_errors=True)
    return counts


if __name__ == "__main__":
    if sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        every = int(sys.argv[sys.argv.index("--every") + 1]) if "--every" in sys.argv else 97
        os.environ.setdefault("MPLBACKEND", "Agg")
        print(json.dumps(campaign(sys.argv[1], Path(sys.argv[2]), every)))
