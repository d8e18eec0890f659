"""Both /metrics endpoints for real: a gateway, RabbitMQ (a vhost of the test's own) and one
wharfd node with ``--metrics-addr`` on loopback.

The expositions (the gateway's behind a read token, wharfd's on its unix socket and on its
metrics address) are parsed with prometheus-client's parser and checked to move with what the
test does: a pull, a run and a refused command through the gateway, an API request on the
node; a broker connection closed under the gateway counts one reconnect. Then Debian's
``prometheus`` scrapes both (a bearer token file for the gateway, the
metrics address for wharfd), and its HTTP API must report both targets up and answer queries
on the metrics. The node is ``mt1`` so that its broker account is no other test's.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.daemon_fixture import Daemon, running_daemon
from tests.integration.conftest import NodeAccount, SeededRegistry
from tests.integration.gateway_fixture import (
    Gateway,
    free_port,
    nodes,
    running_gateway,
    wait_for,
)
from tests.metrics_samples import Samples, get, parse

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # three real gateways and nodes: ~80 s
NODE = "mt1"
SLEEPER = {"Image": "busybox", "Cmd": ["sleep", "300"]}
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"





@dataclass
class Node:
    gateway: Gateway
    daemon: Daemon
    metrics_url: str  # wharfd's --metrics-addr
    reader: str  # a read-scope gateway token

    def gateway_metrics(self) -> Samples:
        answer = httpx.get(self.gateway.url + "/metrics", timeout=30,
                           headers={"Authorization": f"Bearer {self.reader}"})
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("text/plain")
        return parse(answer.text)

    def daemon_metrics(self) -> Samples:
        status, body = self.daemon.request("GET", "/metrics")  # the API's, on the socket
        assert status == 200, body
        return parse(body.decode())


@pytest.fixture
def node(amqp_url: str, node_account: NodeAccount, seeded_registry: SeededRegistry,
         tmp_path: Path) -> Iterator[Node]:
    port = free_port()
    env = {"WHARF_AMQP_URL": node_account(NODE), "WHARF_NODE_NAME": NODE,
           "WHARF_HEARTBEAT_INTERVAL": "0.5", "WHARF_SNAPSHOT_INTERVAL": "2"}
    with ExitStack() as stack:
        gateway = stack.enter_context(running_gateway(tmp_path / "gateway", amqp_url))
        daemon = stack.enter_context(running_daemon(
            tmp_path / NODE, mirrors=[seeded_registry.registry.url], env=env,
            extra_args=["--metrics-addr", f"127.0.0.1:{port}"]))
        with gateway.client() as client:
            wait_for(lambda: nodes(client).get(NODE, {}).get("Status") == "ready")
        try:
            yield Node(gateway, daemon, f"http://127.0.0.1:{port}/metrics",
                       gateway.add_token("scraper", "read"))
        finally:
            for c in json.loads(daemon.request("GET", "/containers/json?all=1")[1]):
                daemon.request("DELETE", f"/containers/{c['Id']}?force=1")


def test_both_endpoints_parse_and_move_with_what_happens(node: Node) -> None:
    anonymous = httpx.get(node.gateway.url + "/metrics", timeout=30)
    assert anonymous.status_code == 401  # a token, like every other route
    gw_before, wd_before = node.gateway_metrics(), node.daemon_metrics()
    assert get(gw_before, "wharf_gateway_nodes", state="ready", availability="active") == 1
    assert get(gw_before, "wharf_gateway_broker_connected") == 1

    with node.gateway.client() as client:
        pulled = client.post(f"/v1/nodes/{NODE}/images/create?fromImage=busybox&tag=latest")
        assert pulled.status_code == 200, pulled.text
        ran = client.post(f"/v1/nodes/{NODE}/containers/run?wait=true", json=SLEEPER)
        assert ran.status_code == 201, ran.text
        refused = client.post("/v1/nodes/no-such-node/containers/web/start?wait=true")
        assert refused.status_code == 404
        wait_for(lambda: any(c["State"] == "running"
                             for c in client.get("/v1/containers").json()))
    assert node.daemon.request("GET", "/v1.41/containers/json")[0] == 200

    gw = node.gateway_metrics()
    commands = "wharf_gateway_commands_total"
    for kind in ("pull", "run"):
        assert get(gw, commands, type=kind, outcome="ok") == \
            get(gw_before, commands, type=kind, outcome="ok") + 1, kind
    assert get(gw, commands, type="start", outcome="refused") == 1
    assert get(gw, "wharf_gateway_command_duration_seconds_count", type="run") == 1
    assert get(gw, "wharf_gateway_containers", state="running") == 1
    assert get(gw, "wharf_gateway_events_total", type="container") > 0

    wd = node.daemon_metrics()
    for phase in ("create", "start"):
        count = "wharfd_run_phase_duration_seconds_count"
        assert get(wd, count, phase=phase) == get(wd_before, count, phase=phase) + 1, phase
    assert get(wd, "wharfd_image_pulls_total", outcome="ok") == 1
    assert get(wd, "wharfd_containers", state="running") == 1
    requests = "wharfd_api_requests_total"
    assert get(wd, requests, method="GET", route="/containers/json", status="200") >= 1
    # the metrics address serves the same exposition, and nothing else
    assert "wharfd_containers" in {name for name, _ in parse(httpx.get(node.metrics_url).text)}
    assert httpx.get(node.metrics_url.replace("/metrics", "/containers/json")).status_code \
        == 404


def test_a_lost_broker_connection_counts_as_a_reconnect(node: Node, amqp_url: str) -> None:
    assert get(node.gateway_metrics(), "wharf_gateway_broker_reconnects_total") == 0
    vhost = amqp_url.rsplit("/", 1)[1]
    listed = subprocess.run(["rabbitmqctl", "list_connections", "-q", "pid", "vhost", "user"],
                            check=True, capture_output=True, text=True).stdout.splitlines()
    # the gateway's: guest on the test's own vhost (the node has an account of its own)
    ours = [row.split("\t")[0] for row in listed[1:] if row.split("\t")[1:] == [vhost, "guest"]]
    assert len(ours) == 1, listed
    subprocess.run(["rabbitmqctl", "close_connection", ours[0], "closed by test_metrics"],
                   check=True, capture_output=True)

    def reconnected() -> Samples | None:
        now = node.gateway_metrics()
        back = get(now, "wharf_gateway_broker_connected") == 1
        return now if back and get(now, "wharf_gateway_broker_reconnects_total") == 1 else None

    after = wait_for(reconnected)
    assert get(after, "wharf_gateway_broker_messages_dropped_total", reason="forged") == 0
    with node.gateway.client() as client:  # and commands go through it again
        wait_for(lambda: nodes(client).get(NODE, {}).get("Status") == "ready")
        assert client.get(f"/v1/nodes/{NODE}/containers/json").status_code == 200


def _prometheus_config(node: Node, base: Path) -> Path:
    token = base / "gateway-token"
    token.write_text(node.reader)
    token.chmod(0o600)
    config = base / "prometheus.yml"
    config.write_text(json.dumps({  # JSON is YAML
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [
            {"job_name": "wharf-gateway", "bearer_token_file": str(token),
             "static_configs": [{"targets": [node.gateway.url.removeprefix("http://")]}]},
            {"job_name": "wharfd", "static_configs": [{"targets": [
                node.metrics_url.removeprefix("http://").removesuffix("/metrics")]}]}]}))
    return config


def _query(api: str, expression: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{api}/api/v1/query", params={"query": expression}, timeout=5).json()
    assert answer["status"] == "success", answer
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def test_prometheus_scrapes_both(node: Node, tmp_path: Path) -> None:
    with node.gateway.client() as client:
        ran = client.post(f"/v1/nodes/{NODE}/containers/run?wait=true", json=SLEEPER)
        assert ran.status_code == 201, ran.text
    base = tmp_path / "prometheus"
    base.mkdir()
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    with (base / "prometheus.log").open("wb") as log:
        server = subprocess.Popen(
            [PROMETHEUS, f"--config.file={_prometheus_config(node, base)}",
             f"--storage.tsdb.path={base / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log, stderr=log)
    try:
        def both_up() -> bool:
            try:
                targets = httpx.get(f"{api}/api/v1/targets", timeout=2).json()
            except httpx.HTTPError:
                return False
            health = {t["labels"]["job"]: t["health"]
                      for t in targets["data"]["activeTargets"]}
            return health == {"wharf-gateway": "up", "wharfd": "up"}

        wait_for(both_up, timeout=60, interval=0.5)
        runs = wait_for(lambda: _query(api, 'wharf_gateway_commands_total{type="run",'
                                            'outcome="ok"}'), timeout=30)
        assert float(runs[0]["value"][1]) == 1
        assert runs[0]["metric"]["job"] == "wharf-gateway"
        starts = _query(api, 'wharfd_run_phase_duration_seconds_count{phase="start"}')
        assert [float(s["value"][1]) for s in starts] == [1]
        nodes_up = _query(api, 'wharf_gateway_nodes{state="ready"}')
        assert sum(float(s["value"][1]) for s in nodes_up) == 1
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        shutil.rmtree(base, ignore_errors=True)
