"""The container state machine: which operation is allowed in which state, and where it leads.

States follow Docker's ``State.Status``: created, running, paused, restarting, exited, dead,
removing. Pure functions over data; the engine applies the results and persists them.
"""

from __future__ import annotations

from enum import StrEnum

from wharf.errors import Conflict, NotModified


class Status(StrEnum):
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    RESTARTING = "restarting"
    EXITED = "exited"
    DEAD = "dead"
    REMOVING = "removing"


class Op(StrEnum):
    START = "start"
    STOP = "stop"
    KILL = "kill"
    PAUSE = "pause"
    UNPAUSE = "unpause"
    EXIT = "exit"  # the process ended (observed, not requested)
    REMOVE = "remove"
    EXEC = "exec"
    ATTACH = "attach"


_S = Status
TRANSITIONS: dict[tuple[Status, Op], Status] = {
    (_S.CREATED, Op.START): _S.RUNNING,
    (_S.EXITED, Op.START): _S.RUNNING,
    (_S.RESTARTING, Op.START): _S.RUNNING,
    (_S.RUNNING, Op.STOP): _S.EXITED,
    (_S.PAUSED, Op.STOP): _S.EXITED,
    (_S.RESTARTING, Op.STOP): _S.EXITED,
    (_S.RUNNING, Op.KILL): _S.RUNNING,  # the exit that follows is observed separately
    (_S.PAUSED, Op.KILL): _S.PAUSED,
    (_S.RUNNING, Op.PAUSE): _S.PAUSED,
    (_S.PAUSED, Op.UNPAUSE): _S.RUNNING,
    (_S.RUNNING, Op.EXIT): _S.EXITED,
    (_S.PAUSED, Op.EXIT): _S.EXITED,
    (_S.CREATED, Op.REMOVE): _S.REMOVING,
    (_S.EXITED, Op.REMOVE): _S.REMOVING,
    (_S.DEAD, Op.REMOVE): _S.REMOVING,
    (_S.RUNNING, Op.EXEC): _S.RUNNING,
    (_S.RUNNING, Op.ATTACH): _S.RUNNING,
    (_S.CREATED, Op.ATTACH): _S.CREATED,
    (_S.PAUSED, Op.ATTACH): _S.PAUSED,
    (_S.EXITED, Op.ATTACH): _S.EXITED,
}


def next_status(current: Status, op: Op, *, name: str, force: bool = False) -> Status:
    """Where ``op`` leads from ``current``; NotModified or Conflict (with Docker's words) if not."""
    if op is Op.REMOVE and force and current is not Status.REMOVING:
        return Status.REMOVING
    target = TRANSITIONS.get((current, op))
    if target is not None:
        return target
    raise _refusal(current, op, name)


def _refusal(current: Status, op: Op, name: str) -> Exception:
    if op is Op.START and current in (Status.RUNNING, Status.PAUSED):
        return NotModified(f"container {name} is already running")
    if op is Op.STOP and current in (Status.EXITED, Status.CREATED, Status.DEAD):
        return NotModified(f"container {name} is already stopped")
    if op is Op.REMOVE and current in (Status.RUNNING, Status.PAUSED, Status.RESTARTING):
        return Conflict(
            f"You cannot remove a {current.value} container {name}. Stop the container before "
            "attempting removal or force remove"
        )
    if op is Op.REMOVE and current is Status.REMOVING:
        return Conflict(f"removal of container {name} is already in progress")
    if op in (Op.EXEC, Op.KILL) and current is not Status.RUNNING:
        return Conflict(f"Container {name} is not running")
    if op is Op.PAUSE and current is Status.PAUSED:
        return Conflict(f"Container {name} is already paused")
    if op is Op.UNPAUSE:
        return Conflict(f"Container {name} is not paused")
    return Conflict(f"cannot {op.value} container {name}: it is {current.value}")
