"""The asyncio RabbitMQ broker (:class:`AsyncBroker`): one pika ``AsyncioConnection`` on the
running loop, publishes that await their own confirms while others are in flight, manual-ack
consuming, and reconnection with backoff that declares everything again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pika
import pika.exceptions
from pika.spec import Basic

from wharf.amqp import (
    Declaration,
    Delivery,
    broker_urls,
    login,
    queue_type,
    safe_url,
    topology_declarations,
    with_queue_type,
)
from wharf.amqp_connection import PacedConnection, never
from wharf.errors import MaybeSent, Unavailable

log = logging.getLogger("wharf.messaging")
__all__ = ["CONNECT_TIMEOUT", "AsyncBroker", "AsyncDelivery", "Setup"]

NEXT_BROKER_PAUSE = 0.05  # seconds before trying the next broker of a cluster
CONNECT_TIMEOUT = 5.0


class _Lost(Exception):
    """The connection or channel went away while something waited on it."""


@dataclass(frozen=True)
class AsyncDelivery(Delivery):
    """A message consumed by an :class:`AsyncBroker`; ack or reject it through the broker
    (which ignores deliveries of a channel that is gone: the broker redelivers those)."""

    channel: int  # the channel generation it came on


@dataclass
class _Channel:
    """One open channel and the publishes waiting for its confirms (tags count from 1)."""

    channel: Any
    generation: int
    next_tag: int = 1
    pending: dict[int, tuple[asyncio.Future[None], str]] = field(default_factory=dict)
    returned: set[str] = field(default_factory=set)
    ack_upto: int = 0  # with in_order_acks: the highest tag handled and not yet acked


Setup = Callable[["AsyncBroker"], Awaitable[list[str]]]


class AsyncBroker:
    """One pika ``AsyncioConnection`` on the running loop, for code that lives on a loop.

    Unlike :class:`~wharf.messaging.Broker`, publishes do not wait for each other: every
    :meth:`publish` awaits its own confirm while others are in flight (so throughput is not one
    broker fsync per message), and nothing crosses a thread. A background task connects,
    declares the topology (and what ``setup`` declares; it returns the queues to consume),
    consumes with manual acks, and after any loss reconnects with backoff and does all of it
    again. ``topology=False`` declares nothing of its own (a node's account may configure
    nothing: its ``setup`` checks passively that the gateway made its queues).

    Every message carries the login as its AMQP ``user_id``, which RabbitMQ checks against the
    connection's user: a receiver knows which account published it.
    """

    def __init__(self, url: str, *, prefetch: int = 100, setup: Setup | None = None,
                 on_message: Callable[[AsyncDelivery], None] | None = None,
                 backoff_max: float = 5.0, connect_wait: float = 3.0,
                 in_order_acks: bool = False, topology: bool = True) -> None:
        self.urls = broker_urls(url)  # a cluster's nodes: tried in turn (wharf.amqp)
        self.queue_type = queue_type(self.urls)
        self._at = 0  # the index of the URL connected to (or tried next)
        self.prefetch, self.setup, self.on_message = prefetch, setup, on_message
        self.topology, self.user_id = topology, login(url)
        # in_order_acks: the consumer settles every delivery before the next one (ack or
        # reject), so the acks of one loop iteration can go as one ``multiple`` ack.
        self.in_order_acks = in_order_acks
        self.backoff_max, self.connect_wait = backoff_max, connect_wait
        self.connected = asyncio.Event()
        self._lost = asyncio.Event()
        self._connection: Any = None
        self._current: _Channel | None = None
        self._generation = 0
        self._rpcs: set[asyncio.Future[Any]] = set()
        self._opening: _Channel | None = None  # set while setup declares on a new channel
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        # seconds to leave the socket unread after a read, asked after each (wharf.amqp_connection)
        self.read_pause: Callable[[], float] = never
        self._published_at = -1.0  # the loop's time of the last publish
        # connections made: the first, then one per reconnect (read by the gateway's /metrics)
        self.connections = 0

    @property
    def url(self) -> str:
        """The broker URL connected to (or tried next)."""
        return self.urls[self._at]

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="amqp")

    def _read_pause(self) -> float:
        """Rest only at rest: not within a second of a publish, nor while an RPC waits."""
        recent = asyncio.get_running_loop().time() - self._published_at < 1.0
        return 0.0 if recent or self._rpcs else self.read_pause()

    def read_now(self) -> None:
        """Read the socket at once if it rests (:attr:`read_pause`, wharf.amqp_connection)."""
        if self._connection is not None:
            self._connection.read_now()

    def reconnect(self) -> None:
        """Give up a connection that stopped answering: its waiters fail; the loop reconnects."""
        self._lost.set()
        self._drop(_Lost("given up: no answer"))
        self._shut()

    async def close(self) -> None:
        self._closing = True
        self._shut()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._drop(_Lost("closed"))

    # --- publishing -----------------------------------------------------------------------

    async def publish(self, exchange: str, routing_key: str, body: bytes, *,
                      expiration_ms: int | None = None, correlation_id: str | None = None,
                      reply_to: str | None = None, message_id: str | None = None,
                      mandatory: bool = True, user_id: str | None = None) -> None:
        """Publish (persistent; mandatory unless told otherwise) and return once confirmed.
        ``user_id`` is the login unless told otherwise (only an account with RabbitMQ's
        ``impersonator`` tag may name another: the simulated nodes of bench/dispatch.py).
        A connection lost before the confirm, or a nack, means one more try over the next
        connection (at-least-once; receivers deduplicate by id).

        Raises:
            MaybeSent: a copy went to the broker but no confirm came back (it may be queued).
            Unavailable: no queue is bound for ``routing_key``, or there is no connection
                within ``connect_wait`` seconds, before any copy went out.
        """
        message_id = message_id or uuid.uuid4().hex
        self._published_at = asyncio.get_running_loop().time()
        properties = pika.BasicProperties(
            delivery_mode=pika.DeliveryMode.Persistent, content_type="application/json",
            expiration=str(expiration_ms) if expiration_ms is not None else None,
            correlation_id=correlation_id, reply_to=reply_to, message_id=message_id,
            user_id=user_id or self.user_id)
        sent = False  # a copy reached pika's socket: from then on a failure is MaybeSent
        for attempt in (1, 2):
            current = await self._ready(MaybeSent if sent else Unavailable)
            earlier, tag, current.next_tag = sent, current.next_tag, current.next_tag + 1
            confirmed = asyncio.get_running_loop().create_future()
            current.pending[tag] = (confirmed, message_id)
            try:
                current.channel.basic_publish(exchange, routing_key, body, properties,
                                              mandatory=mandatory)
                sent = True
                await confirmed
                return
            except (_Lost, pika.exceptions.AMQPError) as exc:
                current.pending.pop(tag, None)
                if attempt == 2:
                    raise (MaybeSent if sent else Unavailable)(
                        f"publishing to RabbitMQ failed: {exc!r}") from exc
            except _Returned as exc:  # routed to no queue: this copy is nowhere
                raise (MaybeSent if earlier else Unavailable)(
                    f"no queue takes {exchange}/{routing_key}") from exc
            except _Nacked as exc:
                # After a quorum queue's leader changed, RabbitMQ 3.10 may go on nacking on
                # the channel that published before (measured: still after 120 s), while a
                # new connection's first publish is taken: one more try over a new one.
                if attempt == 2:
                    raise MaybeSent(f"RabbitMQ refused a message to {exchange}/{routing_key}"
                                    ) from exc
                if self._current is current:  # not one another nacked publish replaced
                    self.reconnect()

    async def _ready(self, failure: type[Unavailable] = Unavailable) -> _Channel:
        if self._current is None:
            try:
                await asyncio.wait_for(self.connected.wait(), self.connect_wait)
            except TimeoutError:
                raise failure(f"RabbitMQ at {safe_url(self.url)} is unavailable") from None
        assert self._current is not None
        return self._current

    def _on_confirm(self, current: _Channel, frame: Any) -> None:
        method = frame.method
        tags = [t for t in current.pending if t <= method.delivery_tag] if method.multiple \
            else [method.delivery_tag]
        nacked = isinstance(method, Basic.Nack)
        for tag in tags:
            entry = current.pending.pop(tag, None)
            if entry is None or entry[0].done():
                continue
            future, message_id = entry
            if nacked:
                future.set_exception(_Nacked())
            elif message_id in current.returned:
                current.returned.discard(message_id)
                future.set_exception(_Returned())
            else:
                future.set_result(None)

    # --- consuming ------------------------------------------------------------------------

    def ack(self, delivery: AsyncDelivery) -> None:
        current = self._current
        if current is None or current.generation != delivery.channel:
            return
        if not self.in_order_acks:
            current.channel.basic_ack(delivery.delivery_tag)
            return
        if not current.ack_upto:
            asyncio.get_running_loop().call_soon(self._flush_acks, current)
        current.ack_upto = max(current.ack_upto, delivery.delivery_tag)

    def _flush_acks(self, current: _Channel) -> None:
        upto, current.ack_upto = current.ack_upto, 0
        if upto and current is self._current:
            current.channel.basic_ack(upto, multiple=True)

    def reject(self, delivery: AsyncDelivery, requeue: bool = False) -> None:
        """Dead-lettered where the queue has a dead-letter exchange; with ``requeue`` it comes
        again (with ``in_order_acks``, rejected before any later delivery's multiple ack)."""
        current = self._current
        if current is not None and current.generation == delivery.channel:
            current.channel.basic_reject(delivery.delivery_tag, requeue=requeue)

    def is_current(self, delivery: AsyncDelivery) -> bool:
        """False once the delivery's channel is gone (the broker redelivers it elsewhere)."""
        return self._current is not None and self._current.generation == delivery.channel

    async def declare(self, declarations: list[Declaration]) -> None:
        """Declare on the current channel (for ``setup``); durable queues of this broker's
        :attr:`queue_type`."""
        current = await self._ready_or_opening()
        for method, kwargs in with_queue_type(declarations, self.queue_type):
            await self._rpc(getattr(current.channel, method), **kwargs)

    # --- the connection -------------------------------------------------------------------

    async def _run(self) -> None:
        """Connect, and after any loss connect again: to the next broker of the address at
        once, with backoff only once every broker failed in a row."""
        delay, failed = 0.1, 0
        while True:
            try:
                await self._connect()
                delay, failed = 0.1, 0
                await self._lost.wait()
                if not self._closing:
                    log.warning("RabbitMQ connection to %s lost; reconnecting", safe_url(self.url))
            except (Unavailable, _Lost, pika.exceptions.AMQPError, TimeoutError) as exc:
                failed += 1
                log.warning("RabbitMQ at %s unavailable (%s)", safe_url(self.url), exc)
            self._drop(_Lost("connection lost"))
            self._shut()
            if self._closing:
                return
            self._at = (self._at + 1) % len(self.urls)
            if len(self.urls) == 1 or (failed and failed % len(self.urls) == 0):
                if len(self.urls) > 1:
                    log.warning("no broker of %d answered; retrying in %.1fs", len(self.urls),
                                delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff_max)
            else:
                await asyncio.sleep(NEXT_BROKER_PAUSE)  # no busy loop if each one drops us

    def _shut(self) -> None:
        connection = self._connection
        if connection is not None and not (connection.is_closed or connection.is_closing):
            with contextlib.suppress(pika.exceptions.AMQPError):
                connection.close()

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        opened: asyncio.Future[Any] = loop.create_future()
        lost = self._lost = asyncio.Event()

        def gone(why: str) -> None:
            if self._lost is lost:  # not a late callback of an earlier connection
                lost.set()  # _run reconnects
                self._drop(_Lost(why))  # and nothing waits for a dead connection

        def on_open(connection: Any) -> None:
            if not opened.done():
                opened.set_result(connection)

        def on_open_error(_connection: Any, exc: BaseException) -> None:
            if not opened.done():
                opened.set_exception(Unavailable(
                    f"RabbitMQ at {safe_url(self.url)} is unavailable: {exc!r}"))

        def on_close(_connection: Any, _exc: BaseException) -> None:
            gone("connection closed")

        self._connection = PacedConnection(
            pika.URLParameters(self.url), on_open_callback=on_open,
            on_open_error_callback=on_open_error, on_close_callback=on_close,
            custom_ioloop=loop, read_pause=self._read_pause)
        connection = await asyncio.wait_for(opened, CONNECT_TIMEOUT)
        channel_open: asyncio.Future[Any] = loop.create_future()
        self._rpcs.add(channel_open)
        connection.channel(on_open_callback=lambda ch: _settle(channel_open, ch))
        channel = await asyncio.wait_for(channel_open, CONNECT_TIMEOUT)
        self._rpcs.discard(channel_open)
        self._generation += 1
        current = _Channel(channel, self._generation)
        # The broker's reason (404 for a queue no gateway declared yet, 403 for a right the
        # account lacks) is what the log must say.
        channel.add_on_close_callback(lambda _ch, exc: gone(f"channel closed: {exc}"))
        channel.add_on_return_callback(
            lambda _ch, _method, props, _body: current.returned.add(props.message_id))
        await self._rpc(channel.confirm_delivery,
                        ack_nack_callback=lambda frame: self._on_confirm(current, frame))
        await self._rpc(channel.basic_qos, prefetch_count=self.prefetch)
        self._opening = current
        try:
            if self.topology:
                await self.declare(topology_declarations())
            queues = await self.setup(self) if self.setup is not None else []
        finally:
            self._opening = None
        # Current before consuming: a message already waiting is delivered in the same read
        # as ConsumeOk, before this coroutine resumes, and its consumer must see it as
        # current (is_current, ack) or it is dropped unacked and never comes again.
        self._current = current
        for queue in queues:
            await self._rpc(channel.basic_consume, queue=queue,
                            on_message_callback=self._deliver(current.generation))
        self.connections += 1
        self.connected.set()

    async def _ready_or_opening(self) -> _Channel:
        return self._opening if self._opening is not None else await self._ready()

    def _deliver(self, generation: int) -> Callable[..., None]:
        def on_message(_channel: Any, method: Basic.Deliver, props: pika.BasicProperties,
                       body: bytes) -> None:
            if self.on_message is not None:
                self.on_message(AsyncDelivery(
                    body, method.routing_key or "", method.delivery_tag or 0,
                    bool(method.redelivered), props.correlation_id, props.reply_to,
                    props.user_id, generation))
        return on_message

    async def _rpc(self, method: Callable[..., Any], **kwargs: Any) -> Any:
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._rpcs.add(done)
        try:
            method(callback=lambda frame: _settle(done, frame), **kwargs)
            return await asyncio.wait_for(done, CONNECT_TIMEOUT)
        finally:
            self._rpcs.discard(done)

    def _drop(self, exc: _Lost) -> None:
        """Fail everything waiting on the connection that is gone."""
        self.connected.clear()
        current, self._current = self._current, None
        waiting = list(self._rpcs)
        if current is not None:
            waiting += [future for future, _ in current.pending.values()]
            current.pending.clear()
        for future in waiting:
            if not future.done():
                future.set_exception(exc)


def _settle(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)


class _Returned(Exception):
    """The broker returned a mandatory message: no queue is bound for it."""


class _Nacked(Exception):
    """The broker refused a message (basic.nack)."""
