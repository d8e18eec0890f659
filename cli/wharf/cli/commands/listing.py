"""``ps`` (``container ls``) and ``top``, laid out like the docker CLI (``stats`` and
``events`` have modules of their own).

``ps`` columns follow docker's container context: the command is truncated to 20 characters and
quoted, CREATED is a human duration from the integer ``Created``, STATUS is the server's text,
PORTS is rendered like ``DisplayablePorts``, NAMES loses the leading ``/``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import click

from wharf.cli.commands.images import parse_filters
from wharf.cli.failure import CLIError
from wharf.cli.formatting import ellipsis, go_time, human_size, since, tabulate
from wharf.cli.session import current
from wharf.cli.templates import Row, TemplateError, parse, render_rows

PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND",
              "CreatedAt": "CREATED AT", "RunningFor": "CREATED", "Ports": "PORTS",
              "State": "STATE", "Status": "STATUS", "Size": "SIZE", "Names": "NAMES",
              "Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS"}
PS_TABLE = ("table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t"
            "{{.Ports}}\t{{.Names}}")


def quote(text: str) -> str:
    """Go's ``strconv.Quote`` for the texts ps shows."""
    return json.dumps(text, ensure_ascii=False)


def display_ports(ports: Iterable[Mapping[str, Any]]) -> str:
    """``0.0.0.0:18081->80/tcp, [::]:18081->80/tcp, 80/tcp``."""
    out: list[str] = []
    for port in ports:
        private, kind = port.get("PrivatePort", 0), port.get("Type", "tcp")
        if port.get("PublicPort"):
            ip = str(port.get("IP") or "")
            host = f"[{ip}]" if ":" in ip else ip
            text = f"{host}:{port['PublicPort']}->{private}/{kind}"
        else:
            text = f"{private}/{kind}"
        if text not in out:
            out.append(text)
    return ", ".join(out)


def _names(names: Iterable[str], trunc: bool) -> str:
    stripped = [n[1:] if n.startswith("/") else n for n in names]
    if trunc:  # links look like /other/alias; docker shows only the container's own name
        own = [n for n in stripped if "/" not in n]
        stripped = own[:1] or stripped[:0]
    return ",".join(stripped)


def container_row(c: Mapping[str, Any], trunc: bool) -> Row:
    """docker's ``containerContext`` for one /containers/json entry."""
    image = str(c.get("Image") or "") or "<no image>"
    if trunc and image.startswith("sha256:"):
        image = image[7:19]
    command = str(c.get("Command") or "")
    created = int(c.get("Created") or 0)
    labels = c.get("Labels") or {}
    networks = (c.get("NetworkSettings") or {}).get("Networks") or {}
    size = ""
    if "SizeRw" in c or "SizeRootFs" in c:
        size = (f"{human_size(int(c.get('SizeRw') or 0), 3)} "
                f"(virtual {human_size(int(c.get('SizeRootFs') or 0), 3)})")
    return Row({
        "ID": str(c.get("Id", ""))[:12] if trunc else str(c.get("Id", "")),
        "Image": image, "Command": quote(ellipsis(command, 20) if trunc else command),
        "CreatedAt": go_time(created), "RunningFor": since(created),
        "Ports": display_ports(c.get("Ports") or []), "State": str(c.get("State", "")),
        "Status": str(c.get("Status", "")), "Size": size,
        "Names": _names(c.get("Names") or [], trunc),
        "Labels": ",".join(f"{k}={v}" for k, v in labels.items()),
        "Mounts": ",".join(str(m.get("Name") or m.get("Source", "")) for m in
                           c.get("Mounts") or []),
        "Networks": ",".join(networks),
    }, "*formatter.containerContext")


def render(fmt: str, rows: list[Row], headers: Mapping[str, str]) -> str:
    try:
        return render_rows(parse(fmt), rows, headers)
    except TemplateError as exc:
        raise CLIError(str(exc)) from exc


@click.command("ls")
@click.option("-a", "--all", "all_", is_flag=True, help="Show all containers (default shows "
              "just running).")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter output (k=v).")
@click.option("--format", "fmt", help="Format output: table, json or a Go template.")
@click.option("-n", "--last", type=int, default=-1, help="Show n last created containers.")
@click.option("-l", "--latest", is_flag=True, help="Show the latest created container.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("-q", "--quiet", is_flag=True, help="Only display container IDs.")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes.")
@click.option("--all-nodes", is_flag=True, help="Containers of every node of the cluster, "
              "with a NODE column (through the gateway).")
def ps_cmd(all_: bool, filters: tuple[str, ...], fmt: str | None, last: int, latest: bool,
           no_trunc: bool, quiet: bool, size: bool, all_nodes: bool) -> None:
    """List containers."""
    limit = 1 if latest else last
    terms = parse_filters(filters)
    headers = PS_HEADERS
    if all_nodes:
        from wharf.cli.client import filters_param  # noqa: PLC0415 - lazy

        found = current().gateway_api().containers(
            all_ or limit != -1, filters_param(terms) if terms else None)
        found.sort(key=lambda c: -int(c.get("Created") or 0))
        containers = found[:limit] if limit > 0 else found
        rows = [Row({**container_row(c, not no_trunc).fields, "Node": str(c.get("Node", ""))},
                    "*formatter.containerContext") for c in containers]
        headers = {**PS_HEADERS, "Node": "NODE"}
    else:
        containers = current().client().containers(all=all_ or limit != -1, limit=limit,
                                                   size=size, filters=terms)
        rows = [container_row(c, not no_trunc) for c in containers]
    if quiet:
        fmt = "{{.ID}}"
    elif not fmt or fmt == "table":
        fmt = PS_TABLE + ("\t{{.Size}}" if size else "") + ("\t{{.Node}}" if all_nodes else "")
    text = render(fmt, rows, headers)
    if text:
        click.echo(text)


@click.command("top", context_settings={"ignore_unknown_options": True})
@click.argument("container")
@click.argument("ps_args", nargs=-1, type=click.UNPROCESSED)
def top_cmd(container: str, ps_args: tuple[str, ...]) -> None:
    """Display the running processes of a container."""
    top = current().client().top(container, " ".join(ps_args))
    rows = [list(top.get("Titles") or []), *[list(p) for p in top.get("Processes") or []]]
    click.echo(tabulate([[str(c) for c in row] for row in rows], min_width=20))
