"""The documentation site (issue 23, item 4): `mkdocs build --strict` from docs/, the README (the
front page), the reproductions' table, the gallery and the docstrings; a broken link fails, and
the built pages fetch nothing from elsewhere (no web font, no analytics, no outside script).
Needs the docs extra (`make docs` installs it; .ci/run runs it before the tests)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    pytest.importorskip("mkdocs", reason="the docs extra is not installed (make docs)")
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)], cwd=ROOT,
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    return out


def test_the_site_has_every_page(site):
    for page in ("index.html", "analyses/index.html", "gallery/index.html", "api/index.html", "format/index.html",
                 "figures/index.html"):
        assert (site / page).is_file(), page
    front = (site / "index.html").read_text()
    assert "The headline command" in front and 'href="format/' in front  # the README, links rewritten
    gallery = (site / "gallery" / "index.html").read_text()
    assert all(p.name in gallery for p in (ROOT / "docs" / "gallery").glob("*.png"))
    api = (site / "api" / "index.html").read_text()
    assert "landscape.surface.grid" in api and "param_label" in api  # docstrings rendered


def test_the_site_fetches_nothing_from_elsewhere(site):
    outside = re.compile(r"""<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)=["'](?:https?:)?//""")
    for page in site.rglob("*.html"):
        text = page.read_text()
        found = [m.group(0) for m in outside.finditer(text)]
        assert not found, (page, found[:3])
        assert "fonts.googleapis" not in text and "googletagmanager" not in text, page
