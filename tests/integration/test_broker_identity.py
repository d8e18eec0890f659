"""A node owns only itself on the broker (#12, "Nodes and the broker" in docs/security.md).

Two real daemons, each with its own RabbitMQ account made by ``infra/rabbitmq.sh node`` (the
provisioning every setup uses), and a real gateway. With node A's credentials, everything that
would command or impersonate node B is refused by RabbitMQ itself, B runs nothing, and a result
forged in B's name is dropped and counted by the gateway.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.daemon_fixture import Daemon, running_daemon
from tests.integration.conftest import SeededRegistry
from tests.integration.gateway_fixture import (
    Gateway,
    daemon_names,
    nodes,
    running_gateway,
    wait_for,
)
from tests.layout import ROOT
from wharf import topology
from wharf.messaging import Broker
from wharf.protocol import CommandEnvelope, CommandResult, Heartbeat, Load, ResultStatus, RunPayload

pytestmark = [pytest.mark.integration, pytest.mark.slow]
A, B = "idn-a", "idn-b"
LOAD = Load(containers=0, running=0, memory_total=1, memory_available=1, cpus=1, load1=0.0)
EVIL = {"Image": "busybox", "Cmd": ["true"], "HostConfig": {"Privileged": True,
                                                            "Binds": ["/:/host"]}}


@dataclass
class Pair:
    gateway: Gateway
    daemons: dict[str, Daemon]
    urls: dict[str, str]


def _account(node: str, vhost: str, env_file: Path) -> str:
    """Node ``node``'s account as `infra/rabbitmq.sh node` makes it; its URL."""
    env = {**os.environ, "WHARF_AMQP_VHOST": vhost}
    subprocess.run([str(ROOT / "infra" / "rabbitmq.sh"), "node", node, str(env_file)],
                   check=True, capture_output=True, text=True, env=env, timeout=120)
    assert env_file.stat().st_mode & 0o777 == 0o600
    line = next(x for x in env_file.read_text().splitlines() if x.startswith("WHARF_AMQP_URL="))
    return line.split("=", 1)[1]


@pytest.fixture
def pair(amqp_url: str, seeded_registry: SeededRegistry, tmp_path: Path) -> Iterator[Pair]:
    vhost = amqp_url.rsplit("/", 1)[1]
    with ExitStack() as stack:
        for node in (A, B):
            stack.callback(subprocess.run, ["rabbitmqctl", "delete_user",
                                            topology.node_user(node)],
                           capture_output=True, check=False, timeout=60)
        urls = {n: _account(n, vhost, tmp_path / f"{n}.amqp.env") for n in (A, B)}
        gateway = stack.enter_context(running_gateway(tmp_path / "gateway", amqp_url,
                                                      down_after=30))
        daemons = {}
        for node, url in urls.items():
            env = {"WHARF_AMQP_URL": url, "WHARF_NODE_NAME": node,
                   "WHARF_HEARTBEAT_INTERVAL": "0.5", "WHARF_SNAPSHOT_INTERVAL": "2"}
            daemons[node] = stack.enter_context(running_daemon(
                tmp_path / node, mirrors=[seeded_registry.registry.url], env=env))
        with gateway.client() as client:
            wait_for(lambda: all(nodes(client).get(n, {}).get("Status") == "ready"
                                 for n in (A, B)), timeout=30)
            # the gateway declared each node's queues; a read through it shows B consumes
            assert client.get(f"/v1/nodes/{B}/containers/json").status_code == 200
        try:
            yield Pair(gateway, daemons, urls)
        finally:
            for daemon in daemons.values():
                for c in json.loads(daemon.request("GET", "/containers/json?all=1")[1]):
                    daemon.request("DELETE", f"/containers/{c['Id']}?force=1")


def _refused(url: str, action: Callable[[Broker], object], *,
             code: str = "ACCESS_REFUSED") -> None:
    """Run ``action`` on node A's own connection: RabbitMQ closes the channel with ``code``."""
    broker = Broker(url, topology=False)
    try:
        with pytest.raises(Exception) as refused:
            action(broker)
            broker.channel.basic_qos(prefetch_count=1)  # a refusal closes the channel
        said = f"{refused.value!r} {refused.value.__cause__!r}"
        assert code in said, said
    finally:
        broker.close()


def _command() -> bytes:
    return CommandEnvelope.new(B, RunPayload(create=EVIL, name="evil")).model_dump_json().encode()


def _beat() -> bytes:
    return Heartbeat(node=B, seq=1, sent_at=datetime.now(UTC), load=LOAD,
                     version="0.1.0").model_dump_json().encode()


def test_one_nodes_account_cannot_command_or_impersonate_another(pair: Pair) -> None:
    url = pair.urls[A]
    command, beat = _command(), _beat()
    # a command to B, through the commands or broadcast exchange, or straight to B's queue
    _refused(url, lambda b: b.publish(topology.COMMANDS_EXCHANGE, B, command))
    _refused(url, lambda b: b.publish("", topology.command_queue(B), command))
    _refused(url, lambda b: b.publish(topology.BROADCAST_EXCHANGE, "", command))
    # binding a queue to the commands exchange, declaring one, reading B's commands
    _refused(url, lambda b: b.channel.queue_bind(topology.command_queue(A),
                                                 topology.COMMANDS_EXCHANGE, routing_key=B))
    _refused(url, lambda b: b.channel.queue_declare("mine", durable=True))
    _refused(url, lambda b: b.channel.basic_get(topology.command_queue(B)))
    # a heartbeat in B's name: refused by the topic permission on wharf.events
    _refused(url, lambda b: b.publish(topology.EVENTS_EXCHANGE,
                                      topology.event_key(B, "heartbeat"), beat, mandatory=False))
    # a message claiming to come from B's account: RabbitMQ checks user_id against the login
    _refused(url, lambda b: b.publish(topology.EVENTS_EXCHANGE,
                                      topology.event_key(A, "heartbeat"), beat, mandatory=False,
                                      user_id=topology.node_user(B)), code="PRECONDITION_FAILED")
    time.sleep(1)  # what would have reached B has had time to run
    assert daemon_names(pair.daemons[B].request) == []
    # A's own rights still work: its heartbeats keep it ready
    with pair.gateway.client() as client:
        assert nodes(client)[A]["Status"] == "ready"


def test_a_result_forged_in_another_nodes_name_is_dropped_and_counted(pair: Pair) -> None:
    b = pair.daemons[B]
    with pair.gateway.client() as client:
        pulled = client.post(f"/v1/nodes/{B}/images/create?fromImage=busybox&tag=latest")
        assert pulled.status_code == 200, pulled.text
        before = client.get("/v1/info").json()["DroppedMessages"]["Forged"]
        b.process.send_signal(signal.SIGSTOP)  # B takes the command only when it resumes
        try:
            answer = client.post(f"/v1/nodes/{B}/containers/create?name=real",
                                 json={"Image": "busybox", "Cmd": ["true"]})
            assert answer.status_code == 202, answer.text
            command_id = answer.json()["Id"]
            forged = CommandResult(command_id=command_id, node=B, status=ResultStatus.OK,
                                   result={"Id": "0" * 64, "Warnings": []})
            broker = Broker(pair.urls[A], topology=False)  # A may publish results: its own
            try:
                broker.publish(topology.RESULTS_EXCHANGE, "gw-test",
                               forged.model_dump_json().encode())
            finally:
                broker.close()
            wait_for(lambda: client.get("/v1/info").json()["DroppedMessages"]["Forged"]
                     == before + 1)
            assert client.get(f"/v1/commands/{command_id}").json()["Status"] == "pending"
        finally:
            b.process.send_signal(signal.SIGCONT)
        done = wait_for(lambda: (d := client.get(f"/v1/commands/{command_id}").json())
                        ["Status"] != "pending" and d, timeout=30)
        assert done["Status"] == "ok" and done["Result"]["Id"] != "0" * 64
    assert daemon_names(b.request) == ["real"]
    assert "dropped a message for node idn-b from account 'wharf-node-idn-a'" in \
        pair.gateway.log_text()
