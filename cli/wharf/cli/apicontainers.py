"""API calls on containers and their execs: lifecycle, inspection, archives, logs, events,
attach and exec."""

from __future__ import annotations

from wharf.cli.apibase import APIBase
from wharf.cli.apireplies import (
    WaitHandle,
    bytes_then_close,
    error_for,
    filters_param,
    path_stat,
)
from wharf.errors import NotFound

TYPE_CHECKING = False  # `typing` costs start-up time (docs/cli.md "Start-up")
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping
    from typing import Any

    from wharf.cli.apireplies import JSONObject
    from wharf.cli.hijack import RawStream
    from wharf.cli.transport import Params


class ContainerCalls(APIBase):
    """``/containers``, ``/events`` and ``/exec``."""

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

    def stats_stream(self, name: str) -> Iterator[JSONObject]:
        """GET /containers/{name}/stats?stream=1 ; a sample a second until the container
        stops (opened now: an unknown container raises here)."""
        return self._messages("GET", f"/containers/{name}/stats", params={"stream": "1"})

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
        return path_stat(reply.headers)

    def get_archive(self, name: str, path: str) -> tuple[JSONObject, Iterator[bytes]]:
        """GET /containers/{name}/archive?path= ; (path stat, the tar as it arrives)."""
        reply = self._stream("GET", f"/containers/{name}/archive", params={"path": path})
        try:
            stat = path_stat(reply.headers)
        except BaseException:
            reply.close()
            raise
        return stat, bytes_then_close(reply)

    def put_archive(self, name: str, path: str, tarball: Iterable[bytes], *,
                    no_overwrite_dir_non_dir: bool = True, copy_uid_gid: bool = False) -> None:
        """PUT /containers/{name}/archive?path= ; extract the (streamed) tar into dir ``path``."""
        params = {"path": path, "noOverwriteDirNonDir": "1" if no_overwrite_dir_non_dir else "0",
                  "copyUIDGID": "1" if copy_uid_gid else "0"}
        self._call("PUT", f"/containers/{name}/archive", params=params, content=tarball,
                   headers={"Content-Type": "application/x-tar"})

    def export(self, name: str) -> Iterator[bytes]:
        """GET /containers/{name}/export ; the tar of its filesystem as it arrives."""
        return bytes_then_close(self._stream("GET", f"/containers/{name}/export"))

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
        return bytes_then_close(reply)

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
