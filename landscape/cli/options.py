"""Options shared by several subcommands."""
from __future__ import annotations

import click


def _set_threads(ctx, param, value):
    if value is None:
        return None
    if value < 0:
        raise click.BadParameter(f"must be 0 (one per core) or a positive count, not {value}")
    if value > 0:  # 0 leaves torch's own default
        import torch

        torch.set_num_threads(value)
    return value


def threads_option(default: int = 1, expose: bool = False):
    """--threads N: CPU threads for torch's operations, set as soon as the option is parsed.

    The default is one: the CPU path steps cache-sized blocks (about 1 MiB) whose operations are
    too small to gain from splitting, and on a shared machine two OpenMP threads were measured
    10-30x slower than one (README, Performance). ``expose``: also pass the value to the command."""
    return click.option("--threads", type=int, default=default, show_default=True, callback=_set_threads, expose_value=expose,
                        help="CPU threads (0: torch's default, one per core). One is fastest for the "
                             "cache-sized blocks of the CPU path, above all on a shared machine.")
