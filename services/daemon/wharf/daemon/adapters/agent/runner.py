"""The agent: a command consumer on the daemon's asyncio loop, a reporter thread (container
events, snapshots) and a heartbeat thread, each with its own pika connection.

Commands run one at a time, in the order the node's queue gives them, on the loop the Engine
lives on (no thread hop). A command's result is journalled, then published; the command's
message is acked once the broker confirmed the result, and the next command starts without
waiting for that confirm. A crash between the two leaves the message unacked: it comes again and
the journal answers with the recorded result instead of running it twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from pydantic import BaseModel

from wharf import topology
from wharf.daemon.adapters.agent.handler import CommandHandler
from wharf.daemon.core.events import Event
from wharf.errors import Internal, InvalidArgument, WharfError
from wharf.messaging import (
    AsyncBroker,
    AsyncDelivery,
    Broker,
    login,
    node_queue_declarations,
    passive,
)
from wharf.protocol import (
    BROADCAST_NODE,
    CommandEnvelope,
    CommandResult,
    Heartbeat,
    Load,
    NodeEvent,
    Snapshot,
    parse_command,
)
from wharf.version import __version__

log = logging.getLogger("wharf.agent")
OUTBOX_SIZE = 10_000  # events waiting for the broker; beyond it a snapshot replaces them
PREFETCH = 100  # commands delivered ahead; also bounds results waiting for their confirm
JOURNAL_PRUNE_SECONDS = 600.0
SLOW_CONFIRM = 2.0  # seconds a report's confirm may take before the log says so


class Agent:
    """Consumes ``wharf.cmd.<node>`` and the broadcast queue; reports heartbeats, container
    events and snapshots, until :meth:`stop`.

    The commands run on the daemon's loop (an :class:`~wharf.messaging.AsyncBroker` and one
    worker task); the reports on the ``agent-reports`` thread with its own pika connection.
    Events and snapshots reach the reporter through a bounded in-memory queue, in the order the
    loop made them; when a report cannot be published (broker down, queue full), the next
    snapshot, sent as soon as the broker answers again, carries the whole state instead.

    Heartbeats have their own thread and connection, without confirms, and never wait for the
    loop: a heartbeat says the process and its broker connection are alive, with the load the
    loop last sampled, even while the loop is busy or a report waits for its confirm.
    """

    def __init__(self, url: str, node: str, labels: dict[str, str], handler: CommandHandler,
                 loop: asyncio.AbstractEventLoop, load: Callable[[], Load],
                 heartbeat_interval: float, snapshot_interval: float = 30.0,
                 journal_keep: tuple[float, int] = (86400.0, 10_000),
                 address: str = "") -> None:
        self.url, self.node, self.labels = url, node, labels
        self.address = address  # advertised in heartbeats: where the gateway relays streams
        self.handler, self.loop, self.load = handler, loop, load
        self.heartbeat_interval = heartbeat_interval
        self.snapshot_interval = snapshot_interval
        self.journal_keep = journal_keep
        self._stop = threading.Event()
        self._outbox: queue.Queue[NodeEvent | Snapshot] = queue.Queue(maxsize=OUTBOX_SIZE)
        self._resync = threading.Event()
        self._resync.set()  # a snapshot first
        self._snapshot_asked = threading.Event()  # the loop owes the reporter a snapshot
        self._load: Load | None = None  # sampled on the loop, read by the reporter
        self._reporter = threading.Thread(target=self._report, name="agent-reports",
                                          daemon=True)
        self._beater = threading.Thread(target=self._beat, name="agent-heartbeats",
                                        daemon=True)
        self._inbox: asyncio.Queue[AsyncDelivery] = asyncio.Queue()
        # A node's account may configure nothing: the gateway declares the node's queues when
        # its first heartbeat arrives, and until then the check below fails and is retried.
        self._commands = AsyncBroker(url, prefetch=PREFETCH, setup=self._declare,
                                     on_message=self._inbox.put_nowait, topology=False,
                                     backoff_max=1.0)
        self._replies: set[asyncio.Task[None]] = set()
        self._worker: asyncio.Task[None] | None = None
        self._pruner: asyncio.Task[None] | None = None
        self._busy = False

    def start(self) -> None:
        """Start consuming and reporting (call it on the daemon's loop)."""
        if login(self.url) != topology.node_user(self.node):
            log.error("the RabbitMQ account %r is not node %s's (%s): gateways drop what this "
                      "node reports (`make rabbitmq` or infra/rabbitmq.sh node %s makes it)",
                      login(self.url), self.node, topology.node_user(self.node), self.node)
        self._load = self.load()
        self._beater.start()
        self._reporter.start()
        self._commands.start()
        self._worker = self.loop.create_task(self._run_commands(), name="agent-commands")
        self._pruner = self.loop.create_task(self._prune_journal(), name="agent-journal")

    async def stop(self) -> None:
        """Stop taking commands (the one running may finish, within 5 s), then disconnect."""
        self._stop.set()
        if self._pruner is not None:
            self._pruner.cancel()
        if self._worker is not None:
            if self._busy:
                await asyncio.wait({self._worker}, timeout=5)
            self._worker.cancel()
        await asyncio.gather(*self._replies, return_exceptions=True)
        await self._commands.close()
        await asyncio.to_thread(self._reporter.join, 5)
        await asyncio.to_thread(self._beater.join, 5)

    def on_event(self, event: Event) -> None:
        """EventLog listener, called on the daemon's loop right after an event is stored."""
        container = self.handler.summary_of(event.actor_id) if event.type == "container" \
            else None
        message = NodeEvent(node=self.node, seq=event.seq, type=event.type,
                            action=event.action, actor_id=event.actor_id,
                            attributes=event.attributes, time_nano=event.time_nano,
                            engine_id=self.handler.engine.daemon_id, container=container)
        try:
            self._outbox.put_nowait(message)
        except queue.Full:
            self._resync.set()

    def _sample_load(self) -> None:
        """On the loop: the load the next heartbeats carry."""
        try:
            self._load = self.load()
        except Exception:  # a heartbeat with an older figure beats none
            log.exception("sampling the node's load failed")

    def _queue_snapshot(self) -> None:
        """On the loop: put a snapshot in the outbox, after the events it already reflects."""
        try:
            snapshot = self.handler.snapshot(self.labels)
        except Exception:
            log.exception("taking a snapshot failed")
            self._snapshot_asked.clear()
            self._resync.set()
            return
        while True:
            try:
                self._outbox.put_nowait(snapshot)
                return
            except queue.Full:  # the snapshot carries all the state those events told
                with contextlib.suppress(queue.Empty):
                    self._outbox.get_nowait()

    # --- commands ---------------------------------------------------------------------------

    async def _prune_journal(self) -> None:
        keep_seconds, keep = self.journal_keep
        while True:
            try:
                gone = self.handler.journal.prune(keep_seconds, keep)
                if gone:
                    log.info("command journal: %d old entries pruned", gone)
            except WharfError as exc:
                log.warning("command journal not pruned: %s", exc)
            await asyncio.sleep(JOURNAL_PRUNE_SECONDS)

    async def _declare(self, broker: AsyncBroker) -> list[str]:
        self._resync.set()  # a (re)connect: the gateway may have missed events
        await broker.declare(passive(node_queue_declarations(self.node)))
        return [topology.command_queue(self.node), topology.broadcast_queue(self.node)]

    async def _run_commands(self) -> None:
        while not self._stop.is_set():
            delivery = await self._inbox.get()
            if not self._commands.is_current(delivery):
                continue  # its channel is gone: the broker delivers it again on the new one
            self._busy = True
            try:
                await self._on_command(delivery)
            finally:
                self._busy = False

    async def _on_command(self, delivery: AsyncDelivery) -> None:
        try:
            envelope = parse_command(delivery.body)
            if envelope.node not in (self.node, BROADCAST_NODE):
                raise InvalidArgument(f"command {envelope.id} is for node {envelope.node!r}, "
                                      f"not {self.node!r}")
        except WharfError as exc:
            log.warning("refused a command: %s", exc)
            self._commands.reject(delivery)  # dead-lettered, not requeued
            return
        try:
            result = await self.handler.handle(envelope)
        except Exception as exc:  # a bug, not the command's fault: answer rather than hang
            log.exception("command %s failed", envelope.id)
            result = self.handler.error_result(envelope, Internal(f"{type(exc).__name__}: "
                                                                  f"{exc}"))
        if not envelope.reply_to:
            self._commands.ack(delivery)
            return
        reply = self.loop.create_task(self._reply(delivery, envelope, result))
        self._replies.add(reply)
        reply.add_done_callback(self._replies.discard)

    async def _reply(self, delivery: AsyncDelivery, envelope: CommandEnvelope,
                     result: CommandResult) -> None:
        assert envelope.reply_to is not None
        try:
            await self._commands.publish(
                topology.RESULTS_EXCHANGE, envelope.reply_to, result.model_dump_json().encode(),
                correlation_id=envelope.correlation_id or str(envelope.id))
        except WharfError as exc:  # the asker is gone; the journal keeps the result
            log.warning("result of %s not delivered: %s", envelope.id, exc)
        self._commands.ack(delivery)  # ignored if the channel went: it comes again

    # --- reports ----------------------------------------------------------------------------

    def _beat(self) -> None:
        """Heartbeats on a loop and a connection of their own: neither the daemon's loop nor
        a report waiting for its confirm may hold them up. A beat not confirmed within two
        intervals gives its connection up for a new one (a connection can stall while
        others flow; seen in the cluster tests)."""
        asyncio.run(self._beat_forever())

    async def _beat_forever(self) -> None:
        broker = AsyncBroker(self.url, connect_wait=self.heartbeat_interval, topology=False)
        broker.start()
        patience = max(2 * self.heartbeat_interval, 1.0)
        seq = 0
        try:
            while not self._stop.is_set():
                beat = self._heartbeat(seq).model_dump_json().encode()
                try:
                    await asyncio.wait_for(broker.publish(
                        topology.EVENTS_EXCHANGE, topology.event_key(self.node, "heartbeat"),
                        beat, mandatory=False,
                        expiration_ms=int(self.heartbeat_interval * 3000)), patience)
                    seq += 1
                except TimeoutError:
                    log.warning("heartbeat not confirmed within %.1fs; reconnecting", patience)
                    broker.reconnect()
                except WharfError as exc:
                    log.warning("heartbeat not sent: %s", exc)
                self.loop.call_soon_threadsafe(self._sample_load)
                await asyncio.to_thread(self._stop.wait, self.heartbeat_interval)
        finally:
            await broker.close()

    def _report(self) -> None:
        broker = Broker(self.url, topology=False)
        next_snapshot = time.monotonic()
        try:
            while not self._stop.is_set():
                wait = max(0.0, next_snapshot - time.monotonic())
                try:
                    item: NodeEvent | Snapshot | None = self._outbox.get(timeout=min(wait, 0.5))
                except queue.Empty:
                    item = None
                try:
                    if item is not None:
                        self._send_report(broker, item)
                    now = time.monotonic()
                    if (self._resync.is_set() or now >= next_snapshot) \
                            and not self._snapshot_asked.is_set():
                        self._resync.clear()
                        next_snapshot = now + self.snapshot_interval
                        self._snapshot_asked.set()
                        self.loop.call_soon_threadsafe(self._queue_snapshot)
                except WharfError as exc:
                    log.warning("report not sent (%s); a snapshot follows once it can", exc)
                    self._resync.set()
                    self._stop.wait(min(self.heartbeat_interval, 1.0))
        finally:
            broker.close()

    def _send_report(self, broker: Broker, item: NodeEvent | Snapshot) -> None:
        started = time.monotonic()
        if isinstance(item, Snapshot):
            self._snapshot_asked.clear()
            self._publish(broker, topology.event_key(self.node, "snapshot"), item)
        else:
            self._publish(broker, topology.event_key(self.node, item.type, item.action), item)
        took = time.monotonic() - started
        if took > SLOW_CONFIRM:
            log.warning("RabbitMQ took %.1fs to confirm a report", took)

    def _publish(self, broker: Broker, key: str, message: BaseModel, *,
                 expiration_ms: int | None = None) -> None:
        broker.publish(topology.EVENTS_EXCHANGE, key, message.model_dump_json().encode(),
                       mandatory=False, expiration_ms=expiration_ms)

    def _heartbeat(self, seq: int) -> Heartbeat:
        assert self._load is not None  # sampled once in start(), before the reporter runs
        return Heartbeat(node=self.node, seq=seq, sent_at=datetime.now(UTC),
                         labels=self.labels, load=self._load, version=__version__,
                         address=self.address)


def host_load(running: Callable[[], int], total: Callable[[], int]) -> Callable[[], Load]:
    """A Load sampler over the container counts and /proc."""
    def sample() -> Load:
        mem_total = mem_available = 0
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                key, _, value = line.partition(":")
                if key == "MemTotal":
                    mem_total = int(value.split()[0]) * 1024
                elif key == "MemAvailable":
                    mem_available = int(value.split()[0]) * 1024
        return Load(containers=total(), running=running(), memory_total=mem_total,
                    memory_available=mem_available, cpus=os.cpu_count() or 1,
                    load1=os.getloadavg()[0])
    return sample
