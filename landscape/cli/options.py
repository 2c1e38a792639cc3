"""Options shared by several subcommands, each defined once.

``model_options`` adds the options that name a model (--cell, --cell-opt, --task, --task-set,
--hidden, --set) and hands the command one ``model`` argument, a ``landscape.model.ModelSpec``.
Nothing here imports torch: the options are parsed at start-up.
"""
from __future__ import annotations

import functools

import click

from ..model import ModelSpec, parse_assignments

CELL_HELP = "Cell: a name (see `landscape cells`), or your own as FILE.py:Class or module:Class."
TASK_HELP = "Task: a name (see `landscape tasks`), or your own as FILE.py:Class or module:Class."


def model_options(set_help: str = "Base-point value of another parameter (repeatable): b_f=1, w[0,1]=0.5, "
                                  "or u=0.3 to fill a whole matrix.", hidden_help: str | None = None):
    """The options that name a model; the command receives ``model`` (a ModelSpec) instead of them."""

    def decorate(command):
        @functools.wraps(command)
        def wrapper(cell, cell_opts, task, task_sets, hidden, sets, **kwargs):
            model = ModelSpec(cell=cell, cell_options=parse_assignments(cell_opts, "--cell-opt"), task=task,
                              task_options=parse_assignments(task_sets, "--task-set"), hidden=hidden,
                              set=parse_assignments(sets, "--set"))
            return command(model=model, **kwargs)

        for option in reversed((
            click.option("--cell", default="srnn", show_default=True, help=CELL_HELP),
            click.option("--cell-opt", "cell_opts", multiple=True, metavar="KEY=VALUE",
                         help="Cell option (repeatable), e.g. gate=hard_sigmoid, form=reset_before."),
            click.option("--task", default="latch", show_default=True, help=TASK_HELP),
            click.option("--task-set", "task_sets", multiple=True, metavar="KEY=VALUE",
                         help="Task parameter (repeatable), e.g. noise=0.2 (see `landscape tasks`)."),
            click.option("--hidden", "-H", type=int,
                         help=hidden_help or "Hidden units (default: the task's, 1 for latch)."),
            click.option("--set", "sets", multiple=True, metavar="NAME=VALUE", help=set_help),
        )):
            wrapper = option(wrapper)
        return wrapper

    return decorate


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
    return click.option("--threads", type=int, default=default, show_default=True, callback=_set_threads,
                        expose_value=expose,
                        help="CPU threads (0: torch's default, one per core). One is fastest for the "
                             "cache-sized blocks of the CPU path, above all on a shared machine.")


def device_option():
    return click.option("--device", default="auto", show_default=True,
                        help="auto (CUDA when present), cpu or cuda.")
