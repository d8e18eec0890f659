"""The gateway's pure parts and its store: placement, tokens, staleness, commands."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from wharf.dockerapi import status_text
from wharf.errors import (
    DeadlineExceeded,
    InvalidArgument,
    MaybeSent,
    NotFound,
    Unauthenticated,
    Unavailable,
)
from wharf.gateway import auth
from wharf.gateway.bus import Bus
from wharf.gateway.dispatch import Dispatcher
from wharf.gateway.placement import Candidate, parse_constraint, place
from wharf.gateway.records import command_document, outcome
from wharf.gateway.settings import GatewaySettings
from wharf.gateway.store import KEEP_COMMANDS_SECONDS, ClusterStore
from wharf.humanize import human_duration
from wharf.protocol import (
    CommandEnvelope,
    CommandResult,
    ContainerPayload,
    ErrorInfo,
    Heartbeat,
    Load,
    NodeEvent,
    ResultStatus,
    Snapshot,
)

LOAD = Load(containers=0, running=0, memory_total=8 << 30, memory_available=4 << 30, cpus=2,
            load1=0.1)


# --- placement ------------------------------------------------------------------------------


def test_placement_prefers_fewest_running_then_free_memory_and_skips_down_nodes() -> None:
    nodes = [Candidate("a", True, running=3, memory_available=10),
             Candidate("b", True, running=1, memory_available=5),
             Candidate("c", True, running=1, memory_available=9),
             Candidate("d", False, running=0, memory_available=99)]
    assert place(nodes, []) == "c"
    assert place(nodes, [parse_constraint("node.name!=c")]) == "b"
    with pytest.raises(Unavailable, match="3 of 4 nodes ready"):
        place(nodes, [parse_constraint("node.name==d")])


def test_constraints_on_labels() -> None:
    nodes = [Candidate("a", True, 0, 0, {"zone": "x"}), Candidate("b", True, 5, 0, {"zone": "y"})]
    assert place(nodes, [parse_constraint("node.labels.zone==y")]) == "b"
    assert place(nodes, [parse_constraint("node.labels.zone != y")]) == "a"
    for bad in ("zone==y", "node.labels.zone=y", "node.cpu==2", ""):
        with pytest.raises(InvalidArgument):
            parse_constraint(bad)


# --- tokens ---------------------------------------------------------------------------------


def test_tokens_are_stored_hashed_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    token = auth.create_token(path, "ci")
    assert token.startswith("wgt_") and token not in path.read_text()
    assert path.stat().st_mode & 0o777 == 0o600
    tokens = auth.Tokens(path)
    assert tokens.authenticate(f"Bearer {token}").name == "ci"
    for header in (None, "", "Basic xyz", "Bearer wrong", f"bearer {token}"):
        with pytest.raises(Unauthenticated):
            tokens.authenticate(header)
    auth.revoke_token(path, "ci")
    with pytest.raises(Unauthenticated):  # re-read after the file changed
        tokens.authenticate(f"Bearer {token}")
    with pytest.raises(NotFound):
        auth.revoke_token(path, "ci")
    with pytest.raises(InvalidArgument):
        auth.create_token(path, "no spaces allowed")


def test_a_garbled_tokens_file_is_reported_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("# comment\nci sha256:" + "0" * 64 + "\nbroken line\n")
    with pytest.raises(InvalidArgument, match=":3:"):
        auth.read_tokens(path)


# --- the store ------------------------------------------------------------------------------


def _event(seq: int, action: str, engine: str = "e1", state: str | None = "running"
           ) -> NodeEvent:
    container = {"Id": "c1", "Names": ["/web"], "State": state} if state else None
    return NodeEvent(node="n1", seq=seq, type="container", action=action, actor_id="c1",
                     time_nano=seq, engine_id=engine, container=container)


def _snapshot(seq: int, containers: list[str], engine: str = "e1") -> Snapshot:
    return Snapshot(node="n1", seq=seq, engine_id=engine, taken_at=datetime.now(UTC),
                    containers=[{"Id": c, "Names": [f"/{c}"], "State": "running"}
                                for c in containers], images=[])


def test_snapshots_and_events_apply_in_sequence_and_stale_ones_are_dropped(
        tmp_path: Path) -> None:
    store = ClusterStore(tmp_path / "gw.db")
    assert not store.node_event(_event(1, "start"))  # nothing known of n1 yet: wait
    assert store.snapshot(_snapshot(5, ["old"]), now=1.0)
    assert not store.node_event(_event(5, "start"))  # already in the snapshot
    assert store.node_event(_event(6, "start"))
    assert sorted(c["Id"] for _, c in store.containers()) == ["c1", "old"]
    assert store.node_event(_event(7, "destroy", state=None))
    assert not store.snapshot(_snapshot(6, ["stale"]), now=2.0)  # older than what we have
    assert [c["Id"] for _, c in store.containers()] == ["old"]
    assert store.snapshot(_snapshot(1, ["fresh"], engine="e2"), now=3.0)  # a new data root
    assert [c["Id"] for _, c in store.containers("n1")] == ["fresh"]
    assert [e["Action"] for _, e in store.events(0)] == ["start", "destroy"]
    store.close()


def test_a_node_first_heard_of_through_its_snapshot_is_ready_only_after_its_heartbeat(
        tmp_path: Path) -> None:
    """A snapshot carries no address, version nor load: the node is not ready (nor listed as
    such with an empty address) until its heartbeat, across a restart too."""
    store = ClusterStore(tmp_path / "gw.db")
    assert store.snapshot(_snapshot(1, ["web"]), now=100.0)
    node = store.node("n1")
    assert node is not None and not node.up(100.0, down_after=2.5)
    store.close()
    store = ClusterStore(tmp_path / "gw.db")
    node = store.node("n1")
    assert node is not None and not node.up(100.0, down_after=2.5)
    beat = Heartbeat(node="n1", seq=0, sent_at=datetime.now(UTC), load=LOAD,
                     version="0.1.0", address="10.0.0.5:2376")
    store.heartbeat(beat, now=101.0)
    node = store.node("n1")
    assert node is not None and node.up(101.0, down_after=2.5)
    assert (node.address, node.engine_id) == ("10.0.0.5:2376", "e1")
    store.close()


def test_heartbeats_create_and_refresh_nodes(tmp_path: Path) -> None:
    store = ClusterStore(tmp_path / "gw.db")
    beat = Heartbeat(node="n1", seq=0, sent_at=datetime.now(UTC), labels={"a": "b"},
                     load=LOAD, version="0.1.0")
    assert store.heartbeat(beat, now=10.0)
    assert not store.heartbeat(beat, now=12.0)
    node = store.node("n1")
    assert node is not None and node.last_seen == 12.0 and node.labels == {"a": "b"}
    assert node.up(13.0, 2.5) and not node.up(15.0, 2.5)
    store.close()


def _envelope(node: str = "n1") -> CommandEnvelope:
    return CommandEnvelope.new(node, ContainerPayload(type="start", container="web"))


def test_commands_idempotency_and_results(tmp_path: Path) -> None:
    store = ClusterStore(tmp_path / "gw.db")
    first = store.add_command(_envelope(), ["n1"], "key-1", now=1.0)
    again = store.add_command(_envelope(), ["n1"], "key-1", now=2.0)
    assert again.id == first.id
    now = datetime.now(UTC).timestamp()
    assert store.command(first.id).status(now) == "pending"  # type: ignore[union-attr]
    assert store.record_expired(first.id, "n1")
    # what the daemon says it did wins over an expiry inferred from a dead letter
    result = CommandResult(command_id=uuid.UUID(first.id), node="n1", status=ResultStatus.OK,
                           result={"x": 1})
    assert store.record_result(result)
    assert not store.record_result(result.model_copy(update={"result": {"x": 2}}))
    row = store.command(first.id)
    assert row is not None and row.status(now) == "ok" and outcome(row, now) == {"x": 1}
    assert command_document(row, now)["Result"] == {"x": 1}
    store.close()


def test_an_error_result_raises_its_kind(tmp_path: Path) -> None:
    store = ClusterStore(tmp_path / "gw.db")
    row = store.add_command(_envelope(), ["n1"], None, now=1.0)
    store.record_result(CommandResult(
        command_id=uuid.UUID(row.id), node="n1", status=ResultStatus.ERROR,
        error=ErrorInfo(code="not_found", message="No such container: web")))
    with pytest.raises(NotFound, match="No such container"):
        outcome(store.command(row.id), 2.0)  # type: ignore[arg-type]
    store.close()


def test_a_command_without_an_answer_is_unknown_after_its_deadline(tmp_path: Path) -> None:
    store = ClusterStore(tmp_path / "gw.db")
    row = store.add_command(_envelope(), ["n1"], None, now=1.0)
    assert row.status(row.deadline - 1) == "pending"
    assert row.status(row.deadline + 1) == "unknown"
    with pytest.raises(DeadlineExceeded, match="no answer"):
        outcome(row, row.deadline + 1)
    store.close()


# --- the dispatcher --------------------------------------------------------------------------


class FakePublisher:
    def __init__(self, store: ClusterStore) -> None:
        self.store = store
        self.sent: list[CommandEnvelope] = []
        self.fail: type[Unavailable] | None = None

    async def publish(self, envelope: CommandEnvelope) -> None:
        if self.fail is not None:
            if self.fail is MaybeSent:
                self.sent.append(envelope)  # it went out; its confirm did not come back
            raise self.fail("broker down")
        self.sent.append(envelope)


def _dispatcher(tmp_path: Path, clock: list[float]) -> tuple[Dispatcher, FakePublisher]:
    store = ClusterStore(tmp_path / "gw.db")
    store.heartbeat(Heartbeat(node="n1", seq=0, sent_at=datetime.now(UTC), load=LOAD,
                              version="0.1.0"), now=clock[0])
    publisher = FakePublisher(store)
    return Dispatcher(store, publisher, gateway_id="gw", down_after=2.5,
                      clock=lambda: clock[0]), publisher


def test_a_down_or_unknown_node_is_refused_at_once(tmp_path: Path) -> None:
    clock = [1000.0]
    dispatcher, publisher = _dispatcher(tmp_path, clock)
    payload = ContainerPayload(type="start", container="web")
    with pytest.raises(NotFound):
        asyncio.run(dispatcher.submit("n9", payload, principal="t", deadline=5))
    clock[0] += 3
    with pytest.raises(Unavailable, match="n1 is down"):
        asyncio.run(dispatcher.submit("n1", payload, principal="t", deadline=5))
    assert publisher.sent == []


def test_a_failed_publish_leaves_no_command_behind(tmp_path: Path) -> None:
    clock = [datetime.now(UTC).timestamp()]
    dispatcher, publisher = _dispatcher(tmp_path, clock)
    publisher.fail = Unavailable
    payload = ContainerPayload(type="start", container="web")
    with pytest.raises(Unavailable):
        asyncio.run(dispatcher.submit("n1", payload, principal="t", deadline=5,
                                      idempotency_key="k"))
    assert dispatcher.store.command_by_key("t", "k") is None  # the key may be retried


def test_a_publish_without_its_confirm_is_sent_again_with_the_same_id_when_re_asked(
        tmp_path: Path) -> None:
    """The broker may have queued a copy whose confirm was lost with its connection: the
    record and its key stand, and asking again sends the same id (the node runs it once),
    never a second command that would run again."""
    clock = [datetime.now(UTC).timestamp()]
    dispatcher, publisher = _dispatcher(tmp_path, clock)
    publisher.fail = MaybeSent
    payload = ContainerPayload(type="start", container="web")
    with pytest.raises(MaybeSent, match="same Idempotency-Key"):
        asyncio.run(dispatcher.submit("n1", payload, principal="t", deadline=5,
                                      idempotency_key="k"))
    first = dispatcher.store.command_by_key("t", "k")
    assert first is not None and first.status(clock[0]) == "pending"
    publisher.fail = None
    again = asyncio.run(dispatcher.submit("n1", payload, principal="t", deadline=5,
                                          idempotency_key="k"))
    assert again.id == first.id
    assert [str(e.id) for e in publisher.sent] == [first.id, first.id]
    asyncio.run(dispatcher.submit("n1", payload, principal="t", deadline=5,
                                  idempotency_key="k"))
    assert len(publisher.sent) == 2  # sent and confirmed: a third ask sends nothing


def _bus(dispatcher: Dispatcher) -> Bus:
    """The bus as the gateway wires it, fed by hand instead of by RabbitMQ (never started)."""
    return Bus("amqp://unused/", "gw", dispatcher.store, on_event=lambda: None,
               on_result=dispatcher.on_result, on_seen=dispatcher.seen,
               take_unstored=dispatcher.take_unstored)


def test_a_waiting_request_wakes_when_its_result_arrives(tmp_path: Path) -> None:
    clock = [datetime.now(UTC).timestamp()]
    dispatcher, publisher = _dispatcher(tmp_path, clock)

    async def scenario() -> object:
        bus = _bus(dispatcher)
        row = await dispatcher.submit("n1", ContainerPayload(type="inspect", container="web"),
                                      principal="t", deadline=30, watch=True)
        envelope = publisher.sent[0]
        assert envelope.reply_to == "gw" and envelope.principal == "t"

        async def answer() -> None:
            await asyncio.sleep(0.05)
            bus.handle("gw", CommandResult(command_id=envelope.id, node="n1",
                                           status=ResultStatus.OK,
                                           result="done").model_dump_json().encode(),
                       "wharf-node-n1")

        task = asyncio.create_task(answer())
        done = await asyncio.wait_for(dispatcher.wait(row.id), 5)
        await task
        assert dispatcher.store.command(row.id).status(clock[0]) == "ok"  # type: ignore[union-attr]
        return outcome(done, clock[0])

    assert asyncio.run(scenario()) == "done"
    assert dispatcher._watched == {}  # nothing held once the request has its answer


def test_a_result_that_comes_before_the_wait_is_not_missed(tmp_path: Path) -> None:
    clock = [datetime.now(UTC).timestamp()]
    dispatcher, publisher = _dispatcher(tmp_path, clock)

    async def scenario() -> object:
        bus = _bus(dispatcher)

        async def publish_and_answer(envelope: CommandEnvelope) -> None:
            publisher.sent.append(envelope)  # the node answers before the confirm arrives
            bus.handle("gw", CommandResult(command_id=envelope.id, node="n1",
                                           status=ResultStatus.OK,
                                           result="early").model_dump_json().encode(),
                       "wharf-node-n1")

        publisher.publish = publish_and_answer  # type: ignore[method-assign]
        return await asyncio.wait_for(dispatcher.call(
            "n1", ContainerPayload(type="inspect", container="web"), principal="t",
            deadline=30), 5)

    assert asyncio.run(scenario()) == "early"
    # a read (inspect) went out and came back without a trace in the store
    assert dispatcher.store.command(str(publisher.sent[0].id)) is None
    with dispatcher.store._lock:
        assert dispatcher.store._db.execute(
            "SELECT COUNT(*) FROM command_results").fetchone()[0] == 0


def test_heartbeats_through_the_bus_keep_a_node_ready(tmp_path: Path) -> None:
    clock = [1000.0]
    dispatcher, _ = _dispatcher(tmp_path, clock)
    clock[0] += 3
    with pytest.raises(Unavailable, match="n1 is down"):
        dispatcher.require_ready("n1")
    _bus(dispatcher).handle("node.n1.heartbeat", Heartbeat(
        node="n1", seq=1, sent_at=datetime.now(UTC), load=LOAD,
        version="0.1.0").model_dump_json().encode(), "wharf-node-n1")
    dispatcher.clock = lambda: time.time() + 1
    assert dispatcher.require_ready("n1") == "n1"


class OrderBroker:
    """A broker that records what happened in which order; declaring takes a while."""

    user_id = "gw"

    def __init__(self) -> None:
        self.log: list[str] = []

    async def declare(self, declarations: list[object]) -> None:
        await asyncio.sleep(0.05)
        self.log.append("declared")

    async def publish(self, exchange: str, key: str, body: bytes, **_: object) -> None:
        self.log.append(f"published to {key}")

    def read_now(self) -> None:
        self.log.append("read now")


def test_a_command_sent_right_after_the_first_heartbeat_waits_for_the_nodes_queues(
        tmp_path: Path) -> None:
    # the node is ready from its first heartbeat on; its queues are declared just after it
    dispatcher, _ = _dispatcher(tmp_path, [datetime.now(UTC).timestamp()])

    async def scenario() -> list[str]:
        bus = _bus(dispatcher)
        broker = OrderBroker()
        bus.broker = broker  # type: ignore[assignment]
        bus.handle("node.n1.heartbeat", Heartbeat(
            node="n1", seq=1, sent_at=datetime.now(UTC), load=LOAD,
            version="0.1.0").model_dump_json().encode(), "wharf-node-n1")
        await bus.publish(_envelope("n1"))
        await bus.publish(_envelope("n1"))  # declared once per connection
        return broker.log

    assert asyncio.run(scenario()) == ["declared", "published to n1", "read now",
                                       "published to n1", "read now"]


def test_a_thousand_first_heartbeats_declare_one_node_at_a_time(tmp_path: Path) -> None:
    """One declarer works through the nodes: never two declarations on the channel at once
    (each node starting its own put thousands of RPCs in line, the last timing out)."""
    dispatcher, _ = _dispatcher(tmp_path, [datetime.now(UTC).timestamp()])

    class Counting(OrderBroker):
        now = most = 0

        async def declare(self, declarations: list[object]) -> None:
            self.now += 1
            self.most = max(self.most, self.now)
            await asyncio.sleep(0)
            self.now -= 1
            self.log.append("declared")

    async def scenario() -> Counting:
        bus = _bus(dispatcher)
        broker = Counting()
        bus.broker = broker  # type: ignore[assignment]
        for i in range(1000):
            bus.handle(f"node.n{i}.heartbeat", Heartbeat(
                node=f"n{i}", seq=1, sent_at=datetime.now(UTC), load=LOAD,
                version="0.1.0").model_dump_json().encode(), f"wharf-node-n{i}")
        await bus.publish(_envelope("n999"))  # waits for n999's declaration only
        return broker

    broker = asyncio.run(scenario())
    assert broker.most == 1 and broker.log.count("declared") == 1000
    assert broker.log.index("published to n999") == 1000


def test_reports_and_results_count_only_from_the_nodes_own_account(tmp_path: Path) -> None:
    clock = [datetime.now(UTC).timestamp()]
    dispatcher, publisher = _dispatcher(tmp_path, clock)
    bus = _bus(dispatcher)
    beat = Heartbeat(node="n2", seq=1, sent_at=datetime.now(UTC), load=LOAD,
                     version="0.1.0").model_dump_json().encode()
    bus.handle("node.n2.heartbeat", beat, "wharf-node-n1")  # n1 claims to be n2
    bus.handle("node.n2.heartbeat", beat, None)  # no user_id at all
    bus.handle("node.n1.heartbeat", beat, "wharf-node-n2")  # n2's beat under n1's key
    assert bus.dropped["forged"] == 3
    assert dispatcher.store.node("n2") is None
    bus.handle("node.n2.heartbeat", beat, "wharf-node-n2")  # n2 itself
    assert dispatcher.store.node("n2") is not None

    async def forge() -> None:
        row = await dispatcher.submit("n2", ContainerPayload(type="start", container="web"),
                                      principal="t", deadline=30)
        envelope = publisher.sent[0]
        bus.handle("gw", CommandResult(command_id=envelope.id, node="n2",
                                       status=ResultStatus.OK).model_dump_json().encode(),
                   "wharf-node-n1")
        assert dispatcher.store.command(row.id).status(clock[0]) != "ok"  # type: ignore[union-attr]
        # an "expired" command only a gateway's account may dead-letter back
        bus.handle("n2", envelope.model_dump_json().encode(), "wharf-node-n2")
        assert dispatcher.store.command(row.id).status(clock[0]) == "pending"  # type: ignore[union-attr]

    asyncio.run(forge())
    assert bus.dropped["forged"] == 5


def test_old_commands_are_pruned_apart_from_the_requests(tmp_path: Path) -> None:
    store = ClusterStore(tmp_path / "gw.db")
    old = store.add_command(_envelope(), ["n1"], "old-key", now=1.0)
    store.record_result(CommandResult(command_id=uuid.UUID(old.id), node="n1",
                                      status=ResultStatus.OK, result=None,
                                      finished_at=datetime.fromtimestamp(2.0, UTC)))
    fresh = store.add_command(_envelope(), ["n1"], None, now=KEEP_COMMANDS_SECONDS + 10)
    assert store.prune(now=KEEP_COMMANDS_SECONDS + 10) == 1
    assert store.command(old.id) is None and store.command_by_key("", "old-key") is None
    assert store.command(fresh.id) is not None
    store.close()


def test_status_words_follow_docker() -> None:
    assert human_duration(0.5) == "Less than a second"
    assert human_duration(90) == "About a minute"
    assert human_duration(3 * 3600) == "3 hours"
    # one wording for the daemon's and the gateway's lists: dockerd's State.String()
    zero = "0001-01-01T00:00:00Z"
    assert status_text("created", 0, "", "") == "Created"
    assert status_text("exited", 0, zero, zero) == "Created"  # never started
    stamp = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    assert status_text("exited", 3, stamp, stamp) == "Exited (3) 5 minutes ago"
    assert status_text("exited", 3, stamp, zero) == ""  # dockerd says nothing here
    assert status_text("running", 0, stamp, "") == "Up 5 minutes"
    assert status_text("paused", 0, stamp, "") == "Up 5 minutes (Paused)"
    assert status_text("restarting", 1, stamp, stamp) == "Restarting (1) 5 minutes ago"
    assert status_text("removing", 0, stamp, "") == "Removal In Progress"
    assert status_text("dead", 0, stamp, stamp) == "Dead"


def test_every_path_but_the_open_ones_needs_a_token(tmp_path: Path) -> None:
    """BearerAuth stands in front of the whole app: unknown paths too, healthz and docs not."""
    path = tmp_path / "tokens"
    token = auth.create_token(path, "ci")
    seen: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope.get("state", {}).get("principal", "-"))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def scenario() -> list[int]:
        transport = httpx.ASGITransport(app=auth.BearerAuth(app, auth.Tokens(path)))
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            good = {"Authorization": f"Bearer {token}"}
            return [(await client.get("/v1/nodes")).status_code,
                    (await client.get("/anything", headers={"Authorization": "Bearer x"})
                     ).status_code,
                    (await client.get("/v1/nodes", headers=good)).status_code,
                    (await client.get("/healthz")).status_code,
                    (await client.get("/openapi.json")).status_code]

    assert asyncio.run(scenario()) == [401, 401, 200, 200, 200]
    assert seen == ["ci", "-", "-"]


def _request(query: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> Any:
    from types import SimpleNamespace  # noqa: PLC0415

    from starlette.requests import Request  # noqa: PLC0415

    from wharf.gateway.policy import Grant, Scope  # noqa: PLC0415

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    app = SimpleNamespace(state=SimpleNamespace(
        settings=GatewaySettings(amqp_url="amqp://unused/"), dispatcher="the dispatcher"))
    return Request({"type": "http", "method": "POST", "path": "/v1/nodes/n1/containers/x/start",
                    "query_string": query, "headers": headers or [], "app": app,
                    "state": {"principal": "ci", "grant": Grant("ci", Scope.OPERATE)}}, receive)


def test_command_parameters_are_read_and_checked_by_hand() -> None:
    from wharf.gateway.call import read_call as _call  # noqa: PLC0415

    call = asyncio.run(_call(_request(b"deadline=5&wait=TRUE",
                                      [(b"idempotency-key", b"k-1")])))
    assert (call.principal, call.deadline, call.wait, call.idempotency_key) == \
        ("ci", 5.0, True, "k-1")
    plain = asyncio.run(_call(_request(b"")))
    assert (plain.deadline, plain.wait, plain.idempotency_key) == (60.0, None, None)
    for query, headers, message in (
            (b"deadline=0", [], "deadline"), (b"deadline=nan", [], "deadline"),
            (b"deadline=3601", [], "deadline"), (b"deadline=soon", [], "deadline"),
            (b"wait=maybe", [], "wait"), (b"", [(b"idempotency-key", b"k" * 201)], "Idem")):
        with pytest.raises(InvalidArgument, match=message):
            asyncio.run(_call(_request(query, headers)))


def test_the_openapi_document_names_the_command_parameters(tmp_path: Path) -> None:
    from wharf.gateway.app import create_app  # noqa: PLC0415

    app = create_app(GatewaySettings(amqp_url="amqp://unused/", state_dir=tmp_path,
                                     tokens_file=tmp_path / "tokens"))
    paths = app.openapi()["paths"]
    start = paths["/v1/nodes/{node}/containers/{container}/start"]["post"]
    assert {"wait", "deadline", "Idempotency-Key", "node", "container"} <= \
        {p["name"] for p in start["parameters"]}
    assert "parameters" not in paths["/v1/nodes"]["get"]  # not a command


def test_the_command_history_is_bounded_by_count_but_keeps_pending_commands(
        tmp_path: Path) -> None:
    store = ClusterStore(tmp_path / "gw.db")
    now = 10_000.0
    def at(created: float, **deadline: Any) -> CommandEnvelope:
        return CommandEnvelope.new("n1", ContainerPayload(type="start", container="web"),
                                   now=datetime.fromtimestamp(created, UTC), **deadline)

    done = [store.add_command(at(now - 1000 + i), ["n1"], f"k{i}", now=now - 1000 + i)
            for i in range(20)]  # deadlines 60 s after creation: all passed by ``now``
    pending = store.add_command(at(now - 2000, deadline=timedelta(hours=1)), ["n1"], None,
                                now=now - 2000)  # the oldest, but its deadline is ahead
    assert store.prune(now, keep_seconds=86400, keep=5) == 15  # the newest 5 stay
    assert store.command(pending.id) is not None
    assert [store.command(c.id) is not None for c in done] == [False] * 15 + [True] * 5
    store.close()
