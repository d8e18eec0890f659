"""How the gateway words what it knows: node documents and container rows with Docker's
``Status`` text ("Up 5 minutes", "Exited (0) 2 hours ago"), computed when asked, since the
cluster view stores times rather than text that goes stale."""

from __future__ import annotations

import time
from typing import Any

from wharf.dockerapi import ZERO_TIME, status_text
from wharf.gateway.store import NodeRow


def node_document(node: NodeRow, ready: bool, counts: tuple[int, int]) -> dict[str, Any]:
    """``GET /v1/nodes/{node}``: ``Status`` is the daemon's (heartbeats), ``Availability``
    the operator's (``active``, ``pause``, ``drain``)."""
    return {
        "Name": node.name,
        "Status": "ready" if ready else "down",
        "Availability": node.availability.value,
        "LastSeen": node.last_seen,
        "LastSeenAgo": round(max(0.0, time.time() - node.last_seen), 3),
        "Labels": node.labels,
        "Load": node.load,
        "Version": node.version,
        "Address": node.address,
        "EngineID": node.engine_id,
        "Containers": counts[0],
        "Running": counts[1],
        "Seq": node.seq,
    }


def container_row(node: str, data: dict[str, Any]) -> dict[str, Any]:
    """A container list entry with its node and a fresh ``Status``."""
    row = {**data, "Node": node}
    row["Status"] = status_text(str(data.get("State", "")), int(data.get("ExitCode") or 0),
                                str(data.get("StartedAt") or ZERO_TIME),
                                str(data.get("FinishedAt") or ZERO_TIME))
    return row


def row_matches(row: dict[str, Any], terms: dict[str, list[str]]) -> bool:
    """Whether a cluster container row passes ``/v1/containers`` filters."""
    checks = {
        "node": lambda v: row["Node"] == v,
        "name": lambda v: any(v in n.lstrip("/") for n in row["Names"]),
        "id": row["Id"].startswith,
        "status": lambda v: row["State"] == v,
        "ancestor": lambda v: row["Image"] == v or row.get("ImageID", "").startswith(v),
        "label": lambda v: (v.partition("=")[0] in row.get("Labels", {}) and
                            ("=" not in v or row["Labels"][v.partition("=")[0]] ==
                             v.partition("=")[2])),
    }
    return all(any(checks[key](v) for v in values) for key, values in terms.items())
