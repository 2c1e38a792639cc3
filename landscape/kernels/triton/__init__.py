"""The CUDA backend: a Triton kernel generated from a cell's traced step.

- ``codegen``: the kernel's source, written from the traced program (``kernels.trace``);
- ``launch``: builds, checks and runs it (``outputs``: (K, P, N)), and ``losses``: the losses (K, P)
  the engine asks for, the readout's loss taken in torch.

Triton itself is imported by ``launch`` (``launch.available()`` says whether it is installed).
"""
