"""The gateway's side of RabbitMQ: commands out, results and node reports in, all on the loop.

One :class:`~wharf.messaging.AsyncBroker` on uvicorn's event loop both publishes and consumes,
so a command's publish never waits for another's confirm, and a result reaches the request that
waits for it without crossing a thread (no GIL hand-over on the hot path). Each message is
applied to the :class:`~wharf.gateway.store.ClusterStore` (a short SQLite transaction) and then
acked.

The gateway's queue ``wharf.gw.<gateway-id>`` is durable and bound both to its results and to
every node's reports, so nothing the daemons say while the gateway restarts is lost; stale
events are dropped by sequence number when they are applied.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from wharf import topology
from wharf.gateway.store import ClusterStore, result_document
from wharf.messaging import AsyncBroker, AsyncDelivery
from wharf.protocol import CommandEnvelope, CommandResult, Heartbeat, NodeEvent, Snapshot

log = logging.getLogger("wharf.gateway.bus")

ResultListener = Callable[[str, str, dict[str, Any]], None]  # command id, node, document


def gateway_queue(gateway_id: str) -> str:
    return f"wharf.gw.{gateway_id}"


class Bus:
    """Publishes commands and consumes results and reports from :meth:`start` to :meth:`close`
    (both on the event loop)."""

    def __init__(self, url: str, gateway_id: str, store: ClusterStore, *,
                 on_event: Callable[[], None],
                 on_result: ResultListener = lambda _id, _node, _doc: None,
                 on_seen: Callable[[str, float], None] = lambda _node, _at: None,
                 take_unstored: Callable[[str, str, dict[str, Any]], bool] = (
                     lambda _id, _node, _doc: False)) -> None:
        self.gateway_id, self.store = gateway_id, store
        self.on_result, self.on_event, self.on_seen = on_result, on_event, on_seen
        self.take_unstored = take_unstored
        self.broker = AsyncBroker(url, prefetch=300, setup=self._setup,
                                  on_message=self._on_message, in_order_acks=True)

    @property
    def connected(self) -> bool:
        return self.broker.connected.is_set()

    def start(self) -> None:
        self.broker.start()

    async def close(self) -> None:
        await self.broker.close()

    async def publish(self, envelope: CommandEnvelope) -> None:
        """Publish a command (confirmed, mandatory, with its deadline as expiration).

        Raises:
            Unavailable: the node has no queue, the broker refused it, or it is unreachable.
        """
        if envelope.node == "*":
            exchange, key = topology.BROADCAST_EXCHANGE, ""
        else:
            exchange, key = topology.COMMANDS_EXCHANGE, envelope.node
        await self.broker.publish(
            exchange, key, envelope.model_dump_json().encode(),
            expiration_ms=max(1, envelope.expiration_ms()), correlation_id=str(envelope.id),
            reply_to=self.gateway_id, message_id=str(envelope.id))

    # --- what comes in ------------------------------------------------------------------

    async def _setup(self, broker: AsyncBroker) -> list[str]:
        queue = gateway_queue(self.gateway_id)
        await broker.declare([
            ("queue_declare", {"queue": queue, "durable": True}),
            ("queue_bind", {"queue": queue, "exchange": topology.RESULTS_EXCHANGE,
                            "routing_key": self.gateway_id}),
            ("queue_bind", {"queue": queue, "exchange": topology.EVENTS_EXCHANGE,
                            "routing_key": "node.#"})])
        return [queue, topology.EXPIRED_QUEUE]

    def _on_message(self, delivery: AsyncDelivery) -> None:
        try:
            self.handle(delivery.routing_key, delivery.body)
        except ValidationError as exc:
            log.warning("dropped a malformed message (%s): %s", delivery.routing_key,
                        exc.errors()[:1])
            self.broker.reject(delivery)
            return
        self.broker.ack(delivery)

    def handle(self, routing_key: str, body: bytes) -> None:
        """Apply one message to the store (the routing key says what it is)."""
        now = time.time()
        if routing_key == self.gateway_id:
            result = CommandResult.model_validate_json(body)
            document = result_document(result)
            if self.take_unstored(str(result.command_id), result.node, document):
                return  # a read's answer: for its waiter only
            if self.store.record_result(result) is not None:
                self.on_result(str(result.command_id), result.node, document)
        elif not routing_key.startswith("node."):  # dead-lettered: expired in a queue
            envelope = CommandEnvelope.model_validate_json(body)
            if self.take_unstored(str(envelope.id), envelope.node, {
                    "Status": "expired", "Result": None, "Error": None,
                    "FinishedAt": now}):
                return  # a read that waited too long in the node's queue
            row = self.store.command(str(envelope.id))
            if row is None:
                return  # another gateway's command
            nodes = row.expected if envelope.node == "*" else [envelope.node]
            for node in nodes:
                expired = self.store.record_expired(str(envelope.id), node)
                if expired is not None:
                    self.on_result(str(envelope.id), node, expired)
        elif ".container." not in routing_key and routing_key.endswith(".heartbeat"):
            beat = Heartbeat.model_validate_json(body)
            self.store.heartbeat(beat, now)
            self.on_seen(beat.node, now)
        elif ".container." not in routing_key and routing_key.endswith(".snapshot"):
            self.store.snapshot(Snapshot.model_validate_json(body), now)
        elif self.store.node_event(NodeEvent.model_validate_json(body)):
            self.on_event()
