"""How the gateway words what it knows: node documents and container rows with Docker's
``Status`` text ("Up 5 minutes", "Exited (0) 2 hours ago"), computed when asked, since the
cluster view stores times rather than text that goes stale."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from wharf.gateway.store import NodeRow
from wharf.humanize import human_duration

ZERO_TIME = "0001-01-01T00:00:00Z"


def node_document(node: NodeRow, ready: bool, counts: tuple[int, int]) -> dict[str, Any]:
    return {
        "Name": node.name,
        "Status": "ready" if ready else "down",
        "LastSeen": node.last_seen,
        "LastSeenAgo": round(max(0.0, time.time() - node.last_seen), 3),
        "Labels": node.labels,
        "Load": node.load,
        "Version": node.version,
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


def status_text(state: str, exit_code: int, started_at: str, finished_at: str) -> str:
    if state in ("running", "paused"):
        text = f"Up {_ago(started_at)}"
        return text + " (Paused)" if state == "paused" else text
    if state in ("exited", "dead"):
        if finished_at == ZERO_TIME:
            return "Exited" if state == "exited" else "Dead"
        return f"Exited ({exit_code}) {_ago(finished_at)} ago"
    return state.capitalize()


def _ago(stamp: str) -> str:
    try:
        then = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return "Less than a second"
    return human_duration(max(0.0, time.time() - then))
