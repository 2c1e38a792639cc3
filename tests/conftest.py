"""Test-session setup.

Without a GPU, Triton (when installed) must be imported with its interpreter on, or the fused
kernels' numerics tests in test_kernels.py skip: TRITON_INTERPRET is read once, when triton is
first imported, and torch.compile or ``landscape.kernels`` may import it before those tests run.
With a GPU the variable is left alone so that the CUDA tests run compiled kernels."""
from __future__ import annotations

import os

if "TRITON_INTERPRET" not in os.environ:
    import torch

    if not torch.cuda.is_available():
        os.environ["TRITON_INTERPRET"] = "1"
