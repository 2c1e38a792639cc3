"""The one exception users see: a bad value, named, with the valid choices; and the one-line text of an
OS or HDF5 error inside its message."""
from __future__ import annotations

import os
import re


class LandscapeError(ValueError):
    """A user error (bad option, spec, file). The CLI prints it as one line and exits non-zero."""


def error_reason(err) -> str:
    """An OSError (or HDF5's error text) as a short, one-line reason: the errno's text where
    there is one ("No space left on device")."""
    if isinstance(err, OSError) and err.errno:
        return err.strerror or os.strerror(err.errno)
    text = " ".join(str(err).split())
    found = re.search(r"errno = (\d+)", text)
    if found and int(found.group(1)):
        return os.strerror(int(found.group(1)))
    if "fletcher32" in text or "checksum" in text.lower():
        return "checksum mismatch"
    return text or type(err).__name__
