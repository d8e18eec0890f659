"""``events``: a daemon's events as ``docker events`` prints them, or the cluster's through
the gateway.

``--all-nodes`` reads the gateway's cluster event log (``GET /v1/events``: every node's
container events and the nodes' own ``up``/``down``/``update``), and ``--node N`` the part of
it that happened on node N (the ``node`` filter). The filters, ``--since``/``--until`` and
``--format`` are docker's; the gateway checks the filters (it adds ``node``) and answers 400
for one it does not know. Without ``--since`` only new events come, as from a daemon.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import click

from wharf.cli.commands.images import parse_filters
from wharf.cli.failure import CLIError
from wharf.cli.session import Session, current
from wharf.cli.templates import TemplateError, parse

ANY_NODE = "any"


def event_line(event: Mapping[str, Any]) -> str:
    """``<time> <Type> <Action> <Actor.ID> (k=v, …)`` as the docker CLI prints events; a
    cluster event names its node first among the attributes."""
    from wharf.cli.timestamps import event_time  # noqa: PLC0415 - lazy: keeps `wharf --help` fast

    actor = event.get("Actor") or {}
    stamp = int(event.get("timeNano") or 0) or int(event.get("time") or 0) * 1_000_000_000
    text = f"{event_time(stamp)} " if stamp else ""
    text += f"{event.get('Type', '')} {event.get('Action', '')} {actor.get('ID', '')}"
    attrs = actor.get("Attributes") or {}
    items = [f"node={event['node']}"] if event.get("node") else []
    items += [f"{k}={attrs[k]}" for k in sorted(attrs)]
    if items:
        text += " (" + ", ".join(items) + ")"
    return text


def gateway_params(params: Mapping[str, str | list[str]], terms: dict[str, list[str]],
                   node: str | None) -> dict[str, str | list[str]]:
    """The query of ``GET /v1/events`` for docker's ``since``/``until``/``filters``: the time
    range as ``since_time``/``until_time``, no replay without ``--since``, ``node`` added."""
    if node is not None:
        if node == ANY_NODE:
            raise CLIError("events come from a named node (--node NAME) or from every node "
                           "(--all-nodes), not from 'any'")
        if terms.get("node", [node]) != [node]:
            raise CLIError(f"--node {node} and --filter node={','.join(terms['node'])}: "
                           "give one or the other")
        terms = {**terms, "node": [node]}
    query: dict[str, str | list[str]] = {"follow": "true"}
    if "since" in params:
        query["since_time"] = params["since"]
    else:
        query["replay"] = "false"
    if "until" in params:
        query["until_time"] = params["until"]
    if terms:
        query["filters"] = json.dumps({k: dict.fromkeys(v, True) for k, v in terms.items()})
    return query


def _events(session: Session, params: dict[str, str | list[str]],
            terms: dict[str, list[str]], all_nodes: bool) -> Iterator[dict[str, Any]]:
    if all_nodes or session.node is not None:
        return session.gateway_api().events(
            gateway_params(params, terms, None if all_nodes else session.node))
    if terms:
        params["filters"] = json.dumps({k: dict.fromkeys(v, True) for k, v in terms.items()})
    return session.client().events(params)


@click.command("events")
@click.option("--since", default="", help="Show all events created since timestamp.")
@click.option("--until", default="", help="Stream events until this timestamp.")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter output (k=v).")
@click.option("--format", "fmt", help="Format the output using a Go template.")
@click.option("--all-nodes", is_flag=True, help="Events of every node of the cluster, with "
              "their node (through the gateway; also --filter node=NAME).")
def events_cmd(since: str, until: str, filters: tuple[str, ...], fmt: str | None,
               all_nodes: bool) -> None:
    """Get real time events from the server."""
    from wharf.cli.timestamps import TimestampError, add_time_range  # noqa: PLC0415 - lazy: keeps `wharf --help` fast

    params: dict[str, str | list[str]] = {}
    try:
        add_time_range(params, since, until)
        template = parse(fmt) if fmt else None
    except (TimestampError, TemplateError) as exc:
        raise CLIError(str(exc)) from exc
    for event in _events(current(), params, parse_filters(filters), all_nodes):
        try:
            line = template.render(event) if template else event_line(event)
        except TemplateError as exc:
            raise CLIError(str(exc)) from exc
        click.echo(line)
