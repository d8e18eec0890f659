"""The gateway's view of the cluster, in SQLite: nodes, their containers and images, commands,
and the cluster event log.

It is a cache of what the daemons report (the daemons hold the truth): a snapshot replaces a
node's rows, events update them in between, and an event at or below the sequence number the
view already reflects is dropped as stale. Commands and their results, and each node's
availability (an operator's, not a daemon's), are the gateway's own records and survive its
restart. One connection guarded by a lock (the AMQP consumer thread
writes, the HTTP handlers read); WAL, so a reader never waits for the disk.

Commands hold create bodies (``Env`` secrets) and results, so the database's directory (the
gateway's state dir) is 0700 and the database and its WAL and SHM files are 0600, whatever the
umask: a new database is made 0600 before SQLite opens it (SQLite gives the WAL and SHM the
database's mode), and an older install's modes are fixed at every start, as wharfd does for
its ``state.db``.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wharf.gateway import schema
from wharf.gateway.placement import Availability
from wharf.protocol import CommandEnvelope, CommandResult, Heartbeat, NodeEvent, Snapshot

KEEP_EVENTS = 10_000
KEEP_COMMANDS_SECONDS = 7 * 24 * 3600
KEEP_COMMANDS = 100_000
DIR_MODE = 0o700  # the state dir: the gateway's alone
DB_MODE = 0o600  # gateway.db, -wal, -shm


def secure_files(path: Path) -> None:
    """Create ``path``'s directory 0700 and ``path`` 0600 (if missing) and fix the modes of
    the directory, the database and its WAL and SHM files where they exist."""
    path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    os.chmod(path.parent, DIR_MODE)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, DB_MODE))
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(f"{path}{suffix}", DB_MODE)


@dataclass(frozen=True)
class NodeRow:
    name: str
    engine_id: str
    labels: dict[str, str]
    load: dict[str, Any]
    version: str
    first_seen: float
    last_seen: float
    seq: int
    snapshot_at: float
    availability: Availability = Availability.ACTIVE
    address: str = ""  # HOST:PORT of the node's mutual-TLS API ("" when it has none)

    def up(self, now: float, down_after: float) -> bool:
        return now - self.last_seen <= down_after


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


class ClusterStore:
    """SQLite behind a lock; every method is one transaction."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        secure_files(path)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        # One gateway process owns its database: an exclusive lock taken once spares two
        # fcntl(2) calls per transaction, and a second gateway on the same state dir fails
        # at its first write instead of sharing the file.
        self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        schema.migrate(self._db, path)
        secure_files(path)  # the WAL exists now (made with the database's mode)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # --- what the daemons report --------------------------------------------------------------

    def heartbeat(self, beat: Heartbeat, now: float) -> bool:
        """Record a heartbeat; True when the node is new to this gateway."""
        with self.transaction() as db:
            cur = db.execute(
                "UPDATE nodes SET labels=?, load=?, version=?, last_seen=?, address=?"
                " WHERE name=?", (json.dumps(beat.labels), beat.load.model_dump_json(),
                                  beat.version, now, beat.address, beat.node))
            if cur.rowcount:
                return False
            db.execute("INSERT INTO nodes (name, labels, load, version, first_seen, last_seen,"
                       " address) VALUES (?,?,?,?,?,?,?)",
                       (beat.node, json.dumps(beat.labels), beat.load.model_dump_json(),
                        beat.version, now, now, beat.address))
            return True

    def snapshot(self, snap: Snapshot, now: float) -> bool:
        """Replace the node's containers and images; False when the snapshot is stale."""
        with self.transaction() as db:
            row = db.execute("SELECT engine_id, seq FROM nodes WHERE name=?",
                             (snap.node,)).fetchone()
            if row is not None and row["engine_id"] == snap.engine_id and \
                    row["seq"] > snap.seq:
                return False
            if row is None:
                db.execute("INSERT INTO nodes (name, first_seen, last_seen) VALUES (?,?,?)",
                           (snap.node, now, now))
            db.execute("UPDATE nodes SET engine_id=?, seq=?, labels=?, snapshot_at=?"
                       " WHERE name=?",
                       (snap.engine_id, snap.seq, json.dumps(snap.labels), now, snap.node))
            db.execute("DELETE FROM containers WHERE node=?", (snap.node,))
            db.executemany("INSERT INTO containers (node, id, data) VALUES (?,?,?)",
                           [(snap.node, c["Id"], json.dumps(c)) for c in snap.containers])
            db.execute("DELETE FROM images WHERE node=?", (snap.node,))
            db.executemany("INSERT OR REPLACE INTO images (node, id, data) VALUES (?,?,?)",
                           [(snap.node, i["Id"], json.dumps(i)) for i in snap.images])
            return True

    def node_event(self, event: NodeEvent) -> bool:
        """Apply a container event to the view; False (and nothing changes) when stale."""
        with self.transaction() as db:
            row = db.execute("SELECT engine_id, seq FROM nodes WHERE name=?",
                             (event.node,)).fetchone()
            if row is not None and row["engine_id"] == event.engine_id and \
                    event.seq <= row["seq"]:
                return False
            if row is None or row["engine_id"] != event.engine_id:
                return False  # a node we have no snapshot of yet: its snapshot will follow
            db.execute("UPDATE nodes SET seq=? WHERE name=?", (event.seq, event.node))
            if event.type == "container":
                if event.container is None:
                    db.execute("DELETE FROM containers WHERE node=? AND id=?",
                               (event.node, event.actor_id))
                else:
                    db.execute("INSERT OR REPLACE INTO containers (node, id, data)"
                               " VALUES (?,?,?)",
                               (event.node, event.actor_id, json.dumps(event.container)))
            self._append_event(db, event.time_nano, _event_document(event))
            return True

    def set_availability(self, name: str, availability: Availability,
                         now: float) -> NodeRow | None:
        """Set a known node's availability (None: no such node); a change appends a node
        ``update`` event (Docker's ``availability.old``/``.new`` attributes) in the same
        transaction."""
        with self.transaction() as db:
            row = db.execute("SELECT * FROM nodes WHERE name=?", (name,)).fetchone()
            if row is None:
                return None
            if row["availability"] != availability:
                db.execute("UPDATE nodes SET availability=? WHERE name=?", (availability, name))
                self._append_event(db, int(now * 1e9), {
                    "Type": "node", "Action": "update", "node": name, "Actor": {
                        "ID": name, "Attributes": {
                            "name": name, "availability.old": row["availability"],
                            "availability.new": availability.value}},
                    "scope": "cluster", "time": int(now), "timeNano": int(now * 1e9)})
            updated = db.execute("SELECT * FROM nodes WHERE name=?", (name,)).fetchone()
            return _node(updated)

    def append_event(self, document: dict[str, Any]) -> int:
        with self.transaction() as db:
            return self._append_event(db, int(document["timeNano"]), document)

    def _append_event(self, db: sqlite3.Connection, time_nano: int,
                      document: dict[str, Any]) -> int:
        cursor = db.execute("INSERT INTO events (time_nano, data) VALUES (?, ?)",
                            (time_nano, json.dumps(document)))
        event_id = int(cursor.lastrowid or 0)
        if event_id % 1000 == 0:
            db.execute("DELETE FROM events WHERE id <= ?", (event_id - KEEP_EVENTS,))
        return event_id

    # --- reads -----------------------------------------------------------------------------

    def nodes(self) -> list[NodeRow]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM nodes ORDER BY name").fetchall()
        return [_node(r) for r in rows]

    def node(self, name: str) -> NodeRow | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM nodes WHERE name=?", (name,)).fetchone()
        return _node(row) if row is not None else None

    def containers(self, node: str | None = None) -> list[tuple[str, dict[str, Any]]]:
        query, args = "SELECT node, data FROM containers", tuple[str, ...]()
        if node is not None:
            query, args = query + " WHERE node=?", (node,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY node, id", args).fetchall()
        return [(r["node"], json.loads(r["data"])) for r in rows]

    def container_counts(self) -> dict[str, tuple[int, int]]:
        """node → (containers, running)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT node, COUNT(*) AS n, SUM(json_extract(data, '$.State') = 'running')"
                " AS running FROM containers GROUP BY node").fetchall()
        return {r["node"]: (int(r["n"]), int(r["running"] or 0)) for r in rows}

    def events(self, after_id: int, limit: int = 1000) -> list[tuple[int, dict[str, Any]]]:
        with self._lock:
            rows = self._db.execute("SELECT id, data FROM events WHERE id > ? ORDER BY id"
                                    " LIMIT ?", (after_id, limit)).fetchall()
        return [(int(r["id"]), json.loads(r["data"])) for r in rows]

    # --- commands ---------------------------------------------------------------------------

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
        return CommandRow(id=str(envelope.id), idempotency_key=idempotency_key,
                          principal=envelope.principal, node=envelope.node, type=envelope.type,
                          created_at=now, deadline=envelope.deadline.timestamp(),
                          envelope=document, expected=list(expected),
                          request_hash=request_hash)

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
        document = {"Status": "expired", "Result": None, "Error": None,
                    "FinishedAt": time.time()}
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
        results = {r["node"]: {"Status": r["status"], "Result": json.loads(r["result"]),
                               "Error": json.loads(r["error"]),
                               "FinishedAt": r["finished_at"]}
                   for r in db.execute("SELECT * FROM command_results WHERE command_id=?",
                                       (command_id,))}
        return CommandRow(id=row["id"], idempotency_key=row["idempotency_key"],
                          principal=row["principal"], node=row["node"], type=row["type"],
                          created_at=row["created_at"], deadline=row["deadline"],
                          envelope=row["envelope"], expected=json.loads(row["expected"]),
                          results=results, request_hash=row["request_hash"])


def result_document(result: CommandResult) -> dict[str, Any]:
    """A node's result as ``GET /v1/commands`` words it."""
    return {"Status": result.status.value, "Result": result.result,
            "Error": result.error.model_dump() if result.error else None,
            "FinishedAt": result.finished_at.timestamp()}


def _node(row: sqlite3.Row) -> NodeRow:
    return NodeRow(name=row["name"], engine_id=row["engine_id"],
                   labels=json.loads(row["labels"]), load=json.loads(row["load"]),
                   version=row["version"], first_seen=row["first_seen"],
                   last_seen=row["last_seen"], seq=row["seq"], snapshot_at=row["snapshot_at"],
                   availability=Availability(row["availability"]), address=row["address"])


def _event_document(event: NodeEvent) -> dict[str, Any]:
    """Docker's event shape, with the node it happened on."""
    return {"Type": event.type, "Action": event.action, "node": event.node,
            "Actor": {"ID": event.actor_id, "Attributes": event.attributes},
            "scope": "cluster", "time": event.time_nano // 1_000_000_000,
            "timeNano": event.time_nano}
