"""The agent's command journal: each command id is executed at most once.

A command is recorded when it is received and its result when it finishes, each in its own
transaction; a redelivery of a finished command gets the recorded result, and one that was
received but never finished (the daemon died mid-way) is reported as such, not run again.
"""

from __future__ import annotations

from datetime import UTC, datetime

from wharf.daemon.core.state import StateStore
from wharf.protocol import CommandEnvelope, CommandResult


def _now() -> str:
    return datetime.now(UTC).isoformat()


class CommandJournal:
    def __init__(self, state: StateStore) -> None:
        self.state = state

    def begin(self, envelope: CommandEnvelope) -> tuple[bool, CommandResult | None]:
        """(first time?, recorded result). Records the id when it is new."""
        with self.state.tx() as db:
            row = db.execute("SELECT result FROM command_journal WHERE id = ?",
                             (str(envelope.id),)).fetchone()
            if row is None:
                db.execute("INSERT INTO command_journal (id, type, received_at) VALUES (?,?,?)",
                           (str(envelope.id), envelope.type, _now()))
                return True, None
        recorded = CommandResult.model_validate_json(row[0]) if row[0] else None
        return False, recorded

    def finish(self, result: CommandResult) -> None:
        with self.state.tx() as db:
            db.execute("UPDATE command_journal SET finished_at = ?, result = ? WHERE id = ?",
                       (_now(), result.model_dump_json(), str(result.command_id)))
