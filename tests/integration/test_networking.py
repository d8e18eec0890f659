"""Networking wired into containers, end to end: a real wharfd (its own bridge and subnet),
real crun, the session registry's busybox, the kernel's veths/netns and iptables.

Two containers on a user network reach each other by name and alias through the embedded DNS;
on the default bridge names do not resolve; ``-p`` publishes through 127.0.0.1; ``rm -f``
leaves no port, rule, veth or netns behind; a ``kill -9``-ed daemon comes back with the
running container's network and published port working; network rm is refused while in use;
connect/disconnect while running; ``--ip``. Every test removes what it creates.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon_fixture import Daemon, running_daemon
from tests.integration.conftest import SeededRegistry
from wharf.daemon.core.network.ports import ANY_IP

pytestmark = [pytest.mark.integration]
WHARF = str(Path(sys.executable).parent / "wharf")
DOCKER = shutil.which("docker")
HTTPD = "mkdir -p /www && echo hello-from-$(hostname) > /www/index.html && httpd -f -p 80 -h /www"


def wharf(daemon: Daemon, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHARF_")}
    env["WHARF_CONFIG"] = str(daemon.run_dir / "wharf-config")
    return subprocess.run([WHARF, "-H", daemon.host, *args], capture_output=True, text=True,
                          timeout=timeout, check=False, env=env)


def ok(daemon: Daemon, *args: str) -> str:
    result = wharf(daemon, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def pull(daemon: Daemon) -> None:
    status, _ = daemon.request("POST", "/images/create?fromImage=busybox&tag=latest")
    assert status == 200


def clean(daemon: Daemon) -> None:
    for record in json.loads(daemon.request("GET", "/containers/json?all=1")[1]):
        daemon.request("DELETE", f"/containers/{record['Id']}?force=1&v=1")
    for net in json.loads(daemon.request("GET", "/networks")[1]):
        if net["Name"] not in ("bridge", "host", "none"):
            daemon.request("DELETE", f"/networks/{net['Id']}")


@pytest.fixture(scope="module")
def daemon(seeded_registry: SeededRegistry, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Daemon]:
    base = tmp_path_factory.mktemp("wharfd-net")
    with running_daemon(base, mirrors=[seeded_registry.registry.url],
                        env={"WHARF_BRIDGE_SUBNET": "10.124.200.0/24"}) as running:
        pull(running)
        try:
            yield running
        finally:
            clean(running)


def fetch(url: str, attempts: int = 50) -> str:
    """GET ``url`` (httpd in a fresh container may need a moment to listen)."""
    last: Exception | None = None
    for _ in range(attempts):
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:  # noqa: S310 - test URL
                return str(reply.read().decode())
        except OSError as exc:
            last = exc
            time.sleep(0.1)
    raise AssertionError(f"{url} never answered: {last}")


def inspect(daemon: Daemon, name: str) -> dict[str, object]:
    doc = json.loads(ok(daemon, "inspect", name))[0]
    assert isinstance(doc, dict)
    return doc


def test_user_network_names_and_aliases_resolve(daemon: Daemon) -> None:
    try:
        ok(daemon, "network", "create", "--subnet", "10.124.11.0/24", "front")
        ok(daemon, "run", "-d", "--name", "web", "--network", "front", "--network-alias", "www",
           "busybox", "sh", "-c", HTTPD)
        script = ("for i in $(seq 50); do wget -qO- http://{0}/ && exit 0; sleep 0.1; done; "
                  "exit 1")
        for name in ("web", "www"):
            out = ok(daemon, "run", "--rm", "--network", "front", "busybox", "sh", "-c",
                     script.format(name))
            assert out.startswith("hello-from-"), out
        resolv = ok(daemon, "run", "--rm", "--network", "front", "busybox", "cat",
                    "/etc/resolv.conf")
        assert "nameserver 10.124.11.1" in resolv
        nets = inspect(daemon, "web")["NetworkSettings"]
        assert isinstance(nets, dict)
        assert nets["Networks"]["front"]["IPAddress"].startswith("10.124.11.")
        assert nets["Networks"]["front"]["Aliases"] == ["www"]
        # the network is in use: refused
        refused = wharf(daemon, "network", "rm", "front")
        assert refused.returncode != 0 and "front" in refused.stdout + refused.stderr
        # on the default bridge a name does not resolve
        ok(daemon, "run", "-d", "--name", "web-default", "busybox", "sh", "-c", HTTPD)
        lost = wharf(daemon, "run", "--rm", "busybox", "wget", "-T", "2", "-qO-",
                     "http://web-default/")
        assert lost.returncode != 0
        own = ok(daemon, "run", "--rm", "busybox", "cat", "/etc/hosts")
        assert "10.124.200." in own
    finally:
        wharf(daemon, "rm", "-f", "web", "web-default")
        wharf(daemon, "network", "rm", "front")
    assert "front" not in ok(daemon, "network", "ls")


def _veths(prefix: str) -> set[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    return {line.split(": ")[1].split("@")[0] for line in out.splitlines()
            if line.split(": ")[1].startswith(prefix)}


def test_published_port_and_nothing_left_after_rm(daemon: Daemon) -> None:
    bridge = inspect(daemon, "bridge")["Options"]["com.docker.network.bridge.name"]
    veth_prefix = "v" + str(bridge)[:4]
    before = _veths(veth_prefix)
    cid = ok(daemon, "run", "-d", "-p", "127.0.0.1:18480:80", "busybox", "sh", "-c",
             HTTPD).strip()
    try:
        assert fetch("http://127.0.0.1:18480/").startswith("hello-from-")
        assert ok(daemon, "port", cid).strip() == "80/tcp -> 127.0.0.1:18480"
        assert ok(daemon, "port", cid, "80").strip() == "127.0.0.1:18480"
        assert "127.0.0.1:18480->80/tcp" in ok(daemon, "ps")
        settings = inspect(daemon, cid)["NetworkSettings"]
        assert settings["Ports"] == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18480"}]}
        assert settings["IPAddress"].startswith("10.124.200.")
        # the same port for another container: a conflict at start
        clash = wharf(daemon, "run", "-d", "-p", "127.0.0.1:18480:80", "busybox", "sleep", "9")
        assert clash.returncode != 0 and "18480" in clash.stderr
    finally:
        ok(daemon, "rm", "-f", cid)
        for record in json.loads(daemon.request("GET", "/containers/json?all=1")[1]):
            daemon.request("DELETE", f"/containers/{record['Id']}?force=1")
    with socket.socket() as probe:  # the port is free again
        probe.bind(("127.0.0.1", 18480))
    saved = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    assert cid not in saved
    assert _veths(veth_prefix) == before
    assert not (daemon.run_dir / "netns" / cid).exists()


def test_publish_all_ip_and_modes(daemon: Daemon) -> None:
    try:
        ok(daemon, "network", "create", "--subnet", "10.124.12.0/24", "--label", "k=v", "back")
        out = ok(daemon, "run", "--rm", "--network", "back", "--ip", "10.124.12.77", "busybox",
                 "ip", "-o", "-4", "addr", "show", "eth0")
        assert "10.124.12.77/24" in out
        none = ok(daemon, "run", "--rm", "--network", "none", "busybox", "ip", "-o", "link")
        assert "eth0" not in none and "lo" in none
        host = ok(daemon, "run", "--rm", "--network", "host", "busybox", "ip", "-o", "link")
        assert "eth0" in host
        cid = ok(daemon, "create", "-P", "--expose", "80", "busybox", "sh", "-c",
                 HTTPD).strip()
        ok(daemon, "start", cid)
        host_ip, _, port = ok(daemon, "port", cid, "80").strip().partition(":")
        assert host_ip == ANY_IP and 49153 <= int(port) <= 65535
        assert fetch(f"http://127.0.0.1:{port}/").startswith("hello-from-")
        ok(daemon, "rm", "-f", cid)
        ok(daemon, "run", "-d", "--name", "owner", "--network", "back", "--ip", "10.124.12.78",
           "busybox", "sleep", "300")
        joined = ok(daemon, "run", "--rm", "--network", "container:owner", "busybox", "ip",
                    "-o", "-4", "addr", "show", "eth0")
        assert "10.124.12.78/24" in joined
        ok(daemon, "rm", "-f", "owner")
        listed = json.loads(ok(daemon, "network", "ls", "--format", "json", "-f", "label=k=v")
                            .splitlines()[0])
        assert listed["Name"] == "back"
    finally:
        wharf(daemon, "rm", "-f", "owner")
        wharf(daemon, "network", "rm", "back")


def test_connect_and_disconnect_while_running(daemon: Daemon) -> None:
    try:
        ok(daemon, "network", "create", "--subnet", "10.124.13.0/24", "side")
        ok(daemon, "run", "-d", "--name", "mover", "busybox", "sleep", "300")
        ok(daemon, "network", "connect", "--ip", "10.124.13.9", "--alias", "mv", "side",
           "mover")
        links = ok(daemon, "exec", "mover", "ip", "-o", "-4", "addr")
        assert "10.124.13.9/24" in links
        info = inspect(daemon, "mover")["NetworkSettings"]["Networks"]
        assert set(info) == {"bridge", "side"}
        assert json.loads(ok(daemon, "network", "inspect", "side"))[0]["Containers"]
        ok(daemon, "network", "disconnect", "side", "mover")
        assert "10.124.13.9" not in ok(daemon, "exec", "mover", "ip", "-o", "-4", "addr")
        assert set(inspect(daemon, "mover")["NetworkSettings"]["Networks"]) == {"bridge"}
        missing = wharf(daemon, "network", "connect", "nosuchnet", "mover")
        assert missing.returncode != 0 and "not found" in missing.stderr
        ok(daemon, "network", "rm", "side")
    finally:
        wharf(daemon, "rm", "-f", "mover")
        wharf(daemon, "network", "rm", "side")


def test_unknown_network_and_bad_publish_are_refused(daemon: Daemon) -> None:
    status, body = daemon.request(
        "POST", "/containers/create", json.dumps({
            "Image": "busybox", "Cmd": ["true"],
            "HostConfig": {"NetworkMode": "nosuchnet"}}).encode(),
        {"Content-Type": "application/json"})
    assert status == 404 and b"network nosuchnet not found" in body
    status, body = daemon.request(
        "POST", "/containers/create", json.dumps({
            "Image": "busybox", "Cmd": ["true"],
            "HostConfig": {"PortBindings": {"80/xyz": [{"HostPort": "1"}]}}}).encode(),
        {"Content-Type": "application/json"})
    assert status == 400 and b"protocol" in body
    bad = wharf(daemon, "run", "--rm", "-p", "1-3:4-9", "busybox", "true")
    assert bad.returncode != 0 and "ranges" in bad.stderr
    status, _ = daemon.request("DELETE", "/networks/bridge")
    assert status == 409


@pytest.mark.slow
def test_kill9_restart_keeps_network_and_port(seeded_registry: SeededRegistry,
                                              tmp_path: Path) -> None:
    env = {"WHARF_BRIDGE_SUBNET": "10.124.201.0/24", "WHARF_BRIDGE": f"wr{os.getpid() % 10000}"}
    with running_daemon(tmp_path, mirrors=[seeded_registry.registry.url], env=env) as first:
        pull(first)
        cid = ""
        try:
            ok(first, "network", "create", "--subnet", "10.124.14.0/24", "keep")
            cid = ok(first, "run", "-d", "--name", "kept", "--network", "keep", "-p",
                     "127.0.0.1:18481:80", "busybox", "sh", "-c", HTTPD).strip()
            assert fetch("http://127.0.0.1:18481/").startswith("hello-from-")
            first.process.kill()
            first.process.wait()
            # the same data root, run dir and bridge: live-restore
            with running_daemon(tmp_path, mirrors=[seeded_registry.registry.url],
                                env=env) as second:
                try:
                    assert fetch("http://127.0.0.1:18481/").startswith("hello-from-")
                    assert inspect(second, "kept")["State"]["Running"] is True
                    out = ok(second, "run", "--rm", "--network", "keep", "busybox", "wget",
                             "-qO-", "http://kept/")
                    assert out.startswith("hello-from-")
                finally:
                    clean(second)
            saved = subprocess.run(["iptables-save"], capture_output=True, text=True,
                                   check=True).stdout
            assert cid not in saved
        finally:
            if first.process.poll() is None:
                clean(first)


@pytest.mark.docker_cli
@pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed")
def test_the_docker_cli_drives_networks_and_ports(daemon: Daemon, tmp_path: Path) -> None:
    env = {**os.environ, "DOCKER_CONFIG": str(tmp_path / "docker-config")}

    def docker(*args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([str(DOCKER), "-H", daemon.host, *args], capture_output=True,
                                text=True, timeout=60, check=False, env=env)
        assert result.returncode == code, result.stdout + result.stderr
        return result

    try:
        net_id = docker("network", "create", "--subnet", "10.124.15.0/24", "--label", "a=b",
                        "dnet").stdout.strip()
        assert len(net_id) == 64
        listing = docker("network", "ls").stdout
        assert "dnet" in listing and "bridge" in listing and "host" in listing
        assert docker("network", "ls", "-q", "--filter", "label=a=b").stdout.strip() == \
            net_id[:12]
        info = json.loads(docker("network", "inspect", "dnet").stdout)[0]
        assert info["IPAM"]["Config"][0]["Subnet"] == "10.124.15.0/24"
        docker("run", "-d", "--name", "dweb", "--network", "dnet", "--network-alias", "dw",
               "-p", "127.0.0.1:18482:80", "busybox", "sh", "-c", HTTPD)
        assert fetch("http://127.0.0.1:18482/").startswith("hello-from-")
        assert docker("port", "dweb").stdout.strip() == "80/tcp -> 127.0.0.1:18482"
        assert "127.0.0.1:18482->80/tcp" in docker("ps").stdout
        out = docker("run", "--rm", "--network", "dnet", "busybox", "wget", "-qO-",
                     "http://dw/").stdout
        assert out.startswith("hello-from-")
        docker("run", "-d", "--name", "dother", "busybox", "sleep", "300")
        docker("network", "connect", "--ip", "10.124.15.50", "dnet", "dother")
        assert "10.124.15.50" in docker("exec", "dother", "ip", "-o", "-4", "addr").stdout
        docker("network", "disconnect", "dnet", "dother")
        refused = docker("network", "rm", "dnet", code=1)
        assert "active endpoints" in refused.stderr
        docker("rm", "-f", "dweb", "dother")
        assert docker("network", "rm", "dnet").stdout.strip() == "dnet"
    finally:
        subprocess.run([str(DOCKER), "-H", daemon.host, "rm", "-f", "dweb", "dother"],
                       capture_output=True, check=False, env=env)
        subprocess.run([str(DOCKER), "-H", daemon.host, "network", "rm", "dnet"],
                       capture_output=True, check=False, env=env)


def test_a_bridge_subnet_overlapping_a_host_route_stops_the_daemon(tmp_path: Path) -> None:
    default = subprocess.run(["ip", "-o", "-4", "route", "show", "default"],
                             capture_output=True, text=True, check=True).stdout.split()
    device = default[default.index("dev") + 1]
    route = subprocess.run(["ip", "-o", "-4", "route", "show", "dev", device, "scope", "link"],
                           capture_output=True, text=True, check=True).stdout.split()
    assert route, f"no link-scope route on {device}"
    with pytest.raises(RuntimeError, match="overlaps the host route"), \
            running_daemon(tmp_path, env={"WHARF_BRIDGE_SUBNET": route[0]}):
        pass
