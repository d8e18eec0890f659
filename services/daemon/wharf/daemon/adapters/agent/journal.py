"""The agent's command journal: each command id is executed at most once.

A command is recorded when it is received and its result when it finishes, each in its own
transaction; a redelivery of a finished command gets the recorded result, and one that was
received but never finished (the daemon died mid-way) is reported as such, not run again.
Only commands that change something are journalled (reads just run again), and old entries are
pruned by age and by count, never before a redelivery is still possible: a command is not
delivered after its deadline, and no deadline is longer than ``MAX_DEADLINE``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from wharf.daemon.core.state import StateStore
from wharf.protocol import MAX_DEADLINE, CommandEnvelope, CommandResult


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

    def prune(self, keep_seconds: float, keep: int, now: datetime | None = None) -> int:
        """Forget entries received more than ``keep_seconds`` ago, and beyond the newest
        ``keep`` those older than the longest deadline. Returns how many went."""
        now = now or datetime.now(UTC)
        aged = (now - timedelta(seconds=max(keep_seconds, MAX_DEADLINE.total_seconds())))
        redeliverable = (now - MAX_DEADLINE).isoformat()
        with self.state.tx() as db:
            gone = db.execute("DELETE FROM command_journal WHERE received_at < ?",
                              (aged.isoformat(),)).rowcount
            gone += db.execute(
                "DELETE FROM command_journal WHERE id IN (SELECT id FROM command_journal"
                " ORDER BY received_at DESC LIMIT -1 OFFSET ?) AND received_at < ?",
                (keep, redeliverable)).rowcount
        return int(gone)
