"""The embedded DNS responder for user-defined networks (asyncio UDP, stdlib only).

Placement: one UDP socket per user-defined network on that network's gateway address, port 53,
in the host's network namespace. Containers get the gateway as their nameserver. Docker instead
listens on 127.0.0.11 inside every container's namespace and redirects port 53 with iptables
rules there; that needs a socket and rules per container. A socket per network is set up once,
keeps working while containers come and go, and forwards unknown names from the host's
namespace, where the host's own resolvers (even a loopback one such as 127.0.0.53) are reachable.

Answers: A records for container names, network aliases and 12-character short IDs of the
containers on *that* network (case-insensitive, a trailing dot ignored); AAAA for those names is
an empty NOERROR answer (wharf networks are IPv4); any other type for them is NOTIMP. Other
names go to the upstream resolvers of /etc/resolv.conf, one after the other with a short
timeout; when none answers the reply is NXDOMAIN.

Who is answered: a listener serves its own network alone, as Docker's embedded DNS (in each
container's namespace) does: a datagram whose source is outside the network's subnet is dropped
without a reply. The gateway address is reachable from elsewhere (other bridges, the LAN when
the host routes); the host's own queries leave from 127.0.0.1 or are masqueraded to it by the
network's rules, so they get no answer either. Forwarding costs a socket per query, so a
listener waits on at most :data:`MAX_IN_FLIGHT` forwarded queries at once and answers SERVFAIL
at once beyond that, and a forwarded query gets :data:`QUERY_TIMEOUT` seconds over all
upstreams, its socket closed whatever happens (an answer, a timeout, an error, the listener
stopping).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import struct
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

TYPE_A = 1
TYPE_AAAA = 28
CLASS_IN = 1
RCODE_FORMERR = 1
RCODE_SERVFAIL = 2
RCODE_NXDOMAIN = 3
RCODE_NOTIMP = 4
TTL = 600  # Docker's embedded DNS answers with the same TTL
MAX_IN_FLIGHT = 64  # forwarded queries one listener waits on at once; beyond: SERVFAIL at once
QUERY_TIMEOUT = 5.0  # seconds a forwarded query may take over all upstreams (glibc retries at 5)
_HEADER = struct.Struct("!HHHHHH")


class DnsFormatError(ValueError):
    """A message that is not a DNS query we can read."""


@dataclass(frozen=True)
class Query:
    """The parts of a query the responder needs; ``question`` is the raw question section."""

    id: int
    flags: int
    name: str
    qtype: int
    qclass: int
    question: bytes


def encode_name(name: str) -> bytes:
    """``web.example`` → length-prefixed labels ending in a zero byte."""
    out = b""
    for label in name.rstrip(".").split("."):
        raw = label.encode("ascii")
        if not 0 < len(raw) < 64:
            raise DnsFormatError(f"bad label in {name!r}")
        out += bytes([len(raw)]) + raw
    return out + b"\x00"


def _read_name(data: bytes, offset: int) -> tuple[str, int]:
    labels: list[str] = []
    while True:
        if offset >= len(data):
            raise DnsFormatError("name runs past the end of the message")
        length = data[offset]
        if length & 0xC0:  # compression pointers never appear in a question we accept
            raise DnsFormatError("compressed name in a question")
        offset += 1
        if length == 0:
            return ".".join(labels), offset
        labels.append(data[offset:offset + length].decode("ascii", "replace"))
        offset += length


def encode_query(qid: int, name: str, qtype: int = TYPE_A) -> bytes:
    """A standard recursive query (tests and tools)."""
    return _HEADER.pack(qid, 0x0100, 1, 0, 0, 0) + encode_name(name) + struct.pack(
        "!HH", qtype, CLASS_IN
    )


def parse_query(data: bytes) -> Query:
    """Read the header and the single question of a query; raises DnsFormatError."""
    if len(data) < _HEADER.size:
        raise DnsFormatError("message shorter than a DNS header")
    qid, flags, qdcount, _an, _ns, _ar = _HEADER.unpack_from(data)
    if flags & 0x8000:
        raise DnsFormatError("not a query")
    if qdcount != 1:
        raise DnsFormatError(f"{qdcount} questions (exactly 1 supported)")
    name, end = _read_name(data, _HEADER.size)
    if end + 4 > len(data):
        raise DnsFormatError("question is truncated")
    qtype, qclass = struct.unpack_from("!HH", data, end)
    return Query(qid, flags, name, qtype, qclass, data[_HEADER.size:end + 4])


def build_response(
    query: Query, addresses: Sequence[ipaddress.IPv4Address] = (), rcode: int = 0
) -> bytes:
    """A response echoing the question with one A record per address (name by pointer)."""
    flags = 0x8000 | (query.flags & 0x7900) | 0x0400 | 0x0080 | rcode  # QR, opcode+RD, AA, RA
    out = _HEADER.pack(query.id, flags, 1, len(addresses), 0, 0) + query.question
    for address in addresses:
        # 0xC00C: pointer to the question's name, right after the 12-byte header.
        out += struct.pack("!HHHIH", 0xC00C, TYPE_A, CLASS_IN, TTL, 4) + address.packed
    return out


def error_response(data: bytes, rcode: int) -> bytes | None:
    """A bare header-only reply with ``rcode`` for a message we cannot handle (None if hopeless)."""
    if len(data) < _HEADER.size:
        return None
    qid, flags = struct.unpack_from("!HH", data)
    return _HEADER.pack(qid, 0x8000 | (flags & 0x7900) | rcode, 0, 0, 0, 0)


def parse_response(data: bytes) -> tuple[int, int, list[ipaddress.IPv4Address]]:
    """(id, rcode, A addresses) of a response (tests and tools; handles name pointers)."""
    qid, flags, qdcount, ancount, _ns, _ar = _HEADER.unpack_from(data)
    offset = _HEADER.size
    for _ in range(qdcount):
        offset = _skip_name(data, offset) + 4
    found: list[ipaddress.IPv4Address] = []
    for _ in range(ancount):
        offset = _skip_name(data, offset)
        rtype, _cls, _ttl, length = struct.unpack_from("!HHIH", data, offset)
        offset += 10
        if rtype == TYPE_A and length == 4:
            found.append(ipaddress.IPv4Address(data[offset:offset + 4]))
        offset += length
    return qid, flags & 0x0F, found


def _skip_name(data: bytes, offset: int) -> int:
    while True:
        length = data[offset]
        if length & 0xC0:
            return offset + 2
        offset += 1 + length
        if length == 0:
            return offset


def upstream_servers(resolv_conf: Path = Path("/etc/resolv.conf")) -> list[str]:
    """The IPv4 ``nameserver`` entries of a resolv.conf (missing file: none)."""
    try:
        text = resolv_conf.read_text()
    except OSError:
        return []
    out: list[str] = []
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver":
            try:
                out.append(str(ipaddress.IPv4Address(words[1])))
            except ValueError:
                continue
    return out


class DnsRecords:
    """Names per network, updated by the network service as containers come and go (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # network id -> container id -> (names, address)
        self._entries: dict[str, dict[str, tuple[frozenset[str], ipaddress.IPv4Address]]] = {}

    def set_endpoint(
        self, network_id: str, container_id: str, names: Iterable[str], ip: ipaddress.IPv4Address
    ) -> None:
        """(Re)define a container's names on a network; its 12-char short ID is always one."""
        keys = {n.lower().rstrip(".") for n in names if n} | {container_id[:12].lower()}
        with self._lock:
            self._entries.setdefault(network_id, {})[container_id] = (frozenset(keys), ip)

    def remove_endpoint(self, network_id: str, container_id: str) -> None:
        with self._lock:
            self._entries.get(network_id, {}).pop(container_id, None)

    def remove_network(self, network_id: str) -> None:
        with self._lock:
            self._entries.pop(network_id, None)

    def lookup(self, network_id: str, name: str) -> list[ipaddress.IPv4Address]:
        """Addresses for ``name`` on a network (several containers may share an alias)."""
        key = name.lower().rstrip(".")
        with self._lock:
            entries = list(self._entries.get(network_id, {}).values())
        return sorted({ip for names, ip in entries if key in names})


class _Responder(asyncio.DatagramProtocol):
    """One listener: drops datagrams from outside ``subnet``, answers the rest
    and keeps its pending answers so that stopping it cancels them (and closes their sockets)."""

    def __init__(
        self, server: DnsServer, network_id: str, subnet: ipaddress.IPv4Network
    ) -> None:
        self.server = server
        self.network_id = network_id
        self.subnet = subnet
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: set[asyncio.Future[bytes | None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # the selector transport is not a DatagramTransport subclass, though it behaves as one
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        if not self.serves(addr[0]):
            return  # not even an error reply: the listener is not there for that source
        task = asyncio.ensure_future(self.server.answer(self.network_id, data))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)
        task.add_done_callback(lambda t: self._reply(t, addr))

    def serves(self, source: str | object) -> bool:
        """Whether a datagram from ``source`` (an address) is this listener's to answer."""
        try:
            return ipaddress.IPv4Address(str(source)) in self.subnet
        except ValueError:
            return False

    async def cancel(self) -> None:
        """Cancel the answers still pending and wait until they are gone."""
        for task in self.pending:
            task.cancel()
        await asyncio.gather(*self.pending, return_exceptions=True)

    def _reply(self, task: asyncio.Future[bytes | None], addr: tuple[str | object, int]) -> None:
        if task.cancelled() or task.exception() is not None or self.transport is None:
            return
        reply = task.result()
        if reply is not None:
            self.transport.sendto(reply, addr)


class _Forward(asyncio.DatagramProtocol):
    def __init__(self, done: asyncio.Future[bytes], qid: int) -> None:
        self.done = done
        self.qid = qid

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        ours = len(data) >= 2 and struct.unpack_from("!H", data)[0] == self.qid
        if ours and not self.done.done():
            self.done.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.done.done():  # e.g. ICMP port unreachable: try the next upstream now
            self.done.set_exception(exc)


class DnsServer:
    """UDP listeners (one per network) answering from :class:`DnsRecords` (runs on a loop).

    ``timeout`` is what one upstream gets, ``query_timeout`` what a forwarded query gets over
    all of them; a listener waits on at most ``max_in_flight`` forwarded queries at once.
    """

    def __init__(
        self,
        records: DnsRecords,
        upstreams: Sequence[tuple[str, int]] | None = None,
        timeout: float = 2.0,
        *,
        max_in_flight: int = MAX_IN_FLIGHT,
        query_timeout: float = QUERY_TIMEOUT,
    ) -> None:
        self.records = records
        self.upstreams = (
            list(upstreams) if upstreams is not None
            else [(ip, 53) for ip in upstream_servers()]
        )
        self.timeout = timeout
        self.max_in_flight = max_in_flight
        self.query_timeout = query_timeout
        self._listeners: dict[str, tuple[asyncio.DatagramTransport, _Responder]] = {}
        self._in_flight: dict[str, int] = {}  # network id -> forwarded queries waited on

    async def listen(
        self, network_id: str, host: str, port: int = 53, *, subnet: ipaddress.IPv4Network,
    ) -> tuple[str, int]:
        """Serve one network's names on ``host:port`` to sources inside ``subnet`` (the
        network's); returns the bound address."""
        await self.stop(network_id)
        loop = asyncio.get_running_loop()
        responder = _Responder(self, network_id, subnet)
        transport, _ = await loop.create_datagram_endpoint(
            lambda: responder, local_addr=(host, port)
        )
        self._listeners[network_id] = (transport, responder)
        sockname = transport.get_extra_info("sockname")
        return str(sockname[0]), int(sockname[1])

    async def stop(self, network_id: str) -> None:
        """Close a network's listener; its pending answers are cancelled, their sockets closed."""
        found = self._listeners.pop(network_id, None)
        if found is not None:
            transport, responder = found
            transport.close()
            await responder.cancel()

    async def close(self) -> None:
        for network_id in list(self._listeners):
            await self.stop(network_id)

    async def answer(self, network_id: str, data: bytes) -> bytes | None:
        """The reply to one datagram (None: drop it)."""
        try:
            query = parse_query(data)
        except DnsFormatError:
            return error_response(data, RCODE_FORMERR)
        if (query.flags >> 11) & 0x0F:  # not a standard QUERY
            return build_response(query, rcode=RCODE_NOTIMP)
        found = self.records.lookup(network_id, query.name)
        if found and query.qclass == CLASS_IN:
            if query.qtype == TYPE_A:
                return build_response(query, found)
            if query.qtype == TYPE_AAAA:
                return build_response(query)
            return build_response(query, rcode=RCODE_NOTIMP)
        return await self._forward_capped(network_id, data, query)

    async def _forward_capped(self, network_id: str, data: bytes, query: Query) -> bytes:
        """The upstreams' answer, NXDOMAIN if none answers; SERVFAIL at once (no socket) when
        the network's listener already waits on ``max_in_flight`` forwarded queries."""
        busy = self._in_flight.get(network_id, 0)
        if busy >= self.max_in_flight:
            return build_response(query, rcode=RCODE_SERVFAIL)
        self._in_flight[network_id] = busy + 1
        try:
            forwarded = await self.forward(data, query.id)
        finally:
            left = self._in_flight[network_id] - 1
            if left:
                self._in_flight[network_id] = left
            else:
                del self._in_flight[network_id]
        return forwarded if forwarded is not None else build_response(query, rcode=RCODE_NXDOMAIN)

    async def forward(self, data: bytes, qid: int) -> bytes | None:
        """Ask each upstream in turn (``timeout`` each, ``query_timeout`` in all); the first
        answer wins, None if none answers in time."""
        try:
            async with asyncio.timeout(self.query_timeout):
                for host, port in self.upstreams:
                    reply = await self._ask(host, port, data, qid)
                    if reply is not None:
                        return reply
        except TimeoutError:
            pass
        return None

    async def _ask(self, host: str, port: int, data: bytes, qid: int) -> bytes | None:
        """One upstream's answer or None; its socket is closed however this ends (a
        cancellation included)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[bytes] = loop.create_future()
        try:
            transport, _ = await loop.create_datagram_endpoint(
                functools.partial(_Forward, done, qid), remote_addr=(host, port)
            )
        except OSError:
            return None
        try:
            transport.sendto(data)
            return await asyncio.wait_for(done, self.timeout)
        except (TimeoutError, OSError):
            return None
        finally:
            transport.close()
