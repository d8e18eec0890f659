"""Published ports as data: parsing ``-p`` specs, resolving host ports, finding conflicts (pure)."""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from wharf.errors import Conflict, InvalidArgument

ANY_IP = "0.0.0.0"  # noqa: S104 - the "every address" host IP of a binding, not a bind
PROTOCOLS = ("tcp", "udp")
EPHEMERAL = (49153, 65535)  # where dockerd picks host ports for -P and ip::port


@dataclass(frozen=True)
class PortRequest:
    """One container port to publish; host ports ``(0, 0)`` mean "any free one"."""

    container_port: int
    proto: str = "tcp"
    host_ip: str = ANY_IP
    host_lo: int = 0
    host_hi: int = 0


@dataclass(frozen=True)
class PortBinding:
    """A resolved binding: ``host_ip:host_port/proto`` → ``container_ip:container_port``."""

    container_id: str
    host_ip: str
    host_port: int
    proto: str
    container_ip: str
    container_port: int
    bridge: str

    def describe(self) -> str:
        return f"{self.host_ip}:{self.host_port}/{self.proto}"


def _port_range(text: str, what: str) -> tuple[int, int]:
    low, sep, high = text.partition("-")
    try:
        lo = int(low)
        hi = int(high) if sep else lo
    except ValueError:
        raise InvalidArgument(f"invalid {what} {text!r}: expected a port or a range") from None
    if not (1 <= lo <= hi <= 65535):
        raise InvalidArgument(f"invalid {what} {text!r}: ports are 1-65535, low-high")
    return lo, hi


def parse_publish(spec: str) -> list[PortRequest]:
    """``[ip:][hostPort[-end]:]containerPort[-end][/tcp|udp]`` → one request per container port.

    A host range of the same length maps port to port; a host range with one container port
    means "the first free port of the range" (Docker's rules). Raises InvalidArgument.
    """
    text, _, proto = spec.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in PROTOCOLS:
        raise InvalidArgument(f"invalid protocol {proto!r} in {spec!r}: expected tcp or udp")
    host_ip, host, container = ANY_IP, "", text
    parts = text.rsplit(":", 2)
    if len(parts) == 3:
        host_ip, host, container = parts
        host_ip = host_ip.strip("[]") or ANY_IP
    elif len(parts) == 2:
        host, container = parts
    try:
        address = ipaddress.ip_address(host_ip)
    except ValueError:
        raise InvalidArgument(f"invalid host IP {host_ip!r} in {spec!r}") from None
    if address.version != 4:
        raise InvalidArgument(f"IPv6 host addresses are not supported: {spec!r}")
    c_lo, c_hi = _port_range(container, "container port")
    if not host:
        return [PortRequest(p, proto, host_ip) for p in range(c_lo, c_hi + 1)]
    h_lo, h_hi = _port_range(host, "host port")
    if c_lo == c_hi:
        return [PortRequest(c_lo, proto, host_ip, h_lo, h_hi)]
    if h_hi - h_lo != c_hi - c_lo:
        raise InvalidArgument(
            f"port ranges don't match in {spec!r}: host {h_lo}-{h_hi}, container {c_lo}-{c_hi}"
        )
    return [
        PortRequest(c_lo + i, proto, host_ip, h_lo + i, h_lo + i) for i in range(c_hi - c_lo + 1)
    ]


def overlaps(a_ip: str, a_port: int, a_proto: str, b_ip: str, b_port: int, b_proto: str) -> bool:
    """Whether two host bindings claim the same port (0.0.0.0 claims every address)."""
    return (
        (a_port == b_port and a_proto == b_proto and ANY_IP in (a_ip, b_ip)) or
        (a_port, a_proto, a_ip) == (b_port, b_proto, b_ip)
    )


def find_conflict(
    host_ip: str, port: int, proto: str, existing: Iterable[PortBinding]
) -> PortBinding | None:
    """The existing binding that already claims ``host_ip:port/proto``, if any."""
    for other in existing:
        if overlaps(host_ip, port, proto, other.host_ip, other.host_port, other.proto):
            return other
    return None


def host_port_free(host_ip: str, port: int, proto: str) -> bool:
    """Whether a host process could bind the port now (if it can't, DNAT would steal its port)."""
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as probe:
        try:
            probe.bind((host_ip, port))
        except OSError as exc:
            if exc.errno == errno.EADDRNOTAVAIL:
                raise InvalidArgument(f"host IP {host_ip} is not an address of this host") from None
            return False
    return True


def resolve(
    container_id: str,
    requests: Sequence[PortRequest],
    container_ip: str,
    bridge: str,
    existing: Sequence[PortBinding],
    is_free: Callable[[str, int, str], bool] = host_port_free,
    ephemeral: tuple[int, int] = EPHEMERAL,
) -> list[PortBinding]:
    """Concrete bindings for ``requests``, or Conflict naming the port that is taken.

    ``existing`` are other containers' bindings; ``is_free`` asks the host (a bind attempt).
    """
    chosen: list[PortBinding] = []
    for request in requests:
        explicit = request.host_lo != 0
        lo, hi = (request.host_lo, request.host_hi) if explicit else ephemeral
        binding = None
        reason = ""
        for port in range(lo, hi + 1):
            other = find_conflict(request.host_ip, port, request.proto, [*existing, *chosen])
            if other is not None:
                reason = (f"port {request.host_ip}:{port}/{request.proto} is already published"
                          f" by container {other.container_id[:12]}")
                continue
            if not is_free(request.host_ip, port, request.proto):
                reason = (f"port {request.host_ip}:{port}/{request.proto} is already in use"
                          " by a host process")
                continue
            binding = PortBinding(container_id, request.host_ip, port, request.proto,
                                  container_ip, request.container_port, bridge)
            break
        if binding is None:
            if explicit and lo != hi:
                reason = f"no free port in {request.host_ip}:{lo}-{hi}/{request.proto} ({reason})"
            raise Conflict(f"cannot publish port {request.container_port}: {reason}")
        chosen.append(binding)
    return chosen
