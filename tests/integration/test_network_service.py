"""NetworkService end to end on the real kernel: networks, modes, DNS, ports, restore, cleanup.

Containers are stood in for by bare namespaces (the service only needs the container id);
programs run in them with ``nsenter --net``. All names are test-only (``wt``/``wv``/``WT``,
10.123.x.0/24); no traffic leaves loopback and the test's own namespaces.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from wharf.daemon.core.network import netlink
from wharf.daemon.core.network.dns import DnsServer
from wharf.daemon.core.network.ports import parse_publish
from wharf.daemon.core.network.service import NetworkService, Settings
from wharf.daemon.core.state import StateStore
from wharf.errors import Conflict, NotFound

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for netns, links and iptables"),
]


def _run(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30).stdout


def _in_ns(path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["nsenter", f"--net={path}", *argv], capture_output=True, text=True,
                          timeout=30, check=False)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class World:
    service: NetworkService
    settings: Settings
    state: StateStore
    run_dir: Path
    tag: str
    octet: int


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    tag = secrets.token_hex(2)
    octet = int(tag[:2], 16) & 0xFE  # default bridge on .octet, the user network on .octet+1
    settings = Settings(
        default_bridge=f"wt{tag}0", default_subnet=f"10.123.{octet}.0/24",
        bridge_prefix=f"wt{tag}", veth_prefix=f"wv{tag}", chain_prefix=f"WT{tag.upper()}",
        enable_ip_forward=False,
    )
    state = StateStore(tmp_path / "state.db")
    state.open()
    run_dir = tmp_path / "run"
    service = NetworkService(state, run_dir, settings)
    try:
        yield World(service, settings, state, run_dir, tag, octet)
    finally:
        service = NetworkService(state, run_dir, settings)
        for container_id in {a.container_id for a in service.ipam.allocations()}:
            service.teardown_container(container_id)
        if service.netns_dir.is_dir():
            for pin in service.netns_dir.iterdir():
                netlink.delete_netns(pin)
        for network in service.list():
            service.portmap.remove_network(network.bridge)
            netlink.delete_bridge(network.bridge)
        service.portmap.remove_chains()
        state.close()
    links, saved = _run("ip", "-o", "link"), _run("iptables-save")
    assert f"wt{tag}" not in links and f"wv{tag}" not in links
    assert f"WT{tag.upper()}" not in saved and f"wt{tag}" not in saved


@pytest.fixture
def dns_loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join()
    loop.close()


def _cid(n: int) -> str:
    return f"{n:02d}" + secrets.token_hex(31)


def _nslookup(path: Path, name: str, server: str) -> str:
    return _in_ns(path, "busybox", "nslookup", name, server).stdout


def test_user_network_names_ports_restore_and_cleanup(
    world: World, dns_loop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    svc, octet = world.service, world.octet
    svc.restore([])
    default = svc.default_network()
    assert (default.bridge, str(default.subnet)) == (world.settings.default_bridge,
                                                    f"10.123.{octet}.0/24")
    net = svc.create_network(f"wtnet-{world.tag}", subnet=f"10.123.{octet + 1}.0/24",
                             labels={"t": "1"})
    gw = str(net.gateway)
    web, client, plain, none, stale = (_cid(i) for i in range(5))
    port = _free_port()

    web_net = svc.setup_container(web, net.name, name="web", aliases=["www"],
                                  ports=parse_publish(f"127.0.0.1:{port}:80"))
    client_net = svc.setup_container(client, net.name, name="client")
    svc.setup_container(plain, "bridge", name="plain")
    none_net = svc.setup_container(none, "none")
    assert svc.setup_container("x" * 64, "host").netns_path is None
    assert svc.setup_container("y" * 64, f"container:{web}").netns_path == web_net.netns_path
    svc.setup_container(stale, net.name, name="stale")
    assert none_net.netns_path is not None and netlink.netns_links(none_net.netns_path) == ["lo"]
    web_ip = web_net.endpoints[0].ip
    assert web_net.endpoints[0].gateway == gw

    # --ip taken, port taken by another container, port held by a host process: clear refusals,
    # and nothing is left behind by the refused container.
    with pytest.raises(Conflict, match="already in use"):
        svc.setup_container(_cid(7), net.name, ip=web_ip)
    with pytest.raises(Conflict, match="already published by container"):
        svc.setup_container(_cid(8), net.name, ports=parse_publish(f"127.0.0.1:{port}:80"))
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        held = holder.getsockname()[1]
        with pytest.raises(Conflict, match="in use by a host process"):
            svc.setup_container(_cid(9), net.name, ports=parse_publish(f"127.0.0.1:{held}:80"))
    assert sorted(p.name for p in svc.netns_dir.iterdir()) == sorted([web, client, plain, none,
                                                                      stale])

    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("served by web\n")
    server = DnsServer(svc.dns, upstreams=[])
    httpd = subprocess.Popen(["nsenter", f"--net={web_net.netns_path}", "busybox", "httpd",
                              "-f", "-p", "80", "-h", str(www)])
    try:
        asyncio.run_coroutine_threadsafe(server.listen(net.id, gw, subnet=net.subnet),
                                         dns_loop).result()
        client_ns = client_net.netns_path
        assert client_ns is not None
        for name in ("web", "WWW", web[:12]):
            assert f"Address: {web_ip}" in _nslookup(client_ns, name, gw)
        assert "Address: " + web_ip not in _nslookup(client_ns, "nosuchname", gw)
        assert svc.dns.lookup(default.id, "plain") == []  # the default bridge has no DNS

        # restart: a fresh service over the same state, `stale` is no longer running
        world.service = svc = NetworkService(world.state, world.run_dir, world.settings,
                                             dns=svc.dns)
        svc.dns.remove_network(net.id)
        svc.restore([web, client, plain, none])
        assert svc.dns.lookup(net.id, "www") != []
        assert svc.dns.lookup(net.id, "stale") == []
        assert not (svc.netns_dir / stale).exists()
        assert svc.portmap.rules_of(web) and len(svc.portmap.rules_of(web)) == 2

        for _ in range(200):  # wait for httpd to listen (polling, not a timed assertion)
            if ":80 " in _in_ns(web_net.netns_path, "ss", "-ltnH").stdout:
                break
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port}/"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only
        with opener.open(url, timeout=10) as reply:
            assert reply.read() == b"served by web\n"
        fetched = _in_ns(client_ns, "busybox", "wget", "-qO-", f"http://{web_ip}/")
        assert fetched.stdout == "served by web\n"
    finally:
        httpd.terminate()
        httpd.wait()
        asyncio.run_coroutine_threadsafe(server.close(), dns_loop).result()

    # connect/disconnect while "running"; inspect; removal refused while in use
    extra = svc.connect(client, "bridge")
    assert extra.network == "bridge" and "eth1" in netlink.netns_links(client_ns)
    shape = svc.inspect(net.name)
    assert shape["IPAM"]["Config"] == [{"Subnet": f"10.123.{octet + 1}.0/24", "Gateway": gw}]
    assert shape["Containers"][web]["Name"] == "web" and shape["Labels"] == {"t": "1"}
    with pytest.raises(Conflict, match="active endpoint"):
        svc.remove_network(net.name)
    svc.disconnect(client, "bridge")
    assert "eth1" not in netlink.netns_links(client_ns)
    with pytest.raises(NotFound):
        svc.disconnect(client, "bridge")

    for container_id in (web, client, plain, none, "x" * 64, "y" * 64):
        svc.teardown_container(container_id)
    svc.teardown_container(web)  # idempotent
    assert list(svc.netns_dir.iterdir()) == []
    assert svc.ipam.allocations() == [] and svc.published.all() == []
    assert svc.portmap.rules_of(web) == []
    assert svc.prune() == [net.name]
    assert [n.name for n in svc.list()] == ["bridge"]
    assert net.bridge not in _run("ip", "-o", "link")
    with socket.socket() as again:  # the published port is free again
        again.bind(("127.0.0.1", port))
