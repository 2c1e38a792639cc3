"""Your own cell and task, from a file, a module or an installed package: the MGU example against an
independent per-point loop and autograd, training it, the cache key following its source, and one
clear line for every way a user's class can be wrong."""
from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import landscape
from landscape import Axis, GridSpec
from landscape.cells import CELLS, get_cell
from landscape.cli import main
from landscape.errors import LandscapeError
from landscape.tasks import TASKS, get_task

ROOT = Path(__file__).resolve().parents[1]
MGU = str(ROOT / "examples" / "cells" / "mgu.py") + ":MGU"
PARITY = str(ROOT / "examples" / "tasks" / "parity.py") + ":Parity"
F64 = torch.float64


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def mgu_loop(w_f, u_f, b_f, w_h, u_h, b_h, x, steps):
    """The MGU written from its equations (Zhou et al. 2016), one grid point, numpy: h after each
    step in ``steps`` (x (T, N))."""
    h = np.zeros(x.shape[1])
    out = {}
    for t in range(1, max(steps) + 1):
        f = sigmoid(w_f * h + u_f * x[t - 1] + b_f)
        cand = np.tanh(w_h * (f * h) + u_h * x[t - 1] + b_h)
        h = (1 - f) * h + f * cand
        if t in steps:
            out[t] = h.copy()
    return out


def bce(z, y):
    return float(np.mean(np.logaddexp(0.0, np.where(y > 0.5, -z, z))))


def test_mgu_grid_equals_a_per_point_loop_on_a_non_square_grid(tmp_path):
    Ts = (3, 64, 70)  # across the 64-step block of the noise
    spec = GridSpec.of(cell=MGU, task="latch", T=Ts, n=40, fit="fixed", x=Axis("b_f", -2.0, 3.0, 5),
                    y=Axis("w_h", -1.0, 3.0, 4), set=(("u_f", 0.5),))
    s = landscape.grid(spec, out=tmp_path / "mgu.h5", device="cpu", chunk_size=7).surface
    assert s.loss.shape == (3, 5, 4) and s.x_name == "b_f" and s.y_name == "w_h"
    data = get_task("latch").make(Ts, 40, 0)
    x, y = data.inputs[..., 0].numpy(), data.targets[Ts[0]].numpy()
    for i, b_f in enumerate(s.x):
        for j, w_h in enumerate(s.y):
            hs = mgu_loop(1.0, 0.5, b_f, w_h, 1.0, 0.0, x, Ts)
            for k, T in enumerate(Ts):
                assert s.loss[k, i, j] == pytest.approx(bce(4.0 * hs[T], y), rel=1e-12), (i, j, T)


def test_mgu_per_timestep_gradient_norms_equal_autograd():
    from landscape import gradients
    from landscape.model import ModelSpec
    from landscape.problem import resolve_model

    problem = resolve_model(ModelSpec(cell=MGU, task="latch"), fit="fixed")
    T, n = 12, 16
    data = problem.task.make((T,), n, 3).to(F64, "cpu")
    g = torch.Generator().manual_seed(0)
    params = {k: v.unsqueeze(0) + 0.5 * torch.randn((3, *v.shape), generator=g, dtype=F64)
              for k, v in problem.base.items()}  # three members
    got = gradients.grad_norms_t(problem, params, data, T, method="autograd")["h"]  # (3, T)
    assert got.shape == (3, T)
    for p in range(3):  # the same norms from the equations, by autograd through a plain loop
        q = {k: v[p].reshape(-1)[0] for k, v in params.items()}
        x = data.inputs[:, :, 0]
        h = torch.zeros(n, dtype=F64, requires_grad=True)
        states, cur = [], h
        for t in range(T):
            f = torch.sigmoid(q["w_f"] * cur + q["u_f"] * x[t] + q["b_f"])
            cand = torch.tanh(q["w_h"] * (f * cur) + q["u_h"] * x[t] + q["b_h"])
            cur = (1 - f) * cur + f * cand
            states.append(cur)
        z = q["out_w"] * cur + q["out_b"]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(z, data.targets[T])
        grads = torch.autograd.grad(loss, states)
        expect = torch.stack([gr.norm() for gr in grads])
        torch.testing.assert_close(got[p], expect, rtol=1e-12, atol=1e-15)


def test_mgu_trains_from_the_command_line(tmp_path):
    out = tmp_path / "runs.csv"
    r = CliRunner().invoke(main, ["train", "--cell", MGU, "--T", "5,8", "--repeats", "2", "--n", "64",
                                  "--epochs", "1", "--out", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    assert "mgu on latch: 4 models" not in r.output  # the command names the cell as given
    lines = r.output.strip().splitlines()
    assert any(line.split()[:2] == ["5", "2"] for line in lines) and out.exists()
    rows = out.read_text().splitlines()
    assert rows[0].startswith("group,") and "mgu-T5" in out.read_text()


def test_mgu_grads_and_plot_from_the_command_line(tmp_path):
    r = CliRunner().invoke(main, ["grads", "--cell", MGU, "--T", "20", "--n", "30", "--at", "b_f=1,w_h=2"])
    assert r.exit_code == 0, r.output
    assert "point 1: b_f=1, w_h=2" in r.output and "|dL/dh_t|" in r.output
    r = CliRunner().invoke(main, ["grid", "--cell", MGU, "--T", "5", "--n", "20", "--x", "b_f:-2:2:5",
                                  "--y", "w_h:0:2:3", "--out", str(tmp_path / "g.h5"), "--grads", "--quiet"])
    assert r.exit_code == 0, r.output
    s = landscape.load(tmp_path / "g.h5")
    assert {"grad", "hessian_eigvals", "grad_norm_t"} <= set(s.fields)
    png = tmp_path / "q.png"
    r = CliRunner().invoke(main, ["plot", str(tmp_path / "g.h5"), "--kind", "quiver", "--out", str(png)])
    assert r.exit_code == 0, r.output
    assert png.read_bytes()[:4] == b"\x89PNG"
    r = CliRunner().invoke(main, ["plot", str(tmp_path / "g.h5"), "--kind", "contour", "--folds", "--out", str(png)])
    assert r.exit_code == 2 and "need a surface of srnn or pascanu over (w, b)" in r.output


def test_editing_the_cell_file_changes_the_cache_key(tmp_path, monkeypatch):
    monkeypatch.setenv("LANDSCAPE_CACHE", str(tmp_path / "cache"))
    mine = tmp_path / "mine.py"
    shutil.copy(ROOT / "examples" / "cells" / "mgu.py", mine)
    spec = GridSpec.of(cell=f"{mine}:MGU", task="latch", T=(4,), n=10, x=Axis("b_f", -1, 1, 3), y=Axis("w_h", 0, 2, 3))
    first = landscape.grid(spec, device="cpu")
    assert landscape.grid(spec, device="cpu").cached
    mine.write_text(mine.read_text() + "\n# an edit\n")
    second = landscape.grid(spec, device="cpu")
    assert not second.cached and second.surface.attrs["key"] != first.surface.attrs["key"]
    np.testing.assert_array_equal(first.surface.loss, second.surface.loss)  # a comment changes no number
    mine.write_text(mine.read_text().replace("(1.0 - f) * h + f * cand", "(1.0 - f) * h + f * cand * 0.5"))
    third = landscape.grid(spec, device="cpu")
    assert not third.cached and not np.array_equal(third.surface.loss, second.surface.loss)
    assert third.surface.spec["cell_source"] != second.surface.spec["cell_source"]
    builtin = landscape.resolve(GridSpec.of(cell="srnn", T=(4,), n=10)).canonical()
    assert "cell_source" not in builtin  # built-in cells keep their keys


def test_a_task_from_a_file_runs_and_is_checked(tmp_path):
    s = landscape.grid(GridSpec.of(cell="srnn", task=PARITY, hidden=2, T=(6,), n=64, x=Axis("w[0,1]", -2, 2, 3),
                                y=Axis("w[1,0]", -2, 2, 4)), out=tmp_path / "p.h5", device="cpu").surface
    assert s.loss.shape == (1, 3, 4) and np.isfinite(s.loss).all() and s.spec["task_source"]
    data = get_task(PARITY, k=3).make((6,), 50, 1)
    bits = (data.inputs[:3, :, 0] > 0).sum(0) % 2
    torch.testing.assert_close(data.targets[6], bits.to(F64))
    with pytest.raises(LandscapeError, match="k=0 must be >= 1"):
        get_task(PARITY, k=0)


class TestBadUserClasses:
    """One clear line naming what is wrong, exit status 2, nothing written."""

    CASES = {
        "missing-file": (None, "nope.py:MGU", "nope.py' not found"),
        "missing-class": ("from landscape.cells import Cell\nclass Other: pass\n", ":MGU",
                          "defines no class 'MGU'; its classes: Other"),
        "syntax-error": ("class MGU(:\n    pass\n", ":MGU", "syntax error at line 1"),
        "import-error": ("import not_a_module_at_all\n", ":MGU", "ModuleNotFoundError"),
        "not-a-cell": ("class MGU:\n    pass\n", ":MGU", "is not a cell: it must subclass landscape.cells.Cell"),
        "no-params": ("from dataclasses import dataclass\nfrom landscape.cells import Cell\n"
                      "@dataclass(frozen=True)\nclass MGU(Cell):\n    name = 'm'\n    params = ()\n"
                      "    def step(self, p, state, x):\n        return state\n", ":MGU", "declares no parameters"),
        "no-step": ("from dataclasses import dataclass\nfrom landscape.cells import Cell, ParamDecl\n"
                    "@dataclass(frozen=True)\nclass MGU(Cell):\n    name = 'm'\n"
                    "    params = (ParamDecl('w', 'recurrent'), ParamDecl('b', 'bias'))\n", ":MGU",
                    "has no step: define step(self, p, state, x)"),
        "bad-role": ("from dataclasses import dataclass\nfrom landscape.cells import Cell, ParamDecl\n"
                     "@dataclass(frozen=True)\nclass MGU(Cell):\n    name = 'm'\n"
                     "    params = (ParamDecl('w', 'weight'),)\n    def step(self, p, state, x):\n        return state\n",
                     ":MGU", "parameter 'w' has role 'weight'; choose from: recurrent, input, bias, per_unit"),
        "bad-axes": ("from dataclasses import dataclass\nfrom landscape.cells import Cell, ParamDecl\n"
                     "@dataclass(frozen=True)\nclass MGU(Cell):\n    name = 'm'\n    default_axes = ('v:0:1:3', 'b:0:1:3')\n"
                     "    params = (ParamDecl('w', 'recurrent'), ParamDecl('b', 'bias'))\n"
                     "    def step(self, p, state, x):\n        return state\n", ":MGU",
                     "default_axes names 'v', not one of its parameters (w, b)"),
        "step-raises": ("from dataclasses import dataclass\nfrom landscape.cells import Cell, ParamDecl\n"
                        "@dataclass(frozen=True)\nclass MGU(Cell):\n    name = 'm'\n"
                        "    params = (ParamDecl('w', 'recurrent'), ParamDecl('b', 'bias'))\n"
                        "    def step(self, p, state, x):\n        return (p['q'],)\n", ":MGU",
                        "step failed at the base point (H=1, D=1): KeyError: 'q'"),
        "step-shape": ("from dataclasses import dataclass\nfrom landscape.cells import Cell, ParamDecl\n"
                       "@dataclass(frozen=True)\nclass MGU(Cell):\n    name = 'm'\n"
                       "    params = (ParamDecl('w', 'recurrent'), ParamDecl('b', 'bias'))\n"
                       "    def step(self, p, state, x):\n        return (state[0].sum(-1),)\n", ":MGU",
                       "state h must have shape (P, N, H) = (2, 3, 1)"),
    }

    @pytest.mark.parametrize("case", list(CASES))
    def test_one_clear_line(self, tmp_path, case, monkeypatch):
        monkeypatch.setenv("LANDSCAPE_CACHE", str(tmp_path / "cache"))
        source, ref, message = self.CASES[case]
        if source is not None:
            (tmp_path / "user.py").write_text(source)
            ref = str(tmp_path / "user.py") + ref
        else:
            ref = str(tmp_path / ref)
        r = CliRunner().invoke(main, ["grid", "--cell", ref, "--T", "3", "--n", "4", "--x", "w:0:1:2",
                                      "--y", "b:0:1:2", "--out", str(tmp_path / "o.h5")])
        assert r.exit_code == 2, r.output
        lines = r.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], r.output
        assert not (tmp_path / "o.h5").exists() and not (tmp_path / "cache").exists()

    def test_bad_tasks(self, tmp_path):
        (tmp_path / "t.py").write_text("from landscape.tasks import Task\nclass T(Task):\n    name = 't'\n")
        with pytest.raises(LandscapeError, match="has no make: define make"):
            get_task(f"{tmp_path / 't.py'}:T")
        (tmp_path / "u.py").write_text("from dataclasses import dataclass\nfrom landscape.tasks import Task\n"
                                       "@dataclass(frozen=True)\nclass U(Task):\n    name = 'u'\n    input_size = 1\n"
                                       "    readout = 'softmax'\n    def make(self, Ts, n, seed):\n        pass\n")
        with pytest.raises(LandscapeError, match="readout must be 'identity'"):
            get_task(f"{tmp_path / 'u.py'}:U")
        with pytest.raises(LandscapeError, match="malformed --task"):
            get_task("x.py:")
        with pytest.raises(LandscapeError, match="cannot import module 'no_such_pkg.tasks' for the task: No module named 'no_such_pkg'"):
            get_task("no_such_pkg.tasks:Copy")


def test_a_module_reference_and_an_installed_entry_point(tmp_path, monkeypatch):
    """A package on sys.path that declares its cell under the entry-point group landscape.cells is
    listed by `landscape cells`, found by name, and reachable as module:Class too."""
    pkg = tmp_path / "mycells"
    pkg.mkdir()
    shutil.copy(ROOT / "examples" / "cells" / "mgu.py", pkg / "mgu.py")
    (pkg / "__init__.py").write_text("")
    dist = tmp_path / "mycells-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mycells\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[landscape.cells]\nmgu2 = mycells.mgu:MGU\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(CELLS, "_entry", None)  # read the entry points again
    assert "mgu2" in CELLS.names() and CELLS.get("mgu2").__name__ == "MGU"
    assert get_cell("mycells.mgu:MGU").name == "mgu"
    r = CliRunner().invoke(main, ["cells"])
    assert r.exit_code == 0 and "\nmgu2  minimal gated unit" in r.output
    monkeypatch.setattr(CELLS, "_entry", None)
    monkeypatch.setattr(TASKS, "_entry", None)


def test_listing_the_cells_needs_no_torch():
    code = ("import sys; from click.testing import CliRunner; from landscape.cli import main; "
            "r = CliRunner().invoke(main, ['cells']); r2 = CliRunner().invoke(main, ['tasks']); "
            "assert r.exit_code == 0 and r2.exit_code == 0, r.output; "
            "print(sorted(m for m in ('torch', 'scipy', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_readme_shows_the_example(tmp_path):
    """The README's "Bring your own cell" section runs the example file as shipped."""
    text = (ROOT / "README.md").read_text()
    assert "## Bring your own cell" in text and "examples/cells/mgu.py:MGU" in text
    source = (ROOT / "examples" / "cells" / "mgu.py").read_text()
    assert textwrap.dedent(source).count("def step(") == 1
