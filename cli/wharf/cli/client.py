"""A typed client of wharfd's Docker Engine API (images, containers, exec, system endpoints).

Every method is one API call. Non-2xx replies raise the ``wharf.errors`` kind for the status
(``from_http_status``) with the daemon's ``message``; streaming methods return an iterator of the
JSON messages the daemon sends (pull, push, load, import) or of raw bytes (save, logs).
Attach and exec start hijack the connection through a :class:`~wharf.cli.hijack.Hijacker` and
return its :class:`~wharf.cli.hijack.RawStream`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from wharf.cli.transport import Params, Reply, StreamReply, Transport
from wharf.errors import Internal, NotFound, WharfError, from_http_status

if TYPE_CHECKING:
    from wharf.cli.hijack import Hijacker, RawStream

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


class WaitHandle:
    """A ``POST /containers/{id}/wait`` whose headers arrived; the body comes at exit."""

    def __init__(self, reply: StreamReply) -> None:
        self._reply = reply

    def result(self) -> JSONObject:
        """Blocks until the condition is met: ``{"StatusCode": N, "Error": …}``."""
        try:
            body = self._reply.read()
        finally:
            self._reply.close()
        try:
            return dict(json.loads(body))
        except (ValueError, TypeError) as exc:
            raise Internal(f"the daemon sent an invalid wait result: {body[:200]!r}") from exc

    def close(self) -> None:
        self._reply.close()


class APIClient:
    """Docker Engine API v1.41 calls over a :class:`Transport` (and a Hijacker for attach)."""

    def __init__(self, transport: Transport, hijacker: Hijacker | None = None) -> None:
        self._t = transport
        self._hijacker = hijacker

    def close(self) -> None:
        self._t.close()

    # -- plumbing ---------------------------------------------------------------------------
    def _call(self, method: str, path: str, *, ok_304: bool = False, **kw: Any) -> Reply:
        reply = self._t.request(method, path, **kw)
        if ok_304 and reply.status == 304:  # start/stop of a container already in that state
            return reply
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

    def system_check(self, repair: bool) -> JSONObject:
        """POST /system/check?repair= (wharf's own route); ``{"Problems", "Errors"}``."""
        return dict(self._json("POST", "/system/check",
                               params={"repair": "1" if repair else "0"}) or {})

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
        return _bytes_then_close(reply)

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

    # -- volumes ----------------------------------------------------------------------------
    def volumes(self, filters: Mapping[str, Iterable[str]] | None = None) -> list[JSONObject]:
        """GET /volumes; the ``Volumes`` list (``null`` read as empty)."""
        params: Params = {"filters": filters_param(filters)} if filters else {}
        reply = self._json("GET", "/volumes", params=params) or {}
        return list(reply.get("Volumes") or [])

    def create_volume(self, body: Mapping[str, Any]) -> JSONObject:
        """POST /volumes/create with ``{Name, Driver, DriverOpts, Labels}``."""
        return dict(self._json("POST", "/volumes/create", json=dict(body)))

    def inspect_volume(self, name: str) -> JSONObject:
        """GET /volumes/{name}."""
        return dict(self._json("GET", f"/volumes/{name}"))

    def remove_volume(self, name: str, force: bool = False) -> None:
        """DELETE /volumes/{name}[?force=1]."""
        self._call("DELETE", f"/volumes/{name}", params={"force": "1"} if force else {})

    def prune_volumes(self, filters: Mapping[str, Iterable[str]] | None = None) -> JSONObject:
        """POST /volumes/prune; ``{"VolumesDeleted", "SpaceReclaimed"}``."""
        params: Params = {"filters": filters_param(filters)} if filters else {}
        return dict(self._json("POST", "/volumes/prune", params=params) or {})

    # -- networks ---------------------------------------------------------------------------
    def networks(self, filters: Mapping[str, Iterable[str]] | None = None) -> list[JSONObject]:
        """GET /networks."""
        params: Params = {"filters": filters_param(filters)} if filters else {}
        return list(self._json("GET", "/networks", params=params) or [])

    def create_network(self, body: Mapping[str, Any]) -> JSONObject:
        """POST /networks/create with ``{Name, Driver, Internal, Labels, IPAM}``; ``{"Id"}``."""
        return dict(self._json("POST", "/networks/create", json=dict(body)))

    def inspect_network(self, ref: str) -> JSONObject:
        """GET /networks/{ref}."""
        return dict(self._json("GET", f"/networks/{ref}"))

    def remove_network(self, ref: str) -> None:
        """DELETE /networks/{ref}."""
        self._call("DELETE", f"/networks/{ref}")

    def prune_networks(self) -> JSONObject:
        """POST /networks/prune; ``{"NetworksDeleted"}``."""
        return dict(self._json("POST", "/networks/prune") or {})

    def connect_network(self, ref: str, container: str, ip: str = "",
                        aliases: Iterable[str] = ()) -> None:
        """POST /networks/{ref}/connect."""
        endpoint: dict[str, Any] = {"Aliases": list(aliases) or None}
        if ip:
            endpoint["IPAMConfig"] = {"IPv4Address": ip}
        self._call("POST", f"/networks/{ref}/connect",
                   json={"Container": container, "EndpointConfig": endpoint})

    def disconnect_network(self, ref: str, container: str, force: bool = False) -> None:
        """POST /networks/{ref}/disconnect."""
        self._call("POST", f"/networks/{ref}/disconnect",
                   json={"Container": container, "Force": force})

    # -- containers -------------------------------------------------------------------------
    def create_container(self, body: Mapping[str, Any], name: str = "",
                         platform: str = "") -> JSONObject:
        """POST /containers/create[?name=&platform=] ; ``{"Id", "Warnings"}``."""
        params: dict[str, str | list[str]] = {"name": name} if name else {}
        if platform:
            params["platform"] = platform
        return dict(self._json("POST", "/containers/create", params=params, json=dict(body)))

    def containers(self, all: bool = False, limit: int = -1, size: bool = False,
                   filters: Mapping[str, Iterable[str]] | None = None) -> list[JSONObject]:
        """GET /containers/json (parameters sent only when set, as the docker CLI does)."""
        params: dict[str, str | list[str]] = {}
        if all:
            params["all"] = "1"
        if limit != -1:
            params["limit"] = str(limit)
        if size:
            params["size"] = "1"
        if filters:
            params["filters"] = filters_param(filters)
        return list(self._json("GET", "/containers/json", params=params) or [])

    def inspect_container(self, name: str, size: bool = False) -> JSONObject:
        """GET /containers/{name}/json (the server's document, untouched)."""
        params: Params = {"size": "1"} if size else {}
        return dict(self._json("GET", f"/containers/{name}/json", params=params))

    def start(self, name: str) -> None:
        """POST /containers/{name}/start (304 = already running, not an error)."""
        self._call("POST", f"/containers/{name}/start", ok_304=True)

    def stop(self, name: str, timeout: int | None = None, signal: str = "") -> None:
        """POST /containers/{name}/stop[?t=&signal=]."""
        params: dict[str, str | list[str]] = {} if timeout is None else {"t": str(timeout)}
        if signal:
            params["signal"] = signal
        self._call("POST", f"/containers/{name}/stop", params=params, ok_304=True)

    def restart(self, name: str, timeout: int | None = None) -> None:
        """POST /containers/{name}/restart[?t=]."""
        params: Params = {} if timeout is None else {"t": str(timeout)}
        self._call("POST", f"/containers/{name}/restart", params=params)

    def kill(self, name: str, signal: str = "KILL") -> None:
        """POST /containers/{name}/kill?signal= ."""
        self._call("POST", f"/containers/{name}/kill", params={"signal": signal})

    def pause(self, name: str) -> None:
        self._call("POST", f"/containers/{name}/pause")

    def unpause(self, name: str) -> None:
        self._call("POST", f"/containers/{name}/unpause")

    def remove_container(self, name: str, force: bool = False, volumes: bool = False) -> None:
        """DELETE /containers/{name}[?force=1][&v=1]."""
        params: dict[str, str | list[str]] = {}
        if volumes:
            params["v"] = "1"
        if force:
            params["force"] = "1"
        self._call("DELETE", f"/containers/{name}", params=params)

    def rename(self, name: str, new_name: str) -> None:
        self._call("POST", f"/containers/{name}/rename", params={"name": new_name})

    def wait(self, name: str, condition: str = "") -> WaitHandle:
        """POST /containers/{name}/wait[?condition=] ; returns once the headers arrive."""
        params: Params = {"condition": condition} if condition else {}
        return WaitHandle(self._stream("POST", f"/containers/{name}/wait", params=params))

    def resize(self, name: str, height: int, width: int) -> None:
        self._call("POST", f"/containers/{name}/resize", params={"h": str(height),
                                                                  "w": str(width)})

    def top(self, name: str, ps_args: str = "") -> JSONObject:
        params: Params = {"ps_args": ps_args} if ps_args else {}
        return dict(self._json("GET", f"/containers/{name}/top", params=params))

    def stats(self, name: str) -> JSONObject:
        """GET /containers/{name}/stats?stream=0 (one sample, with precpu_stats)."""
        return dict(self._json("GET", f"/containers/{name}/stats", params={"stream": "0"}))

    def stat_path(self, name: str, path: str) -> JSONObject:
        """HEAD /containers/{name}/archive?path= ; the decoded path-stat header.

        Raises:
            NotFound: the container or the path does not exist.
        """
        reply = self._t.request("HEAD", f"/containers/{name}/archive", params={"path": path})
        if reply.status == 404:
            raise NotFound(f"Could not find the file {path} in container {name}")
        if not 200 <= reply.status < 300:
            raise error_for(reply.status, reply.body, reply.content_type)
        return _path_stat(reply.headers)

    def get_archive(self, name: str, path: str) -> tuple[JSONObject, Iterator[bytes]]:
        """GET /containers/{name}/archive?path= ; (path stat, the tar as it arrives)."""
        reply = self._stream("GET", f"/containers/{name}/archive", params={"path": path})
        try:
            stat = _path_stat(reply.headers)
        except BaseException:
            reply.close()
            raise
        return stat, _bytes_then_close(reply)

    def put_archive(self, name: str, path: str, tarball: Iterable[bytes], *,
                    no_overwrite_dir_non_dir: bool = True, copy_uid_gid: bool = False) -> None:
        """PUT /containers/{name}/archive?path= ; extract the (streamed) tar into dir ``path``."""
        params = {"path": path, "noOverwriteDirNonDir": "1" if no_overwrite_dir_non_dir else "0",
                  "copyUIDGID": "1" if copy_uid_gid else "0"}
        self._call("PUT", f"/containers/{name}/archive", params=params, content=tarball,
                   headers={"Content-Type": "application/x-tar"})

    def changes(self, name: str) -> list[JSONObject]:
        """GET /containers/{name}/changes ; ``[{"Path", "Kind"}]`` (null read as empty)."""
        return list(self._json("GET", f"/containers/{name}/changes") or [])

    def prune_containers(self, filters: Mapping[str, Iterable[str]] | None = None) -> JSONObject:
        """POST /containers/prune ; ``{"ContainersDeleted", "SpaceReclaimed"}``."""
        params: Params = {"filters": filters_param(filters)} if filters else {}
        return dict(self._json("POST", "/containers/prune", params=params) or {})

    def logs(self, name: str, params: Params) -> Iterator[bytes]:
        """GET /containers/{name}/logs ; raw (possibly multiplexed) bytes as they arrive."""
        reply = self._stream("GET", f"/containers/{name}/logs", params=params)
        return _bytes_then_close(reply)

    def events(self, params: Params) -> Iterator[JSONObject]:
        """GET /events ; one message per event until the caller stops reading."""
        return self._messages("GET", "/events", params=params)

    def attach(self, name: str, params: Params) -> RawStream:
        """POST /containers/{name}/attach, hijacked."""
        return self._hijack(f"/containers/{name}/attach", params, None)

    # -- exec -------------------------------------------------------------------------------
    def exec_create(self, name: str, body: Mapping[str, Any]) -> str:
        """POST /containers/{name}/exec ; the exec ID."""
        return str(self._json("POST", f"/containers/{name}/exec", json=dict(body))["Id"])

    def exec_start(self, exec_id: str, tty: bool) -> RawStream:
        """POST /exec/{id}/start ``{"Detach":false,"Tty":…}``, hijacked."""
        return self._hijack(f"/exec/{exec_id}/start", {}, {"Detach": False, "Tty": tty})

    def exec_start_detached(self, exec_id: str, tty: bool) -> None:
        self._call("POST", f"/exec/{exec_id}/start", json={"Detach": True, "Tty": tty})

    def exec_resize(self, exec_id: str, height: int, width: int) -> None:
        self._call("POST", f"/exec/{exec_id}/resize", params={"h": str(height),
                                                               "w": str(width)})

    def exec_inspect(self, exec_id: str) -> JSONObject:
        return dict(self._json("GET", f"/exec/{exec_id}/json"))

    def _hijack(self, path: str, params: Params, body: object) -> RawStream:
        if self._hijacker is None:
            raise Internal("this API client cannot attach: it has no hijacker")
        result = self._hijacker.open(path, params, body)
        if result.stream is not None:
            return result.stream
        reply = result.reply
        if 200 <= reply.status < 300:
            raise Internal(f"unable to upgrade to tcp, received {reply.status}")
        raise error_for(reply.status, reply.body, reply.content_type)


def _path_stat(headers: Mapping[str, str]) -> JSONObject:
    """The ``X-Docker-Container-Path-Stat`` header, decoded (base64 of a JSON object)."""
    import base64  # noqa: PLC0415 - only cp needs it

    raw = headers.get("x-docker-container-path-stat", "")
    try:
        value = json.loads(base64.b64decode(raw, validate=True))
    except ValueError as exc:
        raise Internal(f"unable to decode container path stat header: {exc}") from exc
    if not isinstance(value, dict):
        raise Internal("unable to decode container path stat header: not an object")
    return value


def _bytes_then_close(reply: StreamReply) -> Iterator[bytes]:
    """A streamed body as it arrives; the connection is closed when the iteration ends."""
    try:
        yield from reply.iter_bytes()
    finally:
        reply.close()
