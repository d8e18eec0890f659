"""``wharf system prune`` and ``wharf builder prune``, and the prunes they are made of, as the
docker CLI does them (``cli/command/system/prune.go`` and each area's ``prune.go``).

Each pruner makes one API call and returns what it reclaimed with the text docker prints for
it (``Deleted Images:`` and one line per item, nothing when nothing went). ``system prune`` runs
them in docker's order (containers, networks, volumes with ``--volumes``, images, build cache),
prints each one's text as it comes and then ``Total reclaimed space``. Like the docker CLI, it
counts a pruner's reclaimed space only when it deleted something (the build cache's always),
and it calls ``POST /build/prune`` on every daemon: the docker CLI skips it only below API 1.31.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import click

from wharf.cli.commands.createbody import ram_in_bytes
from wharf.cli.commands.images import ask, deletion_lines, parse_filters
from wharf.cli.failure import CLIError
from wharf.cli.formatting import human_size
from wharf.cli.session import current

if TYPE_CHECKING:
    from wharf.cli.client import APIClient

Filters = Mapping[str, Iterable[str]]
_DIGITS = re.compile(r"(\d+)")


@dataclass(frozen=True)
class Outcome:
    """What one pruner reclaimed, and its report ("" when it deleted nothing)."""

    space: int
    text: str


def _report(title: str, lines: Iterable[str]) -> str:
    listed = [str(line) for line in lines]
    return "".join(f"{line}\n" for line in [title, *listed]) if listed else ""


def prune_containers(client: APIClient, filters: Filters) -> Outcome:
    """POST /containers/prune."""
    report = client.prune_containers(filters)
    deleted = report.get("ContainersDeleted") or []
    space = int(report.get("SpaceReclaimed") or 0) if deleted else 0
    return Outcome(space, _report("Deleted Containers:", deleted))


def prune_networks(client: APIClient, filters: Filters) -> Outcome:
    """POST /networks/prune (a network frees no space)."""
    deleted = client.prune_networks(filters).get("NetworksDeleted") or []
    return Outcome(0, _report("Deleted Networks:", deleted))


def prune_volumes(client: APIClient, filters: Filters) -> Outcome:
    """POST /volumes/prune."""
    report = client.prune_volumes(filters)
    deleted = report.get("VolumesDeleted") or []
    space = int(report.get("SpaceReclaimed") or 0) if deleted else 0
    return Outcome(space, _report("Deleted Volumes:", deleted))


def prune_images(client: APIClient, all_: bool, filters: Filters) -> Outcome:
    """POST /images/prune with ``dangling=true`` (``false`` with ``all_``: every unused one)."""
    report = client.prune_images({**filters, "dangling": ["false" if all_ else "true"]})
    deleted = report.get("ImagesDeleted") or []
    space = int(report.get("SpaceReclaimed") or 0) if deleted else 0
    return Outcome(space, _report("Deleted Images:", deletion_lines(deleted, lower=True)))


def prune_build_cache(client: APIClient, all_: bool, filters: Filters,
                      keep_storage: int = 0) -> Outcome:
    """POST /build/prune."""
    report = client.prune_build_cache(all_, filters, keep_storage)
    deleted = report.get("CachesDeleted") or []
    return Outcome(int(report.get("SpaceReclaimed") or 0),
                   _report("Deleted build cache objects:", deleted))


def print_outcome(outcomes: Iterable[Outcome]) -> None:
    """Each report followed by a blank line, as it comes, then ``Total reclaimed space``."""
    total = 0
    for outcome in outcomes:
        total += outcome.space
        if outcome.text:
            click.echo(outcome.text)
    click.echo(f"Total reclaimed space: {human_size(total)}")


def natural_key(text: str) -> list[tuple[int, int, str, int]]:
    """Sort key of ``sortorder.NaturalLess``: runs of digits by value (then fewer leading
    zeros first) and before any other character, everything else byte by byte."""
    key: list[tuple[int, int, str, int]] = []
    for i, part in enumerate(_DIGITS.split(text)):
        if i % 2:
            value = part.lstrip("0")
            key.append((0, len(value), value, len(part) - len(value)))
        else:
            key += [(1, 0, char, 0) for char in part]
    return key


def system_warning(all_: bool, volumes: bool, filters: Filters) -> str:
    """The docker CLI's confirmation text for ``system prune`` (its ``confirmationTemplate``)."""
    items = ["all stopped containers", "all networks not used by at least one container"]
    if volumes:
        items.append("all anonymous volumes not used by at least one container")
    items.append("all images without at least one container associated to them" if all_
                 else "all dangling images")
    items.append("all build cache" if all_ else "unused build cache")
    text = "WARNING! This will remove:" + "".join(f"\n  - {item}" for item in items) + "\n"
    shown = sorted((f"{name}={value}" for name in ("label", "label!", "until")
                    for value in filters.get(name, ())), key=natural_key)
    if shown:
        text += ("\n  Items to be pruned will be filtered with:"
                 + "".join(f"\n  - {item}" for item in shown) + "\n")
    return text + "\nAre you sure you want to continue?"


@click.command("prune")
@click.option("-a", "--all", "all_", is_flag=True,
              help="Remove all unused images not just dangling ones.")
@click.option("--filter", "filters", multiple=True, metavar="FILTER",
              help='Provide filter values (e.g. "label=<key>=<value>", "until=24h").')
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--volumes", is_flag=True, help="Prune anonymous volumes (wharfd, at API 1.41, "
              "removes every unused volume, named ones too, as dockerd 20.10 does).")
def system_prune_cmd(all_: bool, filters: tuple[str, ...], force: bool, volumes: bool) -> None:
    """Remove unused data.

    Stopped containers, networks no container uses, dangling images (every unused image with
    -a), the build cache (all of it with -a) and, with --volumes, unused volumes; asks first
    unless -f."""
    wanted = parse_filters(filters)
    if volumes and "until" in wanted:
        raise CLIError('ERROR: The "until" filter is not supported with "--volumes"')
    if not force and not ask(system_warning(all_, volumes, wanted)):
        return
    client = current().client()
    steps: list[Callable[[], Outcome]] = [lambda: prune_containers(client, wanted),
                                          lambda: prune_networks(client, wanted)]
    if volumes:
        steps.append(lambda: prune_volumes(client, wanted))
    steps += [lambda: prune_images(client, all_, wanted),
              lambda: prune_build_cache(client, all_, wanted)]
    print_outcome(step() for step in steps)


def _storage(_ctx: click.Context, _param: click.Parameter, value: str | None) -> int:
    if not value:
        return 0
    try:
        return ram_in_bytes(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


@click.command("prune")
@click.option("-a", "--all", "all_", is_flag=True,
              help="Remove all unused build cache, not just dangling ones.")
@click.option("--filter", "filters", multiple=True, metavar="FILTER",
              help='Provide filter values (e.g. "until=24h").')
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--keep-storage", callback=_storage, metavar="BYTES",
              help="Amount of disk space to keep for cache (e.g. 512m, 10GB).")
def builder_prune_cmd(all_: bool, filters: tuple[str, ...], force: bool,
                      keep_storage: int) -> None:
    """Remove build cache."""
    wanted = parse_filters(filters)
    scope = "all" if all_ else "all dangling"
    if not force and not ask(f"WARNING! This will remove {scope} build cache. Are you sure "
                             "you want to continue?"):
        return
    print_outcome([prune_build_cache(current().client(), all_, wanted, keep_storage)])
