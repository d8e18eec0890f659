"""Registry replies and transport failures in wharf's words: the error a distribution reply
other than the expected one stands for (with the registry's ``errors[0]`` text), and response
bodies read with transport failures turned into wharf errors. Used by ``registry``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx

from wharf.errors import (
    DeadlineExceeded,
    Internal,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
    WharfError,
)
from wharf.reference import Reference

CHUNK = 1 << 16


def denied(ref: Reference, push: bool) -> str:
    if push:
        return f"push access denied for {ref.familiar}: requested access to the resource is denied"
    return (f"pull access denied for {ref.familiar}, repository does not exist or may require "
            "'docker login'")


async def check(
    response: httpx.Response, expected: int, what: str, ref: Reference, *, push: bool = False
) -> None:
    """Raise the wharf error for a registry reply other than ``expected``."""
    if response.status_code == expected:
        return
    body = await response.aread() if response.request.method != "HEAD" else b""
    code, detail = _registry_error(body, response.status_code)
    status = response.status_code
    error: WharfError
    if status == 404 and code == "NAME_UNKNOWN":
        error = NotFound(f"repository {ref.familiar} not found: {detail}")
    elif status == 404 and what.startswith("manifest"):
        error = NotFound(f"{what} not found: {detail}")
    elif status == 404:
        error = NotFound(f"{what}: {detail}")
    elif status == 401:
        error = Unauthenticated(denied(ref, push))
    elif status == 403:
        error = PermissionDenied(f"{what}: denied: {detail}")
    elif status == 429 or status >= 500:
        error = Unavailable(f"{what}: registry {ref.domain} answered {status}: {detail}")
    elif 400 <= status < 500:
        error = InvalidArgument(f"{what}: {detail}")
    else:
        error = Internal(f"{what}: unexpected registry reply {status}")
    fallback = response.extensions.get("wharf.fallback")
    if fallback:  # a mirror's 404 answered for an upstream out of reach (registry._request)
        error = type(error)(f"{error.message} ({fallback})")
    raise error


def _registry_error(body: bytes, status: int) -> tuple[str, str]:
    """(code, Docker-style text) of a distribution error body: ``errors[0]``."""
    try:
        first = json.loads(body)["errors"][0]
        code, message = str(first.get("code", "")), str(first.get("message", ""))
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return "", body.decode(errors="replace").strip()[:200] or f"HTTP {status}"
    described = code.lower().replace("_", " ")
    if not message or message == described:
        return code, described or f"HTTP {status}"
    return code, f"{described}: {message}" if described else message


async def read_limited(response: httpx.Response, limit: int, what: str) -> bytes:
    data = bytearray()
    async for chunk in guarded(response.aiter_bytes(CHUNK), response.url.netloc.decode()):
        data += chunk
        if len(data) > limit:
            raise InvalidArgument(f"{what} is larger than {limit} bytes")
    return bytes(data)


async def guarded(chunks: AsyncIterator[bytes], registry: str) -> AsyncIterator[bytes]:
    """``chunks`` with transport failures turned into wharf errors."""
    try:
        async for chunk in chunks:
            yield chunk
    except httpx.TimeoutException as exc:
        raise DeadlineExceeded(f"registry {registry} timed out: {reason(exc)}") from exc
    except httpx.TransportError as exc:
        raise Unavailable(f"registry {registry} connection failed: {reason(exc)}") from exc


def reason(exc: Exception) -> str:
    cause = exc.__cause__ or exc.__context__
    text = str(exc) or type(exc).__name__
    return f"{text} ({cause})" if cause and str(cause) and str(cause) != text else text
