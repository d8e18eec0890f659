"""Moving containers between nodes, end to end: a real gateway (HTTPS, relaying to the nodes'
mutual-TLS listeners), RabbitMQ (a vhost of the test's own) and three real wharfd daemons
``mv1``..``mv3`` (broker accounts no other test uses); the wharf CLI as a user runs it.

- a running container that wrote a file in its writable layer and one in a named volume moves
  with ``wharf container move NAME --to mv3``: it runs there under its name with both files,
  and the source has no container, volume or move image left;
- the gateway killed (SIGKILL) in the middle of a move and started again: the move ends (done
  or rolled back) and the container exists exactly once;
- ``wharf node drain mv2`` with 5 containers: all run elsewhere with their state, ``mv2`` is
  ``drain`` and gets no new placement;
- what cannot move is refused before anything changes (a host path, ``--live``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
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
    start_gateway,
    stop_gateway,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
WHARF = str(Path(sys.executable).parent / "wharf")
NODES = ("mv1", "mv2", "mv3")
# stops at once on SIGTERM (a shell as PID 1 ignores it: a move would wait 10 s for its stop)
SLEEPER = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]


@dataclass
class Site:
    base: Path
    gateway: Gateway
    daemons: dict[str, Daemon]
    env: dict[str, str]
    certs: Path
    amqp_url: str
    port: int
    stack: ExitStack = field(default_factory=ExitStack)

    def wharf(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = {**self.env, "WHARF_TOKEN": self.gateway.token}
        return subprocess.run([WHARF, *args], capture_output=True, text=True, timeout=timeout,
                              env=env, check=False)

    def copies(self, name: str) -> dict[str, dict[str, Any]]:
        """node → the container named ``name`` on it, asked of each daemon itself."""
        found = {}
        for node, daemon in self.daemons.items():
            status, body = daemon.request("GET", f"/containers/{name}/json")
            if status == 200:
                found[node] = json.loads(body)
        return found

    def restart_gateway(self, *, kill: bool) -> None:
        if kill:
            self.gateway.process.kill()
            self.gateway.process.wait()
        else:
            stop_gateway(self.gateway)
        self.gateway = start_gateway(self.base / "gateway", self.amqp_url, tls=self.certs,
                                     port=self.port)


@pytest.fixture
def site(amqp_url: str, node_account: NodeAccount, seeded_registry: SeededRegistry,
         certs: Path, tmp_path: Path) -> Iterator[Site]:
    port = free_port()
    gateway = start_gateway(tmp_path / "gateway", amqp_url, tls=certs, port=port)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WHARF_")}
    site = Site(tmp_path, gateway, {}, {**clean, "WHARF_GATEWAY": gateway.url,
                                        "WHARF_GATEWAY_CACERT": str(certs / "ca.pem"),
                                        "WHARF_CONFIG": str(tmp_path / "wharf-config")},
                certs, amqp_url, port)
    try:
        for node in NODES:
            tcp = ["-H", f"tcp://127.0.0.1:{free_port()}", "--tlsverify",
                   "--tlscacert", str(certs / "ca.pem"),
                   "--tlscert", str(certs / "server-cert.pem"),
                   "--tlskey", str(certs / "server-key.pem")]
            env = {"WHARF_AMQP_URL": node_account(node), "WHARF_NODE_NAME": node,
                   "WHARF_HEARTBEAT_INTERVAL": "0.5", "WHARF_SNAPSHOT_INTERVAL": "2"}
            site.daemons[node] = site.stack.enter_context(running_daemon(
                tmp_path / node, mirrors=[seeded_registry.registry.url], extra_args=tcp,
                env=env))
        with gateway.client() as client:
            wait_for(lambda: all(nodes(client).get(n, {}).get("Status") == "ready"
                                 for n in NODES))
            for node in NODES:
                pulled = client.post(f"/v1/nodes/{node}/images/create?fromImage=busybox"
                                     "&tag=latest")
                assert pulled.status_code == 200, pulled.text
        yield site
    finally:
        for daemon in site.daemons.values():
            if daemon.process.poll() is None:
                for c in json.loads(daemon.request("GET", "/containers/json?all=1")[1]):
                    daemon.request("DELETE", f"/containers/{c['Id']}?force=1")
                for v in json.loads(daemon.request("GET", "/volumes")[1])["Volumes"] or []:
                    daemon.request("DELETE", f"/volumes/{v['Name']}")
        site.stack.close()
        stop_gateway(site.gateway)


def _run(site: Site, node: str, name: str, *args: str) -> None:
    made = site.wharf("--node", node, "run", "-d", "--name", name, *args)
    assert made.returncode == 0, made.stderr


def _exec(site: Site, node: str, name: str, *command: str) -> str:
    done = site.wharf("--node", node, "exec", name, *command)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_container_moves_with_its_layer_and_its_volume(site: Site) -> None:
    _run(site, "mv1", "keeper", "-v", "keepdata:/vol", "busybox", "sh", "-c",
         "echo layer > /state; echo volume > /vol/x; " + SLEEPER[2])
    wait_for(lambda: _exec(site, "mv1", "keeper", "cat", "/state", "/vol/x") ==
             "layer\nvolume\n")
    moved = site.wharf("container", "move", "keeper", "--to", "mv3")
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert "keeper is on mv3" in moved.stdout
    copies = site.copies("keeper")
    assert list(copies) == ["mv3"] and copies["mv3"]["State"]["Running"] is True
    assert _exec(site, "mv3", "keeper", "cat", "/state", "/vol/x") == "layer\nvolume\n"
    source = site.daemons["mv1"]
    assert source.request("GET", "/volumes/keepdata")[0] == 404  # carried, not copied
    images = json.loads(source.request("GET", "/images/json")[1])
    assert not [i for i in images if any("wharf-move" in t for t in i.get("RepoTags") or [])]
    with site.gateway.client() as client:
        record = client.get("/v1/moves").json()[-1]
    assert (record["State"], record["Copy"], record["Target"]) == ("done", "target", "mv3")


def test_a_gateway_killed_mid_move_ends_with_exactly_one_copy(site: Site) -> None:
    # 50 MB in the writable layer: the move is still carrying it when the gateway dies
    _run(site, "mv1", "heavy", "busybox", "sh", "-c",
         "dd if=/dev/urandom of=/blob bs=1M count=50 2>/dev/null; echo ok > /ready; "
         + SLEEPER[2])
    wait_for(lambda: site.wharf("--node", "mv1", "exec", "heavy", "cat", "/ready").stdout
             == "ok\n", timeout=60)
    with site.gateway.client() as client:
        begun = client.post("/v1/nodes/mv1/containers/heavy/move?to=mv2")
        assert begun.status_code == 202, begun.text
        move_id = begun.json()["Id"]
        wait_for(lambda: client.get(f"/v1/moves/{move_id}").json()["State"]
                 in ("commit", "transfer", "volumes", "create"), interval=0.02)
    site.restart_gateway(kill=True)
    with site.gateway.client() as client:
        ended = wait_for(lambda: (m := client.get(f"/v1/moves/{move_id}").json())["State"]
                         in ("done", "rolled-back") and m, timeout=120)
    copies = site.copies("heavy")
    assert len(copies) == 1, copies
    where = "mv2" if ended["State"] == "done" else "mv1"
    assert list(copies) == [where] and ended["Copy"] == ("target" if where == "mv2"
                                                         else "source")
    assert copies[where]["State"]["Running"] is True
    size = site.wharf("--node", where, "exec", "heavy", "wc", "-c", "/blob").stdout.split()[0]
    assert size == str(50 << 20)


def test_drain_moves_every_container_and_keeps_placement_off(site: Site) -> None:
    for i in range(5):
        _run(site, "mv2", f"d{i}", "busybox", "sh", "-c", f"echo {i} > /mine; " + SLEEPER[2])
    drained = site.wharf("node", "drain", "mv2", timeout=300)
    assert drained.returncode == 0, drained.stdout + drained.stderr
    for i in range(5):
        copies = site.copies(f"d{i}")
        assert len(copies) == 1 and "mv2" not in copies, copies
        node = next(iter(copies))
        assert _exec(site, node, f"d{i}", "cat", "/mine") == f"{i}\n"
    with site.gateway.client() as client:
        assert client.get("/v1/nodes/mv2").json()["Availability"] == "drain"
        for _ in range(5):
            assert client.get("/v1/placement").json()["Node"] != "mv2"


def test_what_cannot_move_is_refused_and_left_alone(site: Site, tmp_path: Path) -> None:
    host_dir = tmp_path / "host"
    host_dir.mkdir()
    _run(site, "mv1", "pinned", "-v", f"{host_dir}:/h", "busybox", *SLEEPER)
    refused = site.wharf("container", "move", "pinned", "--to", "mv2")
    assert refused.returncode != 0 and "host path" in refused.stderr
    live = site.wharf("container", "move", "pinned", "--to", "mv2", "--live")
    assert live.returncode != 0 and "CRIU" in live.stderr
    copies = site.copies("pinned")
    assert list(copies) == ["mv1"] and copies["mv1"]["State"]["Running"] is True
    with httpx.Client(base_url=site.gateway.url, verify=site.gateway.verify(),
                      headers={"Authorization": f"Bearer {site.gateway.token}"}) as client:
        assert client.post("/v1/nodes/mv1/containers/pinned/move?to=mv1").status_code == 400
        assert client.post("/v1/nodes/mv1/containers/nothere/move?to=mv2").status_code == 404
