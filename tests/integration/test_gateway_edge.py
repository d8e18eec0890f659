"""The gateway's edge against a real gateway process (RabbitMQ, a vhost per test): request
limits, HTTPS with the cluster's CA (and mutual TLS), the refusal to serve plain HTTP off
loopback, and the CLI reaching an HTTPS gateway with its token in a file.

- a 2 MiB body is 413 ``too_large``, announced (Content-Length) or chunked; the gateway goes on;
- a token past its burst is 429 ``rate_limited`` with ``Retry-After``; another token and
  ``/healthz`` are not held back, and after Retry-After the token may send again;
- HTTPS verifies with the CA and fails without it (httpx and the wharf CLI); with
  ``--tls-client-ca`` a client without a certificate is refused;
- ``--listen 0.0.0.0:…`` without TLS does not start unless ``--insecure-http``.

Certificates come from infra/certs.sh (what `make certs` runs) in a temporary directory.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.integration.gateway_fixture import (
    GATEWAY,
    Gateway,
    _token_create,
    free_port,
    running_gateway,
    stop_gateway,
)

pytestmark = [pytest.mark.integration]
WHARF = str(Path(sys.executable).parent / "wharf")
TWO_MIB = 2 << 20


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("WHARF_")}


@contextmanager
def serving(base: Path, amqp_url: str, *options: str, listen: str = "127.0.0.1",
            verify: ssl.SSLContext | bool = False) -> Iterator[Gateway]:
    """``wharf-gateway serve`` with ``options``, ready once /healthz says the broker is
    connected (over HTTPS with the client context ``verify`` when the options give a
    certificate)."""
    base.mkdir(parents=True, exist_ok=True)
    tokens = base / "tokens"
    token = _token_create(tokens, "tester", "--scope", "admin")
    port = free_port()
    args = [GATEWAY, "serve", "--listen", f"{listen}:{port}", "--amqp-url", amqp_url,
            "--state-dir", str(base / "state"), "--tokens-file", str(tokens),
            "--gateway-id", "gw-edge", *options]
    scheme = "https" if "--tls-cert" in options else "http"
    log = base / "gateway.log"
    with log.open("ab") as out:
        process = subprocess.Popen(args, stdout=out, stderr=out, env=_clean_env())
    gateway = Gateway(f"{scheme}://127.0.0.1:{port}", token, process, log, args)
    try:
        _wait_ready(gateway, verify)
        yield gateway
    finally:
        stop_gateway(gateway)


def _wait_ready(gateway: Gateway, verify: ssl.SSLContext | bool) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if gateway.process.poll() is not None:
            raise RuntimeError(f"gateway exited: {gateway.log_text()}")
        try:
            health = httpx.get(gateway.url + "/healthz", timeout=1, verify=verify).json()
            if health.get("broker") == "connected":
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"gateway not ready: {gateway.log_text()}")


def _context(certs: Path, *, client_cert: bool = False) -> ssl.SSLContext:
    """A client context trusting the test CA (and presenting the client certificate)."""
    context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    if client_cert:
        context.load_cert_chain(str(certs / "cert.pem"), str(certs / "key.pem"))
    return context


def _token_file(base: Path, token: str) -> Path:
    path = base / "token"
    path.write_text(token + "\n")
    path.chmod(0o600)
    return path


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    for _ in range(total // size):
        yield b"{" * size


def test_a_body_over_the_limit_is_413_announced_or_chunked(amqp_url: str,
                                                           tmp_path: Path) -> None:
    with running_gateway(tmp_path / "gw", amqp_url) as gateway, gateway.client() as client:
        announced = client.post("/v1/nodes/n1/containers/create", content=b"{" * TWO_MIB,
                                headers={"content-type": "application/json"})
        assert announced.status_code == 413, announced.text
        assert announced.json()["code"] == "too_large"
        assert "1048576 bytes" in announced.json()["message"]
        assert announced.headers["connection"] == "close"  # the rest is not read
        for path in ("/v1/nodes/n1/containers/create", "/v1/containers"):
            chunked = client.post(path, content=_chunks(TWO_MIB),
                                  headers={"content-type": "application/json"})
            assert chunked.status_code == 413, (path, chunked.text)
            assert chunked.json()["code"] == "too_large"
        # under the limit the request is the route's: n1 is not a node the gateway knows
        small = client.post("/v1/nodes/n1/containers/create", json={"Image": "busybox"})
        assert small.status_code == 404, small.text
        assert client.get("/healthz").json()["status"] == "ok"


def test_a_token_past_its_burst_gets_429_with_retry_after(amqp_url: str,
                                                          tmp_path: Path) -> None:
    with serving(tmp_path / "gw", amqp_url, "--rate", "1", "--burst", "5") as gateway:
        other = _token_create(tmp_path / "gw" / "tokens", "other", "--scope", "read")
        with gateway.client() as client, gateway.client(token=other) as second:
            assert [client.get("/v1/nodes").status_code for _ in range(5)] == [200] * 5
            refused = client.get("/v1/nodes")
            assert refused.status_code == 429, refused.text
            assert refused.json()["code"] == "rate_limited"
            assert "'tester'" in refused.json()["message"]
            retry_after = int(refused.headers["retry-after"])
            assert 1 <= retry_after <= 2
            assert second.get("/v1/nodes").status_code == 200  # a bucket per token
            assert all(client.get("/healthz").status_code == 200 for _ in range(10))
            time.sleep(retry_after)
            assert client.get("/v1/nodes").status_code == 200


def test_https_works_with_the_ca_and_fails_without(amqp_url: str, certs: Path,
                                                   tmp_path: Path) -> None:
    tls = ["--tls-cert", str(certs / "server-cert.pem"),
           "--tls-key", str(certs / "server-key.pem")]
    ca = str(certs / "ca.pem")
    with serving(tmp_path / "gw", amqp_url, *tls, verify=_context(certs)) as gateway:
        headers = {"Authorization": f"Bearer {gateway.token}"}
        nodes = httpx.get(gateway.url + "/v1/nodes", headers=headers, verify=_context(certs))
        assert nodes.status_code == 200 and nodes.json() == []
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(gateway.url + "/v1/nodes", headers=headers)  # the system's CAs
        with pytest.raises(httpx.HTTPError):
            httpx.get(gateway.url.replace("https:", "http:") + "/healthz", timeout=5)
        env = {**_clean_env(), "WHARF_GATEWAY": gateway.url,
               "WHARF_TOKEN_FILE": str(_token_file(tmp_path, gateway.token)),
               "WHARF_CONFIG": str(tmp_path / "client")}
        listed = subprocess.run([WHARF, "--gateway-cacert", ca, "node", "ls"],
                                capture_output=True, text=True, env=env, timeout=60,
                                check=False)
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.split()[:2] == ["NAME", "STATUS"]
        unverified = subprocess.run([WHARF, "node", "ls"], capture_output=True, text=True,
                                    env=env, timeout=60, check=False)
        assert unverified.returncode != 0
        assert "cannot verify the certificate" in unverified.stderr, unverified.stderr


def test_mutual_tls_refuses_a_client_without_a_certificate(amqp_url: str, certs: Path,
                                                           tmp_path: Path) -> None:
    ca = str(certs / "ca.pem")
    mine = (str(certs / "cert.pem"), str(certs / "key.pem"))
    options = ["--tls-cert", str(certs / "server-cert.pem"), "--tls-key",
               str(certs / "server-key.pem"), "--tls-client-ca", ca]
    with serving(tmp_path / "gw", amqp_url, *options,
                 verify=_context(certs, client_cert=True)) as gateway:
        env = {**_clean_env(), "WHARF_GATEWAY": gateway.url, "WHARF_GATEWAY_CACERT": ca,
               "WHARF_TOKEN_FILE": str(_token_file(tmp_path, gateway.token)),
               "WHARF_CONFIG": str(tmp_path / "client")}
        with pytest.raises(httpx.HTTPError):
            httpx.get(gateway.url + "/healthz", verify=_context(certs), timeout=5)
        with httpx.Client(verify=_context(certs, client_cert=True)) as client:
            assert client.get(gateway.url + "/healthz").status_code == 200
        refused = subprocess.run([WHARF, "node", "ls"], capture_output=True, text=True,
                                 env=env, timeout=60, check=False)
        assert refused.returncode != 0
        listed = subprocess.run([WHARF, "--gateway-cert", mine[0], "--gateway-key", mine[1],
                                 "node", "ls"], capture_output=True, text=True, env=env,
                                timeout=60, check=False)
        assert listed.returncode == 0, listed.stderr


def _serve_briefly(*options: str) -> subprocess.CompletedProcess[str]:
    args = [GATEWAY, "serve", "--amqp-url", "amqp://nobody:none@127.0.0.1:1/none", *options]
    return subprocess.run(args, capture_output=True, text=True, env=_clean_env(), timeout=30,
                          check=False)


def test_plain_http_off_loopback_refuses_to_start(amqp_url: str, certs: Path,
                                                 tmp_path: Path) -> None:
    port = free_port()
    refused = _serve_briefly("--listen", f"0.0.0.0:{port}", "--state-dir",
                             str(tmp_path / "state"))
    assert refused.returncode != 0
    assert "refusing to serve plain HTTP on 0.0.0.0" in refused.stderr
    assert "--insecure-http" in refused.stderr and "--tls-cert" in refused.stderr
    half = _serve_briefly("--listen", f"0.0.0.0:{port}", "--tls-cert",
                          str(certs / "server-cert.pem"))
    assert half.returncode != 0 and "--tls-key go together" in half.stderr
    bad = _serve_briefly("--listen", f"0.0.0.0:{port}", "--tls-cert", str(certs / "ca.pem"),
                         "--tls-key", str(certs / "server-key.pem"))
    assert bad.returncode != 0 and "cannot load the TLS files" in bad.stderr
    anywhere = "0.0.0.0"  # noqa: S104 - the point: a listen address that is not loopback
    with serving(tmp_path / "gw", amqp_url, "--insecure-http", listen=anywhere) as gateway:
        assert "--insecure-http" in gateway.log_text()  # said in the log, as a warning
        with gateway.client() as client:
            assert client.get("/v1/nodes").status_code == 200
