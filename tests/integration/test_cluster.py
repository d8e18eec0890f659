"""`make cluster-up NODES=3` as a user runs it, and the cluster's failure semantics.

The cluster is the real one of infra/cluster.sh (gateway, RabbitMQ with the control plane's own
accounts, three daemons in network namespaces behind a bridge), on its own bridge, addresses,
vhost, namespaces and directories, so a developer's `make cluster-up` is left alone. It is
started once for the module and taken down (containers, namespaces, veths, queues) after it.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.integration.gateway_fixture import free_port, nodes, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
WHARF = str(Path(sys.executable).parent / "wharf")
NET = "10.89.0"
BUSYBOX_SLEEP = {"Image": "busybox", "Cmd": ["sleep", "300"]}


@dataclass
class LocalCluster:
    env: dict[str, str]
    gateway: str
    token: str
    cacert: str
    token_file: str
    etc: Path
    run_dir: Path

    def cli(self, *args: str, check: bool = True, env: dict[str, str] | None = None,
            ) -> subprocess.CompletedProcess[str]:
        full_env = {**{k: v for k, v in os.environ.items() if not k.startswith("WHARF_")},
                    "WHARF_GATEWAY": self.gateway, "WHARF_GATEWAY_CACERT": self.cacert,
                    "WHARF_TOKEN_FILE": self.token_file, **(env or {})}
        result = subprocess.run([WHARF, *args], capture_output=True, text=True, env=full_env,
                                timeout=120, check=False)
        if check:
            assert result.returncode == 0, result.stderr
        return result

    def node_cli(self, node: int, *args: str) -> subprocess.CompletedProcess[str]:
        """The node's own daemon, on its unix socket."""
        return self.cli("-H", f"unix://{self.run_dir}/node{node}/wharfd.sock", *args)

    def http(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.gateway, timeout=60,
                            verify=ssl.create_default_context(cafile=self.cacert), headers={
            "Authorization": f"Bearer {token or self.token}"})


def _script(action: str, env: dict[str, str], *args: str) -> str:
    result = subprocess.run(["bash", str(REPO / "infra" / "cluster.sh"), action, *args],
                            capture_output=True, text=True, env=env, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stderr


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    base = tmp_path_factory.mktemp("cluster")
    port = free_port()
    env = {**os.environ, "WHARF_CLUSTER_NET": NET, "WHARF_CLUSTER_BRIDGE": "wharft0",
           "WHARF_CLUSTER_GATEWAY_PORT": str(port), "WHARF_CLUSTER_ROOT": str(base / "root"),
           "WHARF_CLUSTER_RUN": str(base / "run"), "WHARF_CLUSTER_ETC": str(base / "etc"),
           "WHARF_CLUSTER_ENV_FILE": str(base / "cluster.env"),
           "WHARF_CLUSTER_VHOST": f"wharf-test-{uuid.uuid4().hex[:8]}",
           "WHARF_CLUSTER_PREFIX": "wharft-", "WHARF_CLUSTER_VETH": "wtn",
           "WHARF_CLUSTER_GATEWAY_ID": "gw-test"}
    try:
        _script("up", env, "3")
        written = dict(line.split("=", 1) for line in
                       (base / "cluster.env").read_text().splitlines()
                       if line and not line.startswith("#"))
        assert written["WHARF_GATEWAY"].startswith("https://") and "WHARF_TOKEN" not in written
        token_file = written["WHARF_TOKEN_FILE"]
        assert Path(token_file).stat().st_mode & 0o077 == 0
        yield LocalCluster(env, written["WHARF_GATEWAY"], Path(token_file).read_text().strip(),
                           written["WHARF_GATEWAY_CACERT"], token_file, base / "etc",
                           base / "run")
    finally:
        _script("down", env)


def test_nodes_ready_run_on_a_node_and_see_everything(cluster: LocalCluster) -> None:
    listed = cluster.cli("node", "ls").stdout.splitlines()
    assert [line.split()[:2] for line in listed[1:]] == [
        ["node1", "ready"], ["node2", "ready"], ["node3", "ready"]]
    cid = cluster.cli("--host", "node://node2", "run", "-d", "--name", "on-two",
                      "busybox", "sleep", "300").stdout.strip()
    assert "on-two" in cluster.node_cli(2, "ps").stdout  # the node's own daemon runs it
    assert "on-two" not in cluster.node_cli(1, "ps", "-a").stdout
    rows = wait_for(lambda: [line for line in cluster.cli("ps", "--all-nodes").stdout
                             .splitlines() if "on-two" in line])
    assert rows[0].split()[-1] == "node2" and rows[0].startswith(cid[:12])
    with cluster.http() as client:
        assert any(c["Id"] == cid for c in client.get("/v1/containers").json())
    anonymous = httpx.get(cluster.gateway + "/v1/containers",
                          verify=ssl.create_default_context(cafile=cluster.cacert))
    assert anonymous.status_code == 401
    cluster.cli("--node", "node2", "rm", "-f", "on-two")


def test_a_node_directly_with_mutual_tls(cluster: LocalCluster) -> None:
    tls = cluster.etc / "tls"
    address = f"tcp://{NET}.13:2376"
    with_certs = cluster.cli("-H", address, "--tlsverify", "--tlscacert", str(tls / "ca.pem"),
                             "--tlscert", str(tls / "cert.pem"), "--tlskey", str(tls / "key.pem"),
                             "ps")
    assert with_certs.stdout.startswith("CONTAINER ID")
    without = cluster.cli("-H", address, "--tlsverify", "--tlscacert", str(tls / "ca.pem"),
                          "ps", check=False, env={"WHARF_CERT_PATH": str(tls / "none")})
    assert without.returncode != 0 and "certificate" in without.stderr


def test_a_node_cut_off_is_down_and_a_late_command_never_runs(cluster: LocalCluster) -> None:
    with cluster.http() as client:
        subprocess.run(["ip", "link", "set", "wtn3", "down"], check=True)
        cut = time.monotonic()
        try:
            # Published right after the cut, before the gateway can tell: it waits in (or on
            # the way to) node3 with a 5 s deadline.
            late = client.post("/v1/nodes/node3/containers/run",
                               params={"name": "too-late", "deadline": "5"}, json=BUSYBOX_SLEEP)
            assert late.status_code == 202, late.text
            wait_for(lambda: nodes(client)["node3"]["Status"] == "down", timeout=5,
                     interval=0.05)
            assert time.monotonic() - cut < 3.0
            refused = client.post("/v1/nodes/node3/containers/run", json=BUSYBOX_SLEEP)
            assert refused.status_code == 503
            time.sleep(max(0.0, 6 - (time.monotonic() - cut)))  # past the deadline
        finally:
            subprocess.run(["ip", "link", "set", "wtn3", "up"], check=True)
        wait_for(lambda: nodes(client)["node3"]["Status"] == "ready", timeout=30)
        command = wait_for(lambda: (c := client.get(late.headers["location"]).json())
                           ["Status"] == "expired" and c, timeout=30)
        assert command["Nodes"]["node3"]["Status"] == "expired"
    assert "too-late" not in cluster.node_cli(3, "ps", "-a").stdout


def test_a_rabbitmq_restart_loses_no_command_and_runs_none_twice(cluster: LocalCluster) -> None:
    accepted: dict[str, str] = {}  # container name → command id
    stop = threading.Event()

    def send_commands() -> None:
        with cluster.http() as client:
            for i in range(40):
                name = f"flow-{i}"
                key = f"flow-{uuid.uuid4().hex}"
                while not stop.is_set():  # a client retries with the same key until accepted
                    try:
                        reply = client.post(f"/v1/nodes/node{1 + i % 3}/containers/create",
                                            params={"name": name}, json=BUSYBOX_SLEEP,
                                            headers={"Idempotency-Key": key})
                    except httpx.TransportError:
                        reply = None
                    if reply is not None and reply.status_code == 202:
                        accepted[name] = reply.json()["Id"]
                        break
                    time.sleep(0.2)
                time.sleep(0.05)

    with cluster.http() as client:  # every node has the image, so create needs no pull
        # every node heard from (an earlier test cut node3 off; a stalled heartbeat connection
        # is replaced within two intervals)
        wait_for(lambda: all(n["Status"] == "ready" for n in nodes(client).values()),
                 timeout=20)
        for node in ("node1", "node2", "node3"):
            pulled = client.post(f"/v1/nodes/{node}/images/create",
                                 params={"fromImage": "busybox", "tag": "latest"})
            assert pulled.status_code == 200, (node, pulled.text)
    sender = threading.Thread(target=send_commands)
    sender.start()
    try:
        wait_for(lambda: len(accepted) >= 8, timeout=30)
        subprocess.run(["rabbitmqctl", "stop_app"], check=True, capture_output=True, timeout=120)
        time.sleep(1)
    finally:
        subprocess.run(["rabbitmqctl", "start_app"], check=True, capture_output=True,
                       timeout=120)
    sender.join(180)
    stop.set()
    assert len(accepted) == 40
    with cluster.http() as client:
        wait_for(lambda: all(nodes(client)[f"node{i}"]["Status"] == "ready" for i in (1, 2, 3)),
                 timeout=60)
        states = wait_for(lambda: (s := {n: client.get(f"/v1/commands/{c}").json()["Status"]
                                         for n, c in accepted.items()})
                          and "pending" not in s.values() and s, timeout=90)
    assert set(states.values()) == {"ok"}, states
    names = []
    for node in (1, 2, 3):
        listed = cluster.node_cli(node, "ps", "-a", "--format", "{{.Names}}").stdout.split()
        names += [n for n in listed if n.startswith("flow-")]
        for name in listed:
            cluster.node_cli(node, "rm", "-f", name)
    assert sorted(names) == sorted(accepted)  # each exactly once
