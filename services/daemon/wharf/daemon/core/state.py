"""The daemon's metadata store: one SQLite database in WAL mode with ordered migrations.

Invariants:
- ``PRAGMA user_version`` is the schema version; ``MIGRATIONS[i]`` moves version i to i + 1.
- Each migration runs in one transaction with its version bump, so a crash leaves the old or the
  new schema, never half of one.
- One connection, guarded by a lock: callers use :meth:`StateStore.tx` for every read and write.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from wharf.errors import Internal

DB_MODE = 0o600  # state.db, -wal, -shm: root alone

MIGRATIONS: list[str] = [
    # 1: images, tags, layers and where blobs came from (for cross-repository mounts).
    """
    CREATE TABLE images (
        id            TEXT PRIMARY KEY,          -- sha256:<config digest>
        config        TEXT NOT NULL,             -- the image config JSON, as pulled
        manifest      TEXT,                      -- the manifest JSON pulled or generated
        manifest_digest TEXT,
        chain_ids     TEXT NOT NULL,             -- JSON list, bottom layer first
        size          INTEGER NOT NULL,          -- unpacked size of all layers
        created_at    TEXT NOT NULL,             -- when this daemon stored it (RFC 3339)
        last_tag_time TEXT
    );
    CREATE TABLE tags (
        name     TEXT PRIMARY KEY,               -- normalised: docker.io/library/busybox:latest
        image_id TEXT NOT NULL REFERENCES images(id)
    );
    CREATE INDEX tags_image ON tags(image_id);
    CREATE TABLE repo_digests (
        name     TEXT PRIMARY KEY,               -- normalised: docker.io/library/busybox@sha256:...
        image_id TEXT NOT NULL REFERENCES images(id)
    );
    CREATE INDEX repo_digests_image ON repo_digests(image_id);
    CREATE TABLE layers (
        chain_id    TEXT PRIMARY KEY,
        diff_id     TEXT NOT NULL,
        parent      TEXT,                        -- chain id of the layer below, NULL at the bottom
        size        INTEGER NOT NULL             -- bytes unpacked
    );
    CREATE TABLE blob_sources (
        digest     TEXT NOT NULL,
        registry   TEXT NOT NULL,
        repository TEXT NOT NULL,
        PRIMARY KEY (digest, registry, repository)
    );
    """,
    # 2: containers (the whole record as JSON; the columns are what lookups and uniqueness need).
    """
    CREATE TABLE containers (
        id         TEXT PRIMARY KEY,
        name       TEXT NOT NULL UNIQUE,
        image_id   TEXT NOT NULL,
        created_at TEXT NOT NULL,
        record     TEXT NOT NULL
    );
    CREATE INDEX containers_image ON containers(image_id);
    """,
    # 3: events, kept for replay (GET /events?since=...).
    """
    CREATE TABLE events (
        seq        INTEGER PRIMARY KEY AUTOINCREMENT,
        time_nano  INTEGER NOT NULL,
        type       TEXT NOT NULL,
        action     TEXT NOT NULL,
        actor_id   TEXT NOT NULL,
        attributes TEXT NOT NULL
    );
    CREATE INDEX events_time ON events(time_nano);
    """,
    # 4: the command journal of the control-plane agent (idempotency by command id).
    """
    CREATE TABLE command_journal (
        id          TEXT PRIMARY KEY,
        type        TEXT NOT NULL,
        received_at TEXT NOT NULL,
        finished_at TEXT,
        result      TEXT                          -- the CommandResult JSON once finished
    );
    """,
    # 5: volumes, and which containers use them (a use goes with its container's row).
    """
    CREATE TABLE volumes (
        name       TEXT PRIMARY KEY,
        driver     TEXT NOT NULL,
        created_at TEXT NOT NULL,
        labels     TEXT NOT NULL,                -- JSON object
        options    TEXT NOT NULL,                -- JSON object: the driver options
        anonymous  INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE volume_refs (
        volume       TEXT NOT NULL REFERENCES volumes(name),
        container_id TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
        PRIMARY KEY (volume, container_id)
    );
    CREATE INDEX volume_refs_container ON volume_refs(container_id);
    """,
    # 6: networks, their endpoint allocations (IPAM) and published ports. No foreign key to
    # containers: the network service releases a container's rows itself, after (possibly
    # deferred) kernel teardown, which still needs the veth names recorded here.
    """
    CREATE TABLE networks (
        id         TEXT PRIMARY KEY,
        name       TEXT NOT NULL UNIQUE,
        driver     TEXT NOT NULL,
        bridge     TEXT NOT NULL UNIQUE,         -- the host bridge interface
        subnet     TEXT NOT NULL,                -- 10.123.0.0/24
        gateway    TEXT NOT NULL,                -- 10.123.0.1
        internal   INTEGER NOT NULL DEFAULT 0,
        labels     TEXT NOT NULL,                -- JSON object
        options    TEXT NOT NULL,                -- JSON object
        created_at TEXT NOT NULL
    );
    CREATE TABLE endpoints (
        network_id   TEXT NOT NULL REFERENCES networks(id),
        container_id TEXT NOT NULL,
        name         TEXT NOT NULL,              -- the container's name, for DNS and inspect
        ip           TEXT NOT NULL,
        mac          TEXT NOT NULL,
        aliases      TEXT NOT NULL,              -- JSON list
        host_veth    TEXT NOT NULL UNIQUE,
        PRIMARY KEY (network_id, container_id),
        UNIQUE (network_id, ip)                  -- no address is ever handed out twice
    );
    CREATE INDEX endpoints_container ON endpoints(container_id);
    CREATE TABLE published_ports (
        container_id   TEXT NOT NULL,
        host_ip        TEXT NOT NULL,            -- 0.0.0.0 for every address
        host_port      INTEGER NOT NULL,
        proto          TEXT NOT NULL,            -- tcp | udp
        container_ip   TEXT NOT NULL,
        container_port INTEGER NOT NULL,
        bridge         TEXT NOT NULL,
        PRIMARY KEY (host_ip, host_port, proto)
    );
    CREATE INDEX published_ports_container ON published_ports(container_id);
    """,
    # 2: an image's parent (the image a build step or commit started from, as Docker's
    # classic builder records it) and the build cache: a step's key -> the image it made.
    """
    ALTER TABLE images ADD COLUMN parent TEXT;
    CREATE INDEX images_parent ON images(parent);
    CREATE TABLE build_cache (
        key        TEXT PRIMARY KEY,             -- sha256 of parent, step and its inputs
        image_id   TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        created_at TEXT NOT NULL,
        last_used  TEXT NOT NULL,
        uses       INTEGER NOT NULL DEFAULT 0    -- builds that took the step from the cache
    );
    CREATE INDEX build_cache_image ON build_cache(image_id);
    """,
]


class StateStore:
    """SQLite at ``path``; opened and migrated by :meth:`open`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None

    def open(self, *, migrate: bool = True) -> None:
        """Connect (creating the file) and, unless told otherwise, migrate to the latest schema.

        The database and its WAL and shared-memory files are 0600: they hold create bodies
        (Env secrets) and command results. A new file is made 0600 before SQLite opens it
        (SQLite gives the WAL and SHM the database's mode); existing ones are fixed here.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, DB_MODE))
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=5000")
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.chmod(f"{self.path}{suffix}", DB_MODE)
        self._conn = conn
        if migrate:
            self.migrate()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @property
    def version(self) -> int:
        with self.tx() as conn:
            return int(conn.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self, target: int | None = None) -> None:
        """Apply pending migrations in order, each atomically with its version bump."""
        goal = len(MIGRATIONS) if target is None else target
        current = self.version
        if current > len(MIGRATIONS):
            raise Internal(
                f"state database {self.path} has schema version {current}, newer than this "
                f"wharfd knows ({len(MIGRATIONS)}); upgrade wharfd"
            )
        for index in range(current, goal):
            with self.tx() as conn:
                for statement in _statements(MIGRATIONS[index]):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {index + 1}")

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One transaction: committed when the block ends, rolled back when it raises."""
        if self._conn is None:
            raise Internal("state store is not open")
        with self._lock:
            conn = self._conn
            if conn.in_transaction:  # nested use joins the outer transaction
                yield conn
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (sqlite3.complete_statement keeps quoting right)."""
    out: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            stripped = buffer.strip()
            if stripped:
                out.append(stripped)
            buffer = ""
    if buffer.strip():
        out.append(buffer.strip())
    return out
