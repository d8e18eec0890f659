"""Published ports in the state store (``published_ports``): the truth the NAT rules follow."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from wharf.daemon.core.network.ports import PortBinding
from wharf.daemon.core.state import StateStore
from wharf.errors import Conflict


class PublishedPorts:
    """Which container holds which host port; one transaction per change."""

    def __init__(self, state: StateStore) -> None:
        self.state = state

    def all(self) -> list[PortBinding]:
        with self.state.tx() as db:
            rows = db.execute("SELECT * FROM published_ports ORDER BY rowid").fetchall()
        return [_binding(row) for row in rows]

    def of(self, container_id: str) -> list[PortBinding]:
        with self.state.tx() as db:
            rows = db.execute(
                "SELECT * FROM published_ports WHERE container_id = ? ORDER BY rowid",
                (container_id,),
            ).fetchall()
        return [_binding(row) for row in rows]

    def add(self, bindings: Sequence[PortBinding]) -> None:
        """Record bindings, all or none (Conflict if another container took one meanwhile)."""
        with self.state.tx() as db:
            for b in bindings:
                try:
                    db.execute(
                        "INSERT INTO published_ports (container_id, host_ip, host_port, proto,"
                        " container_ip, container_port, bridge) VALUES (?,?,?,?,?,?,?)",
                        (b.container_id, b.host_ip, b.host_port, b.proto, b.container_ip,
                         b.container_port, b.bridge),
                    )
                except sqlite3.IntegrityError:
                    raise Conflict(f"port {b.describe()} is already published") from None

    def remove(self, container_id: str) -> int:
        with self.state.tx() as db:
            return int(db.execute(
                "DELETE FROM published_ports WHERE container_id = ?", (container_id,)
            ).rowcount)


def _binding(row: sqlite3.Row) -> PortBinding:
    return PortBinding(
        container_id=row["container_id"], host_ip=row["host_ip"], host_port=row["host_port"],
        proto=row["proto"], container_ip=row["container_ip"],
        container_port=row["container_port"], bridge=row["bridge"],
    )
