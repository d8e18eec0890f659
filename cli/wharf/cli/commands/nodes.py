"""``wharf node ls`` / ``inspect`` / ``update`` / ``drain``: the cluster's nodes, as the gateway
sees them, and their availability (``active``, ``pause``, ``drain``: Swarm's), which an admin
token sets; ``drain`` also moves the node's containers away (``commands.moving``)."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import quote

import click

from wharf.cli.session import current

NODE_HEADERS = ("NAME", "STATUS", "AVAILABILITY", "LAST SEEN", "CONTAINERS", "RUNNING",
                "MEMORY FREE", "LOAD", "LABELS")
AVAILABILITIES = ("active", "pause", "drain")


def node_line(node: dict[str, Any], now: float) -> list[str]:
    load = node.get("Load") or {}
    free = int(load.get("memory_available") or 0)
    labels = ",".join(f"{k}={v}" for k, v in sorted((node.get("Labels") or {}).items()))
    ago = max(0.0, now - float(node.get("LastSeen") or 0))
    # as docker node ls words it ("Active"); a gateway from before availability: all active
    availability = str(node.get("Availability") or "active").capitalize()
    return [str(node["Name"]), str(node["Status"]), availability, f"{ago:.1f}s ago",
            str(node.get("Containers", 0)), str(node.get("Running", 0)),
            f"{free / 2**30:.1f}GiB", f"{float(load.get('load1') or 0):.2f}", labels]


@click.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="Only display node names.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="Output format.")
def node_ls(quiet: bool, fmt: str) -> None:
    """List the cluster's nodes (status ready/down, last heartbeat, load)."""
    from wharf.cli.formatting import tabulate  # noqa: PLC0415 - lazy

    nodes = current().gateway_api().nodes()
    if quiet:
        for node in nodes:
            click.echo(node["Name"])
    elif fmt == "json":
        click.echo(json.dumps(nodes, indent=4))
    else:
        now = time.time()
        click.echo(tabulate([list(NODE_HEADERS), *(node_line(n, now) for n in nodes)]))


@click.command("inspect")
@click.argument("names", nargs=-1, required=True)
def node_inspect(names: tuple[str, ...]) -> None:
    """Display detailed information on one or more nodes."""
    api = current().gateway_api()
    click.echo(json.dumps([api.node(name) for name in names], indent=4))


@click.command("update")
@click.option("--availability", type=click.Choice(AVAILABILITIES), required=True,
              help="active: placement may choose the node; pause: it does not (a container "
              "may still be created there by name); drain: neither (the containers already "
              "there stay).")
@click.argument("name")
def node_update(availability: str, name: str) -> None:
    """Update a node's availability (needs an admin token); prints the node's name."""
    from wharf.cli.gateway import check  # noqa: PLC0415 - lazy

    api = current().gateway_api()
    reply = api.wire.request("POST", f"/v1/nodes/{quote(name, safe='')}/update",
                             json={"Availability": availability}, headers=api.headers)
    check(reply)
    click.echo(json.loads(reply.body)["Name"])
