"""RabbitMQ names of the control plane, in one place (ARCHITECTURE.md §4)."""

from __future__ import annotations

COMMANDS_EXCHANGE = "wharf.commands"  # direct: routing key = node name
BROADCAST_EXCHANGE = "wharf.broadcast"  # fanout: one queue per daemon
EVENTS_EXCHANGE = "wharf.events"  # topic: node.<node>.<kind>[.<action>]
RESULTS_EXCHANGE = "wharf.results"  # direct: routing key = the asking gateway's reply_to
DEAD_LETTER_EXCHANGE = "wharf.dead"  # expired or rejected commands
EXPIRED_QUEUE = "wharf.cmd.expired"  # bound to the dead-letter exchange; the gateway consumes it


NODE_USER_PREFIX = "wharf-node-"  # a node's own RabbitMQ account: wharf-node-<node>


def node_user(node: str) -> str:
    """The RabbitMQ user a node logs in as; the gateway takes a node's reports and results only
    when their validated AMQP ``user_id`` is this (docs/security.md, "Nodes and the broker")."""
    return NODE_USER_PREFIX + node


def node_of_user(user: str | None) -> str | None:
    """The node a RabbitMQ user speaks for, or None for any other account."""
    if user is None or not user.startswith(NODE_USER_PREFIX):
        return None
    return user[len(NODE_USER_PREFIX):] or None


def node_rights(node: str) -> dict[str, str]:
    """What a node's account may do on the control plane's vhost, as RabbitMQ permission
    regexes (infra/amqp-accounts.sh grants exactly these): configure nothing; write to the
    events (under its own routing keys only: ``topic_write`` on ``wharf.events``) and results
    exchanges; read its own command and broadcast queues."""
    literal = node.replace(".", "\\.")  # node names: [A-Za-z0-9][A-Za-z0-9_.-]*
    return {"configure": "^$", "write": r"^wharf\.(events|results)$",
            "read": rf"^wharf\.(cmd|bcast)\.{literal}$", "topic_write": rf"^node\.{literal}\.",
            "topic_read": "^$"}


def command_queue(node: str) -> str:
    """The durable, single-active-consumer queue of ``node``'s commands."""
    return f"wharf.cmd.{node}"


def broadcast_queue(node: str) -> str:
    return f"wharf.bcast.{node}"


def event_key(node: str, kind: str, action: str | None = None) -> str:
    """``node.<node>.heartbeat``, ``node.<node>.container.start``, ``node.<node>.snapshot``."""
    return f"node.{node}.{kind}" + (f".{action}" if action else "")
