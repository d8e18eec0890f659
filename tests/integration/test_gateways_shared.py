"""Two gateways on one PostgreSQL (issue #15's Must-show): 16 clients create containers through
both, each request with its Idempotency-Key; one gateway is killed with SIGKILL while they
flow, and each client whose gateway went retries on the other with the same key. Every command
runs exactly once (counted on the nodes: their containers and their ``create`` events), none is
lost, and a command accepted by one gateway is seen with its result from the other.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.daemon_fixture import Daemon, running_daemon
from tests.integration.conftest import NodeAccount, SeededRegistry
from tests.integration.gateway_fixture import (
    GATEWAY,
    Gateway,
    nodes,
    running_gateway,
    start_gateway,
    stop_gateway,
    wait_for,
)
from tests.integration.pg_fixture import scratch_database

pytestmark = [pytest.mark.integration, pytest.mark.slow]
CLIENTS, EACH = 16, 6
NODES = ("n1", "n2")


@dataclass
class Client:
    """Sends its creates one after another, starting on ``first``; a request that gets no
    answer (connection refused or reset, 5xx) is sent again with the same key, to the other
    gateway once its own is gone."""

    number: int
    urls: list[str]
    token: str
    answers: dict[str, int] = field(default_factory=dict)
    commands: dict[str, str] = field(default_factory=dict)  # name → X-Wharf-Command
    switched: int = 0
    retries: int = 0
    error: str = ""

    def run(self, sent: list[int]) -> None:
        try:
            self._run(sent)
        except Exception as exc:  # the main thread reports it
            self.error = repr(exc)

    def _run(self, sent: list[int]) -> None:
        current = self.number % 2
        headers = {"Authorization": f"Bearer {self.token}"}
        for i in range(EACH):
            name = f"c{self.number:02d}-{i}"
            node = NODES[(self.number + i) % 2]
            deadline = time.monotonic() + 90
            while True:
                try:
                    answer = httpx.post(
                        f"{self.urls[current]}/v1/nodes/{node}/containers/create",
                        params={"name": name, "wait": "true"},
                        json={"Image": "busybox", "Cmd": ["true"],
                              "Labels": {"test": "shared"}},
                        headers={**headers, "Idempotency-Key": name}, timeout=30)
                    if answer.status_code < 500:
                        self.answers[name] = answer.status_code
                        self.commands[name] = answer.headers.get("x-wharf-command", "")
                        break
                except httpx.HTTPError:
                    current, self.switched = 1 - current, self.switched + 1
                self.retries += 1
                assert time.monotonic() < deadline, f"{name}: no answer within 90 s"
                time.sleep(0.1)
            sent.append(1)


@pytest.fixture
def database() -> Iterator[str]:
    with scratch_database() as url:
        yield url


def test_a_gateway_killed_while_16_clients_send_loses_and_repeats_nothing(
        amqp_url: str, node_account: NodeAccount, seeded_registry: SeededRegistry,
        database: str, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"  # one tokens file for both: one token works on either
    daemons: dict[str, Daemon] = {}
    with running_gateway(tmp_path / "gb", amqp_url, gateway_id="gw-b", database_url=database,
                         tokens=tokens, token_name="tester-b") as b, ExitStack() as stack:
        a = start_gateway(tmp_path / "ga", amqp_url, gateway_id="gw-a", database_url=database,
                          tokens=tokens)
        stack.callback(stop_gateway, a)
        for name in NODES:
            env = {"WHARF_AMQP_URL": node_account(name), "WHARF_NODE_NAME": name,
                   "WHARF_HEARTBEAT_INTERVAL": "0.5", "WHARF_SNAPSHOT_INTERVAL": "2"}
            daemons[name] = stack.enter_context(running_daemon(
                tmp_path / name, mirrors=[seeded_registry.registry.url], env=env))
            stack.callback(_remove_all, daemons[name])
        _flow(a, b, daemons)


def _remove_all(daemon: Daemon) -> None:
    for c in json.loads(daemon.request("GET", "/containers/json?all=1")[1]):
        daemon.request("DELETE", f"/containers/{c['Id']}?force=1")


def _flow(a: Gateway, b: Gateway, daemons: dict[str, Daemon]) -> None:
    with a.client() as client_a, b.client(token=a.token) as client_b:
        for client in (client_a, client_b):  # both see both nodes; one token works on both
            wait_for(lambda c=client: len(nodes(c)) == 2 and all(
                n["Status"] == "ready" for n in nodes(c).values()), timeout=30)
        for node in NODES:
            pulled = client_a.post(f"/v1/nodes/{node}/images/create",
                                   params={"fromImage": "busybox", "wait": "true"}, timeout=120)
            assert pulled.status_code == 200, pulled.text
        clients = [Client(i, [a.url, b.url], a.token) for i in range(CLIENTS)]
        sent: list[int] = []
        threads = [threading.Thread(target=c.run, args=(sent,)) for c in clients]
        for thread in threads:
            thread.start()
        wait_for(lambda: len(sent) >= CLIENTS * EACH // 3, timeout=120)
        a.process.send_signal(signal.SIGKILL)
        killed_after = len(sent)
        for thread in threads:
            thread.join(timeout=240)
        assert not any(t.is_alive() for t in threads)
        assert [c.error for c in clients if c.error] == []
        names = sorted(f"c{i:02d}-{j}" for i in range(CLIENTS) for j in range(EACH))
        answers = {n: s for c in clients for n, s in c.answers.items()}
        switched = sum(c.switched > 0 for c in clients)
        print(f"\ngw-a killed after {killed_after} of {len(names)} commands; {switched} clients "
              f"moved to gw-b; {sum(c.retries for c in clients)} retried requests; answers "
              f"{sorted(set(answers.values()))}")
        assert answers == dict.fromkeys(names, 201)  # none lost, none refused as a repeat
        assert switched >= 1
        on_nodes = sorted(n.lstrip("/") for d in daemons.values() for c in json.loads(
            d.request("GET", "/containers/json?all=1")[1]) for n in c["Names"])
        assert on_nodes == names
        created: dict[str, int] = {}
        for daemon in daemons.values():
            for name, count in daemon.created_events().items():
                created[name] = created.get(name, 0) + count
        assert created == dict.fromkeys(names, 1)  # each executed exactly once
        # a command accepted by gw-a (before it died) is seen with its result on gw-b
        commands = {n: c for client in clients for n, c in client.commands.items()}
        for name in names[:: len(names) // 8]:
            seen = client_b.get(f"/v1/commands/{commands[name]}")
            assert seen.status_code == 200 and seen.json()["Status"] == "ok", seen.text


def test_a_token_made_in_the_database_counts_on_every_gateway_until_revoked(
        amqp_url: str, database: str, tmp_path: Path) -> None:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("WHARF_")},
           "WHARF_GATEWAY_DATABASE_URL": database}

    def tokens(*args: str) -> str:
        done = subprocess.run([GATEWAY, "token", *args, "--tokens-file",
                               str(tmp_path / "unused")], env=env, capture_output=True,
                              text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    with running_gateway(tmp_path / "ga", amqp_url, gateway_id="gw-a",
                         database_url=database) as a, \
            running_gateway(tmp_path / "gb", amqp_url, gateway_id="gw-b",
                            database_url=database) as b:
        token = tokens("create", "shared-reader", "--scope", "read")
        for gateway in (a, b):
            with gateway.client(token=token) as client:
                assert wait_for(lambda c=client: c.get("/v1/nodes").status_code == 200,
                                timeout=5)
                refused = client.post("/v1/nodes/n1/containers/x/start")
                assert refused.status_code == 403  # a read token, on either gateway
        assert "shared-reader  read" in tokens("ls")
        tokens("rm", "shared-reader")
        for gateway in (a, b):
            with gateway.client(token=token) as client:
                wait_for(lambda c=client: c.get("/v1/nodes").status_code == 401, timeout=5)
