"""The routes of a node's interactive sessions, relayed to its wharfd (:mod:`wharf.gateway.relay`)
rather than sent as commands: exec create and inspect, resize, wait, a container's stats (one
sample, or one a second while it runs), and attach or exec start when the client does not
hijack (``Detach``, or a plain stream). ``attach`` and ``exec start``
with ``Upgrade: tcp`` never reach these routes: the hijacking protocol takes them first
(:class:`~wharf.gateway.relay.StreamRelay`), behind the same token, scope and rate checks.

The node's answer streams back as it comes; its errors come back in the gateway's shape
(``{message, code}``), its successes as the node sent them.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from wharf.dockerapi import qbool
from wharf.errors import PermissionDenied, from_http_status
from wharf.gateway.call import Who
from wharf.gateway.models import NODE, answers
from wharf.gateway.policy import Scope
from wharf.gateway.relay import node_target

# A plain node name: a stream goes to one node (no pattern).
STREAM_NODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")  # fullmatch
StreamNode = Annotated[str, Path(pattern=f"^{STREAM_NODE.pattern}$")]
Size = Annotated[int, Query(ge=0, le=65535)]
_FLAG = "^(0|1|true|false|True|False)$"
DockerFlag = Annotated[str | None, Query(pattern=_FLAG)]
OneShot = Annotated[str | None, Query(alias="one-shot", pattern=_FLAG)]
_STREAM = {"schema": {"type": "string", "format": "binary"}}
_STREAMED: dict[int | str, dict[str, Any]] = {200: {
    "description": "the node's stream, as it sends it", "content": {
        "application/vnd.docker.multiplexed-stream": _STREAM,
        "application/vnd.docker.raw-stream": _STREAM}}}
_ANSWERS = answers(*NODE, 409)
MAX_ANSWER = 1 << 20  # an error body or a JSON answer larger than this is not the node's

node_streams = APIRouter(prefix="/v1/nodes/{node}")


class ExecBody(BaseModel):
    """Docker's exec create body, by the fields the gateway reads; the rest passes as sent."""

    model_config = ConfigDict(extra="allow", strict=True)
    Cmd: list[str] = Field(min_length=1)
    Privileged: bool | None = None


async def forward(request: Request, node: str, rest: str, body: bytes = b"",
                  stream: bool = False) -> Response:
    """Send the request to the node's daemon and answer with what it answers."""
    state = request.app.state
    address = state.dispatcher.stream_address(node)
    query = [(k, v) for k, v in request.query_params.multi_items()]
    reply = await state.links.open(address, node, request.method, node_target(rest, query),
                                   body=body)
    content_type = reply.header("content-type", "application/json")
    if reply.status >= 400 or not stream:
        try:
            data = await reply.read_all(MAX_ANSWER)
        finally:
            reply.close()
        if reply.status >= 400:
            raise from_http_status(reply.status, _message(data, reply.status))
        return Response(data, status_code=reply.status, media_type=content_type)

    async def relayed() -> AsyncIterator[bytes]:
        try:
            async for part in reply.body():
                yield part
        finally:
            reply.close()

    return StreamingResponse(relayed(), status_code=reply.status, media_type=content_type)


def _message(data: bytes, status: int) -> str:
    try:
        message = json.loads(data).get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message or data.decode(errors="replace")[:500] or f"node answered {status}")


@node_streams.post("/containers/{container}/exec", status_code=201,
                   summary="docker exec: create an exec (relayed to the node's daemon)",
                   responses={201: {"description": "{Id}"}, **_ANSWERS})
async def exec_create(request: Request, grant: Who, node: StreamNode, container: str,
                      body: ExecBody) -> Response:
    if body.Privileged and grant.scope is not Scope.ADMIN and "privileged" not in grant.allow:
        raise PermissionDenied("policy: exec --privileged needs an admin token (or an operate "
                               "token created with --allow privileged)")
    payload = json.dumps(body.model_dump(exclude_unset=True)).encode()
    return await forward(request, node, f"/containers/{container}/exec", payload)


@node_streams.post("/exec/{exec_id}/start", summary="Start an exec: hijacked (Upgrade: tcp) "
                   "for its streams, or detached", responses={**_STREAMED, **_ANSWERS})
async def exec_start(request: Request, node: StreamNode, exec_id: str,
                     body: dict[str, Any]) -> Response:
    return await forward(request, node, f"/exec/{exec_id}/start", json.dumps(body).encode(),
                         stream=True)


@node_streams.get("/exec/{exec_id}/json", summary="docker exec inspect (relayed)",
                  responses=_ANSWERS)
async def exec_inspect(request: Request, node: StreamNode, exec_id: str) -> Response:
    return await forward(request, node, f"/exec/{exec_id}/json")


@node_streams.post("/exec/{exec_id}/resize", summary="Resize an exec's terminal (relayed)",
                   responses=_ANSWERS)
async def exec_resize(request: Request, node: StreamNode, exec_id: str, h: Size = 0,
                      w: Size = 0) -> Response:
    return await forward(request, node, f"/exec/{exec_id}/resize")


@node_streams.post("/containers/{container}/resize",
                   summary="Resize a container's terminal (relayed)", responses=_ANSWERS)
async def container_resize(request: Request, node: StreamNode, container: str, h: Size = 0,
                           w: Size = 0) -> Response:
    return await forward(request, node, f"/containers/{container}/resize")


@node_streams.post("/containers/{container}/wait",
                   summary="docker wait: answers when the container stops (relayed)",
                   responses=_ANSWERS)
async def wait(request: Request, node: StreamNode, container: str,
               condition: Annotated[str, Query(pattern="^(not-running|next-exit|removed)$")]
               = "not-running") -> Response:
    return await forward(request, node, f"/containers/{container}/wait", stream=True)


@node_streams.post("/containers/{container}/attach",
                   summary="docker attach: hijacked (Upgrade: tcp), or a plain output stream",
                   responses={**_STREAMED, **_ANSWERS})
async def attach(request: Request, node: StreamNode, container: str) -> Response:
    return await forward(request, node, f"/containers/{container}/attach", stream=True)


@node_streams.get("/containers/{container}/stats",
                  summary="docker stats: one sample (stream=0), or one a second while the "
                  "container runs (relayed)", responses={200: {
                      "description": "the node's stats: one JSON document, or one a line",
                      "content": {"application/json": {"schema": {"type": "object"}}}},
                      **_ANSWERS})
async def stats(request: Request, node: StreamNode, container: str, stream: DockerFlag = None,
                one_shot: OneShot = None) -> Response:
    return await forward(request, node, f"/containers/{container}/stats",
                         stream=stream is None or qbool(stream))
