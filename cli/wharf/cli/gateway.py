"""The CLI's way to a node through the gateway: the same API client, another transport.

The gateway serves each node's Docker API paths under ``/v1/nodes/{node}/…`` behind a bearer
token, so :class:`GatewayTransport` only rewrites the path, adds the token, and asks mutating
calls to wait for their result (``?wait=true``), and the commands above it do not know whether
they talk to a daemon or to a node through the gateway. Paths the gateway does not relay
(attach, exec, wait, stats…) are refused here with a message that says so. ``any`` as the node
lets the gateway's placement choose one, once, before the first request.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

from wharf.cli.transport import Host, Params, Reply, StreamReply, Transport
from wharf.errors import InvalidArgument, WharfError, from_code, from_http_status
from wharf.protocol import COMMANDS

ANY_NODE = "any"
# What the gateway relays: the routes of the cluster's command table (wharf.protocol.COMMANDS)
# that a wharf verb reaches.
RELAYED = tuple((spec.method, spec.route_pattern()) for spec in COMMANDS.values()
                if spec.verb is not None)
VERBS = ", ".join(spec.verb for spec in COMMANDS.values() if spec.verb is not None)


def parse_gateway(url: str) -> Host:
    """``http://HOST:PORT`` (or ``https://…``, verified against the system CAs)."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError as exc:
        raise InvalidArgument(f"invalid gateway address {url!r}: bad port") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname or \
            parts.path not in ("", "/"):
        raise InvalidArgument(f"invalid gateway address {url!r}: expected http://HOST:PORT")
    tls = None
    if parts.scheme == "https":
        from wharf.cli.tls import TLSConfig  # noqa: PLC0415

        tls = TLSConfig(verify=True)
    netloc = f"{parts.hostname}:{port or (443 if tls else 80)}"
    return Host(url=url, scheme="tcp", netloc=netloc, tls=tls)


def relayed(method: str, path: str) -> bool:
    where = path.split("?", maxsplit=1)[0]
    return any(method == want and pattern.match(where) for want, pattern in RELAYED)


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
        if method in ("POST", "DELETE"):
            query["wait"] = "true"
        return (f"/v1/nodes/{quote(self.target, safe='')}{path}", query,
                {**(headers or {}), **self.api.headers})

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
