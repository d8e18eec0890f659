"""The click options of ``run`` and ``create``, made from their one declaration
(:mod:`wharf.cli.commands.runflags`), and the command class that prints flag errors the docker
way (message, ``See '… --help'.``, exit 125)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from wharf.cli.commands.runflags import CREATE_FLAGS, Flag
from wharf.cli.failure import FlagError

F = TypeVar("F", bound=Callable[..., Any])
_TYPES: dict[str, Any] = {"int": int, "bool": click.BOOL}


def to_option(flag: Flag) -> Callable[[F], F]:
    """The click option that ``flag`` declares."""
    kwargs: dict[str, Any] = {"help": flag.help, "metavar": flag.metavar}
    if flag.kind == "flag":
        kwargs["is_flag"] = True
    elif flag.kind == "many":
        kwargs["multiple"] = True
    else:
        kwargs["default"] = flag.default
        if flag.kind in _TYPES:
            kwargs["type"] = _TYPES[flag.kind]
        kwargs["show_default"] = flag.kind == "bool"
    return click.option(*flag.decls, flag.dest, **kwargs)


def options(flags: Sequence[Flag]) -> Callable[[F], F]:
    """A decorator applying ``flags`` as click options, in their declared order."""
    def apply(fn: F) -> F:
        for flag in reversed(flags):
            fn = to_option(flag)(fn)
        return fn
    return apply


create_options = options(CREATE_FLAGS)


class FlagCommand(click.Command):
    """A bad flag (click's usage error, or a :class:`FlagError` from the command's body) is
    printed with the ``See '<command> --help'.`` hint and exits 125, as the docker CLI does."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise FlagError(exc.format_message(), ctx.command_path) from exc
        except FlagError as exc:
            raise exc.hinted(ctx.command_path) from exc

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FlagError as exc:
            raise exc.hinted(ctx.command_path) from exc
