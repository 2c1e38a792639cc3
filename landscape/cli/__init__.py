"""The ``landscape`` command: a thin click group. Each subcommand lives in its own module here and
only turns options into specs, calls the library, and prints where the result is. A subcommand's
module is imported when that command runs (or a listing needs it: ``--help``), so ``landscape
grid`` does not import what ``train``, ``plot`` or ``explore`` need."""
from __future__ import annotations

import os
import signal
import sys


def _interrupted_at_start(signum, frame):  # pragma: no cover - timing
    """Ctrl-C while the command's modules are imported: one line, exit 130, no traceback (nothing
    has been written yet, so nothing is to be cleaned up)."""
    os.write(2, b"error: interrupted\n")
    os._exit(130)


try:  # until the imports below are done (see the end of the module)
    _SIGINT_BEFORE = signal.signal(signal.SIGINT, _interrupted_at_start)
except ValueError:  # imported from a thread other than the main one: its handling stays as it is
    _SIGINT_BEFORE = False

import importlib  # noqa: E402
from typing import ClassVar  # noqa: E402

import click  # noqa: E402

from ..errors import LandscapeError  # noqa: E402

# the subcommands: name -> the module here that defines it, as ``command`` (a click.Command or Group, or a
# list of them)
COMMANDS = {"cells": "info", "tasks": "info", "grid": "grid", "cache": "cache", "check": "check",
            "dynamics": "dynamics", "grads": "grads", "plot": "plot", "reproduce": "reproduce", "train": "train",
            "fixedpoints": "fixedpoints", "explore": "explore"}


class Group(click.Group):
    """Turns every failure below into one line on stderr and exit status 2: a LandscapeError (a
    bad value, file or spec), a usage error (click's own would print three lines), an OSError
    (a full disk, a permission, a lost device: its errno's text and the file), MemoryError, and,
    as a last resort, any other exception ("internal error", with its type; set LANDSCAPE_DEBUG=1
    to see the traceback). Ctrl-C prints one line and exits 130.

    Run as the program (``__call__``: the console script, ``python -m landscape``) it leaves by
    ``_exit_now``; ``main.main(...)`` (click's CliRunner, code embedding the CLI) keeps click's exit.
    The subcommands of ``lazy`` (name -> module, ``COMMANDS`` for ``main``) are added from their
    modules when first looked up."""

    lazy: ClassVar[dict[str, str]] = {}

    def list_commands(self, ctx):
        return sorted({*self.lazy, *self.commands})

    def get_command(self, ctx, name):
        if name not in self.commands and name in self.lazy:
            module = importlib.import_module(f"{__name__}.{self.lazy[name]}")
            for command in module.command if isinstance(module.command, list) else [module.command]:
                self.add_command(command)
        return super().get_command(ctx, name)

    def __call__(self, *args, **kwargs):
        try:
            return self.main(*args, **kwargs)
        except SystemExit as done:
            _exit_now(done.code)

    def parse_args(self, ctx, args):
        if not args and ctx.parent is None:  # plain `landscape`: the help, not an error
            click.echo(ctx.get_help())
            ctx.exit(0)
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as err:  # options of `landscape` itself (a subcommand's are below)
            _fail(f"landscape: {err.format_message()} (see --help)")

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except LandscapeError as err:
            _fail(err)
        except click.UsageError as err:
            where = f"landscape {err.ctx.command_path.split(' ', 1)[-1]}: " if err.ctx and " " in err.ctx.command_path else ""
            _fail(f"{where}{err.format_message()} (see --help)")
        except click.ClickException as err:
            _fail(err.format_message())
        except (click.exceptions.Exit, click.exceptions.Abort):
            raise
        except SystemExit as err:  # raised by code we ran (a user cell or task): landscape's commands return
            if os.environ.get("LANDSCAPE_DEBUG"):
                raise
            _fail(f"the code of a user cell or task called exit ({err.code!r}) before the command finished; "
                  f"nothing more was computed or written", 1)
        except KeyboardInterrupt:
            click.echo("error: interrupted (a grid resumes from its finished chunks when run again)", err=True)
            sys.exit(130)
        except BrokenPipeError:  # the reader of our output went away (| head): nothing to say
            try:
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            except (OSError, ValueError):
                pass
            sys.exit(1)
        except OSError as err:
            if os.environ.get("LANDSCAPE_DEBUG"):
                raise
            where = f": {err.filename}" if getattr(err, "filename", None) else ""
            _fail(f"{err.strerror or err}{where}")
        except MemoryError:
            _fail("out of memory; lower --n, the largest T or the grid, or set a smaller --memory budget")
        except Exception as err:  # a bug: still one line, with a way to see more
            if os.environ.get("LANDSCAPE_DEBUG"):
                raise
            where = _user_code(err)
            if where:  # a user's cell or task failed (late, on some input): theirs to fix, not a bug of ours
                _fail(f"{type(err).__name__}: {err} (raised by {where}, a user cell's or task's code; "
                      f"LANDSCAPE_DEBUG=1 shows the traceback)", 1)
            _fail(f"internal error ({type(err).__name__}: {err}); please report it (LANDSCAPE_DEBUG=1 shows "
                  f"the traceback)")


def _user_code(err: BaseException) -> str | None:
    """FILE:LINE of the innermost frame of err's traceback in code that is neither landscape's nor
    an installed package's nor Python's own (a user's cell or task file), or None."""
    import sysconfig
    import traceback

    ours = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    installed = {os.path.abspath(sysconfig.get_paths()[k]) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    for frame in reversed(traceback.extract_tb(err.__traceback__)):
        path = os.path.abspath(frame.filename)
        if frame.filename.startswith("<") or path.startswith(ours + os.sep) or any(
                path.startswith(p + os.sep) for p in installed):
            continue
        return f"{frame.filename}:{frame.lineno}"
    return None


def _exit_now(code) -> None:
    """End the process with the status ``sys.exit(code)`` gives, without the interpreter's teardown.

    What an exit must do is done, in the interpreter's order: threads joined (``threading``'s
    shutdown: non-daemon threads, the thread pools' exit hooks), the ``atexit`` handlers run
    (h5py's, Dask's, logging's, multiprocessing's, weakref finalizers), stdout and stderr flushed (a
    failed flush gives status 120, as Python's own exit). What is skipped is freeing every module and
    object one at a time: about 0.75 s of CPU after a grid (torch's, numba's and h5py's modules;
    docs/performance.md, "whole process"). Every file a command writes is closed before it returns
    (the store's writers and readers are context managers), so no buffered data waits on a
    destructor."""
    import atexit
    import threading

    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # sys.exit("message"): the message on stderr, status 1
        print(code, file=sys.stderr)
        status = 1
    threading._shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: Python's own exit reports 120
            status = 120
    os._exit(status & 0xFF)  # as the interpreter: sys.exit(-1) gives 255


def _fail(message, status: int = 2) -> None:
    text = " ".join(str(message).split())  # one line, whatever the message held
    click.echo(f"error: {text}", err=True)
    sys.exit(status)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="landscape")
def main():
    """Loss landscapes and gradient dynamics of small recurrent cells."""


main.lazy = COMMANDS


if _SIGINT_BEFORE is not False:  # from here Ctrl-C is KeyboardInterrupt again (Group.invoke: one line, 130)
    signal.signal(signal.SIGINT, _SIGINT_BEFORE or signal.default_int_handler)
