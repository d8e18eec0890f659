"""The gateway's state dir is 0700 and gateway.db, its WAL and SHM 0600, new or old (issue #12):
commands hold create bodies (Env secrets) and their results."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from wharf.gateway.store import DB_MODE, DIR_MODE, ClusterStore


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@contextmanager
def _umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def test_a_new_state_dir_and_database_have_no_access_but_the_gateway_s(tmp_path: Path) -> None:
    state = tmp_path / "var" / "wharf-gateway"
    with _umask(0):
        store = ClusterStore(state / "gateway.db")
    try:
        assert (DIR_MODE, DB_MODE) == (0o700, 0o600)
        assert _mode(state) == 0o700
        assert _mode(state / "gateway.db") == 0o600
        assert (state / "gateway.db-wal").exists()  # written by the migrations
        assert _mode(state / "gateway.db-wal") == 0o600
    finally:
        store.close()


def test_an_older_install_gets_its_modes_fixed_at_start(tmp_path: Path) -> None:
    # An install from before: the files as a umask of 022 left them, a WAL not yet checkpointed
    # (copied while a connection had it open, as after a crash) and a SHM file.
    made = tmp_path / "made"
    ClusterStore(made / "gateway.db").close()
    live = sqlite3.connect(made / "gateway.db")
    live.execute("PRAGMA journal_mode=WAL")
    live.execute("CREATE TABLE IF NOT EXISTS marker (x)")
    state = tmp_path / "state"
    state.mkdir()
    for suffix in ("", "-wal", "-shm"):
        if (made / f"gateway.db{suffix}").exists():
            shutil.copy(made / f"gateway.db{suffix}", state / f"gateway.db{suffix}")
    live.close()
    (state / "gateway.db-shm").touch()
    for path in (state, *state.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)

    store = ClusterStore(state / "gateway.db")
    try:
        assert _mode(state) == 0o700
        for suffix in ("", "-wal", "-shm"):
            assert _mode(state / f"gateway.db{suffix}") == 0o600, suffix
    finally:
        store.close()
