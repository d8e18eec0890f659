"""A node's availability end to end: a real gateway, RabbitMQ (a vhost of the test's own) and
two real wharfd daemons, each with its own broker account.

Drained, a node gets no placed container and refuses one created there by name (409) while
its existing containers keep their lifecycle; paused, placement still skips it but a create by
name runs; active again, placement uses it; a gateway restart keeps what was set. The nodes
are named ``av1``/``av2`` so that their broker accounts are not another test's ``n1``/``n2``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import NodeAccount, SeededRegistry
from tests.integration.gateway_fixture import (
    daemon_names,
    nodes,
    running_gateway,
    start_gateway,
    stop_gateway,
    wait_for,
)
from tests.integration.test_gateway import Cluster

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SLEEPER = {"Image": "busybox", "Cmd": ["sleep", "300"]}
WHARF = str(Path(sys.executable).parent / "wharf")


@pytest.fixture
def pair(amqp_url: str, node_account: NodeAccount, seeded_registry: SeededRegistry,
         tmp_path: Path) -> Iterator[Cluster]:
    with running_gateway(tmp_path / "gateway", amqp_url) as gateway:
        cluster = Cluster(gateway, {}, tmp_path, amqp_url, seeded_registry.registry.url,
                          node_account)
        try:
            for name in ("av1", "av2"):
                cluster.start_daemon(name)
            with gateway.client() as client:
                wait_for(lambda: len(nodes(client)) == 2 and all(
                    n["Status"] == "ready" and n["EngineID"] for n in nodes(client).values()))
                for name in ("av1", "av2"):
                    pulled = client.post(f"/v1/nodes/{name}/images/create?fromImage=busybox"
                                         "&tag=latest")
                    assert pulled.status_code == 200, pulled.text
            yield cluster
        finally:
            cluster.close()
            stop_gateway(cluster.gateway)  # a restarted one, when the test made it


def _set(client: httpx.Client, node: str, availability: str) -> dict[str, Any]:
    reply = client.post(f"/v1/nodes/{node}/update", json={"Availability": availability})
    assert reply.status_code == 200, reply.text
    document: dict[str, Any] = reply.json()
    assert document["Name"] == node and document["Availability"] == availability
    return document


def _placed(client: httpx.Client) -> str:
    reply = client.post("/v1/containers?wait=true", json=SLEEPER)
    assert reply.status_code == 201, reply.text
    return str(reply.json()["Node"])


def _running(client: httpx.Client, counts: dict[str, int]) -> bool:
    listed = nodes(client)
    return all(listed[name]["Running"] == count for name, count in counts.items())


def _cli(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHARF_")}
    env.update({"WHARF_GATEWAY": cluster.gateway.url, "WHARF_TOKEN": cluster.gateway.token,
                "WHARF_CONFIG": str(cluster.base / "client")})
    return subprocess.run([WHARF, *args], capture_output=True, text=True, env=env, timeout=60,
                          check=False)


def test_drain_and_pause_keep_placement_off_a_node(pair: Cluster) -> None:
    with pair.gateway.client() as client:
        assert {n["Availability"] for n in nodes(client).values()} == {"active"}
        made = client.post("/v1/nodes/av1/containers/run?wait=true&name=old", json=SLEEPER)
        assert made.status_code == 201, made.text
        # drained: every placed container goes to av2, one by name to av1 is refused
        _set(client, "av1", "drain")
        assert nodes(client)["av1"]["Availability"] == "drain"
        assert [_placed(client), _placed(client)] == ["av2", "av2"]
        refused = client.post("/v1/nodes/av1/containers/create?wait=true&name=new",
                              json=SLEEPER)
        assert refused.status_code == 409, refused.text
        assert refused.json()["code"] == "conflict" and "drain" in refused.json()["message"]
        # ...while what runs there keeps its lifecycle
        stopped = client.post("/v1/nodes/av1/containers/old/stop?wait=true&t=0")
        assert stopped.status_code == 204, stopped.text
        assert daemon_names(pair.daemons["av1"].request) == ["old"]
        # paused: placement still skips it, a create by name runs there
        _set(client, "av1", "pause")
        wait_for(lambda: _running(client, {"av1": 0, "av2": 2}))
        assert _placed(client) == "av2"  # though av2 runs 2 and av1 none
        created = client.post("/v1/nodes/av1/containers/create?wait=true&name=new",
                              json=SLEEPER)
        assert created.status_code == 201, created.text
        assert daemon_names(pair.daemons["av1"].request) == ["new", "old"]
        # active again: placement may choose it (it runs none, av2 three)
        _set(client, "av1", "active")
        wait_for(lambda: _running(client, {"av1": 0, "av2": 3}))
        assert _placed(client) == "av1"
        with client.stream("GET", "/v1/events?since=0&follow=false") as stream:
            events = [json.loads(line) for line in stream.iter_lines()]
        updates = [(e["Actor"]["Attributes"]["availability.old"],
                    e["Actor"]["Attributes"]["availability.new"]) for e in events
                   if e["Type"] == "node" and e["Action"] == "update" and e["node"] == "av1"]
        assert updates == [("active", "drain"), ("drain", "pause"), ("pause", "active")]
        missing = client.post("/v1/nodes/av9/update", json={"Availability": "drain"})
        assert missing.status_code == 404, missing.text
    operator = pair.gateway.add_token("ops", "operate")
    with pair.gateway.client(token=operator) as client:
        denied = client.post("/v1/nodes/av1/update", json={"Availability": "drain"})
        assert denied.status_code == 403 and "scope 'admin'" in denied.json()["message"]


def test_availability_survives_a_gateway_restart_and_the_cli_sets_it(pair: Cluster) -> None:
    updated = _cli(pair, "node", "update", "--availability", "drain", "av2")
    assert updated.returncode == 0, updated.stderr
    assert updated.stdout == "av2\n"
    gateway = pair.gateway
    stop_gateway(gateway)
    port = int(gateway.url.rsplit(":", 1)[1])
    pair.gateway = start_gateway(gateway.log.parent, pair.amqp_url, port=port)
    with pair.gateway.client() as client:
        wait_for(lambda: all(n["Status"] == "ready" for n in nodes(client).values()))
        assert nodes(client)["av2"]["Availability"] == "drain"
        assert nodes(client)["av1"]["Availability"] == "active"
        assert [_placed(client), _placed(client)] == ["av1", "av1"]
        refused = client.post("/v1/nodes/av2/containers/run?wait=true", json=SLEEPER)
        assert refused.status_code == 409, refused.text
    listed = _cli(pair, "node", "ls")
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line.split()[:3] for line in listed.stdout.splitlines()[1:]}
    assert rows == {"av1": ["av1", "ready", "Active"], "av2": ["av2", "ready", "Drain"]}
    inspected = _cli(pair, "node", "inspect", "av2")
    assert json.loads(inspected.stdout)[0]["Availability"] == "drain"
