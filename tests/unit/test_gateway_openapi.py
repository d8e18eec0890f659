"""The gateway's HTTP contract without a broker: the OpenAPI document says every answer a
route gives, and the app gives no other (tests/integration/test_gateway_contract.py runs
schemathesis over the same document against a real gateway).

The app is create_app's, with its state filled in by hand (no lifespan: no RabbitMQ) and a
publisher that records commands and never answers, as a node that took them and went quiet.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import Field, TypeAdapter, ValidationError

from wharf.errors import InvalidArgument
from wharf.gateway import auth
from wharf.gateway.app import create_app
from wharf.gateway.auth import OPEN_PATHS
from wharf.gateway.dispatch import Dispatcher
from wharf.gateway.events import EventHub
from wharf.gateway.models import CreateBody, portable
from wharf.gateway.placement import CONSTRAINT, parse_constraint
from wharf.gateway.policy import Scope
from wharf.gateway.settings import GatewaySettings
from wharf.gateway.status import NodeDocuments
from wharf.gateway.store import ClusterStore
from wharf.protocol import CommandEnvelope


class Silent:
    """A publisher whose node never answers."""

    def __init__(self) -> None:
        self.sent: list[CommandEnvelope] = []

    async def publish(self, envelope: CommandEnvelope) -> None:
        self.sent.append(envelope)


class Gateway:
    def __init__(self, tmp_path: Path) -> None:
        settings = GatewaySettings(amqp_url="amqp://unused/", state_dir=tmp_path,
                                   tokens_file=tmp_path / "tokens")
        self.token = auth.create_token(settings.tokens_file, "ci", Scope.ADMIN)
        self.app: FastAPI = create_app(settings)
        self.store = ClusterStore(tmp_path / "gateway.db")
        self.publisher = Silent()
        dispatcher = Dispatcher(self.store, self.publisher, gateway_id="gw", down_after=600)
        dispatcher.seen("n1", time.time())  # n1 is ready
        state = self.app.state
        state.settings, state.store, state.dispatcher = settings, self.store, dispatcher
        state.events, state.node_documents = EventHub(self.store), NodeDocuments()

    def request(self, method: str, path: str, **options: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                headers = {"Authorization": f"Bearer {self.token}",
                           **options.pop("headers", {})}
                return await client.request(method, path, headers=headers, **options)
        return asyncio.run(send())


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    made = Gateway(tmp_path)
    yield made
    made.store.close()


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            yield path, method, operation


def test_every_route_documents_its_answers_and_the_bearer_scheme(gateway: Gateway) -> None:
    document = gateway.app.openapi()
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert "HTTPValidationError" not in json.dumps(document)  # validation errors are 400s
    for path, method, operation in _operations(document):
        answers = operation["responses"]
        if path in OPEN_PATHS:
            assert "security" not in operation
            continue
        assert operation["security"] == [{"bearer": []}], (method, path)
        assert {"401", "403", "413", "429"} <= set(answers), (method, path)
        assert "Retry-After" in answers["429"]["headers"]
        checked = [p for p in operation.get("parameters", [])
                   if p["in"] != "path" or "pattern" in p["schema"]]
        if checked or "requestBody" in operation:  # something a request may get wrong
            assert "400" in answers, (method, path)
        names = {p["name"] for p in operation.get("parameters", [])}
        if "Idempotency-Key" in names and method != "get":
            assert {"202", "422"} <= set(answers), (method, path)
        if "Idempotency-Key" in names:
            deadline = next(p for p in operation["parameters"] if p["name"] == "deadline")
            assert deadline["schema"]["minimum"] == 0.1
        for code, answer in answers.items():
            if code >= "400":
                schema = answer["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (path, code)
    waited = document["paths"]["/v1/nodes/{node}/containers/{container}/json"]["get"]
    assert {"404", "503", "504"} <= set(waited["responses"])
    body = document["components"]["schemas"]["CreateBody"]
    assert body["required"] == ["Image"] and body["additionalProperties"] is True


@pytest.mark.parametrize("deadline", ["5e-324", "0.05", "0", "-1", "nan", "inf", "3601",
                                      "soon"])
def test_a_deadline_outside_the_floor_and_the_ceiling_is_a_400(gateway: Gateway,
                                                              deadline: str) -> None:
    refused = gateway.request("POST", "/v1/nodes/n1/containers/web/start",
                              params={"deadline": deadline})
    assert refused.status_code == 400, refused.text
    assert refused.json() == {"code": "invalid_argument", "message": (
        f"deadline: {deadline!r} is not a number of seconds from 0.1 to 3600")}
    assert gateway.publisher.sent == []


def test_a_command_without_an_answer_is_a_504_at_its_deadline(gateway: Gateway) -> None:
    for method, path in (("POST", "/v1/nodes/n1/containers/web/start?wait=1&deadline=0.1"),
                         ("GET", "/v1/nodes/n1/containers/web/json?deadline=0.1")):
        started = time.monotonic()
        late = gateway.request(method, path)
        assert late.status_code == 504, late.text
        assert late.json()["code"] == "deadline_exceeded"
        assert "no answer from node n1" in late.json()["message"]
        assert time.monotonic() - started < 2
    accepted = gateway.request("POST", "/v1/nodes/n1/containers/web/start",
                               params={"deadline": "0.1"})
    assert accepted.status_code == 202 and accepted.headers["location"].startswith("/v1/")


def test_a_key_reused_for_another_request_is_a_422(gateway: Gateway) -> None:
    key = {"Idempotency-Key": "once"}
    first = gateway.request("POST", "/v1/nodes/n1/containers/a/start", headers=key)
    again = gateway.request("POST", "/v1/nodes/n1/containers/a/start", headers=key)
    assert first.status_code == again.status_code == 202
    other = gateway.request("POST", "/v1/nodes/n1/containers/b/start", headers=key)
    assert other.status_code == 422 and other.json()["code"] == "unprocessable"
    for bad in ("", "two words", "k" * 201):
        refused = gateway.request("POST", "/v1/nodes/n1/containers/a/start",
                                  headers={"Idempotency-Key": bad})
        assert refused.status_code == 400 and "Idempotency-Key" in refused.json()["message"]
    assert len(gateway.publisher.sent) == 1


def test_the_frameworks_refusals_speak_the_error_model(gateway: Gateway) -> None:
    missing = gateway.request("GET", "/v1/nope")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    other = gateway.request("PUT", "/v1/containers")
    assert other.status_code == 405 and other.headers["allow"] == "GET, POST"
    assert other.json()["code"] == "invalid_argument"
    # the path's own methods, not those of /containers/{container} that "create" also fits
    assert gateway.request("OPTIONS", "/v1/nodes/n1/containers/create").headers["allow"] == \
        "POST"
    assert gateway.request("GET", f"/v1/events?follow=0&since={2**63}").status_code == 400
    for body in ({"Cmd": ["sh"]}, {"Image": ""}, {"Image": "x", "HostConfig": []},
                 {"Image": "x", "HostConfig": {"Privileged": "true"}},
                 {"Image": "x", "HostConfig": {"CapAdd": "ALL"}}):
        refused = gateway.request("POST", "/v1/nodes/n1/containers/create", json=body)
        assert refused.status_code == 400, (body, refused.text)
        assert refused.json()["code"] == "invalid_argument"
    bad_node = gateway.request("GET", "/v1/nodes/-x/containers/json")
    assert bad_node.status_code == 400 and bad_node.json()["message"].startswith("path.node")
    bad_tail = gateway.request("GET", "/v1/nodes/n1/containers/web/logs?tail=²")
    assert bad_tail.status_code == 400
    assert gateway.publisher.sent == []


def test_the_create_body_reaches_the_node_as_sent(gateway: Gateway) -> None:
    body = {"Image": "busybox", "Cmd": "sh", "Labels": {"a": "b"}, "Tty": None,
            "HostConfig": {"Memory": 5, "Binds": ["data:/data"], "Mounts": [
                {"Type": "volume", "Target": "/v", "Consistency": "default"}]}}
    accepted = gateway.request("POST", "/v1/nodes/n1/containers/create?name=web", json=body)
    assert accepted.status_code == 202, accepted.text
    assert gateway.publisher.sent[0].payload.create == body  # type: ignore[union-attr]
    assert CreateBody.model_validate(body).as_sent() == body


@pytest.mark.parametrize(("text", "valid"), [
    ("node.name==a", True), (" node.labels.zone != b\x1f", True),
    ("node.name==a\x1fb", False),  # \x1f: a space to Python, not to JSON Schema or pydantic
    ("node.name==\ufeff", True)])  # a space to JSON Schema only
def test_the_documented_constraint_pattern_reads_spaces_as_python_does(text: str,
                                                                      valid: bool) -> None:
    pattern = portable(CONSTRAINT.pattern)
    checked = TypeAdapter(Annotated[str, Field(pattern=pattern)])
    assert bool(re.match(pattern, text)) is valid
    if valid:
        assert checked.validate_python(text) == text
        parse_constraint(text)
        return
    with pytest.raises(ValidationError):
        checked.validate_python(text)
    with pytest.raises(InvalidArgument):
        parse_constraint(text)
