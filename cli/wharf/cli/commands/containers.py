"""Registers the container commands: the ``container`` group and docker's top-level aliases.

The commands live in ``run.py`` (run, create), ``lifecycle.py`` (start … rename, prune),
``listing.py`` (ps, top, stats, events), ``attach.py`` (attach, exec, logs), ``inspect.py`` and
``moving.py`` (``container move``, through the gateway).
"""

from __future__ import annotations

import click

from wharf.cli.commands import attach, inspect, lifecycle, listing, moving, run


def register(root: click.Group) -> None:
    """Add ``container …`` and ``run``, ``ps``, ``rm``, ``logs``, ``inspect``… to ``root``."""
    group = click.Group("container", help="Manage containers.")
    shared = (*run.COMMANDS, *lifecycle.COMMANDS, *listing.COMMANDS, *attach.COMMANDS)
    for command in (*shared, listing.ps_cmd, inspect.container_inspect_cmd,
                    lifecycle.prune_cmd, moving.move_cmd):
        group.add_command(command)
    root.add_command(group)
    for command in shared:
        root.add_command(command)
    root.add_command(listing.ps_cmd, "ps")
    root.add_command(inspect.inspect_cmd)
    root.add_command(listing.events_cmd)
