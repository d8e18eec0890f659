"""The control-plane messages: validation, deadlines, results and topology names."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from wharf import topology
from wharf.errors import Conflict, InvalidArgument
from wharf.protocol import (
    SCHEMA_VERSION,
    CommandEnvelope,
    CommandResult,
    ContainerPayload,
    ResultStatus,
    RunPayload,
    StopPayload,
    parse_command,
)

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def test_round_trip_through_json_keeps_the_payload_type() -> None:
    sent = CommandEnvelope.new("node-1", RunPayload(create={"Image": "busybox"}), now=NOW,
                               reply_to="gw-1", principal="ci")
    received = parse_command(sent.model_dump_json().encode())
    assert received == sent
    assert isinstance(received.payload, RunPayload) and received.mutating
    stop = parse_command(CommandEnvelope.new(
        "node-1", StopPayload(type="stop", container="web", timeout=5), now=NOW)
        .model_dump_json().encode())
    assert isinstance(stop.payload, StopPayload) and stop.payload.timeout == 5


def test_deadline_becomes_the_amqp_expiration() -> None:
    envelope = CommandEnvelope.new("n1", ContainerPayload(type="inspect", container="x"),
                                   deadline=timedelta(seconds=5), now=NOW)
    assert envelope.expiration_ms(NOW) == 5000
    assert envelope.expiration_ms(NOW + timedelta(seconds=2)) == 3000
    assert envelope.expired(NOW + timedelta(seconds=6)) and not envelope.mutating


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d.update(type="stop"), "envelope type"),
    (lambda d: d.update(node="bad node!"), "node"),
    (lambda d: d["payload"].update(type="format-disk"), "payload"),
    (lambda d: d.update(deadline="2026-11-28T12:00:00"), "time zone"),
    (lambda d: d.update(extra="field"), "extra"),
    (lambda d: d["payload"].pop("create"), "create"),
])
def test_bad_messages_are_refused_with_a_reason(mutate: object, message: str) -> None:
    data = json.loads(CommandEnvelope.new("n1", RunPayload(create={}), now=NOW)
                      .model_dump_json())
    mutate(data)  # type: ignore[operator]
    with pytest.raises(InvalidArgument, match="invalid command") as info:
        parse_command(json.dumps(data).encode())
    assert message in str(info.value)
    with pytest.raises(InvalidArgument):
        parse_command(b"not json")


def test_a_newer_schema_is_refused() -> None:
    data = json.loads(CommandEnvelope.new("n1", RunPayload(create={}), now=NOW)
                      .model_dump_json())
    data["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(InvalidArgument, match="newer than this daemon"):
        parse_command(json.dumps(data).encode())


def test_results_carry_error_kinds_that_rebuild_on_the_other_side() -> None:
    envelope = CommandEnvelope.new("n1", ContainerPayload(type="start", container="c"), now=NOW)
    result = CommandResult.failure(envelope, "n1", Conflict("name in use"))
    again = CommandResult.model_validate_json(result.model_dump_json())
    assert again.status is ResultStatus.ERROR and again.error is not None
    error = again.error.to_error()
    assert isinstance(error, Conflict) and error.message == "name in use"
    with pytest.raises(ValueError, match="error result"):
        CommandResult(command_id=envelope.id, node="n1", status=ResultStatus.OK,
                      error=again.error)


def test_topology_names() -> None:
    assert topology.command_queue("node-2") == "wharf.cmd.node-2"
    assert topology.event_key("n1", "container", "start") == "node.n1.container.start"
    assert topology.event_key("n1", "heartbeat") == "node.n1.heartbeat"
