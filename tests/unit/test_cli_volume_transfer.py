"""``wharf volume export|import`` against a fake daemon (and, refused, through a fake gateway)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.unit import test_cli_gateway as gw
from tests.unit.test_cli_containers import Daemon, run

TAR = b"TARBYTES" * 1000


@pytest.fixture
def daemon() -> Daemon:
    return Daemon()


def _missing(request: httpx.Request) -> httpx.Response:
    name = request.url.path.split("/")[-2]
    return httpx.Response(404, json={"message": f"get {name}: no such volume"})


# -- export ---------------------------------------------------------------------------------------
def test_export_streams_the_tar_to_stdout(daemon: Daemon) -> None:
    daemon.route("GET", "/volumes/data/export", lambda r: httpx.Response(
        200, content=TAR, headers={"Content-Type": "application/x-tar"}))
    result = run(daemon, "volume", "export", "data")
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes == TAR
    assert daemon.log == ["GET /volumes/data/export"]


def test_export_refuses_a_terminal_before_asking_the_daemon(daemon: Daemon) -> None:
    result = run(daemon, "volume", "export", "data", stdout_tty=True)
    assert result.exit_code == 1
    assert "cowardly refusing to export to a terminal" in result.output
    assert daemon.requests == []


def test_export_to_a_file_and_a_missing_volume_leaves_no_file(daemon: Daemon,
                                                             tmp_path: Path) -> None:
    daemon.route("GET", "/volumes/data/export", lambda r: httpx.Response(200, content=TAR))
    out = tmp_path / "data.tar"
    result = run(daemon, "volume", "export", "-o", str(out), "data", stdout_tty=True)
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == TAR and result.stdout == ""
    daemon.route("GET", "/volumes/nope/export", _missing)
    missing = run(daemon, "volume", "export", "--output", str(tmp_path / "nope.tar"), "nope")
    assert missing.exit_code == 1
    assert "Error response from daemon: get nope: no such volume" in missing.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.tar"]


# -- import ---------------------------------------------------------------------------------------
def _importer(daemon: Daemon, bodies: list[bytes]) -> None:
    def take(request: httpx.Request) -> httpx.Response:
        bodies.append(request.read())
        return httpx.Response(204)

    daemon.route("POST", "/volumes/data/import", take)


def test_import_sends_a_file_as_a_tar_body(daemon: Daemon, tmp_path: Path) -> None:
    bodies: list[bytes] = []
    _importer(daemon, bodies)
    (tmp_path / "in.tar").write_bytes(TAR)
    result = run(daemon, "volume", "import", "data", str(tmp_path / "in.tar"))
    assert result.exit_code == 0, result.output
    assert result.output == ""
    assert bodies == [TAR]
    assert daemon.requests[0].headers["content-type"] == "application/x-tar"


def test_import_reads_stdin_for_a_dash_but_not_a_terminal(daemon: Daemon) -> None:
    bodies: list[bytes] = []
    _importer(daemon, bodies)
    result = run(daemon, "volume", "import", "data", "-", input=TAR)
    assert result.exit_code == 0, result.output
    assert bodies == [TAR]
    tty = run(daemon, "volume", "import", "data", "-", stdin_tty=True)
    assert tty.exit_code == 1
    assert "requested import from stdin, but stdin is a terminal" in tty.output
    assert len(daemon.requests) == 1


def test_import_reports_a_missing_file_and_the_daemons_refusals(daemon: Daemon,
                                                                tmp_path: Path) -> None:
    missing_file = run(daemon, "volume", "import", "data", str(tmp_path / "absent.tar"))
    assert missing_file.exit_code == 1
    assert f"open {tmp_path / 'absent.tar'}: No such file or directory" in missing_file.output
    assert daemon.requests == []
    (tmp_path / "in.tar").write_bytes(TAR)
    daemon.route("POST", "/volumes/nope/import", _missing)
    nope = run(daemon, "volume", "import", "nope", str(tmp_path / "in.tar"))
    assert nope.exit_code == 1 and "get nope: no such volume" in nope.stderr
    refusal = "refused archive: entry '../evil' has a '..' component"
    daemon.route("POST", "/volumes/data/import", lambda r: httpx.Response(
        400, json={"message": refusal}))
    bad = run(daemon, "volume", "import", "data", str(tmp_path / "in.tar"))
    assert bad.exit_code == 1
    assert f"Error response from daemon: {refusal}" in bad.stderr


def test_usage_errors_and_help() -> None:
    daemon = Daemon()
    assert run(daemon, "volume", "import", "data").exit_code == 2  # FILE is required
    assert run(daemon, "volume", "export").exit_code == 2
    assert daemon.requests == []
    listing = run(daemon, "volume", "--help").output
    assert "export" in listing and "import" in listing


# -- through the gateway --------------------------------------------------------------------------
def test_the_gateway_does_not_relay_them(tmp_path: Path) -> None:
    gateway = gw.FakeGateway()
    (tmp_path / "in.tar").write_bytes(TAR)
    exported = gw.run(gateway, "--node", "node1", "volume", "export", "data")
    imported = gw.run(gateway, "--node", "node1", "volume", "import", "data",
                      str(tmp_path / "in.tar"))
    assert exported.exit_code == 1 and imported.exit_code == 1
    assert "GET /volumes/data/export is not relayed by the gateway" in exported.output
    assert "POST /volumes/data/import is not relayed by the gateway" in imported.output
    assert gateway.seen == []
