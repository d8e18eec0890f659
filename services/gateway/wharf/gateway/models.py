"""The gateway's HTTP contract as models: what a request body must be, what an answer is, and
what every status code means, so the OpenAPI document (``/openapi.json``) says what the routes
do (``tests/integration/test_gateway_contract.py`` holds them to it with schemathesis).

- Docker's container create body (:class:`CreateBody`) is checked by the fields the gateway
  reads (``Image``, the ``HostConfig`` keys of the create policy) with the types wharfd
  accepts; every other field passes through as sent, as Docker allows.
- Every error answer is :class:`ErrorBody` (``{message, code}``, the code naming the
  :mod:`wharf.errors` kind); :data:`ANSWERS` says what each status means here and
  :func:`answers` documents a route's.
- :func:`with_contract` adds what FastAPI cannot infer: the bearer scheme and the answers
  every authenticated route may give (401, 403, 413, 429), whoever declared the route.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

from wharf.gateway.auth import OPEN_PATHS
from wharf.gateway.placement import Availability

# --- errors ------------------------------------------------------------------------------


class ErrorBody(BaseModel):
    """Every error answer (Docker's ``message``, and the stable code of its kind)."""

    message: str
    code: str


ANSWERS: dict[int, str] = {
    304: "The container is already in that state (no body).",
    400: "Invalid request: a parameter, the body, or a deadline outside 0.1 to 3600 s.",
    401: "No bearer token, or not a valid one.",
    403: "The token's scope, or the create policy, refuses the request.",
    404: "No such node, container, image or command.",
    409: "Conflict on the node (a name in use, a container running, …).",
    413: "Request body too large.",
    422: "Idempotency-Key reused for a different request.",
    429: "Rate limited: retry after Retry-After seconds.",
    500: "The node failed to carry out the command.",
    503: "The broker or the node is unavailable (node down, no node ready).",
    504: "The deadline passed without the node's answer.",
}
COMMON = (401, 403, 413, 429)  # any authenticated route (auth.BearerAuth, limits)
NODE = (400, 404, 500, 503, 504)  # a command to one node, waited for


def answers(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a route for these error statuses."""
    return {code: {"description": ANSWERS[code]} if code == 304 else
            {"description": ANSWERS[code], "model": ErrorBody} for code in codes}


# --- request bodies: Docker's create body ---------------------------------------------------


class _Open(BaseModel):
    """Fields as Docker names them, strictly typed (wharfd takes no "true" for true), and
    any other field kept as sent."""

    model_config = ConfigDict(extra="allow", strict=True)


class DriverSpec(_Open):
    Name: str | None = None
    Options: dict[str, str] | None = None


class VolumeSpec(_Open):
    DriverConfig: DriverSpec | None = None


class MountSpec(_Open):
    Type: str | None = None
    Source: str | None = None
    Target: str | None = None
    VolumeOptions: VolumeSpec | None = None


class HostSettings(_Open):
    """The ``HostConfig`` keys the create policy reads (``wharf.gateway.policy.RULES``)."""

    Privileged: bool | None = None
    Binds: list[str] | None = None
    Mounts: list[MountSpec] | None = None
    VolumesFrom: list[str] | None = None
    NetworkMode: str | None = None
    PidMode: str | None = None
    IpcMode: str | None = None
    UTSMode: str | None = None
    CgroupnsMode: str | None = None
    UsernsMode: str | None = None
    CapAdd: list[str] | None = None
    Devices: list[dict[str, Any]] | None = None
    DeviceCgroupRules: list[str] | None = None
    DeviceRequests: list[dict[str, Any]] | None = None
    SecurityOpt: list[str] | None = None


class CreateBody(_Open):
    """Docker's ``POST /containers/create`` body (``Image`` is required, as wharfd requires
    it); what the node receives is the body as sent (:meth:`as_sent`)."""

    Image: str = Field(min_length=1)
    HostConfig: HostSettings | None = None

    def as_sent(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


class NodeUpdate(BaseModel):
    """``POST /v1/nodes/{node}/update``: the node's availability (Swarm's: ``active``,
    ``pause`` keeps placement off it, ``drain`` also refuses containers created there)."""

    model_config = ConfigDict(extra="forbid")

    Availability: Availability


# --- query parameters ---------------------------------------------------------------------

# Python's \s (what the parsers behind these patterns use), spelled out: the regex engines on
# the way (pydantic's, JSON Schema's, a client's) each have their own (\x1c-\x1f, \ufeff).
_SPACE = r"\t-\r\x1c- \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"


def portable(pattern: str) -> str:
    """``pattern`` with ``\\s`` and ``\\S`` spelled as Python's ``re`` reads them, so that a
    value every engine checks (the OpenAPI document, pydantic, the Python parser) passes all
    of them or none."""
    return pattern.replace(r"\S", f"[^{_SPACE}]").replace(r"\s", f"[{_SPACE}]")


# A filter's values, in any of the forms wharf.dockerapi.parse_filters takes.
_FILTER_VALUES = {"anyOf": [{"type": "object"}, {"type": "array"}, {"type": "string"}]}
CLUSTER_FILTERS = ("node", "name", "id", "status", "label", "ancestor")
# GET /v1/containers' fields: Docker's list entry, the times and exit code wharfd adds for the
# gateway's Status, and the gateway's Node.
ContainerField = Literal["Id", "Names", "Image", "ImageID", "Command", "Created", "Ports",
                         "SizeRw", "SizeRootFs", "Labels", "State", "Status", "HostConfig",
                         "NetworkSettings", "Mounts", "StartedAt", "FinishedAt", "ExitCode",
                         "Node"]
MAX_LIMIT = 100_000  # rows of one GET /v1/containers page


def filters_parameter(keys: tuple[str, ...] | None) -> dict[str, Any]:
    """Docker's ``filters`` (a JSON object) as an OpenAPI parameter; ``keys``: the filters
    known (None: the node decides)."""
    schema: dict[str, Any] = {"type": "object", "additionalProperties": _FILTER_VALUES}
    if keys is not None:
        schema = {"type": "object", "properties": dict.fromkeys(keys, _FILTER_VALUES),
                  "additionalProperties": False}
    return {"name": "filters", "in": "query", "required": False,
            "content": {"application/json": {"schema": schema}},
            "description": 'Docker\'s filters: {"name": ["web"]} (or {"name": {"web": true}})'}


# --- answers --------------------------------------------------------------------------------


class NodeError(BaseModel):
    code: str
    message: str


class CommandDocument(BaseModel):
    """``GET /v1/commands/{id}``, and the ``202`` of a command not waited for."""

    Id: str
    Type: str
    Node: str
    Principal: str
    Status: Literal["pending", "ok", "error", "expired", "unknown", "partial"]
    CreatedAt: float
    Deadline: float
    Result: Any = None
    Error: NodeError | None = None
    Nodes: dict[str, dict[str, Any]]


class NodeDocument(BaseModel):
    Name: str
    Status: Literal["ready", "down"]
    Availability: Availability
    LastSeen: float
    LastSeenAgo: float
    Labels: dict[str, str]
    Load: dict[str, Any]
    Version: str
    Address: str
    EngineID: str
    Containers: int
    Running: int
    Seq: int


class Created(BaseModel):
    Id: str
    Warnings: list[str]


class Placed(Created):
    Name: str
    Node: str


class Placement(BaseModel):
    Node: str


_LOCATION = {"description": "/v1/commands/{id}", "schema": {"type": "string"}}
_COMMAND = {"description": "the command's id", "schema": {"type": "string"}}
ACCEPTED: dict[int | str, dict[str, Any]] = {202: {
    "description": "Accepted: the command, to follow at its Location (without ?wait=true).",
    "model": CommandDocument,
    "headers": {"Location": {**_LOCATION, "required": True}, "X-Wharf-Command": _COMMAND}}}


# --- the document ---------------------------------------------------------------------------

_REF_422 = "#/components/schemas/HTTPValidationError"


def with_contract(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """``app.openapi`` with the bearer scheme on every route but :data:`auth.OPEN_PATHS`, and
    there the answers of :data:`COMMON` (``Retry-After`` on 429); without FastAPI's own 422
    for a parameter it could not read, which this gateway answers 400 (:class:`ErrorBody`)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = generate()
        components = document.setdefault("components", {})
        components.setdefault("schemas", {})["ErrorBody"] = ErrorBody.model_json_schema()
        components["securitySchemes"] = {"bearer": {
            "type": "http", "scheme": "bearer",
            "description": "wharf-gateway token create NAME prints one"}}
        error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
        common: dict[str, Any] = {str(c): {"description": ANSWERS[c], "content": error}
                                  for c in COMMON}
        common["429"]["headers"] = {"Retry-After": {
            "description": "seconds to wait", "schema": {"type": "integer", "minimum": 1}}}
        for path, operations in document.get("paths", {}).items():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                if _REF_422 in str(responses.get("422", "")):  # FastAPI's: ours are 400
                    del responses["422"]
                if path not in OPEN_PATHS:
                    operation["security"] = [{"bearer": []}]
                    responses.update(common)
        for name in ("HTTPValidationError", "ValidationError"):
            components["schemas"].pop(name, None)
        return document

    return openapi
