"""The gateway's side of RabbitMQ: commands out, results and node reports in, all on the loop.

One :class:`~wharf.messaging.AsyncBroker` on uvicorn's event loop both publishes and consumes,
so a command's publish never waits for another's confirm, and a result reaches the request that
waits for it without crossing a thread (no GIL hand-over on the hot path). Each message is
applied to the :class:`~wharf.gateway.store.ClusterStore` (its view in memory; a short SQLite
transaction when something durable changed) and then acked, the messages of up to 50 ms in one
``multiple`` ack.

The gateway's queue ``wharf.gw.<gateway-id>`` is durable and bound both to its results and to
every node's reports, so nothing the daemons say while the gateway restarts is lost; stale
events are dropped by sequence number when they are applied. Results come to the gateway
that sent the command only (its ``reply_to``); with records shared by several gateways, one
re-asked on another gateway is sent again with that gateway's id (:mod:`wharf.gateway.dispatch`).

Who said it is checked before what was said: a node's report or result counts only when its
AMQP ``user_id`` (which RabbitMQ validates against the login) is that node's own account
(``topology.node_user``); anything else is dropped and counted in :attr:`Bus.dropped`. Nodes
may configure nothing on the broker, so the gateway declares a node's queues when the node's
first heartbeat arrives (and again after each reconnect).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from wharf import topology
from wharf.errors import Unavailable
from wharf.gateway.records import Records, expired_document
from wharf.gateway.store import ClusterStore, result_document
from wharf.messaging import AsyncBroker, AsyncDelivery, node_queue_declarations
from wharf.protocol import CommandEnvelope, CommandResult, Heartbeat, NodeEvent, Snapshot

log = logging.getLogger("wharf.gateway.bus")

ResultListener = Callable[[str, str, dict[str, Any]], None]  # command id, node, document
ACK_HOLD_SECONDS = 0.05  # how long a handled message may wait for its (multiple) ack
ACK_HOLD_MAX = 100  # and how many of them: well under the prefetch (300)
# At rest (no request waiting for a result, no command sent in the last second), the broker's
# socket rests this long after each read, so a thousand nodes' heartbeats a second wake the
# loop fifty times, not a thousand (wharf.amqp_connection); a publish reads at once.
IDLE_READ_PAUSE = 0.02


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
                     lambda _id, _node, _doc: False),
                 watching: Callable[[str], bool] = lambda _id: False,
                 records: Records | None = None) -> None:
        self.gateway_id, self.store = gateway_id, store
        self.records: Records = records if records is not None else store
        self.watching = watching  # whether a request here waits for a command's result
        self.on_result, self.on_event, self.on_seen = on_result, on_event, on_seen
        self.take_unstored = take_unstored
        self.broker = AsyncBroker(url, prefetch=300, setup=self._setup,
                                  on_message=self._on_message, in_order_acks=True)
        self.busy: Callable[[], bool] = lambda: False  # whether a request waits for a result
        self.broker.read_pause = self._read_pause
        self.dropped: Counter[str] = Counter()  # "forged", "malformed": messages not applied
        self.events: Counter[str] = Counter()  # nodes' events applied, by type (/metrics)
        self._declared: set[str] = set()  # nodes whose queues this connection declared
        # node → done when its queues are declared; one declarer works through the waiting
        self._declaring: dict[str, asyncio.Future[None]] = {}
        self._to_declare: deque[str] = deque()
        self._declarer: asyncio.Task[None] | None = None
        self._held: AsyncDelivery | None = None  # the newest delivery handled, not yet acked
        self._holding = 0
        self._ack_timer: asyncio.TimerHandle | None = None

    @property
    def connected(self) -> bool:
        return self.broker.connected.is_set()

    def start(self) -> None:
        self.broker.start()

    async def close(self) -> None:
        self._release_acks()
        if self._declarer is not None:
            self._declarer.cancel()
        await self.broker.close()

    async def publish(self, envelope: CommandEnvelope) -> None:
        """Publish a command (confirmed, mandatory, with its deadline as expiration).

        Raises:
            Unavailable: the node has no queue, the broker refused it, or it is unreachable.
        """
        if envelope.node == "*":
            exchange, key = topology.BROADCAST_EXCHANGE, ""
            pending = list(self._declaring.values())
        else:
            exchange, key = topology.COMMANDS_EXCHANGE, envelope.node
            pending = [self._declaring[envelope.node]] if envelope.node in self._declaring else []
        # A node is ready from its first heartbeat on, and its queues are declared right after
        # it: a command sent in between waits for that declare instead of finding no queue.
        await asyncio.gather(*(asyncio.shield(task) for task in pending))
        await self.broker.publish(
            exchange, key, envelope.model_dump_json().encode(),
            expiration_ms=max(1, envelope.expiration_ms()), correlation_id=str(envelope.id),
            reply_to=self.gateway_id, message_id=str(envelope.id))
        self.broker.read_now()  # its result comes next: no resting socket in its way

    def _read_pause(self) -> float:
        return 0.0 if self.busy() else IDLE_READ_PAUSE

    # --- what comes in ------------------------------------------------------------------

    async def _setup(self, broker: AsyncBroker) -> list[str]:
        self._declared.clear()  # a broker that lost them gets them again with the next beats
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
            self.handle(delivery.routing_key, delivery.body, delivery.user_id)
        except ValueError as exc:  # ValidationError, or a value JSON cannot carry (NaN)
            self.dropped["malformed"] += 1
            log.warning("dropped a malformed message (%s): %s", delivery.routing_key,
                        exc.errors()[:1] if isinstance(exc, ValidationError) else exc)
            self.broker.reject(delivery)
            return
        except Unavailable as exc:  # the shared records are out of reach: it comes again
            log.warning("%s; message %s requeued", exc, delivery.routing_key)
            self._release_acks()  # those before it (a later multiple ack would settle it)
            self.broker.reject(delivery, requeue=True)
            return
        self._hold_ack(delivery)

    def _hold_ack(self, delivery: AsyncDelivery) -> None:
        """Ack ``delivery`` within :data:`ACK_HOLD_SECONDS` (or at the
        :data:`ACK_HOLD_MAX`-th held one), with everything before it in one ``multiple``
        ack. Acking each loop iteration's messages at once cost a send(2) and two epoll
        changes for every heartbeat or two; what a crash leaves unacked comes again, and
        every report and result is applied idempotently."""
        self._held, self._holding = delivery, self._holding + 1
        if self._holding >= ACK_HOLD_MAX:
            self._release_acks()
        elif self._ack_timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # fed by hand (tests), no loop
                self._release_acks()
                return
            self._ack_timer = loop.call_later(ACK_HOLD_SECONDS, self._release_acks)

    def _release_acks(self) -> None:
        if self._ack_timer is not None:
            self._ack_timer.cancel()
            self._ack_timer = None
        held, self._held, self._holding = self._held, None, 0
        if held is not None:
            self.broker.ack(held)

    def handle(self, routing_key: str, body: bytes, user_id: str | None) -> None:
        """Apply one message to the store (the routing key says what it is, ``user_id`` who
        published it: the node it speaks for, or a gateway for an expired command)."""
        now = time.time()
        if routing_key == self.gateway_id:
            result = CommandResult.model_validate_json(body)
            if not self._from_node(result.node, user_id, routing_key):
                return
            self._result(result)
        elif not routing_key.startswith("node."):  # dead-lettered: expired in a queue
            if user_id != self.broker.user_id:
                self._forged(routing_key, user_id, "an expired command no gateway sent")
                return
            self._expired(CommandEnvelope.model_validate_json(body), now)
        elif ".container." not in routing_key and routing_key.endswith(".heartbeat"):
            beat = Heartbeat.model_validate_json(body)
            if self._from_node(beat.node, user_id, routing_key):
                self.store.heartbeat(beat, now)
                self._declare_queues(beat.node)
                self.on_seen(beat.node, now)
        elif ".container." not in routing_key and routing_key.endswith(".snapshot"):
            snapshot = Snapshot.model_validate_json(body)
            if self._from_node(snapshot.node, user_id, routing_key):
                self.store.snapshot(snapshot, now)
        else:
            event = NodeEvent.model_validate_json(body)
            if self._from_node(event.node, user_id, routing_key) \
                    and self.store.node_event(event):
                self.events[event.type] += 1
                self.on_event()

    def _result(self, result: CommandResult) -> None:
        command_id, document = str(result.command_id), result_document(result)
        if self.take_unstored(command_id, result.node, document):
            return  # a read's answer: for its waiter only
        if self.records.record_result(result) is not None:
            self.on_result(command_id, result.node, document)
        elif self.records.shared and self.watching(command_id):
            # another gateway recorded it first: a request here waits for what it stored
            stored = self.records.command(command_id)
            if stored is not None and result.node in stored.results:
                self.on_result(command_id, result.node, stored.results[result.node])

    def _expired(self, envelope: CommandEnvelope, now: float) -> None:
        if self.take_unstored(str(envelope.id), envelope.node, expired_document(now)):
            return  # a read that waited too long in the node's queue
        row = self.records.command(str(envelope.id))
        if row is None:
            return  # another gateway's command
        nodes = row.expected if envelope.node == "*" else [envelope.node]
        for node in nodes:
            expired = self.records.record_expired(str(envelope.id), node)
            if expired is not None:
                self.on_result(str(envelope.id), node, expired)

    def _from_node(self, node: str, user_id: str | None, routing_key: str) -> bool:
        """Whether ``node``'s message came from ``node``'s own account (and, for a report,
        under its own routing key); counts and logs it when not."""
        if user_id != topology.node_user(node):
            self._forged(routing_key, user_id, f"a message for node {node}")
        elif routing_key.startswith("node.") and not routing_key.startswith(f"node.{node}."):
            self._forged(routing_key, user_id, f"a report of node {node}")
        else:
            return True
        return False

    def _forged(self, routing_key: str, user_id: str | None, what: str) -> None:
        self.dropped["forged"] += 1
        log.warning("dropped %s from account %r (%s): only that node's own account may send it",
                    what, user_id, routing_key)

    def _declare_queues(self, node: str) -> None:
        """Declare ``node``'s command and broadcast queues once per connection (a node's
        account cannot; the node waits for them). One task declares the nodes waiting, one
        after another: a thousand nodes' first heartbeats each starting their own would put
        thousands of RPCs on the channel at once, the last of them timing out while they
        waited their turn, and each failure was tried again at the next heartbeat."""
        if node in self._declared:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # fed by hand (tests), no broker
        self._declared.add(node)
        self._declaring[node] = loop.create_future()
        self._to_declare.append(node)
        if self._declarer is None or self._declarer.done():
            self._declarer = loop.create_task(self._declare_waiting())

    async def _declare_waiting(self) -> None:
        while self._to_declare:
            node = self._to_declare.popleft()
            try:
                await self.broker.declare(node_queue_declarations(node))
            except Exception as exc:  # the next heartbeat tries again
                self._declared.discard(node)
                log.warning("declaring node %s's queues failed: %r", node, exc)
            finally:
                done = self._declaring.pop(node, None)
                if done is not None and not done.done():
                    done.set_result(None)
