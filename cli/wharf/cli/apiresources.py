"""API calls on the daemon's objects other than containers: system, images, volumes and
networks."""

from __future__ import annotations

from wharf.cli.apibase import APIBase
from wharf.cli.apireplies import EMPTY_AUTH, bytes_then_close, filters_param

TYPE_CHECKING = False  # `typing` costs start-up time (docs/cli.md "Start-up")
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping
    from typing import Any

    from wharf.cli.apireplies import JSONObject
    from wharf.cli.buildoptions import BuildOptions
    from wharf.cli.transport import Params


class ResourceCalls(APIBase):
    """``/_ping``, ``/version``, ``/info``, ``/system``, ``/auth``, ``/images``, ``/volumes``
    and ``/networks``."""

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

    def disk_usage(self, kinds: Iterable[str] = ()) -> JSONObject:
        """GET /system/df[?type=…] (``type`` is API 1.42's; wharfd takes it at 1.41 too)."""
        params: Params = {"type": list(kinds)} if kinds else {}
        return dict(self._json("GET", "/system/df", params=params) or {})

    def prune_build_cache(self, all: bool = False,  # Docker's own parameter name
                          filters: Mapping[str, Iterable[str]] | None = None,
                          keep_storage: int = 0) -> JSONObject:
        """POST /build/prune?all=&keep-storage=&filters= ; ``{"CachesDeleted",
        "SpaceReclaimed"}``. ``filters`` is sent even when empty, as the docker CLI sends it."""
        params: dict[str, str | list[str]] = {}
        if all:
            params["all"] = "1"
        if keep_storage:
            params["keep-storage"] = str(keep_storage)
        params["filters"] = filters_param(filters) if filters else ""
        return dict(self._json("POST", "/build/prune", params=params) or {})

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
        return bytes_then_close(reply)

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

    def build(self, context: Iterable[bytes], options: BuildOptions,
              registry_config: str = EMPTY_AUTH) -> Iterator[JSONObject]:
        """POST /build with the context archive as the body (``X-Registry-Config``: the
        credentials for the FROM images); the build's messages: ``stream`` text, ``aux``
        with the image ``ID``, ``errorDetail`` when it fails."""
        return self._messages("POST", "/build", params=options.params(), content=context,
                              headers={"Content-Type": "application/x-tar",
                                       "X-Registry-Config": registry_config})

    def commit(self, container: str, *, repo: str = "", tag: str = "", comment: str = "",
               author: str = "", changes: list[str] | None = None, pause: bool = True,
               config: Mapping[str, Any] | None = None) -> str:
        """POST /commit?container=&repo=&tag=&comment=&author=&pause=&changes=… with a
        Config to merge; the new image's ID."""
        params: dict[str, str | list[str]] = {
            "container": container, "repo": repo, "tag": tag, "comment": comment,
            "author": author, "pause": "1" if pause else "0"}
        if changes:
            params["changes"] = list(changes)
        reply = self._json("POST", "/commit", params=params, json=dict(config or {}))
        return str((reply or {}).get("Id", ""))

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

    def export_volume(self, name: str) -> Iterator[bytes]:
        """GET /volumes/{name}/export (wharf's own route, as libpod's); the tar of the
        volume's data as it arrives."""
        return bytes_then_close(self._stream("GET", f"/volumes/{name}/export"))

    def import_volume(self, name: str, tarball: Iterable[bytes]) -> None:
        """POST /volumes/{name}/import (wharf's own route, as libpod's) with a tar body (204).
        Streamed, so the daemon's extraction of a large archive has no read deadline."""
        self._stream("POST", f"/volumes/{name}/import", content=tarball,
                     headers={"Content-Type": "application/x-tar"}).close()

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

    def prune_networks(self, filters: Mapping[str, Iterable[str]] | None = None) -> JSONObject:
        """POST /networks/prune; ``{"NetworksDeleted"}``."""
        params: Params = {"filters": filters_param(filters)} if filters else {}
        return dict(self._json("POST", "/networks/prune", params=params) or {})

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
