"""The control plane's messages (gateway ⇄ RabbitMQ ⇄ daemons): pure pydantic, no pika.

Every command travels in a :class:`CommandEnvelope`: its ``id`` is the idempotency key (a daemon
journals it and answers a redelivery with the recorded result), ``deadline`` becomes the AMQP
``expiration`` so a command is never executed late, ``reply_to``/``correlation_id`` route the
:class:`CommandResult` back to the gateway that asked. Payloads are a closed set keyed by
``type``; ``schema_version`` lets a daemon refuse what it does not understand instead of
guessing. Topology names live in :mod:`wharf.topology`.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from wharf.errors import KINDS, InvalidArgument, WharfError, from_code

SCHEMA_VERSION = 1
DEFAULT_DEADLINE = timedelta(seconds=60)
MAX_DEADLINE = timedelta(hours=1)  # no command waits longer to be executed
_NODE = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$"
# A daemon's TCP address as a gateway dials it: HOST:PORT, HOST a name, an IPv4 address or a
# bracketed IPv6 address.
# Used with fullmatch (and anchored for pydantic's patterns).
ADDRESS = re.compile(r"(?:\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9][A-Za-z0-9.-]{0,252}):[0-9]{1,5}")
BROADCAST_NODE = "*"  # the ``node`` of a command published to every node
# a command's node: one node's name, or "*" for every node (also the gateway's path pattern)
TARGET_PATTERN = r"^(\*|[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62})$"


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- command payloads ---------------------------------------------------------------------


class RunPayload(_Message):
    """Create and start a container (``docker run -d``); ``create`` is the Docker create body."""

    type: Literal["run"] = "run"
    create: dict[str, Any]
    name: str | None = None
    pull: bool = True


class CreatePayload(_Message):
    type: Literal["create"] = "create"
    create: dict[str, Any]
    name: str | None = None


class ContainerPayload(_Message):
    """start, rm, inspect: one container by ID, name or unique ID prefix."""

    type: Literal["start", "inspect"]
    container: str = Field(min_length=1)


class StopPayload(_Message):
    type: Literal["stop", "restart"]
    container: str = Field(min_length=1)
    timeout: int | None = Field(default=None, ge=-1, le=3600)


class KillPayload(_Message):
    type: Literal["kill"] = "kill"
    container: str = Field(min_length=1)
    signal: str = "KILL"


class RemovePayload(_Message):
    type: Literal["rm"] = "rm"
    container: str = Field(min_length=1)
    force: bool = False


class ListPayload(_Message):
    type: Literal["list"] = "list"
    all: bool = False
    filters: dict[str, list[str]] = Field(default_factory=dict)


class LogsPayload(_Message):
    """A container's log entries. Without ``cursor``: the log as it is (``tail``, ``since``);
    with one (from the previous answer): only what was written since, so a follower asks again
    and again without reading the log twice. The answer: ``Entries``, the ``Cursor`` for the
    next ask, ``Running`` (sampled before the read) and ``Done`` (the container had stopped
    and nothing more is left: a follower stops)."""

    type: Literal["logs"] = "logs"
    container: str = Field(min_length=1)
    tail: int | None = Field(default=None, ge=0)
    since: float | None = None
    timestamps: bool = False
    cursor: tuple[int, int] | None = None

    @model_validator(mode="after")
    def _cursor(self) -> LogsPayload:
        if self.cursor is not None and not 0 <= self.cursor[0] <= self.cursor[1]:
            raise ValueError("cursor: (start, end) byte offsets with 0 <= start <= end")
        return self


class PullPayload(_Message):
    type: Literal["pull"] = "pull"
    image: str = Field(min_length=1)


class RemoveImagePayload(_Message):
    type: Literal["rmi"] = "rmi"
    image: str = Field(min_length=1)
    force: bool = False


class ImagesPayload(_Message):
    type: Literal["images"] = "images"


Payload = Annotated[
    RunPayload | CreatePayload | ContainerPayload | StopPayload | KillPayload | RemovePayload
    | ListPayload | LogsPayload | PullPayload | RemoveImagePayload | ImagesPayload,
    Field(discriminator="type"),
]


# --- the command table ----------------------------------------------------------------------


@dataclass(frozen=True)
class CommandSpec:
    """One cluster command, declared once: its name (the payload's and envelope's ``type``),
    its payload model, whether it changes the node (only those are journalled by the agent
    and recorded by the gateway), the Docker Engine API route the gateway serves it on under
    ``/v1/nodes/{node}`` (``{x}`` is one path segment, ``{x:path}`` the rest of the path),
    and the ``wharf`` verb that reaches it (None: the CLI does not relay that route). The
    agent runs it by its method ``_<name>``; a missing one fails the agent's start."""

    name: str
    payload: type[_Message]
    mutates: bool
    method: str
    path: str
    verb: str | None

    def route_pattern(self) -> re.Pattern[str]:
        """The path as a regular expression (for clients that relay by path)."""
        parts = ["[^/]+" if seg.startswith("{") and not seg.endswith(":path}") else
                 ".+" if seg.startswith("{") else re.escape(seg)
                 for seg in self.path.split("/")]
        return re.compile("^" + "/".join(parts) + r"\Z")


COMMANDS: dict[str, CommandSpec] = {spec.name: spec for spec in (
    CommandSpec("run", RunPayload, True, "POST", "/containers/run", None),
    CommandSpec("create", CreatePayload, True, "POST", "/containers/create", "create/run -d"),
    CommandSpec("start", ContainerPayload, True, "POST", "/containers/{container}/start",
                "start"),
    CommandSpec("stop", StopPayload, True, "POST", "/containers/{container}/stop", "stop"),
    CommandSpec("restart", StopPayload, True, "POST", "/containers/{container}/restart",
                "restart"),
    CommandSpec("kill", KillPayload, True, "POST", "/containers/{container}/kill", "kill"),
    CommandSpec("rm", RemovePayload, True, "DELETE", "/containers/{container}", "rm"),
    CommandSpec("inspect", ContainerPayload, False, "GET", "/containers/{container}/json",
                "inspect"),
    CommandSpec("list", ListPayload, False, "GET", "/containers/json", "ps"),
    CommandSpec("logs", LogsPayload, False, "GET", "/containers/{container}/logs",
                "logs (-f)"),
    CommandSpec("pull", PullPayload, True, "POST", "/images/create", "pull"),
    CommandSpec("images", ImagesPayload, False, "GET", "/images/json", "images"),
    CommandSpec("rmi", RemoveImagePayload, True, "DELETE", "/images/{name:path}", "rmi"),
)}
MUTATING = frozenset(t for t, spec in COMMANDS.items() if spec.mutates)


class CommandEnvelope(_Message):
    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: str
    schema_version: int = SCHEMA_VERSION
    node: str = Field(pattern=TARGET_PATTERN)
    deadline: datetime
    reply_to: str = ""
    correlation_id: str = ""
    principal: str = ""
    payload: Payload

    @model_validator(mode="after")
    def _consistent(self) -> CommandEnvelope:
        if self.payload.type != self.type:
            raise ValueError(f"envelope type {self.type!r} but payload type "
                             f"{self.payload.type!r}")
        if self.deadline.tzinfo is None:
            raise ValueError("deadline must carry a time zone")
        return self

    @classmethod
    def new(cls, node: str, payload: Payload, *, deadline: timedelta = DEFAULT_DEADLINE,
            now: datetime | None = None, **fields: Any) -> CommandEnvelope:
        start = now or datetime.now(UTC)
        return cls(type=payload.type, node=node, deadline=start + deadline, payload=payload,
                   **fields)

    def expiration_ms(self, now: datetime | None = None) -> int:
        """The AMQP ``expiration`` (ms) left before the deadline; 0 means already expired."""
        left = (self.deadline - (now or datetime.now(UTC))).total_seconds()
        return max(0, int(left * 1000))

    def expired(self, now: datetime | None = None) -> bool:
        return self.expiration_ms(now) == 0

    @property
    def mutating(self) -> bool:
        return self.type in MUTATING


def parse_command(body: bytes) -> CommandEnvelope:
    """Validate an AMQP message body; InvalidArgument (with what is wrong) otherwise."""
    try:
        envelope = CommandEnvelope.model_validate_json(body)
    except ValidationError as exc:
        raise InvalidArgument(f"invalid command: {_errors(exc)}") from exc
    if envelope.schema_version > SCHEMA_VERSION:
        raise InvalidArgument(f"command schema version {envelope.schema_version} is newer than "
                              f"this daemon understands ({SCHEMA_VERSION})")
    return envelope


# --- results, events, heartbeats, snapshots ---------------------------------------------------


class ResultStatus(StrEnum):
    OK = "ok"
    ERROR = "error"
    EXPIRED = "expired"


class ErrorInfo(_Message):
    code: str
    message: str

    @model_validator(mode="after")
    def _known(self) -> ErrorInfo:
        if self.code not in KINDS:
            raise ValueError(f"unknown error code {self.code!r}")
        return self

    def to_error(self) -> WharfError:
        return from_code(self.code, self.message)


class CommandResult(_Message):
    command_id: uuid.UUID
    node: str = Field(pattern=_NODE)
    status: ResultStatus
    result: Any = None
    error: ErrorInfo | None = None
    finished_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @model_validator(mode="after")
    def _error_iff_failed(self) -> CommandResult:
        if (self.status is ResultStatus.ERROR) != (self.error is not None):
            raise ValueError("an error result carries an error, and only it does")
        return self

    @classmethod
    def failure(cls, envelope: CommandEnvelope, node: str, error: WharfError) -> CommandResult:
        return cls(command_id=envelope.id, node=node, status=ResultStatus.ERROR,
                   error=ErrorInfo(code=error.code, message=error.message))


class NodeEvent(_Message):
    """A container or image event; ``seq`` grows per node so stale ones can be dropped.

    ``container`` is the container's list entry (Docker's ``/containers/json`` shape) after the
    event, when the container still exists, so a gateway can update its view without asking.
    """

    node: str = Field(pattern=_NODE)
    seq: int = Field(ge=0)
    type: str
    action: str
    actor_id: str
    attributes: dict[str, str] = Field(default_factory=dict)
    time_nano: int = Field(ge=0)
    engine_id: str = ""
    container: dict[str, Any] | None = None


class Load(_Message):
    containers: int = Field(ge=0)
    running: int = Field(ge=0)
    memory_total: int = Field(ge=0)
    memory_available: int = Field(ge=0)
    cpus: int = Field(ge=1)
    load1: float = Field(ge=0)


class Heartbeat(_Message):
    node: str = Field(pattern=_NODE)
    seq: int = Field(ge=0)
    sent_at: datetime
    labels: dict[str, str] = Field(default_factory=dict)
    load: Load
    version: str
    # HOST:PORT of the node's mutual-TLS Docker API, where the gateway relays interactive
    # streams (attach, exec); "" when the node has none.
    address: str = Field(default="", max_length=300, pattern=f"^(?:{ADDRESS.pattern})?$")


class Snapshot(_Message):
    """Everything a gateway needs to rebuild its view of one node.

    ``seq`` is the node's newest event sequence number when the snapshot was taken: events at
    or below it are already reflected. ``engine_id`` changes when the daemon's data root is new,
    which restarts the sequence.
    """

    node: str = Field(pattern=_NODE)
    seq: int = Field(ge=0)
    engine_id: str = ""
    taken_at: datetime
    labels: dict[str, str] = Field(default_factory=dict)
    containers: list[dict[str, Any]]
    images: list[dict[str, Any]]


def _errors(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()))
        parts.append(f"{where}: {error.get('msg')}" if where else str(error.get("msg")))
    return "; ".join(parts)
