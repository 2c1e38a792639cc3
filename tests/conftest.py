"""Test-session setup.

Without a GPU, Triton (when installed) must be imported with its interpreter on, or the fused
kernels' numerics tests in test_kernels.py skip: TRITON_INTERPRET is read once, when triton is
first imported, and torch.compile or ``landscape.kernels`` may import it before those tests run.
With a GPU the variable is left alone so that the CUDA tests run compiled kernels.

Grids are computed from their recipes (``landscape.recipe``, kept in the kernel cache across runs)
only in the tests marked ``recipes``: elsewhere a test that injects a fault into the full path
must meet it whatever an earlier test or run left in the kernel cache."""
from __future__ import annotations

import os

import pytest

if "TRITON_INTERPRET" not in os.environ:
    import torch

    if not torch.cuda.is_available():
        os.environ["TRITON_INTERPRET"] = "1"


@pytest.fixture(autouse=True)
def _recipes_only_where_marked(request, monkeypatch):
    if request.node.get_closest_marker("recipes") is None:
        monkeypatch.setenv("LANDSCAPE_RECIPES", "0")
