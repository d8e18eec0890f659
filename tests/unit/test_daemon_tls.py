"""wharfd's listeners: -H parsing, the TLS rules of its settings, and half-close over TLS."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from tests.layout import ROOT
from wharf.cli.hijack import RawStream
from wharf.daemon.adapters.api.tls import server_context
from wharf.daemon.listen import ListenAddress, parse_listen_address
from wharf.daemon.settings import DaemonSettings
from wharf.errors import InvalidArgument
from wharf.hijack import HalfCloseTLSProtocol


@pytest.fixture(autouse=True)
def _no_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHARF_CONFIG_FILE", str(tmp_path / "none.json"))


def test_listen_addresses_and_default_ports() -> None:
    assert parse_listen_address("unix:///run/x.sock", tls=True) == ListenAddress(
        "unix", path=Path("/run/x.sock"))
    assert parse_listen_address("tcp://0.0.0.0", tls=True).port == 2376
    assert parse_listen_address("tcp://0.0.0.0", tls=False).port == 2375
    assert parse_listen_address("tcp://[::]:4000", tls=True).url == "tcp://[::]:4000"
    for bad in ("unix://relative", "tcp://:2376", "tcp://h:99999", "tcp://h:0", "ssh://h",
                "tcp://h/path"):
        with pytest.raises(ValueError, match="invalid listen address"):
            parse_listen_address(bad, tls=True)


def test_default_is_the_unix_socket_and_hosts_are_kept_in_order() -> None:
    assert DaemonSettings().listen_addresses == [
        ListenAddress("unix", path=Path("/run/wharf/wharfd.sock"))]
    settings = DaemonSettings(hosts=["tcp://127.0.0.1", "unix:///tmp/a.sock"], tlsverify=True)
    assert [a.url for a in settings.listen_addresses] == ["tcp://127.0.0.1:2376",
                                                          "unix:///tmp/a.sock"]
    assert settings.socket_path == Path("/tmp/a.sock")
    assert settings.tls_enabled


def test_plain_tcp_is_refused_without_insecure_tcp() -> None:
    with pytest.raises(ValidationError, match=r"refusing to listen on tcp://127\.0\.0\.1:2375"):
        DaemonSettings(hosts=["tcp://127.0.0.1"])
    settings = DaemonSettings(hosts=["tcp://127.0.0.1"], insecure_tcp=True)
    assert settings.listen_addresses[0].port == 2375
    with pytest.raises(ValidationError, match="contradicts"):
        DaemonSettings(hosts=["tcp://127.0.0.1"], insecure_tcp=True, tls=True)
    with pytest.raises(ValidationError, match="invalid listen address"):
        DaemonSettings(hosts=["http://x"])


def test_daemon_json_and_env_use_dockerd_names(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "daemon.json"
    config.write_text(json.dumps({"hosts": ["tcp://0.0.0.0:2376"], "tlsverify": True,
                                  "tlscacert": "/certs/ca.pem"}))
    monkeypatch.setenv("WHARF_CONFIG_FILE", str(config))
    monkeypatch.setenv("WHARF_TLSKEY", "/certs/k.pem")
    monkeypatch.setenv("WHARF_CERT_DIR", "/certs")
    settings = DaemonSettings()
    assert settings.tlsverify and settings.hosts == ["tcp://0.0.0.0:2376"]
    assert settings.tls_files() == (Path("/certs/ca.pem"), Path("/certs/cert.pem"),
                                    Path("/certs/k.pem"))


def test_tls_files_prefer_make_certs_server_files(tmp_path: Path) -> None:
    for name in ("server-cert.pem", "server-key.pem"):
        (tmp_path / name).write_text("pem")
    settings = DaemonSettings(cert_dir=tmp_path)
    assert settings.tls_files() == (tmp_path / "ca.pem", tmp_path / "server-cert.pem",
                                    tmp_path / "server-key.pem")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    out = tmp_path_factory.mktemp("certs")
    subprocess.run([str(ROOT / "infra/certs.sh")], check=True, capture_output=True,
                   env={"PATH": "/usr/bin:/bin", "CERT_DIR": str(out),
                        "CERT_HOSTS": "127.0.0.1,localhost"})
    return out


def test_server_context_names_a_missing_file(certs: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="--tlscacert"):
        server_context(tmp_path / "ca.pem", certs / "server-cert.pem",
                       certs / "server-key.pem", verify=True)
    with pytest.raises(InvalidArgument, match="cannot load"):
        server_context(certs / "ca.pem", certs / "server-cert.pem", certs / "key.pem",
                       verify=True)


class _HalfCloseEcho(asyncio.Protocol):
    """Collects input; after the peer's EOF writes it back and then closes (an attach)."""

    def __init__(self, keep_open: bool) -> None:
        self.keep_open = keep_open
        self.data = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.data += data

    def eof_received(self) -> bool:
        assert self.transport is not None
        if self.keep_open:
            transport = self.transport
            loop = asyncio.get_running_loop()
            loop.call_later(0.05, transport.write, b"after eof: " + self.data)
            loop.call_later(0.1, transport.close)
        return self.keep_open


@pytest.fixture
def tls_server(certs: Path, request: pytest.FixtureRequest) -> Iterator[int]:
    keep_open: bool = request.param
    context = server_context(certs / "ca.pem", certs / "server-cert.pem",
                             certs / "server-key.pem", verify=True)
    loop = asyncio.new_event_loop()
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def factory() -> asyncio.BaseProtocol:
        return HalfCloseTLSProtocol(loop, _HalfCloseEcho(keep_open), context, None,
                                    server_side=True)  # type: ignore[no-any-return]

    server = loop.run_until_complete(loop.create_server(factory, sock=listener))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield port
    loop.call_soon_threadsafe(server.close)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def _client(certs: Path, port: int) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    context.load_cert_chain(str(certs / "cert.pem"), str(certs / "key.pem"))
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return context.wrap_socket(raw, server_hostname="127.0.0.1")


def _read_all(stream: RawStream) -> bytes:
    out = b""
    while chunk := stream.recv():
        out += chunk
    return out


@pytest.mark.parametrize("tls_server", [True], indirect=True)
def test_output_keeps_flowing_after_the_clients_half_close(certs: Path, tls_server: int) -> None:
    stream = RawStream(_client(certs, tls_server))
    stream.sendall(b"stdin bytes")
    stream.close_write()  # a TCP FIN under TLS, as `wharf run -i` sends at the end of stdin
    assert _read_all(stream) == b"after eof: stdin bytes"
    stream.close()


@pytest.mark.parametrize("tls_server", [False], indirect=True)
def test_a_protocol_that_does_not_keep_open_is_closed_at_eof(certs: Path,
                                                             tls_server: int) -> None:
    stream = RawStream(_client(certs, tls_server))
    stream.sendall(b"x")
    stream.close_write()
    assert _read_all(stream) == b""
    stream.close()
