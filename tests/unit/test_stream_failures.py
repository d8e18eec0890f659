"""A reply that breaks after it started is an error, on both sides of the wire.

CLI side: a real fake daemon (a threaded HTTP/1.1 server on a unix socket) sends canned replies
whose body stops short — chunked without the last chunk, a short chunk, a malformed chunk size,
fewer bytes than Content-Length — and hangs up; every streaming command must say so and exit
non-zero, leaving no partial file behind. Daemon side: a JSON progress stream ends with Docker's
``errorDetail`` whatever the exception, and a raw stream that fails is never ended cleanly.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import socket
import socketserver
import subprocess
import sys
import tarfile
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import IO, Any

import pytest
import uvicorn
from click.testing import CliRunner, Result
from fastapi.testclient import TestClient

from wharf.cli.hijack import SocketHijacker
from wharf.cli.main import build_cli
from wharf.cli.session import Hooks
from wharf.cli.transport import HttpTransport, parse_host
from wharf.cli.wire import SocketTransport
from wharf.daemon.adapters.api.server import create_app
from wharf.dockerapi import frame
from wharf.errors import NotFound, Unavailable
from wharf.hijack import bind_protocol

CUT = "reply ended before it was complete"
WHARF = str(Path(sys.executable).parent / "wharf")
GO_DIR = 1 << 31


# -- the fake daemon ---------------------------------------------------------------------------

def sized(body: bytes, *, claims: int | None = None, status: str = "200 OK",
          content_type: str = "application/json", extra: str = "") -> bytes:
    """A reply with a Content-Length: ``claims`` bytes announced (default: the truth)."""
    length = len(body) if claims is None else claims
    return (f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\n"
            f"{extra}\r\n").encode() + body


def chunked(*pieces: bytes, end: bool = False, status: str = "200 OK",
            content_type: str = "application/json", extra: str = "") -> bytes:
    """A chunked reply; without ``end`` the terminating zero-length chunk never comes."""
    head = (f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
            f"Transfer-Encoding: chunked\r\n{extra}\r\n").encode()
    body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces)
    return head + body + (b"0\r\n\r\n" if end else b"")


class CuttingDaemon:
    """Answers ``"METHOD /path"`` (no version prefix, no query) with canned bytes, then hangs up;
    anything else gets a 404. Each connection is served on its own thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.replies: dict[str, bytes] = {}
        self.seen: list[str] = []
        replies, seen = self.replies, self.seen

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                what = _read_request(self.rfile)
                seen.append(what)
                missing = json.dumps({"message": f"no route {what}"}).encode()
                self.wfile.write(replies.get(what, sized(missing, status="404 Not Found")))

        self.server = socketserver.ThreadingUnixStreamServer(str(path), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()

    @property
    def host(self) -> str:
        return f"unix://{self.path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _read_request(rfile: IO[bytes]) -> str:
    """The request's "METHOD /path"; its head and body are read to the end."""
    method, target = rfile.readline().decode("latin-1").split(" ")[:2]
    headers = {}
    while line := rfile.readline().decode("latin-1").strip():
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", ""):
        while size := int(rfile.readline().strip(), 16):
            rfile.read(size + 2)
        rfile.readline()
    else:
        rfile.read(int(headers.get("content-length", "0")))
    return f"{method} {target.split('?')[0].removeprefix('/v1.41')}"


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[CuttingDaemon]:
    run = tmp_path / "run"
    run.mkdir()
    fake = CuttingDaemon(run / "d.sock")
    yield fake
    fake.close()


def wharf(daemon: CuttingDaemon, *args: str) -> Result:
    """The CLI in-process over its real socket transport (stdout and stdin are no terminal)."""
    return CliRunner().invoke(build_cli(), ["-H", daemon.host, *args],
                              obj=Hooks(stdout_tty=False, stdin_tty=False))


# a body stopped short in each way the wire allows
CUTS = {
    "no last chunk": chunked(b"x" * 1000, content_type="application/x-tar"),
    "short chunk": chunked(content_type="application/x-tar") + b"3e8\r\n" + b"x" * 100,
    "bad chunk size": chunked(b"x" * 1000, content_type="application/x-tar") + b"zz\r\nxx\r\n",
    "short content-length": sized(b"x" * 1000, claims=4096, content_type="application/x-tar"),
}


# -- the CLI's reader --------------------------------------------------------------------------

@pytest.mark.parametrize("cut", CUTS)
def test_the_socket_transport_refuses_a_body_cut_short(daemon: CuttingDaemon, cut: str) -> None:
    daemon.replies["GET /images/get"] = CUTS[cut]
    wire = SocketTransport(parse_host(daemon.host))
    with pytest.raises(Unavailable, match=CUT):
        wire.stream("GET", "/images/get").read()
    with pytest.raises(Unavailable, match=CUT):
        wire.request("GET", "/images/get")


@pytest.mark.parametrize("cut", ["no last chunk", "short content-length"])
def test_the_httpx_transport_refuses_a_body_cut_short(daemon: CuttingDaemon, cut: str) -> None:
    daemon.replies["GET /images/get"] = CUTS[cut]
    wire = HttpTransport(parse_host(daemon.host))
    try:
        with pytest.raises(Unavailable, match=CUT):
            wire.stream("GET", "/images/get").read()
        with pytest.raises(Unavailable, match=CUT):
            wire.request("GET", "/images/get")
    finally:
        wire.close()


def test_a_refused_upgrade_whose_body_is_cut_short(daemon: CuttingDaemon) -> None:
    daemon.replies["POST /containers/c1/attach"] = chunked(b'{"message":"No such cont',
                                                           status="404 Not Found")
    with pytest.raises(Unavailable, match=CUT):
        SocketHijacker(parse_host(daemon.host)).open("/containers/c1/attach", {})


def test_a_complete_chunked_body_with_a_size_extension_still_reads(daemon: CuttingDaemon) -> None:
    daemon.replies["GET /images/get"] = (chunked(content_type="application/x-tar")
                                         + b"3;name=value\r\nabc\r\n0\r\n\r\n")
    wire = SocketTransport(parse_host(daemon.host))
    assert wire.request("GET", "/images/get").body == b"abc"


# -- save ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("cut", CUTS)
def test_save_to_a_file_fails_and_leaves_no_file(daemon: CuttingDaemon, tmp_path: Path,
                                                 cut: str) -> None:
    daemon.replies["GET /images/get"] = CUTS[cut]
    out = tmp_path / "out"
    out.mkdir()
    result = subprocess.run([WHARF, "-H", daemon.host, "save", "-o", str(out / "b.tar"),
                             "busybox"], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1, result.stderr
    assert CUT in result.stderr and "Traceback" not in result.stderr
    assert list(out.iterdir()) == []  # neither the file nor its temporary twin


def test_save_to_stdout_fails_after_what_arrived(daemon: CuttingDaemon) -> None:
    daemon.replies["GET /images/get"] = CUTS["no last chunk"]
    result = wharf(daemon, "save", "busybox")
    assert result.exit_code == 1 and CUT in result.stderr
    assert result.stdout_bytes == b"x" * 1000


# -- export --------------------------------------------------------------------------------------

@pytest.mark.parametrize("cut", CUTS)
def test_export_to_a_file_fails_and_leaves_no_file(daemon: CuttingDaemon, tmp_path: Path,
                                                   cut: str) -> None:
    daemon.replies["GET /containers/c1/export"] = CUTS[cut]
    out = tmp_path / "out"
    out.mkdir()
    result = subprocess.run([WHARF, "-H", daemon.host, "export", "-o", str(out / "c.tar"), "c1"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1, result.stderr
    assert CUT in result.stderr and "Traceback" not in result.stderr
    assert list(out.iterdir()) == []  # neither the file nor its temporary twin


def test_export_to_stdout_fails_after_what_arrived(daemon: CuttingDaemon) -> None:
    daemon.replies["GET /containers/c1/export"] = CUTS["no last chunk"]
    result = wharf(daemon, "container", "export", "c1")
    assert result.exit_code == 1 and CUT in result.stderr
    assert result.stdout_bytes == b"x" * 1000


def test_export_refuses_to_write_a_tar_to_a_terminal(daemon: CuttingDaemon) -> None:
    result = CliRunner().invoke(build_cli(), ["-H", daemon.host, "export", "c1"],
                                obj=Hooks(stdout_tty=True, stdin_tty=False))
    assert result.exit_code == 1
    assert "cowardly refusing to save to a terminal. Use the -o flag or redirect" in result.stderr
    assert not any("export" in what for what in daemon.seen)


# -- cp ------------------------------------------------------------------------------------------

def _archive_head() -> str:
    stat = {"name": "d", "size": 0, "mode": GO_DIR | 0o755, "mtime": "2026-01-01T00:00:00Z",
            "linkTarget": ""}
    encoded = base64.b64encode(json.dumps(stat).encode()).decode()
    return f"X-Docker-Container-Path-Stat: {encoded}\r\n"


def _tar_without_its_end() -> bytes:
    """A directory ``d`` with ``d/f``: every member complete, the end-of-archive never sent."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tf:
        top = tarfile.TarInfo("d")
        top.type, top.mode = tarfile.DIRTYPE, 0o755
        tf.addfile(top)
        info = tarfile.TarInfo("d/f")
        info.size = 5
        tf.addfile(info, io.BytesIO(b"hello"))
    return out.getvalue()[:3 * 512]


@pytest.fixture
def cut_archive(daemon: CuttingDaemon) -> CuttingDaemon:
    daemon.replies["GET /containers/c1/archive"] = chunked(
        _tar_without_its_end(), content_type="application/x-tar", extra=_archive_head())
    return daemon


@pytest.mark.parametrize("existing", [True, False])
def test_cp_leaves_nothing_behind(cut_archive: CuttingDaemon, tmp_path: Path,
                                  existing: bool) -> None:
    dest = tmp_path / "dest"  # an existing directory gets dest/d, a new name is the copy
    if existing:
        dest.mkdir()
    result = wharf(cut_archive, "cp", "c1:/d", str(dest))
    assert result.exit_code == 1 and CUT in result.stderr, result.output
    assert sorted(p.name for p in tmp_path.rglob("*")) == (["d.sock", "dest", "run"] if existing
                                                            else ["d.sock", "run"])


def test_cp_to_stdout_fails_after_what_arrived(cut_archive: CuttingDaemon) -> None:
    result = wharf(cut_archive, "cp", "c1:/d", "-")
    assert result.exit_code == 1 and CUT in result.stderr
    assert result.stdout_bytes == _tar_without_its_end()


def test_cp_of_a_complete_archive_still_extracts(daemon: CuttingDaemon, tmp_path: Path) -> None:
    whole = _tar_without_its_end() + b"\0" * 1024
    daemon.replies["GET /containers/c1/archive"] = chunked(
        whole, end=True, content_type="application/x-tar", extra=_archive_head())
    result = wharf(daemon, "cp", "c1:/d", str(tmp_path / "copy"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "copy" / "f").read_bytes() == b"hello"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy", "run"]


# -- logs, events, wait --------------------------------------------------------------------------

@pytest.mark.parametrize("follow", [[], ["-f"]])
def test_logs_fail_when_the_stream_is_cut(daemon: CuttingDaemon, follow: list[str]) -> None:
    daemon.replies["GET /containers/c1/json"] = sized(b'{"Id": "c1", "Config": {"Tty": false}}')
    daemon.replies["GET /containers/c1/logs"] = chunked(frame(1, b"one\n"),
                                                        content_type="")
    result = wharf(daemon, "logs", *follow, "c1")
    assert result.exit_code == 1 and CUT in result.stderr, result.output
    assert result.stdout == "one\n"


def test_events_fail_when_the_stream_is_cut(daemon: CuttingDaemon) -> None:
    event = {"Type": "container", "Action": "start", "Actor": {"ID": "c1", "Attributes": {}},
             "time": 1, "timeNano": 1_000_000_000}
    daemon.replies["GET /events"] = chunked(json.dumps(event).encode() + b"\n")
    result = wharf(daemon, "events")
    assert result.exit_code == 1 and CUT in result.stderr, result.output
    assert "container start c1" in result.stdout


def test_wait_fails_when_its_result_is_cut(daemon: CuttingDaemon) -> None:
    daemon.replies["POST /containers/c1/wait"] = chunked(b'{"Error":null,"StatusCode":0}\n')
    result = wharf(daemon, "wait", "c1")
    assert result.exit_code == 1 and CUT in result.stderr, result.output
    assert result.stdout == ""


# -- JSON-message streams ------------------------------------------------------------------------

PULLING = b'{"status":"Pulling from library/busybox","id":"latest"}\n'
JSON_COMMANDS = {
    "pull": ("POST /images/create", ["pull", "busybox"]),
    "push": ("POST /images/127.0.0.1:5000/me/b/push", ["push", "127.0.0.1:5000/me/b:1"]),
}


@pytest.mark.parametrize("command", JSON_COMMANDS)
@pytest.mark.parametrize("body", [PULLING, PULLING + b'{"status":"Downlo'])
def test_a_json_stream_cut_short_fails(daemon: CuttingDaemon, command: str,
                                       body: bytes) -> None:
    route, args = JSON_COMMANDS[command]
    daemon.replies[route] = chunked(body)
    result = wharf(daemon, *args)
    assert result.exit_code == 1 and CUT in result.stderr, result.output
    assert "docker.io/" not in result.stdout  # the closing reference line never comes


def test_load_fails_when_its_messages_are_cut(daemon: CuttingDaemon, tmp_path: Path) -> None:
    (tmp_path / "in.tar").write_bytes(b"tar bytes")
    daemon.replies["POST /images/load"] = sized(
        b'{"stream":"Loaded image: busybox:latest\\n"}\n', claims=200)
    result = wharf(daemon, "load", "-i", str(tmp_path / "in.tar"))
    assert result.exit_code == 1 and CUT in result.stderr, result.output


@pytest.mark.parametrize(("line", "message"), [
    (b'{"errorDetail":{"message":"manifest unknown"},"error":"manifest unknown"}\n',
     "manifest unknown"),
    (b'{"errorDetail":{}}\n', "the daemon reported an error without a message"),
    (b'{"errorDetail":{"message":""},"error":""}\n',
     "the daemon reported an error without a message"),
])
@pytest.mark.parametrize("quiet", [[], ["-q"]])
def test_an_error_message_in_a_json_stream_fails(daemon: CuttingDaemon, line: bytes,
                                                 message: str, quiet: list[str]) -> None:
    daemon.replies["POST /images/create"] = chunked(PULLING, line, end=True)
    result = wharf(daemon, "pull", *quiet, "busybox")
    assert result.exit_code == 1, result.output
    assert result.stderr.strip() == message


# -- the daemon's side ---------------------------------------------------------------------------

class FailingImages:
    """An image service whose pull and save break after their first piece."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def get(self, name: str) -> object:
        return SimpleNamespace(name=name)

    async def pull(self, *args: object) -> AsyncIterator[dict[str, Any]]:
        yield {"status": "Pulling from library/busybox", "id": "latest"}
        raise self.error

    def save(self, names: list[str]) -> Iterator[bytes]:
        yield b"x" * 1000
        raise self.error


def test_a_json_stream_ends_with_error_detail_for_any_exception(
        caplog: pytest.LogCaptureFixture) -> None:
    engine = SimpleNamespace(images=FailingImages(KeyError("layer")))
    with TestClient(create_app(engine)) as client:  # type: ignore[arg-type]
        reply = client.post("/v1.41/images/create?fromImage=busybox&tag=latest")
    lines = [json.loads(line) for line in reply.text.splitlines()]
    assert reply.status_code == 200 and lines[0]["status"] == "Pulling from library/busybox"
    assert lines[-1] == {"errorDetail": {"message": "internal error: 'layer'"},
                         "error": "internal error: 'layer'"}
    failed = [r for r in caplog.records if r.exc_info and r.exc_info[1] is engine.images.error]
    assert failed and "/images/create" in failed[0].getMessage()


@pytest.fixture
def real_server(tmp_path: Path) -> Iterator[tuple[Path, FailingImages]]:
    """wharfd's app under a real uvicorn on a unix socket, its images failing mid-save."""
    images = FailingImages(NotFound("blob sha256:abc not found"))
    sock = tmp_path / "api.sock"
    config = uvicorn.Config(create_app(SimpleNamespace(images=images)),  # type: ignore[arg-type]
                            uds=str(sock), log_config=None, log_level="warning",
                            http=bind_protocol(SimpleNamespace(matches=lambda r: False), []))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    for _ in range(500):
        if server.started:
            break
        threading.Event().wait(0.01)
    yield sock, images
    server.should_exit = True
    thread.join(5)


@pytest.mark.parametrize("error", [NotFound("blob sha256:abc not found"),
                                   OSError(5, "Input/output error")])
def test_a_raw_stream_that_fails_is_not_ended_cleanly(
        real_server: tuple[Path, FailingImages], error: Exception,
        caplog: pytest.LogCaptureFixture) -> None:
    sock_path, images = real_server
    images.error = error
    caplog.set_level(logging.WARNING)
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(10)
    client.connect(str(sock_path))
    client.sendall(b"GET /v1.41/images/get?names=busybox HTTP/1.1\r\nHost: d\r\n\r\n")
    reply = b""
    while data := client.recv(65536):
        reply += data
    client.close()
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"transfer-encoding: chunked" in head.lower()
    assert body.startswith(b"3e8\r\n" + b"x" * 1000 + b"\r\n")
    assert not body.endswith(b"0\r\n\r\n")  # the client can tell: no last chunk
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("wharf.")]
    assert len(ours) == 1 and "GET /images/get" in ours[0] and str(error) in ours[0]
    assert not any("response already started" in r.getMessage() for r in caplog.records)
