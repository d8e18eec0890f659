"""``wharf run`` and ``wharf create`` (also ``wharf container run|create``) as click commands.

Their flags are declared in :mod:`wharf.cli.commands.runflags`, what they do is in
:mod:`wharf.cli.commands.runflow` (shared with the click-free fast path, :mod:`wharf.cli.fast`,
which runs the plain cases of ``wharf run`` without importing click). Flag errors print the
docker way: message, ``See 'wharf run --help'.``, exit 125.
"""

from __future__ import annotations

from typing import Any

import click

from wharf.cli.commands import runflow
from wharf.cli.commands.createopts import FlagCommand, create_options, options
from wharf.cli.commands.runflags import RUN_FLAGS
from wharf.cli.session import current

RUN_SETTINGS = {"help_option_names": ["--help"], "allow_interspersed_args": False}


@click.command("run", cls=FlagCommand, context_settings=RUN_SETTINGS)
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@options(RUN_FLAGS)
@create_options
def run_cmd(image: str, command: tuple[str, ...], **opts: Any) -> None:
    """Run a command in a new container."""
    ctx = click.get_current_context()
    code = runflow.run(current(), image, command, opts, ctx.command_path)
    if code:
        ctx.exit(code)


@click.command("create", cls=FlagCommand, context_settings=RUN_SETTINGS)
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@create_options
def create_cmd(image: str, command: tuple[str, ...], **opts: Any) -> None:
    """Create a new container."""
    cid = runflow.create(current(), image, command, opts,
                         click.get_current_context().command_path)
    click.echo(cid)
