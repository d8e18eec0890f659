"""wharfd on TCP with mutual TLS: the wharf CLI and the docker CLI with and without certificates.

Certificates come from infra/certs.sh (what `make certs` runs) in a temporary directory; the
daemon listens on its unix socket (for set-up) and on a free 127.0.0.1 port with --tlsverify.
Every container a test makes is removed by --rm or at the end of the module.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon_fixture import WHARFD, Daemon, running_daemon
from tests.integration.conftest import SeededRegistry

pytestmark = [pytest.mark.integration]
DOCKER = shutil.which("docker")
WHARF = str(Path(sys.executable).parent / "wharf")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def daemon(seeded_registry: SeededRegistry, certs: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, str]]:
    port = free_port()
    args = ["-H", f"tcp://127.0.0.1:{port}", "--tlsverify", "--tlscacert", str(certs / "ca.pem"),
            "--tlscert", str(certs / "server-cert.pem"), "--tlskey",
            str(certs / "server-key.pem")]
    base = tmp_path_factory.mktemp("wharfd-tls")
    with running_daemon(base, mirrors=[seeded_registry.registry.url],
                        extra_args=args) as running:
        status, _ = running.request("POST", "/images/create?fromImage=busybox&tag=latest")
        assert status == 200
        yield running, f"tcp://127.0.0.1:{port}"
        for record in json.loads(running.request("GET", "/containers/json?all=1")[1]):
            running.request("DELETE", f"/containers/{record['Id']}?force=1")


def wharf(daemon: tuple[Daemon, str], *args: str, env: dict[str, str] | None = None,
          stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WHARF_")}
    clean["WHARF_CONFIG"] = str(daemon[0].run_dir / "wharf-config")
    return subprocess.run([WHARF, "-H", daemon[1], *args], capture_output=True, text=True,
                          timeout=60, check=False, env={**clean, **(env or {})}, input=stdin)


def tls_args(certs: Path, *, client_cert: bool = True) -> list[str]:
    args = ["--tlsverify", "--tlscacert", str(certs / "ca.pem")]
    if client_cert:
        args += ["--tlscert", str(certs / "cert.pem"), "--tlskey", str(certs / "key.pem")]
    return args


def test_wharf_ps_and_version_over_mutual_tls(daemon: tuple[Daemon, str], certs: Path) -> None:
    result = wharf(daemon, *tls_args(certs), "ps")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("CONTAINER ID")
    result = wharf(daemon, *tls_args(certs), "version")
    assert result.returncode == 0, result.stderr
    assert "API version:      1.41" in result.stdout.split("Server:")[1]


def test_cert_path_and_tls_verify_env_like_docker(daemon: tuple[Daemon, str],
                                                  certs: Path) -> None:
    result = wharf(daemon, "images", env={"WHARF_CERT_PATH": str(certs),
                                          "WHARF_TLS_VERIFY": "1"})
    assert result.returncode == 0, result.stderr
    assert "busybox" in result.stdout


def test_a_client_without_certificate_is_refused(daemon: tuple[Daemon, str],
                                                 certs: Path) -> None:
    result = wharf(daemon, *tls_args(certs, client_cert=False), "ps")
    assert result.returncode == 1
    assert "requires a client certificate" in result.stderr
    assert "CONTAINER ID" not in result.stdout


def test_plain_http_to_the_tls_port_gets_nothing(daemon: tuple[Daemon, str]) -> None:
    result = wharf(daemon, "ps")
    assert result.returncode == 1
    assert "is it a TLS port?" in result.stderr


def _raw_ping(url: str, certs: Path, *, client_cert: bool) -> bytes:
    """GET /_ping over a raw TLS connection; what came back (b"" when refused)."""
    host, port = url.removeprefix("tcp://").split(":")
    context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    if client_cert:
        context.load_cert_chain(str(certs / "cert.pem"), str(certs / "key.pem"))
    data = b""
    try:
        with socket.create_connection((host, int(port)), timeout=10) as raw, \
                context.wrap_socket(raw, server_hostname=host) as sock:
            sock.sendall(b"GET /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
            while chunk := sock.recv(4096):
                data += chunk
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        pass
    return data


def test_the_server_refuses_a_raw_tls_connection_without_certificate(
        daemon: tuple[Daemon, str], certs: Path) -> None:
    assert _raw_ping(daemon[1], certs, client_cert=True).startswith(b"HTTP/1.1 200")
    assert _raw_ping(daemon[1], certs, client_cert=False) == b""


def test_run_attaches_over_tls(daemon: tuple[Daemon, str], certs: Path) -> None:
    result = wharf(daemon, *tls_args(certs), "run", "--rm", "busybox", "echo", "hi")
    assert (result.returncode, result.stdout) == (0, "hi\n"), result.stderr


def test_stdin_end_over_tls_is_a_half_close(daemon: tuple[Daemon, str], certs: Path) -> None:
    result = wharf(daemon, *tls_args(certs), "run", "--rm", "-i", "busybox", "sh", "-c",
                   "cat; echo after-eof", stdin="piped in\n")
    assert (result.returncode, result.stdout) == (0, "piped in\nafter-eof\n"), result.stderr


def test_exec_over_tls(daemon: tuple[Daemon, str], certs: Path) -> None:
    started = wharf(daemon, *tls_args(certs), "run", "-d", "busybox", "sleep", "60")
    assert started.returncode == 0, started.stderr
    cid = started.stdout.strip()
    try:
        result = wharf(daemon, *tls_args(certs), "exec", "-i", cid, "sh", "-c", "cat; echo x",
                       stdin="in\n")
        assert (result.returncode, result.stdout) == (0, "in\nx\n"), result.stderr
    finally:
        wharf(daemon, *tls_args(certs), "rm", "-f", cid)


def docker(daemon: tuple[Daemon, str], certs: Path, *args: str, client_cert: bool = True,
           stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    if DOCKER is None:
        pytest.skip("the docker CLI is not installed")
    env = {**os.environ, "DOCKER_CONFIG": str(daemon[0].run_dir / "docker-config")}
    env.pop("DOCKER_HOST", None)
    return subprocess.run([DOCKER, *tls_args(certs, client_cert=client_cert), "-H", daemon[1],
                           *args], capture_output=True, text=True, timeout=60, check=False,
                          env=env, input=stdin)


@pytest.mark.docker_cli
def test_the_docker_cli_uses_the_same_certificates(daemon: tuple[Daemon, str],
                                                   certs: Path) -> None:
    version = docker(daemon, certs, "version")
    assert version.returncode == 0, version.stderr
    assert "API version:      1.41" in version.stdout
    ps = docker(daemon, certs, "ps")
    assert ps.returncode == 0 and ps.stdout.startswith("CONTAINER ID"), ps.stderr
    run = docker(daemon, certs, "run", "--rm", "busybox", "echo", "hi")
    assert (run.returncode, run.stdout) == (0, "hi\n"), run.stderr
    piped = docker(daemon, certs, "run", "--rm", "-i", "busybox", "sh", "-c",
                   "cat; echo after-eof", stdin="piped\n")
    assert (piped.returncode, piped.stdout) == (0, "piped\nafter-eof\n"), piped.stderr
    refused = docker(daemon, certs, "ps", client_cert=False)
    assert refused.returncode != 0


def test_plain_tcp_needs_insecure_tcp(tmp_path: Path) -> None:
    port = free_port()
    args = [WHARFD, "--data-root", str(tmp_path / "data"), "--run-dir", str(tmp_path / "run"),
            "--config-file", str(tmp_path / "none.json"), "-H", f"tcp://127.0.0.1:{port}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHARF_")}
    refused = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False,
                             env=env)
    assert refused.returncode == 1
    assert f"refusing to listen on tcp://127.0.0.1:{port} without TLS" in refused.stderr
    assert "--insecure-tcp" in refused.stderr

    with running_daemon(tmp_path / "insecure",
                        extra_args=["-H", f"tcp://127.0.0.1:{port}", "--insecure-tcp"]) as plain:
        assert "WITHOUT TLS (--insecure-tcp)" in plain.log_text()
        result = wharf((plain, f"tcp://127.0.0.1:{port}"), "version")
        assert result.returncode == 0, result.stderr
        assert "API version:      1.41" in result.stdout
