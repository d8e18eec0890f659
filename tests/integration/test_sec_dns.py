"""The embedded DNS of a real wharfd answers its own network alone (issue #12): a query to a
network's gateway from a source outside its subnet (a container on another network, the host)
gets no reply; from a container on the network it is answered.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from tests.daemon_fixture import Daemon, running_daemon
from tests.integration.conftest import SeededRegistry
from tests.integration.test_networking import clean, ok, pull, wharf
from wharf.daemon.core.network import dns

pytestmark = [pytest.mark.integration]
INNER, OUTER = "10.124.61", "10.124.62"  # the two networks' /24s


@pytest.fixture(scope="module")
def daemon(seeded_registry: SeededRegistry, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Daemon]:
    base = tmp_path_factory.mktemp("wharfd-sec-dns")
    with running_daemon(base, mirrors=[seeded_registry.registry.url],
                        env={"WHARF_BRIDGE_SUBNET": "10.124.210.0/24"}) as running:
        pull(running)
        try:
            yield running
        finally:
            clean(running)


def _ask(source: str, server: str, name: str, wait: float) -> list[str] | None:
    """The A addresses a query from ``source`` gets (None: no reply within ``wait``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.settimeout(wait)
        sock.sendto(dns.encode_query(42, name), (server, 53))
        try:
            _qid, _rcode, found = dns.parse_response(sock.recv(512))
        except TimeoutError:
            return None
    return [str(ip) for ip in found]


def test_a_network_s_dns_answers_its_own_subnet_alone(daemon: Daemon) -> None:
    try:
        ok(daemon, "network", "create", "--subnet", f"{INNER}.0/24", "sec-inner")
        ok(daemon, "network", "create", "--subnet", f"{OUTER}.0/24", "sec-outer")
        ok(daemon, "run", "-d", "--name", "sec-db", "--network", "sec-inner", "busybox",
           "sleep", "300")
        shown = json.loads(ok(daemon, "inspect", "sec-db"))[0]
        db_ip = shown["NetworkSettings"]["Networks"]["sec-inner"]["IPAddress"]

        # from the host: its queries leave with a source outside the subnet (127.0.0.1, or
        # masqueraded to it by the networks' rules), and are not answered
        assert _ask("127.0.0.1", f"{INNER}.1", "sec-db", 1.0) is None
        assert _ask(f"{OUTER}.1", f"{INNER}.1", "sec-db", 1.0) is None

        # from containers: one on the network resolves, one on another network gets nothing
        script = "nslookup sec-db {0}.1 && exit 0; exit 1"
        inside = ok(daemon, "run", "--rm", "--network", "sec-inner", "busybox", "sh", "-c",
                    script.format(INNER))
        assert db_ip in inside
        outside = wharf(daemon, "run", "--rm", "--network", "sec-outer", "busybox", "sh", "-c",
                        script.format(INNER), timeout=120)
        assert outside.returncode != 0 and db_ip not in outside.stdout, outside
    finally:
        wharf(daemon, "rm", "-f", "sec-db")
        for name in ("sec-inner", "sec-outer"):
            wharf(daemon, "network", "rm", name)
