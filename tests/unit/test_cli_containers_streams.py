"""The client hijack over a real unix socket, the stream pump through a pty, and the parsers."""

from __future__ import annotations

import io
import json
import os
import socket
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from wharf.cli.client import APIClient
from wharf.cli.commands.createbody import parse_ports, ram_in_bytes
from wharf.cli.hijack import RawStream, SocketHijacker
from wharf.cli.streams import (
    EscapeProxy,
    FrameDemuxer,
    PumpOptions,
    parse_detach_keys,
    pump,
    raw_terminal,
)
from wharf.cli.timestamps import api_timestamp, go_duration
from wharf.cli.transport import HttpTransport, parse_host
from wharf.dockerapi import frame
from wharf.errors import NotFound

UPGRADED = (b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
            b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n")


class AttachServer:
    """One-connection daemon: answers 101, sends frames, records stdin until the half-close."""

    def __init__(self, path: Path, refuse: bool = False) -> None:
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(1)
        self.refuse = refuse
        self.head = b""
        self.stdin = b""
        self.saw_half_close = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            while b"\r\n\r\n" not in self.head:
                self.head += conn.recv(4096)
            if self.refuse:
                body = b'{"message":"No such container: nope"}'
                conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                return
            # the first frame travels in the same packet as the head: RawStream must keep it
            conn.sendall(UPGRADED + frame(1, b"hi\n"))
            while chunk := conn.recv(4096):
                self.stdin += chunk
            self.saw_half_close.set()
            # still writable after the client's SHUT_WR: output keeps flowing
            conn.sendall(frame(2, b"err1\n") + frame(1, b"got " + self.stdin))


@pytest.fixture
def sock_path(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "d.sock"
    yield path
    path.unlink(missing_ok=True)


def _client(path: Path) -> APIClient:
    host = parse_host(f"unix://{path}")
    return APIClient(HttpTransport(host), SocketHijacker(host))


def test_hijack_over_a_unix_socket_demuxes_and_half_closes(sock_path: Path) -> None:
    server = AttachServer(sock_path)
    conn = _client(sock_path).attach("cap-x", {"stream": "1", "stdin": "1", "stdout": "1"})
    out, err = io.BytesIO(), io.BytesIO()
    detached = pump(conn, out, err, PumpOptions(tty=False, stdin=io.BytesIO(b"typed\n")))
    conn.close()
    server.thread.join(timeout=5)
    assert not detached
    assert server.saw_half_close.is_set()
    assert server.stdin == b"typed\n"
    assert (out.getvalue(), err.getvalue()) == (b"hi\ngot typed\n", b"err1\n")
    head = server.head.decode()
    assert head.startswith("POST /v1.41/containers/cap-x/attach?stream=1&stdin=1&stdout=1 "
                           "HTTP/1.1\r\n")
    assert "Connection: Upgrade\r\n" in head and "Upgrade: tcp\r\n" in head


def test_hijack_refusal_becomes_the_error_kind(sock_path: Path) -> None:
    server = AttachServer(sock_path, refuse=True)
    with pytest.raises(NotFound, match="No such container: nope"):
        _client(sock_path).exec_start("nope", tty=False)
    server.thread.join(timeout=5)
    head, _, _body = server.head.partition(b"\r\n\r\n")
    assert head.startswith(b"POST /v1.41/exec/nope/start HTTP/1.1")
    assert b"Content-Type: application/json" in head


def test_pty_session_raw_mode_both_ways_detach_and_restore() -> None:
    master, slave = os.openpty()
    ours, theirs = socket.socketpair()
    before = termios.tcgetattr(slave)
    out_r, out_w = os.pipe()
    result: dict[str, object] = {}

    def session() -> None:
        with raw_terminal(slave):
            result["raw_lflag"] = termios.tcgetattr(slave)[3]
            with os.fdopen(out_w, "wb", buffering=0) as out:
                result["detached"] = pump(RawStream(ours), out, out, PumpOptions(
                    tty=True, stdin=slave, detach_keys=parse_detach_keys(None)))

    worker = threading.Thread(target=session)
    try:
        worker.start()
        theirs.sendall(b"$ prompt\r\n")
        assert os.read(out_r, 100) == b"$ prompt\r\n"
        os.write(master, b"ls\r")
        assert theirs.recv(100) == b"ls\r"
        os.write(master, b"\x10x\x10\x11")  # a broken ctrl-p goes through, then detach
        worker.join(timeout=5)
        assert not worker.is_alive()
        assert result["detached"] is True
        assert theirs.recv(100) == b"\x10x"
        assert not int(result["raw_lflag"]) & termios.ICANON  # type: ignore[call-overload]
        assert termios.tcgetattr(slave) == before
    finally:
        for fd in (master, slave, out_r):
            os.close(fd)
        ours.close()
        theirs.close()


def test_pump_ends_when_output_ends_even_with_stdin_open() -> None:
    ours, theirs = socket.socketpair()
    stdin_r, stdin_w = os.pipe()
    theirs.sendall(frame(1, b"done\n"))
    theirs.shutdown(socket.SHUT_WR)
    out = io.BytesIO()
    started = time.monotonic()
    assert pump(RawStream(ours), out, out, PumpOptions(tty=False, stdin=stdin_r)) is False
    assert time.monotonic() - started < 2
    assert out.getvalue() == b"done\n"
    for fd in (stdin_r, stdin_w):
        os.close(fd)
    ours.close()
    theirs.close()


def test_demuxer_handles_frames_split_across_chunks() -> None:
    data = frame(1, b"hello") + frame(2, b"oops\n") + frame(1, b"")
    demux = FrameDemuxer()
    got = [f for i in range(len(data)) for f in demux.feed(data[i:i + 1])]
    assert got == [(1, b"hello"), (2, b"oops\n"), (1, b"")]


def test_escape_proxy_and_detach_key_parsing() -> None:
    assert parse_detach_keys("ctrl-a,x") == b"\x01x"
    assert parse_detach_keys("ctrl-@,ctrl-[") == b"\x00\x1b"
    assert parse_detach_keys("bogus-key") == b"\x10\x11"
    proxy = EscapeProxy(b"\x10\x11")
    assert proxy.feed(b"ab\x10") == (b"ab", False)
    assert proxy.feed(b"\x10") == (b"\x10", False)  # held one released, the new one held
    assert proxy.feed(b"\x11rest") == (b"", True)


@pytest.mark.parametrize(("text", "size"), [("64m", 64 << 20), ("1g", 1 << 30),
                                            ("512k", 512 << 10), ("100", 100),
                                            ("1.5GB", 3 << 29), ("2MiB", 2 << 20)])
def test_ram_in_bytes(text: str, size: int) -> None:
    assert ram_in_bytes(text) == size


def test_ram_in_bytes_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="invalid size: 'x'"):
        ram_in_bytes("x")


def test_ports_with_ipv6_and_defaults() -> None:
    exposed, bindings = parse_ports(["80", "[::1]:8080:81/udp"])
    assert exposed == {"80/tcp": {}, "81/udp": {}}
    assert bindings["80/tcp"] == [{"HostIp": "", "HostPort": ""}]
    assert bindings["81/udp"] == [{"HostIp": "::1", "HostPort": "8080"}]


def test_timestamps_like_docker() -> None:
    assert go_duration("1h30m") == 5400 and go_duration("500ms") == 0.5
    assert go_duration("10x") is None
    assert api_timestamp("1700000000") == "1700000000"
    assert api_timestamp("10m", now=1000.0) == "400.000000000"
    assert api_timestamp("2026-11-28T01:06:44Z") == "1795828004.000000000"
    assert json.dumps(api_timestamp("2026-11-28T01:06:44.5+00:00")) == '"1795828004.500000000"'
