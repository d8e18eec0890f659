"""``wharf stats`` and ``wharf events`` through the gateway, end to end: a real gateway serving
HTTPS, RabbitMQ (a vhost of the test's own), and a real wharfd on mutual TLS that advertises
itself in its heartbeat; the CLI with ``--node`` and ``--all-nodes``, as a user runs it.

- ``--node N stats --no-stream`` and the live stream reach the node's daemon through the
  gateway (relayed, with a ``read`` token enough);
- ``events`` from the cluster's log, filtered by the gateway (docker's filters and ``node``),
  within ``--since``/``--until``, followed live; a filter it does not know is its 400.

The node is ``se1`` (a broker account no other test uses). Everything is removed at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.daemon_fixture import Daemon, running_daemon
from tests.integration.conftest import NodeAccount, SeededRegistry
from tests.integration.gateway_fixture import Gateway, free_port, nodes, running_gateway, wait_for
from tests.integration.test_stats_live import ROW, _lines, _until

pytestmark = [pytest.mark.integration, pytest.mark.slow]
WHARF = str(Path(sys.executable).parent / "wharf")
NODE = "se1"


@dataclass
class Site:
    gateway: Gateway
    daemon: Daemon
    env: dict[str, str]

    def wharf(self, *args: str, node: bool = True, token_file: Path | None = None,
              timeout: float = 60) -> subprocess.CompletedProcess[str]:
        env = self.env if token_file is None else {**self.env, "WHARF_TOKEN_FILE": str(token_file)}
        return subprocess.run([WHARF, *(["--node", NODE] if node else []), *args],
                              capture_output=True, text=True, timeout=timeout, env=env,
                              check=False)


@pytest.fixture
def site(amqp_url: str, node_account: NodeAccount, seeded_registry: SeededRegistry,
         certs: Path, tmp_path: Path) -> Iterator[Site]:
    port = free_port()
    tcp = ["-H", f"tcp://127.0.0.1:{port}", "--tlsverify", "--tlscacert", str(certs / "ca.pem"),
           "--tlscert", str(certs / "server-cert.pem"), "--tlskey", str(certs / "server-key.pem")]
    env = {"WHARF_AMQP_URL": node_account(NODE), "WHARF_NODE_NAME": NODE,
           "WHARF_HEARTBEAT_INTERVAL": "0.5", "WHARF_SNAPSHOT_INTERVAL": "2"}
    with running_gateway(tmp_path / "gateway", amqp_url, tls=certs) as gateway, \
            running_daemon(tmp_path / NODE, mirrors=[seeded_registry.registry.url],
                           extra_args=tcp, env=env) as daemon:
        with gateway.client() as client:
            wait_for(lambda: nodes(client).get(NODE, {}).get("Status") == "ready")
            pulled = client.post(f"/v1/nodes/{NODE}/images/create?fromImage=busybox&tag=latest")
            assert pulled.status_code == 200, pulled.text
        token_file = tmp_path / "token"
        token_file.write_text(gateway.token + "\n")
        token_file.chmod(0o600)
        clean = {k: v for k, v in os.environ.items() if not k.startswith("WHARF_")}
        site = Site(gateway, daemon, {**clean, "WHARF_GATEWAY": gateway.url,
                                      "WHARF_GATEWAY_CACERT": str(certs / "ca.pem"),
                                      "WHARF_TOKEN_FILE": str(token_file),
                                      "WHARF_CONFIG": str(tmp_path / "wharf-config")})
        try:
            yield site
        finally:
            for record in json.loads(daemon.request("GET", "/containers/json?all=1")[1]):
                daemon.request("DELETE", f"/containers/{record['Id']}?force=1")


def _reader(site: Site, tmp_path: Path) -> Path:
    reader = tmp_path / "read-token"
    reader.write_text(site.gateway.add_token("viewer", "read") + "\n")
    reader.chmod(0o600)
    return reader


def test_stats_through_the_gateway(site: Site, tmp_path: Path) -> None:
    made = site.wharf("run", "-d", "--name", "busy", "busybox", "sleep", "300")
    assert made.returncode == 0, made.stderr
    reader = _reader(site, tmp_path)  # stats is a read
    once = site.wharf("stats", "--no-stream", "--format",
                      "{{.Name}} {{.CPUPerc}} {{.MemUsage}} {{.PIDs}}", "busy",
                      token_file=reader)
    assert once.returncode == 0, once.stderr
    row = ROW.fullmatch(once.stdout.strip())
    assert row is not None and (row["name"], row["pids"]) == ("busy", "1"), once.stdout
    table = site.wharf("stats", "--no-stream")  # no names: the node's running containers
    assert table.returncode == 0, table.stderr
    assert [line.split()[1] for line in table.stdout.splitlines()[1:]] == ["busy"]
    missing = site.wharf("stats", "--no-stream", "nothing-here")
    assert missing.returncode == 1 and "nothing-here" in missing.stderr
    proc = subprocess.Popen([WHARF, "--node", NODE, "stats", "--format",
                             "{{.Name}} {{.CPUPerc}} {{.MemUsage}} {{.PIDs}}", "busy"],
                            env=site.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None
        lines = _lines(proc.stdout)
        for _ in range(3):  # the node's stream, relayed: frame after frame
            assert ROW.fullmatch(_until(lines, ROW))
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()


def test_events_through_the_gateway_filtered(site: Site, tmp_path: Path) -> None:
    since = f"{time.time() - 1:.3f}"
    for name in ("alpha", "beta"):
        made = site.wharf("run", "-d", "--label", f"tier={name}", "--name", name, "busybox",
                          "sleep", "300")
        assert made.returncode == 0, made.stderr
    assert site.wharf("stop", "-t", "0", "beta").returncode == 0
    fmt = "{{.node}} {{.Action}} {{.Actor.Attributes.name}}"
    until = f"{time.time() + 1:.3f}"

    def events(*args: str, node: bool = False) -> list[str]:
        done = site.wharf("events", "--since", since, "--until", until, "--format", fmt,
                          *args, node=node, timeout=30)
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()

    # the node's events reach the gateway's log a moment later
    wait_for(lambda: f"{NODE} die beta" in events("--all-nodes"), timeout=20)
    assert events("--all-nodes", "-f", "event=start") == [f"{NODE} start alpha",
                                                          f"{NODE} start beta"]
    assert events("-f", "container=beta", "-f", "event=die", node=True) == [f"{NODE} die beta"]
    assert events("--all-nodes", "-f", "label=tier=alpha", "-f", "type=container",
                  "-f", "event=create") == [f"{NODE} create alpha"]
    assert events("--all-nodes", "-f", "node=elsewhere") == []
    reader = _reader(site, tmp_path)
    bad = site.wharf("events", "--all-nodes", "-f", "colour=red", node=False,
                     token_file=reader)
    assert bad.returncode == 1 and "invalid filter 'colour'" in bad.stderr, bad.stderr
    worse = site.wharf("events", "--all-nodes", "-f", "type=spaceship", node=False)
    assert worse.returncode == 1 and "type=spaceship" in worse.stderr
    # followed: only what happens from now on, as it happens
    proc = subprocess.Popen([WHARF, "events", "--all-nodes", "-f", "event=die", "--format",
                             fmt], env=site.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        lines = _lines(proc.stdout)
        time.sleep(1)  # the stream is open before the stop
        assert site.wharf("stop", "-t", "0", "alpha").returncode == 0
        assert _until(lines, rf"{NODE} die \S+") == f"{NODE} die alpha"
    finally:
        proc.kill()
        proc.wait()
