"""What both RabbitMQ brokers share (``messaging.Broker``, blocking, and
``amqp_async.AsyncBroker``, asyncio): the consumed message, the control plane's topology as
declarations (data, so both declare the same), the brokers an address names, and a broker URL
fit for messages.

An address is one AMQP URL, or the URLs of a RabbitMQ cluster's nodes separated by commas
(``amqp://u:p@h1:5672/wharf,amqp://u:p@h2:5672/wharf``): a client connects to the first that
answers and, when its connection is lost, to the next. With more than one, every durable queue
the control plane declares is a quorum queue (replicated on the cluster's nodes, so it outlives
the node that leads it); with one, a classic queue as before (a queue's type cannot change
while it exists: docs/cluster.md "A cluster of brokers").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pika
import pika.exceptions

from wharf import topology
from wharf.errors import InvalidArgument

__all__ = ["CLASSIC", "QUORUM", "Declaration", "Delivery", "broker_urls", "login",
           "node_queue_declarations", "passive", "queue_type", "safe_url",
           "topology_declarations", "with_queue_type"]

QUORUM, CLASSIC = "quorum", "classic"
MAX_BROKERS = 16


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
    """The user a broker URL (or the first of an address's) logs in as (what RabbitMQ requires
    as a message's ``user_id``)."""
    credentials = pika.URLParameters(url.split(",", maxsplit=1)[0].strip()).credentials
    return str(getattr(credentials, "username", "") or "guest")


def safe_url(url: str) -> str:
    """The URL (or each of an address's) without its password, for messages."""
    shown = []
    for one in url.split(","):
        parsed = pika.URLParameters(one.strip())
        shown.append(f"{parsed.host}:{parsed.port}"
                     f"{parsed.virtual_host and '/' + parsed.virtual_host}")
    return ",".join(shown)


def broker_urls(address: str) -> list[str]:
    """The broker URLs of an address (one URL, or several separated by commas).

    Raises:
        InvalidArgument: an empty or malformed URL, more than :data:`MAX_BROKERS`, or URLs
            that differ in user or vhost (RabbitMQ checks each message's ``user_id`` against
            the login, and a cluster's nodes share the vhost).
    """
    urls = [part.strip() for part in address.split(",")]
    if not address.strip() or any(not url for url in urls):
        raise InvalidArgument(f"invalid broker address {address!r}: expected AMQP URLs "
                              "separated by commas")
    if len(urls) > MAX_BROKERS:
        raise InvalidArgument(f"invalid broker address: {len(urls)} URLs (at most "
                              f"{MAX_BROKERS})")
    seen = set()
    for url in urls:
        if not url.startswith(("amqp://", "amqps://")):
            raise InvalidArgument(f"invalid broker URL {safe_text(url)!r}: expected amqp:// or "
                                  "amqps://")
        try:
            params = pika.URLParameters(url)
        except (ValueError, TypeError, pika.exceptions.AMQPError) as exc:  # pika: TypeError
            # for a user without a password
            why = str(exc) or type(exc).__name__
            raise InvalidArgument(f"invalid broker URL {safe_text(url)!r} ({why}): expected "
                                  "amqp://USER:PASSWORD@HOST:PORT/VHOST") from None
        seen.add((login(url), params.virtual_host))
    if len(seen) > 1:
        raise InvalidArgument("invalid broker address: every URL must log in as the same user "
                              "to the same vhost")
    return urls


def safe_text(url: str) -> str:
    """``url`` with any password replaced (for an error about a URL pika cannot parse)."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    return f"{scheme}://{credentials.partition(':')[0]}:***@{host}"


def queue_type(urls: list[str]) -> str:
    """Quorum queues on a cluster of brokers, classic ones on a single broker."""
    return QUORUM if len(urls) > 1 else CLASSIC


def with_queue_type(declarations: list[Declaration], kind: str) -> list[Declaration]:
    """The declarations with every durable, non-passive queue of type ``kind`` (classic: as
    they are, no ``x-queue-type``, so queues declared before this existed still match)."""
    if kind == CLASSIC:
        return declarations
    return [(method, _typed(kwargs, kind) if method == "queue_declare" else kwargs)
            for method, kwargs in declarations]


def _typed(kwargs: dict[str, Any], kind: str) -> dict[str, Any]:
    if not kwargs.get("durable") or kwargs.get("passive"):
        return kwargs
    return {**kwargs, "arguments": {**(kwargs.get("arguments") or {}), "x-queue-type": kind}}
