"""The /networks routes' body and filter validation, against a fake network manager."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from wharf.daemon.adapters.api.server import create_app
from wharf.errors import NotFound


class FakeService:
    def __init__(self) -> None:
        self.nets: dict[str, dict[str, Any]] = {}

    def find(self, ref: str) -> Any:
        if ref not in self.nets:
            raise NotFound(f"network {ref} not found")
        return SimpleNamespace(id=ref, name=ref)

    def list(self) -> list[Any]:
        return [SimpleNamespace(id=n) for n in self.nets]

    def inspect(self, ref: str) -> dict[str, Any]:
        self.find(ref)
        return self.nets[ref]


class FakeNetworks:
    def __init__(self) -> None:
        self.service = FakeService()
        self.created: list[tuple[Any, ...]] = []

    def list_networks(self) -> list[dict[str, Any]]:
        return [self.service.inspect(n.id) for n in self.service.list()]

    def inspect(self, ref: str) -> dict[str, Any]:
        return self.service.inspect(ref)

    def exists(self, name: str) -> bool:
        return name in self.service.nets

    async def create(self, name: str, *args: Any) -> Any:
        self.created.append((name, *args))
        self.service.nets[name] = {"Name": name, "Id": name, "Driver": "bridge",
                                   "Labels": args[3], "Containers": {}}
        return SimpleNamespace(id=name)


@pytest.fixture
def api() -> Iterator[tuple[TestClient, FakeNetworks]]:
    networks = FakeNetworks()
    engine = SimpleNamespace(networks=networks)
    with TestClient(create_app(engine)) as client:  # type: ignore[arg-type]
        yield client, networks


def test_create_passes_the_docker_cli_body(api: tuple[TestClient, FakeNetworks]) -> None:
    client, networks = api
    body = {"CheckDuplicate": True, "Driver": "bridge", "Scope": "", "EnableIPv6": False,
            "IPAM": {"Driver": "default", "Options": {}, "Config": [{"Subnet": "10.99.0.0/24"}]},
            "Internal": False, "Attachable": False, "Ingress": False, "ConfigOnly": False,
            "ConfigFrom": None, "Options": {}, "Labels": {"a": "b"}, "Name": "cap-net2"}
    reply = client.post("/v1.41/networks/create", json=body)
    assert reply.status_code == 201, reply.text
    assert reply.json() == {"Id": "cap-net2", "Warning": ""}
    assert networks.created == [("cap-net2", "10.99.0.0/24", None, False, {"a": "b"}, {})]
    assert client.post("/networks/create", json=body).status_code == 409  # duplicate name
    names = [n["Name"] for n in client.get("/networks").json()]
    assert names == ["cap-net2", "host", "none"]
    only = client.get('/networks?filters={"label":["a=b"]}').json()
    assert [n["Name"] for n in only] == ["cap-net2"]
    builtin = client.get('/networks?filters={"type":["builtin"]}').json()
    assert [n["Name"] for n in builtin] == ["host", "none"]
    assert client.get("/networks/none").json()["Driver"] == "null"
    assert client.get("/networks/nope").status_code == 404


def test_create_takes_docker_composes_attachable(api: tuple[TestClient, FakeNetworks]) -> None:
    client, networks = api  # docker-compose 1.29 sends Attachable: true with every network
    body = {"Name": "proj_default", "Driver": None, "Options": None, "IPAM": None,
            "CheckDuplicate": True, "Internal": False, "Labels": {
                "com.docker.compose.network": "default", "com.docker.compose.project": "proj"},
            "EnableIPv6": False, "Attachable": True}
    reply = client.post("/v1.41/networks/create", json=body)
    assert reply.status_code == 201, reply.text
    assert networks.created[0][:2] == ("proj_default", None)


@pytest.mark.parametrize(("body", "status"), [
    ([], 400),
    ({}, 400),
    ({"Name": 5}, 400),
    ({"Name": "n", "Driver": "overlay"}, 400),
    ({"Name": "n", "EnableIPv6": True}, 400),
    ({"Name": "n", "Ingress": True}, 400),
    ({"Name": "n", "ConfigOnly": True}, 400),
    ({"Name": "n", "IPAM": {"Driver": "other"}}, 400),
    ({"Name": "n", "IPAM": {"Config": [{"Subnet": "10.0.0.0/24"}, {"Subnet": "10.1.0.0/24"}]}},
     400),
    ({"Name": "n", "IPAM": {"Config": [{"Gateway": "10.0.0.1"}]}}, 400),
    ({"Name": "n", "IPAM": {"Config": [{"Subnet": "10.0.0.0/24", "IPRange": "10.0.0.0/25"}]}},
     400),
    ({"Name": "n", "Internal": "yes"}, 400),
    ({"Name": "n", "Labels": {"a": 1}}, 400),
    ({"Name": "host"}, 409),
    ({"Name": "bridge"}, 409),
])
def test_create_refusals(api: tuple[TestClient, FakeNetworks], body: Any, status: int) -> None:
    client, networks = api
    reply = client.post("/networks/create", json=body)
    assert reply.status_code == status, reply.text
    assert reply.json()["message"]
    assert networks.created == []


@pytest.mark.parametrize(("path", "body"), [
    ("/networks/x/connect", {}),
    ("/networks/x/connect", {"Container": ""}),
    ("/networks/x/connect", {"Container": "c", "EndpointConfig": {"Aliases": "a"}}),
    ("/networks/x/connect", {"Container": "c",
                             "EndpointConfig": {"IPAMConfig": {"IPv4Address": "x"}}}),
    ("/networks/x/disconnect", {"Container": "c", "Force": "yes"}),
])
def test_connect_disconnect_refusals(api: tuple[TestClient, FakeNetworks], path: str,
                                     body: dict[str, Any]) -> None:
    client, _ = api
    reply = client.post(path, json=body)
    assert reply.status_code == 400, reply.text


def test_bad_filters_and_predefined_removal(api: tuple[TestClient, FakeNetworks]) -> None:
    client, _ = api
    assert client.get('/networks?filters={"colour":["red"]}').status_code == 400
    assert client.delete("/networks/host").status_code == 409
    assert client.post('/networks/prune?filters={"bogus":["1"]}').status_code == 400
