"""The version of landscape: one home, read by the package, the store's files and setup.cfg."""
__version__ = "0.1.0"


def torch_version() -> str:
    """The installed torch's version as ``torch.__version__`` gives it (a surface file records it),
    read from the package's metadata where torch is not imported: a grid computed from its recipe
    (``landscape.recipe``) never imports torch."""
    import sys

    module = sys.modules.get("torch")
    if module is not None:
        return str(module.__version__)
    from importlib.metadata import version

    return version("torch")
