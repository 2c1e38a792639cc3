"""The one exception users see: a bad value, named, with the valid choices."""


class LandscapeError(ValueError):
    """A user error (bad option, spec, file). The CLI prints it as one line and exits non-zero."""
