"""Pure container logic: names and the state machine."""

from __future__ import annotations

import random

import pytest

from wharf.daemon.core.containers.lifecycle import Op, Status, next_status
from wharf.daemon.core.containers.names import random_name, validate
from wharf.errors import Conflict, InvalidArgument, NotModified


def test_random_names_are_adjective_surname_and_avoid_taken_ones() -> None:
    rng = random.Random(7)
    first = random_name(lambda _n: False, rng)
    adjective, _, surname = first.partition("_")
    assert adjective.isalpha() and surname.isalpha()
    taken = {first}
    second = random_name(lambda n: n in taken, random.Random(7))
    assert second != first


def test_name_validation_like_docker() -> None:
    assert validate("/web-1") == "web-1"
    for bad in ("", "a", "-x", "bad name", "x/y"):
        with pytest.raises(InvalidArgument, match="Invalid container name"):
            validate(bad)


@pytest.mark.parametrize(("status", "op", "target"), [
    (Status.CREATED, Op.START, Status.RUNNING),
    (Status.EXITED, Op.START, Status.RUNNING),
    (Status.RUNNING, Op.EXIT, Status.EXITED),
    (Status.RUNNING, Op.PAUSE, Status.PAUSED),
    (Status.PAUSED, Op.UNPAUSE, Status.RUNNING),
    (Status.EXITED, Op.REMOVE, Status.REMOVING),
])
def test_allowed_transitions(status: Status, op: Op, target: Status) -> None:
    assert next_status(status, op, name="c") is target


def test_refusals_carry_dockers_status_and_words() -> None:
    with pytest.raises(NotModified):
        next_status(Status.RUNNING, Op.START, name="c")
    with pytest.raises(NotModified):
        next_status(Status.EXITED, Op.STOP, name="c")
    with pytest.raises(Conflict, match="You cannot remove a running container c"):
        next_status(Status.RUNNING, Op.REMOVE, name="c")
    with pytest.raises(Conflict, match="is not running"):
        next_status(Status.EXITED, Op.EXEC, name="c")
    assert next_status(Status.RUNNING, Op.REMOVE, name="c", force=True) is Status.REMOVING
