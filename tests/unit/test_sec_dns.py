"""The embedded DNS's trust boundaries (issue #12): a listener answers its own network alone,
waits on a bounded number of forwarded queries and closes every socket it opened for them.

Real UDP sockets on loopback; the upstream is a bound socket that never answers, so a forwarded
query holds its socket until its timeout.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wharf.daemon.core.network import dns
from wharf.daemon.core.network.dns import MAX_IN_FLIGHT, DnsRecords, DnsServer
from wharf.daemon.core.network.ipam import Network
from wharf.daemon.core.network.manager import Networks

IP = ipaddress.IPv4Address
NET = ipaddress.IPv4Network
CID = "0123456789ab" + "c" * 52
FAR = "far.example.test"  # no record: forwarded


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _udp(bind: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((bind, 0))
    return sock


def _send(sock: socket.socket, addr: tuple[str, int], first: int, count: int, name: str) -> None:
    for qid in range(first, first + count):
        sock.sendto(dns.encode_query(qid, name), addr)


def _receive(sock: socket.socket, count: int, timeout: float) -> list[tuple[int, int]]:
    """(id, rcode) of ``count`` replies; fewer if the socket stays quiet for ``timeout``."""
    sock.settimeout(timeout)
    got: list[tuple[int, int]] = []
    try:
        while len(got) < count:
            qid, rcode, _ = dns.parse_response(sock.recv(512))
            got.append((qid, rcode))
    except TimeoutError:
        pass
    return got


async def _until(check: Callable[[], bool], limit: float = 10.0) -> bool:
    """Poll ``check`` on the loop (closing a transport takes a loop turn or two)."""
    end = time.monotonic() + limit
    while not check():
        if time.monotonic() > end:
            return False
        await asyncio.sleep(0.01)
    return True


def test_forwarded_queries_beyond_the_cap_get_servfail_at_once_and_fds_stay_bounded() -> None:
    burst = 200

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        with _udp() as silent, _udp() as client:
            before = _fds()
            server = DnsServer(DnsRecords(), upstreams=[silent.getsockname()], timeout=10.0,
                               query_timeout=2.0)
            addr = await server.listen("n1", "127.0.0.1", 0, subnet=NET("127.0.0.0/8"))
            try:
                await loop.run_in_executor(None, _send, client, addr, 0, burst, FAR)
                # the first MAX_IN_FLIGHT wait on the silent upstream; the others fail at once
                refused = await loop.run_in_executor(None, _receive, client,
                                                     burst - MAX_IN_FLIGHT, 1.5)
                during = _fds() - before
                assert sorted(refused) == [(q, dns.RCODE_SERVFAIL)
                                           for q in range(MAX_IN_FLIGHT, burst)]
                assert during <= MAX_IN_FLIGHT + 1  # the listener and one socket per query
                assert during >= MAX_IN_FLIGHT  # they really were waiting on the upstream
                # the waiting ones time out, are answered and their sockets closed
                late = await loop.run_in_executor(None, _receive, client, MAX_IN_FLIGHT, 5.0)
                assert sorted(late) == [(q, dns.RCODE_NXDOMAIN) for q in range(MAX_IN_FLIGHT)]
                assert await _until(lambda: _fds() == before + 1)
                # and the listener takes forwarded queries again
                await loop.run_in_executor(None, _send, client, addr, 500, 1, FAR)
                assert await loop.run_in_executor(None, _receive, client, 1, 5.0) == [
                    (500, dns.RCODE_NXDOMAIN)]
            finally:
                await server.close()
            assert await _until(lambda: _fds() == before)

    asyncio.run(scenario())


def test_stopping_a_listener_closes_the_sockets_of_its_pending_queries() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        with _udp() as silent, _udp() as client:
            before = _fds()
            server = DnsServer(DnsRecords(), upstreams=[silent.getsockname()], timeout=60.0,
                               query_timeout=60.0)
            addr = await server.listen("n1", "127.0.0.1", 0, subnet=NET("127.0.0.0/8"))
            await loop.run_in_executor(None, _send, client, addr, 0, 10, FAR)
            assert await _until(lambda: _fds() == before + 11)
            await server.stop("n1")
            assert await _until(lambda: _fds() == before)

    asyncio.run(scenario())


def test_a_query_gets_query_timeout_over_all_upstreams_not_timeout_for_each() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        with _udp() as one, _udp() as two, _udp() as client:
            before = _fds()
            server = DnsServer(DnsRecords(), upstreams=[one.getsockname(), two.getsockname()],
                               timeout=30.0, query_timeout=0.3)
            addr = await server.listen("n1", "127.0.0.1", 0, subnet=NET("127.0.0.0/8"))
            try:
                started = time.monotonic()
                await loop.run_in_executor(None, _send, client, addr, 7, 1, FAR)
                got = await loop.run_in_executor(None, _receive, client, 1, 10.0)
                assert got == [(7, dns.RCODE_NXDOMAIN)]
                assert time.monotonic() - started < 10  # not 2 x 30 s
                assert await _until(lambda: _fds() == before + 1)
            finally:
                await server.close()

    asyncio.run(scenario())


def test_a_listener_answers_nothing_to_a_source_outside_its_subnet() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        records = DnsRecords()
        records.set_endpoint("n1", CID, ["db"], IP("10.123.0.5"))
        with _udp() as silent, _udp("127.0.0.1") as inside, _udp("127.0.0.2") as outside:
            before = _fds()
            server = DnsServer(records, upstreams=[silent.getsockname()], timeout=0.2)
            addr = await server.listen("n1", "127.0.0.1", 0, subnet=NET("127.0.0.1/32"))
            try:
                # from outside: neither a known name, nor a forwarded one, nor garbage is
                # answered, and no forwarding socket is opened
                await loop.run_in_executor(None, _send, outside, addr, 1, 1, "db")
                await loop.run_in_executor(None, _send, outside, addr, 2, 20, FAR)
                outside.sendto(b"\x00\x09garbage", addr)
                assert _fds() == before + 1
                assert await loop.run_in_executor(None, _receive, outside, 1, 0.5) == []
                assert _fds() == before + 1
                # from inside: answered
                await loop.run_in_executor(None, _send, inside, addr, 3, 1, "db")
                assert await loop.run_in_executor(None, _receive, inside, 1, 5.0) == [(3, 0)]
            finally:
                await server.close()

    asyncio.run(scenario())


def test_serves_is_the_subnet_and_only_ipv4_addresses() -> None:
    server = DnsServer(DnsRecords(), upstreams=[])
    responder = dns._Responder(server, "n1", NET("10.123.0.0/24"))
    assert responder.serves("10.123.0.7") and responder.serves("10.123.0.1")
    assert not responder.serves("10.124.0.7")
    assert not responder.serves("::1") and not responder.serves(object())


class _RecordingDns:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    async def listen(self, network_id: str, host: str, port: int = 53,
                     subnet: ipaddress.IPv4Network | None = None) -> tuple[str, int]:
        self.calls.append((network_id, host, port, subnet))
        return host, port


def test_the_network_manager_gives_each_listener_its_network_s_subnet(tmp_path: Path) -> None:
    fake = _RecordingDns()
    networks = Networks(object(), object(), dns=fake)  # type: ignore[arg-type]
    network = Network(id="n" * 64, name="web", driver="bridge", bridge="br-web",
                      subnet=NET("10.123.4.0/24"), gateway=IP("10.123.4.1"), internal=False,
                      labels={}, options={}, created_at="")
    asyncio.run(networks._listen(network))
    assert fake.calls == [("n" * 64, "10.123.4.1", 53, NET("10.123.4.0/24"))]
