"""A real wharf-gateway (subprocess) and a small HTTP client for it, for integration tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

GATEWAY = str(Path(sys.executable).parent / "wharf-gateway")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Gateway:
    url: str
    token: str
    process: subprocess.Popen[bytes]
    log: Path
    args: list[str]
    ca: Path | None = None  # the CA of an HTTPS gateway

    def client(self, *, token: str | None = None, anonymous: bool = False) -> httpx.Client:
        """A client with this gateway's token (or ``token``; none when ``anonymous``)."""
        headers = {} if anonymous else {"Authorization": f"Bearer {token or self.token}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=90,
                            verify=self.verify())

    def verify(self) -> ssl.SSLContext | bool:
        """What httpx verifies this gateway's certificate with."""
        return ssl.create_default_context(cafile=self.ca) if self.ca else True

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def add_token(self, name: str, scope: str, *allow: str) -> str:
        """A new token for ``name`` with ``scope`` (and ``--allow`` rules), as
        ``wharf-gateway token create`` makes it; the running gateway re-reads the file."""
        tokens = self.args[self.args.index("--tokens-file") + 1]
        return _token_create(Path(tokens), name, "--scope", scope,
                             *(f"--allow={rule}" for rule in allow))


def _token_create(tokens: Path, name: str, *options: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHARF_")}
    return subprocess.run([GATEWAY, "token", "create", name, "--tokens-file", str(tokens),
                           *options], check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


def start_gateway(base: Path, amqp_url: str, *, down_after: float = 1.5,
                  port: int | None = None, tls: Path | None = None,
                  gateway_id: str = "gw-test", database_url: str | None = None,
                  tokens: Path | None = None,
                  token_name: str = "tester") -> Gateway:  # noqa: S107 - a name
    """A gateway on loopback; with ``tls`` (a directory of infra/certs.sh's files) it serves
    HTTPS with the server certificate and relays streams to nodes with the client one. With
    ``database_url`` it shares its records in PostgreSQL; ``tokens``: a tokens file another
    gateway uses too (else one of its own, with a new admin token)."""
    base.mkdir(parents=True, exist_ok=True)
    tokens = tokens or base / "tokens"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHARF_")}
    token = _token_create(tokens, token_name, "--scope", "admin")
    port = port or free_port()
    args = [GATEWAY, "serve", "--listen", f"127.0.0.1:{port}", "--amqp-url", amqp_url,
            "--state-dir", str(base / "state"), "--tokens-file", str(tokens),
            "--gateway-id", gateway_id, "--node-down-after", str(down_after)]
    if database_url is not None:  # in the environment: a password has no place in argv
        env["WHARF_GATEWAY_DATABASE_URL"] = database_url
    if tls is not None:
        args += ["--tls-cert", str(tls / "server-cert.pem"),
                 "--tls-key", str(tls / "server-key.pem"),
                 "--node-tls-ca", str(tls / "ca.pem"), "--node-tls-cert", str(tls / "cert.pem"),
                 "--node-tls-key", str(tls / "key.pem")]
    log = base / "gateway.log"
    with log.open("ab") as out:
        process = subprocess.Popen(args, stdout=out, stderr=out, env=env)
    scheme = "https" if tls is not None else "http"
    gateway = Gateway(f"{scheme}://127.0.0.1:{port}", token, process, log, args,
                      tls / "ca.pem" if tls is not None else None)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gateway exited: {gateway.log_text()}")
        try:
            health = httpx.get(gateway.url + "/healthz", timeout=1,
                               verify=gateway.verify()).json()
            if health.get("broker") == "connected":
                return gateway
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"gateway not ready: {gateway.log_text()}")


def stop_gateway(gateway: Gateway) -> None:
    if gateway.process.poll() is None:
        gateway.process.send_signal(signal.SIGTERM)
        try:
            gateway.process.wait(15)
        except subprocess.TimeoutExpired:
            gateway.process.kill()
            gateway.process.wait()


@contextmanager
def running_gateway(base: Path, amqp_url: str, **kwargs: Any) -> Iterator[Gateway]:
    gateway = start_gateway(base, amqp_url, **kwargs)
    try:
        yield gateway
    finally:
        stop_gateway(gateway)


def wait_for(predicate: Any, timeout: float = 15, interval: float = 0.1) -> Any:
    """Poll ``predicate`` until it returns something truthy; that value, or AssertionError."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def nodes(client: httpx.Client) -> dict[str, dict[str, Any]]:
    return {n["Name"]: n for n in client.get("/v1/nodes").json()}


def daemon_names(request: Any) -> list[str]:
    """Names of a daemon's containers (``Daemon.request``'s answer to /containers/json)."""
    status, body = request("GET", "/containers/json?all=1")
    assert status == 200
    return sorted(n.lstrip("/") for c in json.loads(body) for n in c["Names"])
