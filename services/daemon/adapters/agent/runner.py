"""The agent's threads: a command consumer and a reporter (heartbeats, container events,
snapshots), each with its own pika connection (pika is single-threaded per connection). Engine
work runs on the daemon's asyncio loop (``run_coroutine_threadsafe``); a command's result is
journalled before its message is acked.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from pydantic import BaseModel

from wharf import __version__, topology
from wharf.daemon.adapters.agent.handler import CommandHandler
from wharf.daemon.core.events import Event
from wharf.errors import InvalidArgument, WharfError
from wharf.messaging import (
    BlockingChannel,
    Broker,
    Delivery,
    declare_broadcast_queue,
    declare_node_queues,
)
from wharf.protocol import BROADCAST_NODE, Heartbeat, Load, NodeEvent, Snapshot, parse_command

log = logging.getLogger("wharf.agent")
OUTBOX_SIZE = 10_000  # events waiting for the broker; beyond it a snapshot replaces them
SNAPSHOT_TIMEOUT = 30.0


class Agent:
    """Consumes ``wharf.cmd.<node>`` and the broadcast queue; reports heartbeats, container
    events and snapshots, until :meth:`stop`.

    Two threads, each with its own pika connection: ``agent-commands`` runs commands (the
    Engine work itself on the daemon's loop) and ``agent-reports`` publishes what the node
    says about itself. Events reach the reporter through a bounded in-memory queue; when a
    report cannot be published (broker down, queue full), the next snapshot, sent as soon as
    the broker answers again, carries the whole state instead.
    """

    def __init__(self, url: str, node: str, labels: dict[str, str], handler: CommandHandler,
                 loop: asyncio.AbstractEventLoop, load: Callable[[], Load],
                 heartbeat_interval: float, snapshot_interval: float = 30.0) -> None:
        self.url, self.node, self.labels = url, node, labels
        self.handler, self.loop, self.load = handler, loop, load
        self.heartbeat_interval = heartbeat_interval
        self.snapshot_interval = snapshot_interval
        self._stop = threading.Event()
        self._outbox: queue.Queue[NodeEvent] = queue.Queue(maxsize=OUTBOX_SIZE)
        self._resync = threading.Event()
        self._resync.set()  # a snapshot first
        self._threads = [threading.Thread(target=self._consume, name="agent-commands",
                                          daemon=True),
                         threading.Thread(target=self._report, name="agent-reports",
                                          daemon=True)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)

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

    # --- commands ---------------------------------------------------------------------------

    def _consume(self) -> None:
        broker = Broker(self.url)

        def declare(channel: BlockingChannel) -> list[str]:
            self._resync.set()  # a (re)connect: the gateway may have missed events
            return [declare_node_queues(channel, self.node),
                    declare_broadcast_queue(channel, self.node)]

        try:
            broker.consume_forever(declare, lambda d: self._on_command(broker, d),
                                   stop=self._stop.is_set)
        finally:
            broker.close()

    def _on_command(self, broker: Broker, delivery: Delivery) -> bool:
        try:
            envelope = parse_command(delivery.body)
            if envelope.node not in (self.node, BROADCAST_NODE):
                raise InvalidArgument(f"command {envelope.id} is for node {envelope.node!r}, "
                                      f"not {self.node!r}")
        except WharfError as exc:
            log.warning("refused a command: %s", exc)
            return False  # rejected: dead-lettered, not requeued
        future = asyncio.run_coroutine_threadsafe(self.handler.handle(envelope), self.loop)
        result = future.result()
        if envelope.reply_to:
            try:
                broker.publish(topology.RESULTS_EXCHANGE, envelope.reply_to,
                               result.model_dump_json().encode(),
                               correlation_id=envelope.correlation_id or str(envelope.id))
            except WharfError as exc:  # the asker is gone; the journal keeps the result
                log.warning("result of %s not delivered: %s", envelope.id, exc)
        return True

    # --- reports ----------------------------------------------------------------------------

    def _report(self) -> None:
        broker = Broker(self.url)
        beat_seq = 0
        next_beat = next_snapshot = time.monotonic()
        try:
            while not self._stop.is_set():
                wait = max(0.0, min(next_beat, next_snapshot) - time.monotonic())
                try:
                    event = self._outbox.get(timeout=min(wait, 0.5))
                except queue.Empty:
                    event = None
                try:
                    if event is not None:
                        self._publish(broker, topology.event_key(self.node, event.type,
                                                                 event.action), event)
                    now = time.monotonic()
                    if now >= next_beat:
                        next_beat = now + self.heartbeat_interval
                        self._publish(broker, topology.event_key(self.node, "heartbeat"),
                                      self._heartbeat(beat_seq),
                                      expiration_ms=int(self.heartbeat_interval * 3000))
                        beat_seq += 1
                    if self._resync.is_set() or now >= next_snapshot:
                        self._resync.clear()
                        next_snapshot = now + self.snapshot_interval
                        self._publish(broker, topology.event_key(self.node, "snapshot"),
                                      self._snapshot())
                except WharfError as exc:
                    log.warning("report not sent (%s); a snapshot follows once it can", exc)
                    self._resync.set()
                    self._stop.wait(min(self.heartbeat_interval, 1.0))
        finally:
            broker.close()

    def _publish(self, broker: Broker, key: str, message: BaseModel, *,
                 expiration_ms: int | None = None) -> None:
        broker.publish(topology.EVENTS_EXCHANGE, key, message.model_dump_json().encode(),
                       mandatory=False, expiration_ms=expiration_ms)

    def _heartbeat(self, seq: int) -> Heartbeat:
        return Heartbeat(node=self.node, seq=seq, sent_at=datetime.now(UTC),
                         labels=self.labels, load=self.load(), version=__version__)

    def _snapshot(self) -> Snapshot:
        async def take() -> Snapshot:
            return self.handler.snapshot(self.labels)
        return asyncio.run_coroutine_threadsafe(take(), self.loop).result(SNAPSHOT_TIMEOUT)


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
