"""IPAM over a real state store: unique addresses, reserved addresses, --ip, release, subnets."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest

from wharf.daemon.core.network import ipam
from wharf.daemon.core.network.ipam import Ipam
from wharf.daemon.core.state import StateStore
from wharf.errors import AlreadyExists, Conflict, InvalidArgument, NotFound

NET = ipaddress.IPv4Network


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    state = StateStore(tmp_path / "state.db")
    state.open()
    yield state
    state.close()


def _net(ip: Ipam, name: str = "n1", subnet: str = "10.123.0.0/29") -> ipam.Network:
    sub = NET(subnet)
    return ip.add_network(name, f"br-{name}", sub, ipam.default_gateway(sub))


def test_addresses_skip_network_gateway_and_broadcast_and_run_out(store: StateStore) -> None:
    ip = Ipam(store)
    net = _net(ip)  # 10.123.0.0/29: .1 gateway, .2-.6 usable, .7 broadcast
    got = [str(ip.allocate(net, f"c{i}", f"v{i}").ip) for i in range(5)]
    assert got == ["10.123.0.2", "10.123.0.3", "10.123.0.4", "10.123.0.5", "10.123.0.6"]
    with pytest.raises(Conflict, match="no free address"):
        ip.allocate(net, "c9", "v9")


def test_released_address_is_reused_and_state_survives_reopen(
    store: StateStore, tmp_path: Path
) -> None:
    ip = Ipam(store)
    net = _net(ip)
    first = ip.allocate(net, "a", "va")
    ip.allocate(net, "b", "vb")
    assert ip.release(net.id, "a")
    assert not ip.release(net.id, "a")
    store.close()
    again = StateStore(tmp_path / "state.db")
    again.open()
    reopened = Ipam(again)
    assert [a.container_id for a in reopened.allocations(network_id=net.id)] == ["b"]
    assert reopened.allocate(net, "c", "vc").ip == first.ip
    again.close()


def test_requested_ip_is_honoured_or_refused(store: StateStore) -> None:
    ip = Ipam(store)
    net = _net(ip, subnet="10.123.1.0/24")
    got = ip.allocate(net, "a", "va", ip="10.123.1.50", aliases=["web"], name="one")
    assert str(got.ip) == "10.123.1.50"
    assert got.mac == "02:42:0a:7b:01:32"
    assert got.ip_cidr == "10.123.1.50/24"
    assert got.aliases == ("web",)
    assert ip.allocations(container_id="a")[0].name == "one"
    with pytest.raises(Conflict, match="already in use"):
        ip.allocate(net, "b", "vb", ip="10.123.1.50")
    for bad in ("10.123.1.1", "10.123.1.0", "10.123.1.255", "10.9.9.9"):
        with pytest.raises(InvalidArgument):
            ip.allocate(net, "b", "vb", ip=bad)
    with pytest.raises(InvalidArgument, match="invalid IP address"):
        ip.allocate(net, "b", "vb", ip="nope")
    with pytest.raises(Conflict, match="already connected"):
        ip.allocate(net, "a", "va2")


def test_database_refuses_a_duplicate_address(store: StateStore) -> None:
    ip = Ipam(store)
    net = _net(ip)
    ip.allocate(net, "a", "va")
    with pytest.raises(Exception, match="UNIQUE"), store.tx() as db:
        db.execute(
            "INSERT INTO endpoints (network_id, container_id, name, ip, mac, aliases, host_veth)"
            " VALUES (?, 'b', 'b', '10.123.0.2', 'm', '[]', 'vb')", (net.id,)
        )


def test_networks_unique_name_no_overlap_lookup_and_removal(store: StateStore) -> None:
    ip = Ipam(store)
    net = _net(ip, "front", "10.123.2.0/24")
    with pytest.raises(AlreadyExists):
        _net(ip, "front", "10.123.3.0/24")
    with pytest.raises(Conflict, match="overlaps"):
        _net(ip, "other", "10.123.0.0/16")
    assert ip.find("front").id == net.id
    assert ip.find(net.id[:6]).name == "front"
    with pytest.raises(NotFound):
        ip.find("missing")
    ip.allocate(net, "a", "va")
    with pytest.raises(Conflict, match="active endpoint"):
        ip.remove_network(net.id)
    ip.release(net.id, "a")
    ip.remove_network(net.id)
    assert ip.networks() == []


def test_gateway_must_be_a_host_address_of_the_subnet(store: StateStore) -> None:
    sub = NET("10.123.4.0/24")
    with pytest.raises(InvalidArgument, match="gateway"):
        Ipam(store).add_network("x", "brx", sub, ipaddress.IPv4Address("10.123.5.1"))
    with pytest.raises(InvalidArgument):
        ipam.parse_subnet("10.123.4.1/24")
    with pytest.raises(InvalidArgument):
        ipam.parse_subnet("fd00::/64")


def test_subnet_chooser_follows_docker_pools_and_skips_taken() -> None:
    assert ipam.choose_subnet([]) == NET("172.17.0.0/16")
    taken = [NET("172.17.0.0/16"), NET("172.18.5.0/24")]
    assert ipam.choose_subnet(taken) == NET("172.19.0.0/16")
    everything = [NET("172.16.0.0/12")]
    assert ipam.choose_subnet(everything) == NET("192.168.0.0/20")
    with pytest.raises(Conflict, match="pools"):
        ipam.choose_subnet([NET("0.0.0.0/0")])
