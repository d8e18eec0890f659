"""Integration fixtures: one real registry per session, seeded with small busybox images."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.registry_fixture import (
    Registry,
    build_busybox_layout,
    push_layout,
    running_registry,
    tools_available,
)
from tests.layout import ROOT
from wharf.errors import Unavailable
from wharf.messaging import Broker
from wharf.topology import node_rights, node_user


@dataclass(frozen=True)
class SeededRegistry:
    """The session registry with ``library/busybox:latest`` (one layer) and
    ``library/busybox:whiteout`` (two layers, the second with a whiteout) pushed by skopeo."""

    registry: Registry
    layout: Path


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A running ``docker-registry`` on a free 127.0.0.1 port (stopped at session end)."""
    if not tools_available():
        pytest.skip("docker-registry, umoci, skopeo or busybox-static is not installed")
    with running_registry(tmp_path_factory.mktemp("registry")) as running:
        yield running


@pytest.fixture(scope="session")
def seeded_registry(
    registry: Registry, tmp_path_factory: pytest.TempPathFactory
) -> SeededRegistry:
    workdir = tmp_path_factory.mktemp("images")
    layout = build_busybox_layout(workdir, "latest")
    build_busybox_layout(workdir, "whiteout", whiteout=True)
    push_layout(layout, "latest", registry, "library/busybox:latest")
    push_layout(layout, "whiteout", registry, "library/busybox:whiteout")
    return SeededRegistry(registry, layout)


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture
def amqp_url() -> Iterator[str]:
    """A fresh RabbitMQ vhost for one test (deleted afterwards), as guest."""
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("RabbitMQ is not installed")
    vhost = f"wharf-test-{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    finally:
        rabbitmqctl("delete_vhost", vhost)


NodeAccount = Callable[[str], str]  # node name → that node's own AMQP URL on the test's vhost


def _password_hash(password: str) -> str:
    """RabbitMQ's rabbit_password_hashing_sha256: base64(salt + sha256(salt + password))."""
    salt = secrets.token_bytes(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def import_definitions(definitions: dict[str, object]) -> None:
    """Users and rights in one ``rabbitmqctl import_definitions`` (a third of a second, where
    each add_user/set_permissions call costs as much)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json") as out:
        json.dump(definitions, out)
        out.flush()
        os.chmod(out.name, 0o644)  # rabbitmqctl reads it as the broker's user
        rabbitmqctl("import_definitions", out.name)


@pytest.fixture
def node_account(amqp_url: str) -> Iterator[NodeAccount]:
    """Make a node's own RabbitMQ account (``wharf-node-<name>``, the rights of
    ``topology.node_rights`` on the test's vhost, as infra/amqp-accounts.sh grants them) and
    return its URL; the users go afterwards."""
    vhost = amqp_url.rsplit("/", 1)[1]
    made: list[str] = []

    def make(node: str) -> str:
        user, password, rights = node_user(node), secrets.token_hex(12), node_rights(node)
        import_definitions({
            "users": [{"name": user, "password_hash": _password_hash(password),
                       "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": []}],
            "permissions": [{"user": user, "vhost": vhost, "configure": rights["configure"],
                             "write": rights["write"], "read": rights["read"]}],
            "topic_permissions": [{"user": user, "vhost": vhost, "exchange": "wharf.events",
                                   "write": rights["topic_write"],
                                   "read": rights["topic_read"]}]})
        made.append(user)
        url = f"amqp://{user}:{password}@127.0.0.1:5672/{vhost}"
        _await_login(url)  # rabbitmqctl import_definitions returns before the import is done
        return url

    try:
        yield make
    finally:
        for user in made:
            subprocess.run(["rabbitmqctl", "delete_user", user], check=False,
                           capture_output=True, timeout=60)


def _await_login(url: str, timeout: float = 10.0) -> None:
    """Wait until the broker lets ``url``'s account in."""
    deadline = time.monotonic() + timeout
    while True:
        broker = Broker(url, topology=False)
        try:
            broker.channel  # noqa: B018 - connecting is the check
            return
        except Unavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
        finally:
            broker.close()


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate, made by
    infra/certs.sh (what `make certs` runs)."""
    out = tmp_path_factory.mktemp("certs")
    subprocess.run([str(ROOT / "infra/certs.sh")], check=True, capture_output=True,
                   env={**os.environ, "CERT_DIR": str(out), "CERT_HOSTS": "127.0.0.1,localhost"})
    return out
