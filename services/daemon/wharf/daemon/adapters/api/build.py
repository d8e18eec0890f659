"""``POST /build`` (the classic builder's protocol) and ``POST /build/prune``.

Every query parameter is checked before the body is read; the context is received and the
Dockerfile parsed before the reply starts, so a bad tag, build arg, context or Dockerfile is an
HTTP 400 with dockerd's message. Then the reply is the builder's JSON message stream, ending
with an ``errorDetail`` when a step fails. BuildKit (``version=2``) and remote contexts are
refused with a message saying so; resource flags of the classic builder (cpu*, memory, shm,
ulimits, extrahosts, cachefrom, squash) are accepted and ignored, as docs/docker-api.md says.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from wharf.daemon.adapters.api.params import Filters
from wharf.daemon.adapters.api.streaming import StreamingReply, spool_body
from wharf.daemon.core import prunefilter
from wharf.daemon.core.build.prepare import BuildRequest, normalise_tags
from wharf.daemon.core.build.service import BuildService
from wharf.daemon.core.engine import Engine
from wharf.dockerapi import qbool
from wharf.errors import InvalidArgument, Unavailable
from wharf.models import AuthConfig, header_object

router = APIRouter()
_JSON_STREAM = "application/json"


def _builds(request: Request) -> BuildService:
    engine: Engine = request.app.state.engine
    if engine.builds is None:
        raise Unavailable("this daemon does not build images")
    return engine.builds


@router.post("/build")
async def build(
    request: Request, t: Annotated[list[str] | None, Query()] = None,
    dockerfile: str = "Dockerfile", buildargs: str = "", target: str = "",
    nocache: str | None = None, pull: str | None = None, labels: str = "",
    q: str | None = None, rm: str | None = None, forcerm: str | None = None,
    networkmode: str = "", remote: str = "", version: str = "1", platform: str = "",
) -> Response:
    builds = _builds(request)
    if version == "2":
        raise InvalidArgument("BuildKit is not supported by wharfd: use the classic builder "
                              "(DOCKER_BUILDKIT=0)")
    if remote:
        raise InvalidArgument("remote build contexts are not supported: send the context")
    if platform and platform.split("/", maxsplit=1)[0] != "linux":
        raise InvalidArgument(f"platform {platform} is not supported: wharf builds for linux")
    options = BuildRequest(
        tags=normalise_tags(t or []), dockerfile=dockerfile or "Dockerfile",
        build_args=_json_map(buildargs, "buildargs", values_may_be_null=True),
        target=target or None, no_cache=qbool(nocache), pull=qbool(pull),
        labels={k: v or "" for k, v in _json_map(labels, "labels").items()},
        quiet=qbool(q), remove=rm is None or qbool(rm), force_remove=qbool(forcerm),
        network_mode=_network_mode(networkmode),
        auth=_auth_lookup(request.headers.get("x-registry-config")))
    spooled = await spool_body(request, builds.images.tmp_dir, prefix="build-")
    try:
        prepared = await run_in_threadpool(builds.prepare, spooled, options)
    finally:
        spooled.unlink(missing_ok=True)
    return StreamingReply(_lines(builds.run(prepared)), media_type=_JSON_STREAM)


async def _lines(messages: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    async for message in messages:
        yield json.dumps(message, separators=(",", ":")).encode() + b"\n"


@router.post("/build/prune")
async def prune(request: Request, filters: Filters, all: str | None = None,
                keep_storage: Annotated[str | None, Query(alias="keep-storage")] = None
                ) -> dict[str, Any]:
    """Forget cached steps (those no kept image needs; every one with ``all``) and remove
    their images where nothing else needs them."""
    del keep_storage  # accepted as dockerd does for the classic cache: nothing to keep
    wanted = prunefilter.parse(filters)  # until, label, label! (steps carry no labels)
    result = await run_in_threadpool(
        lambda: _builds(request).prune(everything=qbool(all), wanted=wanted))
    return {"CachesDeleted": result.deleted or None, "SpaceReclaimed": result.space_reclaimed}


def _json_map(text: str, name: str, *, values_may_be_null: bool = False
              ) -> dict[str, str | None]:
    """A JSON object of strings (``buildargs`` may map to null: "use the environment's")."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InvalidArgument(f"{name} is not JSON: {exc}") from None
    if not isinstance(value, dict) or not all(
            isinstance(v, str) or (v is None and values_may_be_null) for v in value.values()):
        raise InvalidArgument(f"{name} must be a JSON object of strings")
    return {str(k): v for k, v in value.items()}


def _network_mode(mode: str) -> str:
    if mode.startswith("container:"):
        raise InvalidArgument("a build step cannot join another container's network")
    return "" if mode in ("", "default") else mode


def _auth_lookup(header: str | None) -> Any:
    """``X-Registry-Config``: base64 JSON of registry -> credentials, for pulls of bases."""
    configs: dict[str, AuthConfig] = {}
    if header:
        for registry, entry in header_object(header, "X-Registry-Config header").items():
            if not isinstance(entry, dict):
                raise InvalidArgument("X-Registry-Config entries must be JSON objects")
            encoded = AuthConfig.from_object(entry, "X-Registry-Config entry")
            host = str(registry).removeprefix("https://").removeprefix("http://")
            configs[host.split("/")[0]] = encoded

    def lookup(registry: str) -> AuthConfig | None:
        found = configs.get(registry)
        return None if found is None or found.empty else found
    return lookup
