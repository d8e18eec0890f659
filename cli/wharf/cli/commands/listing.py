"""``ps`` (``container ls``), ``top``, ``stats`` and ``events``, laid out like the docker CLI.

``ps`` columns follow docker's container context: the command is truncated to 20 characters and
quoted, CREATED is a human duration from the integer ``Created``, STATUS is the server's text,
PORTS is rendered like ``DisplayablePorts``, NAMES loses the leading ``/``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

import click

from wharf.cli.commands.images import parse_filters
from wharf.cli.failure import CLIError
from wharf.cli.formatting import bytes_size, ellipsis, go_time, human_size, since, tabulate
from wharf.cli.session import current
from wharf.cli.templates import Row, TemplateError, parse, render_rows

PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND",
              "CreatedAt": "CREATED AT", "RunningFor": "CREATED", "Ports": "PORTS",
              "State": "STATE", "Status": "STATUS", "Size": "SIZE", "Names": "NAMES",
              "Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS"}
PS_TABLE = ("table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t"
            "{{.Ports}}\t{{.Names}}")
STATS_TABLE = ("CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O",
               "BLOCK I/O", "PIDS")


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


def cpu_percent(stats: Mapping[str, Any]) -> float:
    """docker's ``calculateCPUPercentUnix`` from cpu_stats and precpu_stats."""
    cpu, pre = stats.get("cpu_stats") or {}, stats.get("precpu_stats") or {}
    usage, pre_usage = cpu.get("cpu_usage") or {}, pre.get("cpu_usage") or {}
    cpu_delta = float(usage.get("total_usage") or 0) - float(pre_usage.get("total_usage") or 0)
    system_delta = float(cpu.get("system_cpu_usage") or 0) - float(
        pre.get("system_cpu_usage") or 0)
    online = int(cpu.get("online_cpus") or 0) or len(usage.get("percpu_usage") or [])
    if system_delta > 0 and cpu_delta > 0:
        return cpu_delta / system_delta * online * 100.0
    return 0.0


def memory_usage(mem: Mapping[str, Any]) -> float:
    """Usage without the page cache (cgroup v1 total_inactive_file, v2 inactive_file)."""
    usage = float(mem.get("usage") or 0)
    detail = mem.get("stats") or {}
    for key in ("total_inactive_file", "inactive_file"):
        if key in detail and float(detail[key]) < usage:
            return usage - float(detail[key])
    return usage


def stats_line(stats: Mapping[str, Any]) -> list[str]:
    """One ``docker stats`` row."""
    mem = stats.get("memory_stats") or {}
    usage, limit = memory_usage(mem), float(mem.get("limit") or 0)
    nets = (stats.get("networks") or {}).values()
    rx = sum(float(n.get("rx_bytes") or 0) for n in nets)
    tx = sum(float(n.get("tx_bytes") or 0) for n in nets)
    blkio = (stats.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []
    read = sum(float(e.get("value") or 0) for e in blkio if str(e.get("op")).lower() == "read")
    write = sum(float(e.get("value") or 0) for e in blkio
                if str(e.get("op")).lower() == "write")
    return [str(stats.get("id", ""))[:12], str(stats.get("name", "")).lstrip("/"),
            f"{cpu_percent(stats):.2f}%", f"{bytes_size(usage)} / {bytes_size(limit)}",
            f"{usage / limit * 100 if limit else 0:.2f}%",
            f"{human_size(rx, 3)} / {human_size(tx, 3)}",
            f"{human_size(read, 3)} / {human_size(write, 3)}",
            str((stats.get("pids_stats") or {}).get("current") or 0)]


@click.command("stats")
@click.argument("containers", nargs=-1)
@click.option("-a", "--all", "all_", is_flag=True, help="Show all containers (default shows "
              "just running).")
@click.option("--no-stream", is_flag=True, help="Disable streaming stats and only pull the "
              "first result.")
def stats_cmd(containers: tuple[str, ...], all_: bool, no_stream: bool) -> None:
    """Display a live stream of container(s) resource usage statistics."""
    client = current().client()
    while True:
        names = list(containers) or [str(c["Id"]) for c in client.containers(all=all_)]
        table = tabulate([list(STATS_TABLE), *[stats_line(client.stats(n)) for n in names]])
        if no_stream:
            click.echo(table)
            return
        click.echo("\x1b[2J\x1b[H" + table)
        time.sleep(1)


def event_line(event: Mapping[str, Any]) -> str:
    """``<time> <Type> <Action> <Actor.ID> (k=v, …)`` as the docker CLI prints events."""
    from wharf.cli.timestamps import event_time  # noqa: PLC0415 - lazy: keeps `wharf --help` fast

    actor = event.get("Actor") or {}
    stamp = int(event.get("timeNano") or 0) or int(event.get("time") or 0) * 1_000_000_000
    text = f"{event_time(stamp)} " if stamp else ""
    text += f"{event.get('Type', '')} {event.get('Action', '')} {actor.get('ID', '')}"
    attrs = actor.get("Attributes") or {}
    if attrs:
        text += " (" + ", ".join(f"{k}={attrs[k]}" for k in sorted(attrs)) + ")"
    return text


@click.command("events")
@click.option("--since", default="", help="Show all events created since timestamp.")
@click.option("--until", default="", help="Stream events until this timestamp.")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter output (k=v).")
@click.option("--format", "fmt", help="Format the output using a Go template.")
def events_cmd(since: str, until: str, filters: tuple[str, ...], fmt: str | None) -> None:
    """Get real time events from the server."""
    from wharf.cli.timestamps import TimestampError, add_time_range  # noqa: PLC0415 - lazy: keeps `wharf --help` fast

    params: dict[str, str | list[str]] = {}
    try:
        add_time_range(params, since, until)
    except TimestampError as exc:
        raise CLIError(str(exc)) from exc
    wanted = parse_filters(filters)
    if wanted:
        params["filters"] = json.dumps({k: dict.fromkeys(v, True) for k, v in wanted.items()})
    template = parse(fmt) if fmt else None
    for event in current().client().events(params):
        try:
            line = template.render(event) if template else event_line(event)
        except TemplateError as exc:
            raise CLIError(str(exc)) from exc
        click.echo(line)

