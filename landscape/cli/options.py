"""Options shared by several subcommands, each defined once.

``model_options`` adds the options that name a model (--cell, --cell-opt, --task, --task-set,
--hidden, --set) and hands the command one ``model`` argument, a ``landscape.model.ModelSpec``.
Nothing here imports torch: the options are parsed at start-up.
"""
from __future__ import annotations

import functools

import click

from ..model import ModelSpec, parse_assignments
from ..readouts import FITS

CELL_HELP = "Cell: a name (see `landscape cells`), or your own as FILE.py:Class or module:Class."
TASK_HELP = "Task: a name (see `landscape tasks`), or your own as FILE.py:Class or module:Class."


MAX_HIDDEN = 1 << 15  # hidden units: one H x H float64 matrix is then 8 GiB; beyond, sizes overflow


def _check_hidden(ctx, param, value):
    """-H: None (the task's) or 1 .. MAX_HIDDEN, before any model is made."""
    if value is not None and not 1 <= value <= MAX_HIDDEN:
        raise click.BadParameter(f"{value} hidden units: give 1 to {MAX_HIDDEN}", ctx=ctx, param=param)
    return value


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
            click.option("--hidden", "-H", type=int, callback=_check_hidden,
                         help=hidden_help or "Hidden units (default: the task's, 1 for latch)."),
            click.option("--set", "sets", multiple=True, metavar="NAME=VALUE", help=set_help),
        )):
            wrapper = option(wrapper)
        return wrapper

    return decorate


def _threads_value(value):
    if value is not None and value < 1:
        raise click.BadParameter(f"must be a positive count, not {value}")
    return value


def _set_workers(ctx, param, value):
    """The fused kernels' worker threads; torch's own operations on one thread."""
    value = _threads_value(value)
    from ..kernels import set_threads

    set_threads(value)  # None: every core this process may run on
    from ..lazy import after_import

    after_import("torch", lambda torch: torch.set_num_threads(1))  # where torch is used at all
    return value


def _set_torch_threads(ctx, param, value):
    value = _threads_value(value)
    import torch

    torch.set_num_threads(value)
    return value


def threads_option():
    """--threads N for the grid commands (grid, grads, reproduce, fixedpoints): the fused one-unit
    kernels run blocks of grid points on N worker threads, each single-threaded (default: every core
    the process may run on, os.sched_getaffinity); torch's own operations (cells with H > 1, the
    gradients) run on one thread: its OpenMP threads on the small operations of a step were
    measured 10-30x slower than one on a shared machine (README, Performance)."""
    return click.option("--threads", type=int, default=None, callback=_set_workers, expose_value=False,
                        help="Worker threads of the fused kernels, each single-threaded [default: every core "
                             "this process may run on]; torch's own operations use one.")


def torch_threads_option(default: int = 1):
    """--threads N for training: torch's threads (default one: a step's tensors are small, and a
    descheduled second OpenMP thread stalls every parallel region on a busy machine)."""
    return click.option("--threads", type=int, default=default, show_default=True, callback=_set_torch_threads,
                        help="CPU threads of torch's operations while training (one is fastest for the "
                             "small tensors of a step, above all on a shared machine).")


def fit_option(help: str):
    """--fit fixed|optimal|auto, how the readout of a classification task is set at each point (its
    fit; the readout's kind is the task's); --readout is its other name, as before --fit."""
    return click.option("--fit", "--readout", "fit", type=click.Choice(FITS), default="auto", show_default=True,
                        help=help)


def device_option():
    return click.option("--device", default="auto", show_default=True,
                        help="auto (CUDA when present), cpu or cuda.")


def _check_scheduler(ctx, param, value):
    if value is None:
        return None
    from ..distributed import parse_address  # text only: imports no Dask

    return str(parse_address(value))


def scheduler_option():
    """--scheduler ADDRESS: compute on a Dask cluster (``landscape.distributed``); checked as text
    when parsed (a malformed value is one line), contacted when the command runs."""
    return click.option("--scheduler", metavar="ADDRESS", callback=_check_scheduler,
                        help="Compute on a Dask cluster: local:N starts N single-threaded worker processes "
                             "here, threads:N N worker threads in this process (no start-up: the faster on "
                             "one machine); tcp://HOST:PORT or a scheduler file joins a running one (needs "
                             "pip install 'rnn-landscape[dask]'). Default: this process only.")
