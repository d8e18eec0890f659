"""What both RabbitMQ brokers share (``messaging.Broker``, blocking, and
``amqp_async.AsyncBroker``, asyncio): the consumed message, the control plane's topology as
declarations (data, so both declare the same), and a broker URL fit for messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pika

from wharf import topology

__all__ = ["Declaration", "Delivery", "login", "node_queue_declarations", "passive",
           "safe_url", "topology_declarations"]


@dataclass(frozen=True)
class Delivery:
    """One consumed message; ack or reject it with the channel it came on."""

    body: bytes
    routing_key: str
    delivery_tag: int
    redelivered: bool
    correlation_id: str | None
    reply_to: str | None
    user_id: str | None  # validated by RabbitMQ: the account that published it


# What a channel declares, as data, so the blocking and the asyncio brokers declare the same
# topology: (channel method, keyword arguments).
Declaration = tuple[str, dict[str, Any]]


def topology_declarations() -> list[Declaration]:
    """Exchanges of ARCHITECTURE.md §4 and the dead-letter queue of expired commands."""
    exchanges = [(topology.COMMANDS_EXCHANGE, "direct"), (topology.BROADCAST_EXCHANGE, "fanout"),
                 (topology.EVENTS_EXCHANGE, "topic"), (topology.RESULTS_EXCHANGE, "direct"),
                 (topology.DEAD_LETTER_EXCHANGE, "fanout")]
    return [*(("exchange_declare", {"exchange": name, "exchange_type": kind, "durable": True})
              for name, kind in exchanges),
            ("queue_declare", {"queue": topology.EXPIRED_QUEUE, "durable": True}),
            ("queue_bind", {"queue": topology.EXPIRED_QUEUE,
                            "exchange": topology.DEAD_LETTER_EXCHANGE})]


def _command_queue(queue: str, exchange: str, routing_key: str | None) -> list[Declaration]:
    """A node's durable command queue: single active consumer, expired → dead letters."""
    return [("queue_declare", {"queue": queue, "durable": True, "arguments": {
                "x-single-active-consumer": True,
                "x-dead-letter-exchange": topology.DEAD_LETTER_EXCHANGE}}),
            ("queue_bind", {"queue": queue, "exchange": exchange, "routing_key": routing_key})]


def node_queue_declarations(node: str) -> list[Declaration]:
    """``node``'s command queue and its queue on the broadcast exchange (durable, so a
    broadcast waits for a daemon that is restarting)."""
    return [*_command_queue(topology.command_queue(node), topology.COMMANDS_EXCHANGE, node),
            *_command_queue(topology.broadcast_queue(node), topology.BROADCAST_EXCHANGE, None)]


def passive(declarations: list[Declaration]) -> list[Declaration]:
    """The same queues, declared passively: a check that they exist, which needs no configure
    right (a node has none; the gateway declares its queues). Bindings are left out."""
    return [("queue_declare", {"queue": kwargs["queue"], "passive": True})
            for method, kwargs in declarations if method == "queue_declare"]


def login(url: str) -> str:
    """The user a broker URL logs in as (what RabbitMQ requires as a message's ``user_id``)."""
    credentials = pika.URLParameters(url).credentials
    return str(getattr(credentials, "username", "") or "guest")


def safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    parsed = pika.URLParameters(url)
    return f"{parsed.host}:{parsed.port}{parsed.virtual_host and '/' + parsed.virtual_host}"
