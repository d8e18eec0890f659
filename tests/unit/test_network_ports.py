"""Published ports: -p parsing, host port resolution and conflicts, iptables rule generation."""

from __future__ import annotations

import pytest

from wharf.daemon.core.network import portmap
from wharf.daemon.core.network.portmap import BridgeNet, Chains
from wharf.daemon.core.network.ports import (
    ANY_IP,
    PortBinding,
    PortRequest,
    parse_publish,
    resolve,
)
from wharf.errors import Conflict, InvalidArgument

CID = "c" * 64


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("80", [PortRequest(80)]),
        ("8080:80", [PortRequest(80, "tcp", ANY_IP, 8080, 8080)]),
        ("127.0.0.1:18080:80/udp", [PortRequest(80, "udp", "127.0.0.1", 18080, 18080)]),
        ("127.0.0.1::53/UDP", [PortRequest(53, "udp", "127.0.0.1")]),
        ("8000-8001:80-81", [PortRequest(80, "tcp", ANY_IP, 8000, 8000),
                             PortRequest(81, "tcp", ANY_IP, 8001, 8001)]),
        ("9000-9009:80", [PortRequest(80, "tcp", ANY_IP, 9000, 9009)]),
        ("80-81", [PortRequest(80), PortRequest(81)]),
    ],
)
def test_parse_publish(spec: str, expected: list[PortRequest]) -> None:
    assert parse_publish(spec) == expected


@pytest.mark.parametrize(
    "spec",
    ["", "x", "0", "70000", "80/sctp", "1.2.3:80:80", "8000-8002:80-81", "[::1]:80:80", "90-80"],
)
def test_parse_publish_refuses(spec: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_publish(spec)


def _binding(cid: str, ip: str, port: int, proto: str = "tcp") -> PortBinding:
    return PortBinding(cid, ip, port, proto, "10.123.0.2", 80, "wtestbr0")


def test_resolve_checks_other_containers_and_host_processes() -> None:
    theirs = [_binding("d" * 64, ANY_IP, 8080)]
    with pytest.raises(Conflict, match="already published by container dddddddddddd"):
        resolve(CID, parse_publish("127.0.0.1:8080:80"), "10.1.0.2", "br", theirs,
                is_free=lambda *_: True)
    with pytest.raises(Conflict, match="in use by a host process"):
        resolve(CID, parse_publish("8081:80"), "10.1.0.2", "br", theirs, is_free=lambda *_: False)
    # the same port over udp, or another port, is fine
    ok = resolve(CID, parse_publish("8080:80/udp"), "10.1.0.2", "br", theirs,
                 is_free=lambda *_: True)
    assert ok == [PortBinding(CID, ANY_IP, 8080, "udp", "10.1.0.2", 80, "br")]


def test_resolve_picks_first_free_of_a_range_and_ephemeral_ports() -> None:
    busy = {9000, 9001}
    got = resolve(CID, parse_publish("9000-9003:80") + parse_publish("81"), "10.1.0.2", "br",
                  [], is_free=lambda _ip, port, _p: port not in busy, ephemeral=(50000, 50010))
    assert [(b.host_port, b.container_port) for b in got] == [(9002, 80), (50000, 81)]
    with pytest.raises(Conflict, match="no free port"):
        resolve(CID, parse_publish("9000-9001:80"), "10.1.0.2", "br", [],
                is_free=lambda _ip, port, _p: port not in busy)


def test_resolve_refuses_duplicates_within_one_request() -> None:
    with pytest.raises(Conflict, match=f"published by container {CID[:12]}"):
        resolve(CID, parse_publish("8080:80") + parse_publish("8080:81"), "10.1.0.2", "br", [],
                is_free=lambda *_: True)


def test_binding_rules_carry_the_container_comment() -> None:
    rules = portmap.binding_rules(Chains("WTEST"), _binding(CID, "127.0.0.1", 18080))
    assert rules == [
        ("nat", f"-A WTEST -d 127.0.0.1/32 -p tcp -m tcp --dport 18080 -m comment --comment "
                f"wharf:{CID} -j DNAT --to-destination 10.123.0.2:80"),
        ("filter", f"-A WTEST-FORWARD -d 10.123.0.2/32 -o wtestbr0 -p tcp -m tcp --dport 80 "
                   f"-m comment --comment wharf:{CID} -j ACCEPT"),
    ]
    any_ip = portmap.binding_rules(Chains(), _binding(CID, ANY_IP, 80, "udp"))[0][1]
    assert any_ip.startswith("-A WHARF -p udp -m udp --dport 80 ")


def test_network_rules_masquerade_loopback_and_isolate_internal() -> None:
    rules = portmap.network_rules(Chains("W"), BridgeNet("br1", "10.123.0.0/24"))
    assert ("nat", "-A W-POSTROUTING -s 127.0.0.0/8 -o br1 -m comment --comment "
                   "wharf-net:br1 -j MASQUERADE") in rules
    assert any("-s 10.123.0.0/24 ! -o br1" in r for _, r in rules)
    internal = portmap.network_rules(Chains("W"), BridgeNet("br1", "10.123.0.0/24", True))
    assert not any("-s 10.123.0.0/24" in r for _, r in internal)
    assert sum("-j DROP" in r for _, r in internal) == 2


def test_deletions_match_only_the_owner_in_our_chains() -> None:
    saved = "\n".join([
        "*nat",
        ":WTEST - [0:0]",
        f'-A WTEST -p tcp -m tcp --dport 1 -m comment --comment "wharf:{CID}" -j DNAT '
        "--to-destination 10.0.0.2:1",
        '-A WTEST -p tcp -m tcp --dport 2 -m comment --comment "wharf:other" -j DNAT '
        "--to-destination 10.0.0.3:1",
        f'-A OTHER -m comment --comment "wharf:{CID}" -j ACCEPT',
        "COMMIT",
    ])
    assert portmap.deletions(saved, ["WTEST"], {f"wharf:{CID}"}) == [
        f'-D WTEST -p tcp -m tcp --dport 1 -m comment --comment "wharf:{CID}" -j DNAT '
        "--to-destination 10.0.0.2:1"
    ]
    assert portmap.restore_script("nat", ["-F X"]) == "*nat\n-F X\nCOMMIT\n"
