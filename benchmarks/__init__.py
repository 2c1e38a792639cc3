"""Benchmarks of landscape against the baselines users would otherwise run, measured side by side
in one run: ``python -m benchmarks`` (``--quick`` for a smoke run, ``--help`` for the options).

One module per benchmark, each with ``NAME`` and ``run(settings) -> list[Row]``:

- ``grid_vs_loop``  grid evaluation vs a per-point loop over torch.nn modules (srnn, lstm, gru on
                    latch) or torch scalars (pascanu on target)
- ``floor``         srnn (fused, and cell.step) vs one in-place tanh_ per cell-step over the same blocks
- ``training``      the latching reproduction as populations vs one torch.nn model at a time
- ``memory``        peak memory of a 1001 x 1001 grid as T grows, vs the memory budget
- ``fused_cpu``     the fused CPU kernels vs JAX (``jax_baseline``) and cell.step in torch, fixed and
                    optimal readout, float64 and float32
- ``user_cell``     a user's cell from a file (examples/cells/mgu.py) vs the built-in gru, both fused;
                    and one row per traced function (examples/cells/one_op.py): fused / torch
- ``scaling``       the engine on one worker thread vs every core
- ``process``       whole processes: start-up vs ``import torch``, ``landscape grid`` vs a JAX script
                    (``jax_grid.py``), the headline command vs LANDSCAPE_FAST=0
- ``fusion``        (on request) fused-step trials in C against the srnn floor
- ``distributed``   (its own command, ``python -m benchmarks.distributed``: it needs dask and the
                    machine's every core) a grid on ``--scheduler local:2`` vs one process
- ``numpy_baseline``, ``jax_baseline``, ``jax_grid``: the baselines fused_cpu and process time
"""
