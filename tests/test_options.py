"""Cell options and task parameters reach their classes as the declared types (from the command line
they come as text), and a user cell's key covers the local modules its file imports."""
import subprocess
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")

from landscape import grid  # noqa: E402
from landscape.cells import get_cell  # noqa: E402
from landscape.errors import LandscapeError  # noqa: E402
from landscape.extensions import local_imports, source_hash  # noqa: E402
from landscape.tasks import get_task  # noqa: E402

CELL = textwrap.dedent('''
    import os, sys
    from dataclasses import dataclass
    import torch
    sys.path.insert(0, os.path.dirname(__file__))
    import {helper}
    from landscape.cells import Cell, ParamDecl

    @dataclass(frozen=True)
    class Halve(Cell):
        name = "halve"
        summary = "an srnn whose drive can be halved or scaled"
        equations = "h' = tanh(s (w h + u x + b))"
        halve: bool = False
        scale: float = 1.0
        repeats: int = 1
        params = (ParamDecl("w", "recurrent", default=1.0), ParamDecl("u", "input", default=1.0),
                  ParamDecl("b", "bias", default=0.0))
        default_axes = ("w:-1:3:5", "b:-1:1:4")

        def step(self, p, state, x):
            (h,) = state
            a = torch.einsum("pij,pnj->pni", p["w"], h) + p["b"].unsqueeze(1)
            if x is not None:
                a = a + torch.einsum("pij,nj->pni", p["u"], x)
            s = (0.5 if self.halve else 1.0) * self.scale * {helper}.SCALE
            return (torch.tanh(s * a),)
''')


@pytest.fixture
def cell_file(tmp_path, request):
    helper = f"helper_{request.node.name.split('[')[0][-20:]}_{id(tmp_path) % 10**6}"
    (tmp_path / f"{helper}.py").write_text("SCALE = 1.0\n")
    path = tmp_path / "cell.py"
    path.write_text(CELL.format(helper=helper))
    return path, tmp_path / f"{helper}.py"


@pytest.mark.parametrize("text, value", [("False", False), ("false", False), ("0", False), ("no", False),
                                         ("True", True), ("1", True), ("on", True)])
def test_a_bool_option_given_as_text_is_a_bool(cell_file, text, value):
    cell = get_cell(f"{cell_file[0]}:Halve", halve=text)
    assert cell.halve is value and cell.options()["halve"] is value


def test_numbers_become_their_declared_types(cell_file):
    cell = get_cell(f"{cell_file[0]}:Halve", scale="2", repeats="3.0")
    assert cell.scale == 2.0 and type(cell.scale) is float
    assert cell.repeats == 3 and type(cell.repeats) is int
    assert get_task("relay", lag="2").lag == 2


@pytest.mark.parametrize("option, message", [
    ({"halve": "maybe"}, "cell option halve='maybe' is not a bool (write true or false)"),
    ({"scale": "abc"}, "cell option scale='abc' is not a float"),
    ({"repeats": "2.5"}, "cell option repeats='2.5' is not an int"),
    ({"colour": "red"}, "cell halve has no option 'colour'; its options: halve, scale, repeats"),
])
def test_a_value_that_does_not_convert_is_one_line_naming_the_option(cell_file, option, message):
    with pytest.raises(LandscapeError, match="^" + message.replace("(", r"\(").replace(")", r"\)") + "$"):
        get_cell(f"{cell_file[0]}:Halve", **option)


def test_halve_false_from_the_command_line_is_the_default_surface(cell_file, tmp_path):
    ref = f"{cell_file[0]}:Halve"
    base = grid(cell=ref, T=(5,), n=20, out=tmp_path / "a.h5")
    off = grid(cell=ref, T=(5,), n=20, cell_options=(("halve", "False"),), out=tmp_path / "b.h5")
    on = grid(cell=ref, T=(5,), n=20, cell_options=(("halve", "true"),), out=tmp_path / "c.h5")
    assert off.surface.attrs["key"] == base.surface.attrs["key"]
    assert (off.surface.loss == base.surface.loss).all()
    assert not (on.surface.loss == base.surface.loss).all()


def test_the_key_covers_a_local_module_the_cell_file_imports(cell_file, tmp_path):
    path, helper = cell_file
    from landscape.cells import cell_class

    before = source_hash(cell_class(f"{path}:Halve"))
    assert local_imports(path, sys.modules[cell_class(f"{path}:Halve").__module__]) == [helper.resolve()]
    first = grid(cell=f"{path}:Halve", T=(5,), n=20, out=tmp_path / "a.h5")
    expected = grid(cell=f"{path}:Halve", T=(5,), n=20, cell_options=(("scale", 0.5),), out=tmp_path / "e.h5")
    helper.write_text("SCALE = 0.5\n")  # now the default computes what scale=0.5 did
    after = source_hash(cell_class(f"{path}:Halve"))
    assert after != before
    second = grid(cell=f"{path}:Halve", T=(5,), n=20, out=tmp_path / "b.h5")
    assert second.surface.attrs["key"] != first.surface.attrs["key"]
    assert (second.surface.loss == expected.surface.loss).all()  # computed with the edited helper


def test_a_cell_file_without_local_imports_hashes_as_its_bytes():
    import hashlib
    from pathlib import Path

    from landscape.cells import cell_class

    cls = cell_class("examples/cells/mgu.py:MGU")
    assert local_imports(Path("examples/cells/mgu.py"), sys.modules[cls.__module__]) == []
    assert source_hash(cls) == hashlib.sha256(Path("examples/cells/mgu.py").read_bytes()).hexdigest()[:16]


def test_the_command_line_refuses_a_bad_option_in_one_line(cell_file):
    done = subprocess.run([sys.executable, "-m", "landscape", "grid", "--cell", f"{cell_file[0]}:Halve",
                           "--cell-opt", "halve=maybe", "--T", "3"], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["error: cell option halve='maybe' is not a bool (write true or false)"]


def test_an_empty_home_does_not_put_the_cache_in_the_root(monkeypatch):
    import pwd
    import os
    from pathlib import Path

    from landscape import settings

    monkeypatch.setenv("HOME", "")
    monkeypatch.delenv("LANDSCAPE_CACHE", raising=False)
    monkeypatch.delenv("LANDSCAPE_KERNELS", raising=False)
    home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    assert settings.cache_dir() == home / ".cache" / "landscape"
    assert settings.kernel_dir() == home / ".cache" / "landscape" / "kernels"
    monkeypatch.setenv("LANDSCAPE_CACHE", "  ")  # blank counts as unset
    assert settings.cache_dir() == home / ".cache" / "landscape"


@pytest.mark.parametrize("value, want", [("1", True), ("yes", True), ("ON", True), ("0", False), ("off", False),
                                         ("", False)])
def test_flags_have_one_parser(monkeypatch, value, want):
    from landscape import settings

    monkeypatch.setenv("LANDSCAPE_EXACT", value)
    assert settings.exact() is want
    monkeypatch.setenv("LANDSCAPE_EXACT", "maybe")
    with pytest.raises(LandscapeError, match=r"^\$LANDSCAPE_EXACT='maybe': write 1 or 0"):
        settings.exact()


def test_two_copies_of_a_cell_file_are_two_modules(tmp_path):
    """A copy of a cell file at another path, then edited, does not change the first class's source hash
    (both were once one module by name, and the first class's source was read from the second file)."""
    import hashlib
    import shutil
    from pathlib import Path

    from landscape.cells import cell_class

    first = cell_class("examples/cells/mgu.py:MGU")
    shutil.copy("examples/cells/mgu.py", tmp_path / "mgu.py")
    second = cell_class(f"{tmp_path / 'mgu.py'}:MGU")
    (tmp_path / "mgu.py").write_text((tmp_path / "mgu.py").read_text() + "\n# edited\n")
    assert first.__module__ != second.__module__
    assert source_hash(first) == hashlib.sha256(Path("examples/cells/mgu.py").read_bytes()).hexdigest()[:16]


@pytest.mark.parametrize("kind", ["logistic", "dense2"])
def test_a_nan_output_is_never_a_correct_answer(kind):
    """A model whose outputs went NaN (a user cell that diverged) scored 1.0 on a one-class validation set:
    argmax of NaN logits is class 0, and (NaN > 0) == (label > 0.5) holds for label 0."""
    from landscape.readouts import READOUT_KINDS

    readout = READOUT_KINDS[kind]
    params = {k: v.unsqueeze(0) for k, v in readout.base(1).items()}
    h = torch.full((1, 4, 1), float("nan"), dtype=torch.float64)
    loss, correct = readout.train_loss(params, h, torch.zeros(1, 4, dtype=torch.float64))
    assert not bool(correct.any()) and bool(loss.isnan().all())
    h = torch.tensor([[[-1.0], [-2.0], [1.0], [3.0]]], dtype=torch.float64)
    _, correct = readout.train_loss(params, h, torch.tensor([[0.0, 0.0, 1.0, 0.0]], dtype=torch.float64))
    assert correct.tolist() == [[True, True, True, False]]
