"""The embedded DNS responder: message encoding, records, and a real UDP round trip on loopback."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct
from pathlib import Path
from typing import cast

import pytest

from wharf.daemon.core.network import dns
from wharf.daemon.core.network.dns import DnsRecords, DnsServer

IP = ipaddress.IPv4Address
CID = "0123456789ab" + "c" * 52


def test_query_round_trip_and_response_shape() -> None:
    raw = dns.encode_query(0x1234, "Web.Example.")
    query = dns.parse_query(raw)
    assert (query.id, query.name, query.qtype, query.qclass) == (0x1234, "Web.Example", 1, 1)
    reply = dns.build_response(query, [IP("10.123.0.2"), IP("10.123.0.3")])
    assert dns.parse_response(reply) == (0x1234, 0, [IP("10.123.0.2"), IP("10.123.0.3")])
    flags = struct.unpack_from("!H", reply, 2)[0]
    assert flags & 0x8000 and flags & 0x0100  # a response, recursion desired echoed
    assert dns.parse_response(dns.build_response(query, rcode=3)) == (0x1234, 3, [])


@pytest.mark.parametrize(
    "data",
    [b"\x00\x01", dns.encode_query(1, "a")[:-2], b"\x00\x01\x81\x00" + b"\x00" * 8,
     struct.pack("!HHHHHH", 1, 0, 2, 0, 0, 0)],
)
def test_malformed_queries_are_refused(data: bytes) -> None:
    with pytest.raises(dns.DnsFormatError):
        dns.parse_query(data)


def test_records_resolve_name_alias_short_id_case_insensitively() -> None:
    records = DnsRecords()
    records.set_endpoint("n1", CID, ["web", "Front"], IP("10.123.0.2"))
    records.set_endpoint("n2", CID, ["web"], IP("10.124.0.2"))
    assert records.lookup("n1", "WEB.") == [IP("10.123.0.2")]
    assert records.lookup("n1", "front") == [IP("10.123.0.2")]
    assert records.lookup("n1", CID[:12].upper()) == [IP("10.123.0.2")]
    assert records.lookup("n2", "front") == []
    records.remove_endpoint("n1", CID)
    assert records.lookup("n1", "web") == []
    assert records.lookup("n2", "web") == [IP("10.124.0.2")]


def test_upstream_servers_from_resolv_conf(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text(
        "# x\nnameserver 10.0.0.53\nnameserver fe80::1\nsearch lan\nnameserver 1.1.1.1\n"
    )
    assert dns.upstream_servers(conf) == ["10.0.0.53", "1.1.1.1"]
    assert dns.upstream_servers(tmp_path / "missing") == []


def _ask(addr: tuple[str, int], name: str, qtype: int = dns.TYPE_A) -> tuple[int, int, list[IP]]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(dns.encode_query(77, name, qtype), addr)
        return dns.parse_response(sock.recv(512))


class _Upstream(asyncio.DatagramProtocol):
    """A fake upstream resolver that knows one name."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        query = dns.parse_query(data)
        if query.name == "upstream.test":
            self.transport.sendto(dns.build_response(query, [IP("192.0.2.99")]), addr)


def test_udp_server_answers_and_forwards() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        upstream, _ = await loop.create_datagram_endpoint(_Upstream, local_addr=("127.0.0.1", 0))
        up_port = upstream.get_extra_info("sockname")[1]
        silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # never answers
        silent.bind(("127.0.0.1", 0))
        records = DnsRecords()
        records.set_endpoint("n1", CID, ["db", "alias1"], IP("10.123.0.5"))
        server = DnsServer(records, upstreams=[("127.0.0.1", silent.getsockname()[1]),
                                               ("127.0.0.1", up_port)], timeout=0.3)
        addr = await server.listen("n1", "127.0.0.1", 0,
                                  subnet=ipaddress.IPv4Network("127.0.0.0/8"))
        try:
            ask = lambda *a: loop.run_in_executor(None, _ask, addr, *a)  # noqa: E731
            assert await ask("DB") == (77, 0, [IP("10.123.0.5")])
            assert await ask("alias1") == (77, 0, [IP("10.123.0.5")])
            assert await ask(CID[:12]) == (77, 0, [IP("10.123.0.5")])
            assert await ask("db", dns.TYPE_AAAA) == (77, 0, [])
            assert await ask("db", 16) == (77, dns.RCODE_NOTIMP, [])
            assert await ask("upstream.test") == (77, 0, [IP("192.0.2.99")])
            assert await ask("nowhere.test") == (77, dns.RCODE_NXDOMAIN, [])
            records.remove_endpoint("n1", CID)
            assert await ask("db") == (77, dns.RCODE_NXDOMAIN, [])
        finally:
            await server.close()
            upstream.close()
            silent.close()

    asyncio.run(scenario())
