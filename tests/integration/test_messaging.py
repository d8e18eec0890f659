"""wharf.messaging against the real RabbitMQ, one vhost per test (created and deleted here)."""

from __future__ import annotations

import threading
import time

import pytest

from tests.integration.conftest import rabbitmqctl
from wharf import topology
from wharf.errors import Unavailable
from wharf.messaging import Broker, Delivery, declare_node_queues

pytestmark = pytest.mark.integration


def test_command_round_trip_with_confirms(amqp_url: str) -> None:
    broker = Broker(amqp_url)
    try:
        queue = declare_node_queues(broker.channel, "node-1")
        broker.publish(topology.COMMANDS_EXCHANGE, "node-1", b'{"n":1}', correlation_id="c1",
                       reply_to="gw-1", expiration_ms=60_000)
        got: list[Delivery] = []
        assert broker.consume(queue, lambda d: got.append(d) or True, max_messages=1) == 1
        assert (got[0].body, got[0].correlation_id, got[0].reply_to) == (b'{"n":1}', "c1", "gw-1")
        assert broker.channel.queue_declare(queue, passive=True).method.message_count == 0
    finally:
        broker.close()


def test_a_command_for_an_unknown_node_is_refused_at_once(amqp_url: str) -> None:
    broker = Broker(amqp_url)
    try:
        with pytest.raises(Unavailable, match="no queue takes"):
            broker.publish(topology.COMMANDS_EXCHANGE, "nobody", b"{}")
    finally:
        broker.close()


def test_expired_and_rejected_commands_are_dead_lettered(amqp_url: str) -> None:
    broker = Broker(amqp_url)
    try:
        queue = declare_node_queues(broker.channel, "node-2")
        broker.publish(topology.COMMANDS_EXCHANGE, "node-2", b"late", expiration_ms=1)
        broker.publish(topology.COMMANDS_EXCHANGE, "node-2", b"refused", expiration_ms=60_000)
        time.sleep(0.3)
        seen: list[bytes] = []
        broker.consume(queue, lambda d: seen.append(d.body) and False, max_messages=1)
        assert seen == [b"refused"]  # the expired one was never delivered
        dead: list[bytes] = []
        broker.consume(topology.EXPIRED_QUEUE, lambda d: dead.append(d.body) or True,
                       max_messages=2)
        assert sorted(dead) == [b"late", b"refused"]
    finally:
        broker.close()


def test_consumer_reconnects_after_the_broker_drops_it(amqp_url: str) -> None:
    vhost = amqp_url.rsplit("/", 1)[1]
    received: list[bytes] = []
    done = threading.Event()
    consumer = Broker(amqp_url)

    def handle(delivery: Delivery) -> bool:
        received.append(delivery.body)
        if len(received) == 2:
            done.set()
        return True

    thread = threading.Thread(target=consumer.consume_forever, daemon=True, kwargs={
        "queue_for": lambda ch: declare_node_queues(ch, "node-3"), "handler": handle,
        "stop": done.is_set})
    thread.start()
    publisher = Broker(amqp_url)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the consumer declares the queue
            try:
                publisher.publish(topology.COMMANDS_EXCHANGE, "node-3", b"before")
                break
            except Unavailable:
                time.sleep(0.1)
        while len(received) < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        rabbitmqctl("close_all_connections", "-p", vhost, "test: drop everyone")
        time.sleep(0.5)
        publisher.publish(topology.COMMANDS_EXCHANGE, "node-3", b"after")
        assert done.wait(15), received
        assert received == [b"before", b"after"]
    finally:
        done.set()
        thread.join(10)
        publisher.close()
        consumer.close()
