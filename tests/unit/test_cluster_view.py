"""The gateway's cluster view in memory (wharf.gateway.view), its Status wording and its rows
(wharf.gateway.status), and the store that keeps it with SQLite as its durable copy: each
compared with what the gateway did before it had them (a row dict per container, Status from
the RFC 3339 text, filters over every row)."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_gateway_openapi import Gateway
from wharf.amqp_async import AsyncDelivery
from wharf.dockerapi import UP_STATES, ZERO_TIME, status_text
from wharf.errors import InvalidArgument
from wharf.gateway.bus import ACK_HOLD_MAX, ACK_HOLD_SECONDS, Bus
from wharf.gateway.placement import Availability
from wharf.gateway.status import NodeDocuments, node_document, render_rows, status_at
from wharf.gateway.store import ClusterStore
from wharf.gateway.view import (
    CURSOR,
    EPOCH,
    MICROSECOND,
    ContainerIndex,
    decode_cursor,
    dumps,
    encode_cursor,
    entry,
)
from wharf.humanize import human_duration
from wharf.protocol import Heartbeat, Load, NodeEvent, Snapshot

NOW = datetime(2026, 12, 6, 0, 30, 15, 123456, tzinfo=UTC)
STATES = ("running", "paused", "restarting", "removing", "dead", "exited", "created", "")


def _us(moment: datetime) -> int:
    return (moment - EPOCH) // MICROSECOND


# --- the references: how the gateway worded and filtered rows before --------------------------


def old_human_duration(seconds: float) -> str:
    secs, minutes = int(seconds), int(seconds) // 60
    hours = int(seconds / 3600 + 0.5)
    steps: list[tuple[bool, str]] = [
        (secs < 1, "Less than a second"), (secs == 1, "1 second"),
        (secs < 60, f"{secs} seconds"), (minutes == 1, "About a minute"),
        (minutes < 60, f"{minutes} minutes"), (hours == 1, "About an hour"),
        (hours < 48, f"{hours} hours"), (hours < 24 * 7 * 2, f"{hours // 24} days"),
        (hours < 24 * 30 * 2, f"{hours // 24 // 7} weeks"),
        (hours < 24 * 365 * 2, f"{hours // 24 // 30} months")]
    return next((text for hit, text in steps if hit),
                f"{int(seconds / 3600) // 24 // 365} years")


def old_row(node: str, data: dict[str, Any], now: datetime) -> dict[str, Any]:
    row = {**data, "Node": node}
    row["Status"] = status_text(str(data.get("State", "")), int(data.get("ExitCode") or 0),
                                str(data.get("StartedAt") or ZERO_TIME),
                                str(data.get("FinishedAt") or ZERO_TIME), now=now)
    return row


def old_matches(row: dict[str, Any], terms: dict[str, list[str]]) -> bool:
    checks = {
        "node": lambda v: row["Node"] == v,
        "name": lambda v: any(v in n.lstrip("/") for n in row["Names"]),
        "id": row["Id"].startswith,
        "status": lambda v: row["State"] == v,
        "ancestor": lambda v: row["Image"] == v or row.get("ImageID", "").startswith(v),
        "label": lambda v: (v.partition("=")[0] in row.get("Labels", {}) and
                            ("=" not in v or row["Labels"][v.partition("=")[0]] ==
                             v.partition("=")[2])),
    }
    return all((all if key == "label" else any)(checks[key](v) for v in values)
               for key, values in terms.items())


def old_list(containers: list[tuple[str, dict[str, Any]]], terms: dict[str, list[str]],
             every: bool, now: datetime) -> list[dict[str, Any]]:
    rows = []
    for node, data in sorted(containers, key=lambda c: (c[0], c[1]["Id"])):
        row = old_row(node, data, now)
        if not every and "status" not in terms and row["State"] not in UP_STATES:
            continue
        if old_matches(row, terms):
            rows.append(row)
    return rows


# --- Status ---------------------------------------------------------------------------------


def _stamps(rng: random.Random) -> list[str]:
    offsets = [0, 0.4, 0.9999, 1, 1.000001, 59.999999, 60, 61, 119.5, 3599.999999, 3600,
               5399.5, 5400, 86399, 172799, 172800, 1209599, 1209600, 5183999, 5184000,
               63071999, 63072000, 10**9, -5, -0.5]
    offsets += [rng.uniform(0, 10**8) for _ in range(150)]
    texts = [(NOW - timedelta(seconds=o)).isoformat().replace("+00:00", "Z") for o in offsets]
    texts += [(NOW - timedelta(seconds=o)).astimezone(
        timezone(timedelta(hours=5, minutes=30))).isoformat()
        for o in offsets[:10]]
    texts += ["2026-12-06T00:25:15.123456789Z", "2026-12-06T00:25:15Z ", "2026-12-06",
              ZERO_TIME, "0001-01-01T00:00:00.000Z", "not a time", ""]
    return texts


def test_status_at_words_every_state_and_time_exactly_as_status_text() -> None:
    rng = random.Random(15)
    stamps = _stamps(rng)
    now = _us(NOW)
    compared = 0
    for state, code in itertools.product(STATES, (0, 1, 137)):
        for started, finished in zip(stamps, rng.sample(stamps, len(stamps)), strict=True):
            data = {"Id": "c", "State": state, "ExitCode": code, "StartedAt": started,
                    "FinishedAt": finished}
            expected = old_row("n1", data, NOW)["Status"]
            assert status_at(entry("n1", data), now) == expected, data
            compared += 1
    assert compared > 4000


def test_human_duration_words_as_before_only_faster() -> None:
    rng = random.Random(7)
    values = [0, 0.5, 1, 1.5, 59.9, 60, 119.9, 120, 3599, 3600, 5399.9, 5400, 172799, 172800,
              -1, 10**10] + [rng.uniform(0, 10**9) for _ in range(5000)] + \
        [rng.uniform(0, 7200) for _ in range(5000)]
    for value in values:
        assert human_duration(value) == old_human_duration(value), value


# --- rows and filters -----------------------------------------------------------------------


def _fleet(rng: random.Random, nodes: int = 6, each: int = 12) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for n, i in itertools.product(range(nodes), range(each)):
        started = (NOW - timedelta(seconds=rng.uniform(0, 10**6))).isoformat()
        state = rng.choice(STATES[:-1])
        out.append((f"node{n}", {
            "Id": f"{rng.getrandbits(64):016x}{i:02d}", "Names": [f"/app-{n}-{i}"],
            "Image": rng.choice(["busybox", "debian:bookworm-slim"]),
            "ImageID": rng.choice(["sha256:aaa111", "sha256:bbb222"]),
            "Command": "sleep 1", "Created": 1, "Ports": [], "State": state,
            "Status": "what the daemon said", "Labels": {
                "tier": rng.choice(["web", "db"]), "zone": rng.choice(["a", "b", "ü"])},
            "StartedAt": started, "FinishedAt": started if state == "exited" else ZERO_TIME,
            "ExitCode": rng.choice([0, 2])}))
    return out


TERMS = [{}, {"node": ["node2"]}, {"node": ["node2", "node4", "nowhere"]},
         {"label": ["tier=web"]}, {"label": ["tier"]}, {"label": ["zone=ü", "tier=db"]},
         {"label": ["zone=a", "zone=b"]}, {"label": ["tier", "zone=b"]},
         {"label": ["tier=web"], "node": ["node1"]}, {"status": ["exited"]},
         {"name": ["app-3"]}, {"ancestor": ["busybox"]}, {"ancestor": ["sha256:bbb"]},
         {"id": ["0"]}, {"status": ["running", "paused"], "label": ["zone=a"]}]


@pytest.mark.parametrize("terms", TERMS)
@pytest.mark.parametrize("every", [False, True])
def test_the_index_lists_what_the_scan_over_every_row_listed(terms: dict[str, list[str]],
                                                              every: bool) -> None:
    fleet = _fleet(random.Random(3))
    index = ContainerIndex()
    for node, data in fleet:
        index.put(entry(node, data))
    rows, more = index.select(terms, every, None, None)
    assert not more
    expected = old_list(fleet, terms, every, NOW)
    assert json.loads(render_rows(rows, _us(NOW))) == expected
    # byte for byte what FastAPI's JSONResponse rendered
    assert render_rows(rows, _us(NOW)) == json.dumps(
        expected, ensure_ascii=False, separators=(",", ":")).encode()


def test_pages_with_a_cursor_make_the_whole_list_and_fields_pick_from_each_row() -> None:
    fleet = _fleet(random.Random(4))
    index = ContainerIndex()
    for node, data in fleet:
        index.put(entry(node, data))
    whole, _ = index.select({}, True, None, None)
    pages, after = [], None
    while True:
        page, more = index.select({}, True, after, 7)
        pages += page
        if not more:
            break
        assert len(page) == 7
        after = decode_cursor(encode_cursor(page[-1]))
    assert [(r.node, r.id) for r in pages] == [(r.node, r.id) for r in whole]
    picked = json.loads(render_rows(whole[:3], _us(NOW), ["Node", "Status", "Id", "SizeRw"]))
    full = json.loads(render_rows(whole[:3], _us(NOW)))
    assert picked == [{"Node": r["Node"], "Status": r["Status"], "Id": r["Id"]} for r in full]
    assert list(picked[0]) == ["Node", "Status", "Id"]  # in the order asked


@pytest.mark.parametrize("cursor", ["", "n1", "/c1", "n 1/c1", "n1/", "n1/a b", "n1/ä",
                                    "-n/c1", f"n1/{'a' * 257}"])
def test_a_cursor_that_is_not_node_slash_id_is_refused(cursor: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid cursor"):
        decode_cursor(cursor)


def test_a_cursor_names_a_place_in_the_order_whether_or_not_a_row_is_there() -> None:
    index = ContainerIndex()
    for node, key in (("n1", "a"), ("n1", "c"), ("n2", "b")):
        index.put(entry(node, {"Id": key, "State": "running"}))
    assert decode_cursor("n1/b/x") == ("n1", "b/x")
    after = [(r.node, r.id) for r in index.select({}, True, decode_cursor("n1/b"), None)[0]]
    assert after == [("n1", "c"), ("n2", "b")]
    assert index.select({}, True, decode_cursor("n9/0"), None) == ([], False)


def test_counts_and_label_indexes_follow_replacements_and_removals() -> None:
    index = ContainerIndex()
    web = {"Id": "c1", "Names": ["/web"], "State": "running", "Labels": {"tier": "web"}}
    index.put(entry("n1", web))
    index.put(entry("n1", {**web, "Id": "c2", "State": "exited"}))
    assert index.counts("n1") == (2, 1)
    index.put(entry("n1", {**web, "State": "exited", "Labels": {"tier": "db"}}))
    assert index.counts("n1") == (2, 0)
    assert [r.id for r in index.select({"label": ["tier=web"]}, True, None, None)[0]] == ["c2"]
    index.remove("n1", "c2")
    index.remove("n1", "c1")
    index.remove("n1", "c1")  # gone already: nothing
    assert index.counts("n1") == (0, 0) and len(index) == 0
    assert index.select({"label": ["tier"]}, True, None, None) == ([], False)


def test_a_snapshot_diff_names_only_what_changed() -> None:
    index = ContainerIndex()
    first = [{"Id": f"c{i}", "State": "running", "Status": "Up 1 second"} for i in range(5)]
    diff = index.diff("n1", first)
    assert [e.id for e in diff.upserts] == [f"c{i}" for i in range(5)] and not diff.removed
    index.apply(diff)
    # Status text aged (the gateway words its own), c1 stopped, c4 gone, c9 new
    second = [{**c, "Status": "Up 2 minutes"} for c in first[:4]]
    second[1] = {**second[1], "State": "exited"}
    second.append({"Id": "c9", "State": "running"})
    diff = index.diff("n1", second)
    assert [e.id for e in diff.upserts] == ["c1", "c9"] and diff.removed == ["c4"]
    index.apply(diff)
    assert not index.diff("n1", second)
    assert index.counts("n1") == (5, 4)


# --- the store: diffs written, heartbeats in memory, the view back after a restart -----------


LOAD = Load(containers=0, running=0, memory_total=8, memory_available=4, cpus=2, load1=0.1)


def _snap(seq: int, containers: list[dict[str, Any]], node: str = "n1") -> Snapshot:
    return Snapshot(node=node, seq=seq, engine_id="e1", taken_at=datetime.now(UTC),
                    labels={"zone": "a"}, containers=containers, images=[{"Id": "sha256:i1"}])


def test_a_snapshot_writes_only_the_rows_that_changed(tmp_path: Path) -> None:
    store = ClusterStore(tmp_path / "gw.db")
    rows = [{"Id": f"c{i}", "Names": [f"/c{i}"], "State": "running"} for i in range(50)]
    assert store.snapshot(_snap(1, rows), now=1.0)
    before = store._db.total_changes
    assert store.snapshot(_snap(2, [{**rows[0], "State": "exited"}, *rows[1:]]), now=2.0)
    assert store._db.total_changes - before == 2  # the node's row and c0's
    assert store.counts("n1") == (50, 49)
    assert store.containers()[0][1]["State"] == "exited"
    store.close()


def test_the_view_comes_back_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "gw.db"
    store = ClusterStore(path)
    assert store.heartbeat(Heartbeat(node="n1", seq=0, sent_at=datetime.now(UTC), load=LOAD,
                                     version="1", labels={"zone": "a"}), now=10.0)
    rows = [{"Id": f"c{i}", "Names": [f"/c{i}"], "State": "running",
             "Labels": {"app": f"a{i % 2}"}} for i in range(4)]
    assert store.snapshot(_snap(3, rows), now=11.0)
    assert store.node_event(NodeEvent(node="n1", seq=4, type="container", action="destroy",
                                      actor_id="c3", time_nano=1, engine_id="e1"))
    assert not store.heartbeat(Heartbeat(node="n1", seq=1, sent_at=datetime.now(UTC),
                                         load=LOAD, version="1", labels={"zone": "a"}),
                               now=12.0)
    with store._lock:  # kept in memory: the durable copy still has the first beat
        assert store._db.execute("SELECT last_seen FROM nodes").fetchone()[0] == 10.0
    listed = render_rows(store.select({"label": ["app=a0"]}, True)[0], 0)
    store.close()  # writes the heartbeats kept in memory
    again = ClusterStore(path)
    node = again.node("n1")
    assert node is not None and node.last_seen == 12.0 and node.seq == 4
    assert node.labels == {"zone": "a"} and again.counts("n1") == (3, 3)
    assert render_rows(again.select({"label": ["app=a0"]}, True)[0], 0) == listed
    assert not again.node_event(NodeEvent(node="n1", seq=4, type="container", action="x",
                                          actor_id="c0", time_nano=1, engine_id="e1"))
    again.close()


def test_heartbeats_are_written_when_something_durable_changes_or_on_flush(
        tmp_path: Path) -> None:
    store = ClusterStore(tmp_path / "gw.db")

    def beat(**changes: Any) -> Heartbeat:
        return Heartbeat(**{"node": "n1", "seq": 0, "sent_at": datetime.now(UTC),
                            "load": LOAD, "version": "1", **changes})

    def stored() -> tuple[float, str]:
        with store._lock:
            row = store._db.execute("SELECT last_seen, version FROM nodes").fetchone()
        return row[0], row[1]

    assert store.heartbeat(beat(), now=1.0) and stored() == (1.0, "1")
    store.heartbeat(beat(), now=2.0)
    assert stored() == (1.0, "1")
    store.heartbeat(beat(version="2"), now=3.0)  # a new version: written at once
    assert stored() == (3.0, "2")
    store.heartbeat(beat(version="2"), now=4.0)
    store.flush()
    assert stored() == (4.0, "2")
    store.close()


# --- GET /v1/containers' limit, cursor and fields (the app without a broker) -----------------


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    made = Gateway(tmp_path)
    made.store.snapshot(_snap(1, [{"Id": f"c{i:02d}", "Names": [f"/c{i}"], "State": "running",
                                   "Labels": {"app": f"a{i % 3}"}} for i in range(10)]), 1.0)
    made.store.snapshot(_snap(1, [{"Id": "d0", "Names": ["/d0"], "State": "exited"}], "n2"),
                        1.0)
    yield made
    made.store.close()


def test_pages_follow_their_next_cursor_to_the_end(gateway: Gateway) -> None:
    seen: list[str] = []
    params: dict[str, Any] = {"all": "1", "limit": "4", "fields": ["Id", "Node"]}
    while True:
        page = gateway.request("GET", "/v1/containers", params=params)
        assert page.status_code == 200, page.text
        assert all(set(row) == {"Id", "Node"} for row in page.json())
        seen += [row["Id"] for row in page.json()]
        following = page.headers.get("x-wharf-next-cursor")
        if following is None:
            assert "link" not in page.headers
            break
        assert page.headers["link"].startswith("</v1/containers?") and \
            page.headers["link"].endswith('>; rel="next"')
        params["cursor"] = following
    assert seen == [f"c{i:02d}" for i in range(10)] + ["d0"]
    by_label = gateway.request("GET", "/v1/containers", params={
        "filters": json.dumps({"label": ["app=a1"]}), "fields": ["Id", "Id"]})
    assert by_label.json() == [{"Id": "c01"}, {"Id": "c04"}, {"Id": "c07"}]


@pytest.mark.parametrize(("params", "message"), [
    ({"limit": "0"}, "limit"), ({"limit": "100001"}, "limit"), ({"limit": "ten"}, "limit"),
    ({"fields": "Colour"}, "fields"), ({"cursor": "%%%"}, "cursor"),
    ({"cursor": "AAAA"}, "cursor"),
    ({"filters": json.dumps({"colour": ["red"]})}, "invalid filter 'colour'")])
def test_bad_limit_cursor_and_fields_are_a_400_that_says_why(
        gateway: Gateway, params: dict[str, Any], message: str) -> None:
    refused = gateway.request("GET", "/v1/containers", params=params)
    assert refused.status_code == 400, refused.text
    assert refused.json()["code"] == "invalid_argument"
    assert message in refused.json()["message"]


def test_the_openapi_document_describes_limit_cursor_and_fields(gateway: Gateway) -> None:
    operation = gateway.app.openapi()["paths"]["/v1/containers"]["get"]
    parameters = {p["name"]: p for p in operation["parameters"]}
    assert parameters["limit"]["schema"]["anyOf"][0]["maximum"] == 100_000
    assert parameters["cursor"]["schema"]["anyOf"][0]["pattern"] == f"^{CURSOR.pattern}$"
    assert "Node" in parameters["fields"]["schema"]["anyOf"][0]["items"]["enum"]
    assert "X-Wharf-Next-Cursor" in operation["responses"]["200"]["headers"]


def test_a_snapshot_json_cannot_carry_is_dropped_as_malformed_and_the_view_stays(
        tmp_path: Path) -> None:
    store = ClusterStore(tmp_path / "gw.db")
    assert store.snapshot(_snap(1, [{"Id": "c1", "State": "running"}]), now=1.0)
    bus = Bus("amqp://unused/", "gw", store, on_event=lambda: None)
    body = _snap(2, [{"Id": "c2", "State": "running"}]).model_dump_json().encode() \
        .replace(b'"State":"running"', b'"State":"running","Cpu":NaN')
    bus._on_message(AsyncDelivery(body, "node.n1.snapshot", 1, False, None, None,
                                  "wharf-node-n1", 0))
    assert bus.dropped["malformed"] == 1
    assert [r.id for r in store.select({}, True)[0]] == ["c1"]
    assert render_rows(store.select({}, True)[0], 0).startswith(b'[{"Id":"c1"')
    store.close()


class AckLog:
    """The broker side of acks: which deliveries were acked, in order."""

    user_id = "gw"

    def __init__(self) -> None:
        self.acked: list[int] = []

    def ack(self, delivery: AsyncDelivery) -> None:
        self.acked.append(delivery.delivery_tag)

    async def close(self) -> None:
        return None


def test_acks_are_held_briefly_and_go_as_one_for_many_messages(tmp_path: Path) -> None:
    store = ClusterStore(tmp_path / "gw.db")
    bus = Bus("amqp://unused/", "gw", store, on_event=lambda: None)
    acks = AckLog()
    bus.broker = acks  # type: ignore[assignment]
    beat = Heartbeat(node="n1", seq=0, sent_at=datetime.now(UTC), load=LOAD,
                     version="1").model_dump_json().encode()

    def deliver(tag: int) -> None:
        bus._on_message(AsyncDelivery(beat, "node.n1.heartbeat", tag, False, None, None,
                                      "wharf-node-n1", 0))

    async def scenario() -> None:
        for tag in (1, 2, 3):
            deliver(tag)
        assert acks.acked == []  # held
        await asyncio.sleep(ACK_HOLD_SECONDS * 2)
        assert acks.acked == [3]  # one ack for the three (the broker's is `multiple`)
        for tag in range(4, 4 + ACK_HOLD_MAX):
            deliver(tag)
        assert acks.acked == [3, 3 + ACK_HOLD_MAX]  # never more than ACK_HOLD_MAX held
        deliver(200)
        await bus.close()  # what is held is acked before the connection goes
        assert acks.acked[-1] == 200

    asyncio.run(scenario())
    store.close()


def test_node_documents_kept_between_requests_are_the_bytes_node_document_renders(
        tmp_path: Path) -> None:
    """GET /v1/nodes renders a node again only when its row or counts changed; whatever it
    keeps, the body is byte for byte the documents rendered afresh (Status and LastSeenAgo
    with the clock), so a stale node, label or count never shows."""
    store = ClusterStore(tmp_path / "gw.db")
    def beat(name: str, labels: dict[str, str], at: float) -> None:
        store.heartbeat(Heartbeat(node=name, seq=0, sent_at=datetime.now(UTC), load=LOAD,
                                  version="0.1.0", labels=labels, address="10.0.0.1:2376"),
                        now=at)

    def afresh(now: float, ready: Any) -> bytes:
        counts = store.container_counts()
        return dumps([node_document(n, ready(n), counts.get(n.name, (0, 0)), now=now)
                      for n in store.nodes()])

    for i in range(5):
        beat(f"n{i}", {"rack": str(i), "note": 'a "quoted" ünïcode'}, 100.0 + i)
    documents = NodeDocuments()

    def ready(node: Any) -> bool:
        return bool(node.name != "n3")

    first = documents.render(store.nodes(), store.container_counts(), ready, now=107.25)
    assert first == afresh(107.25, ready)
    beat("n1", {"rack": "moved"}, 108.0)  # a new row: rendered again
    store.snapshot(Snapshot(node="n2", seq=1, engine_id="e2", taken_at=datetime.now(UTC),
                            containers=[{"Id": "c1", "Names": ["/a"], "State": "running"}],
                            images=[]), now=108.0)
    store.set_availability("n4", Availability.DRAIN, 108.5)
    later = documents.render(store.nodes(), store.container_counts(), lambda n: True,
                             now=200.123456)
    assert later == afresh(200.123456, lambda n: True)
    parsed = {d["Name"]: d for d in json.loads(later)}
    assert parsed["n1"]["Labels"] == {"rack": "moved"} and parsed["n2"]["Containers"] == 1
    assert parsed["n0"]["LastSeenAgo"] == 100.123 and parsed["n3"]["Status"] == "ready"
    assert parsed["n4"]["Availability"] == "drain"
    store.close()
