"""wharf.messaging.AsyncBroker against the real RabbitMQ, one vhost per test."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.integration.conftest import rabbitmqctl
from wharf import topology
from wharf.errors import MaybeSent, Unavailable
from wharf.messaging import AsyncBroker, AsyncDelivery, node_queue_declarations

pytestmark = pytest.mark.integration


def consumer(url: str, node: str, got: list[AsyncDelivery],
             ack: bool = True) -> AsyncBroker:
    async def setup(broker: AsyncBroker) -> list[str]:
        await broker.declare(node_queue_declarations(node))
        return [topology.command_queue(node)]

    def on_message(delivery: AsyncDelivery) -> None:
        got.append(delivery)
        if ack:
            broker.ack(delivery)

    broker = AsyncBroker(url, setup=setup, on_message=on_message)
    return broker


async def until(check: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def test_confirmed_publishes_in_flight_together_and_consumed_in_order(amqp_url: str) -> None:
    async def main() -> None:
        got: list[AsyncDelivery] = []
        sub = consumer(amqp_url, "a1", got)
        pub = AsyncBroker(amqp_url)
        sub.start()
        pub.start()
        try:
            await asyncio.wait_for(sub.connected.wait(), 10)
            await asyncio.gather(*(pub.publish(topology.COMMANDS_EXCHANGE, "a1",
                                               str(i).encode(), correlation_id=f"c{i}",
                                               reply_to="gw", expiration_ms=60_000)
                                   for i in range(200)))
            await until(lambda: len(got) == 200)
            assert sorted(int(d.body) for d in got) == list(range(200))
            assert (got[0].correlation_id, got[0].reply_to) == ("c0", "gw")
        finally:
            await pub.close()
            await sub.close()
    asyncio.run(main())


def test_unroutable_is_refused_and_no_broker_is_unavailable(amqp_url: str) -> None:
    async def main() -> None:
        pub = AsyncBroker(amqp_url)
        pub.start()
        try:
            with pytest.raises(Unavailable, match="no queue takes") as refused:
                await pub.publish(topology.COMMANDS_EXCHANGE, "nobody", b"{}")
            assert not isinstance(refused.value, MaybeSent)  # it is nowhere: not to resend
            # the channel is still good afterwards
            with pytest.raises(Unavailable, match="no queue takes"):
                await pub.publish(topology.COMMANDS_EXCHANGE, "nobody-2", b"{}")
        finally:
            await pub.close()
        down = AsyncBroker("amqp://guest:guest@127.0.0.1:1/", connect_wait=0.5)
        down.start()
        try:
            with pytest.raises(Unavailable, match="unavailable") as unreached:
                await down.publish(topology.COMMANDS_EXCHANGE, "x", b"{}")
            assert not isinstance(unreached.value, MaybeSent)
        finally:
            await down.close()
    asyncio.run(main())


def test_reconnects_redeclares_and_redelivers_after_the_broker_drops_it(amqp_url: str
                                                                         ) -> None:
    vhost = amqp_url.rsplit("/", 1)[1]

    async def main() -> None:
        got: list[AsyncDelivery] = []
        sub = consumer(amqp_url, "a3", got, ack=False)  # unacked: redelivered after the drop
        pub = AsyncBroker(amqp_url)
        sub.start()
        pub.start()
        try:
            await asyncio.wait_for(sub.connected.wait(), 10)
            await pub.publish(topology.COMMANDS_EXCHANGE, "a3", b"before")
            await until(lambda: len(got) == 1)
            await asyncio.to_thread(rabbitmqctl, "close_all_connections", "-p", vhost,
                                    "test: drop everyone")
            await until(lambda: not sub.is_current(got[0]))
            await pub.publish(topology.COMMANDS_EXCHANGE, "a3", b"after")  # reconnects
            await until(lambda: [d.body for d in got].count(b"after") == 1)
            assert got[1].body == b"before" and got[1].redelivered
            for delivery in got[1:]:
                sub.ack(delivery)
            sub.ack(got[0])  # a stale delivery: ignored, not an error
        finally:
            await pub.close()
            await sub.close()
    asyncio.run(main())


def test_in_order_acks_go_out_together_and_settle_every_delivery(amqp_url: str) -> None:
    async def main() -> None:
        got: list[AsyncDelivery] = []
        sub = consumer(amqp_url, "a4", got)
        sub.in_order_acks = True
        pub = AsyncBroker(amqp_url)
        sub.start()
        pub.start()
        try:
            await asyncio.wait_for(sub.connected.wait(), 10)
            await asyncio.gather(*(pub.publish(topology.COMMANDS_EXCHANGE, "a4",
                                               str(i).encode()) for i in range(50)))
            await until(lambda: len(got) == 50)
            await asyncio.sleep(0.2)  # the last multiple ack goes out
        finally:
            await sub.close()
        again: list[AsyncDelivery] = []
        second = consumer(amqp_url, "a4", again)
        second.start()
        try:
            await asyncio.wait_for(second.connected.wait(), 10)
            await asyncio.sleep(0.5)
            assert again == []  # nothing was left unacked to come back
        finally:
            await second.close()
            await pub.close()
    asyncio.run(main())


def test_a_channel_the_broker_closes_is_replaced(amqp_url: str) -> None:
    async def main() -> None:
        got: list[AsyncDelivery] = []
        sub = consumer(amqp_url, "a5", got)
        pub = AsyncBroker(amqp_url)
        sub.start()
        pub.start()
        try:
            await asyncio.wait_for(sub.connected.wait(), 10)
            # a publish to an exchange that does not exist: the broker closes the channel
            with pytest.raises(Unavailable):
                await asyncio.wait_for(pub.publish("no-such-exchange", "x", b"{}"), 20)
            await asyncio.wait_for(pub.publish(topology.COMMANDS_EXCHANGE, "a5", b"ok"), 20)
            await until(lambda: [d.body for d in got] == [b"ok"])
        finally:
            await pub.close()
            await sub.close()
    asyncio.run(main())


def test_messages_waiting_before_the_consumer_starts_are_current_and_acked(
        amqp_url: str) -> None:
    # Waiting messages arrive in the same read as ConsumeOk, before the connect coroutine
    # resumes: they must count as current (the agent drops deliveries that are not) and
    # their acks must reach the broker, or they sit unacked until the channel closes.
    async def main() -> None:
        first: list[AsyncDelivery] = []
        declare = consumer(amqp_url, "w1", first, ack=False)
        declare.start()
        await asyncio.wait_for(declare.connected.wait(), 10)
        await declare.close()  # the queue exists; nobody consumes it now
        pub = AsyncBroker(amqp_url)
        pub.start()
        try:
            for i in range(20):
                await pub.publish(topology.COMMANDS_EXCHANGE, "w1", str(i).encode())
        finally:
            await pub.close()
        got: list[AsyncDelivery] = []
        current: list[bool] = []
        sub = AsyncBroker(amqp_url, setup=lambda b: _queues(b, "w1"))

        def on_message(delivery: AsyncDelivery) -> None:
            got.append(delivery)
            current.append(sub.is_current(delivery))
            sub.ack(delivery)
        sub.on_message = on_message
        sub.start()
        try:
            await until(lambda: len(got) == 20)
            assert all(current), current
        finally:
            await sub.close()
        again: list[AsyncDelivery] = []
        check = consumer(amqp_url, "w1", again)
        check.start()
        try:
            await asyncio.wait_for(check.connected.wait(), 10)
            await asyncio.sleep(0.5)
            assert again == []  # every one was acked: none comes back
        finally:
            await check.close()
    asyncio.run(main())


async def _queues(broker: AsyncBroker, node: str) -> list[str]:
    await broker.declare(node_queue_declarations(node))
    return [topology.command_queue(node)]


def test_a_resting_socket_reads_what_came_in_one_go_and_read_now_wakes_it(
        amqp_url: str) -> None:
    """wharf.amqp_connection: with read_pause, messages sent one by one are read in batches
    (fewer socket reads than messages), nothing is lost, and read_now reads at once."""

    async def main() -> None:
        got: list[AsyncDelivery] = []
        sub = consumer(amqp_url, "p1", got)
        pause = [0.05]
        sub.read_pause = lambda: pause[0]
        pub = AsyncBroker(amqp_url)
        sub.start()
        pub.start()
        try:
            await asyncio.wait_for(sub.connected.wait(), 10)
            connection = sub._connection
            reads = 0
            fd, pika_reads = connection._wharf_reader  # what runs on each read of the socket

            def counted() -> None:
                nonlocal reads
                reads += 1
                pika_reads()
            connection._wharf_reader = (fd, counted)
            for i in range(100):  # one at a time, 2 ms apart: 0.2 s of messages
                await pub.publish(topology.COMMANDS_EXCHANGE, "p1", str(i).encode(),
                                  expiration_ms=60_000)
                await asyncio.sleep(0.002)
            await until(lambda: len(got) == 100)
            assert sorted(int(d.body) for d in got) == list(range(100))
            assert reads < 40, reads  # resting 50 ms after each read: a few reads, not 100
            pause[0] = 10.0  # the next read starts a long rest: only read_now ends it
            await pub.publish(topology.COMMANDS_EXCHANGE, "p1", b"rest", expiration_ms=60_000)
            await until(lambda: len(got) == 101)
            await pub.publish(topology.COMMANDS_EXCHANGE, "p1", b"late", expiration_ms=60_000)
            await asyncio.sleep(0.3)
            assert len(got) == 101  # resting
            sub.read_now()
            await until(lambda: len(got) == 102, timeout=2)
            assert got[-1].body == b"late"
        finally:
            await pub.close()
            await sub.close()
    asyncio.run(main())
