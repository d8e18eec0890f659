"""RegistryClient, pull and push against a real docker-registry with skopeo-pushed images."""

from __future__ import annotations

import asyncio
import hashlib
import json
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.integration.conftest import SeededRegistry
from tests.integration.registry_fixture import (
    build_busybox_layout,
    free_port,
    inspect_raw,
    manifest_blobs,
    push_layout,
    running_registry,
)
from wharf import reference
from wharf.daemon.core.images import manifest as mf
from wharf.daemon.core.images.content import ContentStore
from wharf.daemon.core.images.gc import Lease, Leases
from wharf.daemon.core.images.layers import LayerStore
from wharf.daemon.core.images.pull import pull
from wharf.daemon.core.images.push import push
from wharf.daemon.core.images.registry import RegistryClient
from wharf.errors import InvalidArgument, NotFound, Unavailable

pytestmark = pytest.mark.integration
T = TypeVar("T")


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def with_client(body: Callable[[RegistryClient], Awaitable[T]]) -> T:
    async def run() -> T:
        client = RegistryClient(mirrors=[], insecure=["127.0.0.0/8"])
        try:
            return await body(client)
        finally:
            await client.aclose()

    return asyncio.run(run())


@dataclass(frozen=True)
class _Image:
    id: str


@dataclass
class FakeTarget:
    """PullTarget and PushSource over real content and layer stores, records in dicts."""

    content: ContentStore
    layers: LayerStore
    layer_rows: dict[str, tuple[str, str | None, int]] = field(default_factory=dict)
    images: dict[str, tuple[bytes, str, list[str]]] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    sources: set[tuple[str, str, str]] = field(default_factory=set)
    leases: Leases = field(default_factory=Leases)

    def lease(self) -> AbstractContextManager[Lease]:
        return self.leases.lease()

    def resolve(self, text: str) -> _Image:
        image_id = text if text in self.images else self.names.get(text)
        if image_id is None:
            raise NotFound(f"No such image: {text}")
        return _Image(image_id)

    def has_layer(self, chain_id: str) -> bool:
        return chain_id in self.layer_rows and self.layers.has(chain_id)

    def register_layer(self, chain_id: str, diff_id: str, parent: str | None, size: int) -> None:
        self.layer_rows[chain_id] = (diff_id, parent, size)

    def add_image(self, *, config: bytes, manifest: bytes, manifest_digest: str,
                  chain_ids: list[str], repo_digest: str) -> str:
        assert all(chain in self.layer_rows for chain in chain_ids)
        image_id = self.content.put_bytes(config)
        self.content.put_bytes(manifest, manifest_digest)
        # the store's invariant: a recorded image names only blobs that are present
        assert all(self.content.has(d) for d in manifest_blobs(manifest))
        self.images[image_id] = (manifest, manifest_digest, chain_ids)
        self.names[repo_digest] = image_id
        return image_id

    def tag(self, image_id: str, name: str) -> None:
        self.names[name] = image_id

    def record_blob_source(self, digest: str, registry: str, repository: str) -> None:
        self.sources.add((digest, registry, repository))

    # PushSource
    def image_manifest(self, image_id: str) -> tuple[bytes, str]:
        raw = self.images[image_id][0]
        return raw, mf.detect_media_type(raw, None)

    def blob_sources(self, digest: str) -> list[tuple[str, str]]:
        return [(reg, repo) for d, reg, repo in sorted(self.sources) if d == digest]


@pytest.fixture
def target(tmp_path: Path) -> FakeTarget:
    return FakeTarget(ContentStore(tmp_path / "content"), LayerStore(tmp_path / "layers"))


async def collect(messages: AsyncIterator[dict[str, Any]]) -> list[dict[str, Any]]:
    return [message async for message in messages]


def do_pull(target: FakeTarget, text: str) -> list[dict[str, Any]]:
    ref = reference.parse(text)
    return with_client(lambda c: collect(pull(ref, registry=c, target=target, auth=None)))


def statuses(messages: list[dict[str, Any]], ident: str) -> list[str]:
    """The distinct consecutive statuses of one layer id."""
    out: list[str] = []
    for message in messages:
        if message.get("id") == ident and (not out or out[-1] != message["status"]):
            out.append(message["status"])
    return out


# --- client -------------------------------------------------------------------------------


def test_manifest_fetch_verifies_digest(seeded_registry: SeededRegistry) -> None:
    reg = seeded_registry.registry
    ref = reference.parse(f"{reg.host}/library/busybox:latest")
    raw, media_type, digest = with_client(lambda c: c.get_manifest(ref, None))
    assert raw == inspect_raw(reg, "library/busybox:latest")
    assert digest == sha256(raw)
    assert media_type == mf.OCI_MANIFEST
    by_digest = with_client(lambda c: c.get_manifest(ref.with_digest(digest), None))
    assert by_digest[0] == raw


def test_blob_stream_and_exists(seeded_registry: SeededRegistry) -> None:
    reg = seeded_registry.registry
    ref = reference.parse(f"{reg.host}/library/busybox:latest")
    config_digest = manifest_blobs(inspect_raw(reg, "library/busybox:latest"))[0]

    async def body(client: RegistryClient) -> tuple[bytes, bool, bool]:
        data = b""
        async with client.open_blob(ref, config_digest, None) as chunks:
            async for chunk in chunks:
                data += chunk
        missing = "sha256:" + "0" * 64
        return data, await client.blob_exists(ref, config_digest, None), await client.blob_exists(
            ref, missing, None)

    data, present, absent = with_client(body)
    assert sha256(data) == config_digest
    assert json.loads(data)["rootfs"]["type"] == "layers"
    assert (present, absent) == (True, False)


def test_missing_manifest_message(seeded_registry: SeededRegistry) -> None:
    reg = seeded_registry.registry
    ref = reference.parse(f"{reg.host}/library/busybox:nope")
    with pytest.raises(NotFound) as info:
        with_client(lambda c: c.get_manifest(ref, None))
    assert str(info.value) == (
        f"manifest for {reg.host}/library/busybox:nope not found: manifest unknown")


def test_unreachable_registry_message() -> None:
    port = free_port()
    ref = reference.parse(f"127.0.0.1:{port}/x:latest")
    with pytest.raises(Unavailable) as info:
        with_client(lambda c: c.get_manifest(ref, None))
    assert str(info.value).startswith(f"registry 127.0.0.1:{port} is unreachable: ")


# --- pull ---------------------------------------------------------------------------------


def test_pull_messages_and_files(seeded_registry: SeededRegistry, target: FakeTarget) -> None:
    reg = seeded_registry.registry
    raw = inspect_raw(reg, "library/busybox:whiteout")
    config_digest, base, top = manifest_blobs(raw)
    messages = do_pull(target, f"{reg.host}/library/busybox:whiteout")
    assert messages[0] == {"status": "Pulling from library/busybox", "id": "whiteout"}
    assert messages[-2:] == [
        {"status": f"Digest: {sha256(raw)}"},
        {"status": f"Status: Downloaded newer image for {reg.host}/library/busybox:whiteout"},
    ]
    for blob in (base, top):
        seen = statuses(messages, blob[7:19])
        assert seen[0] == "Pulling fs layer"
        assert seen[-4:] == ["Verifying Checksum", "Download complete", "Extracting",
                             "Pull complete"] or seen[-3:] == [
                                 "Verifying Checksum", "Download complete", "Pull complete"]
    completes = [m["id"] for m in messages if m.get("status") == "Pull complete"]
    assert completes == [base[7:19], top[7:19]]  # unpacked in order
    downloading = [m for m in messages if m.get("status") == "Downloading"]
    assert all(m["progress"].startswith("[") and "/" in m["progress"] for m in downloading)

    image_id = target.names[f"{reg.host}/library/busybox:whiteout"]
    assert image_id == config_digest
    assert target.names[f"{reg.host}/library/busybox@{sha256(raw)}"] == image_id
    chains = target.images[image_id][2]
    lower, upper = (target.layers.diff_path(c) for c in chains)
    assert (lower / "bin/busybox").stat().st_size > 1_000_000
    assert (lower / "bin/rm").is_symlink()
    whiteout = (upper / "bin/rm").lstat()
    assert stat.S_ISCHR(whiteout.st_mode) and whiteout.st_rdev == 0
    assert (upper / "hello.txt").read_text() == "hello from layer two\n"
    assert (base, reg.host, "library/busybox") in target.sources

    again = do_pull(target, f"{reg.host}/library/busybox:whiteout")
    assert [m["status"] for m in again] == [
        "Pulling from library/busybox", f"Digest: {sha256(raw)}",
        f"Status: Image is up to date for {reg.host}/library/busybox:whiteout",
    ]


def test_shared_layer_already_exists(seeded_registry: SeededRegistry, target: FakeTarget) -> None:
    reg = seeded_registry.registry
    do_pull(target, f"{reg.host}/library/busybox:latest")
    _, base, top = manifest_blobs(inspect_raw(reg, "library/busybox:whiteout"))
    assert base == manifest_blobs(inspect_raw(reg, "library/busybox:latest"))[1]
    messages = do_pull(target, f"{reg.host}/library/busybox:whiteout")
    assert statuses(messages, base[7:19]) == ["Already exists"]
    assert statuses(messages, top[7:19])[0] == "Pulling fs layer"


def test_corrupted_blob_is_rejected(tmp_path: Path, target: FakeTarget) -> None:
    with running_registry(tmp_path / "registry") as reg:
        layout = build_busybox_layout(tmp_path / "img")
        push_layout(layout, "latest", reg, "corrupt/busybox:latest")
        layer = manifest_blobs(inspect_raw(reg, "corrupt/busybox:latest"))[1]
        data = reg.blob_data(layer)
        data.write_bytes(bytes(len(data.read_bytes())))  # same size, wrong bytes
        with pytest.raises(InvalidArgument) as info:
            do_pull(target, f"{reg.host}/corrupt/busybox:latest")
    assert f"filesystem layer verification failed for digest {layer}" in str(info.value)
    assert not target.images and not target.names and not target.layer_rows
    assert not target.content.has(layer)


# --- push ---------------------------------------------------------------------------------


def test_push_round_trip(seeded_registry: SeededRegistry, target: FakeTarget) -> None:
    reg = seeded_registry.registry
    original = inspect_raw(reg, "library/busybox:whiteout")
    do_pull(target, f"{reg.host}/library/busybox:whiteout")
    image_id = target.names[f"{reg.host}/library/busybox:whiteout"]
    ref = reference.parse(f"{reg.host}/pushed/bb:v1")

    def do_push() -> list[dict[str, Any]]:
        return with_client(lambda c: collect(
            push(ref, image_id, registry=c, source=target, auth=None)))

    messages = do_push()
    digest = sha256(original)
    assert messages[0] == {"status": f"The push refers to repository [{reg.host}/pushed/bb]"}
    assert messages[-2:] == [
        {"status": f"v1: digest: {digest} size: {len(original)}"},
        {"progressDetail": {}, "aux": {"Tag": "v1", "Digest": digest, "Size": len(original)}},
    ]
    finals = {m["id"]: m["status"] for m in messages if "id" in m}
    assert set(finals.values()) == {"Mounted from library/busybox"}
    assert inspect_raw(reg, "pushed/bb:v1") == original
    assert manifest_blobs(inspect_raw(reg, "pushed/bb:v1")) == manifest_blobs(original)

    again = do_push()
    assert {m["status"] for m in again if "id" in m} >= {"Layer already exists"}
    assert {m["status"] for m in again if "id" in m} <= {"Preparing", "Layer already exists",
                                                         "Waiting"}


def test_push_uploads_to_a_fresh_registry(
    seeded_registry: SeededRegistry, target: FakeTarget, tmp_path: Path
) -> None:
    reg = seeded_registry.registry
    do_pull(target, f"{reg.host}/library/busybox:latest")
    image_id = target.names[f"{reg.host}/library/busybox:latest"]
    original = inspect_raw(reg, "library/busybox:latest")
    with running_registry(tmp_path / "other") as other:
        ref = reference.parse(f"{other.host}/copy/bb:latest")
        messages = with_client(lambda c: collect(
            push(ref, image_id, registry=c, source=target, auth=None)))
        assert inspect_raw(other, "copy/bb:latest") == original
    layer_statuses = [m["status"] for m in messages if "id" in m]
    assert layer_statuses[0] == "Preparing" and layer_statuses[-1] == "Pushed"
    assert any(m["status"] == "Pushing" and m["progressDetail"]["total"] > 0
               for m in messages if "id" in m)
