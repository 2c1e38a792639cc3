"""Every ``LANDSCAPE_*`` environment variable, read here and nowhere else, with one parser per kind.

Each is read when asked for (not at import), so a test or a long-lived process can change it.

    LANDSCAPE_CACHE    folder of computed surfaces (default ~/.cache/landscape)
    LANDSCAPE_KERNELS  folder of generated kernels (default ~/.cache/landscape/kernels)
    LANDSCAPE_MEMORY   a chunk's memory budget, e.g. 512M or 2G (default: 1 GiB on the CPU, half the
                       free memory on a GPU)
    LANDSCAPE_FAST     0 turns every fused kernel off (numba on the CPU, Triton on a GPU): the engine
                       then steps ``cell.step`` in torch (default 1)
    LANDSCAPE_RECIPES  0 computes every grid from its spec in full, never from a recipe (``landscape.recipe``;
                       default 1)
    LANDSCAPE_EXACT    1 runs a reproduction's exact (long) protocol instead of its default one
    LANDSCAPE_DEBUG    1 shows the traceback of an error instead of its one line
    LANDSCAPE_BROWSER  the Chromium-family browser that takes stills of the interactive page
"""
from __future__ import annotations

import os
from pathlib import Path

from .errors import LandscapeError

VARIABLES = ("LANDSCAPE_CACHE", "LANDSCAPE_KERNELS", "LANDSCAPE_MEMORY", "LANDSCAPE_FAST", "LANDSCAPE_RECIPES",
             "LANDSCAPE_EXACT", "LANDSCAPE_DEBUG", "LANDSCAPE_BROWSER")
TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off", "")


def flag(name: str, default: bool = False) -> bool:
    """A yes/no variable: 1/true/yes/on or 0/false/no/off (any case); unset is ``default``; anything
    else is one clear error naming the variable."""
    value = os.environ.get(name)
    if value is None:
        return default
    text = value.strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise LandscapeError(f"${name}={value!r}: write 1 or 0 (also true/false, yes/no, on/off)")


def folder(name: str, default: Path) -> Path:
    """A folder variable: its value with ~ expanded, else ``default``. An empty value counts as unset."""
    value = os.environ.get(name, "").strip()
    return Path(value).expanduser() if value else default


def text(name: str) -> str | None:
    """A variable's value, stripped; None when unset or empty."""
    value = os.environ.get(name, "").strip()
    return value or None


def home_cache() -> Path:
    """~/.cache/landscape, the home folder from $HOME, or from the user database when $HOME is unset
    or empty (an empty $HOME would put the cache in /.cache, shared by every user)."""
    home = os.environ.get("HOME", "").strip()
    if not home:
        import pwd

        home = pwd.getpwuid(os.getuid()).pw_dir
    return Path(home).expanduser() / ".cache" / "landscape"


def cache_dir() -> Path:
    """$LANDSCAPE_CACHE, else ~/.cache/landscape: the computed surfaces."""
    return folder("LANDSCAPE_CACHE", home_cache())


def kernel_dir() -> Path:
    """$LANDSCAPE_KERNELS, else ~/.cache/landscape/kernels: compiled code for this machine, kept apart from
    the results ($LANDSCAPE_CACHE), so a project's own result cache does not compile again."""
    return folder("LANDSCAPE_KERNELS", home_cache() / "kernels")


def memory() -> int | None:
    """$LANDSCAPE_MEMORY in bytes ('512M', '2G', '1e9'), or None when unset."""
    value = text("LANDSCAPE_MEMORY")
    if value is None:
        return None
    from .plan import parse_bytes

    return parse_bytes(value)


def fast() -> bool:
    """Whether fused kernels may run ($LANDSCAPE_FAST, default on)."""
    return flag("LANDSCAPE_FAST", True)


def recipes() -> bool:
    """Whether a grid may be computed from its recipe ($LANDSCAPE_RECIPES, default on)."""
    return flag("LANDSCAPE_RECIPES", True)


def exact() -> bool:
    """Whether reproductions run their exact protocol ($LANDSCAPE_EXACT)."""
    if os.environ.get("LANDSCAPE_EXACT", "").strip().lower() == "exact":
        return True
    return flag("LANDSCAPE_EXACT")


def debug() -> bool:
    """Whether errors show their traceback ($LANDSCAPE_DEBUG: any non-empty value but 0)."""
    value = os.environ.get("LANDSCAPE_DEBUG", "").strip().lower()
    return value not in FALSE


def browser() -> str | None:
    """$LANDSCAPE_BROWSER: the browser the page stills use, or None."""
    return text("LANDSCAPE_BROWSER")
