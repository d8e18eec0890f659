"""RabbitMQ for the control plane: the blocking :class:`Broker`, and the face of the messaging
modules (``amqp``: deliveries and the topology as declarations; ``amqp_async``: the asyncio
:class:`AsyncBroker`), which are the only modules that import pika.

pika connections are single-threaded: each thread that talks to the broker owns its own
:class:`Broker` (one ``BlockingConnection``). Publishing is confirmed, ``mandatory`` and
persistent by default, with the command's deadline as the AMQP ``expiration``; consuming uses
manual acks and a prefetch window, and :meth:`Broker.consume_forever` reconnects with backoff,
re-declares the topology and resumes after any connection loss (pika has no recovery of its own).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import Basic

from wharf import topology
from wharf.amqp import (
    Declaration,
    Delivery,
    broker_urls,
    login,
    node_queue_declarations,
    passive,
    queue_type,
    safe_url,
    topology_declarations,
    with_queue_type,
)
from wharf.amqp_async import AsyncBroker, AsyncDelivery
from wharf.errors import Unavailable

log = logging.getLogger("wharf.messaging")
__all__ = [
    "AsyncBroker",
    "AsyncDelivery",
    "BlockingChannel",
    "Broker",
    "Declaration",
    "Delivery",
    "Handler",
    "declare_broadcast_queue",
    "declare_node_queues",
    "declare_topology",
    "login",
    "node_queue_declarations",
    "passive",
    "topology_declarations",
]


Handler = Callable[[Delivery], bool]  # True: ack; False: reject (dead-lettered, not requeued)


def _apply(channel: BlockingChannel, declarations: list[Declaration]) -> None:
    for method, kwargs in declarations:
        getattr(channel, method)(**kwargs)


def declare_topology(channel: BlockingChannel) -> None:
    _apply(channel, topology_declarations())


def declare_broadcast_queue(channel: BlockingChannel, node: str) -> str:
    _apply(channel, node_queue_declarations(node)[2:])
    return topology.broadcast_queue(node)


def declare_node_queues(channel: BlockingChannel, node: str) -> str:
    _apply(channel, node_queue_declarations(node)[:2])
    return topology.command_queue(node)


def _url_of(connection: pika.BlockingConnection, urls: list[str]) -> str:
    """Which of ``urls`` the connection reached (by host and port)."""
    params = connection._impl.params
    for url in urls:
        candidate = pika.URLParameters(url)
        if (candidate.host, candidate.port) == (params.host, params.port):
            return url
    return urls[0]


class Broker:
    """One connection and channel, with confirms on; not thread-safe (one per thread).

    Declares the control plane's topology on connect unless ``topology=False`` (a node, which
    may configure nothing); every message carries the login as its AMQP ``user_id``.
    """

    def __init__(self, url: str, *, prefetch: int = 100, topology: bool = True) -> None:
        self.url = url  # one URL or a cluster's, separated by commas (wharf.amqp)
        self.urls, self._at = broker_urls(url), 0
        self.queue_type = queue_type(self.urls)
        self.prefetch = prefetch
        self.topology, self.user_id = topology, login(url)
        self._connection: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None

    @property
    def channel(self) -> BlockingChannel:
        if self._channel is None or not self._channel.is_open:
            self._connect()
        assert self._channel is not None
        return self._channel

    def _connect(self) -> None:
        """Connect to the broker that answered last, else to the next of the address."""
        self.close()
        order = self.urls[self._at:] + self.urls[:self._at]
        try:
            # pika tries the parameters in order and connects to the first that answers
            self._connection = pika.BlockingConnection(
                [pika.URLParameters(url) for url in order])
            self._at = self.urls.index(_url_of(self._connection, order))
            channel = self._connection.channel()
            channel.confirm_delivery()
            channel.basic_qos(prefetch_count=self.prefetch)
            if self.topology:
                _apply(channel, with_queue_type(topology_declarations(), self.queue_type))
        except pika.exceptions.AMQPError as exc:
            self.close()
            self._at = (self._at + 1) % len(self.urls)
            raise Unavailable(f"RabbitMQ at {safe_url(self.url)} is unavailable: {exc!r}") from exc
        self._channel = channel

    def publish(self, exchange: str, routing_key: str, body: bytes, *,
                expiration_ms: int | None = None, correlation_id: str | None = None,
                reply_to: str | None = None, message_id: str | None = None,
                mandatory: bool = True, user_id: str | None = None) -> None:
        """Publish persistent (and mandatory unless told otherwise: events may have no
        listener); returns once the broker confirmed it. ``user_id``: the login unless told
        otherwise (which takes RabbitMQ's ``impersonator`` tag).

        Raises:
            Unavailable: no queue is bound for ``routing_key``, the broker refused the message,
                or the connection is down.
        """
        properties = pika.BasicProperties(
            delivery_mode=pika.DeliveryMode.Persistent, content_type="application/json",
            expiration=str(expiration_ms) if expiration_ms is not None else None,
            correlation_id=correlation_id, reply_to=reply_to, message_id=message_id,
            user_id=user_id or self.user_id)
        try:
            try:
                self.channel.basic_publish(exchange, routing_key, body, properties,
                                           mandatory=mandatory)
            except (pika.exceptions.ConnectionClosed, pika.exceptions.ChannelClosed,
                    pika.exceptions.StreamLostError, pika.exceptions.NackError):
                # A connection the broker dropped is only noticed here, and after a quorum
                # queue's leader changed RabbitMQ may go on nacking on the old channel:
                # reconnect and send once more (at-least-once; receivers deduplicate by id).
                self.close()
                self.channel.basic_publish(exchange, routing_key, body, properties,
                                           mandatory=mandatory)
        except pika.exceptions.UnroutableError as exc:
            raise Unavailable(f"no queue takes {exchange}/{routing_key}") from exc
        except pika.exceptions.NackError as exc:
            raise Unavailable(f"RabbitMQ refused a message to {exchange}/{routing_key}") from exc
        except pika.exceptions.AMQPError as exc:
            self.close()
            raise Unavailable(f"publishing to RabbitMQ failed: {exc!r}") from exc

    def consume(self, queues: str | list[str], handler: Handler, *,
                max_messages: int | None = None, inactivity_timeout: float = 1.0,
                stop: Callable[[], bool] = lambda: False) -> int:
        """Deliver messages of one or more queues to ``handler`` (ack after it returns True,
        reject otherwise) until ``stop()`` or ``max_messages``; returns how many were handled."""
        names = [queues] if isinstance(queues, str) else list(queues)
        channel = self.channel
        connection = self._connection
        assert connection is not None
        handled = 0

        def on_message(ch: BlockingChannel, method: Basic.Deliver,
                       props: pika.BasicProperties, body: bytes) -> None:
            nonlocal handled
            tag = method.delivery_tag
            delivery = Delivery(body, method.routing_key or "", tag or 0,
                                bool(method.redelivered), props.correlation_id, props.reply_to,
                                props.user_id)
            if handler(delivery):
                ch.basic_ack(tag)
            else:
                ch.basic_reject(tag, requeue=False)
            handled += 1

        tags = [channel.basic_consume(name, on_message) for name in names]
        try:
            while not stop() and (max_messages is None or handled < max_messages):
                connection.process_data_events(time_limit=inactivity_timeout)
        finally:
            if channel.is_open:
                for tag in tags:
                    with contextlib.suppress(pika.exceptions.AMQPError):
                        channel.basic_cancel(tag)
        return handled

    def consume_forever(self, queue_for: Callable[[BlockingChannel], str | list[str]],
                        handler: Handler, *, stop: Callable[[], bool],
                        backoff_max: float = 5.0) -> None:
        """Consume until ``stop()``, reconnecting with backoff (re-declaring on each connect:
        ``queue_for`` declares what it needs and names the queues to consume)."""
        delay = 0.1
        while not stop():
            try:
                queues = queue_for(self.channel)
                delay = 0.1
                self.consume(queues, handler, stop=stop, inactivity_timeout=0.5)
            except (Unavailable, pika.exceptions.AMQPError) as exc:
                log.warning("RabbitMQ connection lost (%s); retrying in %.1fs", exc, delay)
                self.close()
                time.sleep(delay)
                delay = min(delay * 2, backoff_max)

    def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            with contextlib.suppress(pika.exceptions.AMQPError):
                connection.close()

