"""The ``wharf`` command tree: every command's name and where it lives, imported on demand.

:data:`ROOT` is the one declaration of which commands exist (docker's top-level aliases
included) and of the groups (``container``, ``image``…, with their help): a name maps to
``"module:attribute"`` under ``wharf.cli.commands``, or to a :class:`GroupSpec`.
:class:`LazyGroup` imports a command's module only when that command is run or asked for its
own help, so ``wharf run`` pays for ``run.py`` and not for ``build.py``. A listing
(``wharf --help``, ``wharf image --help``) takes each command's short help from
:mod:`wharf.cli.commandhelp`, an index generated from the commands' docstrings
(``python -m wharf.cli.commandtree > cli/wharf/cli/commandhelp.py``); a unit test
(``tests/unit/test_cli_lazy.py``) fails when the index and the docstrings differ. Why an
index rather than a second hand-written table: docs/cli.md "Start-up".
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import click

PACKAGE = "wharf.cli.commands"


class GroupSpec:
    """A command group: its help and its commands (name → target or nested group)."""

    __slots__ = ("commands", "help")

    def __init__(self, help: str, commands: Mapping[str, str | GroupSpec]) -> None:
        self.help = help
        self.commands = commands


_CONTAINER = GroupSpec("Manage containers.", {
    "attach": "attach:attach_cmd", "commit": "commit:commit_cmd", "cp": "copy:cp_cmd",
    "create": "run:create_cmd", "diff": "copy:diff_cmd", "exec": "attach:exec_cmd",
    "export": "copy:export_cmd", "inspect": "inspect:container_inspect_cmd",
    "kill": "lifecycle:kill_cmd", "logs": "attach:logs_cmd", "ls": "listing:ps_cmd",
    "move": "moving:move_cmd", "pause": "lifecycle:pause_cmd",
    "prune": "lifecycle:prune_cmd", "rename": "lifecycle:rename_cmd",
    "restart": "lifecycle:restart_cmd", "rm": "lifecycle:rm_cmd", "run": "run:run_cmd",
    "start": "lifecycle:start_cmd", "stats": "stats:stats_cmd",
    "stop": "lifecycle:stop_cmd", "top": "listing:top_cmd",
    "unpause": "lifecycle:unpause_cmd", "wait": "lifecycle:wait_cmd",
})

_IMAGE = GroupSpec("Manage images.", {
    "build": "build:build_cmd", "history": "images:history_cmd",
    "import": "transfer:import_cmd", "inspect": "images:inspect_cmd",
    "load": "transfer:load_cmd", "ls": "images:ls_cmd", "prune": "images:prune_cmd",
    "pull": "transfer:pull_cmd", "push": "transfer:push_cmd", "rm": "images:rm_cmd",
    "save": "transfer:save_cmd", "tag": "images:tag_cmd",
})

_NETWORK = GroupSpec("Manage networks.", {
    "connect": "networks:connect_cmd", "create": "networks:create_cmd",
    "disconnect": "networks:disconnect_cmd", "inspect": "networks:inspect_cmd",
    "list": "networks:ls_cmd", "ls": "networks:ls_cmd", "prune": "networks:prune_cmd",
    "remove": "networks:rm_cmd", "rm": "networks:rm_cmd",
})

_VOLUME = GroupSpec("Manage volumes.", {
    "create": "volumes:create_cmd", "export": "volumes:export_cmd",
    "import": "volumes:import_cmd", "inspect": "volumes:inspect_cmd",
    "list": "volumes:ls_cmd", "ls": "volumes:ls_cmd", "prune": "volumes:prune_cmd",
    "remove": "volumes:rm_cmd", "rm": "volumes:rm_cmd",
})

_NODE = GroupSpec("Manage the cluster's nodes (through the gateway).", {
    "drain": "moving:drain_cmd", "inspect": "nodes:node_inspect", "list": "nodes:node_ls",
    "ls": "nodes:node_ls", "update": "nodes:node_update",
})

_SYSTEM = GroupSpec("Manage wharf.", {
    "check": "system:check_cmd", "df": "diskusage:df_cmd", "info": "system:info_cmd",
    "prune": "prune:system_prune_cmd",
})

_BUILDER = GroupSpec("Manage builds.", {"prune": "prune:builder_prune_cmd"})

# docker's top-level aliases of group commands point at the same targets as the groups do
ROOT: Mapping[str, str | GroupSpec] = {
    "builder": _BUILDER, "container": _CONTAINER, "image": _IMAGE, "network": _NETWORK,
    "node": _NODE, "system": _SYSTEM, "volume": _VOLUME,
    **{name: _CONTAINER.commands[name] for name in (
        "attach", "commit", "cp", "create", "diff", "exec", "export", "kill", "logs", "pause",
        "rename", "restart", "rm", "run", "start", "stats", "stop", "top", "unpause", "wait")},
    "ps": "listing:ps_cmd", "inspect": "inspect:inspect_cmd", "events": "events:events_cmd",
    **{name: _IMAGE.commands[name] for name in (
        "build", "history", "import", "load", "pull", "push", "save", "tag")},
    "images": "images:ls_cmd", "rmi": "images:rm_cmd",
    "info": "system:info_cmd", "version": "system:version_cmd",
    "login": "auth:login_cmd", "logout": "auth:logout_cmd", "port": "networks:port_cmd",
}


def resolve(target: str) -> click.Command:
    """Import the command a ``"module:attribute"`` target names."""
    module, _, attribute = target.partition(":")
    command = getattr(importlib.import_module(f"{PACKAGE}.{module}"), attribute)
    if not isinstance(command, click.Command):
        raise TypeError(f"{target} is not a click command")
    return command


def _summaries() -> Mapping[str, str]:
    from wharf.cli.commandhelp import SUMMARIES  # noqa: PLC0415 - only listings need it

    return SUMMARIES


class LazyGroup(click.Group):
    """A click group whose commands are declared as targets and imported when first used."""

    def __init__(self, *args: Any, lazy: Mapping[str, str | GroupSpec] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy: Mapping[str, str | GroupSpec] = lazy or {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = self.commands.get(cmd_name)
        entry = self.lazy.get(cmd_name)
        if command is None and entry is not None:
            command = group(cmd_name, entry) if isinstance(entry, GroupSpec) else \
                resolve(entry)
            self.add_command(command, cmd_name)
        return command

    def resolve_command(self, ctx: click.Context,
                        args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            # click (8.4+) suggests a near name from self.commands, which holds only the
            # commands imported so far: suggest from every name instead
            no_such = getattr(click.exceptions, "NoSuchCommand", None)
            if no_such is None or not isinstance(exc, no_such) or not args:
                raise
            raise no_such(args[0], possibilities=self.list_commands(ctx), ctx=ctx) from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # click's own listing builds every command to ask for its short help; this one asks
        # the index instead, and builds only a command it has no entry for.
        rows = list(self._listing(ctx))
        if not rows:
            return
        limit = formatter.width - 6 - max(len(name) for name, _ in rows)
        with formatter.section("Commands"):
            formatter.write_dl([(name, cmd.get_short_help_str(limit)) for name, cmd in rows])

    def _listing(self, ctx: click.Context) -> Iterator[tuple[str, click.Command]]:
        summaries = _summaries()
        for name in self.list_commands(ctx):
            entry = self.lazy.get(name)
            command: click.Command | None
            if name in self.commands or entry is None:
                command = self.get_command(ctx, name)
            elif isinstance(entry, GroupSpec):
                command = click.Command(name, help=entry.help)
            elif entry in summaries:
                command = click.Command(name, help=summaries[entry])
            else:  # not in the index (yet): correct, only slower
                command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                yield name, command


def group(name: str, spec: GroupSpec) -> LazyGroup:
    """The lazy click group a :class:`GroupSpec` declares."""
    return LazyGroup(name, help=spec.help, lazy=spec.commands)


def targets(tree: Mapping[str, str | GroupSpec] = ROOT) -> set[str]:
    """Every command target in ``tree``, nested groups included."""
    found: set[str] = set()
    for entry in tree.values():
        found |= targets(entry.commands) if isinstance(entry, GroupSpec) else {entry}
    return found


def render_index() -> str:
    """The source of :mod:`wharf.cli.commandhelp`: each target's short help, untruncated."""
    lines = ["# ruff: noqa: E501 - generated: one line per command",
             '"""Generated by ``python -m wharf.cli.commandtree``: each command\'s short help, '
             "for listings\n(``wharf --help``) without importing the commands. Do not edit; "
             'tests/unit/test_cli_lazy.py\nchecks it against the docstrings."""',
             "", "SUMMARIES: dict[str, str] = {"]
    for target in sorted(targets()):
        lines.append(f"    {target!r}: {resolve(target).get_short_help_str(10**6)!r},")
    lines += ["}", "", "# ``wharf --help`` on a terminal of HELP_COLUMNS columns or more (click's "
              "formatter: 80 at most,", "# less 2): the fast path prints it without click",
              f"HELP_COLUMNS = {HELP_COLUMNS}", f"ROOT_HELP = {root_help()!r}"]
    return "\n".join(lines) + "\n"


HELP_COLUMNS = 80  # click formats help at min(columns, 80) - 2: the same text from 80 columns up


def root_help() -> str:
    """What ``wharf --help`` prints on a terminal at least :data:`HELP_COLUMNS` wide."""
    from wharf.cli.main import build_cli  # noqa: PLC0415 - main imports this module

    root = build_cli()
    with root.make_context("wharf", [], resilient_parsing=True,
                           terminal_width=HELP_COLUMNS - 2) as ctx:
        return root.get_help(ctx) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render_index())
