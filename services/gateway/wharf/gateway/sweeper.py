"""The gateway's sweeper, on the event loop every :data:`SWEEP_SECONDS`: heartbeat silence
turned into node ``down`` events (and back into ``up``), the heartbeats kept in memory written
now and then, availability set on another gateway adopted (shared records), and the command
history pruned."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from wharf.errors import WharfError
from wharf.gateway.settings import GatewaySettings
from wharf.gateway.store import HEARTBEAT_FLUSH_SECONDS

log = logging.getLogger("wharf.gateway")
SWEEP_SECONDS = 0.25
AVAILABILITY_POLL_SECONDS = 1.0  # how soon an availability set on another gateway is obeyed
PRUNE_SECONDS = 600.0  # how often commands older than the store keeps are forgotten


async def sweep(dispatcher: Any, hub: Any, settings: GatewaySettings) -> None:
    """Turn heartbeat silence into node ``down`` events (and back into ``up``), write the
    heartbeats kept in memory now and then, and prune the command history."""
    down_after = settings.node_down_after
    known: dict[str, bool] = {}
    quiet_until = time.time() + down_after  # after a restart, heartbeats first catch up
    next_prune = next_flush = next_sync = 0.0
    while True:
        now = time.time()
        if now >= next_flush:
            next_flush = now + HEARTBEAT_FLUSH_SECONDS
            dispatcher.store.flush()
        if now >= next_sync and dispatcher.records.shared:
            next_sync = now + AVAILABILITY_POLL_SECONDS
            _quietly(dispatcher.sync_availability)
        if now >= next_prune:
            next_prune = now + PRUNE_SECONDS
            _quietly(dispatcher.records.prune, now, settings.command_keep_seconds,
                     settings.command_keep)
        for node in dispatcher.store.nodes():
            ready = dispatcher.node_ready(node)
            before = known.get(node.name)
            known[node.name] = ready
            if before is None and now < quiet_until:
                continue
            if before != ready:
                action = "up" if ready else "down"
                log.warning("node %s is %s", node.name, action) if not ready else \
                    log.info("node %s is %s", node.name, action)
                dispatcher.store.append_event({
                    "Type": "node", "Action": action, "node": node.name,
                    "Actor": {"ID": node.name, "Attributes": {"name": node.name}},
                    "scope": "cluster", "time": int(now), "timeNano": int(now * 1e9)})
                hub.notify()
        await asyncio.sleep(SWEEP_SECONDS)


def _quietly(work: Callable[..., Any], *args: Any) -> None:
    """Sweeper work that may meet an unreachable database: logged, tried again later."""
    try:
        work(*args)
    except WharfError as exc:
        log.warning("%s: %s", getattr(work, "__name__", "sweep"), exc)
