"""``wharf container move`` and ``wharf node drain``: containers carried to another node by the
gateway (a cold migration: stopped, carried with their writable layer and named volumes,
started again; docs/cluster.md "Moving containers")."""

from __future__ import annotations

import json
import sys
import time
from typing import Any
from urllib.parse import quote

import click

from wharf.cli.failure import CLIError
from wharf.cli.session import current

POLL_SECONDS = 0.3
ENDED = ("done", "rolled-back", "failed")


def _gateway() -> Any:
    from wharf.cli.gateway import check  # noqa: PLC0415 - lazy

    api = current().gateway_api()
    return api, check


def locate(api: Any, container: str) -> str:
    """The node of ``container`` (a name or an ID prefix) in the cluster view."""
    rows = api.containers(True, None)
    found = [r for r in rows if container in (n.lstrip("/") for n in r.get("Names") or [])]
    found = found or [r for r in rows if str(r.get("Id", "")).startswith(container)]
    nodes = sorted({str(r["Node"]) for r in found})
    if not nodes:
        raise CLIError(f"no such container in the cluster: {container}")
    if len(nodes) > 1:
        raise CLIError(f"{container} names containers on {', '.join(nodes)}: say which with "
                       "--node NODE")
    return nodes[0]


def move_one(api: Any, check: Any, node: str, container: str, target: str,
             echo: Any, live: bool = False) -> dict[str, Any]:
    """Start a move, follow it to its end, report its steps; its last document. ``live`` is
    asked of the gateway, which says why it refuses it."""
    params = {"to": target, **({"live": "true"} if live else {})}
    reply = api.wire.request("POST", f"/v1/nodes/{quote(node, safe='')}/containers/"
                             f"{quote(container, safe='')}/move", params=params,
                             headers=api.headers)
    check(reply)
    move = json.loads(reply.body)
    echo(f"moving {move['Container']} from {node} to {move['Target']} (move {move['Id']})")
    seen = move["State"]
    while move["State"] not in ENDED:
        time.sleep(POLL_SECONDS)
        move = api.get(f"/v1/moves/{move['Id']}")
        if move["State"] != seen:
            seen = move["State"]
            echo(f"  {seen}" + (f" ({move['Error']})" if move.get("Error") else ""))
    return dict(move)


def _outcome(move: dict[str, Any]) -> str:
    took = float(move["UpdatedAt"]) - float(move["CreatedAt"])
    if move["State"] == "done":
        return f"{move['Container']} is on {move['Target']} ({took:.1f}s)"
    where = move["Source"] if move["Copy"] == "source" else move["Target"]
    return (f"move of {move['Container']} {move['State']}: {move.get('Error')}; it is on "
            f"{where}")


@click.command("move")
@click.argument("container")
@click.option("--to", "target", required=True, metavar="NODE|any",
              help="The node to move to; 'any' lets placement choose (never the source).")
@click.option("--live", is_flag=True,
              help="Keep the processes running (checkpoint/restore): refused, see the docs.")
def move_cmd(container: str, target: str, live: bool) -> None:
    """Move a container to another node, with its writable layer and named volumes.

    The container stops, is carried, and starts on the target if it ran; the source copy goes
    only once the target has it. Its node is found in the cluster view (or give --node)."""
    api, check = _gateway()
    node = current().node or locate(api, container)
    move = move_one(api, check, node, container, target, click.echo, live=live)
    click.echo(_outcome(move))
    if move["State"] != "done":
        sys.exit(1)


@click.command("drain")
@click.argument("name")
def drain_cmd(name: str) -> None:
    """Drain a node: mark it drained (no new container lands there) and move every container
    on it to the other nodes by placement, reporting each move (needs an admin token)."""
    api, check = _gateway()
    reply = api.wire.request("POST", f"/v1/nodes/{quote(name, safe='')}/update",
                             json={"Availability": "drain"}, headers=api.headers)
    check(reply)
    rows = [r for r in api.containers(True, None) if r.get("Node") == name]
    click.echo(f"{name} drained; moving {len(rows)} container(s)")
    failed = 0
    for row in rows:
        container = (row.get("Names") or ["/" + str(row["Id"])[:12]])[0].lstrip("/")
        move = move_one(api, check, name, container, "any", lambda _line: None)
        failed += move["State"] != "done"
        click.echo(_outcome(move))
    if failed:
        click.echo(f"{failed} of {len(rows)} container(s) stayed on {name}", err=True)
        sys.exit(1)
