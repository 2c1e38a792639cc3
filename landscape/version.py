"""The version of landscape: one home, read by the package, the store's files and setup.cfg."""
__version__ = "0.1.0"
