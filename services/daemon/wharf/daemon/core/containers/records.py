"""Container records: what the daemon remembers of each container, and their persistence.

A record is one JSON document per container (pydantic model) plus the columns lookups need.
Writes are whole-record replacements inside one transaction, so a crash leaves the old record or
the new one.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, Field, model_validator

from wharf import dockerapi
from wharf.daemon.core.containers import options as opts
from wharf.daemon.core.containers.health import HealthConfig, HealthState
from wharf.daemon.core.containers.health import parse as parse_healthcheck
from wharf.daemon.core.containers.lifecycle import Status
from wharf.daemon.core.state import StateStore
from wharf.daemon.core.volumes.mountspec import MountPoint
from wharf.errors import Conflict, NotFound

ZERO_TIME = dockerapi.ZERO_TIME
_HEX = re.compile(r"[0-9a-f]+")  # fullmatch: "$" with re.match accepts a final newline


class ContainerState(BaseModel):
    status: Status = Status.CREATED
    pid: int = 0
    exit_code: int = 0
    oom_killed: bool = False
    error: str = ""
    started_at: str = ZERO_TIME
    finished_at: str = ZERO_TIME
    conmon_pid: int = 0
    restart_count: int = 0
    stopped_by_user: bool = False  # unless-stopped and always need to know who stopped it
    health: HealthState | None = None  # since its first start with a HEALTHCHECK


class ContainerRecord(BaseModel):
    """Everything needed to show, start and clean up a container, across daemon restarts."""

    id: str
    name: str
    image: str  # what the user asked for, e.g. "busybox"
    image_id: str
    created_at: str
    path: str
    args: list[str]
    config: dict[str, Any]  # Docker's Config (Cmd, Env, Tty, OpenStdin, Labels, ...)
    host_config: dict[str, Any]  # Docker's HostConfig as sent (inspect shows it)
    options: opts.ContainerOptions  # HostConfig and Config as parsed and checked at create
    healthcheck: HealthConfig | None = None  # Config.Healthcheck, merged and checked
    runtime: str = "crun"
    state: ContainerState = Field(default_factory=ContainerState)
    exec_ids: list[str] = Field(default_factory=list)
    mounts: list[MountPoint] = Field(default_factory=list)  # volumes, binds, --mount tmpfs
    # NetworkingConfig.EndpointsConfig as validated: {network ref: {"ip", "aliases"}}
    endpoints: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # Docker's NetworkSettings while the network is set up ({} after teardown)
    network: dict[str, Any] = Field(default_factory=dict)
    # The network a stopped container's own network was disconnected from (its mode is none
    # then): a connect makes the network it names its own again, as dockerd keeps the mode
    # (docker-compose disconnects and reconnects each network to set the aliases).
    detached_from: str = ""

    @model_validator(mode="before")
    @classmethod
    def _options_of_older_records(cls, data: Any) -> Any:
        """A record written before the options were typed has none: derive them from its
        HostConfig and Config (``options.from_record``), so it loads and starts as before."""
        if isinstance(data, dict) and data.get("options") is None:
            data = {**data, "options": opts.from_record(data.get("host_config") or {},
                                                        data.get("config") or {})}
        return data

    @model_validator(mode="before")
    @classmethod
    def _typed_healthcheck(cls, data: Any) -> Any:
        """The typed Healthcheck from the Config that ``config.merge_config`` made and checked
        (a record written before health checks has none in its Config either)."""
        if isinstance(data, dict) and "healthcheck" not in data:
            config = data.get("config") or {}
            data = {**data, "healthcheck": parse_healthcheck(config.get("Healthcheck"),
                                                            "Config.Healthcheck")}
        return data

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def auto_remove(self) -> bool:
        return self.options.auto_remove

    @property
    def restart_policy(self) -> opts.RestartOptions:
        return self.options.restart


class ContainerRecords:
    """Container records in the state store."""

    def __init__(self, state: StateStore) -> None:
        self.state = state

    def insert(self, record: ContainerRecord) -> None:
        with self.state.tx() as db:
            if db.execute("SELECT 1 FROM containers WHERE name = ?", (record.name,)).fetchone():
                other = db.execute("SELECT id FROM containers WHERE name = ?",
                                   (record.name,)).fetchone()[0]
                raise Conflict(
                    f'Conflict. The container name "/{record.name}" is already in use by '
                    f'container "{other}". You have to remove (or rename) that container to be '
                    "able to reuse that name."
                )
            db.execute(
                "INSERT INTO containers (id, name, image_id, created_at, record)"
                " VALUES (?,?,?,?,?)",
                (record.id, record.name, record.image_id, record.created_at,
                 record.model_dump_json()),
            )

    def save(self, record: ContainerRecord) -> None:
        with self.state.tx() as db:
            cursor = db.execute(
                "UPDATE containers SET name = ?, record = ? WHERE id = ?",
                (record.name, record.model_dump_json(), record.id),
            )
            if cursor.rowcount == 0:
                raise NotFound(f"No such container: {record.id}")

    def delete(self, container_id: str) -> None:
        with self.state.tx() as db:
            db.execute("DELETE FROM containers WHERE id = ?", (container_id,))

    def get(self, container_id: str) -> ContainerRecord:
        with self.state.tx() as db:
            row = db.execute("SELECT record FROM containers WHERE id = ?",
                             (container_id,)).fetchone()
        if row is None:
            raise NotFound(f"No such container: {container_id}")
        return ContainerRecord.model_validate_json(row[0])

    def all(self) -> list[ContainerRecord]:
        with self.state.tx() as db:
            rows = db.execute("SELECT record FROM containers ORDER BY created_at DESC").fetchall()
        return [ContainerRecord.model_validate_json(r[0]) for r in rows]

    def name_taken(self, name: str) -> bool:
        with self.state.tx() as db:
            return db.execute("SELECT 1 FROM containers WHERE name = ?",
                              (name,)).fetchone() is not None

    def using_image(self, image_id: str) -> list[str]:
        with self.state.tx() as db:
            rows = db.execute("SELECT id FROM containers WHERE image_id = ?",
                              (image_id,)).fetchall()
        return [str(r[0])[:12] for r in rows]

    def resolve(self, text: str) -> ContainerRecord:
        """By full ID, name (with or without '/'), or unique ID prefix — Docker's order."""
        key = text.lstrip("/")
        with self.state.tx() as db:
            row = db.execute("SELECT record FROM containers WHERE id = ?", (key,)).fetchone()
            if row is None:
                row = db.execute("SELECT record FROM containers WHERE name = ?", (key,)).fetchone()
            if row is None and key and _HEX.fullmatch(key):
                rows = db.execute(
                    "SELECT record FROM containers WHERE id >= ? AND id < ? LIMIT 2",
                    (key, key + "g"),
                ).fetchall()
                if len(rows) > 1:
                    raise Conflict(f"multiple IDs found with provided prefix: {text}")
                row = rows[0] if rows else None
        if row is None:
            raise NotFound(f"No such container: {text}")
        return ContainerRecord.model_validate_json(row[0])
