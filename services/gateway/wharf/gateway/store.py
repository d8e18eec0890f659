"""The gateway's view of the cluster and its durable copy in SQLite: nodes, their containers
and images; and in SQLite alone the commands (:mod:`wharf.gateway.records`) and the cluster
event log.

The view is a cache of what the daemons report (the daemons hold the truth), kept in memory
(nodes by name, containers in a :class:`~wharf.gateway.view.ContainerIndex`) and loaded back
from SQLite at start: a snapshot is applied as a diff against the node's rows (only what
changed is written), events update them in between, and an event at or below the sequence
number the view already reflects is dropped as stale. A heartbeat changes memory only, unless
it brings a new node or new labels, version or address: ``last_seen`` and the load are written
for every node at once by :meth:`ClusterStore.flush` (the sweeper's, every
:data:`HEARTBEAT_FLUSH_SECONDS`) and at :meth:`ClusterStore.close`, so a crash loses at most
those seconds of them (the dispatcher's readiness is kept in memory anyway, and a node's next
heartbeat sets it again). Commands and their results, and each node's availability (an
operator's, not a daemon's), are the gateway's own records and survive its restart. One
connection guarded by a lock; WAL, so a reader never waits for the disk.

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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from wharf.gateway import schema, view
from wharf.gateway.placement import Availability
from wharf.gateway.records import (
    KEEP_COMMANDS,
    KEEP_COMMANDS_SECONDS,
    CommandRecords,
    CommandRow,
    result_document,
)
from wharf.gateway.view import ContainerIndex, Entry
from wharf.protocol import Heartbeat, NodeEvent, Snapshot

__all__ = ["KEEP_COMMANDS", "KEEP_COMMANDS_SECONDS", "ClusterStore", "CommandRow", "NodeRow",
           "result_document", "secure_files"]

KEEP_EVENTS = 10_000
DIR_MODE = 0o700  # the state dir: the gateway's alone
DB_MODE = 0o600  # gateway.db, -wal, -shm
HEARTBEAT_FLUSH_SECONDS = 5.0  # how stale a restart after a crash may find last_seen


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


class ClusterStore(CommandRecords):
    """The cluster view in memory (nodes, and every container in a
    :class:`~wharf.gateway.view.ContainerIndex`), SQLite its durable copy loaded back at
    start; commands, results and the event log in SQLite only. Every method is one
    transaction (or none: a heartbeat is kept in memory, written at most every
    :data:`HEARTBEAT_FLUSH_SECONDS` by :meth:`flush` and at :meth:`close`)."""

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
        self._nodes = {r["name"]: _node(r) for r in self._db.execute("SELECT * FROM nodes")}
        self._unsaved: set[str] = set()  # nodes whose last heartbeat is in memory only
        self._images: dict[str, bytes] = {}  # node → its last snapshot's images, digested
        self.view = ContainerIndex()
        for r in self._db.execute("SELECT node, id, data FROM containers"):
            self.view.put(view.entry(r["node"], json.loads(r["data"]), key=r["id"]))

    def close(self) -> None:
        self.flush()
        with self._lock:
            self._db.close()

    # --- what the daemons report --------------------------------------------------------------

    def heartbeat(self, beat: Heartbeat, now: float) -> bool:
        """Record a heartbeat; True when the node is new to this gateway. In memory (O(1)):
        only a new node, or labels, version or address that changed, are written now;
        ``last_seen`` and the load wait for :meth:`flush`."""
        load = beat.load.model_dump()
        with self._lock:
            old = self._nodes.get(beat.node)
            if old is None:
                self._nodes[beat.node] = NodeRow(
                    name=beat.node, engine_id="", labels=dict(beat.labels), load=load,
                    version=beat.version, first_seen=now, last_seen=now, seq=-1,
                    snapshot_at=0.0, address=beat.address)
                with self._write() as db:
                    db.execute("INSERT INTO nodes (name, labels, load, version, first_seen,"
                               " last_seen, address) VALUES (?,?,?,?,?,?,?)",
                               (beat.node, json.dumps(beat.labels), json.dumps(load),
                                beat.version, now, now, beat.address))
                return True
            durable = old.labels != beat.labels or old.version != beat.version or \
                old.address != beat.address
            row = self._nodes[beat.node] = replace(
                old, labels=dict(beat.labels), load=load, version=beat.version,
                last_seen=now, address=beat.address)
            if durable:
                with self._write() as db:
                    self._save_beats(db, [row])
            else:
                self._unsaved.add(beat.node)
            return False

    def flush(self) -> None:
        """Write the heartbeats kept in memory (``last_seen``, load) in one transaction."""
        with self._lock:
            if not self._unsaved:
                return
            rows = [self._nodes[name] for name in self._unsaved]
            with self._write() as db:
                self._save_beats(db, rows)

    def _save_beats(self, db: sqlite3.Connection, rows: list[NodeRow]) -> None:
        db.executemany("UPDATE nodes SET labels=?, load=?, version=?, last_seen=?, address=?"
                       " WHERE name=?", [(json.dumps(r.labels), json.dumps(r.load), r.version,
                                          r.last_seen, r.address, r.name) for r in rows])
        self._unsaved.difference_update(r.name for r in rows)

    def snapshot(self, snap: Snapshot, now: float) -> bool:
        """Bring the node's containers and images to the snapshot's; False when it is stale.
        Applied as a diff: only rows that changed are written."""
        with self._lock:
            old = self._nodes.get(snap.node)
            if old is not None and old.engine_id == snap.engine_id and old.seq > snap.seq:
                return False
            diff = self.view.diff(snap.node, snap.containers)
            images = view.digest_of(snap.images)
            with self._write() as db:
                if old is None:  # not ready (nor its address known) before its heartbeat
                    db.execute("INSERT INTO nodes (name, first_seen, last_seen) VALUES (?,?,?)",
                               (snap.node, now, 0.0))
                db.execute("UPDATE nodes SET engine_id=?, seq=?, labels=?, snapshot_at=?"
                           " WHERE name=?",
                           (snap.engine_id, snap.seq, json.dumps(snap.labels), now, snap.node))
                db.executemany("DELETE FROM containers WHERE node=? AND id=?",
                               [(snap.node, key) for key in diff.removed])
                db.executemany("INSERT OR REPLACE INTO containers (node, id, data)"
                               " VALUES (?,?,?)",
                               [(snap.node, e.id, view.stored(e)) for e in diff.upserts])
                if self._images.get(snap.node) != images:
                    db.execute("DELETE FROM images WHERE node=?", (snap.node,))
                    db.executemany("INSERT OR REPLACE INTO images (node, id, data)"
                                   " VALUES (?,?,?)",
                                   [(snap.node, i["Id"], json.dumps(i)) for i in snap.images])
            self._images[snap.node] = images
            self.view.apply(diff)
            self._nodes[snap.node] = replace(
                old or NodeRow(name=snap.node, engine_id="", labels={}, load={}, version="",
                               first_seen=now, last_seen=0.0, seq=-1, snapshot_at=0.0),
                engine_id=snap.engine_id, seq=snap.seq, labels=dict(snap.labels),
                snapshot_at=now)
            return True

    def node_event(self, event: NodeEvent) -> bool:
        """Apply a container event to the view; False (and nothing changes) when stale."""
        with self._lock:
            old = self._nodes.get(event.node)
            if old is None or old.engine_id != event.engine_id or event.seq <= old.seq:
                return False  # stale, or a node without a snapshot yet: its snapshot follows
            changed = view.entry(event.node, event.container, key=event.actor_id) \
                if event.type == "container" and event.container is not None else None
            with self._write() as db:
                db.execute("UPDATE nodes SET seq=? WHERE name=?", (event.seq, event.node))
                if changed is not None:
                    db.execute("INSERT OR REPLACE INTO containers (node, id, data)"
                               " VALUES (?,?,?)", (event.node, event.actor_id,
                                                   view.stored(changed)))
                elif event.type == "container":
                    db.execute("DELETE FROM containers WHERE node=? AND id=?",
                               (event.node, event.actor_id))
                self._append_event(db, event.time_nano, _event_document(event))
            self._nodes[event.node] = replace(old, seq=event.seq)
            if changed is not None:
                self.view.put(changed)
            elif event.type == "container":
                self.view.remove(event.node, event.actor_id)
            return True

    def set_availability(self, name: str, availability: Availability,
                         now: float) -> NodeRow | None:
        """Set a known node's availability (None: no such node); a change appends a node
        ``update`` event (Docker's ``availability.old``/``.new`` attributes) in the same
        transaction."""
        with self._lock:
            row = self._nodes.get(name)
            if row is None:
                return None
            if row.availability != availability:
                with self._write() as db:
                    db.execute("UPDATE nodes SET availability=? WHERE name=?",
                               (availability, name))
                    self._append_event(db, int(now * 1e9), {
                        "Type": "node", "Action": "update", "node": name, "Actor": {
                            "ID": name, "Attributes": {
                                "name": name, "availability.old": row.availability.value,
                                "availability.new": availability.value}},
                        "scope": "cluster", "time": int(now), "timeNano": int(now * 1e9)})
                row = self._nodes[name] = replace(row, availability=availability)
            return row

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
            return [self._nodes[name] for name in sorted(self._nodes)]

    def node(self, name: str) -> NodeRow | None:
        with self._lock:
            return self._nodes.get(name)

    def containers(self, node: str | None = None) -> list[tuple[str, dict[str, Any]]]:
        """The durable copy's rows (what a restart loads back), by node and id."""
        query, args = "SELECT node, data FROM containers", tuple[str, ...]()
        if node is not None:
            query, args = query + " WHERE node=?", (node,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY node, id", args).fetchall()
        return [(r["node"], json.loads(r["data"])) for r in rows]

    def select(self, terms: dict[str, list[str]], every: bool = False,
               after: tuple[str, str] | None = None,
               limit: int | None = None) -> tuple[list[Entry], bool]:
        """The view's rows that pass ``terms`` (:meth:`ContainerIndex.select`)."""
        with self._lock:
            return self.view.select(terms, every, after, limit)

    def counts(self, node: str) -> tuple[int, int]:
        """(containers, running) on ``node``."""
        with self._lock:
            return self.view.counts(node)

    def container_counts(self) -> dict[str, tuple[int, int]]:
        """node → (containers, running)."""
        with self._lock:
            return {name: self.view.counts(name) for name in self._nodes}

    def events(self, after_id: int, limit: int = 1000) -> list[tuple[int, dict[str, Any]]]:
        with self._lock:
            rows = self._db.execute("SELECT id, data FROM events WHERE id > ? ORDER BY id"
                                    " LIMIT ?", (after_id, limit)).fetchall()
        return [(int(r["id"]), json.loads(r["data"])) for r in rows]


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
