"""The CLI's way to a node through the gateway: the same API client, another transport.

The gateway serves each node's Docker API paths under ``/v1/nodes/{node}/…`` behind a bearer
token, so :class:`GatewayTransport` only rewrites the path, adds the token, and asks mutating
calls to wait for their result (``?wait=true``), and the commands above it do not know whether
they talk to a daemon or to a node through the gateway. Paths the gateway does not relay
(build, cp…) are refused here with a message that says so. Attach and exec start
hijack the gateway's connection, which relays it to the node's daemon (``hijacker``).
``any`` as the node lets the gateway's placement choose one, once, before the first request.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from wharf.cli.apireplies import decode_messages
from wharf.cli.hijack import SocketHijacker
from wharf.cli.transport import Host, Params, Reply, StreamReply, Transport
from wharf.errors import InvalidArgument, WharfError, from_code, from_http_status
from wharf.protocol import COMMANDS

ANY_NODE = "any"
# What the gateway relays: the routes of the cluster's command table (wharf.protocol.COMMANDS)
# that a wharf verb reaches.
RELAYED = tuple((spec.method, spec.route_pattern()) for spec in COMMANDS.values()
                if spec.verb is not None)
# The interactive sessions' routes, which the gateway relays to the node's daemon as they are
# (no command, no ?wait): attach, exec, resize, wait, stats (wharf.gateway.streams).
_ID = "[^/]+"
STREAMED = tuple((method, re.compile(path)) for method, path in (
    ("POST", f"/containers/{_ID}/exec"), ("POST", f"/exec/{_ID}/start"),
    ("GET", f"/exec/{_ID}/json"), ("POST", f"/exec/{_ID}/resize"),
    ("POST", f"/containers/{_ID}/resize"), ("POST", f"/containers/{_ID}/wait"),
    ("POST", f"/containers/{_ID}/attach"), ("GET", f"/containers/{_ID}/stats")))
VERBS = ", ".join([*(spec.verb for spec in COMMANDS.values() if spec.verb is not None),
                   "attach", "exec", "wait", "stats", "run -i/-t", "events"])


def parse_gateway(url: str, cacert: str | None = None, cert: str | None = None,
                  key: str | None = None) -> Host:
    """``http://HOST:PORT``, or ``https://HOST:PORT`` verified against ``cacert`` (the
    system's CAs without one), presenting ``cert``/``key`` to a gateway that wants a client
    certificate. InvalidArgument names a bad address or a file that is not there."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError as exc:
        raise InvalidArgument(f"invalid gateway address {url!r}: bad port") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname or \
            parts.path not in ("", "/"):
        raise InvalidArgument(f"invalid gateway address {url!r}: expected https://HOST:PORT "
                              "(or http:// to a gateway on this host)")
    tls = None
    if parts.scheme == "https":
        from wharf.cli.tls import TLSConfig  # noqa: PLC0415

        if (cert is None) != (key is None):
            raise InvalidArgument("--gateway-cert and --gateway-key go together: give both "
                                  "(or neither)")
        tls = TLSConfig(verify=True, ca_file=_file(cacert, "--gateway-cacert"),
                        cert_file=_file(cert, "--gateway-cert"),
                        key_file=_file(key, "--gateway-key"))
    elif cacert or cert or key:
        raise InvalidArgument(f"--gateway-cacert, --gateway-cert and --gateway-key are for an "
                              f"https:// gateway, not {url}")
    netloc = f"{parts.hostname}:{port or (443 if tls else 80)}"
    return Host(url=url, scheme="tcp", netloc=netloc, tls=tls)


def _file(given: str | None, flag: str) -> str | None:
    if given is None:
        return None
    path = os.path.expanduser(given)
    if not os.path.isfile(path):
        raise InvalidArgument(f"{flag} {given}: no such file")
    return path


@dataclass(frozen=True)
class TokenSource:
    """Where the gateway token comes from, first found first: the file named by
    ``--token-file`` (or ``WHARF_TOKEN_FILE``), ``WHARF_TOKEN``, then ``~/.config/wharf/token``
    when it exists. Never the command line: every user on the host sees it in ``ps``."""

    file: Path | None = None
    env: str | None = None
    default: Path | None = None

    def read(self) -> str | None:
        """The token, or None when there is none; InvalidArgument for a token file that is
        missing, empty, not a file, or open to group or others."""
        if self.file is not None:
            return read_token_file(self.file)
        if self.env:
            return _token(self.env, "WHARF_TOKEN")
        if self.default is not None and self.default.exists():
            return read_token_file(self.default)
        return None


def read_token_file(path: Path) -> str:
    """The token in ``path``. Like ssh with a private key, a file that its group or others
    may read or write is refused, not used: chmod 600 makes it usable."""
    try:  # O_NONBLOCK: a FIFO in its place must not hang the CLI (it is refused below)
        fd = os.open(path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as exc:
        raise InvalidArgument(f"token file {path}: {exc.strerror}") from exc
    info = os.fstat(fd)  # of what was opened, links followed
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise InvalidArgument(f"token file {path}: not a regular file")
    with os.fdopen(fd, "rb") as handle:
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise InvalidArgument(
                f"token file {path}: permissions {mode:04o} are too open: a token file must "
                f"not be readable or writable by group or others, so it is not used "
                f"(chmod 600 {path})")
        data = handle.read(4097)
    return _token(data.decode("utf-8", errors="replace"), f"token file {path}")


def _token(text: str, where: str) -> str:
    token = text.strip()
    if not token or len(token) > 4096 or not all(33 <= ord(c) < 127 for c in token):
        raise InvalidArgument(f"{where}: expected one token (printable ASCII, no spaces), as "
                              "wharf-gateway token create prints it")
    return token


def relayed(method: str, path: str) -> bool:
    where = path.split("?", maxsplit=1)[0]
    return any(method == want and pattern.match(where) for want, pattern in RELAYED) or \
        streamed(method, where)


def streamed(method: str, path: str) -> bool:
    return any(method == want and pattern.fullmatch(path) for want, pattern in STREAMED)


class GatewayAPI:
    """The gateway's own routes (nodes, the cluster's containers, placement)."""

    def __init__(self, wire: Transport, token: str | None) -> None:
        self.wire = wire
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def get(self, path: str, params: Params | None = None) -> Any:
        reply = self.wire.request("GET", path, params=params, headers=self.headers)
        check(reply)
        return json.loads(reply.body)

    def nodes(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.get("/v1/nodes")
        return result

    def node(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.get(f"/v1/nodes/{quote(name, safe='')}")
        return result

    def containers(self, all: bool, filters: str | None) -> list[dict[str, Any]]:
        params: dict[str, str | list[str]] = {"all": "1" if all else "0"}
        if filters:
            params["filters"] = filters
        result: list[dict[str, Any]] = self.get("/v1/containers", params)
        return result

    def events(self, params: Params) -> Iterator[dict[str, Any]]:
        """GET /v1/events: the cluster's events (opened now: a refused filter raises here),
        one at a time as they come."""
        reply = self.wire.stream("GET", "/v1/events", params=params, headers=self.headers)
        if reply.status >= 400:
            try:
                check(Reply(reply.status, reply.headers, reply.read()))
            finally:
                reply.close()

        def read() -> Iterator[dict[str, Any]]:
            try:
                yield from decode_messages(reply.iter_lines())
            finally:
                reply.close()

        return read()

    def place(self) -> str:
        return str(self.get("/v1/placement")["Node"])

    def close(self) -> None:
        self.wire.close()


class GatewayTransport:
    """A node's Docker API through the gateway, as a :class:`Transport`."""

    def __init__(self, api: GatewayAPI, node: str) -> None:
        self.api = api
        self.node = node
        self._chosen: str | None = None

    @property
    def target(self) -> str:
        """The node requests go to (placement asked once when the node is ``any``)."""
        if self._chosen is None:
            self._chosen = self.api.place() if self.node == ANY_NODE else self.node
        return self._chosen

    def _route(self, method: str, path: str, params: Params | None,
               headers: Mapping[str, str] | None) -> tuple[str, dict[str, Any], dict[str, str]]:
        if not relayed(method, path):
            where = path.split("?", maxsplit=1)[0]
            raise InvalidArgument(
                f"{method} {where} is not relayed by the gateway: through the gateway wharf "
                f"can {VERBS}; use -H to talk to the node's daemon directly")
        query: dict[str, Any] = dict(params or {})
        if method in ("POST", "DELETE") and not streamed(method, path):
            query["wait"] = "true"
        return (f"{self.prefix}{path}", query, {**(headers or {}), **self.api.headers})

    @property
    def prefix(self) -> str:
        """The node's Docker API paths on the gateway."""
        return f"/v1/nodes/{quote(self.target, safe='')}"

    def hijacker(self, gateway: Host) -> SocketHijacker:
        """Attach and exec start, hijacked through the gateway to the node's daemon."""
        return SocketHijacker(gateway, prefix=self.prefix, headers=self.api.headers)

    def request(self, method: str, path: str, *, params: Params | None = None,
                json: object = None, content: bytes | Iterable[bytes] | None = None,
                headers: Mapping[str, str] | None = None) -> Reply:
        where, query, head = self._route(method, path, params, headers)
        return self.api.wire.request(method, where, params=query, json=json, content=content,
                                     headers=head)

    def stream(self, method: str, path: str, *, params: Params | None = None,
               json: object = None, content: bytes | Iterable[bytes] | None = None,
               headers: Mapping[str, str] | None = None) -> StreamReply:
        where, query, head = self._route(method, path, params, headers)
        return self.api.wire.stream(method, where, params=query, json=json, content=content,
                                    headers=head)

    def close(self) -> None:
        self.api.close()


def check(reply: Reply) -> None:
    """Raise the error kind of a failed gateway reply (its body carries ``code``)."""
    if reply.status < 400:
        return
    try:
        body = json.loads(reply.body)
    except ValueError:
        body = {}
    message = str(body.get("message") or reply.body.decode(errors="replace") or reply.status)
    error: WharfError = from_code(body["code"], message) if isinstance(body.get("code"), str) \
        else from_http_status(reply.status, message)
    raise error
