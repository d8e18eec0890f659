"""The gateway's side of RabbitMQ: one thread publishes commands, one consumes what comes back.

pika connections are single-threaded, so each thread owns a :class:`~wharf.messaging.Broker`.
HTTP handlers hand a publish to the publisher thread (a one-worker executor) and await it; the
consumer thread writes results, events, heartbeats and snapshots into the
:class:`~wharf.gateway.store.ClusterStore` and wakes the waiting handlers on the event loop with
``call_soon_threadsafe``.

The gateway's queue ``wharf.gw.<gateway-id>`` is durable and bound both to its results and to
every node's reports, so nothing the daemons say while the gateway restarts is lost; stale
events are dropped by sequence number when they are applied.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from pydantic import ValidationError

from wharf import topology
from wharf.gateway.store import ClusterStore
from wharf.messaging import BlockingChannel, Broker, Delivery
from wharf.protocol import CommandEnvelope, CommandResult, Heartbeat, NodeEvent, Snapshot

log = logging.getLogger("wharf.gateway.bus")


def gateway_queue(gateway_id: str) -> str:
    return f"wharf.gw.{gateway_id}"


class Bus:
    """Publishes commands and consumes results and reports until :meth:`close`."""

    def __init__(self, url: str, gateway_id: str, store: ClusterStore,
                 loop: asyncio.AbstractEventLoop, *, on_event: Callable[[], None],
                 on_result: Callable[[str], None] = lambda _command_id: None) -> None:
        self.url, self.gateway_id, self.store, self.loop = url, gateway_id, store, loop
        self.on_result, self.on_event = on_result, on_event
        self._stop = threading.Event()
        self._publisher = Broker(url)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gw-publish")
        self._consumer = threading.Thread(target=self._consume, name="gw-consume", daemon=True)
        self.connected = threading.Event()

    def start(self) -> None:
        self._consumer.start()

    def close(self) -> None:
        self._stop.set()
        self._consumer.join(5)
        self._executor.submit(self._publisher.close).result(5)
        self._executor.shutdown(wait=True)

    async def publish(self, envelope: CommandEnvelope) -> None:
        """Publish a command (confirmed, mandatory, with its deadline as expiration).

        Raises:
            Unavailable: the node has no queue, the broker refused it, or it is unreachable.
        """
        body = envelope.model_dump_json().encode()
        if envelope.node == "*":
            exchange, key = topology.BROADCAST_EXCHANGE, ""
        else:
            exchange, key = topology.COMMANDS_EXCHANGE, envelope.node
        await self.loop.run_in_executor(self._executor, lambda: self._publisher.publish(
            exchange, key, body, expiration_ms=max(1, envelope.expiration_ms()),
            correlation_id=str(envelope.id), reply_to=self.gateway_id,
            message_id=str(envelope.id)))

    # --- the consumer thread ------------------------------------------------------------

    def _declare(self, channel: BlockingChannel) -> list[str]:
        queue = gateway_queue(self.gateway_id)
        channel.queue_declare(queue, durable=True)
        channel.queue_bind(queue, topology.RESULTS_EXCHANGE, routing_key=self.gateway_id)
        channel.queue_bind(queue, topology.EVENTS_EXCHANGE, routing_key="node.#")
        self.connected.set()
        return [queue, topology.EXPIRED_QUEUE]

    def _consume(self) -> None:
        broker = Broker(self.url, prefetch=300)
        try:
            broker.consume_forever(self._declare, self._on_delivery, stop=self._stop.is_set)
        finally:
            self.connected.clear()
            broker.close()

    def _on_delivery(self, delivery: Delivery) -> bool:
        try:
            self.handle(delivery.routing_key, delivery.body)
        except ValidationError as exc:
            log.warning("dropped a malformed message (%s): %s", delivery.routing_key,
                        exc.errors()[:1])
            return False
        return True

    def handle(self, routing_key: str, body: bytes) -> None:
        """Apply one message to the store (the routing key says what it is)."""
        now = time.time()
        if routing_key == self.gateway_id:
            result = CommandResult.model_validate_json(body)
            self.store.record_result(result)
            self.loop.call_soon_threadsafe(self.on_result, str(result.command_id))
        elif not routing_key.startswith("node."):  # dead-lettered: expired in a queue
            envelope = CommandEnvelope.model_validate_json(body)
            row = self.store.command(str(envelope.id))
            if row is None:
                return  # another gateway's command
            nodes = row.expected if envelope.node == "*" else [envelope.node]
            for node in nodes:
                self.store.record_expired(str(envelope.id), node)
            self.loop.call_soon_threadsafe(self.on_result, str(envelope.id))
        elif ".container." not in routing_key and routing_key.endswith(".heartbeat"):
            self.store.heartbeat(Heartbeat.model_validate_json(body), now)
        elif ".container." not in routing_key and routing_key.endswith(".snapshot"):
            self.store.snapshot(Snapshot.model_validate_json(body), now)
        elif self.store.node_event(NodeEvent.model_validate_json(body)):
            self.loop.call_soon_threadsafe(self.on_event)
