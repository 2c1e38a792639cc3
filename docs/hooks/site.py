"""mkdocs hooks: the site's pages that live outside docs/ (mkdocs.yml names this file).

- ``index.md`` is the README, its links rewritten for the site: ``docs/X`` -> ``X``, the
  reproductions' table ``landscape/analyses/README.md`` -> ``analyses.md``, and any other file of
  the repository (a source file, an example, a folder) as its path in code: the site has no copy.
  A link to nothing stays as it is, so that ``mkdocs build --strict`` fails on it.
- ``analyses.md`` is ``landscape/analyses/README.md``, its links rewritten the same way.
- ``gallery.md`` shows every image of ``docs/gallery``, named by its file.
- In the pages of docs/, ``../README.md`` is ``index.md`` and ``../X`` outside docs/ is X's path
  in code.

Everything is read from the checkout at build time; nothing is fetched.
"""
from __future__ import annotations

import re
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[2]
GALLERY = ("png", "gif", "jpg", "svg")
_LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)")


def _rewrite(text: str, base: str) -> str:
    """The markdown links of a page whose links are relative to ``base`` (a folder of the repository,
    "" for the root), for a page at the site's root."""

    def one(m: re.Match) -> str:
        bang, label, target = m.groups()
        if re.match(r"[a-z]+:|#", target):
            return m.group(0)
        path, _, anchor = target.partition("#")
        where = (Path(base) / path).as_posix() if base else path
        where = re.sub(r"(^|/)[^/]+/\.\./", r"\1", where)  # docs/../x -> x
        anchor = f"#{anchor}" if anchor else ""
        if where == "README.md":
            return f"{bang}[{label}](index.md{anchor})"
        if where == "landscape/analyses/README.md":
            return f"{bang}[{label}](analyses.md{anchor})"
        if where.startswith("docs/") and (ROOT / where).is_file():
            return f"{bang}[{label}]({where[len('docs/'):]}{anchor})"
        if where.startswith("docs/gallery") and (ROOT / where).is_dir():
            return f"[{label}](gallery.md)"
        if where.startswith("docs/") or not (ROOT / where).exists():
            return m.group(0)  # a broken link stays a link: mkdocs --strict fails on it
        shown = f"`{where}`"  # a file of the repository that the site does not carry
        return shown if label.strip("`") == where else f"{label} ({shown})"

    return _LINK.sub(one, text)


def _gallery() -> str:
    images = sorted(p for p in (ROOT / "docs" / "gallery").iterdir() if p.suffix.lstrip(".") in GALLERY)
    parts = ["# Gallery", "", "Every figure of `docs/gallery`, made by `landscape reproduce` and `landscape plot` "
             "(the [front page](index.md) and the [reproductions](analyses.md) say which command made which).", ""]
    for p in images:
        parts += [f"## {p.stem}", "", f"![{p.stem}](gallery/{p.name})", ""]
    return "\n".join(parts)


def on_files(files, config):
    pages = {
        "index.md": _rewrite((ROOT / "README.md").read_text(encoding="utf-8"), ""),
        "analyses.md": _rewrite((ROOT / "landscape" / "analyses" / "README.md").read_text(encoding="utf-8"),
                                "landscape/analyses"),
        "gallery.md": _gallery(),
    }
    for name, content in pages.items():
        files.append(File.generated(config, name, content=content))
    return files


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri in ("index.md", "analyses.md", "gallery.md"):
        return markdown
    return _rewrite(markdown, "docs")
