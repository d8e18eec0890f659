"""NetworkService: the one facade the container code calls for networks, endpoints and ports.

Lifecycle and invariants:
- Call :meth:`restore` once at daemon start (it also creates the default network); every other
  method is synchronous and blocking: call it from a worker thread.
- The state store is the truth: a network's bridge and rules, an endpoint's veth and a
  container's published ports are (re)created from it. Kernel work comes after the allocation
  is recorded and is undone (with the record) when it fails; teardown does the kernel work
  first and releases the records last, so an address is never free while its veth exists.
- A container in mode bridge/none/<network> has its own namespace pinned at
  ``<run_dir>/netns/<container id>``; ``container:<id>`` joins that of another container;
  ``host`` has none.
- Mutations are serialised by one lock (each takes milliseconds).
"""

from __future__ import annotations

import builtins
import hashlib
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wharf import ids
from wharf.daemon.core.network import ipam, netlink
from wharf.daemon.core.network.dns import DnsRecords
from wharf.daemon.core.network.ipam import Allocation, Ipam, Network
from wharf.daemon.core.network.portmap import BridgeNet, PortMapper
from wharf.daemon.core.network.ports import PortBinding, PortRequest, resolve
from wharf.daemon.core.network.published import PublishedPorts
from wharf.daemon.core.prunefilter import PruneFilter
from wharf.daemon.core.state import StateStore
from wharf.errors import Conflict, InvalidArgument, NotFound, WharfError

_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")  # fullmatch: re.match's "$" accepts "x\n"
PREDEFINED = ("bridge", "host", "none")


@dataclass(frozen=True)
class Endpoint:
    """A container's attachment to one network, as the OCI spec and inspect need it."""

    network_id: str
    network: str
    ip: str
    prefixlen: int
    mac: str
    gateway: str
    netns_path: Path
    host_veth: str
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class ContainerNet:
    """What :meth:`NetworkService.setup_container` did: the namespace to join (None: host's)."""

    mode: str
    netns_path: Path | None
    endpoints: list[Endpoint] = field(default_factory=list)
    ports: list[PortBinding] = field(default_factory=list)


@dataclass(frozen=True)
class Settings:
    """Names and defaults; tests use their own so nothing collides with a real daemon."""

    default_bridge: str = "wharf0"
    default_subnet: str | None = None  # None: 172.17.0.0/16 unless a host route overlaps it
    bridge_prefix: str = "br-"
    veth_prefix: str = "veth"
    chain_prefix: str = "WHARF"
    enable_ip_forward: bool = True


class NetworkService:
    """Networks (bridges + IPAM), container endpoints, published ports and DNS records."""

    def __init__(
        self, state: StateStore, run_dir: Path, settings: Settings | None = None,
        dns: DnsRecords | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self.ipam = Ipam(state)
        self.published = PublishedPorts(state)
        self.portmap = PortMapper(self.settings.chain_prefix)
        self.dns = dns or DnsRecords()
        self.netns_dir = run_dir / "netns"
        self._lock = threading.RLock()

    # --- networks ------------------------------------------------------------------------------

    def create_network(
        self, name: str, subnet: str | None = None, gateway: str | None = None,
        internal: bool = False, labels: Mapping[str, str] | None = None,
        options: Mapping[str, str] | None = None,
    ) -> Network:
        """A user-defined bridge network (Docker's ``network create``)."""
        if not _NAME.fullmatch(name):
            raise InvalidArgument(f"invalid network name {name!r}: [a-zA-Z0-9][a-zA-Z0-9_.-]*")
        if name in PREDEFINED:
            raise Conflict(f"{name} is a pre-defined network and cannot be created")
        with self._lock:
            return self._create(name, subnet, gateway, internal, labels, options, bridge=None)

    def _create(
        self, name: str, subnet: str | None, gateway: str | None, internal: bool,
        labels: Mapping[str, str] | None, options: Mapping[str, str] | None, bridge: str | None,
    ) -> Network:
        routes = netlink.host_routes()
        if subnet:
            chosen = ipam.parse_subnet(subnet)
        else:
            # a bridge of ours left from an earlier run (same name) does not count as taken
            taken = [*self.ipam.subnets(), *(net for net, dev in routes if dev != bridge)]
            chosen = ipam.choose_subnet(taken)
        gw = ipam.parse_address(gateway, "gateway") if gateway else ipam.default_gateway(chosen)
        ipam.check_gateway(chosen, gw)
        network_id = ids.new_id()
        bridge = bridge or (self.settings.bridge_prefix + network_id[:12])[:netlink.IFNAMSIZ]
        clash = netlink.overlapping_route(chosen, routes, own_device=bridge)
        if clash is not None:
            raise InvalidArgument(
                f"subnet {chosen} of network {name} overlaps the host route {clash}"
            )
        network = self.ipam.add_network(
            name, bridge, chosen, gw, internal=internal, labels=labels, options=options,
            network_id=network_id,
        )
        try:
            self._bring_up(network)
        except BaseException:
            self._take_down(network)
            self.ipam.remove_network(network.id)
            raise
        return network

    def _bring_up(self, network: Network) -> None:
        netlink.ensure_bridge(network.bridge, f"{network.gateway}/{network.subnet.prefixlen}")
        self.portmap.ensure_chains()
        self.portmap.add_network(BridgeNet(network.bridge, str(network.subnet), network.internal))
        if self.settings.enable_ip_forward and not network.internal:
            Path("/proc/sys/net/ipv4/ip_forward").write_text("1")

    def _take_down(self, network: Network) -> None:
        self.portmap.remove_network(network.bridge)
        netlink.delete_bridge(network.bridge)
        self.dns.remove_network(network.id)

    def default_network(self) -> Network:
        """The default bridge network (``bridge``), created on first use."""
        with self._lock:
            try:
                return self.ipam.find("bridge")
            except NotFound:
                return self._create("bridge", self.settings.default_subnet, None, False, None,
                                    None, bridge=self.settings.default_bridge)

    def remove_network(self, ref: str) -> None:
        """Delete a user network; refused for the default one and while containers use it."""
        with self._lock:
            network = self.ipam.find(ref)
            if network.name in PREDEFINED:
                raise Conflict(f"{network.name} is a pre-defined network and cannot be removed")
            self.ipam.remove_network(network.id)  # refuses (Conflict) with endpoints
            self._take_down(network)

    def list(self) -> builtins.list[Network]:
        return self.ipam.networks()

    def find(self, ref: str) -> Network:
        return self.ipam.find(ref)

    def inspect(self, ref: str) -> dict[str, Any]:
        """Docker's network JSON (``GET /networks/{id}``)."""
        network = self.ipam.find(ref)
        return network_json(network, self.ipam.allocations(network_id=network.id))

    def prune(self, wanted: PruneFilter | None = None) -> builtins.list[str]:
        """Remove user networks without endpoints that ``wanted`` matches (their labels and
        creation time; every one without it); returns their names."""
        wanted = wanted or PruneFilter()
        removed: list[str] = []
        with self._lock:
            for network in self.ipam.networks():
                if (network.name in PREDEFINED or self.ipam.allocations(network_id=network.id)
                        or not wanted.matches(network.labels, network.created_at)):
                    continue
                self.remove_network(network.id)
                removed.append(network.name)
        return removed

    def dns_networks(self) -> builtins.list[Network]:
        """Networks whose names the embedded DNS serves (every user-defined one)."""
        return [n for n in self.ipam.networks() if n.name not in PREDEFINED]

    # --- endpoints -----------------------------------------------------------------------------

    def netns_path(self, container_id: str) -> Path:
        return self.netns_dir / container_id

    def connect(
        self, container_id: str, network_ref: str, *, name: str = "", ip: str | None = None,
        aliases: Sequence[str] = (),
    ) -> Endpoint:
        """Attach a container (its namespace must exist) to a network; also while it runs."""
        path = self.netns_path(container_id)
        if not path.exists():
            raise Conflict(f"container {container_id[:12]} has no network namespace of its own")
        with self._lock:
            network = self.ipam.find(network_ref)
            if network.name == "bridge" and (ip or aliases):
                raise InvalidArgument("user specified IP address and aliases are supported "
                                      "only on user defined networks")
            first = not self.ipam.allocations(container_id=container_id)
            present = set(netlink.netns_links(path))
            ifname = next(f"eth{i}" for i in range(len(present) + 1) if f"eth{i}" not in present)
            veth = self._veth_name(network.id, container_id)
            got = self.ipam.allocate(network, container_id, veth, ip=ip, aliases=aliases,
                                     name=name)
            try:
                netlink.attach_endpoint(path, network.bridge, veth, got.ip_cidr,
                                        str(network.gateway), got.mac, ifname=ifname,
                                        default_route=first)
            except BaseException:
                netlink.detach_endpoint(veth)
                self.ipam.release(network.id, container_id)
                raise
            self._add_dns(network, got)
            return self._endpoint(network, got)

    def disconnect(self, container_id: str, network_ref: str) -> None:
        """Detach a container from a network (veth gone, address released, names dropped)."""
        with self._lock:
            network = self.ipam.find(network_ref)
            found = [a for a in self.ipam.allocations(network_id=network.id,
                                                      container_id=container_id)]
            if not found:
                raise NotFound(f"container {container_id[:12]} is not connected to network "
                               f"{network.name}")
            self._drop(network, found[0])

    def _drop(self, network: Network, got: Allocation) -> None:
        self.dns.remove_endpoint(network.id, got.container_id)
        netlink.detach_endpoint(got.host_veth)
        self.ipam.release(network.id, got.container_id)

    def _add_dns(self, network: Network, got: Allocation) -> None:
        if network.name not in PREDEFINED:  # the default bridge has no name resolution
            self.dns.set_endpoint(network.id, got.container_id, [got.name, *got.aliases], got.ip)

    def _veth_name(self, network_id: str, container_id: str) -> str:
        digest = hashlib.sha256(f"{network_id}\0{container_id}".encode()).hexdigest()
        prefix = self.settings.veth_prefix
        return prefix + digest[: netlink.IFNAMSIZ - len(prefix)]

    def _endpoint(self, network: Network, got: Allocation) -> Endpoint:
        return Endpoint(
            network_id=network.id, network=network.name, ip=str(got.ip),
            prefixlen=got.prefixlen, mac=got.mac, gateway=str(network.gateway),
            netns_path=self.netns_path(got.container_id), host_veth=got.host_veth,
            aliases=got.aliases,
        )

    def endpoints(self, container_id: str) -> builtins.list[Endpoint]:
        nets = {n.id: n for n in self.ipam.networks()}
        return [self._endpoint(nets[a.network_id], a)
                for a in self.ipam.allocations(container_id=container_id)]

    # --- containers ----------------------------------------------------------------------------

    def setup_container(
        self, container_id: str, network_mode: str, *, name: str = "", ip: str | None = None,
        aliases: Sequence[str] = (), ports: Sequence[PortRequest] = (),
    ) -> ContainerNet:
        """Give a container its network for ``network_mode`` (bridge/none/host/container:<id>/
        a network name) and publish ``ports`` on its first address."""
        mode = network_mode or "bridge"
        if mode == "default":
            mode = "bridge"
        if mode == "host":
            return ContainerNet(mode, None)
        if mode.startswith("container:"):
            other = mode.removeprefix("container:")
            if ports:
                raise InvalidArgument("conflicting options: port publishing and the container "
                                      "type network mode")
            if not self.netns_path(other).exists():
                raise NotFound(f"container {other[:12]} has no network namespace to join")
            return ContainerNet(mode, self.netns_path(other))
        path = self.netns_path(container_id)
        netlink.create_netns(path)
        if mode == "none":
            return ContainerNet(mode, path)
        try:
            network = self.default_network() if mode == "bridge" else self.ipam.find(mode)
            endpoint = self.connect(container_id, network.id, name=name, ip=ip, aliases=aliases)
            bindings = self.publish(container_id, endpoint, ports) if ports else []
        except BaseException:
            self.teardown_container(container_id)
            raise
        return ContainerNet(mode, path, [endpoint], bindings)

    def publish(
        self, container_id: str, endpoint: Endpoint, ports: Sequence[PortRequest]
    ) -> builtins.list[PortBinding]:
        """Publish ports to ``endpoint``: Conflict when another container or a host process
        holds one; recorded first, then the NAT rules."""
        with self._lock:
            network = self.ipam.find(endpoint.network_id)
            others = [b for b in self.published.all() if b.container_id != container_id]
            bindings = resolve(container_id, ports, endpoint.ip, network.bridge, others)
            self.published.add(bindings)
            try:
                self.portmap.add(container_id, self.published.of(container_id))
            except BaseException:
                self.published.remove(container_id)
                self.portmap.remove(container_id)
                raise
            return bindings

    def teardown_container(self, container_id: str) -> None:
        """Undo :meth:`setup_container` (idempotent; may run in the background after exit)."""
        with self._lock:
            if self.published.of(container_id):  # rules only ever exist after their record
                self.portmap.remove(container_id)
                self.published.remove(container_id)
            nets = {n.id: n for n in self.ipam.networks()}
            for got in self.ipam.allocations(container_id=container_id):
                self._drop(nets[got.network_id], got)
            netlink.delete_netns(self.netns_path(container_id))

    def restore(self, running: Iterable[str]) -> None:
        """After a daemon start: bridges, rules and DNS records for ``running`` containers;
        everything of containers that are gone is torn down. Running namespaces are kept."""
        alive = set(running)
        with self._lock:
            self.portmap.ensure_chains()
            self.default_network()
            networks = self.ipam.networks()
            for network in networks:
                self._bring_up(network)
            for got in self.ipam.allocations():
                if got.container_id in alive:
                    self._add_dns(next(n for n in networks if n.id == got.network_id), got)
            stale = {a.container_id for a in self.ipam.allocations()} - alive
            stale |= {b.container_id for b in self.published.all()} - alive
            if self.netns_dir.is_dir():
                stale |= {p.name for p in self.netns_dir.iterdir()} - alive
            for container_id in sorted(stale):
                try:
                    self.teardown_container(container_id)
                except (OSError, WharfError):
                    continue  # best effort: a stale leftover must not stop the daemon
            self.portmap.restore(
                [BridgeNet(n.bridge, str(n.subnet), n.internal) for n in networks],
                self.published.all(),
            )


def network_json(network: Network, allocations: Sequence[Allocation]) -> dict[str, Any]:
    """Docker's ``NetworkResource`` for a network and its endpoints."""
    containers = {
        a.container_id: {
            "Name": a.name,
            "EndpointID": hashlib.sha256(f"{a.network_id}{a.container_id}".encode()).hexdigest(),
            "MacAddress": a.mac,
            "IPv4Address": a.ip_cidr,
            "IPv6Address": "",
        }
        for a in allocations
    }
    options = dict(network.options)
    if network.name == "bridge":
        options.setdefault("com.docker.network.bridge.name", network.bridge)
    return {
        "Name": network.name, "Id": network.id, "Created": network.created_at,
        "Scope": "local", "Driver": network.driver, "EnableIPv6": False,
        "IPAM": {"Driver": "default", "Options": {}, "Config": [
            {"Subnet": str(network.subnet), "Gateway": str(network.gateway)}]},
        "Internal": network.internal, "Attachable": False, "Ingress": False,
        "ConfigFrom": {"Network": ""}, "ConfigOnly": False,
        "Containers": containers, "Options": options, "Labels": dict(network.labels),
    }
