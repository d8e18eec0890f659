"""wharfd's control-plane agent against the real RabbitMQ and a real daemon."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

import pytest

from tests.daemon_fixture import Daemon, running_daemon
from tests.integration.conftest import NodeAccount, SeededRegistry
from wharf import topology
from wharf.daemon.adapters.agent.runner import Agent
from wharf.messaging import Broker, Delivery, declare_broadcast_queue, declare_node_queues
from wharf.protocol import (
    BROADCAST_NODE,
    CommandEnvelope,
    CommandResult,
    Heartbeat,
    ImagesPayload,
    Load,
    NodeEvent,
    ResultStatus,
    RunPayload,
    Snapshot,
)

pytestmark = pytest.mark.integration
NODE = "agent-node-1"


@pytest.fixture
def agent_daemon(amqp_url: str, node_account: NodeAccount, seeded_registry: SeededRegistry,
                 tmp_path: Path) -> Iterator[Daemon]:
    gateway = Broker(amqp_url)  # the gateway's part: a node may not declare its own queues
    try:
        declare_node_queues(gateway.channel, NODE)
        declare_broadcast_queue(gateway.channel, NODE)
    finally:
        gateway.close()
    env = {"WHARF_AMQP_URL": node_account(NODE), "WHARF_NODE_NAME": NODE,
           "WHARF_NODE_LABELS": '{"zone": "test"}', "WHARF_HEARTBEAT_INTERVAL": "0.5",
           "WHARF_SNAPSHOT_INTERVAL": "1"}
    with running_daemon(tmp_path / "agent", mirrors=[seeded_registry.registry.url],
                        env=env) as daemon:
        assert daemon.request("POST", "/images/create?fromImage=busybox&tag=latest")[0] == 200
        yield daemon
        for record in json.loads(daemon.request("GET", "/containers/json?all=1")[1]):
            daemon.request("DELETE", f"/containers/{record['Id']}?force=1")


def _take(broker: Broker, queue: str, count: int, timeout: float = 15) -> list[Delivery]:
    got: list[Delivery] = []
    deadline = time.monotonic() + timeout
    broker.consume(queue, lambda d: got.append(d) or True, max_messages=count,
                   stop=lambda: time.monotonic() > deadline)
    return got


def test_a_command_runs_once_and_its_result_comes_back(agent_daemon: Daemon,
                                                       amqp_url: str) -> None:
    broker = Broker(amqp_url)
    try:
        results = broker.channel.queue_declare("", exclusive=True).method.queue
        broker.channel.queue_bind(results, topology.RESULTS_EXCHANGE, routing_key="gw-test")
        beats = broker.channel.queue_declare("", exclusive=True).method.queue
        broker.channel.queue_bind(beats, topology.EVENTS_EXCHANGE,
                                  routing_key=topology.event_key(NODE, "heartbeat"))
        heartbeat = Heartbeat.model_validate_json(_take(broker, beats, 1)[0].body)
        assert heartbeat.node == NODE and heartbeat.labels == {"zone": "test"}
        envelope = CommandEnvelope.new(
            NODE, RunPayload(create={"Image": "busybox", "Cmd": ["sleep", "30"]}, name="via-mq"),
            reply_to="gw-test", correlation_id="corr-1")
        body = envelope.model_dump_json().encode()
        deadline = time.monotonic() + 15
        while True:  # the agent consumes once it (re)connected and found its queue
            try:
                broker.publish(topology.COMMANDS_EXCHANGE, NODE, body)
                break
            except Exception:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        broker.publish(topology.COMMANDS_EXCHANGE, NODE, body)  # a redelivery of the same id
        replies = _take(broker, results, 2)
        first, second = (CommandResult.model_validate_json(r.body) for r in replies)
        assert replies[0].correlation_id == "corr-1"
        assert first.status is ResultStatus.OK and second == first
        listed = json.loads(agent_daemon.request("GET", "/containers/json")[1])
        assert [c["Names"] for c in listed] == [["/via-mq"]]  # ran once, and is running
    finally:
        broker.close()


def test_snapshot_events_and_broadcast(agent_daemon: Daemon, amqp_url: str) -> None:
    broker = Broker(amqp_url)
    try:
        reports = broker.channel.queue_declare("", exclusive=True).method.queue
        broker.channel.queue_bind(reports, topology.EVENTS_EXCHANGE,
                                  routing_key=f"node.{NODE}.container.#")
        results = broker.channel.queue_declare("", exclusive=True).method.queue
        broker.channel.queue_bind(results, topology.RESULTS_EXCHANGE, routing_key="gw-bcast")
        agent_daemon.request("POST", "/containers/create?name=seen",
                             json.dumps({"Image": "busybox", "Cmd": ["true"]}).encode(),
                             {"Content-Type": "application/json"})
        create = NodeEvent.model_validate_json(_take(broker, reports, 1)[0].body)
        assert (create.type, create.action, create.node) == ("container", "create", NODE)
        assert create.container is not None and create.container["Names"] == ["/seen"]
        assert create.container["State"] == "created"
        agent_daemon.request("DELETE", "/containers/seen")
        destroy = NodeEvent.model_validate_json(_take(broker, reports, 1)[0].body)
        assert destroy.action == "destroy" and destroy.container is None
        assert destroy.seq > create.seq and destroy.engine_id == create.engine_id != ""
        # a command for every node, on the broadcast exchange
        envelope = CommandEnvelope.new(BROADCAST_NODE, ImagesPayload(), reply_to="gw-bcast")
        broker.publish(topology.BROADCAST_EXCHANGE, "", envelope.model_dump_json().encode())
        result = CommandResult.model_validate_json(_take(broker, results, 1)[0].body)
        assert result.node == NODE and result.status is ResultStatus.OK
        assert any("busybox:latest" in image["RepoTags"] for image in result.result)
    finally:
        broker.close()


def test_a_snapshot_reflects_the_nodes_containers(agent_daemon: Daemon, amqp_url: str,
                                                  ) -> None:
    agent_daemon.request("POST", "/containers/create?name=snap",
                         json.dumps({"Image": "busybox", "Cmd": ["true"]}).encode(),
                         {"Content-Type": "application/json"})
    broker = Broker(amqp_url)
    try:
        snaps = broker.channel.queue_declare("", exclusive=True).method.queue
        broker.channel.queue_bind(snaps, topology.EVENTS_EXCHANGE,
                                  routing_key=topology.event_key(NODE, "snapshot"))
        # WHARF_SNAPSHOT_INTERVAL is 1 s in the fixture
        snapshot = Snapshot.model_validate_json(_take(broker, snaps, 1)[0].body)
        assert [c["Names"] for c in snapshot.containers] == [["/snap"]]
        assert any("busybox:latest" in i["RepoTags"] for i in snapshot.images)
        assert snapshot.seq >= 1 and snapshot.labels == {"zone": "test"}
    finally:
        broker.close()


class _SlowLoopHandler:
    """Just enough of a CommandHandler for the reporter: snapshots of an empty node."""

    def __init__(self, node: str) -> None:
        self.node = node
        self.snapshots = 0

    def snapshot(self, labels: dict[str, str]) -> Snapshot:
        self.snapshots += 1
        return Snapshot(node=self.node, seq=self.snapshots, engine_id="e-slow",
                        taken_at=datetime.now(UTC), labels=labels, containers=[], images=[])


def test_heartbeats_go_on_while_the_daemons_loop_is_busy(amqp_url: str,
                                                        node_account: NodeAccount) -> None:
    # The reporter never waits for the loop: a loop busy for seconds (a long synchronous
    # step) must not make the gateway think the node is down.
    node = "agent-slow-loop"
    loads: list[int] = []

    def load() -> Load:
        loads.append(1)
        return Load(containers=0, running=0, memory_total=1, memory_available=1, cpus=1,
                    load1=0.0)

    broker = Broker(amqp_url)
    loop = asyncio.new_event_loop()
    handler = _SlowLoopHandler(node)
    try:
        beats = broker.channel.queue_declare("", exclusive=True).method.queue
        broker.channel.queue_bind(beats, topology.EVENTS_EXCHANGE,
                                  routing_key=topology.event_key(node, "heartbeat"))
        snaps = broker.channel.queue_declare("", exclusive=True).method.queue
        broker.channel.queue_bind(snaps, topology.EVENTS_EXCHANGE,
                                  routing_key=topology.event_key(node, "snapshot"))

        async def busy_agent() -> None:
            agent = Agent(node_account(node), node, {}, handler, loop,  # type: ignore[arg-type]
                          load,
                          heartbeat_interval=0.2, snapshot_interval=0.5)
            agent.start()
            await asyncio.sleep(0.5)
            time.sleep(3)  # the loop blocked: no snapshot, no load sample can be made now
            await asyncio.sleep(1)
            await agent.stop()

        thread = threading.Thread(target=loop.run_until_complete, args=(busy_agent(),))
        thread.start()
        got = [Heartbeat.model_validate_json(d.body) for d in _take(broker, beats, 1000, 5)]
        thread.join(30)
        assert not thread.is_alive()
        # one beat per 0.2 s all along, the 3 s block included (a beat that waited for the
        # loop would leave a 3 s gap); 1 s of slack for a loaded machine
        assert len(got) >= 10, len(got)
        gaps = [(b.sent_at - a.sent_at).total_seconds() for a, b in pairwise(got)]
        assert max(gaps) < 1.0, gaps
        assert handler.snapshots >= 2 and len(_take(broker, snaps, handler.snapshots, 2)) >= 2
    finally:
        broker.close()
        loop.close()
