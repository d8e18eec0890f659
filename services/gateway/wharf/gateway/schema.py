"""The gateway's SQLite schema, versioned: ``PRAGMA user_version`` is the version and
``MIGRATIONS[i]`` moves a database from version i to i + 1, in one transaction with its version
bump, so a crash leaves the old schema or the new one, never half of one.

Version 1 is the schema as it was before it had versions: every statement ``IF NOT EXISTS``, so
a database made then (version 0, its tables there) passes through it unchanged and its rows
keep working. A migration, once released, is never edited: a change is a new one at the end.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from wharf.errors import Internal

MIGRATIONS: list[str] = [
    # 1: nodes, their containers and images, commands and their results, the event log.
    """
CREATE TABLE IF NOT EXISTS nodes (
    name TEXT PRIMARY KEY,
    engine_id TEXT NOT NULL DEFAULT '',
    labels TEXT NOT NULL DEFAULT '{}',
    load TEXT NOT NULL DEFAULT '{}',
    version TEXT NOT NULL DEFAULT '',
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    seq INTEGER NOT NULL DEFAULT -1,
    snapshot_at REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS containers (
    node TEXT NOT NULL,
    id TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (node, id)
);
CREATE TABLE IF NOT EXISTS images (
    node TEXT NOT NULL,
    id TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (node, id)
);
CREATE TABLE IF NOT EXISTS commands (
    id TEXT PRIMARY KEY,
    idempotency_key TEXT UNIQUE,
    principal TEXT NOT NULL,
    node TEXT NOT NULL,
    type TEXT NOT NULL,
    created_at REAL NOT NULL,
    deadline REAL NOT NULL,
    envelope TEXT NOT NULL,
    expected TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS command_results (
    command_id TEXT NOT NULL,
    node TEXT NOT NULL,
    status TEXT NOT NULL,
    result TEXT,
    error TEXT,
    finished_at REAL NOT NULL,
    PRIMARY KEY (command_id, node)
);
CREATE INDEX IF NOT EXISTS commands_created_at ON commands (created_at);
CREATE INDEX IF NOT EXISTS command_results_finished_at ON command_results (finished_at);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time_nano INTEGER NOT NULL,
    data TEXT NOT NULL
);
""",
    # 2: commands belong to principals: an Idempotency-Key is unique per principal (two
    # principals may use one key), and a command keeps the fingerprint of the request that
    # made it (NULL for the commands recorded before: not compared). SQLite cannot drop the
    # column's UNIQUE, so the table is rebuilt and its rows copied.
    """
CREATE TABLE commands_v2 (
    id TEXT PRIMARY KEY,
    idempotency_key TEXT,
    principal TEXT NOT NULL,
    node TEXT NOT NULL,
    type TEXT NOT NULL,
    created_at REAL NOT NULL,
    deadline REAL NOT NULL,
    envelope TEXT NOT NULL,
    expected TEXT NOT NULL,
    request_hash TEXT,
    UNIQUE (principal, idempotency_key)
);
INSERT INTO commands_v2 (id, idempotency_key, principal, node, type, created_at, deadline,
                         envelope, expected)
    SELECT id, idempotency_key, principal, node, type, created_at, deadline, envelope, expected
    FROM commands;
DROP TABLE commands;
ALTER TABLE commands_v2 RENAME TO commands;
CREATE INDEX commands_created_at ON commands (created_at);
""",
    # 3: a node's availability (placement.Availability), set by an operator and kept across
    # restarts: every node known so far, and every node first heard of later, is active.
    """
ALTER TABLE nodes ADD COLUMN availability TEXT NOT NULL DEFAULT 'active'
    CHECK (availability IN ('active', 'pause', 'drain'));
""",
    # 4: where a node's daemon takes the gateway's relayed streams (its heartbeat's address).
    """
ALTER TABLE nodes ADD COLUMN address TEXT NOT NULL DEFAULT '';
""",
    # 5: container moves (wharf.gateway.moves): each move's journal, one row, its document
    # rewritten at every step, so a restarted gateway resumes it where it was.
    """
CREATE TABLE moves (
    id TEXT PRIMARY KEY,
    container TEXT NOT NULL,
    source TEXT NOT NULL,
    state TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX moves_state ON moves (state);
""",
]


def version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate(db: sqlite3.Connection, path: Path, target: int | None = None) -> None:
    """Apply the pending migrations of ``db`` (an autocommit connection) in order, each
    atomically with its version bump.

    Raises:
        Internal: the database is newer than this gateway knows.
    """
    goal = len(MIGRATIONS) if target is None else target
    current = version(db)
    if current > len(MIGRATIONS):
        raise Internal(f"{path} has schema version {current}, newer than this wharf-gateway "
                       f"knows ({len(MIGRATIONS)}); upgrade wharf-gateway")
    for index in range(current, goal):
        try:
            db.executescript(f"BEGIN IMMEDIATE;\n{MIGRATIONS[index]}\n"
                             f"PRAGMA user_version = {index + 1};\nCOMMIT;")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
