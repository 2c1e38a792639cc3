"""The ``landscape`` command: a thin click group. Each subcommand lives in its own module here and
only turns options into specs, calls the library, and prints where the result is."""
from __future__ import annotations

import importlib
import sys

import click

from ..errors import LandscapeError

# subcommand modules, each exposing ``command`` (a click.Command or click.Group)
COMMAND_MODULES = ("info", "grid", "cache", "dynamics", "grads", "plot", "reproduce", "train", "fixedpoints")


class Group(click.Group):
    """Turns a LandscapeError or a usage error anywhere below into one line on stderr and exit
    status 2 (click's own usage errors would print three)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except LandscapeError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(2)
        except click.UsageError as err:
            where = f"landscape {err.ctx.command_path.split(' ', 1)[-1]}: " if err.ctx and " " in err.ctx.command_path else ""
            click.echo(f"error: {where}{err.format_message()} (see --help)", err=True)
            sys.exit(2)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="landscape")
def main():
    """Loss landscapes and gradient dynamics of small recurrent cells."""


for _name in COMMAND_MODULES:
    _module = importlib.import_module(f"{__name__}.{_name}")
    for _command in (_module.command if isinstance(_module.command, list) else [_module.command]):
        main.add_command(_command)
