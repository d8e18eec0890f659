"""The agent's threads: a command consumer and a heartbeat publisher, each with its own pika
connection (pika is single-threaded per connection). Engine work runs on the daemon's asyncio
loop (``run_coroutine_threadsafe``); the result is journalled before the message is acked.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from wharf import __version__, topology
from wharf.daemon.adapters.agent.handler import CommandHandler
from wharf.errors import WharfError
from wharf.messaging import Broker, Delivery, declare_node_queues
from wharf.protocol import Heartbeat, Load, parse_command

log = logging.getLogger("wharf.agent")


class Agent:
    """Consumes ``wharf.cmd.<node>`` and sends heartbeats until :meth:`stop`."""

    def __init__(self, url: str, node: str, labels: dict[str, str], handler: CommandHandler,
                 loop: asyncio.AbstractEventLoop, load: Callable[[], Load],
                 heartbeat_interval: float) -> None:
        self.url, self.node, self.labels = url, node, labels
        self.handler, self.loop, self.load = handler, loop, load
        self.heartbeat_interval = heartbeat_interval
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._consume, name="agent-commands",
                                          daemon=True),
                         threading.Thread(target=self._beat, name="agent-heartbeat",
                                          daemon=True)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)

    def _consume(self) -> None:
        broker = Broker(self.url)
        try:
            broker.consume_forever(lambda ch: declare_node_queues(ch, self.node),
                                   lambda d: self._on_command(broker, d),
                                   stop=self._stop.is_set)
        finally:
            broker.close()

    def _on_command(self, broker: Broker, delivery: Delivery) -> bool:
        try:
            envelope = parse_command(delivery.body)
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

    def _beat(self) -> None:
        broker = Broker(self.url)
        seq = 0
        try:
            while not self._stop.wait(0 if seq == 0 else self.heartbeat_interval):
                beat = Heartbeat(node=self.node, seq=seq, sent_at=datetime.now(UTC),
                                 labels=self.labels, load=self.load(), version=__version__)
                try:
                    broker.publish(topology.EVENTS_EXCHANGE,
                                   topology.event_key(self.node, "heartbeat"),
                                   beat.model_dump_json().encode(), mandatory=False,
                                   expiration_ms=int(self.heartbeat_interval * 3000))
                    seq += 1
                except WharfError as exc:
                    log.warning("heartbeat not sent: %s", exc)
                    seq += 1
        finally:
            broker.close()


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
