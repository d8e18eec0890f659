"""Integration fixtures: one real registry per session, seeded with small busybox images."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
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
