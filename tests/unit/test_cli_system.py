"""version, info, global options and error reporting of the wharf CLI."""

from __future__ import annotations

from pathlib import Path

import httpx
from click.testing import CliRunner

from tests.unit.test_cli_images import FakeDaemon, run
from wharf.cli.main import build_cli
from wharf.version import __version__

VERSION = {"Platform": {"Name": "wharf"},
           "Components": [{"Name": "Engine", "Version": "0.1.0",
                           "Details": {"ApiVersion": "1.41", "MinAPIVersion": "1.12"}}],
           "Version": "0.1.0", "ApiVersion": "1.41", "MinAPIVersion": "1.12", "Os": "linux",
           "Arch": "amd64", "KernelVersion": "6.1.0"}


def test_version_prints_client_and_server_sections() -> None:
    daemon = FakeDaemon()
    daemon.route("GET", "/version", lambda r: httpx.Response(200, json=VERSION))
    result = run(daemon, "version")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "Client:" and lines[1] == f" Version:           {__version__}"
    server = lines[lines.index("Server:"):]
    assert server[1:4] == [" Engine:", "  Version:          0.1.0",
                           "  API version:      1.41 (minimum version 1.12)"]
    result = run(daemon, "version", "--format", "{{.Server.ApiVersion}}")
    assert result.output == "1.41\n"


def test_daemon_down_prints_client_then_the_hint_and_exits_1(tmp_path: Path) -> None:
    sock = f"unix://{tmp_path}/missing.sock"
    result = CliRunner().invoke(build_cli(), ["-H", sock, "version"])
    assert result.exit_code == 1
    assert result.output.startswith("Client:\n")
    assert "Server:" not in result.output
    assert result.output.splitlines()[-1] == (
        f"Cannot connect to the wharf daemon at {sock}. Is wharfd running? "
        "Start it with `make up` (or `wharfd &`).")
    result = CliRunner().invoke(build_cli(), ["images"], env={"WHARF_HOST": sock})
    assert result.exit_code == 1
    assert "Cannot connect to the wharf daemon" in result.output
    assert "Error response from daemon" not in result.output


def test_invalid_host_is_a_clear_error() -> None:
    for bad in ("tcp://nohostport", "ssh://x", "unix://relative"):
        result = CliRunner().invoke(build_cli(), ["-H", bad, "images"])
        assert result.exit_code == 1, bad
        assert f"invalid host '{bad}'" in result.output


def test_daemon_error_statuses_print_docker_messages() -> None:
    daemon = FakeDaemon()
    daemon.route("GET", "/images/x/history", lambda r: httpx.Response(
        500, text="boom", headers={"Content-Type": "text/plain"}))
    daemon.route("GET", "/images/y/history", lambda r: httpx.Response(404))
    daemon.route("GET", "/images/z/history", lambda r: httpx.Response(409, json={}))
    assert run(daemon, "image", "history", "x").output == "Error response from daemon: boom\n"
    out = run(daemon, "image", "history", "y").output
    assert "check if the server supports the requested API version" in out
    result = run(daemon, "image", "history", "z")
    assert result.exit_code == 1
    assert "API returned a 409 (Conflict) but provided no error-message" in result.output


def test_usage_errors_keep_clicks_exit_code() -> None:
    result = CliRunner().invoke(build_cli(), ["image", "inspect"])
    assert result.exit_code == 2


def test_version_flag_and_info() -> None:
    result = CliRunner().invoke(build_cli(), ["--version"])
    assert result.output == f"wharf version {__version__}\n"
    daemon = FakeDaemon()
    daemon.route("GET", "/info", lambda r: httpx.Response(200, json={
        "Containers": 2, "ContainersRunning": 1, "ContainersStopped": 1, "Images": 3,
        "ServerVersion": "0.1.0", "Driver": "overlay2",
        "DriverStatus": [["Backing Filesystem", "extfs"]], "MemTotal": 16663420928,
        "NCPU": 8, "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {"InsecureRegistryCIDRs": ["127.0.0.0/8"]}}))
    result = run(daemon, "info")
    assert result.exit_code == 0, result.output
    for line in (" Containers: 2", "  Running: 1", " Images: 3", "  Backing Filesystem: extfs",
                 " Total Memory: 15.52GiB", " CPUs: 8", " Insecure Registries:",
                 "  127.0.0.0/8"):
        assert line in result.output.splitlines()
    assert run(daemon, "system", "info", "-f", "{{.NCPU}}").output == "8\n"
