"""Tokens, scopes and policy against the real gateway: RabbitMQ (a vhost per test), a real
wharfd as node ``n1``, the gateway as a process, and the ``wharf`` CLI through it.

- a ``read`` token cannot run; an ``operate`` token cannot run ``--privileged``, ``-v /:/host``
  or ``--network host`` (403 naming the rule); an admin token can, and the node runs it;
- an Idempotency-Key is its principal's: two principals, two commands; one principal reusing
  a key for a different request gets 422;
- a command is its principal's: another token gets 404 for it, an admin sees it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.daemon_fixture import Daemon, running_daemon
from tests.integration.conftest import NodeAccount, SeededRegistry
from tests.integration.gateway_fixture import (
    Gateway,
    daemon_names,
    nodes,
    running_gateway,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SLEEPER = {"Image": "busybox", "Cmd": ["sleep", "300"]}
WHARF = str(Path(sys.executable).parent / "wharf")


@dataclass
class OneNode:
    gateway: Gateway
    daemon: Daemon
    base: Path

    def cli(self, token: str, *args: str) -> subprocess.CompletedProcess[str]:
        """``wharf --node n1 ARGS`` through the gateway with ``token``."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("WHARF_")}
        env.update({"WHARF_GATEWAY": self.gateway.url, "WHARF_TOKEN": token,
                    "WHARF_CONFIG": str(self.base / "client")})
        return subprocess.run([WHARF, "--node", "n1", *args], capture_output=True, text=True,
                              env=env, timeout=120, check=False)


@pytest.fixture
def one_node(amqp_url: str, node_account: NodeAccount, seeded_registry: SeededRegistry,
             tmp_path: Path) -> Iterator[OneNode]:
    env = {"WHARF_AMQP_URL": node_account("n1"), "WHARF_NODE_NAME": "n1",
           "WHARF_HEARTBEAT_INTERVAL": "0.5", "WHARF_SNAPSHOT_INTERVAL": "2"}
    with running_gateway(tmp_path / "gateway", amqp_url) as gateway, ExitStack() as stack:
        daemon = stack.enter_context(running_daemon(
            tmp_path / "n1", mirrors=[seeded_registry.registry.url], env=env))
        try:
            with gateway.client() as client:
                wait_for(lambda: nodes(client).get("n1", {}).get("Status") == "ready")
                pulled = client.post("/v1/nodes/n1/images/create?fromImage=busybox&tag=latest")
                assert pulled.status_code == 200, pulled.text
            yield OneNode(gateway, daemon, tmp_path)
        finally:
            for container in json.loads(daemon.request("GET", "/containers/json?all=1")[1]):
                daemon.request("DELETE", f"/containers/{container['Id']}?force=1")


def _with(**host: object) -> dict[str, object]:
    return {**SLEEPER, "HostConfig": host}


def test_scopes_and_the_policy_decide_who_may_run_what(one_node: OneNode) -> None:
    gateway = one_node.gateway
    reader = gateway.add_token("reader", "read")
    operator = gateway.add_token("ops", "operate")
    run = "/v1/nodes/n1/containers/run?wait=true"
    with gateway.client(token=reader) as client:
        assert client.get("/v1/nodes/n1/containers/json").status_code == 200  # reads: yes
        refused = client.post(run, json=SLEEPER)
        assert refused.status_code == 403
        assert refused.json()["message"] == ("scope: POST /v1/nodes/n1/containers/run needs a "
                                             "token with scope 'operate'; token 'reader' has "
                                             "scope 'read'")
    with gateway.client(token=operator) as client:
        for host, flag, rule in ((_with(Privileged=True), "--privileged", "privileged"),
                                 (_with(Binds=["/:/host"]), "-v /:/host", "host-path"),
                                 (_with(NetworkMode="host"), "--network host", "host-network")):
            refused = client.post(run, json=host)
            assert refused.status_code == 403, refused.text
            assert refused.json()["message"] == (f"policy: {flag} needs an admin token (or an "
                                                 f"operate token created with --allow {rule})")
        placed = client.post("/v1/containers?wait=true", json=_with(Privileged=True))
        assert placed.status_code == 403 and "--privileged" in placed.json()["message"]
        for method, path in (("POST", "/v1/nodes/*/containers/run"),
                             ("POST", "/v1/images/pull?image=busybox")):
            everywhere = client.request(method, path, json=SLEEPER)
            assert everywhere.status_code == 403 and "scope 'admin'" in \
                everywhere.json()["message"]
        made = client.post(run + "&name=plain", json=SLEEPER)  # within the policy: runs
        assert made.status_code == 201, made.text
    assert daemon_names(one_node.daemon.request) == ["plain"]  # nothing refused ran
    with gateway.client() as admin:  # the fixture's token is admin
        made = admin.post(run + "&name=root", json=_with(
            Privileged=True, Binds=["/:/host:ro"], NetworkMode="host"))
        assert made.status_code == 201, made.text
        inspected = admin.get("/v1/nodes/n1/containers/root/json").json()
        assert inspected["State"]["Running"]
    assert daemon_names(one_node.daemon.request) == ["plain", "root"]


def test_the_cli_prints_the_refusal_and_fails(one_node: OneNode) -> None:
    reader = one_node.gateway.add_token("reader", "read")
    operator = one_node.gateway.add_token("ops", "operate")
    allowed = one_node.gateway.add_token("trusted", "operate", "privileged")
    denied = one_node.cli(reader, "run", "-d", "busybox", "sleep", "300")
    assert denied.returncode != 0 and "needs a token with scope 'operate'" in denied.stderr
    privileged = one_node.cli(operator, "run", "-d", "--privileged", "busybox", "sleep", "300")
    assert privileged.returncode != 0
    assert "policy: --privileged needs an admin token" in privileged.stderr
    assert daemon_names(one_node.daemon.request) == []
    ran = one_node.cli(allowed, "run", "-d", "--name", "trusted", "--privileged", "busybox",
                       "sleep", "300")
    assert ran.returncode == 0, ran.stderr
    assert daemon_names(one_node.daemon.request) == ["trusted"]


def test_idempotency_keys_and_commands_belong_to_principals(one_node: OneNode) -> None:
    gateway = one_node.gateway
    alice, bob = gateway.add_token("alice", "operate"), gateway.add_token("bob", "operate")
    key = {"Idempotency-Key": "shared-key-1"}
    create = "/v1/nodes/n1/containers/create"
    with gateway.client(token=alice) as as_alice, gateway.client(token=bob) as as_bob:
        first = as_alice.post(create + "?name=from-alice", json=SLEEPER, headers=key)
        second = as_bob.post(create + "?name=from-bob", json=SLEEPER, headers=key)
        assert first.status_code == second.status_code == 202, (first.text, second.text)
        alices, bobs = first.json()["Id"], second.json()["Id"]
        assert alices != bobs  # two principals, two commands
        wait_for(lambda: daemon_names(one_node.daemon.request) == ["from-alice", "from-bob"])
        # alice again, same request: her first command, nothing runs again
        again = as_alice.post(create + "?name=from-alice&wait=true", json=SLEEPER, headers=key)
        assert again.status_code == 201 and again.headers["x-wharf-command"] == alices
        # alice, same key, a different body: refused, nothing sent
        other = as_alice.post(create + "?name=from-alice",
                              json={**SLEEPER, "Cmd": ["sleep", "1"]}, headers=key)
        assert other.status_code == 422, other.text
        assert other.json() == {"code": "unprocessable", "message": (
            f"Idempotency-Key 'shared-key-1' was used for a different request (command "
            f"{alices}, create on n1): send a new key with a new request")}
        assert daemon_names(one_node.daemon.request) == ["from-alice", "from-bob"]
        # a command is its principal's
        assert as_alice.get(f"/v1/commands/{alices}").json()["Principal"] == "alice"
        hidden = as_bob.get(f"/v1/commands/{alices}")
        assert hidden.status_code == 404
        assert hidden.json()["message"] == f"no such command: {alices}"
    with gateway.client() as admin:
        seen = admin.get(f"/v1/commands/{alices}")
        assert seen.status_code == 200 and seen.json()["Principal"] == "alice"
        assert admin.get(f"/v1/commands/{bobs}").json()["Principal"] == "bob"
