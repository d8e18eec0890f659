"""The cluster's events with docker's filters: the gateway's checks (400 with a message), its
filtering and time window, replay or only new events, and ``wharf events --all-nodes`` /
``--node`` asking for them (the app without a broker, as test_gateway_openapi; the CLI against
a fake gateway). With a real gateway and node: tests/integration/test_gateway_stats_events.py.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.unit.test_cli_gateway import FakeGateway, run
from tests.unit.test_gateway_openapi import Gateway
from wharf.cli.commands.events import event_line, gateway_params
from wharf.cli.failure import CLIError
from wharf.errors import InvalidArgument
from wharf.gateway.events import EventHub, EventQuery, event_query, unix_nanos

SECOND = 1_000_000_000
T0 = 1_795_828_000 * SECOND


def event(node: str, action: str, name: str, at: int, kind: str = "container",
          **labels: str) -> dict[str, Any]:
    actor = (name * 64)[:64] if kind == "container" else name
    image = {"image": "busybox:latest"} if kind == "container" else {}
    return {"Type": kind, "Action": action, "node": node, "scope": "cluster",
            "Actor": {"ID": actor, "Attributes": {"name": name, **image, **labels}},
            "time": at // SECOND, "timeNano": at}


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    made = Gateway(tmp_path)
    for document in (event("n1", "start", "a", T0, tier="web"),
                     event("n2", "start", "b", T0 + SECOND, tier="db"),
                     event("n1", "die", "a", T0 + 2 * SECOND, tier="web", zone="x"),
                     event("n2", "down", "n2", T0 + 3 * SECOND, kind="node")):
        made.store.append_event(document)
    yield made
    made.store.close()


def listed(gateway: Gateway, **params: str) -> list[dict[str, Any]]:
    reply = gateway.request("GET", "/v1/events", params={"follow": "false", **params})
    assert reply.status_code == 200, reply.text
    return [json.loads(line) for line in reply.text.splitlines()]


def names(found: list[dict[str, Any]]) -> list[str]:
    return [f"{e['node']}:{e['Action']}:{e['Actor']['Attributes']['name']}" for e in found]


def test_filters_select_as_docker_events_and_by_node(gateway: Gateway) -> None:
    def only(**terms: list[str]) -> list[str]:
        return names(listed(gateway, filters=json.dumps(terms)))

    assert only() == ["n1:start:a", "n2:start:b", "n1:die:a", "n2:down:n2"]
    assert only(node=["n1"]) == ["n1:start:a", "n1:die:a"]
    assert only(node=["n1", "n2"], type=["node"]) == ["n2:down:n2"]
    assert only(event=["die", "down"]) == ["n1:die:a", "n2:down:n2"]
    assert only(container=["b"]) == ["n2:start:b"]  # by name; a node event is no container
    assert only(container=["a" * 12]) == ["n1:start:a", "n1:die:a"]  # by short ID
    assert only(image=["busybox:latest"], node=["n2"]) == ["n2:start:b"]
    assert only(label=["tier=web", "zone"]) == ["n1:die:a"]  # every label must match
    assert names(listed(gateway, filters='{"type": {"container": true}, "node": "n2"}')) == \
        ["n2:start:b"]


def test_the_time_window_and_the_replay(gateway: Gateway) -> None:
    since = f"{T0 // SECOND + 1}"
    assert names(listed(gateway, since_time=since)) == ["n2:start:b", "n1:die:a", "n2:down:n2"]
    assert names(listed(gateway, since_time=since, until_time=f"{T0 // SECOND + 2}.5")) == [
        "n2:start:b", "n1:die:a"]
    assert listed(gateway, replay="false") == []  # only what comes after the request
    first = listed(gateway)[0]["id"]
    assert names(listed(gateway, since=str(first))) == ["n2:start:b", "n1:die:a", "n2:down:n2"]


@pytest.mark.parametrize(("params", "message"), [
    ({"filters": '{"colour": ["red"]}'}, "invalid filter 'colour'"),
    ({"filters": '{"type": ["spaceship"]}'}, "invalid filter 'type=spaceship'"),
    ({"filters": "[1"}, "is not JSON"),
    ({"since_time": "yesterday"}, "since_time"),
    ({"until_time": "-5"}, "until_time"),
])
def test_bad_filters_and_times_are_400_with_a_message(gateway: Gateway, params: dict[str, str],
                                                      message: str) -> None:
    reply = gateway.request("GET", "/v1/events", params={"follow": "false", **params})
    assert reply.status_code == 400 and message in reply.json()["message"], reply.text
    assert reply.json()["code"] == "invalid_argument"


def test_the_document_lists_the_filters_and_types(gateway: Gateway) -> None:
    operation = gateway.app.openapi()["paths"]["/v1/events"]["get"]
    params = {p["name"]: p for p in operation["parameters"]}
    assert {"since", "follow", "replay", "since_time", "until_time", "filters"} <= set(params)
    schema = params["filters"]["content"]["application/json"]["schema"]
    assert set(schema["properties"]) == {"type", "event", "container", "image", "label", "node"}
    assert schema["additionalProperties"] is False


def test_a_followed_stream_ends_at_until_and_sees_new_events(tmp_path: Path) -> None:
    gateway = Gateway(tmp_path)
    hub: EventHub = gateway.app.state.events
    gateway.store.append_event(event("n1", "start", "old", T0))

    async def follow() -> list[str]:
        seen: list[str] = []
        now = asyncio.get_running_loop().time()
        query = EventQuery(replay=False, filters={"node": ["n1"]},
                           until_nano=time.time_ns() + SECOND // 2)

        async def later() -> None:
            await asyncio.sleep(0.1)
            gateway.store.append_event(event("n2", "start", "elsewhere", T0 + SECOND))
            gateway.store.append_event(event("n1", "start", "new", T0 + SECOND))
            hub.notify()

        task = asyncio.create_task(later())
        async for _, document in hub.stream(query):
            seen.append(document["Actor"]["Attributes"]["name"])
        await task
        assert asyncio.get_running_loop().time() - now < 3  # ended at until, not never
        return seen

    try:
        assert asyncio.run(follow()) == ["new"]
    finally:
        gateway.store.close()


def test_query_parsing() -> None:
    assert unix_nanos("since_time", "1795828000.5") == T0 + SECOND // 2
    assert unix_nanos("since_time", "1795828000.000000001") == T0 + 1
    assert unix_nanos("since_time", None) is None
    query = event_query(filters='{"label": ["a=b"]}', since_time="10")
    assert query.filters == {"label": ["a=b"]} and query.since_nano == 10 * SECOND
    with pytest.raises(InvalidArgument, match="the events filters are container, event"):
        event_query(filters='{"status": ["x"]}')


# --- the CLI --------------------------------------------------------------------------------


def test_the_cli_asks_the_gateway_with_docker_flags_translated() -> None:
    assert gateway_params({}, {}, None) == {"follow": "true", "replay": "false"}
    params = gateway_params({"since": "1795828000.000000000", "until": "1795829000.5"},
                            {"type": ["container"]}, "n1")
    assert params["since_time"] == "1795828000.000000000" and "replay" not in params
    assert params["until_time"] == "1795829000.5"
    assert json.loads(str(params["filters"])) == {"type": {"container": True},
                                                  "node": {"n1": True}}
    with pytest.raises(CLIError, match="not from 'any'"):
        gateway_params({}, {}, "any")
    with pytest.raises(CLIError, match="give one or the other"):
        gateway_params({}, {"node": ["n2"]}, "n1")
    assert event_line(event("n1", "start", "a", T0)).endswith(
        "container start " + "a" * 64 + " (node=n1, image=busybox:latest, name=a)")


def test_events_all_nodes_and_node_through_a_fake_gateway() -> None:
    fake = FakeGateway()
    stored = [event("n1", "start", "a", T0), event("n1", "die", "a", T0 + SECOND)]

    def answer(request: httpx.Request) -> httpx.Response:
        if "colour" in request.url.params.get("filters", ""):
            return httpx.Response(400, json={"message": "invalid filter 'colour'",
                                             "code": "invalid_argument"})
        lines = "".join(json.dumps(e) + "\n" for e in stored)
        return httpx.Response(200, content=lines,
                              headers={"content-type": "application/x-ndjson"})

    fake.route("GET", "/v1/events", answer)
    done = run(fake, "events", "--all-nodes", "--since", "1795828000", "--format",
               "{{.node}} {{.Action}}")
    assert done.exit_code == 0, done.output
    assert done.output == "n1 start\nn1 die\n"
    assert fake.seen[-1].url.params["since_time"] == "1795828000"
    one = run(fake, "--node", "n1", "events", "-f", "event=die")
    assert one.exit_code == 0, one.output
    assert json.loads(fake.seen[-1].url.params["filters"]) == {"event": {"die": True},
                                                               "node": {"n1": True}}
    assert fake.seen[-1].url.params["replay"] == "false"
    refused = run(fake, "events", "--all-nodes", "-f", "colour=red")
    assert refused.exit_code == 1 and "invalid filter 'colour'" in refused.output


def test_the_stats_relay_is_documented_and_checks_its_flags(gateway: Gateway) -> None:
    # (beside the events: the other read this change relays through the gateway)
    operation = gateway.app.openapi()["paths"][
        "/v1/nodes/{node}/containers/{container}/stats"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"node", "container", "stream",
                                                            "one-shot"}
    assert {"200", "400", "404", "503"} <= set(operation["responses"])
    refused = gateway.request("GET", "/v1/nodes/n1/containers/web/stats?stream=maybe")
    assert refused.status_code == 400 and "stream" in refused.json()["message"]
