"""The state store: WAL, ordered migrations, atomic transactions."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from wharf.daemon.core import state as state_module
from wharf.daemon.core.state import MIGRATIONS, StateStore
from wharf.errors import Internal


def test_fresh_database_is_at_the_latest_version_in_wal_mode(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    store.open()
    assert store.version == len(MIGRATIONS)
    with store.tx() as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()


def test_migrations_apply_in_order_from_every_version(tmp_path: Path) -> None:
    for start in range(len(MIGRATIONS) + 1):
        store = StateStore(tmp_path / f"s{start}.db")
        store.open(migrate=False)
        store.migrate(target=start)
        assert store.version == start
        store.migrate()
        assert store.version == len(MIGRATIONS)
        store.close()


def test_reopening_keeps_data(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    store.open()
    with store.tx() as db:
        db.execute("INSERT INTO layers (chain_id, diff_id, parent, size) VALUES ('c','d',NULL,1)")
    store.close()
    again = StateStore(tmp_path / "state.db")
    again.open()
    with again.tx() as db:
        assert db.execute("SELECT diff_id FROM layers").fetchone()[0] == "d"
    again.close()


def test_a_failing_transaction_leaves_nothing(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    store.open()
    with pytest.raises(RuntimeError), store.tx() as db:
        db.execute("INSERT INTO layers (chain_id, diff_id, parent, size) VALUES ('c','d',NULL,1)")
        raise RuntimeError("boom")
    with store.tx() as db:
        assert db.execute("SELECT count(*) FROM layers").fetchone()[0] == 0
    store.close()


def test_a_failing_migration_keeps_the_old_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(state_module, "MIGRATIONS", [*MIGRATIONS, "CREATE TABLE x (a);\nBROKEN;"])
    store = StateStore(tmp_path / "state.db")
    with pytest.raises(sqlite3.OperationalError):
        store.open()
    assert store.version == len(MIGRATIONS)
    with store.tx() as db:
        assert db.execute("SELECT name FROM sqlite_master WHERE name='x'").fetchone() is None
    store.close()


def test_a_newer_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(Internal, match="newer than this wharfd"):
        StateStore(path).open()
