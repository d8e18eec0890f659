"""From a Docker create request to what ``NetworkService.setup_container`` needs, and back to
Docker's ``NetworkSettings`` JSON (pure functions; the container service does the calls).

- ``network_plan`` validates ``HostConfig.NetworkMode/PortBindings/PublishAllPorts`` and
  ``NetworkingConfig.EndpointsConfig`` at create time;
- ``port_requests`` turns the recorded plan (plus the image's ``ExposedPorts`` for ``-P``) into
  :class:`PortRequest` s at start time;
- ``settings_json`` is the ``NetworkSettings`` snapshot recorded while a container runs.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from wharf.daemon.core.network.ports import ANY_IP, PROTOCOLS, PortBinding, PortRequest
from wharf.errors import InvalidArgument

SPECIAL_MODES = ("bridge", "none", "host")


def _port_key(key: Any) -> tuple[int, str]:
    """``"80/tcp"`` → (80, "tcp")."""
    text = str(key)
    port, _, proto = text.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in PROTOCOLS:
        raise InvalidArgument(f"invalid protocol in port {text!r}: expected tcp or udp")
    try:
        number = int(port)
    except ValueError:
        raise InvalidArgument(f"invalid container port {text!r}") from None
    if not 1 <= number <= 65535:
        raise InvalidArgument(f"invalid container port {text!r}: ports are 1-65535")
    return number, proto


def _host_range(value: Any, key: str) -> tuple[int, int]:
    text = str(value or "")
    if not text:
        return 0, 0
    low, sep, high = text.partition("-")
    try:
        lo, hi = int(low), int(high) if sep else int(low)
    except ValueError:
        raise InvalidArgument(f"invalid host port {text!r} for {key}") from None
    if lo == 0 and hi == 0:
        return 0, 0
    if not 1 <= lo <= hi <= 65535:
        raise InvalidArgument(f"invalid host port {text!r} for {key}: ports are 1-65535")
    return lo, hi


def port_bindings(value: Any) -> list[PortRequest]:
    """Docker's ``HostConfig.PortBindings`` (``{"80/tcp": [{"HostIp", "HostPort"}]}``)."""
    if value in (None, {}):
        return []
    if not isinstance(value, dict):
        raise InvalidArgument("HostConfig.PortBindings must be an object")
    out: list[PortRequest] = []
    for key, entries in value.items():
        port, proto = _port_key(key)
        if entries is not None and not isinstance(entries, list):
            raise InvalidArgument(f"HostConfig.PortBindings[{key!r}] must be a list")
        for entry in entries or [{}]:
            if not isinstance(entry, dict):
                raise InvalidArgument(f"HostConfig.PortBindings[{key!r}] entries must be objects")
            host_ip = str(entry.get("HostIp") or ANY_IP)
            try:
                address = ipaddress.ip_address(host_ip)
            except ValueError:
                raise InvalidArgument(f"invalid host IP {host_ip!r} for port {key}") from None
            if address.version != 4:
                raise InvalidArgument(f"IPv6 host addresses are not supported: {host_ip}")
            lo, hi = _host_range(entry.get("HostPort"), str(key))
            out.append(PortRequest(port, proto, host_ip, lo, hi))
    return out


def exposed_ports(value: Any) -> list[tuple[int, str]]:
    """``Config.ExposedPorts`` (``{"80/tcp": {}}``) → [(80, "tcp")]."""
    if value in (None, {}):
        return []
    if not isinstance(value, dict):
        raise InvalidArgument("Config.ExposedPorts must be an object")
    return sorted({_port_key(k) for k in value})


def port_requests(host: Mapping[str, Any], exposed: Any) -> list[PortRequest]:
    """What to publish at start: ``-p`` bindings, plus every other exposed port for ``-P``."""
    requests = port_bindings(host.get("PortBindings"))
    if host.get("PublishAllPorts"):
        bound = {(r.container_port, r.proto) for r in requests}
        requests += [PortRequest(p, proto) for p, proto in exposed_ports(exposed)
                     if (p, proto) not in bound]
    return requests


def endpoints_config(body: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``NetworkingConfig.EndpointsConfig`` validated: {network: {"ip", "aliases"}}."""
    networking = body.get("NetworkingConfig")
    networking = {} if networking is None else networking
    if not isinstance(networking, dict):
        raise InvalidArgument("NetworkingConfig must be an object")
    endpoints = networking.get("EndpointsConfig")
    endpoints = {} if endpoints is None else endpoints
    if not isinstance(endpoints, dict):
        raise InvalidArgument("NetworkingConfig.EndpointsConfig must be an object")
    return {str(name): endpoint_config(cfg, str(name)) for name, cfg in endpoints.items()}


def endpoint_config(value: Any, network: str) -> dict[str, Any]:
    """One ``EndpointSettings`` (``IPAMConfig.IPv4Address``, ``Aliases``) → {"ip", "aliases"}."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise InvalidArgument(f"endpoint config for network {network} must be an object")
    ipam_config = value.get("IPAMConfig") or {}
    if not isinstance(ipam_config, dict):
        raise InvalidArgument("EndpointConfig.IPAMConfig must be an object")
    ip = str(ipam_config.get("IPv4Address") or "") or None
    if ip is not None:
        try:
            ipaddress.IPv4Address(ip)
        except ValueError:
            raise InvalidArgument(f"invalid IPv4 address {ip!r} for network {network}") from None
    aliases = value.get("Aliases") or []
    if not isinstance(aliases, list) or not all(isinstance(a, str) and a for a in aliases):
        raise InvalidArgument("EndpointConfig.Aliases must be a list of non-empty strings")
    return {"ip": ip, "aliases": list(dict.fromkeys(aliases))}


def normal_mode(value: Any) -> str:
    """``HostConfig.NetworkMode`` with Docker's spellings folded: "" and default are bridge."""
    mode = str(value or "default")
    if mode in ("", "default"):
        return "bridge"
    if mode.startswith("container:") and not mode.removeprefix("container:"):
        raise InvalidArgument("--network container: needs a container name or ID")
    return mode


def endpoint_id(network_id: str, container_id: str) -> str:
    return hashlib.sha256(f"{network_id}{container_id}".encode()).hexdigest()


def ports_json(exposed: Any, bindings: Sequence[PortBinding]) -> dict[str, Any]:
    """``NetworkSettings.Ports``: every exposed/published port, with its host bindings."""
    out: dict[str, Any] = {f"{p}/{proto}": None for p, proto in exposed_ports(exposed)}
    for b in bindings:
        entry = out.get(f"{b.container_port}/{b.proto}") or []
        entry.append({"HostIp": b.host_ip, "HostPort": str(b.host_port)})
        out[f"{b.container_port}/{b.proto}"] = entry
    return out


def summary_ports(settings: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``ps``'s ``Ports`` list from a recorded ``NetworkSettings``."""
    out: list[dict[str, Any]] = []
    for key, entries in (settings.get("Ports") or {}).items():
        port, proto = _port_key(key)
        if not entries:
            out.append({"PrivatePort": port, "Type": proto})
        for entry in entries or []:
            out.append({"IP": entry["HostIp"], "PrivatePort": port,
                        "PublicPort": int(entry["HostPort"]), "Type": proto})
    return out


def network_entry(network_id: str, container_id: str, ip: str, prefixlen: int, gateway: str,
                  mac: str, aliases: Iterable[str]) -> dict[str, Any]:
    """One ``NetworkSettings.Networks`` value (Docker's EndpointSettings)."""
    return {
        "IPAMConfig": None, "Links": None, "Aliases": list(aliases) or None,
        "NetworkID": network_id, "EndpointID": endpoint_id(network_id, container_id) if ip else "",
        "Gateway": gateway, "IPAddress": ip, "IPPrefixLen": prefixlen, "IPv6Gateway": "",
        "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "MacAddress": mac, "DriverOpts": None,
    }
