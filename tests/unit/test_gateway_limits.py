"""The gateway's request limits without a server: the token bucket on a fake clock, the ASGI
middleware around small apps, the TLS and plain-HTTP start-up checks, and the middleware's
place behind the bearer check."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from wharf.gateway import auth
from wharf.gateway.app import create_app
from wharf.gateway.limits import (
    MAX_BUCKETS,
    RateLimiter,
    RequestLimits,
    TokenBucket,
)
from wharf.gateway.settings import GatewaySettings

Message = dict[str, Any]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_lets_a_burst_through_then_one_request_per_refill() -> None:
    bucket = TokenBucket(rate=2.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.5)  # one token every 1/rate seconds
    assert bucket.take(0.25) == pytest.approx(0.25)  # a refused request takes nothing
    assert bucket.take(0.5) == 0.0
    assert bucket.take(0.5) == pytest.approx(0.5)
    assert bucket.take(100.0) == 0.0  # a long pause refills to burst, no more
    assert [bucket.take(100.0) for _ in range(3)][-1] == pytest.approx(0.5)


def test_a_bucket_ignores_a_clock_going_back() -> None:
    bucket = TokenBucket(rate=1.0, burst=1, now=10.0)
    assert bucket.take(10.0) == 0.0
    assert bucket.take(5.0) == pytest.approx(1.0)
    assert bucket.take(11.0) == 0.0


def test_the_limiter_keeps_a_bucket_per_principal_and_rate_0_limits_nothing() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=1.0, burst=2, clock=clock)
    assert [limiter.wait("alice") for _ in range(3)] == [0.0, 0.0, pytest.approx(1.0)]
    assert limiter.wait("bob") == 0.0
    clock.now += 1.0
    assert limiter.wait("alice") == 0.0
    unlimited = RateLimiter(rate=0.0, burst=1, clock=clock)
    assert all(unlimited.wait("alice") == 0.0 for _ in range(1000))


def test_the_limiter_forgets_idle_buckets_only() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=1.0, burst=1, clock=clock)
    for n in range(MAX_BUCKETS):
        limiter.wait(f"p{n}")
    clock.now += 0.5  # every bucket still half empty: nothing may be forgotten
    assert limiter.wait("new") == 0.0 and len(limiter._buckets) == MAX_BUCKETS + 1
    clock.now += 5.0
    assert limiter.wait("newer") == 0.0
    assert set(limiter._buckets) == {"newer"}


# --- the middleware -----------------------------------------------------------------------


def _scope(path: str = "/v1/nodes", headers: Iterable[tuple[bytes, bytes]] = (),
           principal: str | None = "alice") -> dict[str, Any]:
    state = {} if principal is None else {"principal": principal}
    return {"type": "http", "method": "POST", "path": path, "headers": list(headers),
            "state": state}


class Wire:
    """The server's side: body messages to hand out, and what was sent back."""

    def __init__(self, chunks: Iterable[bytes] = (b"",)) -> None:
        items = list(chunks)
        self.incoming = [{"type": "http.request", "body": c, "more_body": i < len(items) - 1}
                         for i, c in enumerate(items)]
        self.handed = 0
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        if self.handed >= len(self.incoming):
            return {"type": "http.disconnect"}
        self.handed += 1
        return self.incoming[self.handed - 1]

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])

    @property
    def headers(self) -> dict[bytes, bytes]:
        return dict(self.sent[0]["headers"])

    def body(self) -> Any:
        return json.loads(b"".join(m.get("body", b"") for m in self.sent[1:]))


async def reads_all(scope: Any, receive: Any, send: Any) -> None:
    """An app that reads the whole body and echoes its length (fails on a cut body, as
    Starlette does on a disconnect)."""
    size, more = 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise OSError("client disconnected")
        size, more = size + len(message.get("body", b"")), message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": json.dumps({"size": size}).encode()})


def _run(app: Any, scope: dict[str, Any], wire: Wire, *, limit: int = 100,
         limiter: RateLimiter | None = None) -> None:
    middleware = RequestLimits(app, max_body_bytes=limit,
                               limiter=limiter or RateLimiter(rate=0.0, burst=1))
    asyncio.run(middleware(scope, wire.receive, wire.send))


def test_an_announced_body_over_the_limit_is_413_before_the_app_runs() -> None:
    wire = Wire([b"x" * 101])
    _run(reads_all, _scope(headers=[(b"content-length", b"101")]), wire)
    assert wire.status == 413 and wire.handed == 0
    assert wire.body()["code"] == "too_large" and "100 bytes" in wire.body()["message"]
    assert wire.headers[b"connection"] == b"close"


def test_a_chunked_body_is_cut_at_the_limit_and_the_app_s_answer_replaced() -> None:
    wire = Wire([b"x" * 60, b"x" * 60, b"x" * 60, b"x" * 60])
    _run(reads_all, _scope(headers=[(b"transfer-encoding", b"chunked")]), wire)
    assert wire.status == 413 and wire.body()["code"] == "too_large"
    assert wire.handed == 2  # nothing read past the chunk that crossed the limit
    assert len(wire.sent) == 2


def test_a_body_within_the_limit_reaches_the_app() -> None:
    for headers, chunks in (([(b"transfer-encoding", b"chunked")], [b"x" * 50, b"x" * 50]),
                            ([(b"content-length", b"100")], [b"x" * 100]), ([], [b""])):
        wire = Wire(chunks)
        _run(reads_all, _scope(headers=headers), wire)
        assert wire.status == 200 and wire.body() == {"size": 100 if headers else 0}


def test_a_streamed_answer_passes_as_it_is_sent() -> None:
    seen_by_client: list[int] = []

    async def streams(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(3):
            await send({"type": "http.response.body", "body": b"line\n", "more_body": True})
            seen_by_client.append(len(wire.sent))  # each frame is out before the next
        await send({"type": "http.response.body", "body": b""})

    wire = Wire()
    _run(streams, _scope(headers=[(b"transfer-encoding", b"chunked")]), wire)
    assert seen_by_client == [2, 3, 4] and len(wire.sent) == 5


def test_429_with_retry_after_past_the_burst_and_healthz_exempt() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=0.5, burst=2, clock=clock)
    answers = []
    for _ in range(3):
        wire = Wire()
        _run(reads_all, _scope(), wire, limiter=limiter)
        answers.append(wire)
    assert [w.status for w in answers] == [200, 200, 429]
    refused = answers[-1]
    assert refused.headers[b"retry-after"] == b"2" and refused.handed == 0
    assert refused.body()["code"] == "rate_limited" and "'alice'" in refused.body()["message"]
    for scope in (_scope("/healthz"), _scope(principal=None)):  # exempt; no principal
        wire = Wire()
        _run(reads_all, scope, wire, limiter=limiter)
        assert wire.status == 200


def test_the_limits_stand_behind_the_bearer_check(tmp_path: Path) -> None:
    # Starlette runs the middleware added last first: BearerAuth must name the principal
    # before RequestLimits counts it.
    app = create_app(GatewaySettings(state_dir=tmp_path, tokens_file=tmp_path / "tokens",
                                     amqp_url="amqp://x:y@127.0.0.1/v"))
    order = [m.cls for m in app.user_middleware]
    assert order.index(auth.BearerAuth) < order.index(RequestLimits)


# --- serving: TLS and plain HTTP ------------------------------------------------------------


def _settings(**values: Any) -> GatewaySettings:
    return GatewaySettings(state_dir=Path("/var/lib/wharf-gateway"), **values)


def test_plain_http_is_refused_off_loopback_unless_insecure_http() -> None:
    for listen in ("127.0.0.1:8080", "127.0.0.2:8080", "localhost:8080"):
        assert _settings(listen=listen).plain_http_refusal() is None
    refusal = _settings(listen="0.0.0.0:8480").plain_http_refusal()
    assert refusal is not None and "refusing to serve plain HTTP on 0.0.0.0:8480" in refusal
    assert "--insecure-http" in refusal and "--tls-cert" in refusal
    assert _settings(listen="gw.example:8480").plain_http_refusal() is not None
    assert _settings(listen="0.0.0.0:8480", insecure_http=True).plain_http_refusal() is None
    with_tls = _settings(listen="0.0.0.0:8480", tls_cert=Path("c"), tls_key=Path("k"))
    assert with_tls.plain_http_refusal() is None and with_tls.scheme == "https"


def test_tls_files_go_together_and_a_bad_one_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--tls-cert and --tls-key go together"):
        _settings(tls_cert=Path("c"))
    with pytest.raises(ValueError, match="--tls-client-ca needs --tls-cert"):
        _settings(tls_client_ca=Path("ca"))
    assert _settings().server_tls() is None
    (tmp_path / "cert.pem").write_text("not a certificate\n")
    bad = _settings(tls_cert=tmp_path / "cert.pem", tls_key=tmp_path / "key.pem")
    with pytest.raises(ValueError, match="cannot load the TLS files"):
        bad.server_tls()


def test_the_limits_settings_defaults_and_bounds() -> None:
    settings = _settings()
    assert (settings.max_body_bytes, settings.rate, settings.burst) == (1 << 20, 50.0, 100)
    with pytest.raises(ValueError):
        _settings(max_body_bytes=10)
    with pytest.raises(ValueError):
        _settings(burst=0)
