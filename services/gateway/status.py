"""How the gateway words what it knows: node documents and container rows with Docker's
``Status`` text ("Up 5 minutes", "Exited (0) 2 hours ago"), computed when asked, since the
cluster view stores times rather than text that goes stale."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from wharf.gateway.store import NodeRow

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


def human_duration(seconds: float) -> str:
    """Docker's go-units HumanDuration."""
    if seconds < 1:
        return "Less than a second"
    if seconds < 2:
        return "1 second"
    minutes, hours = seconds / 60, seconds / 3600
    if minutes < 1:
        return f"{int(seconds)} seconds"
    if minutes < 2:
        return "About a minute"
    if hours < 1:
        return f"{int(minutes)} minutes"
    if hours < 2:
        return "About an hour"
    if hours < 48:
        return f"{int(hours)} hours"
    if hours < 24 * 7 * 2:
        return f"{int(hours / 24)} days"
    if hours < 24 * 30 * 2:
        return f"{int(hours / 24 / 7)} weeks"
    if hours < 24 * 365 * 2:
        return f"{int(hours / 24 / 30)} months"
    return f"{int(hours / 24 / 365)} years"
