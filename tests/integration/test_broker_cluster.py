"""A RabbitMQ cluster of three brokers (infra/brokers.sh) under a real gateway and a real node:
the broker that leads the node's command queue stops while commands flow, and every command
still runs exactly once.

The brokers are the test's own (node names ``wharf-mqt<i>``, ports 5711 to 5713, data under the
test's temporary directory), so a developer's ``infra/brokers.sh up`` is left alone; they are
stopped and their data deleted at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.daemon_fixture import Daemon, running_daemon
from tests.integration.conftest import SeededRegistry
from tests.integration.gateway_fixture import nodes, running_gateway, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
PREFIX, PORT = "wharf-mqt", 5710
COMMANDS = 40


@dataclass
class Brokers:
    env: dict[str, str]
    base: Path

    def script(self, *args: str) -> str:
        done = subprocess.run(["bash", str(REPO / "infra" / "brokers.sh"), *args],
                              capture_output=True, text=True, env=self.env, timeout=300,
                              check=False)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    def url(self, name: str, file: Path) -> str:
        lines = file.read_text().splitlines()
        return next(line.split("=", 1)[1] for line in lines if line.startswith(name + "="))

    def leader(self, queue: str) -> str:
        """The broker that leads ``queue`` (a quorum queue), asked of any running one."""
        for i in (1, 2, 3):
            done = subprocess.run(
                ["rabbitmqctl", "-n", f"{PREFIX}{i}@localhost", "-q", "list_queues", "-p",
                 self.env["WHARF_AMQP_VHOST"], "name", "type", "leader", "--formatter", "json"],
                capture_output=True, text=True, timeout=60, check=False)
            if done.returncode == 0:
                rows = {row["name"]: row for row in json.loads(done.stdout or "[]")}
                assert rows[queue]["type"] == "quorum"
                return str(rows[queue]["leader"])
        raise AssertionError("no broker answers")


@pytest.fixture(scope="module")
def brokers() -> Iterator[Brokers]:
    # not under pytest's 0700 temporary root: the brokers run as the rabbitmq user
    base = Path(tempfile.mkdtemp(prefix="wharf-brokers-test.", dir="/var/tmp"))
    base.chmod(0o755)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("WHARF_")},
           "WHARF_BROKERS_PREFIX": PREFIX, "WHARF_BROKERS_PORT": str(PORT),
           "WHARF_BROKERS_BASE": str(base / "data"), "WHARF_BROKERS_ENV": str(base / "env"),
           "WHARF_AMQP_VHOST": f"wharf-test-{uuid.uuid4().hex[:8]}"}
    made = Brokers(env, base)
    try:
        made.script("up", "3")
        yield made
    finally:
        made.script("down")
        shutil.rmtree(base, ignore_errors=True)


@dataclass
class Flow:
    """Creates containers ``fo-<i>`` on ``node`` through the gateway, one after another, each
    with its Idempotency-Key, retrying an unanswered or failed request with the same key."""

    client: httpx.Client
    node: str
    answers: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    sent: int = 0
    last: str = ""  # the last failed answer

    def run(self) -> None:
        for i in range(COMMANDS):
            name = f"fo-{i}"
            deadline = time.monotonic() + 90
            while True:
                try:
                    answer = self.client.post(
                        f"/v1/nodes/{self.node}/containers/create",
                        params={"name": name, "wait": "true"},
                        json={"Image": "busybox", "Cmd": ["true"]},
                        headers={"Idempotency-Key": name}, timeout=30)
                    if answer.status_code < 500:
                        self.answers[name] = answer.status_code
                        break
                    self.last = f"{answer.status_code} {answer.text[:300]}"
                except httpx.HTTPError as exc:
                    self.last = repr(exc)
                self.retries += 1
                assert time.monotonic() < deadline, f"{name}: no answer in 90 s: {self.last}"
                time.sleep(0.2)
            self.sent += 1


def _names(daemon: Daemon) -> list[str]:
    status, body = daemon.request("GET", "/containers/json?all=1")
    assert status == 200
    return sorted(n.lstrip("/") for c in json.loads(body) for n in c["Names"])


@pytest.mark.parametrize(("failure", "node"), [("stop", "n1"), ("kill", "n2")])
def test_the_leader_of_a_command_queue_stops_and_every_command_runs_once(
        brokers: Brokers, seeded_registry: SeededRegistry, tmp_path: Path, failure: str,
        node: str) -> None:
    brokers.script("node", node, str(tmp_path / "node.env"))
    node_url = brokers.url("WHARF_AMQP_URL", tmp_path / "node.env")
    assert node_url.count(",") == 2  # one URL per broker
    gateway_url = brokers.url("WHARF_GATEWAY_AMQP_URL", brokers.base / "env")
    env = {"WHARF_AMQP_URL": node_url, "WHARF_NODE_NAME": node,
           "WHARF_HEARTBEAT_INTERVAL": "0.5", "WHARF_SNAPSHOT_INTERVAL": "2"}
    with running_gateway(tmp_path / "gateway", gateway_url) as gateway, \
            running_daemon(tmp_path / node, mirrors=[seeded_registry.registry.url],
                           env=env) as daemon, gateway.client() as client:
        try:
            _flow_through_a_failover(brokers, Failover(failure, node), daemon, client)
        finally:
            for c in json.loads(daemon.request("GET", "/containers/json?all=1")[1]):
                daemon.request("DELETE", f"/containers/{c['Id']}?force=1")


@dataclass(frozen=True)
class Failover:
    failure: str  # infra/brokers.sh's stop (clean) or kill (SIGKILL)
    node: str


def _flow_through_a_failover(brokers: Brokers, failover: Failover, daemon: Daemon,
                             client: httpx.Client) -> None:
    node = failover.node
    wait_for(lambda: nodes(client).get(node, {}).get("Status") == "ready", timeout=30)
    pulled = client.post(f"/v1/nodes/{node}/images/create",
                         params={"fromImage": "busybox", "wait": "true"}, timeout=120)
    assert pulled.status_code == 200, pulled.text
    queue = f"wharf.cmd.{node}"
    leader = brokers.leader(queue)
    flow = Flow(client, node)
    sender = threading.Thread(target=flow.run)
    sender.start()
    wait_for(lambda: flow.sent >= COMMANDS // 4, timeout=60)
    stopped = int(leader.removeprefix(PREFIX).split("@")[0])
    brokers.script(failover.failure, str(stopped))
    sender.join(timeout=240)
    assert not sender.is_alive()
    assert flow.sent == COMMANDS, f"stuck at fo-{flow.sent}: {flow.last}"
    new_leader = brokers.leader(queue)
    print(f"\n{queue}: leader {leader} {failover.failure} after {COMMANDS // 4}+ commands; "
          f"new leader {new_leader}; {flow.retries} retried requests; answers "
          f"{sorted(set(flow.answers.values()))}")
    assert new_leader != leader
    names = [f"fo-{i}" for i in range(COMMANDS)]
    assert flow.answers == dict.fromkeys(names, 201)  # none lost, none refused as a repeat
    assert _names(daemon) == sorted(names)
    assert daemon.created_events() == dict.fromkeys(names, 1)  # each executed once
    wait_for(lambda: client.get("/healthz").json().get("broker") == "connected")
    brokers.script("start", str(stopped))  # it rejoins; the cluster is whole for the next
