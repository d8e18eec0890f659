"""The netlink and iptables building blocks against the real kernel (root, no fork for netns).

Names cannot collide with a developer's: bridges and veths start with ``wt``, chains with
``WT``, subnets are 10.123.x.0/24. Every test removes what it made, also when it fails.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from wharf.daemon.core.network import netlink
from wharf.daemon.core.network.portmap import BridgeNet, PortMapper
from wharf.daemon.core.network.ports import parse_publish, resolve
from wharf.errors import Conflict, InvalidArgument

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for netns, links and iptables"),
]


def _links() -> str:
    return subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout


def _iptables() -> str:
    return subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout


def _in_ns(path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["nsenter", f"--net={path}", *argv], capture_output=True, text=True,
                          timeout=30, check=False)


def _no_proxy() -> urllib.request.OpenerDirector:
    """An opener that ignores any http_proxy in the environment (the target is loopback)."""
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_listening(path: Path, port: int) -> None:
    """Poll until something listens on ``port`` inside the namespace (not a timed assertion)."""
    for _ in range(200):
        if f":{port} " in _in_ns(path, "ss", "-ltnH").stdout:
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on :{port} in {path}")


@pytest.fixture
def tag() -> str:
    return secrets.token_hex(3)


@pytest.fixture
def bridge(tag: str) -> Iterator[tuple[str, str]]:
    """A test bridge ``wt<tag>`` on 10.123.<n>.1/24; deleted afterwards."""
    name = f"wt{tag}"
    subnet = f"10.123.{int(tag[:2], 16)}"
    netlink.ensure_bridge(name, f"{subnet}.1/24")
    try:
        yield name, subnet
    finally:
        netlink.delete_bridge(name)
    assert name not in _links()


@pytest.fixture
def nsdir(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "netns"
    folder.mkdir()
    yield folder
    for pin in folder.iterdir():
        netlink.delete_netns(pin)


def test_netns_is_created_without_forking_and_deleted(nsdir: Path) -> None:
    before = threading.active_count()
    children_before = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text()
    path = nsdir / "a"
    netlink.create_netns(path)
    # no helper process was left behind and no thread is still in the namespace
    assert Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text() == children_before
    assert threading.active_count() == before
    assert os.readlink("/proc/self/ns/net") == os.readlink("/proc/thread-self/ns/net")
    assert os.stat(path).st_ino != os.stat("/proc/self/ns/net").st_ino
    assert netlink.netns_links(path) == ["lo"]
    assert "UP" in _in_ns(path, "ip", "-o", "link", "show", "lo").stdout
    with pytest.raises(Conflict):
        netlink.create_netns(path)
    netlink.delete_netns(path)
    assert not path.exists()
    netlink.delete_netns(path)  # idempotent


def test_two_endpoints_ping_each_other_and_detach_cleanly(
    bridge: tuple[str, str], nsdir: Path, tag: str
) -> None:
    name, subnet = bridge
    netlink.ensure_bridge(name, f"{subnet}.1/24")  # idempotent
    a, b = nsdir / "a", nsdir / "b"
    try:
        for path, host, last in ((a, f"wt{tag}a", 2), (b, f"wt{tag}b", 3)):
            netlink.create_netns(path)
            netlink.attach_endpoint(path, name, host, f"{subnet}.{last}/24", f"{subnet}.1",
                                    f"02:42:0a:7b:00:{last:02x}")
        assert sorted(netlink.netns_links(a)) == ["eth0", "lo"]
        ping = _in_ns(a, "busybox", "ping", "-c", "1", "-W", "5", f"{subnet}.3")
        assert ping.returncode == 0, ping.stdout + ping.stderr
        gw = _in_ns(b, "busybox", "ping", "-c", "1", "-W", "5", f"{subnet}.1")
        assert gw.returncode == 0, gw.stdout + gw.stderr
        assert f"default via {subnet}.1 dev eth0" in _in_ns(a, "ip", "route").stdout
        assert "02:42:0a:7b:00:02" in _in_ns(a, "ip", "-o", "link", "show", "eth0").stdout
        with pytest.raises(Conflict):
            netlink.attach_endpoint(a, name, f"wt{tag}a", f"{subnet}.9/24", None,
                                    "02:42:00:00:00:09")
    finally:
        for host in (f"wt{tag}a", f"wt{tag}b"):
            netlink.detach_endpoint(host)
        netlink.delete_netns(a)
        netlink.delete_netns(b)
    links = _links()
    assert f"wt{tag}a" not in links and f"wt{tag}b" not in links
    assert list(nsdir.iterdir()) == []


def test_bridge_refuses_a_subnet_overlapping_a_host_route(
    bridge: tuple[str, str], tag: str
) -> None:
    name, subnet = bridge
    with pytest.raises(InvalidArgument, match=f"overlaps the host route {subnet}.0/24 dev {name}"):
        netlink.ensure_bridge(f"wu{tag}", f"{subnet}.129/25")
    with pytest.raises(Conflict, match="already has address"):
        netlink.ensure_bridge(name, f"{subnet}.254/24")
    assert f"wu{tag}" not in _links()


def test_published_port_reachable_via_loopback_and_rules_removed(
    bridge: tuple[str, str], nsdir: Path, tag: str, tmp_path: Path
) -> None:
    name, subnet = bridge
    mapper = PortMapper(prefix=f"WT{tag.upper()}")
    path = nsdir / "web"
    cid = tag * 10 + "abcd"
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("hello from the netns\n")
    server = None
    port = _free_port()
    try:
        netlink.create_netns(path)
        netlink.attach_endpoint(path, name, f"wt{tag}w", f"{subnet}.2/24", f"{subnet}.1",
                                "02:42:0a:7b:00:02")
        server = subprocess.Popen(["nsenter", f"--net={path}", "busybox", "httpd", "-f",
                                   "-p", "80", "-h", str(www)])
        _wait_listening(path, 80)
        mapper.ensure_chains()
        mapper.add_network(BridgeNet(name, f"{subnet}.0/24"))
        bindings = resolve(cid, parse_publish(f"127.0.0.1:{port}:80"), f"{subnet}.2", name, [])
        mapper.add(cid, bindings)
        mapper.add(cid, bindings)  # idempotent: replaces, never duplicates
        assert len(mapper.rules_of(cid)) == 2
        mapper.restore([BridgeNet(name, f"{subnet}.0/24")], bindings)
        assert len(mapper.rules_of(cid)) == 2
        assert _iptables().count(f"wharf-net:{name}") == 4
        with _no_proxy().open(f"http://127.0.0.1:{port}/", timeout=10) as reply:
            assert reply.read() == b"hello from the netns\n"
        mapper.remove(cid)
        assert mapper.rules_of(cid) == []
    finally:
        if server is not None:
            server.terminate()
            server.wait()
        mapper.remove(cid)
        mapper.remove_network(name)
        mapper.remove_chains()
        netlink.detach_endpoint(f"wt{tag}w")
        netlink.delete_netns(path)
    saved = _iptables()
    assert f"WT{tag.upper()}" not in saved and cid not in saved and name not in saved
