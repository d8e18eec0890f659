"""The records several gateways share, in PostgreSQL: commands with their idempotency keys and
request fingerprints, each node's result, each node's availability, and bearer tokens.

With ``--database-url`` every gateway of a cluster keeps these here instead of in its own
SQLite file, so a command accepted by one gateway is found, with its result, by any other; an
Idempotency-Key is unique per principal across all of them (one ``UNIQUE`` constraint decides
a race between two gateways); and ``wharf node update --availability`` on one is obeyed by the
others within :data:`~wharf.gateway.sweeper.AVAILABILITY_POLL_SECONDS`. The view (nodes,
containers, images, events) stays each gateway's own: every gateway consumes every node's
reports (:mod:`wharf.gateway.bus`).

The same interface as :class:`~wharf.gateway.records.CommandRecords` (the embedded SQLite
default), over a small psycopg 3 pool in autocommit: each method is one statement, or one
transaction where it says so, and PostgreSQL's row locks and constraints do what the SQLite
store's single lock did. A command's record waits for PostgreSQL's WAL flush: the dispatcher
makes that call (and the Idempotency-Key lookup before it) in a thread, so the gateway's loop
serves other requests meanwhile and concurrent commits share a flush; the other calls are
synchronous on the loop (one round trip on a local socket, ~0.1 ms). A database that cannot
be reached is :class:`~wharf.errors.Unavailable` (503), never a half-recorded command.

The schema is versioned like the SQLite one (:mod:`wharf.gateway.schema`): ``wharf_schema``
holds the version, and gateways starting together migrate under an advisory lock, one at a time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from wharf.errors import InvalidArgument, NotFound, Unavailable
from wharf.gateway.auth import TokenEntry
from wharf.gateway.placement import Availability
from wharf.gateway.policy import Scope
from wharf.gateway.records import (
    KEEP_COMMANDS,
    KEEP_COMMANDS_SECONDS,
    CommandRow,
    expired_document,
    result_document,
    stored_result,
)
from wharf.protocol import CommandEnvelope, CommandResult

# How long a call waits for a connection when the database is gone: most calls block the
# loop (as the SQLite store's do), so briefly; the pool reconnects in the background.
CONNECTION_WAIT = 1.0
_LOCK_KEY = 0x77686172  # "whar": the advisory lock the migrations take
MIGRATIONS: list[str] = [
    # 1: commands, their results, node availability
    """
CREATE TABLE commands (
    id TEXT PRIMARY KEY,
    idempotency_key TEXT,
    principal TEXT NOT NULL,
    node TEXT NOT NULL,
    type TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    deadline DOUBLE PRECISION NOT NULL,
    envelope TEXT NOT NULL,
    expected TEXT NOT NULL,
    request_hash TEXT,
    UNIQUE (principal, idempotency_key)
);
CREATE INDEX commands_created_at ON commands (created_at);
CREATE TABLE command_results (
    command_id TEXT NOT NULL REFERENCES commands (id) ON DELETE CASCADE,
    node TEXT NOT NULL,
    status TEXT NOT NULL,
    result TEXT NOT NULL,
    error TEXT NOT NULL,
    finished_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (command_id, node)
);
CREATE TABLE node_availability (
    name TEXT PRIMARY KEY,
    availability TEXT NOT NULL,
    changed_at DOUBLE PRECISION NOT NULL
);
""",
    # 2: bearer tokens (digests), as a tokens file's lines hold them
    """
CREATE TABLE tokens (
    name TEXT PRIMARY KEY,
    digest TEXT NOT NULL UNIQUE,
    scope TEXT NOT NULL,
    allow TEXT NOT NULL DEFAULT '',
    created_at DOUBLE PRECISION NOT NULL
);
""",
]


def check_url(url: str) -> str:
    """A ``postgresql://`` (or ``postgres://``) URL, or InvalidArgument saying what is wrong
    (without its password)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("postgresql", "postgres") or not rest:
        raise InvalidArgument("the database URL must be postgresql://USER:PASSWORD@HOST[:PORT]"
                              "/DATABASE (or postgresql:///DATABASE?host=/run/postgresql)")
    return url


class PgRecords:
    """Commands, results and availability in PostgreSQL (see the module's text)."""

    shared = True

    def __init__(self, url: str, *, max_connections: int = 4) -> None:
        import psycopg  # noqa: PLC0415 - only a gateway configured for PostgreSQL needs it
        from psycopg_pool import ConnectionPool  # noqa: PLC0415

        self._errors: tuple[type[Exception], ...] = (psycopg.OperationalError,
                                                     psycopg.InterfaceError)
        try:  # once by hand: the pool would retry until its timeout, hiding why
            psycopg.connect(check_url(url), connect_timeout=10).close()
        except psycopg.Error as exc:
            raise Unavailable(f"cannot reach the gateways' database: {_reason(exc)}") from None
        self._pool = ConnectionPool(url, min_size=1, max_size=max_connections,
                                    kwargs={"autocommit": True}, open=False,
                                    check=ConnectionPool.check_connection)
        # Results are written without waiting for the WAL flush (synchronous_commit off): a
        # result lost with a crash of the database is the node's to tell again (its journal
        # answers the command's id when it is re-asked); a command's own record, which holds
        # its Idempotency-Key, waits for the flush before the command is sent.
        self._results = ConnectionPool(url, min_size=1, max_size=2, open=False,
                                       kwargs={"autocommit": True,
                                               "options": "-c synchronous_commit=off"},
                                       check=ConnectionPool.check_connection)
        self._pool.open(wait=True, timeout=10)
        self._results.open(wait=True, timeout=10)
        self._migrate()

    def close(self) -> None:
        self._pool.close()
        self._results.close()

    @contextmanager
    def _conn(self, pool: Any = None) -> Iterator[Any]:
        try:
            with (pool or self._pool).connection(timeout=CONNECTION_WAIT) as conn:
                yield conn
        except self._errors as exc:
            raise Unavailable(f"the gateways' database: {_reason(exc)}") from None
        except Exception as exc:
            if type(exc).__name__ == "PoolTimeout":
                raise Unavailable(f"the gateways' database: {exc}") from None
            raise

    def _migrate(self) -> None:
        with self._conn() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            conn.execute("CREATE TABLE IF NOT EXISTS wharf_schema (version INTEGER NOT NULL)")
            row = conn.execute("SELECT version FROM wharf_schema").fetchone()
            version = row[0] if row else 0
            if row is None:
                conn.execute("INSERT INTO wharf_schema VALUES (0)")
            if version > len(MIGRATIONS):
                raise InvalidArgument(f"the gateways' database has schema version {version}, "
                                      f"newer than this gateway knows ({len(MIGRATIONS)})")
            for script in MIGRATIONS[version:]:
                conn.execute(script)
            conn.execute("UPDATE wharf_schema SET version=%s", (len(MIGRATIONS),))

    # --- commands --------------------------------------------------------------------------

    def add_command(self, envelope: CommandEnvelope, expected: list[str],
                    idempotency_key: str | None, now: float,
                    request_hash: str | None = None) -> CommandRow:
        """Record a command about to be published; with an ``idempotency_key`` its principal
        already used (on any gateway) that earlier command is returned instead."""
        document = envelope.model_dump_json()
        with self._conn() as conn:
            inserted = conn.execute(
                "INSERT INTO commands (id, idempotency_key, principal, node, type, created_at,"
                " deadline, envelope, expected, request_hash)"
                " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT DO NOTHING RETURNING id",
                (str(envelope.id), idempotency_key, envelope.principal, envelope.node,
                 envelope.type, now, envelope.deadline.timestamp(), document,
                 json.dumps(expected), request_hash)).fetchone()
        if inserted is None:
            earlier = self.command_by_key(envelope.principal, idempotency_key) \
                if idempotency_key else None
            if earlier is None:
                raise Unavailable(f"command {envelope.id} could not be recorded (an id "
                                  "conflict); send it again")
            return earlier
        return CommandRow.recorded(envelope, document, expected, idempotency_key, now,
                                   request_hash)

    def forget_command(self, command_id: str) -> None:
        with self._conn() as conn:
            conn.execute("DELETE FROM commands WHERE id=%s", (command_id,))

    def command_by_key(self, principal: str, idempotency_key: str) -> CommandRow | None:
        with self._conn() as conn:
            row = conn.execute("SELECT id FROM commands WHERE principal=%s AND"
                               " idempotency_key=%s", (principal, idempotency_key)).fetchone()
            return self._command(conn, row[0]) if row is not None else None

    def command(self, command_id: str) -> CommandRow | None:
        with self._conn() as conn:
            return self._command(conn, command_id)

    def record_result(self, result: CommandResult) -> dict[str, Any] | None:
        """Store a node's result; None when one was already there (first wins, except over an
        inferred ``expired``) or the command is not recorded."""
        document = result_document(result)
        with self._conn(self._results) as conn:
            done = conn.execute(
                "INSERT INTO command_results (command_id, node, status, result, error,"
                " finished_at) SELECT %s,%s,%s,%s,%s,%s WHERE EXISTS (SELECT 1 FROM commands"
                " WHERE id=%s) ON CONFLICT (command_id, node) DO UPDATE"
                " SET status=excluded.status, result=excluded.result, error=excluded.error,"
                " finished_at=excluded.finished_at WHERE command_results.status='expired'"
                " RETURNING 1",
                (str(result.command_id), result.node, document["Status"],
                 json.dumps(document["Result"]), json.dumps(document["Error"]),
                 document["FinishedAt"], str(result.command_id))).fetchone()
        return document if done is not None else None

    def record_expired(self, command_id: str, node: str) -> dict[str, Any] | None:
        document = expired_document(time.time())
        with self._conn(self._results) as conn:
            done = conn.execute(
                "INSERT INTO command_results (command_id, node, status, result, error,"
                " finished_at) SELECT %s,%s,'expired','null','null',%s WHERE EXISTS"
                " (SELECT 1 FROM commands WHERE id=%s) ON CONFLICT DO NOTHING RETURNING 1",
                (command_id, node, document["FinishedAt"], command_id)).fetchone()
        return document if done is not None else None

    def prune(self, now: float, keep_seconds: float = KEEP_COMMANDS_SECONDS,
              keep: int = KEEP_COMMANDS) -> int:
        """As :meth:`CommandRecords.prune`; results go with their command (ON DELETE
        CASCADE). Every gateway prunes now and then; they do not get in each other's way."""
        with self._conn() as conn, conn.transaction():
            gone = conn.execute("DELETE FROM commands WHERE created_at < %s",
                                (now - keep_seconds,)).rowcount
            gone += conn.execute(
                "DELETE FROM commands WHERE id IN (SELECT id FROM commands ORDER BY created_at"
                " DESC OFFSET %s) AND deadline < %s", (keep, now)).rowcount
            return int(gone)

    def _command(self, conn: Any, command_id: str) -> CommandRow | None:
        row = conn.execute("SELECT id, idempotency_key, principal, node, type, created_at,"
                           " deadline, envelope, expected, request_hash FROM commands"
                           " WHERE id=%s", (command_id,)).fetchone()
        if row is None:
            return None
        results = {node: stored_result(status, result, error, finished)
                   for node, status, result, error, finished in conn.execute(
                       "SELECT node, status, result, error, finished_at FROM command_results"
                       " WHERE command_id=%s", (command_id,))}
        return CommandRow(id=row[0], idempotency_key=row[1], principal=row[2], node=row[3],
                          type=row[4], created_at=row[5], deadline=row[6], envelope=row[7],
                          expected=json.loads(row[8]), results=results, request_hash=row[9])

    # --- node availability -----------------------------------------------------------------

    def save_availability(self, name: str, availability: Availability, now: float) -> None:
        with self._conn() as conn:
            conn.execute("INSERT INTO node_availability (name, availability, changed_at)"
                         " VALUES (%s,%s,%s) ON CONFLICT (name) DO UPDATE SET"
                         " availability=excluded.availability, changed_at=excluded.changed_at",
                         (name, availability.value, now))

    def availabilities(self) -> dict[str, Availability]:
        """Every node's availability as an operator last set it (on any gateway)."""
        with self._conn() as conn:
            return {name: Availability(value) for name, value in conn.execute(
                "SELECT name, availability FROM node_availability")}


    # --- bearer tokens ---------------------------------------------------------------------

    def token_entries(self) -> dict[str, TokenEntry]:
        """name → what its token grants, for every token in the database."""
        with self._conn() as conn:
            return {name: TokenEntry(digest, Scope(scope), frozenset(filter(None,
                                                                           allow.split(","))))
                    for name, digest, scope, allow in conn.execute(
                        "SELECT name, digest, scope, allow FROM tokens")}

    def save_token(self, name: str, entry: TokenEntry) -> None:
        """Add or replace ``name``'s token."""
        with self._conn() as conn:
            conn.execute("INSERT INTO tokens (name, digest, scope, allow, created_at)"
                         " VALUES (%s,%s,%s,%s,%s) ON CONFLICT (name) DO UPDATE SET"
                         " digest=excluded.digest, scope=excluded.scope, allow=excluded.allow,"
                         " created_at=excluded.created_at",
                         (name, entry.digest, entry.scope.value, ",".join(sorted(entry.allow)),
                          time.time()))

    def drop_token(self, name: str) -> None:
        with self._conn() as conn:
            if conn.execute("DELETE FROM tokens WHERE name=%s", (name,)).rowcount == 0:
                raise NotFound(f"no token named {name!r} in the gateways' database")


def _reason(exc: Exception) -> str:
    """A connection error's first line, which names host and cause but not the password."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
