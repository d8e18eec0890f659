"""A node's availability (active, pause, drain: Swarm's): placement skips what is not active,
a drained node refuses new containers sent to it by name, the store keeps it (schema version
3, from a version-2 database with its rows), only an admin token sets it, and the CLI shows
and sets it."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.unit.test_cli_gateway import NODES, FakeGateway, run
from tests.unit.test_gateway_openapi import Gateway
from wharf.errors import Conflict, NotFound, PermissionDenied, Unavailable
from wharf.gateway import auth, schema
from wharf.gateway.dispatch import Dispatcher
from wharf.gateway.placement import Availability, Candidate, parse_constraint, place
from wharf.gateway.policy import Grant, Scope, check_scope, required_scope
from wharf.gateway.store import ClusterStore
from wharf.protocol import (
    CommandEnvelope,
    ContainerPayload,
    CreatePayload,
    Heartbeat,
    Load,
    Payload,
    RunPayload,
)

LOAD = Load(containers=0, running=0, memory_total=8 << 30, memory_available=4 << 30, cpus=2,
            load1=0.1)


def _beat(node: str) -> Heartbeat:
    return Heartbeat(node=node, seq=0, sent_at=datetime.now(UTC), labels={}, load=LOAD,
                     version="0.1.0")


# --- placement ------------------------------------------------------------------------------


def test_placement_skips_paused_and_drained_nodes() -> None:
    nodes = [Candidate("a", True, 0, 0, availability=Availability.DRAIN),
             Candidate("b", True, 0, 0, availability=Availability.PAUSE),
             Candidate("c", True, 5, 0),
             Candidate("d", False, 0, 0)]
    assert place(nodes, []) == "c"  # the busiest, but the only ready and active one
    with pytest.raises(Unavailable, match="3 of 4 nodes ready, 1 paused, 1 drained, none "
                       "matching the constraints"):
        place(nodes, [parse_constraint("node.name!=c")])


def test_no_active_node_is_a_clear_unavailable() -> None:
    held = [Candidate("a", True, 0, 0, availability=Availability.DRAIN),
            Candidate("b", True, 0, 0, availability=Availability.DRAIN)]
    with pytest.raises(Unavailable) as raised:
        place(held, [])
    assert raised.value.message == ("no node can take the container (2 of 2 nodes ready, "
                                    "2 drained: placement skips paused and drained nodes)")


# --- the store and its migration ------------------------------------------------------------


def test_a_version_2_database_migrates_and_its_nodes_are_active(tmp_path: Path) -> None:
    path = tmp_path / "gw.db"
    db = sqlite3.connect(path, isolation_level=None)
    schema.migrate(db, path, target=2)  # a gateway.db from before availability, with a node
    db.execute("INSERT INTO nodes (name, labels, first_seen, last_seen) VALUES"
               " ('n1', '{\"zone\": \"a\"}', 1.0, 2.0)")
    db.close()
    store = ClusterStore(path)
    with store._lock:
        assert schema.version(store._db) == len(schema.MIGRATIONS)
    node = store.node("n1")
    assert node is not None and node.availability is Availability.ACTIVE
    assert node.address == ""  # version 4: none until its next heartbeat says
    assert node.labels == {"zone": "a"} and node.last_seen == 2.0
    with pytest.raises(sqlite3.IntegrityError), store._lock:  # the column checks its values
        store._db.execute("UPDATE nodes SET availability='gone' WHERE name='n1'")
    store.close()


def test_availability_is_stored_kept_across_restarts_and_each_change_is_an_event(
        tmp_path: Path) -> None:
    path = tmp_path / "gw.db"
    store = ClusterStore(path)
    assert store.set_availability("n1", Availability.DRAIN, 5.0) is None  # unknown node
    assert store.heartbeat(_beat("n1"), now=1.0)
    drained = store.set_availability("n1", Availability.DRAIN, 5.0)
    assert drained is not None and drained.availability is Availability.DRAIN
    assert store.set_availability("n1", Availability.DRAIN, 6.0) is not None  # no change
    assert not store.heartbeat(_beat("n1"), now=7.0)  # a heartbeat leaves it as it is
    store.close()
    reopened = ClusterStore(path)
    node = reopened.node("n1")
    assert node is not None and node.availability is Availability.DRAIN
    events = [e for _, e in reopened.events(0)]
    assert events == [{"Type": "node", "Action": "update", "node": "n1", "Actor": {
        "ID": "n1", "Attributes": {"name": "n1", "availability.old": "active",
                                   "availability.new": "drain"}},
        "scope": "cluster", "time": 5, "timeNano": 5_000_000_000}]
    assert reopened.heartbeat(_beat("n2"), now=8.0)  # a node first seen later: active
    assert [n.availability for n in reopened.nodes()] == [Availability.DRAIN,
                                                          Availability.ACTIVE]
    reopened.close()


# --- the dispatcher: placement and commands by name -----------------------------------------


class _Sent:
    def __init__(self) -> None:
        self.sent: list[CommandEnvelope] = []

    async def publish(self, envelope: CommandEnvelope) -> None:
        self.sent.append(envelope)


def _two_nodes(tmp_path: Path) -> tuple[Dispatcher, _Sent]:
    store = ClusterStore(tmp_path / "gw.db")
    now = time.time()
    for name in ("n1", "n2"):
        store.heartbeat(_beat(name), now)
    publisher = _Sent()
    return Dispatcher(store, publisher, gateway_id="gw", down_after=600), publisher


def _submit(dispatcher: Dispatcher, node: str, payload: Payload) -> None:
    asyncio.run(dispatcher.submit(node, payload, principal="ci", deadline=5))


def test_a_drained_node_refuses_new_containers_by_name_a_paused_one_takes_them(
        tmp_path: Path) -> None:
    dispatcher, publisher = _two_nodes(tmp_path)
    assert dispatcher.choose([]) == "n1"
    dispatcher.set_availability("n1", Availability.DRAIN)
    assert dispatcher.choose([]) == "n2"
    for payload in (CreatePayload(create={"Image": "busybox"}),
                    RunPayload(create={"Image": "busybox"})):
        with pytest.raises(Conflict, match=r"node n1 is drained .*'wharf node update "
                           r"--availability active n1'"):
            _submit(dispatcher, "n1", payload)
    _submit(dispatcher, "n1", ContainerPayload(type="start", container="web"))  # lifecycle
    dispatcher.set_availability("n1", Availability.PAUSE)
    dispatcher.set_availability("n2", Availability.PAUSE)
    with pytest.raises(Unavailable, match="2 paused"):
        dispatcher.choose([])
    _submit(dispatcher, "n1", CreatePayload(create={"Image": "busybox"}))  # by name: yes
    assert [e.type for e in publisher.sent] == ["start", "create"]
    dispatcher.set_availability("n1", Availability.ACTIVE)
    assert dispatcher.choose([]) == "n1"
    with pytest.raises(NotFound, match="no such node: n9"):
        dispatcher.set_availability("n9", Availability.DRAIN)
    # a new dispatcher (a restarted gateway) knows it from the store
    dispatcher.set_availability("n1", Availability.DRAIN)
    again = Dispatcher(dispatcher.store, publisher, gateway_id="gw", down_after=600)
    with pytest.raises(Conflict):
        _submit(again, "n1", RunPayload(create={"Image": "busybox"}))
    dispatcher.store.close()


# --- the route and its scope ----------------------------------------------------------------


def test_only_an_admin_token_sets_a_nodes_availability() -> None:
    for path in ("/v1/nodes/n1/update", "/v1/nodes/n1/update/", "/v1/nodes/*/update"):
        assert required_scope("POST", path)[0] is Scope.ADMIN, path
    assert required_scope("GET", "/v1/nodes/n1")[0] is Scope.READ
    assert required_scope("POST", "/v1/nodes/n1/containers/update")[0] is Scope.OPERATE
    with pytest.raises(PermissionDenied, match=r"scope: POST /v1/nodes/n1/update \(a node's "
                       "availability\\) needs a token with scope 'admin'; token 'ops' has "
                       "scope 'operate'"):
        check_scope(Grant("ops", Scope.OPERATE), "POST", "/v1/nodes/n1/update")
    check_scope(Grant("root", Scope.ADMIN), "POST", "/v1/nodes/n1/update")


def test_the_update_route_answers_the_node_document_and_its_errors(tmp_path: Path) -> None:
    gateway = Gateway(tmp_path)
    try:
        gateway.store.heartbeat(_beat("n1"), time.time())
        drained = gateway.request("POST", "/v1/nodes/n1/update", json={"Availability": "drain"})
        assert drained.status_code == 200, drained.text
        assert drained.json()["Name"] == "n1" and drained.json()["Availability"] == "drain"
        assert gateway.request("GET", "/v1/nodes").json()[0]["Availability"] == "drain"
        refused = gateway.request("POST", "/v1/nodes/n1/containers/create",
                                  json={"Image": "busybox"})
        assert refused.status_code == 409 and refused.json()["code"] == "conflict"
        placed = gateway.request("POST", "/v1/containers", json={"Image": "busybox"})
        assert placed.status_code == 503 and "1 drained" in placed.json()["message"]
        missing = gateway.request("POST", "/v1/nodes/n9/update", json={"Availability": "pause"})
        assert missing.status_code == 404 and missing.json()["code"] == "not_found"
        for body in ({}, {"Availability": "Drain"}, {"Availability": "drain", "Role": "x"}):
            bad = gateway.request("POST", "/v1/nodes/n1/update", json=body)
            assert bad.status_code == 400 and bad.json()["code"] == "invalid_argument", body
        operator = auth.create_token(gateway.app.state.settings.tokens_file, "ops",
                                     Scope.OPERATE)
        denied = gateway.request("POST", "/v1/nodes/n1/update", json={"Availability": "active"},
                                 headers={"Authorization": f"Bearer {operator}"})
        assert denied.status_code == 403
        document = gateway.app.openapi()["paths"]["/v1/nodes/{node}/update"]["post"]
        assert {"200", "400", "401", "403", "404", "413", "429"} == set(document["responses"])
        assert gateway.publisher.sent == []
    finally:
        gateway.store.close()


# --- the CLI --------------------------------------------------------------------------------


def test_node_ls_shows_availability_and_node_update_sets_it() -> None:
    gateway = FakeGateway()
    listed = [{**NODES[0], "Availability": "drain"}, NODES[1]]  # NODES[1]: an older gateway
    gateway.route("GET", "/v1/nodes", lambda r: httpx.Response(200, json=listed))
    sent: list[object] = []

    def update(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(200, json={**NODES[0], "Availability": "pause"})

    gateway.route("POST", "/v1/nodes/node1/update", update)
    table = run(gateway, "node", "ls")
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0].split()[:3] == ["NAME", "STATUS", "AVAILABILITY"]
    assert lines[1].split()[:3] == ["node1", "ready", "Drain"]
    assert lines[2].split()[:3] == ["node2", "down", "Active"]
    updated = run(gateway, "node", "update", "--availability", "pause", "node1")
    assert updated.exit_code == 0, updated.output
    assert updated.output == "node1\n" and sent == [{"Availability": "pause"}]
    wrong = run(gateway, "node", "update", "--availability", "off", "node1")
    assert wrong.exit_code != 0 and "'off' is not one of" in wrong.output
    gateway.route("POST", "/v1/nodes/node1/update", lambda r: httpx.Response(403, json={
        "message": "scope: POST /v1/nodes/node1/update (a node's availability) needs a token "
                   "with scope 'admin'", "code": "permission_denied"}))
    denied = run(gateway, "node", "update", "--availability", "drain", "node1")
    assert denied.exit_code != 0 and "needs a token with scope 'admin'" in denied.output
