"""The golden files (tests/golden.py) recomputed: a reshaping of the code leaves every key, spec and
number as it was."""
import json

import numpy as np
import pytest

from tests import golden

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def now():
    return golden.make_all()


@pytest.mark.parametrize("name", sorted(golden.CASES))
def test_keys_specs_and_values_are_unchanged(name, now):
    want = json.loads(golden.GOLDEN.read_text())[name]
    got = now[name]
    for attr in ("key", "spec", "format", "format_version", "group_specs"):
        assert got.get(attr) == want.get(attr), attr
    assert sorted(got["datasets"]) == sorted(want["datasets"])
    for ds, w in want["datasets"].items():
        g = got["datasets"][ds]
        assert (g["shape"], g["dtype"]) == (w["shape"], w["dtype"]), ds
        if g["sha256"] != w["sha256"]:  # another machine's rounding: the sums agree to 1e-12
            np.testing.assert_allclose(g["sum"], w["sum"], rtol=1e-12, atol=1e-300, err_msg=ds)
