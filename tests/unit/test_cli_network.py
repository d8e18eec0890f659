"""``-p``/``--expose``/``--ip``/``--network-alias`` parsing in the CLI, and the daemon's pure
helpers that validate Docker create bodies (``network.attach``)."""

from __future__ import annotations

from typing import Any

import pytest

from wharf.cli.commands.createbody import endpoints_config, parse_ports
from wharf.cli.failure import CLIError
from wharf.daemon.core.network import attach
from wharf.daemon.core.network.ports import ANY_IP, PortBinding, PortRequest
from wharf.errors import InvalidArgument


@pytest.mark.parametrize(("spec", "bindings"), [
    ("80", {"80/tcp": [{"HostIp": "", "HostPort": ""}]}),
    ("8080:80", {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}),
    ("127.0.0.1:8080:80/udp", {"80/udp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]}),
    ("127.0.0.1::80", {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}),
    ("8000-8001:80-81", {"80/tcp": [{"HostIp": "", "HostPort": "8000"}],
                         "81/tcp": [{"HostIp": "", "HostPort": "8001"}]}),
    ("8000-8010:80", {"80/tcp": [{"HostIp": "", "HostPort": "8000-8010"}]}),
    ("[::1]:8080:80", {"80/tcp": [{"HostIp": "::1", "HostPort": "8080"}]}),
])
def test_publish_specs_like_docker(spec: str, bindings: dict[str, Any]) -> None:
    exposed, got = parse_ports([spec])
    assert got == bindings
    assert exposed == {key: {} for key in bindings}


@pytest.mark.parametrize("spec", ["", "x", "80/xyz", "1-3:4-9", "0:80", "70000", "a:80",
                                  "9-1:80"])
def test_bad_publish_specs_are_cli_errors(spec: str) -> None:
    with pytest.raises(CLIError, match="-p, --publish"):
        parse_ports([spec])


def _opts(**kw: Any) -> dict[str, Any]:
    return {"network": "default", "ip": "", "network_aliases": (), **kw}


def test_ip_and_aliases_go_to_the_named_network() -> None:
    assert endpoints_config(_opts()) == {}
    assert endpoints_config(_opts(network="front", ip="10.1.0.5", network_aliases=("a",))) == {
        "front": {"Aliases": ["a"], "IPAMConfig": {"IPv4Address": "10.1.0.5"}}}
    with pytest.raises(CLIError, match="user defined networks"):
        endpoints_config(_opts(ip="10.1.0.5"))


def test_port_bindings_body() -> None:
    assert attach.port_bindings({"80/tcp": [{"HostIp": "", "HostPort": "8080"}],
                                 "53/udp": None}) == [
        PortRequest(80, "tcp", ANY_IP, 8080, 8080), PortRequest(53, "udp")]
    assert attach.port_bindings({"80/tcp": [{"HostPort": "8000-8010"}]}) == [
        PortRequest(80, "tcp", ANY_IP, 8000, 8010)]


@pytest.mark.parametrize(("value", "message"), [
    ([], "must be an object"),
    ({"80/xyz": []}, "protocol"),
    ({"http": []}, "container port"),
    ({"80/tcp": {}}, "must be a list"),
    ({"80/tcp": ["8080"]}, "must be objects"),
    ({"80/tcp": [{"HostIp": "nope"}]}, "host IP"),
    ({"80/tcp": [{"HostIp": "::1", "HostPort": "1"}]}, "IPv6"),
    ({"80/tcp": [{"HostPort": "99999"}]}, "1-65535"),
    ({"80/tcp": [{"HostPort": "x"}]}, "invalid host port"),
])
def test_port_bindings_refusals(value: Any, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        attach.port_bindings(value)


def test_publish_all_adds_unbound_exposed_ports() -> None:
    host = {"PortBindings": {"80/tcp": [{"HostPort": "8080"}]}, "PublishAllPorts": True}
    got = attach.port_requests(host, {"80/tcp": {}, "443/tcp": {}, "53/udp": {}})
    assert got == [PortRequest(80, "tcp", ANY_IP, 8080, 8080), PortRequest(53, "udp"),
                   PortRequest(443, "tcp")]
    assert attach.port_requests({"PublishAllPorts": False}, {"80/tcp": {}}) == []


@pytest.mark.parametrize(("body", "message"), [
    ({"NetworkingConfig": []}, "NetworkingConfig"),
    ({"NetworkingConfig": {"EndpointsConfig": []}}, "EndpointsConfig"),
    ({"NetworkingConfig": {"EndpointsConfig": {"n": {"IPAMConfig": {"IPv4Address": "x"}}}}},
     "invalid IPv4"),
    ({"NetworkingConfig": {"EndpointsConfig": {"n": {"Aliases": [""]}}}}, "Aliases"),
])
def test_endpoint_config_refusals(body: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        attach.endpoints_config(body)


def test_endpoint_config_and_json_shapes() -> None:
    body = {"NetworkingConfig": {"EndpointsConfig": {
        "default": {"IPAMConfig": None, "Aliases": None},
        "front": {"IPAMConfig": {"IPv4Address": "10.1.0.5"}, "Aliases": ["a", "a", "b"]}}}}
    assert attach.endpoints_config(body) == {"default": {"ip": None, "aliases": []},
                                             "front": {"ip": "10.1.0.5", "aliases": ["a", "b"]}}
    assert attach.normal_mode("") == attach.normal_mode("default") == "bridge"
    binding = PortBinding("c" * 64, "127.0.0.1", 18080, "tcp", "10.1.0.5", 80, "br0")
    ports = attach.ports_json({"80/tcp": {}, "81/tcp": {}}, [binding])
    assert ports == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18080"}], "81/tcp": None}
    assert attach.summary_ports({"Ports": ports}) == [
        {"IP": "127.0.0.1", "PrivatePort": 80, "PublicPort": 18080, "Type": "tcp"},
        {"PrivatePort": 81, "Type": "tcp"}]
