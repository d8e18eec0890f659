"""A typed client of wharfd's Docker Engine API (images and system endpoints).

Every method is one API call. Non-2xx replies raise the ``wharf.errors`` kind for the status
(``from_http_status``) with the daemon's ``message``; streaming methods return an iterator of the
JSON messages the daemon sends (pull, push, load, import) or of raw bytes (save).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from wharf.cli.transport import Params, Reply, StreamReply, Transport
from wharf.errors import Internal, WharfError, from_http_status

JSONObject = dict[str, Any]
# Docker sends `e30=` (base64 of "{}") when it has no credentials for a registry.
EMPTY_AUTH = "e30="
_REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            409: "Conflict", 500: "Internal Server Error", 503: "Service Unavailable"}


def error_for(status: int, body: bytes, content_type: str) -> WharfError:
    """The error kind for a non-2xx reply, with the message the docker CLI would show."""
    text = body.decode("utf-8", "replace").strip()
    if status == 404 and not text:
        return from_http_status(status, "page not found: check if the server supports the "
                                        "requested API version")
    if "json" not in content_type:
        return from_http_status(status, text)
    try:
        message = json.loads(text).get("message")
    except (ValueError, AttributeError):
        message = text
    if not message:
        reason = _REASONS.get(status, "error")
        message = f"API returned a {status} ({reason}) but provided no error-message"
    return from_http_status(status, str(message))


def filters_param(filters: Mapping[str, Iterable[str]]) -> str:
    """Docker's map form: ``{"dangling": {"true": true}}``."""
    return json.dumps({k: dict.fromkeys(v, True) for k, v in filters.items()})


def decode_messages(lines: Iterable[str]) -> Iterator[JSONObject]:
    """JSON objects from a JSON-message stream, tolerating several objects on one line."""
    decoder = json.JSONDecoder()
    for line in lines:
        pos, text = 0, line.strip()
        while pos < len(text):
            try:
                obj, end = decoder.raw_decode(text, pos)
            except ValueError as exc:
                raise Internal(f"the daemon sent a malformed progress message: {text!r}") from exc
            if isinstance(obj, dict):
                yield obj
            pos = end
            while pos < len(text) and text[pos].isspace():
                pos += 1


class APIClient:
    """Docker Engine API v1.41 calls for images and the system, over a :class:`Transport`."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def close(self) -> None:
        self._t.close()

    # -- plumbing ---------------------------------------------------------------------------
    def _call(self, method: str, path: str, **kw: Any) -> Reply:
        reply = self._t.request(method, path, **kw)
        if not 200 <= reply.status < 300:
            raise error_for(reply.status, reply.body, reply.content_type)
        return reply

    def _json(self, method: str, path: str, **kw: Any) -> Any:
        reply = self._call(method, path, **kw)
        if not reply.body.strip():
            return None
        try:
            return json.loads(reply.body)
        except ValueError as exc:
            raise Internal(f"the daemon sent invalid JSON for {method} {path}") from exc

    def _stream(self, method: str, path: str, **kw: Any) -> StreamReply:
        reply = self._t.stream(method, path, **kw)
        if not 200 <= reply.status < 300:
            try:
                body = reply.read()
            finally:
                reply.close()
            raise error_for(reply.status, body, reply.headers.get("content-type", ""))
        return reply

    def _messages(self, method: str, path: str, **kw: Any) -> Iterator[JSONObject]:
        """Opens the stream now (so HTTP errors raise here) and decodes it lazily."""
        reply = self._stream(method, path, **kw)

        def gen() -> Iterator[JSONObject]:
            try:
                yield from decode_messages(reply.iter_lines())
            finally:
                reply.close()

        return gen()

    # -- system -----------------------------------------------------------------------------
    def ping(self) -> bool:
        """GET /_ping; True when the daemon answers ``OK``."""
        return self._call("GET", "/_ping").body.strip() == b"OK"

    def version(self) -> JSONObject:
        """GET /version."""
        return dict(self._json("GET", "/version") or {})

    def info(self) -> JSONObject:
        """GET /info."""
        return dict(self._json("GET", "/info") or {})

    def auth(self, auth_config: Mapping[str, str]) -> JSONObject:
        """POST /auth with an AuthConfig body; returns ``{"Status", "IdentityToken"}``."""
        return dict(self._json("POST", "/auth", json=dict(auth_config)) or {})

    # -- images -----------------------------------------------------------------------------
    def images(self, all: bool = False,  # Docker's own parameter name
               filters: Mapping[str, Iterable[str]] | None = None) -> list[JSONObject]:
        """GET /images/json."""
        params: dict[str, str | list[str]] = {"all": "1" if all else "0"}
        if filters:
            params["filters"] = filters_param(filters)
        return list(self._json("GET", "/images/json", params=params) or [])

    def image_inspect(self, name: str) -> JSONObject:
        """GET /images/{name}/json (the server's document, untouched)."""
        return dict(self._json("GET", f"/images/{name}/json"))

    def image_history(self, name: str) -> list[JSONObject]:
        """GET /images/{name}/history."""
        return list(self._json("GET", f"/images/{name}/history") or [])

    def pull(self, image: str, tag: str, auth_header: str = EMPTY_AUTH,
             platform: str = "") -> Iterator[JSONObject]:
        """POST /images/create?fromImage=&tag= ; the progress messages."""
        params: dict[str, str | list[str]] = {"fromImage": image, "tag": tag}
        if platform:
            params["platform"] = platform
        return self._messages("POST", "/images/create", params=params,
                              headers={"X-Registry-Auth": auth_header})

    def push(self, name: str, tag: str, auth_header: str = EMPTY_AUTH) -> Iterator[JSONObject]:
        """POST /images/{name}/push?tag= ; the progress messages."""
        return self._messages("POST", f"/images/{name}/push", params={"tag": tag},
                              headers={"X-Registry-Auth": auth_header})

    def tag(self, source: str, repo: str, tag: str) -> None:
        """POST /images/{source}/tag?repo=&tag= (201)."""
        self._call("POST", f"/images/{source}/tag", params={"repo": repo, "tag": tag})

    def remove_image(self, name: str, force: bool = False,
                     noprune: bool = False) -> list[JSONObject]:
        """DELETE /images/{name}; the ``{"Untagged"}``/``{"Deleted"}`` items."""
        params: dict[str, str | list[str]] = {"force": "1" if force else "0",
                                              "noprune": "1" if noprune else "0"}
        return list(self._json("DELETE", f"/images/{name}", params=params) or [])

    def prune_images(self, filters: Mapping[str, Iterable[str]] | None = None) -> JSONObject:
        """POST /images/prune; ``{"ImagesDeleted", "SpaceReclaimed"}``."""
        params: Params = {"filters": filters_param(filters)} if filters else {}
        return dict(self._json("POST", "/images/prune", params=params) or {})

    def save(self, names: list[str]) -> Iterator[bytes]:
        """GET /images/get?names=… ; the tar archive as it arrives."""
        reply = self._stream("GET", "/images/get", params={"names": names})

        def gen() -> Iterator[bytes]:
            try:
                yield from reply.iter_bytes()
            finally:
                reply.close()

        return gen()

    def load(self, tarball: Iterable[bytes], quiet: bool = False) -> Iterator[JSONObject]:
        """POST /images/load ; the messages (``{"stream": "Loaded image: …\\n"}``)."""
        return self._messages("POST", "/images/load", params={"quiet": "1" if quiet else "0"},
                              content=tarball, headers={"Content-Type": "application/x-tar"})

    def import_image(self, source: Iterable[bytes] | str, repo: str = "", message: str = "",
                     changes: list[str] | None = None,
                     platform: str = "") -> Iterator[JSONObject]:
        """POST /images/create?fromSrc= ; a byte stream goes as the body, a str is a URL."""
        params: dict[str, str | list[str]] = {
            "fromSrc": source if isinstance(source, str) else "-",
            "repo": repo, "message": message,
        }
        if changes:
            params["changes"] = changes
        if platform:
            params["platform"] = platform
        body = None if isinstance(source, str) else source
        return self._messages("POST", "/images/create", params=params, content=body,
                              headers={"Content-Type": "text/plain"})
