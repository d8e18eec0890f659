"""Bearer tokens: stored as SHA-256 digests in a tokens file, compared in constant time.

A token is 32 random bytes (``wgt_`` + URL-safe base64), so a fast digest is enough: there is
nothing to brute-force that a slow password hash would protect. The file has one token per
line, ``NAME sha256:HEX``; the name becomes the command's principal. It is re-read when it
changes, so tokens can be added or revoked without a restart.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import threading
from pathlib import Path
from typing import Any

from wharf.errors import InvalidArgument, NotFound, Unauthenticated

PREFIX = "wgt_"
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.@-]{0,62}$")
_LINE = re.compile(r"^(\S+)\s+sha256:([0-9a-f]{64})$")


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Tokens:
    """The tokens file, reloaded when its mtime changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._entries: dict[str, str] = {}  # name -> hex digest

    def entries(self) -> dict[str, str]:
        with self._lock:
            try:
                stat = self.path.stat()
            except FileNotFoundError:
                self._stamp, self._entries = None, {}
                return {}
            stamp = (stat.st_mtime_ns, stat.st_size)
            if stamp != self._stamp:
                self._entries = read_tokens(self.path)
                self._stamp = stamp
            return dict(self._entries)

    def authenticate(self, header: str | None) -> str:
        """The principal of an ``Authorization: Bearer …`` header; Unauthenticated otherwise."""
        if not header or not header.startswith("Bearer "):
            raise Unauthenticated("authentication required: send 'Authorization: Bearer "
                                  "<token>' (wharf-gateway token create NAME makes one)")
        wanted = digest(header.removeprefix("Bearer ").strip())
        found = ""
        for name, stored in self.entries().items():
            if hmac.compare_digest(stored, wanted):
                found = name  # no early exit: the time does not depend on the position
        if not found:
            raise Unauthenticated("invalid token")
        return found


# Paths anyone may read: liveness and the API's own description.
OPEN_PATHS = frozenset({"/healthz", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})


class BearerAuth:
    """ASGI middleware: every HTTP request but :data:`OPEN_PATHS` needs a valid token; the
    token's name goes to ``request.state.principal``.

    One check in front of the whole app, so a route cannot be added without it, and it costs one
    call per request rather than a FastAPI dependency that is solved per route.
    """

    def __init__(self, app: Any, tokens: Tokens) -> None:
        self.app, self.tokens = app, tokens

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        header = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        try:
            name = self.tokens.authenticate(header.decode("latin-1") if header else None)
        except Unauthenticated as exc:
            body = json.dumps({"message": exc.message, "code": exc.code}).encode()
            await send({"type": "http.response.start", "status": 401, "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", b"Bearer")]})
            await send({"type": "http.response.body", "body": body})
            return
        scope.setdefault("state", {})["principal"] = name
        await self.app(scope, receive, send)


def read_tokens(path: Path) -> dict[str, str]:
    entries: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise InvalidArgument(f"{path}:{number}: expected 'NAME sha256:HEX'")
        entries[match.group(1)] = match.group(2)
    return entries


def create_token(path: Path, name: str) -> str:
    """Add (or replace) ``name``'s token and return the new token (shown once)."""
    if not _NAME.match(name):
        raise InvalidArgument(f"invalid token name {name!r}")
    token = PREFIX + secrets.token_urlsafe(32)
    entries = read_tokens(path) if path.exists() else {}
    entries[name] = digest(token)
    _write(path, entries)
    return token


def revoke_token(path: Path, name: str) -> None:
    entries = read_tokens(path) if path.exists() else {}
    if entries.pop(name, None) is None:
        raise NotFound(f"no token named {name!r}")
    _write(path, entries)


def _write(path: Path, entries: dict[str, str]) -> None:
    """Atomically: temp file (0600), fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("# wharf-gateway bearer tokens: NAME sha256:HEX (digests, not tokens)\n")
        for name, hexdigest in sorted(entries.items()):
            out.write(f"{name} sha256:{hexdigest}\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
