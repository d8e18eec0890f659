"""The ``wharf`` command: root group, global options, error printing, command registration.

Start-up cost matters: this module and the command modules import only click and the standard
library at import time; httpx, rich and pydantic are imported inside the commands that need them.
Command groups are registered explicitly in :func:`build_cli` (no import side effects); other
areas (``container``, ``run``…) add a ``register(root)`` call there.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from wharf import __version__
from wharf.cli.commands import auth, containers, images, system
from wharf.cli.failure import CLIError
from wharf.cli.session import Hooks, Session
from wharf.cli.transport import DaemonUnreachable, parse_host
from wharf.errors import InvalidArgument, WharfError

DEFAULT_HOST = "unix:///run/wharf/wharfd.sock"


class RootGroup(click.Group):
    """Turns the API client's error kinds into Docker's messages and exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DaemonUnreachable as exc:
            raise CLIError(str(exc)) from exc
        except WharfError as exc:
            raise CLIError(f"Error response from daemon: {exc}") from exc


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"wharf version {__version__}")
        ctx.exit()


def _with_root_options(fn: Any) -> Any:
    """Apply the global options (``-H``, ``--config``, ``-D``, ``--version``) to ``fn``."""
    options = [
        click.option("-H", "--host", envvar="WHARF_HOST", default=DEFAULT_HOST,
                     show_default=True, metavar="URL",
                     help="Daemon socket to connect to (unix:///path or tcp://host:port)."),
        click.option("--config", "config_dir", envvar="WHARF_CONFIG", metavar="DIR",
                     type=click.Path(file_okay=False, path_type=Path),
                     help="Location of client config files (default ~/.wharf)."),
        click.option("-D", "--debug", is_flag=True, help="Enable debug mode."),
        click.option("--version", is_flag=True, expose_value=False, is_eager=True,
                     callback=_print_version, help="Print version information and quit."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _root(ctx: click.Context, host: str, config_dir: Path | None, debug: bool) -> None:
    """A self-sufficient runtime for containers."""
    try:
        parsed = parse_host(host)
    except InvalidArgument as exc:
        raise CLIError(str(exc)) from exc
    hooks = ctx.obj if isinstance(ctx.obj, Hooks) else Hooks()
    home = Path(os.path.expanduser("~"))
    ctx.obj = Session(host=parsed, config_dir=config_dir or home / ".wharf", debug=debug,
                      hooks=hooks)


def build_cli() -> click.Group:
    """The root group with every command area registered."""
    root = click.group(cls=RootGroup, name="wharf",
                       context_settings={"help_option_names": ["-h", "--help"]})(
        _with_root_options(click.pass_context(_root)))
    images.register(root)
    system.register(root)
    auth.register(root)
    containers.register(root)
    return root


def main() -> None:
    """Console-script entry point (``wharf = wharf.cli.main:main``)."""
    build_cli()(prog_name="wharf")


if __name__ == "__main__":
    main()
