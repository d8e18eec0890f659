"""The gateway's HTTP API (OpenAPI at ``/docs``).

Two families of routes, both behind bearer tokens:

- the cluster API: ``/v1/containers`` placed on a node the gateway chooses,
  ``/v1/placement``, ``/v1/commands/{id}``, ``/v1/images/pull`` (every node), ``/v1/events``
  (the routes that read the cluster view, ``/v1/nodes`` and ``GET /v1/containers``, are
  :mod:`wharf.gateway.viewapi`'s);
- per node, the Docker Engine API's own paths under ``/v1/nodes/{node}/…`` (containers create/
  run/start/stop/kill/restart/rm/inspect/list/logs, images pull/list/rm), so a Docker-shaped
  client only needs a path prefix and a token to reach any node.

A mutating call answers ``202`` with its command (``Id``, ``Status``; ``Location`` points at
``/v1/commands/{id}``) unless the request says ``?wait=true``, in which case it answers as the
daemon would have. Reads (inspect, list, logs, images) always wait. ``deadline=SECONDS``
(0.1 to 3600) overrides the default deadline, past which a waiting request answers 504; an
``Idempotency-Key`` header makes a retried request return the first request's command instead
of running again (keys are per token). A command is its token's: another token sees it only
if admin. Each route declares the answers it gives (:mod:`wharf.gateway.models`), so the
OpenAPI document is the contract.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.routing import APIRoute
from pydantic import Field

from wharf.dockerapi import STDERR, STDOUT, frame, parse_filters, qbool
from wharf.errors import NotFound
from wharf.gateway.call import COMMAND_PARAMETERS, Command, Dispatch, Who, read_call
from wharf.gateway.events import UNIX_TIME, EventHub, event_query
from wharf.gateway.events import filters_schema as events_filters
from wharf.gateway.models import (
    ACCEPTED,
    NODE,
    CommandDocument,
    CreateBody,
    Created,
    Placed,
    Placement,
    answers,
    filters_parameter,
    portable,
)
from wharf.gateway.placement import CONSTRAINT, parse_constraint
from wharf.gateway.policy import check_payload, may_see_command
from wharf.gateway.records import command_document
from wharf.gateway.streams import STREAM_NODE, forward
from wharf.protocol import (
    BROADCAST_NODE,
    COMMANDS,
    TARGET_PATTERN,
    ContainerPayload,
    CreatePayload,
    ImagesPayload,
    KillPayload,
    ListPayload,
    LogsPayload,
    PullPayload,
    RemoveImagePayload,
    RemovePayload,
    RunPayload,
    StopPayload,
)

LOG_POLL_SECONDS = 0.2  # a follower's pause when the node's log had nothing new
MAX_EVENT_ID = 2**63 - 1  # SQLite's largest integer: an event id is one

# A node's name, or * (every node: admin only); a placement constraint (Swarm's syntax).
NodeName = Annotated[str, Path(pattern=TARGET_PATTERN)]
Constraints = Annotated[list[Annotated[str, Field(pattern=portable(CONSTRAINT.pattern))]]
                        | None, Query()]
# Docker's filters: read as text (wharf.dockerapi.parse_filters), documented as JSON.
Filters = Annotated[str | None, Query(include_in_schema=False)]
UnixTime = Annotated[str | None, Query(pattern=f"^{UNIX_TIME.pattern}$")]
# What a route answers, beyond 401/403/413/429 (models.with_contract adds those everywhere).
_READ = answers(*NODE)
_MUTATE = {**ACCEPTED, **answers(*NODE, 409, 422)}
_STREAM = {"schema": {"type": "string", "format": "binary"}}

# Authentication and scopes are BearerAuth's, in front of the whole app (wharf.gateway.auth);
# the create policy is Call.mutate's (wharf.gateway.call).
cluster = APIRouter(prefix="/v1")
node_api = APIRouter(prefix="/v1/nodes/{node}")


# --- the cluster API ------------------------------------------------------------------------


@cluster.post("/containers", summary="Run a container on the node placement chooses",
              status_code=201, responses={201: {"model": Placed}, **_MUTATE})
async def place_and_run(call: Command, body: CreateBody, name: str | None = None,
                        constraint: Constraints = None) -> Response:
    payload = RunPayload(create=body.as_sent(), name=name or None)
    check_payload(call.grant, payload)  # before placement: refused whatever the nodes are
    node = call.dispatcher.choose([parse_constraint(c) for c in constraint or []])
    return await call.mutate(node, payload, ok_status=201,
                             shape=lambda r: {**r, "Node": node, "Warnings": []})


@cluster.get("/placement", summary="The node placement would choose now (for clients that "
             "then talk to that node's paths)", response_model=None,
             responses={200: {"model": Placement}, **answers(400, 503)})
async def placement(dispatcher: Dispatch, constraint: Constraints = None) -> dict[str, str]:
    return {"Node": dispatcher.choose([parse_constraint(c) for c in constraint or []])}


@cluster.get("/commands/{command_id}", summary="A command's state and result",
             response_model=None, responses={200: {"model": CommandDocument}, **answers(404)})
async def get_command(dispatcher: Dispatch, grant: Who, command_id: str) -> dict[str, Any]:
    row = dispatcher.records.command(command_id)
    if row is None or not may_see_command(grant, row.principal):  # another's: not there
        raise NotFound(f"no such command: {command_id}")
    return command_document(row, time.time())


@cluster.post("/images/pull", summary="Pull an image on every ready node (admin)",
              response_model=None, responses={
                  200: {"model": CommandDocument, "description": "with ?wait=true"},
                  **ACCEPTED, **answers(400, 422, 503)})
async def pull_everywhere(call: Command, image: str = Query(min_length=1)) -> Response:
    row = await call.dispatcher.submit(BROADCAST_NODE, PullPayload(image=image),
                                       principal=call.principal, deadline=call.deadline,
                                       idempotency_key=call.idempotency_key,
                                       request_hash=call.request_hash, watch=bool(call.wait))
    if call.wait:
        row = await call.dispatcher.wait(row.id)
    document = command_document(row, time.time())
    return JSONResponse(document, status_code=200 if call.wait else 202,
                        headers={"Location": f"/v1/commands/{row.id}"})


@cluster.get("/events", summary="Cluster events (NDJSON, or SSE with Accept: "
             "text/event-stream), replayed from ?since=<event id> (replay=false: only new "
             "ones), filtered as docker events (and by node), within since_time/until_time "
             "(unix seconds)", response_class=StreamingResponse,
             openapi_extra={"parameters": [events_filters()]}, responses={
                 200: {"content": {"application/x-ndjson": _STREAM,
                                   "text/event-stream": _STREAM}}, **answers(400)})
async def events(request: Request, since: Annotated[int, Query(ge=0, le=MAX_EVENT_ID)] = 0,
                 follow: bool = True, filters: Filters = None, replay: bool = True,
                 since_time: UnixTime = None, until_time: UnixTime = None
                 ) -> StreamingResponse:
    hub: EventHub = request.app.state.events
    query = event_query(since, follow, filters, since_time, until_time, replay)
    sse = "text/event-stream" in request.headers.get("accept", "")

    async def body() -> AsyncIterator[bytes]:
        async for event_id, stored in hub.stream(query):
            line = json.dumps({"id": event_id, **stored})
            yield (f"id: {event_id}\ndata: {line}\n\n" if sse else line + "\n").encode()

    return StreamingResponse(body(), media_type="text/event-stream" if sse
                             else "application/x-ndjson")


# --- one node, the Docker Engine API's paths ------------------------------------------------
# Each route's method and path come from the command table (wharf.protocol.COMMANDS), the one
# place a cluster command is declared; a route here only turns the request into its payload.


def _command(kind: str, **options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    spec = COMMANDS[kind]
    options.setdefault("responses", _MUTATE if spec.mutates else _READ)
    return node_api.api_route(spec.path, methods=[spec.method], **options)


_CREATED = {201: {"model": Created}, **_MUTATE}
_DONE = {**answers(304), **_MUTATE}  # start and stop: 304 when already so, as Docker


@_command("create", status_code=201, summary="docker create", responses=_CREATED)
async def create(call: Command, node: NodeName, body: CreateBody,
                 name: str | None = None) -> Response:
    return await call.mutate(node, CreatePayload(create=body.as_sent(), name=name or None),
                             ok_status=201, shape=lambda r: {"Id": r["Id"], "Warnings": []})


@_command("run", status_code=201, summary="docker run -d (pulls if needed)",
          responses=_CREATED)
async def run(call: Command, node: NodeName, body: CreateBody,
              name: str | None = None) -> Response:
    return await call.mutate(node, RunPayload(create=body.as_sent(), name=name or None),
                             ok_status=201, shape=lambda r: {"Id": r["Id"], "Warnings": []})


@_command("list", summary="docker ps (asks the node)",
          openapi_extra={"parameters": [filters_parameter(None)]})
async def node_containers(call: Command, node: NodeName, all: str | None = None,
                          filters: Filters = None) -> Any:
    return await call.read(node, ListPayload(all=qbool(all), filters=parse_filters(filters)))


@_command("inspect", summary="docker inspect")
async def inspect(call: Command, node: NodeName, container: str) -> Any:
    return await call.read(node, ContainerPayload(type="inspect", container=container))


@_command("start", status_code=204, responses=_DONE)
async def start(call: Command, node: NodeName, container: str) -> Response:
    return await call.mutate(node, ContainerPayload(type="start", container=container),
                             ok_status=204)


@_command("stop", status_code=204, responses=_DONE)
async def stop(call: Command, node: NodeName, container: str,
               t: Annotated[int | None, Query(ge=-1, le=3600)] = None) -> Response:
    return await call.mutate(node, StopPayload(type="stop", container=container, timeout=t),
                             ok_status=204)


@_command("restart", status_code=204)
async def restart(call: Command, node: NodeName, container: str,
                  t: Annotated[int | None, Query(ge=-1, le=3600)] = None) -> Response:
    return await call.mutate(node, StopPayload(type="restart", container=container,
                                               timeout=t), ok_status=204)


@_command("kill", status_code=204)
async def kill(call: Command, node: NodeName, container: str,
               signal: str = "KILL") -> Response:
    return await call.mutate(node, KillPayload(container=container, signal=signal),
                             ok_status=204)


@_command("rm", status_code=204)
async def remove(call: Command, node: NodeName, container: str,
                 force: str | None = None) -> Response:
    return await call.mutate(node, RemovePayload(container=container, force=qbool(force)),
                             ok_status=204)


@_command("logs", summary="docker logs (-f: relayed from the node's daemon when the gateway "
          "has the nodes' certificate, else followed by cursor)",
          response_class=StreamingResponse, responses={200: {"content": {
              "application/vnd.docker.multiplexed-stream": _STREAM,
              "application/vnd.docker.raw-stream": _STREAM}}, **_READ})
async def logs(request: Request, call: Command, node: NodeName, container: str,
               follow: str | None = None, stdout: str | None = None,
               stderr: str | None = None, timestamps: str | None = None,
               tail: Annotated[str, Query(pattern="^(all|[0-9]+)$")] = "all",
               since: float | None = None) -> Response:
    if qbool(follow) and request.app.state.links.context is not None and \
            STREAM_NODE.fullmatch(node):
        return await forward(request, node, f"/containers/{container}/logs", stream=True)
    document = await call.read(node, ContainerPayload(type="inspect", container=container))
    tty = bool((document.get("Config") or {}).get("Tty"))
    streams = {"stdout"} if qbool(stdout) else set()
    streams |= {"stderr"} if qbool(stderr) else set()
    streams = streams or {"stdout", "stderr"}
    with_times = qbool(timestamps)
    first = LogsPayload(container=container, since=since, timestamps=with_times,
                        tail=None if tail == "all" else int(tail))
    page = await call.read(node, first)  # before the stream: a bad request is still a 4xx

    async def body() -> AsyncIterator[bytes]:
        nonlocal page
        while True:
            for entry in page["Entries"]:
                if entry["stream"] in streams:
                    yield _log_frame(entry, tty, with_times)
            if not qbool(follow) or page["Done"]:
                return
            if not page["More"] and not page["Entries"]:
                await asyncio.sleep(LOG_POLL_SECONDS)
            page = await call.read(node, LogsPayload(
                container=container, since=since, timestamps=with_times,
                cursor=tuple(page["Cursor"])))

    media = "application/vnd.docker.raw-stream" if tty else \
        "application/vnd.docker.multiplexed-stream"
    return StreamingResponse(body(), media_type=media)


@_command("pull", summary="docker pull (waits unless ?wait=false)",
          responses={200: {"description": "the node's pull result"}, **_MUTATE})
async def pull(call: Command, node: NodeName, fromImage: str = Query(min_length=1),  # noqa: N803
               tag: str = "") -> Response:
    image = f"{fromImage}:{tag}" if tag and ":" not in fromImage.rsplit("/", 1)[-1] and \
        "@" not in fromImage else fromImage
    return await call.mutate(node, PullPayload(image=image), wait_default=True,
                             shape=lambda r: r)


@_command("images", summary="docker images")
async def images(call: Command, node: NodeName) -> Any:
    return await call.read(node, ImagesPayload())


@_command("rmi", summary="docker rmi")
async def remove_image(call: Command, node: NodeName, name: str,
                       force: str | None = None) -> Response:
    def docker_shape(result: dict[str, list[str]]) -> list[dict[str, str]]:
        return [{"Untagged": t} for t in result.get("untagged", [])] + \
            [{"Deleted": d} for d in result.get("deleted", [])]
    return await call.mutate(node, RemoveImagePayload(image=name, force=qbool(force)),
                             shape=docker_shape)


# --- helpers --------------------------------------------------------------------------------


def _log_frame(entry: dict[str, Any], tty: bool, timestamps: bool) -> bytes:
    data = str(entry["text"]).encode()
    if timestamps:
        data = f"{entry['time']} ".encode() + data
    if tty:
        return data
    return frame(STDERR if entry["stream"] == "stderr" else STDOUT, data)


for _route in [*cluster.routes, *node_api.routes]:  # document what read_call reads by hand
    if isinstance(_route, APIRoute) and \
            read_call in [d.call for d in _route.dependant.dependencies]:
        _extra = _route.openapi_extra or {}
        _route.openapi_extra = {**_extra, "parameters": [*_extra.get("parameters", []),
                                                         *COMMAND_PARAMETERS]}
