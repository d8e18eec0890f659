"""Request limits in front of the gateway's routes: a cap on a request body's size and a rate
per principal (a token bucket), both answered before a route runs.

:class:`RequestLimits` is plain ASGI middleware: it never buffers an answer, so the streamed
ones (``logs -f``, ``/v1/events``) pass through as they are sent. It stands inside
:class:`~wharf.gateway.auth.BearerAuth`, which names the principal (``scope["state"]``), so
only a request with a valid token takes from a bucket; ``/healthz`` is never limited.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]

EXEMPT = frozenset({"/healthz"})
# The rest of a body too large is not read: the connection ends after the answer (RFC 9110
# §15.5.14), so a client cannot keep the server discarding an endless body.
CLOSE = [(b"connection", b"close")]
MAX_BUCKETS = 10_000  # past this many principals, the idle (full) buckets are forgotten


class TokenBucket:
    """``rate`` tokens a second flow in, at most ``burst`` are kept; a request takes one."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.stamp = float(burst), now

    def take(self, now: float) -> float:
        """Take a token: 0.0 when there was one, else the seconds until there is one (and
        nothing is taken, so a refused request does not push the next one back)."""
        self.tokens = min(float(self.burst), self.tokens + max(0.0, now - self.stamp) * self.rate)
        self.stamp = max(self.stamp, now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate

    def full(self, now: float) -> bool:
        """True when the bucket is back to ``burst``: forgetting it changes nothing."""
        return self.tokens + max(0.0, now - self.stamp) * self.rate >= self.burst


class RateLimiter:
    """A :class:`TokenBucket` per principal; a ``rate`` of 0 limits nothing."""

    def __init__(self, rate: float, burst: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self._buckets: dict[str, TokenBucket] = {}

    def wait(self, principal: str) -> float:
        """0.0 when ``principal`` may send a request now (it takes a token), else the seconds
        until it may."""
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        bucket = self._buckets.get(principal)
        if bucket is None:
            if len(self._buckets) >= MAX_BUCKETS:
                self._forget_idle(now)
            bucket = self._buckets[principal] = TokenBucket(self.rate, self.burst, now)
        return bucket.take(now)

    def _forget_idle(self, now: float) -> None:
        for name in [n for n, b in self._buckets.items() if b.full(now)]:
            del self._buckets[name]


class RequestLimits:
    """ASGI middleware: ``429`` (with ``Retry-After``) for a principal past its rate, ``413``
    for a body over ``max_body_bytes`` — at once when ``Content-Length`` says so, and for a
    chunked body as soon as what arrived passes the limit (nothing beyond it is read)."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, limiter: RateLimiter) -> None:
        self.app, self.max_body_bytes, self.limiter = app, max_body_bytes, limiter

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive,
                       send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT:
            await self.app(scope, receive, send)
            return
        principal = scope.get("state", {}).get("principal")
        if principal is not None:
            wait = self.limiter.wait(principal)
            if wait > 0:
                await refuse(send, 429, "rate_limited", (
                    f"rate limit: token {principal!r} may send {self.limiter.rate:g} requests "
                    f"a second (bursts of {self.limiter.burst}); retry in {wait:.2f}s"),
                    [(b"retry-after", str(max(1, math.ceil(wait))).encode())])
                return
        declared, chunked = _framing(scope)
        if declared is not None and declared > self.max_body_bytes:
            await refuse(send, 413, "too_large", self._too_large(), CLOSE)
            return
        if not chunked:  # no body, or one the server reads no more of than it declared
            await self.app(scope, receive, send)
            return
        await self._capped(scope, receive, send)

    async def _capped(self, scope: MutableMapping[str, Any], receive: Receive,
                      send: Send) -> None:
        """Run the app with a body counted as it arrives; past the limit the app's receive
        fails and whatever it answers to that is replaced by the ``413``."""
        seen, over, started = 0, False, False

        async def counted() -> Message:
            nonlocal seen, over
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:
                    over = True
                    raise BodyTooLarge(self._too_large())
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if over:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except Exception:  # the app's failure to read the cut body is the 413 below
            if not over:
                raise
        if over and not started:
            await refuse(send, 413, "too_large", self._too_large(), CLOSE)

    def _too_large(self) -> str:
        return (f"request body larger than {self.max_body_bytes} bytes (the gateway's "
                "max_body_bytes)")


class BodyTooLarge(Exception):
    """Raised to the app by the counted receive when the body passed the limit."""


def _framing(scope: MutableMapping[str, Any]) -> tuple[int | None, bool]:
    """The request's Content-Length (None when absent or unreadable) and whether its body is
    chunked (Transfer-Encoding)."""
    declared: int | None = None
    chunked = False
    for key, value in scope["headers"]:
        if key == b"content-length" and value.strip().isdigit():
            declared = int(value)
        elif key == b"transfer-encoding":
            chunked = True
    return declared, chunked


async def refuse(send: Send, status: int, code: str, message: str,
                 headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """Answer ``status`` with the gateway's error body (``{"message", "code"}``)."""
    body = json.dumps({"message": message, "code": code}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        *(headers or [])]})
    await send({"type": "http.response.body", "body": body})
