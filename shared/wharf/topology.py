"""RabbitMQ names of the control plane, in one place (ARCHITECTURE.md §4)."""

from __future__ import annotations

COMMANDS_EXCHANGE = "wharf.commands"  # direct: routing key = node name
BROADCAST_EXCHANGE = "wharf.broadcast"  # fanout: one queue per daemon
EVENTS_EXCHANGE = "wharf.events"  # topic: node.<node>.<kind>[.<action>]
RESULTS_EXCHANGE = "wharf.results"  # direct: routing key = the asking gateway's reply_to
DEAD_LETTER_EXCHANGE = "wharf.dead"  # expired or rejected commands
EXPIRED_QUEUE = "wharf.cmd.expired"  # bound to the dead-letter exchange; the gateway consumes it


def command_queue(node: str) -> str:
    """The durable, single-active-consumer queue of ``node``'s commands."""
    return f"wharf.cmd.{node}"


def broadcast_queue(node: str) -> str:
    return f"wharf.bcast.{node}"


def event_key(node: str, kind: str, action: str | None = None) -> str:
    """``node.<node>.heartbeat``, ``node.<node>.container.start``, ``node.<node>.snapshot``."""
    return f"node.{node}.{kind}" + (f".{action}" if action else "")
