"""``wharf volume create|ls|inspect|rm|prune|export|import``.

Presentation only: each command parses flags, makes the API calls through the session's client
and prints what the docker CLI prints.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from wharf.cli.commands.images import confirm, parse_filters
from wharf.cli.failure import CLIError
from wharf.cli.formatting import human_size
from wharf.cli.session import current
from wharf.cli.templates import Row, TemplateError, parse, render_rows
from wharf.cli.transport import DaemonUnreachable
from wharf.errors import WharfError

VOLUME_HEADERS = {"Name": "VOLUME NAME", "Driver": "DRIVER", "Scope": "SCOPE",
                  "Mountpoint": "MOUNTPOINT", "Labels": "LABELS", "Links": "LINKS",
                  "Size": "SIZE", "CreatedAt": "CREATED AT"}
PRUNE_WARNING = ("WARNING! This will remove all local volumes not used by at least one "
                 "container.")


def parse_pairs(values: tuple[str, ...], flag: str) -> dict[str, str]:
    """``key=value`` flags (``--label k`` alone means an empty value, as docker does)."""
    out: dict[str, str] = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not key or (flag == "--opt" and not sep):
            raise CLIError(f'invalid argument "{value}" for "{flag}" flag: '
                           "invalid key value pair format")
        out[key] = val
    return out


def _row(volume: Mapping[str, Any]) -> Row:
    labels = volume.get("Labels") or {}
    usage = volume.get("UsageData") or {}
    return Row({
        "Name": str(volume.get("Name", "")), "Driver": str(volume.get("Driver", "")),
        "Scope": str(volume.get("Scope", "")), "Mountpoint": str(volume.get("Mountpoint", "")),
        "Labels": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
        "Links": str(usage["RefCount"]) if "RefCount" in usage else "N/A",
        "Size": human_size(usage["Size"]) if "Size" in usage else "N/A",
        "CreatedAt": str(volume.get("CreatedAt", "")),
    }, "*formatter.volumeContext")


def _fail_with(errors: list[str]) -> None:
    if errors:
        raise CLIError("\n".join(errors))


@click.command("create")
@click.argument("name", required=False)
@click.option("-d", "--driver", default="local", show_default=True,
              help="Specify volume driver name.")
@click.option("--label", "labels", multiple=True, help="Set metadata for a volume.")
@click.option("-o", "--opt", "opts", multiple=True,
              help="Set driver specific options (local: type, device, o).")
@click.option("--name", "name_flag", default="", hidden=True, help="Specify volume name.")
def create_cmd(name: str | None, driver: str, labels: tuple[str, ...], opts: tuple[str, ...],
               name_flag: str) -> None:
    """Create a volume (a random name when NAME is left out); prints its name."""
    if name and name_flag:
        raise CLIError("conflicting options: either specify --name or provide positional arg, "
                       "not both")
    body = {"Name": name or name_flag, "Driver": driver,
            "DriverOpts": parse_pairs(opts, "--opt"), "Labels": parse_pairs(labels, "--label")}
    click.echo(current().client().create_volume(body).get("Name", ""))


@click.command("ls")
@click.option("-f", "--filter", "filters", multiple=True,
              help="Provide filter values (e.g. 'dangling=true', 'label=k=v', 'name=re', "
              "'driver=local').")
@click.option("--format", "fmt", help="Format output: table, json or a Go template.")
@click.option("-q", "--quiet", is_flag=True, help="Only display volume names.")
def ls_cmd(filters: tuple[str, ...], fmt: str | None, quiet: bool) -> None:
    """List volumes."""
    volumes = current().client().volumes(parse_filters(filters))
    volumes.sort(key=lambda v: str(v.get("Name", "")))
    if quiet:
        fmt = "{{.Name}}"
    elif not fmt or fmt == "table":
        fmt = "table {{.Driver}}\t{{.Name}}"
    try:
        text = render_rows(parse(fmt), [_row(v) for v in volumes], VOLUME_HEADERS)
    except TemplateError as exc:
        raise CLIError(str(exc)) from exc
    if text:
        click.echo(text)


@click.command("inspect")
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--format", "fmt", help="Format the output using a Go template.")
def inspect_cmd(names: tuple[str, ...], fmt: str | None) -> None:
    """Display detailed information on one or more volumes."""
    from wharf.cli.commands.inspect import show  # noqa: PLC0415 - lazy

    client, docs, errors = current().client(), [], []
    for name in names:
        try:
            docs.append(client.inspect_volume(name))
        except DaemonUnreachable:
            raise
        except WharfError as exc:
            errors.append(f"Error response from daemon: {exc}")
    show(docs, fmt, errors)


@click.command("rm")
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True,
              help="Force the removal (a missing volume is not an error; a volume in use is "
              "never removed).")
def rm_cmd(names: tuple[str, ...], force: bool) -> None:
    """Remove one or more volumes (refused while a container uses them)."""
    client, errors = current().client(), []
    for name in names:
        try:
            client.remove_volume(name, force=force)
        except DaemonUnreachable:
            raise
        except WharfError as exc:
            errors.append(f"Error response from daemon: {exc}")
            continue
        click.echo(name)
    _fail_with(errors)


@click.command("prune")
@click.option("-a", "--all", "all_", is_flag=True,
              help="Remove all unused volumes (wharfd, at API 1.41, always does).")
@click.option("--filter", "filters", multiple=True,
              help="Provide filter values (e.g. 'label=<key>=<value>', 'label!=<key>').")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
def prune_cmd(all_: bool, filters: tuple[str, ...], force: bool) -> None:
    """Remove unused local volumes."""
    wanted = parse_filters(filters)
    if all_:
        wanted["all"] = ["true"]
    if not force and not confirm(PRUNE_WARNING):
        return
    report = current().client().prune_volumes(wanted)
    deleted = report.get("VolumesDeleted") or []
    if deleted:
        click.echo("Deleted Volumes:")
        for name in deleted:
            click.echo(name)
        click.echo()
    click.echo(f"Total reclaimed space: {human_size(int(report.get('SpaceReclaimed') or 0))}")


@click.command("export")
@click.argument("name", metavar="VOLUME")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to a file, instead of STDOUT.")
def export_cmd(name: str, output: Path | None) -> None:
    """Export a volume's content as a tar archive (streamed to STDOUT by default).

    Names are relative to the volume's root, with numeric owners, modes and times; tmpfs and
    bind volumes are refused (their data is a mount, not the volume's). wharf's own API
    route, as podman's: the gateway does not relay it.
    """
    from wharf.cli.commands.transfer import refuse_terminal, write_tar  # noqa: PLC0415

    refuse_terminal(output, "export")
    write_tar(current().client().export_volume(name), output)


@click.command("import")
@click.argument("name", metavar="VOLUME")
@click.argument("source", metavar="FILE|-")
def import_cmd(name: str, source: str) -> None:
    """Import a tar archive (FILE, or STDIN for -) into a volume.

    Files of the same name are replaced, others kept. The archive must be a plain tar
    (gunzip -c FILE.tar.gz | wharf volume import VOLUME -); an unsafe one (.. names, writes
    through its symlinks, hard links out of it) is refused whole. tmpfs and bind volumes are
    refused. wharf's own API route, as podman's: the gateway does not relay it.
    """
    from wharf.cli.commands.transfer import input_chunks  # noqa: PLC0415 - lazy

    session = current()
    if source == "-" and session.stdin_is_tty():
        raise CLIError("requested import from stdin, but stdin is a terminal")
    session.client().import_volume(name, input_chunks(source))
