"""The routes of container moves (:mod:`wharf.gateway.moves`): start one, follow it, list them.

``POST /v1/nodes/{node}/containers/{container}/move?to=NODE|any`` answers ``202`` with the
move's document (``Location: /v1/moves/{id}``), or with ``?wait=true`` ``200`` once the move
ended (``State`` ``done``, ``rolled-back`` or ``failed``; ``Copy`` says where the container
is). What cannot move is refused first (``400``), as is ``live=true``, which the document
marks invalid (its only value is ``false``), so a client learns it from the schema too.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse

from wharf.errors import InvalidArgument, NotFound
from wharf.gateway.call import Who
from wharf.gateway.models import answers
from wharf.gateway.policy import check_create
from wharf.gateway.streams import STREAM_NODE

LIVE_REFUSED = ("live migration is not supported: it needs CRIU checkpoint/restore working on "
                "both nodes (`criu check` fails on these nodes' kernel), and wharf moves "
                "containers cold: stopped, carried with their writable layer and volumes, "
                "started again on the target")
MoveNode = Annotated[str, Path(pattern=f"^{STREAM_NODE.pattern}$")]
Target = Annotated[str, Query(pattern=f"^(?:any|{STREAM_NODE.pattern})$")]
_MOVE = {200: {"description": "the move, ended (wait=true)"},
         202: {"description": "the move, begun; follow it at its Location"},
         **answers(400, 404, 409, 503)}

moves = APIRouter(prefix="/v1")


@moves.post("/nodes/{node}/containers/{container}/move", responses=_MOVE,
            summary="Move a container to another node (cold: stop, carry, start)")
async def move(request: Request, grant: Who, node: MoveNode, container: str, to: Target,
               live: Annotated[bool, Query(json_schema_extra={"enum": [False]},
                                           description=LIVE_REFUSED)] = False,
               wait: bool = False,
               deadline: Annotated[float, Query(ge=1, le=3600)] = 600) -> JSONResponse:
    if live:
        raise InvalidArgument(LIVE_REFUSED)
    state = request.app.state
    state.dispatcher.require_ready(node)
    if to != "any":
        state.dispatcher.require_ready(to)
    begun = await state.mover.start(container, node, to, grant.name,
                                    lambda body: check_create(grant, body))
    location = {"Location": f"/v1/moves/{begun['Id']}"}
    if not wait:
        return JSONResponse(begun, status_code=202, headers=location)
    ended = await _ended(state.mover, begun["Id"], deadline)
    return JSONResponse(ended, status_code=200 if ended["State"] in ("done", "rolled-back",
                                                                     "failed") else 202,
                        headers=location)


async def _ended(mover: Any, move_id: str, deadline: float) -> dict[str, Any]:
    try:
        found: dict[str, Any] | None = await mover.wait(move_id, deadline)
    except TimeoutError:
        found = mover.store.move(move_id)
    if found is None:
        raise NotFound(f"no such move: {move_id}")
    return found


@moves.get("/moves", summary="Every move this cluster made or is making")
async def list_moves(request: Request) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = request.app.state.mover.store.moves()
    return found


@moves.get("/moves/{move_id}", summary="One move", responses=answers(400, 404))
async def get_move(request: Request,
                   move_id: Annotated[str, Path(pattern="^[0-9a-f]{16}$")]) -> dict[str, Any]:
    found: dict[str, Any] | None = request.app.state.mover.store.move(move_id)
    if found is None:
        raise NotFound(f"no such move: {move_id}")
    return found
