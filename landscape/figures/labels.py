"""Parameter names as mathematics on the figures' axes: ``b_z`` as b with subscript z.

    param_label("b_z")        -> "$b_{z}$"
    param_label("w_hh[0,1]")  -> "$w_{hh}[0,1]$"
    param_label("alpha")      -> "$\\alpha$"
    param_label("out_w")      -> "$\\mathrm{out}_{w}$"

A name is NAME[_SUB][[INDEX]]: a one-letter NAME (or a Greek letter's name) is a variable, in
italics; a longer one stays upright (``\\mathrm``); everything after the first ``_`` is the
subscript; an index [i] or [i,j] follows as written. Mathtext and LaTeX (``text.usetex``) both read
the result. A name of another shape (a user's cell may name a parameter anything) is returned as
it is, so no character of it can break the figure.
"""
from __future__ import annotations

import re

_NAME = re.compile(r"(?P<base>[A-Za-z][A-Za-z0-9]*)(?:_(?P<sub>[A-Za-z0-9_]+))?(?P<index>\[[0-9, ]+\])?")
GREEK = frozenset("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi pi rho sigma tau "
                  "upsilon phi chi psi omega".split())


def param_label(name: str) -> str:
    """The axis label of the parameter ``name`` (see the module docstring)."""
    m = _NAME.fullmatch(str(name))
    if m is None:
        return str(name)
    return f"${_symbol(m['base'])}{_subscript(m['sub'])}{m['index'] or ''}$"


def _symbol(text: str) -> str:
    if text.lower() in GREEK:
        return "\\" + text
    return text if len(text) == 1 else f"\\mathrm{{{text}}}"


def _subscript(sub: str | None) -> str:
    if not sub:
        return ""
    return "_{" + ",".join(_symbol(p) if p.lower() in GREEK else p for p in sub.split("_")) + "}"
