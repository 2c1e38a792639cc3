"""The one home of every generated kernel's build (``kernels.runtime.build_checked`` and
``KernelBuilds``): which stage stopped a build and what ``why_not`` then says, one build per
arguments however many threads ask, unhashable arguments built each time, and a later success
clearing the reason. Each backend's own tests check its kernels; here the bookkeeping alone."""
from __future__ import annotations

import threading
import time

import pytest

from landscape.kernels import runtime
from landscape.kernels.trace import Unsupported


def build(generate=lambda: "src", load=lambda made: ("kernel", made), check=lambda kernel: None):
    return runtime.build_checked(generate, load, check)


def test_a_build_that_passes_every_stage_gives_the_loaded_kernel():
    assert build() == ("kernel", "src")


@pytest.mark.parametrize("stage, error, why", [
    ("generate", Unsupported("the operation erf"), "the operation erf"),
    ("generate", ZeroDivisionError("in the cell"), "the trace failed: ZeroDivisionError: in the cell"),
    ("load", RuntimeError("numba said no"), "the generated module failed: RuntimeError: numba said no"),
    ("load", Unsupported("no Triton code for tan"), "no Triton code for tan"),
    ("check", ValueError("a shape"), "the generated module failed: ValueError: a shape"),
])
def test_each_stage_names_itself_in_the_reason(stage, error, why):
    def fail(*_):
        raise error

    with pytest.raises(runtime.NotBuilt) as got:
        build(**{stage: fail})
    assert str(got.value) == why


def test_a_failed_self_check_says_what_differs():
    with pytest.raises(runtime.NotBuilt, match="^the self-check failed: outputs differ by 3$"):
        build(check=lambda kernel: "outputs differ by 3")


class Cell:
    """A cell-like argument: described by its name (two equal cells share a reason)."""

    def __init__(self, name):
        self.name = name

    def describe(self):
        return self.name


class Unhashable(Cell):
    """A user's cell that defines __eq__ without __hash__."""

    __hash__ = None


def builds_counting(fail_for=(), delay=0.0):
    calls = []

    def make(cell, H):
        calls.append((cell.describe(), H))
        time.sleep(delay)
        if cell.describe() in fail_for:
            raise runtime.NotBuilt(f"{cell.describe()} does not trace")
        return f"kernel {cell.describe()} {H}"

    return runtime.KernelBuilds(make, lambda cell, H: (cell.describe(), H)), calls


def test_one_build_per_arguments_even_when_threads_ask_at_once():
    builds, calls = builds_counting(delay=0.05)
    cell = Cell("gru")
    got = []
    threads = [threading.Thread(target=lambda: got.append(builds.get(cell, 4))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == ["kernel gru 4"] * 6 and calls == [("gru", 4)]
    assert builds.get(cell, 8) == "kernel gru 8" and calls == [("gru", 4), ("gru", 8)]


def test_a_refused_build_is_none_and_why_names_it_for_an_equal_cell_made_anew():
    builds, calls = builds_counting(fail_for={"mut3"})
    assert builds.get(Cell("mut3"), 2) is None
    assert builds.get(Cell("mut3"), 2) is None  # another object: built (and refused) again
    assert builds.why(Cell("mut3"), 2) == "mut3 does not trace"
    assert builds.why(Cell("mut3"), 3) is None and builds.why(Cell("gru"), 2) is None
    assert len(calls) == 2


def test_unhashable_arguments_are_built_every_time_and_a_success_clears_the_reason():
    fail = {"user"}
    builds, calls = builds_counting(fail_for=fail)
    cell = Unhashable("user")
    assert builds.get(cell, 1) is None and builds.why(cell, 1) == "user does not trace"
    fail.clear()  # the cell's file was mended
    assert builds.get(cell, 1) == "kernel user 1" and builds.why(cell, 1) is None
    assert builds.get(cell, 1) == "kernel user 1"
    assert calls == [("user", 1)] * 3


def test_a_fresh_one_has_built_nothing_and_leaves_the_first_alone():
    builds, calls = builds_counting()
    cell = Cell("srnn")
    first = builds.get(cell, 1)
    assert builds.fresh().get(cell, 1) == first and builds.get(cell, 1) == first
    assert calls == [("srnn", 1)] * 2
