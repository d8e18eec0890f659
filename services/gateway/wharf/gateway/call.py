"""What the gateway's routes are given: the dispatcher, the token's grant, and for a command
route a :class:`Call` (who asks, the deadline, the Idempotency-Key and the request it is bound
to, whether to wait), which every mutating route goes through, with the create policy on its
way. The one map from an error kind to an HTTP answer is here too.
"""

from __future__ import annotations

import math
import re
import time
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.responses import JSONResponse

from wharf import protocol
from wharf.dockerapi import strict_bool
from wharf.errors import InvalidArgument, WharfError
from wharf.gateway.dispatch import Dispatcher, fingerprint
from wharf.gateway.policy import Grant, check_payload
from wharf.gateway.records import command_document, outcome
from wharf.gateway.settings import GatewaySettings
from wharf.protocol import Payload

MAX_DEADLINE = protocol.MAX_DEADLINE.total_seconds()
# A deadline shorter than this cannot be met (a round trip to a node takes longer): it is the
# client's mistake (400), not the cluster's unavailability.
MIN_DEADLINE = 0.1
MAX_KEY = 200
# An Idempotency-Key: 1 to MAX_KEY visible ASCII characters (what a header carries unchanged).
KEY_PATTERN = f"^[\\x21-\\x7e]{{1,{MAX_KEY}}}$"
_KEY = re.compile(KEY_PATTERN)


# Every dependency is ``async def``: FastAPI runs a plain ``def`` one (or a class) in its
# thread pool, a thread hop per dependency per request that cost more than the work they do.


async def _dispatcher(request: Request) -> Dispatcher:
    dispatcher: Dispatcher = request.app.state.dispatcher
    return dispatcher


Dispatch = Annotated[Dispatcher, Depends(_dispatcher)]


async def _grant(request: Request) -> Grant:
    grant: Grant = request.state.grant  # BearerAuth's
    return grant


Who = Annotated[Grant, Depends(_grant)]


class Call:
    """What every command route needs: the dispatcher, who asks, the deadline, the key (and
    the fingerprint of the request it is bound to), and whether the request waits for the
    result (``None``: not said, the route decides)."""

    def __init__(self, dispatcher: Dispatcher, grant: Grant, deadline: float,
                 idempotency_key: str | None, wait: bool | None = None,
                 request_hash: str | None = None) -> None:
        self.dispatcher, self.grant, self.principal = dispatcher, grant, grant.name
        self.deadline, self.idempotency_key, self.wait = deadline, idempotency_key, wait
        self.request_hash = request_hash

    async def read(self, node: str, payload: Payload) -> Any:
        return await self.dispatcher.call(node, payload, principal=self.principal,
                                          deadline=self.deadline)

    async def mutate(self, node: str, payload: Payload, *, wait_default: bool = False,
                     ok_status: int = 200, shape: Any = None) -> Response:
        """Submit a command (refused by the policy first if its token may not send it) and
        answer 202 with it, or with its result when the request waits."""
        check_payload(self.grant, payload)
        wait = wait_default if self.wait is None else self.wait
        row = await self.dispatcher.submit(node, payload, principal=self.principal,
                                           deadline=self.deadline,
                                           idempotency_key=self.idempotency_key,
                                           request_hash=self.request_hash, watch=wait)
        headers = {"X-Wharf-Command": row.id, "Location": f"/v1/commands/{row.id}"}
        if not wait:
            return JSONResponse(command_document(row, time.time()), status_code=202,
                                headers=headers)
        try:
            result = outcome(await self.dispatcher.wait(row.id), time.time())
        except WharfError as exc:  # the node's error, still naming the command
            response = error_response(exc)
            response.headers.update(headers)
            return response
        if ok_status == 204:
            return Response(status_code=204, headers=headers)
        body = shape(result) if shape is not None else result
        return JSONResponse(body, status_code=ok_status, headers=headers)


# The parameters every command route shares are read here by hand: FastAPI validates each
# declared parameter on every request, and for these three that cost more than the rest of
# the request (cProfile under bench/dispatch.py). COMMAND_PARAMETERS puts them in the
# OpenAPI document all the same.
COMMAND_PARAMETERS: list[dict[str, Any]] = [
    {"name": "wait", "in": "query", "required": False, "schema": {"type": "boolean"},
     "description": "answer with the result instead of 202 + the command (default false; "
                    "true for image pulls; reads always wait)"},
    {"name": "deadline", "in": "query", "required": False,
     "schema": {"type": "number", "minimum": MIN_DEADLINE, "maximum": MAX_DEADLINE},
     "description": f"seconds the command may wait to be executed (default 60; "
                    f"{MIN_DEADLINE:g} to {MAX_DEADLINE:g}, else 400); past it the request "
                    "answers 504"},
    {"name": "Idempotency-Key", "in": "header", "required": False,
     "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY,
                "pattern": KEY_PATTERN},
     "description": "a retried request with the same key returns the first one's command; "
                    "keys are per token, and one reused for a different request is a 422"},
]


async def read_call(request: Request) -> Call:
    state, query = request.app.state, request.query_params
    settings: GatewaySettings = state.settings
    deadline = settings.default_deadline
    if (text := query.get("deadline")) is not None:
        try:
            deadline = float(text)
        except ValueError:
            deadline = math.nan
        if not MIN_DEADLINE <= deadline <= MAX_DEADLINE:  # NaN too
            raise InvalidArgument(f"deadline: {text!r} is not a number of seconds from "
                                  f"{MIN_DEADLINE:g} to {MAX_DEADLINE:g}")
    wait = None
    if (text := query.get("wait")) is not None:
        wait = strict_bool("wait", text)
    key = request.headers.get("idempotency-key")
    request_hash = None
    if key is not None:
        if not _KEY.fullmatch(key):
            raise InvalidArgument(f"Idempotency-Key: 1 to {MAX_KEY} visible ASCII characters")
        # the body as sent (Starlette keeps it for the route's own Body parameter)
        request_hash = fingerprint(request.method, request.scope["path"],
                                   query.multi_items(), await request.body())
    return Call(state.dispatcher, request.state.grant, deadline, key, wait, request_hash)


Command = Annotated[Call, Depends(read_call)]


def error_response(exc: WharfError) -> Response:
    """Docker's error shape, with the kind's stable code (304 has no body)."""
    if exc.http_status == 304:
        return Response(status_code=304)
    return JSONResponse({"message": exc.message, "code": exc.code},
                        status_code=exc.http_status)
