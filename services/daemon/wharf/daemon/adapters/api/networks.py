"""Network routes (Docker Engine API v1.41): list, inspect, create, remove, prune, connect,
disconnect. ``host`` and ``none`` are listed as predefined networks, as dockerd does."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import Response

from wharf.daemon.adapters.api.params import Filters
from wharf.daemon.core import prunefilter
from wharf.daemon.core.engine import Engine
from wharf.daemon.core.network import attach
from wharf.daemon.core.network.manager import Networks
from wharf.errors import Conflict, InvalidArgument

router = APIRouter()
SPECIAL = {"host": "host", "none": "null"}  # predefined network → driver
FILTERS = ("name", "id", "driver", "label", "type", "dangling")


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def _networks(request: Request) -> Networks:
    networks = _engine(request).networks
    if networks is None:
        raise InvalidArgument("networks are not available on this wharfd")
    return networks


def _special(name: str) -> dict[str, Any]:
    """The JSON of the predefined ``host``/``none`` networks (no store record)."""
    return {
        "Name": name, "Id": hashlib.sha256(f"wharf-{name}".encode()).hexdigest(),
        "Created": "0001-01-01T00:00:00Z", "Scope": "local", "Driver": SPECIAL[name],
        "EnableIPv6": False, "IPAM": {"Driver": "default", "Options": None, "Config": []},
        "Internal": False, "Attachable": False, "Ingress": False,
        "ConfigFrom": {"Network": ""}, "ConfigOnly": False, "Containers": {}, "Options": {},
        "Labels": {},
    }


def _all(networks: Networks) -> list[dict[str, Any]]:
    return [*networks.list_networks(), *(_special(name) for name in SPECIAL)]


def _find(networks: Networks, ref: str) -> dict[str, Any]:
    for name in SPECIAL:
        shape = _special(name)
        if ref in (name, shape["Id"]) or (len(ref) >= 12 and shape["Id"].startswith(ref)):
            return shape
    return networks.inspect(ref)


def _match_one(net: dict[str, Any], key: str, values: list[str]) -> bool:
    if key == "name":
        return any(v in net["Name"] for v in values)
    if key == "id":
        return any(net["Id"].startswith(v) for v in values)
    if key == "driver":
        return net["Driver"] in values
    if key == "type":
        if any(v not in ("builtin", "custom") for v in values):
            raise InvalidArgument(f"invalid filter: 'type'='{','.join(values)}'")
        return ("builtin" if net["Name"] in ("bridge", *SPECIAL) else "custom") in values
    if key == "dangling":
        return not net["Containers"]
    for want in values:  # label
        name, sep, value = want.partition("=")
        if name not in net["Labels"] or (sep and net["Labels"][name] != value):
            return False
    return True


def _matches(net: dict[str, Any], filters: dict[str, list[str]]) -> bool:
    for key, values in filters.items():
        if key not in FILTERS:
            raise InvalidArgument(f"invalid filter '{key}'")
        if values and not _match_one(net, key, values):
            return False
    return True


@router.get("/networks")
async def list_networks(request: Request, filters: Filters) -> list[dict[str, Any]]:
    networks = _networks(request)
    found = await asyncio.to_thread(_all, networks)
    return [n for n in found if _matches(n, filters)]


@router.get("/networks/{ref}")
async def inspect(request: Request, ref: str) -> dict[str, Any]:
    return await asyncio.to_thread(_find, _networks(request), ref)


def _object(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidArgument(f"{what} must be a JSON object")
    return value


def _strings(value: Any, what: str) -> dict[str, str]:
    mapping = _object(value, what)
    if not all(isinstance(v, str) for v in mapping.values()):
        raise InvalidArgument(f"{what} values must be strings")
    return {str(k): v for k, v in mapping.items()}


@router.post("/networks/create", status_code=201)
async def create(request: Request, body: Annotated[Any, Body()] = None) -> dict[str, Any]:
    networks = _networks(request)
    body = _object(body, "the network create body")
    name = body.get("Name")
    if not isinstance(name, str) or not name:
        raise InvalidArgument("network name (Name) is required")
    subnet, gateway = _create_ipam(body)
    if name in SPECIAL or name == "bridge":
        raise Conflict(f"network with name {name} already exists")
    internal = body.get("Internal")
    if internal is not None and not isinstance(internal, bool):
        raise InvalidArgument("Internal must be a boolean")
    if networks.exists(name):  # dockerd refuses a duplicate whatever CheckDuplicate says
        raise Conflict(f"network with name {name} already exists")
    network = await networks.create(name, subnet, gateway, bool(internal),
                                    _strings(body.get("Labels"), "Labels"),
                                    _strings(body.get("Options"), "Options"))
    return {"Id": network.id, "Warning": ""}


def _create_ipam(body: dict[str, Any]) -> tuple[str | None, str | None]:
    """The driver/IPAM part of a create body: (subnet, gateway); refuses what wharf lacks."""
    driver = body.get("Driver") or "bridge"
    if driver != "bridge":
        raise InvalidArgument(f"network driver {driver!r} is not supported: only bridge")
    if body.get("EnableIPv6"):
        raise InvalidArgument("IPv6 networks are not supported by wharf")
    # Attachable matters to swarm's overlay networks only; dockerd accepts it on a local
    # bridge, and docker-compose sends Attachable: true with every network it creates:
    # accepted and ignored (docs/docker-api.md).
    if body.get("Ingress") or body.get("ConfigOnly") or body.get("ConfigFrom"):
        raise InvalidArgument("swarm network options (Ingress, ConfigOnly, ConfigFrom) are "
                              "not supported")
    ipam = _object(body.get("IPAM"), "IPAM")
    if str(ipam.get("Driver") or "default") != "default":
        raise InvalidArgument(f"IPAM driver {ipam.get('Driver')!r} is not supported")
    configs = ipam.get("Config") or []
    if not isinstance(configs, list) or len(configs) > 1:
        raise InvalidArgument("IPAM.Config must be a list with at most one subnet")
    config = _object(configs[0] if configs else None, "IPAM.Config[0]")
    for key in ("IPRange", "AuxiliaryAddresses"):
        if config.get(key):
            raise InvalidArgument(f"IPAM.Config {key} is not supported")
    subnet, gateway = config.get("Subnet") or None, config.get("Gateway") or None
    if gateway and not subnet:
        raise InvalidArgument("a gateway needs a subnet (--subnet)")
    for value, what in ((subnet, "Subnet"), (gateway, "Gateway")):
        if value is not None and not isinstance(value, str):
            raise InvalidArgument(f"IPAM.Config {what} must be a string")
    return subnet, gateway


@router.delete("/networks/{ref}", status_code=204)
async def remove(request: Request, ref: str) -> Response:
    networks = _networks(request)
    if ref in SPECIAL:
        raise Conflict(f"{ref} is a pre-defined network and cannot be removed")
    await networks.remove(ref)
    return Response(status_code=204)


@router.post("/networks/prune")
async def prune(request: Request, filters: Filters) -> dict[str, Any]:
    wanted = prunefilter.parse(filters)
    removed = await _networks(request).prune(wanted)
    return {"NetworksDeleted": removed or None}


def _container(body: dict[str, Any]) -> str:
    container = body.get("Container")
    if not isinstance(container, str) or not container:
        raise InvalidArgument("Container is required")
    return container


@router.post("/networks/{ref}/connect")
async def connect(request: Request, ref: str, body: Annotated[Any, Body()] = None) -> Response:
    engine = _engine(request)
    _networks(request)
    body = _object(body, "the connect body")
    container = _container(body)
    endpoint = attach.endpoint_config(body.get("EndpointConfig"), ref)
    if ref in SPECIAL:
        raise Conflict(f"container cannot be connected to network {ref}")
    await engine.containers.connect(ref, container, endpoint["ip"], endpoint["aliases"])
    return Response(status_code=200)


@router.post("/networks/{ref}/disconnect")
async def disconnect(request: Request, ref: str, body: Annotated[Any, Body()] = None
                     ) -> Response:
    engine = _engine(request)
    _networks(request)
    body = _object(body, "the disconnect body")
    container = _container(body)
    force = body.get("Force")
    if force is not None and not isinstance(force, bool):
        raise InvalidArgument("Force must be a boolean")
    if ref in SPECIAL:
        raise Conflict(f"container cannot be disconnected from network {ref}")
    await engine.containers.disconnect(ref, container, bool(force))
    return Response(status_code=200)
