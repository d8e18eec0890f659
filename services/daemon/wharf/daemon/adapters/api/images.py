"""Image routes: list, inspect, history, pull/import, push, tag, remove, prune, save, load."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from wharf.daemon.adapters.api.params import Filters
from wharf.daemon.adapters.api.streaming import StreamingReply, spool_body
from wharf.daemon.adapters.views import images as shapes
from wharf.daemon.core.images.filters import ImageFilter
from wharf.daemon.core.images.service import ImageService
from wharf.dockerapi import qbool
from wharf.errors import InvalidArgument, WharfError
from wharf.models import AuthConfig

router = APIRouter()
log = logging.getLogger("wharf.api.images")


def _images(request: Request) -> ImageService:
    service: ImageService = request.app.state.engine.images
    return service


Images = Annotated[ImageService, Depends(_images)]
_JSON_STREAM = "application/json"


@router.get("/images/json")
async def list_images(images: Images, filters: Filters, all: str | None = None,
                      digests: str | None = None) -> list[dict[str, Any]]:
    del digests  # digests are always reported
    image_filter = ImageFilter.parse(filters) if filters else None
    records = images.list_images(image_filter, intermediate=qbool(all))
    return [shapes.image_summary(r) for r in records]


@router.post("/images/create")
async def create_image(
    request: Request, images: Images,
    fromImage: str = "", tag: str = "", platform: str = "",  # noqa: N803 - Docker's names
    fromSrc: str = "", repo: str = "", message: str = "",  # noqa: N803
    changes: Annotated[list[str] | None, Query()] = None,
) -> Response:
    """Pull ``fromImage`` (JSON progress stream), or import a rootfs tar with ``fromSrc=-``."""
    if fromSrc:
        if fromSrc != "-":
            raise InvalidArgument("importing from a URL is not supported; pipe the file instead")
        path = await spool_body(request, images.tmp_dir)
        try:
            image_id = await run_in_threadpool(
                images.import_rootfs, path, repo, tag, changes or [], message)
        finally:
            path.unlink(missing_ok=True)
        return _json_lines([{"status": image_id}])
    if not fromImage:
        raise InvalidArgument("fromImage or fromSrc is required")
    auth = AuthConfig.from_header(request.headers.get("x-registry-auth"))
    return await _stream(request, images.pull(fromImage, tag, auth, platform or None))


@router.get("/images/get")
async def save_images(images: Images, names: Annotated[list[str], Query()]) -> Response:
    for name in names:  # resolve every name first: a missing image is a 404, not a broken tar
        images.get(name)
    return StreamingReply(images.save(names), media_type="application/x-tar")


@router.post("/images/load")
async def load_images(request: Request, images: Images, quiet: str | None = None) -> Response:
    del quiet
    path = await spool_body(request, images.tmp_dir)
    try:
        lines = await run_in_threadpool(images.load, path)
    finally:
        path.unlink(missing_ok=True)
    return _json_lines([{"stream": line + "\n"} for line in lines])


@router.post("/images/prune")
async def prune_images(images: Images, filters: Filters) -> dict[str, Any]:
    dangling, image_filter = ImageFilter.for_prune(filters)
    report = await run_in_threadpool(images.prune, dangling, image_filter)
    deleted: list[dict[str, str]] = []
    for removal in report.deleted:
        deleted += [{"Untagged": shapes.familiar_tag(n)} for n in removal.untagged]
        deleted += [{"Deleted": i} for i in removal.deleted]
    return {"ImagesDeleted": deleted or None, "SpaceReclaimed": report.space_reclaimed}


@router.get("/images/{name:path}/json")
async def inspect_image(images: Images, name: str) -> dict[str, Any]:
    return shapes.image_inspect(images.get(name), images)


@router.get("/images/{name:path}/history")
async def image_history(images: Images, name: str) -> list[dict[str, Any]]:
    return shapes.image_history(images.get(name), images)


@router.get("/images/{name:path}/get")
async def save_image(images: Images, name: str) -> Response:
    images.get(name)
    return StreamingReply(images.save([name]), media_type="application/x-tar")


@router.post("/images/{name:path}/push")
async def push_image(request: Request, images: Images, name: str, tag: str = "") -> Response:
    auth = AuthConfig.from_header(request.headers.get("x-registry-auth"))
    return await _stream(request, images.push(name, tag, auth))


@router.post("/images/{name:path}/tag", status_code=201)
async def tag_image(images: Images, name: str, repo: str = "", tag: str = "") -> Response:
    images.tag(name, repo, tag)
    return Response(status_code=201)


@router.delete("/images/{name:path}")
async def remove_image(images: Images, name: str, force: str | None = None,
                       noprune: str | None = None) -> list[dict[str, str]]:
    removal = await run_in_threadpool(
        lambda: images.remove(name, force=qbool(force), prune=not qbool(noprune)))
    return ([{"Untagged": shapes.familiar_tag(n)} for n in removal.untagged]
            + [{"Deleted": i} for i in removal.deleted])


async def _stream(request: Request, messages: AsyncIterator[dict[str, Any]]) -> Response:
    """A JSON-message stream; errors before the first message are ordinary HTTP errors, any
    error after it is Docker's last ``errorDetail`` message (the client exits non-zero)."""
    try:
        first = await anext(messages)
    except StopAsyncIteration:
        return _json_lines([])

    async def body() -> AsyncIterator[bytes]:
        yield _line(first)
        try:
            async for message in messages:
                yield _line(message)
        except WharfError as exc:
            yield _error_line(exc.message)
        except Exception as exc:  # a bug: logged in full, the client gets its text
            log.exception("%s %s failed after its first message; the client gets an "
                          "errorDetail", request.method, request.url.path)
            yield _error_line(f"internal error: {exc}")

    return StreamingReply(body(), media_type=_JSON_STREAM)


def _error_line(message: str) -> bytes:
    return _line({"errorDetail": {"message": message}, "error": message})


def _line(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def _json_lines(messages: list[dict[str, Any]]) -> Response:
    return Response(b"".join(_line(m) for m in messages), media_type=_JSON_STREAM)
