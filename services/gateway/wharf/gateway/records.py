"""The gateway's own records: commands (with their idempotency keys and request fingerprints)
and each node's result, kept :data:`KEEP_COMMANDS_SECONDS` and pruned beyond
:data:`KEEP_COMMANDS`. :class:`Records` is what the dispatcher and the bus need of them; two
stores provide it: :class:`CommandRecords`, the part of :class:`~wharf.gateway.store.ClusterStore`
that keeps them in the gateway's own SQLite file (one connection, one lock: the embedded
default, for one gateway), and :class:`~wharf.gateway.pgrecords.PgRecords`, PostgreSQL shared
by several gateways (``--database-url``), which also shares node availability.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from wharf.errors import DeadlineExceeded, from_code
from wharf.gateway.placement import Availability
from wharf.protocol import CommandEnvelope, CommandResult

KEEP_COMMANDS_SECONDS = 7 * 24 * 3600
KEEP_COMMANDS = 100_000


@dataclass(frozen=True)
class CommandRow:
    id: str
    idempotency_key: str | None
    principal: str
    node: str
    type: str
    created_at: float
    deadline: float
    envelope: str
    expected: list[str]
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    request_hash: str | None = None  # the request's fingerprint (None: from before they were)

    @classmethod
    def recorded(cls, envelope: CommandEnvelope, document: str, expected: list[str],
                 idempotency_key: str | None, now: float,
                 request_hash: str | None) -> CommandRow:
        """The row a store has just recorded for ``envelope`` (its JSON ``document``)."""
        return cls(id=str(envelope.id), idempotency_key=idempotency_key,
                   principal=envelope.principal, node=envelope.node, type=envelope.type,
                   created_at=now, deadline=envelope.deadline.timestamp(), envelope=document,
                   expected=list(expected), request_hash=request_hash)

    def status(self, now: float) -> str:
        """pending until every expected node answered; then ok, error, expired or partial.
        After the deadline a node that never answered counts as ``unknown``: it may have been
        running the command when its connection dropped (its journal knows)."""
        states = [self.results[n]["Status"] if n in self.results else
                  ("pending" if now <= self.deadline else "unknown") for n in self.expected]
        if not states or "pending" in states:
            return "pending"
        if len(set(states)) == 1:
            return states[0]
        return "partial"


class Records(Protocol):
    """Commands and results, as the dispatcher and the bus use them. ``shared``: other gateways
    use the same records (then node availability is kept here too, for all of them)."""

    shared: bool

    def add_command(self, envelope: CommandEnvelope, expected: list[str],
                    idempotency_key: str | None, now: float,
                    request_hash: str | None = None) -> CommandRow: ...
    def forget_command(self, command_id: str) -> None: ...
    def command_by_key(self, principal: str, idempotency_key: str) -> CommandRow | None: ...
    def command(self, command_id: str) -> CommandRow | None: ...
    def record_result(self, result: CommandResult) -> dict[str, Any] | None: ...
    def record_expired(self, command_id: str, node: str) -> dict[str, Any] | None: ...
    def prune(self, now: float, keep_seconds: float = ..., keep: int = ...) -> int: ...
    def save_availability(self, name: str, availability: Availability, now: float) -> None: ...
    def availabilities(self) -> dict[str, Availability]: ...


class CommandRecords:
    """Commands and results in the gateway's SQLite file; the store supplies the connection
    and its lock. Not shared: node availability lives in the store's ``nodes`` table."""

    shared = False
    _db: sqlite3.Connection
    _lock: threading.Lock

    def save_availability(self, name: str, availability: Availability, now: float) -> None:
        """Nothing more to do: :meth:`ClusterStore.set_availability` stored it."""

    def availabilities(self) -> dict[str, Availability]:
        """Nothing set elsewhere: this gateway is the only one."""
        return {}

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._write() as db:
            yield db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A transaction; the caller holds the lock."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def add_command(self, envelope: CommandEnvelope, expected: list[str],
                    idempotency_key: str | None, now: float,
                    request_hash: str | None = None) -> CommandRow:
        """Record a command about to be published; with an ``idempotency_key`` the envelope's
        principal already used, that earlier command is returned instead (and nothing is
        recorded). One statement, so its own transaction: the UNIQUE (principal, key) decides
        a race between two requests."""
        document = envelope.model_dump_json()
        try:
            with self._lock:
                self._db.execute(
                    "INSERT INTO commands (id, idempotency_key, principal, node, type,"
                    " created_at, deadline, envelope, expected, request_hash)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (str(envelope.id), idempotency_key, envelope.principal, envelope.node,
                     envelope.type, now, envelope.deadline.timestamp(), document,
                     json.dumps(expected), request_hash))
        except sqlite3.IntegrityError:
            earlier = self.command_by_key(envelope.principal, idempotency_key) \
                if idempotency_key else None
            if earlier is None:
                raise
            return earlier
        return CommandRow.recorded(envelope, document, expected, idempotency_key, now,
                                   request_hash)

    def prune(self, now: float, keep_seconds: float = KEEP_COMMANDS_SECONDS,
              keep: int = KEEP_COMMANDS) -> int:
        """Forget commands (and their results) older than ``keep_seconds``, and beyond the
        newest ``keep`` the older ones whose deadline has passed (a pending command stays);
        the gateway's sweeper calls it now and then, so no request pays for it."""
        cutoff = now - keep_seconds
        with self.transaction() as db:
            gone = db.execute("DELETE FROM commands WHERE created_at < ?", (cutoff,)).rowcount
            gone += db.execute(
                "DELETE FROM commands WHERE id IN (SELECT id FROM commands ORDER BY created_at"
                " DESC LIMIT -1 OFFSET ?) AND deadline < ?", (keep, now)).rowcount
            db.execute("DELETE FROM command_results WHERE finished_at < ? OR command_id NOT IN"
                       " (SELECT id FROM commands)", (cutoff,))
            return int(gone)

    def forget_command(self, command_id: str) -> None:
        """Drop a command that could not be published (so its idempotency key is free)."""
        with self.transaction() as db:
            db.execute("DELETE FROM commands WHERE id=?", (command_id,))

    def command_by_key(self, principal: str, idempotency_key: str) -> CommandRow | None:
        """``principal``'s command made with ``idempotency_key`` (keys are per principal)."""
        with self._lock:
            row = self._db.execute("SELECT id FROM commands WHERE principal=? AND"
                                   " idempotency_key=?", (principal, idempotency_key)).fetchone()
            return self._command(self._db, row["id"]) if row is not None else None

    def command(self, command_id: str) -> CommandRow | None:
        with self._lock:
            return self._command(self._db, command_id)

    def record_result(self, result: CommandResult) -> dict[str, Any] | None:
        """Store a node's result and return it as ``GET /v1/commands`` words it; None when
        one was already there or the command is not in this store. The first one wins (a
        redelivery repeats it), except over ``expired`` inferred from a dead letter: what the
        daemon says it did is the truth."""
        document = result_document(result)
        with self._lock:  # one statement: its own transaction
            # Only for a command of this store: a read's late answer (reads live in memory
            # only) or a stranger's is not kept.
            cursor = self._db.execute(
                "INSERT INTO command_results (command_id, node, status, result, error,"
                " finished_at) SELECT ?,?,?,?,?,? WHERE EXISTS (SELECT 1 FROM commands"
                " WHERE id=?) ON CONFLICT (command_id, node) DO UPDATE"
                " SET status=excluded.status, result=excluded.result, error=excluded.error,"
                " finished_at=excluded.finished_at WHERE command_results.status='expired'",
                (str(result.command_id), result.node, document["Status"],
                 json.dumps(document["Result"]), json.dumps(document["Error"]),
                 document["FinishedAt"], str(result.command_id)))
            return document if cursor.rowcount > 0 else None

    def record_expired(self, command_id: str, node: str) -> dict[str, Any] | None:
        """A command the broker dead-lettered (its deadline passed in the queue)."""
        document = expired_document(time.time())
        with self._lock:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO command_results (command_id, node, status, result,"
                " error, finished_at) VALUES (?,?,'expired','null','null',?)",
                (command_id, node, document["FinishedAt"]))
            return document if cursor.rowcount > 0 else None

    def _command(self, db: sqlite3.Connection, command_id: str) -> CommandRow | None:
        row = db.execute("SELECT * FROM commands WHERE id=?", (command_id,)).fetchone()
        if row is None:
            return None
        results = {r["node"]: stored_result(r["status"], r["result"], r["error"],
                                            r["finished_at"])
                   for r in db.execute("SELECT * FROM command_results WHERE command_id=?",
                                       (command_id,))}
        return CommandRow(id=row["id"], idempotency_key=row["idempotency_key"],
                          principal=row["principal"], node=row["node"], type=row["type"],
                          created_at=row["created_at"], deadline=row["deadline"],
                          envelope=row["envelope"], expected=json.loads(row["expected"]),
                          results=results, request_hash=row["request_hash"])


def expired_document(now: float) -> dict[str, Any]:
    """The result the gateway words itself for a command that expired in a queue (its node
    never took it)."""
    return {"Status": "expired", "Result": None, "Error": None, "FinishedAt": now}


def stored_result(status: str, result: str, error: str, finished_at: float) -> dict[str, Any]:
    """A result as a store's row holds it (result and error as JSON), as ``GET /v1/commands``
    words it."""
    return {"Status": status, "Result": json.loads(result), "Error": json.loads(error),
            "FinishedAt": finished_at}


def result_document(result: CommandResult) -> dict[str, Any]:
    """A node's result as ``GET /v1/commands`` words it."""
    return {"Status": result.status.value, "Result": result.result,
            "Error": result.error.model_dump() if result.error else None,
            "FinishedAt": result.finished_at.timestamp()}


def outcome(row: CommandRow, now: float) -> Any:
    """A single-node command's result, or its error kind raised: the node's own, or
    DeadlineExceeded (504) when the deadline passed without an answer."""
    status = row.status(now)
    answer = row.results.get(row.expected[0]) if row.expected else None
    if status == "ok" and answer is not None:
        return answer["Result"]
    if status == "error" and answer is not None and answer["Error"]:
        raise from_code(answer["Error"]["code"], answer["Error"]["message"])
    if status == "expired":
        raise DeadlineExceeded(f"command {row.id} expired before node {row.node} took it "
                               "(it was not executed)")
    raise DeadlineExceeded(f"no answer from node {row.node} for command {row.id} within its "
                           f"deadline; GET /v1/commands/{row.id} shows its fate once known")


def command_document(row: CommandRow, now: float) -> dict[str, Any]:
    """``GET /v1/commands/{id}``."""
    single = row.results.get(row.expected[0]) if len(row.expected) == 1 else None
    return {
        "Id": row.id, "Type": row.type, "Node": row.node, "Principal": row.principal,
        "Status": row.status(now), "CreatedAt": row.created_at, "Deadline": row.deadline,
        "Result": single["Result"] if single else None,
        "Error": single["Error"] if single else None,
        "Nodes": {n: row.results.get(n, {"Status": "pending" if now <= row.deadline
                                          else "unknown"}) for n in row.expected},
    }

