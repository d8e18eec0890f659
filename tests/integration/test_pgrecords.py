"""The records several gateways share, against a real PostgreSQL (infra/postgres.sh): two
:class:`PgRecords` on one database stand for two gateways."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from wharf.amqp_async import AsyncDelivery
from wharf.errors import NotFound, Unavailable
from wharf.gateway.auth import Tokens, make_token
from wharf.gateway.bus import Bus
from wharf.gateway.dispatch import Dispatcher, KeyReused
from wharf.gateway.pgrecords import PgRecords
from wharf.gateway.placement import Availability
from wharf.gateway.policy import Grant, Scope
from wharf.gateway.store import ClusterStore
from wharf.protocol import (
    CommandEnvelope,
    CommandResult,
    ContainerPayload,
    ErrorInfo,
    Heartbeat,
    Load,
    ResultStatus,
)
from wharf.topology import node_user

pytestmark = pytest.mark.integration


@pytest.fixture
def two() -> Iterator[tuple[PgRecords, PgRecords]]:
    from tests.integration.pg_fixture import scratch_database  # noqa: PLC0415

    with scratch_database() as url:
        a, b = PgRecords(url), PgRecords(url)
        try:
            yield a, b
        finally:
            a.close()
            b.close()


def _envelope(container: str = "web", principal: str = "alice",
              deadline: float = 60) -> CommandEnvelope:
    return CommandEnvelope.new("n1", ContainerPayload(type="start", container=container),
                               deadline=timedelta(seconds=deadline), principal=principal,
                               reply_to="ga")


def _result(envelope: CommandEnvelope, status: ResultStatus = ResultStatus.OK,
            value: object = None) -> CommandResult:
    error = ErrorInfo(code="conflict", message="no") if status is ResultStatus.ERROR else None
    return CommandResult(command_id=envelope.id, node="n1", status=status, result=value,
                         error=error, finished_at=datetime.now(UTC))


def test_a_command_recorded_by_one_is_found_with_its_result_by_the_other(
        two: tuple[PgRecords, PgRecords]) -> None:
    a, b = two
    envelope = _envelope()
    row = a.add_command(envelope, ["n1"], "k1", time.time(), "hash")
    found = b.command_by_key("alice", "k1")
    assert found is not None and found.id == row.id == str(envelope.id)
    assert found.request_hash == "hash" and found.expected == ["n1"]
    assert CommandEnvelope.model_validate_json(found.envelope) == envelope
    assert b.command_by_key("bob", "k1") is None  # keys are per principal
    assert b.record_result(_result(envelope, value={"Id": "x"})) is not None
    assert a.record_result(_result(envelope, value={"Id": "y"})) is None  # the first wins
    stored = a.command(row.id)
    assert stored is not None and stored.results["n1"]["Result"] == {"Id": "x"}
    assert stored.status(time.time()) == "ok"


def test_one_key_from_two_gateways_at_once_is_one_command(
        two: tuple[PgRecords, PgRecords]) -> None:
    rows: list[str] = []
    barrier = threading.Barrier(8)

    def add(records: PgRecords) -> None:
        barrier.wait()
        rows.append(records.add_command(_envelope(), ["n1"], "same", time.time()).id)

    threads = [threading.Thread(target=add, args=(two[i % 2],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(rows) == 8 and len(set(rows)) == 1


def test_expired_gives_way_to_what_the_node_said(two: tuple[PgRecords, PgRecords]) -> None:
    a, b = two
    envelope = _envelope()
    a.add_command(envelope, ["n1"], None, time.time())
    assert b.record_expired(str(envelope.id), "n1") is not None
    assert a.record_expired(str(envelope.id), "n1") is None
    assert a.record_result(_result(envelope, ResultStatus.ERROR)) is not None
    stored = b.command(str(envelope.id))
    assert stored is not None and stored.results["n1"]["Status"] == "error"
    assert a.record_result(_result(_envelope())) is None  # not a recorded command: not kept


def test_prune_forgets_old_commands_with_their_results(
        two: tuple[PgRecords, PgRecords]) -> None:
    a, b = two
    old, new = _envelope("old"), _envelope("new")
    a.add_command(old, ["n1"], "old", time.time() - 7200)
    a.add_command(new, ["n1"], "new", time.time())
    a.record_result(_result(old))
    assert b.prune(time.time(), keep_seconds=3600) == 1
    assert a.command(str(old.id)) is None and a.command_by_key("alice", "old") is None
    assert a.command(str(new.id)) is not None
    a.forget_command(str(new.id))
    assert b.command_by_key("alice", "new") is None


def test_availability_set_on_one_is_read_by_the_other(
        two: tuple[PgRecords, PgRecords]) -> None:
    a, b = two
    a.save_availability("n1", Availability.DRAIN, time.time())
    a.save_availability("n2", Availability.PAUSE, time.time())
    a.save_availability("n2", Availability.ACTIVE, time.time())
    assert b.availabilities() == {"n1": Availability.DRAIN, "n2": Availability.ACTIVE}


def test_an_unreachable_database_is_unavailable() -> None:
    with pytest.raises(Unavailable) as caught:
        PgRecords("postgresql://wharf_gateway:secret-pw@127.0.0.1:1/wharf")
    assert "secret-pw" not in str(caught.value)


class _Publisher:
    def __init__(self) -> None:
        self.sent: list[CommandEnvelope] = []

    async def publish(self, envelope: CommandEnvelope) -> None:
        self.sent.append(envelope)


def _dispatcher(tmp_path: Path, records: PgRecords, name: str) -> tuple[Dispatcher,
                                                                         _Publisher]:
    store = ClusterStore(tmp_path / f"{name}.db")
    load = Load(containers=0, running=0, memory_total=1, memory_available=1, cpus=1, load1=0)
    store.heartbeat(Heartbeat(node="n1", seq=0, sent_at=datetime.now(UTC), load=load,
                              version="t"), time.time())
    publisher = _Publisher()
    dispatcher = Dispatcher(store, publisher, gateway_id=name, down_after=60,
                            records=records)
    dispatcher.seen("n1", time.time())
    return dispatcher, publisher


def test_a_key_re_asked_on_another_gateway_is_the_same_command_sent_again(
        two: tuple[PgRecords, PgRecords], tmp_path: Path) -> None:
    import asyncio  # noqa: PLC0415

    (a, pa), (b, pb) = _dispatcher(tmp_path, two[0], "ga"), _dispatcher(tmp_path, two[1], "gb")
    payload = ContainerPayload(type="start", container="web")

    async def scenario() -> None:
        first = await a.submit("n1", payload, principal="alice", deadline=30,
                               idempotency_key="k", request_hash="h")
        again = await b.submit("n1", payload, principal="alice", deadline=30,
                               idempotency_key="k", request_hash="h")
        assert again.id == first.id
        with pytest.raises(KeyReused):
            await b.submit("n1", payload, principal="alice", deadline=30,
                           idempotency_key="k", request_hash="other")
        # b published the recorded envelope again: the same id, its result to come to b
        assert [e.id for e in pa.sent] == [e.id for e in pb.sent]
        assert (pa.sent[0].reply_to, pb.sent[0].reply_to) == ("ga", "gb")
        envelope = pb.sent[0]
        waiting = asyncio.create_task(b.wait(first.id))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        result = _result(envelope, value={"ok": 1})
        two[0].record_result(result)  # gateway a stored it first; then b's bus sees it
        bus = Bus("amqp://gw:pw@127.0.0.1:1/wharf", "gb", b.store, on_event=lambda: None,
                  on_result=b.on_result, watching=b.watching, records=two[1])
        bus.handle("gb", result.model_dump_json().encode(), node_user("n1"))
        done = await asyncio.wait_for(waiting, 5)
        assert done.results["n1"]["Result"] == {"ok": 1}
        three = await b.submit("n1", payload, principal="alice", deadline=30,
                               idempotency_key="k", request_hash="h")
        assert three.id == first.id and len(pb.sent) == 1  # answered: not sent again

    asyncio.run(scenario())


def test_availability_set_on_one_gateway_is_obeyed_by_the_other(
        two: tuple[PgRecords, PgRecords], tmp_path: Path) -> None:
    (a, _), (b, _) = _dispatcher(tmp_path, two[0], "ga"), _dispatcher(tmp_path, two[1], "gb")
    a.set_availability("n1", Availability.DRAIN)
    assert b.store.node("n1").availability is Availability.ACTIVE  # type: ignore[union-attr]
    b.sync_availability()
    assert b.store.node("n1").availability is Availability.DRAIN  # type: ignore[union-attr]
    assert b.candidates()[0].availability is Availability.DRAIN


class _Broker:
    """What the bus asks of its broker when it settles a delivery."""

    user_id = "gw"

    def __init__(self) -> None:
        self.settled: list[tuple[str, int]] = []

    def ack(self, delivery: AsyncDelivery) -> None:
        self.settled.append(("ack", delivery.delivery_tag))

    def reject(self, delivery: AsyncDelivery, requeue: bool = False) -> None:
        self.settled.append(("requeue" if requeue else "reject", delivery.delivery_tag))


def test_a_database_gone_is_unavailable_and_a_result_comes_again(tmp_path: Path) -> None:
    from tests.integration.pg_fixture import _admin, scratch_database  # noqa: PLC0415

    with scratch_database() as url:
        records = PgRecords(url)
        try:
            envelope = _envelope()
            records.add_command(envelope, ["n1"], None, time.time())
            _admin(f'DROP DATABASE "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
            with pytest.raises(Unavailable) as caught:
                records.add_command(_envelope(), ["n1"], "k", time.time())
            assert "gateways' database" in str(caught.value)
            store = ClusterStore(tmp_path / "g.db")
            bus = Bus("amqp://gw:pw@127.0.0.1:1/wharf", "gw", store, on_event=lambda: None,
                      records=records)
            broker = bus.broker = _Broker()  # type: ignore[assignment]
            body = _result(envelope).model_dump_json().encode()
            bus._on_message(AsyncDelivery(body, "gw", 7, False, None, None,
                                          node_user("n1"), 1))
            assert broker.settled == [("requeue", 7)]  # not acked: it comes again
        finally:
            records.close()


def test_tokens_in_the_database(two: tuple[PgRecords, PgRecords], tmp_path: Path) -> None:
    a, b = two
    token, entry = make_token("ci", Scope.OPERATE, ["privileged"])
    a.save_token("ci", entry)
    assert b.token_entries() == {"ci": entry}
    tokens = Tokens(tmp_path / "none")  # no file: the database's tokens only
    tokens.shared = b
    assert tokens.authenticate(f"Bearer {token}") == Grant("ci", Scope.OPERATE,
                                                          frozenset({"privileged"}))
    b.drop_token("ci")
    with pytest.raises(NotFound):
        a.drop_token("ci")
    assert a.token_entries() == {}


def test_token_commands_write_to_the_database_when_one_is_configured(
        two: tuple[PgRecords, PgRecords], tmp_path: Path) -> None:
    from click.testing import CliRunner  # noqa: PLC0415

    from wharf.gateway.app import main  # noqa: PLC0415

    url = two[0]._pool.conninfo
    env = {"WHARF_GATEWAY_DATABASE_URL": url}
    file = str(tmp_path / "tokens")
    runner = CliRunner()
    made = runner.invoke(main, ["token", "create", "bot", "--scope", "read",
                                "--tokens-file", file], env=env)
    assert made.exit_code == 0, made.output
    assert made.output.startswith("wgt_") and not (tmp_path / "tokens").exists()
    assert runner.invoke(main, ["token", "create", "local", "--tokens-file", file]).exit_code == 0
    listed = runner.invoke(main, ["token", "ls", "--tokens-file", file], env=env)
    assert listed.exit_code == 0
    assert [line.split() for line in listed.output.splitlines()] == [
        ["NAME", "SCOPE", "ALLOW", "KEPT", "IN"], ["local", "operate", "file"],
        ["bot", "read", "database"]]
    assert set(two[1].token_entries()) == {"bot"}
    gone = runner.invoke(main, ["token", "rm", "bot", "--tokens-file", file], env=env)
    assert gone.exit_code == 0 and two[1].token_entries() == {}
    again = runner.invoke(main, ["token", "rm", "bot", "--tokens-file", file], env=env)
    assert again.exit_code == 1 and "no token named 'bot'" in again.output
    bad = runner.invoke(main, ["token", "ls", "--database-url", "mysql://x"])
    assert bad.exit_code == 1 and "postgresql://" in bad.output
