"""IP address management: networks and endpoint allocations in the state store.

Invariants:
- Every change is one transaction, so after a crash an address is either allocated (its row
  exists) or free; nothing is half-allocated.
- ``UNIQUE (network_id, ip)`` in the schema: no address is handed out twice, even by two
  racing callers.
- The network address, the broadcast address and the gateway are never handed out.
- A released address is free again at once (lowest free address first, as Docker's default
  IPAM hands out the next free one).
"""

from __future__ import annotations

import ipaddress
import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from wharf import ids
from wharf.daemon.core.state import StateStore
from wharf.errors import AlreadyExists, Conflict, InvalidArgument, NotFound

# Docker's default address pools: 172.17.0.0/16 (the default bridge), 172.18-31 /16 for user
# networks, then 192.168.0.0/16 cut into /20s.
DEFAULT_POOLS: tuple[tuple[str, int], ...] = (
    *((f"172.{octet}.0.0/16", 16) for octet in range(17, 32)),
    ("192.168.0.0/16", 20),
)


@dataclass(frozen=True)
class Network:
    """A network as recorded."""

    id: str
    name: str
    driver: str
    bridge: str
    subnet: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address
    internal: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    created_at: str = ""


@dataclass(frozen=True)
class Allocation:
    """One container's address on one network."""

    network_id: str
    container_id: str
    ip: ipaddress.IPv4Address
    prefixlen: int
    mac: str
    host_veth: str
    aliases: tuple[str, ...] = ()
    name: str = ""

    @property
    def ip_cidr(self) -> str:
        return f"{self.ip}/{self.prefixlen}"


def parse_subnet(value: str) -> ipaddress.IPv4Network:
    """``10.1.0.0/24`` as a network; host bits set or IPv6 are refused."""
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise InvalidArgument(f"invalid subnet {value!r}: {exc}") from None
    if not isinstance(network, ipaddress.IPv4Network):
        raise InvalidArgument(f"invalid subnet {value!r}: only IPv4 is supported")
    if network.prefixlen > 30:
        raise InvalidArgument(f"subnet {value} is too small (at most /30)")
    return network


def parse_address(value: str, what: str = "address") -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(value)
    except ValueError:
        raise InvalidArgument(f"invalid {what} {value!r}: expected an IPv4 address") from None


def default_gateway(subnet: ipaddress.IPv4Network) -> ipaddress.IPv4Address:
    """The first host address, as Docker chooses."""
    return subnet.network_address + 1


def check_gateway(subnet: ipaddress.IPv4Network, gateway: ipaddress.IPv4Address) -> None:
    if gateway not in subnet or gateway in (subnet.network_address, subnet.broadcast_address):
        raise InvalidArgument(f"gateway {gateway} is not a usable address of subnet {subnet}")


def mac_for(ip: ipaddress.IPv4Address) -> str:
    """Docker's MAC for an address: ``02:42`` + the four address bytes."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ip.packed)


def choose_subnet(
    taken: Iterable[ipaddress.IPv4Network],
    pools: Sequence[tuple[str, int]] = DEFAULT_POOLS,
) -> ipaddress.IPv4Network:
    """The first subnet of the pools that overlaps nothing in ``taken`` (networks and routes)."""
    busy = list(taken)
    for base, size in pools:
        for candidate in ipaddress.IPv4Network(base).subnets(new_prefix=size):
            if not any(candidate.overlaps(other) for other in busy):
                return candidate
    raise Conflict("all predefined address pools have been fully subnetted; pass --subnet")


def first_free(
    subnet: ipaddress.IPv4Network,
    gateway: ipaddress.IPv4Address,
    used: Iterable[ipaddress.IPv4Address],
) -> ipaddress.IPv4Address:
    """The lowest host address that is neither the gateway nor in ``used``."""
    busy = set(used) | {gateway}
    for host in subnet.hosts():
        if host not in busy:
            return host
    raise Conflict(f"no free address left in subnet {subnet}")


class Ipam:
    """Networks and address allocations over the daemon's state store."""

    def __init__(self, state: StateStore) -> None:
        self.state = state

    # --- networks ------------------------------------------------------------------------------

    def add_network(
        self,
        name: str,
        bridge: str,
        subnet: ipaddress.IPv4Network,
        gateway: ipaddress.IPv4Address,
        *,
        driver: str = "bridge",
        internal: bool = False,
        labels: Mapping[str, str] | None = None,
        options: Mapping[str, str] | None = None,
        network_id: str | None = None,
    ) -> Network:
        """Record a new network. Raises AlreadyExists (name) or Conflict (overlapping subnet)."""
        check_gateway(subnet, gateway)
        network = Network(
            id=network_id or ids.new_id(), name=name, driver=driver, bridge=bridge,
            subnet=subnet, gateway=gateway, internal=internal, labels=dict(labels or {}),
            options=dict(options or {}),
            created_at=datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        )
        with self.state.tx() as db:
            if db.execute("SELECT 1 FROM networks WHERE name = ?", (name,)).fetchone():
                raise AlreadyExists(f"network with name {name} already exists")
            for row in db.execute("SELECT name, subnet FROM networks"):
                if ipaddress.IPv4Network(row["subnet"]).overlaps(subnet):
                    raise Conflict(
                        f"subnet {subnet} overlaps subnet {row['subnet']} of network {row['name']}"
                    )
            try:
                db.execute(
                    "INSERT INTO networks (id, name, driver, bridge, subnet, gateway, internal,"
                    " labels, options, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (network.id, name, driver, bridge, str(subnet), str(gateway), int(internal),
                     json.dumps(network.labels), json.dumps(network.options),
                     network.created_at),
                )
            except sqlite3.IntegrityError:
                raise Conflict(f"bridge {bridge} is already used by another network") from None
        return network

    def networks(self) -> list[Network]:
        with self.state.tx() as db:
            rows = db.execute("SELECT * FROM networks ORDER BY created_at, name").fetchall()
        return [_network(row) for row in rows]

    def subnets(self) -> list[ipaddress.IPv4Network]:
        return [n.subnet for n in self.networks()]

    def find(self, ref: str) -> Network:
        """A network by full ID, name, or unique ID prefix (Docker's lookup order)."""
        with self.state.tx() as db:
            row = db.execute("SELECT * FROM networks WHERE id = ?", (ref,)).fetchone()
            if row is None:
                row = db.execute("SELECT * FROM networks WHERE name = ?", (ref,)).fetchone()
            if row is None and ref:
                rows = db.execute(
                    "SELECT * FROM networks WHERE substr(id, 1, ?) = ?", (len(ref), ref)
                ).fetchall()
                if len(rows) > 1:
                    raise InvalidArgument(f"network {ref} is ambiguous ({len(rows)} matches)")
                row = rows[0] if rows else None
        if row is None:
            raise NotFound(f"network {ref} not found")
        return _network(row)

    def remove_network(self, network_id: str) -> None:
        """Forget a network; refused (Conflict) while it has endpoints."""
        with self.state.tx() as db:
            count = db.execute(
                "SELECT count(*) FROM endpoints WHERE network_id = ?", (network_id,)
            ).fetchone()[0]
            if count:
                raise Conflict(f"network {network_id[:12]} has {count} active endpoint(s)")
            if db.execute("DELETE FROM networks WHERE id = ?", (network_id,)).rowcount == 0:
                raise NotFound(f"network {network_id} not found")

    # --- allocations ---------------------------------------------------------------------------

    def allocate(
        self,
        network: Network,
        container_id: str,
        host_veth: str,
        *,
        ip: str | None = None,
        aliases: Sequence[str] = (),
        name: str = "",
    ) -> Allocation:
        """Give ``container_id`` an address on ``network`` (``ip`` if asked and free).

        Raises:
            InvalidArgument: ``ip`` is malformed, outside the subnet, or a reserved address.
            Conflict: ``ip`` is taken, the subnet is full, or the container is already there.
        """
        requested = parse_address(ip, "IP address") if ip else None
        if requested is not None:
            reserved = (network.subnet.network_address, network.subnet.broadcast_address,
                        network.gateway)
            if requested not in network.subnet or requested in reserved:
                raise InvalidArgument(
                    f"address {requested} is not available in subnet {network.subnet} "
                    f"of network {network.name} (reserved or outside it)"
                )
        with self.state.tx() as db:
            if db.execute(
                "SELECT 1 FROM endpoints WHERE network_id = ? AND container_id = ?",
                (network.id, container_id),
            ).fetchone():
                raise Conflict(
                    f"container {container_id[:12]} is already connected to network {network.name}"
                )
            used = [
                ipaddress.IPv4Address(r[0])
                for r in db.execute("SELECT ip FROM endpoints WHERE network_id = ?", (network.id,))
            ]
            if requested is not None and requested in used:
                raise Conflict(f"address {requested} is already in use on network {network.name}")
            chosen = requested or first_free(network.subnet, network.gateway, used)
            allocation = Allocation(
                network_id=network.id, container_id=container_id, ip=chosen,
                prefixlen=network.subnet.prefixlen, mac=mac_for(chosen), host_veth=host_veth,
                aliases=tuple(aliases), name=name,
            )
            try:
                db.execute(
                    "INSERT INTO endpoints (network_id, container_id, name, ip, mac, aliases,"
                    " host_veth) VALUES (?,?,?,?,?,?,?)",
                    (network.id, container_id, name, str(chosen), allocation.mac,
                     json.dumps(list(aliases)), host_veth),
                )
            except sqlite3.IntegrityError as exc:
                raise Conflict(f"cannot allocate {chosen} on {network.name}: {exc}") from None
        return allocation

    def release(self, network_id: str, container_id: str) -> bool:
        """Free a container's address on a network; False when it had none."""
        with self.state.tx() as db:
            deleted = db.execute(
                "DELETE FROM endpoints WHERE network_id = ? AND container_id = ?",
                (network_id, container_id),
            ).rowcount
        return bool(deleted)

    def allocations(
        self, *, network_id: str | None = None, container_id: str | None = None
    ) -> list[Allocation]:
        """Allocations, optionally of one network and/or one container."""
        query = (
            "SELECT e.*, n.subnet FROM endpoints e JOIN networks n ON n.id = e.network_id"
            " WHERE (? IS NULL OR e.network_id = ?) AND (? IS NULL OR e.container_id = ?)"
            " ORDER BY e.rowid"
        )
        with self.state.tx() as db:
            rows = db.execute(query, (network_id, network_id, container_id, container_id))
            return [
                Allocation(
                    network_id=r["network_id"], container_id=r["container_id"],
                    ip=ipaddress.IPv4Address(r["ip"]),
                    prefixlen=ipaddress.IPv4Network(r["subnet"]).prefixlen, mac=r["mac"],
                    host_veth=r["host_veth"], aliases=tuple(json.loads(r["aliases"])),
                    name=r["name"],
                )
                for r in rows.fetchall()
            ]


def _network(row: sqlite3.Row) -> Network:
    return Network(
        id=row["id"], name=row["name"], driver=row["driver"], bridge=row["bridge"],
        subnet=ipaddress.IPv4Network(row["subnet"]), gateway=ipaddress.IPv4Address(row["gateway"]),
        internal=bool(row["internal"]), labels=json.loads(row["labels"]),
        options=json.loads(row["options"]), created_at=row["created_at"],
    )
