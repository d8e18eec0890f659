"""``wharf network create|ls|inspect|rm|prune|connect|disconnect``.

Presentation only: each command parses flags, makes the API calls through the session's client
and prints what the docker CLI prints.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click

from wharf.cli.commands.images import confirm, parse_filters
from wharf.cli.failure import CLIError
from wharf.cli.session import current
from wharf.cli.templates import Row, TemplateError, parse, render_rows
from wharf.cli.transport import DaemonUnreachable
from wharf.errors import NotFound, WharfError

NETWORK_HEADERS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
                   "IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS",
                   "CreatedAt": "CREATED AT"}
PRUNE_WARNING = "WARNING! This will remove all custom networks not used by at least one container."


def _pairs(values: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        key, _, val = value.partition("=")
        if not key:
            raise CLIError(f'invalid argument "{value}" for "--label" flag: '
                           "invalid key value pair format")
        out[key] = val
    return out


def _row(network: Mapping[str, Any], no_trunc: bool = False) -> Row:
    labels = network.get("Labels") or {}
    full = str(network.get("Id", ""))
    return Row({
        "ID": full if no_trunc else full[:12], "Name": str(network.get("Name", "")),
        "Driver": str(network.get("Driver", "")), "Scope": str(network.get("Scope", "")),
        "IPv6": str(bool(network.get("EnableIPv6"))).lower(),
        "Internal": str(bool(network.get("Internal"))).lower(),
        "Labels": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
        "CreatedAt": str(network.get("Created", "")),
    }, "*formatter.networkContext")


def _each(refs: tuple[str, ...], action: Any) -> None:
    """Run ``action(ref)`` for every ref; errors are collected, reported, exit non-zero."""
    errors: list[str] = []
    for ref in refs:
        try:
            action(ref)
        except DaemonUnreachable:
            raise
        except WharfError as exc:
            errors.append(f"Error response from daemon: {exc}")
    if errors:
        raise CLIError("\n".join(errors))


@click.command("create")
@click.argument("name")
@click.option("-d", "--driver", default="bridge", show_default=True,
              help="Driver to manage the Network (only bridge).")
@click.option("--subnet", default="", help="Subnet in CIDR format (default: a free one).")
@click.option("--gateway", default="", help="IPv4 gateway for the subnet (default: its first "
              "address).")
@click.option("--internal", is_flag=True, help="Restrict external access to the network.")
@click.option("--label", "labels", multiple=True, help="Set metadata on a network.")
def create_cmd(name: str, driver: str, subnet: str, gateway: str, internal: bool,
               labels: tuple[str, ...]) -> None:
    """Create a bridge network; prints its ID."""
    if gateway and not subnet:
        raise CLIError("every ip-range or gateway must have a corresponding subnet")
    config = [{"Subnet": subnet, **({"Gateway": gateway} if gateway else {})}] if subnet else []
    body = {"Name": name, "Driver": driver, "Internal": internal, "CheckDuplicate": True,
            "Labels": _pairs(labels), "IPAM": {"Driver": "default", "Config": config}}
    click.echo(current().client().create_network(body).get("Id", ""))


@click.command("ls")
@click.option("-f", "--filter", "filters", multiple=True,
              help="Provide filter values (e.g. 'driver=bridge', 'name=front', 'label=k=v', "
              "'type=custom').")
@click.option("--format", "fmt", help="Format output: table, json or a Go template.")
@click.option("-q", "--quiet", is_flag=True, help="Only display network IDs.")
@click.option("--no-trunc", is_flag=True, help="Do not truncate the output.")
def ls_cmd(filters: tuple[str, ...], fmt: str | None, quiet: bool, no_trunc: bool) -> None:
    """List networks."""
    networks = current().client().networks(parse_filters(filters))
    networks.sort(key=lambda n: str(n.get("Name", "")))
    if quiet:
        fmt = "{{.ID}}"
    elif not fmt or fmt == "table":
        fmt = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"
    rows = [_row(n, no_trunc) for n in networks]
    try:
        text = render_rows(parse(fmt), rows, NETWORK_HEADERS)
    except TemplateError as exc:
        raise CLIError(str(exc)) from exc
    if text:
        click.echo(text)


@click.command("inspect")
@click.argument("refs", nargs=-1, required=True)
@click.option("-f", "--format", "fmt", help="Format the output using a Go template.")
def inspect_cmd(refs: tuple[str, ...], fmt: str | None) -> None:
    """Display detailed information on one or more networks."""
    from wharf.cli.commands.inspect import show  # noqa: PLC0415 - lazy

    client, docs, errors = current().client(), [], []
    for ref in refs:
        try:
            docs.append(client.inspect_network(ref))
        except DaemonUnreachable:
            raise
        except WharfError as exc:
            errors.append(f"Error response from daemon: {exc}")
    show(docs, fmt, errors)


@click.command("rm")
@click.argument("refs", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Do not error if the network does not exist.")
def rm_cmd(refs: tuple[str, ...], force: bool) -> None:
    """Remove one or more networks (refused while containers are connected)."""
    client = current().client()

    def remove(ref: str) -> None:
        try:
            client.remove_network(ref)
        except WharfError as exc:
            if force and isinstance(exc, NotFound):
                return
            raise
        click.echo(ref)

    _each(refs, remove)


@click.command("prune")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
def prune_cmd(force: bool) -> None:
    """Remove all unused custom networks."""
    if not force and not confirm(PRUNE_WARNING):
        return
    deleted = current().client().prune_networks().get("NetworksDeleted") or []
    if deleted:
        click.echo("Deleted Networks:")
        for name in deleted:
            click.echo(name)


@click.command("connect")
@click.argument("network")
@click.argument("container")
@click.option("--ip", default="", help="IPv4 address (e.g., 172.30.100.104).")
@click.option("--alias", "aliases", multiple=True, help="Add network-scoped alias for the "
              "container.")
def connect_cmd(network: str, container: str, ip: str, aliases: tuple[str, ...]) -> None:
    """Connect a container to a network (also while it runs)."""
    _each((network,), lambda ref: current().client().connect_network(ref, container, ip,
                                                                      aliases))


@click.command("disconnect")
@click.argument("network")
@click.argument("container")
@click.option("-f", "--force", is_flag=True, help="Force the container to disconnect from a "
              "network.")
def disconnect_cmd(network: str, container: str, force: bool) -> None:
    """Disconnect a container from a network."""
    _each((network,), lambda ref: current().client().disconnect_network(ref, container, force))


@click.command("port")
@click.argument("container")
@click.argument("private_port", required=False)
def port_cmd(container: str, private_port: str | None) -> None:
    """List port mappings or a specific mapping for the container (PRIVATE_PORT[/PROTO])."""
    info = current().client().inspect_container(container)
    ports = (info.get("NetworkSettings") or {}).get("Ports") or {}
    if private_port:
        port, _, proto = private_port.partition("/")
        if not port.isdigit() or proto not in ("", "tcp", "udp", "sctp"):
            raise CLIError(f"Error: invalid port ({private_port}): must be PORT[/PROTO]")
        key = f"{port}/{proto or 'tcp'}"
        bound = ports.get(key) or []
        if not bound:
            raise CLIError(f"Error: No public port '{key}' published for {container}")
        for entry in bound:
            click.echo(f"{entry.get('HostIp', '')}:{entry.get('HostPort', '')}")
        return
    for key in sorted(ports, key=lambda k: (int(k.partition("/")[0]), k)):
        for entry in ports[key] or []:
            click.echo(f"{key} -> {entry.get('HostIp', '')}:{entry.get('HostPort', '')}")
