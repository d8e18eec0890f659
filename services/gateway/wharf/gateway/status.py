"""How the gateway words what it knows: node documents and container rows with Docker's
``Status`` text ("Up 5 minutes", "Exited (0) 2 hours ago"), computed when asked, since the
cluster view stores times rather than text that goes stale.

Rows are rendered as bytes: each :class:`~wharf.gateway.view.Entry` carries its JSON, split
where ``Status`` goes, so a list of 30,000 rows is one join, not 30,000 dicts through FastAPI's
encoder. :func:`status_at` words ``Status`` from the entry's times (microseconds since the
epoch, parsed once) exactly as :func:`wharf.dockerapi.status_text` words it from their text.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from wharf.gateway.store import NodeRow
from wharf.gateway.view import Entry, dumps
from wharf.humanize import human_duration


class Times(Protocol):
    """What ``Status`` is worded from (an :class:`~wharf.gateway.view.Entry`)."""

    state: str
    exit_code: int
    started: int | None
    finished: int | None
    never_started: bool
    never_finished: bool


def now_us() -> int:
    """Now, in microseconds since the epoch (what :func:`status_at` takes)."""
    return time.time_ns() // 1000


def status_at(row: Times, now: int) -> str:
    """``ps`` STATUS as dockerd's ``State.String()`` words it (without a health status, as
    the gateway's list always had it), ``now`` in microseconds since the epoch."""
    state = row.state
    if state == "running":
        return "Up " + _since(row.started, now)
    if state == "paused":
        return f"Up {_since(row.started, now)} (Paused)"
    if state == "restarting":
        return f"Restarting ({row.exit_code}) {_since(row.finished, now)} ago"
    if state == "removing":
        return "Removal In Progress"
    if state == "dead":
        return "Dead"
    if row.never_started:
        return "Created"
    if row.never_finished:
        return ""
    return f"Exited ({row.exit_code}) {_since(row.finished, now)} ago"


def _since(then: int | None, now: int) -> str:
    if then is None:
        return "Less than a second"
    # ints divided: the float timedelta.total_seconds() gives, so the wording is the same
    return human_duration(max(0.0, (now - then) / 1_000_000))


_KNOWN = frozenset({"Id", "Node", "Status"})  # fields an entry holds as they are listed


def render_rows(rows: Sequence[Entry], now: int, fields: Sequence[str] | None = None) -> bytes:
    """``GET /v1/containers``' body: the rows with their node and a fresh ``Status``; with
    ``fields``, only those fields of each row (in that order; a field a row lacks is left
    out)."""
    if fields is None:  # Status is ASCII without quotes: it needs no escaping
        return b"[" + b",".join([r.head + status_at(r, now).encode() + r.tail
                                 for r in rows]) + b"]"
    keys = [(name, dumps(name) + b":") for name in fields]
    parse = not set(fields) <= _KNOWN  # only Id, Node, Status: no row needs parsing
    out = []
    for row in rows:
        data = row.document() if parse else {}
        items = []
        for name, key in keys:
            if name == "Status":
                items.append(key + b'"' + status_at(row, now).encode() + b'"')
            elif name in _KNOWN:
                items.append(key + dumps(row.id if name == "Id" else row.node))
            elif name in data:
                items.append(key + dumps(data[name]))
        out.append(b"{" + b",".join(items) + b"}")
    return b"[" + b",".join(out) + b"]"


def node_document(node: NodeRow, ready: bool, counts: tuple[int, int],
                  now: float | None = None) -> dict[str, Any]:
    """``GET /v1/nodes/{node}``: ``Status`` is the daemon's (heartbeats), ``Availability``
    the operator's (``active``, ``pause``, ``drain``)."""
    return {
        "Name": node.name,
        "Status": "ready" if ready else "down",
        "Availability": node.availability.value,
        "LastSeen": node.last_seen,
        "LastSeenAgo": _ago(node, time.time() if now is None else now),
        "Labels": node.labels,
        "Load": node.load,
        "Version": node.version,
        "Address": node.address,
        "EngineID": node.engine_id,
        "Containers": counts[0],
        "Running": counts[1],
        "Seq": node.seq,
    }


def _ago(node: NodeRow, now: float) -> float:
    return round(max(0.0, now - node.last_seen), 3)


@dataclass
class _Rendered:
    row: NodeRow  # what it was rendered from: a heartbeat or snapshot makes a new row
    counts: tuple[int, int]
    parts: tuple[bytes, bytes, bytes]  # around Status and LastSeenAgo


class NodeDocuments:
    """``GET /v1/nodes``' body, each node's JSON kept between requests and rendered again only
    when its row or container counts changed: at 1,000 nodes a request renders the few that
    sent a heartbeat since the last one and splices ``Status`` and ``LastSeenAgo`` (which
    change with the clock) into the rest. The same bytes as :func:`node_document`'s through
    :func:`~wharf.gateway.view.dumps`."""

    def __init__(self) -> None:
        self._kept: dict[str, _Rendered] = {}

    def render(self, nodes: Sequence[NodeRow], counts: dict[str, tuple[int, int]],
               ready: Callable[[NodeRow], bool], now: float | None = None) -> bytes:
        now = time.time() if now is None else now
        kept, self._kept = self._kept, {}
        out = []
        for node in nodes:
            count = counts.get(node.name, (0, 0))
            rendered = kept.get(node.name)
            if rendered is None or rendered.row is not node or rendered.counts != count:
                rendered = _Rendered(node, count, _parts(node, count))
            self._kept[node.name] = rendered
            head, middle, tail = rendered.parts
            out.append(head + (b"ready" if ready(node) else b"down") + middle +
                       repr(_ago(node, now)).encode() + tail)
        return b"[" + b",".join(out) + b"]"


def _parts(node: NodeRow, counts: tuple[int, int]) -> tuple[bytes, bytes, bytes]:
    document = node_document(node, True, counts, now=0.0)
    after = {k: v for k, v in document.items() if k not in _BEFORE_AGO}
    return (b'{"Name":' + dumps(node.name) + b',"Status":"',
            b'","Availability":' + dumps(node.availability.value) + b',"LastSeen":' +
            dumps(node.last_seen) + b',"LastSeenAgo":',
            b"," + dumps(after)[1:])


_BEFORE_AGO = ("Name", "Status", "Availability", "LastSeen", "LastSeenAgo")
