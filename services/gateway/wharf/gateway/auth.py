"""Bearer tokens: stored as SHA-256 digests in a tokens file, compared in constant time, each
with the scope it grants.

A token is 32 random bytes (``wgt_`` + URL-safe base64), so a fast digest is enough: there is
nothing to brute-force that a slow password hash would protect. The file has one token per
line, ``NAME sha256:HEX scope=SCOPE [allow=RULE,…]``; the name becomes the command's principal,
the scope and the allowed policy rules are :mod:`wharf.gateway.policy`'s. A line without a
scope (written before tokens had one) is an admin token, and each load of such a file says so
once in the log. It is re-read when it changes, so tokens can be added or revoked without a
restart. Gateways that share a database (``--database-url``) also accept the tokens kept there
(:meth:`~wharf.gateway.pgrecords.PgRecords.token_entries`, read again every
:data:`SHARED_REFRESH_SECONDS`; ``wharf-gateway token create`` writes there when a database
is configured), so a token made or revoked on one host counts on every gateway.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wharf.errors import (
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    WharfError,
)
from wharf.gateway.policy import Grant, Scope, check_scope, parse_allow, parse_scope
from wharf.gateway.ui.pages import PATHS as UI_PATHS

log = logging.getLogger("wharf.gateway.auth")
PREFIX = "wgt_"
# Both used with fullmatch: "$" with re.match also accepts a final newline, and a name
# "bob\n" would split its line of the tokens file in two.
_NAME_CHARS = "[a-zA-Z0-9][a-zA-Z0-9_.@-]{0,62}"
_NAME = re.compile(_NAME_CHARS)
_LINE = re.compile(r"(\S+)\s+sha256:([0-9a-f]{64})((?:\s+\S+)*)")
_FORMAT = "NAME sha256:HEX scope=read|operate|admin [allow=RULE,…]"
TOKENS_MODE = 0o600  # the tokens file: digests and what they grant, the gateway's alone
SHARED_REFRESH_SECONDS = 1.0  # how soon a token made or revoked in the database counts


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenEntry:
    """One line of the tokens file: the token's digest and what it grants. ``scoped`` is
    False for a line written before tokens had scopes (it counts as admin)."""

    digest: str
    scope: Scope
    allow: frozenset[str] = frozenset()
    scoped: bool = True

    def line(self, name: str) -> str:
        words = [name, f"sha256:{self.digest}"]
        if self.scoped:
            words.append(f"scope={self.scope}")
        if self.allow:
            words.append("allow=" + ",".join(sorted(self.allow)))
        return " ".join(words)


class Tokens:
    """The tokens file, reloaded when its mtime changes, and the database's tokens when the
    gateway has one (``shared``: an object with ``token_entries()``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.shared: Any = None
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._entries: dict[str, TokenEntry] = {}
        self._shared: dict[str, TokenEntry] = {}
        self._shared_at = -SHARED_REFRESH_SECONDS

    def shared_entries(self) -> dict[str, TokenEntry]:
        """The database's tokens, read at most every :data:`SHARED_REFRESH_SECONDS`; while it
        cannot be reached, the last ones read (logged)."""
        if self.shared is None:
            return {}
        now = time.monotonic()
        if now - self._shared_at >= SHARED_REFRESH_SECONDS:
            self._shared_at = now
            try:
                self._shared = self.shared.token_entries()
            except WharfError as exc:
                log.warning("tokens in the database: %s (the last ones read still count)", exc)
        return self._shared

    def entries(self) -> dict[str, TokenEntry]:
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
                unscoped = sorted(n for n, e in self._entries.items() if not e.scoped)
                if unscoped:
                    log.warning("%s: %d token(s) without a scope count as admin: %s (make "
                                "them again with wharf-gateway token create NAME --scope …)",
                                self.path, len(unscoped), ", ".join(unscoped))
            return dict(self._entries)

    def authenticate(self, header: str | None) -> Grant:
        """What the token of an ``Authorization: Bearer …`` header grants; Unauthenticated
        otherwise."""
        if not header or not header.startswith("Bearer "):
            raise Unauthenticated("authentication required: send 'Authorization: Bearer "
                                  "<token>' (wharf-gateway token create NAME makes one)")
        wanted = digest(header.removeprefix("Bearer ").strip())
        found: Grant | None = None
        for name, entry in [*self.entries().items(), *self.shared_entries().items()]:
            if hmac.compare_digest(entry.digest, wanted):
                # no early exit: the time does not depend on the position
                found = Grant(name, entry.scope, entry.allow)
        if found is None:
            raise Unauthenticated("invalid token")
        return found


# Paths anyone may read: liveness, the API's own description and the dashboard's static files
# (no data: the page sends a token with each API call it makes).
OPEN_PATHS = frozenset({"/healthz", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json",
                        *UI_PATHS})


class BearerAuth:
    """ASGI middleware: every HTTP request but :data:`OPEN_PATHS` needs a valid token (401)
    whose scope covers it (403, naming the scope needed); the token's name goes to
    ``request.state.principal`` and its :class:`Grant` to ``request.state.grant``.

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
            grant = self.tokens.authenticate(header.decode("latin-1") if header else None)
            check_scope(grant, scope["method"], scope["path"])
        except (Unauthenticated, PermissionDenied) as exc:
            await _refuse(send, exc)
            return
        state = scope.setdefault("state", {})
        state["principal"], state["grant"] = grant.name, grant
        await self.app(scope, receive, send)


async def _refuse(send: Any, exc: WharfError) -> None:
    """The error answer of the middleware (RFC 6750's challenge on 401 and 403)."""
    body = json.dumps({"message": exc.message, "code": exc.code}).encode()
    challenge = {401: b"Bearer", 403: b'Bearer error="insufficient_scope"'}
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]
    if exc.http_status in challenge:
        headers.append((b"www-authenticate", challenge[exc.http_status]))
    await send({"type": "http.response.start", "status": exc.http_status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def read_tokens(path: Path) -> dict[str, TokenEntry]:
    """name → entry of a tokens file; InvalidArgument naming the line that is not one."""
    entries: dict[str, TokenEntry] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.fullmatch(line)
        if match is None:
            raise InvalidArgument(f"{path}:{number}: expected '{_FORMAT}'")
        try:
            entries[match.group(1)] = _entry(match.group(2), match.group(3).split())
        except InvalidArgument as exc:
            raise InvalidArgument(f"{path}:{number}: {exc.message}") from None
    return entries


def _entry(hexdigest: str, words: list[str]) -> TokenEntry:
    fields: dict[str, str] = {}
    for word in words:
        key, _, value = word.partition("=")
        if key not in ("scope", "allow") or key in fields:
            raise InvalidArgument(f"expected '{_FORMAT}'")
        fields[key] = value
    if "scope" not in fields:
        if "allow" in fields:
            raise InvalidArgument("allow= needs scope=operate")
        return TokenEntry(hexdigest, Scope.ADMIN, scoped=False)
    return _granting(hexdigest, parse_scope(fields["scope"]),
                     parse_allow([fields.get("allow", "")]))


def _granting(hexdigest: str, scope: Scope, allow: frozenset[str]) -> TokenEntry:
    if allow and scope is not Scope.OPERATE:
        raise InvalidArgument(f"--allow is for operate tokens (a {scope} token "
                              f"{'may do it all' if scope is Scope.ADMIN else 'runs nothing'})")
    return TokenEntry(hexdigest, scope, allow)


def make_token(name: str, scope: Scope = Scope.OPERATE,
               allow: Iterable[str] = ()) -> tuple[str, TokenEntry]:
    """A new token for ``name`` and what it grants (its digest, to be stored)."""
    if not _NAME.fullmatch(name):
        raise InvalidArgument(f"invalid token name {name!r}: a name is {_NAME_CHARS}")
    token = PREFIX + secrets.token_urlsafe(32)
    return token, _granting(digest(token), scope, parse_allow(allow))


def create_token(path: Path, name: str, scope: Scope = Scope.OPERATE,
                 allow: Iterable[str] = ()) -> str:
    """Add (or replace) ``name``'s token with ``scope`` (and the policy rules in ``allow``)
    and return the new token (shown once)."""
    token, entry = make_token(name, scope, allow)
    entries = read_tokens(path) if path.exists() else {}
    entries[name] = entry
    _write(path, entries)
    return token


def revoke_token(path: Path, name: str) -> None:
    entries = read_tokens(path) if path.exists() else {}
    if entries.pop(name, None) is None:
        raise NotFound(f"no token named {name!r}")
    _write(path, entries)


def _write(path: Path, entries: dict[str, TokenEntry]) -> None:
    """Atomically: temp file (0600 whatever the umask), fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(tmp, flags, TOKENS_MODE)
    os.fchmod(fd, TOKENS_MODE)  # a temp file left by a crash keeps its mode through O_CREAT
    with os.fdopen(fd, "w") as out:
        out.write(f"# wharf-gateway bearer tokens: {_FORMAT} (digests, not tokens)\n")
        for name, entry in sorted(entries.items()):
            out.write(entry.line(name) + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
