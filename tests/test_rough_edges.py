"""What a new user trips over (issue 23, item 2): each test runs what the README shows."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run_script(tmp_path, source: str, timeout: float = 180) -> subprocess.CompletedProcess:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(source))
    env = {"PYTHONPATH": str(ROOT), "LANDSCAPE_CACHE": str(tmp_path / "cache"), "MPLBACKEND": "Agg",
           "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=timeout)


# --- the Dask snippet ---------------------------------------------------------------------------

SNIPPET = """
    import landscape, landscape.distributed
    {guard}
    {indent}with landscape.distributed.use("local:2"):
    {indent}    landscape.grid(cell="pascanu", task="target", x="w:4.5:5.5:5", y="b:-2.9:-1.9:5", T=(5,))
    {indent}print("done")
"""


def test_the_dask_snippet_without_its_guard_says_which_guard(tmp_path):
    pytest.importorskip("distributed")
    r = _run_script(tmp_path, SNIPPET.format(guard="", indent=""))
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert "Nanny failed to start" in last and 'if __name__ == "__main__":' in last, r.stderr
    # each worker that re-imported the script stopped with that one line, not a traceback of its own
    assert r.stderr.count("Traceback") == 1, r.stderr
    assert "8787" not in r.stderr


def test_the_readme_dask_snippet_runs_as_a_script_without_port_warnings(tmp_path):
    pytest.importorskip("distributed")
    r = _run_script(tmp_path, SNIPPET.format(guard='if __name__ == "__main__":', indent="    "))
    assert r.returncode == 0 and r.stdout.strip().endswith("done"), r.stderr
    assert "8787" not in r.stderr and "Warning" not in r.stderr, r.stderr


def test_the_readme_shows_the_guard():
    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index('with landscape.distributed.use("local:4")') - 200:]
    assert 'if __name__ == "__main__":' in block[:400]
