"""Push: upload an image's blobs and manifest to a registry, with Docker's progress messages.

The manifest and config go up byte for byte as stored, so digests round-trip with other tools
(skopeo, docker). Layers go up in parallel (``RegistryClient.upload_slots``); a blob the
repository already has is skipped (HEAD), one known to live in another repository of the same
registry is cross-mounted, anything else is uploaded.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from wharf.daemon.core.images import manifest as mf
from wharf.daemon.core.images.content import ContentStore
from wharf.daemon.core.images.progress import (
    Emit,
    Message,
    Throttle,
    first_error,
    layer_progress,
    layer_status,
    run_streaming,
    status,
)
from wharf.daemon.core.images.registry import RegistryClient
from wharf.errors import (
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from wharf.models import AuthConfig
from wharf.reference import Reference


class PushSource(Protocol):
    """What a push needs from the image side (the daemon's ``ImageService`` implements it).

    ``image_manifest`` returns the manifest bytes to push unchanged and their media type;
    every blob it names must be in ``content``. ``blob_sources`` lists the (registry domain,
    repository path) pairs a blob is known to exist in.
    """

    @property
    def content(self) -> ContentStore: ...
    def image_manifest(self, image_id: str) -> tuple[bytes, str]: ...
    def blob_sources(self, digest: str) -> list[tuple[str, str]]: ...
    def record_blob_source(self, digest: str, registry: str, repository: str) -> None: ...


@dataclass(frozen=True)
class _Push:
    ref: Reference
    registry: RegistryClient
    source: PushSource
    auth: AuthConfig | None


async def push(
    ref: Reference, image_id: str, *, registry: RegistryClient, source: PushSource,
    auth: AuthConfig | None,
) -> AsyncIterator[Message]:
    """Push ``image_id`` as ``ref``, yielding Docker's push messages; raises wharf errors."""
    ref = ref.with_default_tag()
    job = _Push(ref, registry, source, auth)
    raw, media_type = source.image_manifest(image_id)
    parsed = mf.parse_manifest(raw, media_type, ref.familiar_string)
    if not isinstance(parsed, mf.ImageManifest):
        raise InvalidArgument(f"image {image_id} has an index, not an image manifest, to push")
    config_raw = _local_blob(source.content, parsed.config.digest, image_id).read_bytes()
    config = mf.parse_config(config_raw, ref.familiar_string, len(parsed.layers))
    yield status(f"The push refers to repository [{ref.name}]")
    # Docker lists layers top-down and names them by diff_id.
    layers = list(zip(parsed.layers, config.rootfs.diff_ids, strict=True))[::-1]
    async for message in run_streaming(lambda emit: _push_layers(job, image_id, layers, emit)):
        yield message
    await _push_blob(job, image_id, parsed.config, None, None)
    digest = await registry.put_manifest(ref, raw, media_type, auth)
    label = ref.tag or ref.tag_or_digest
    yield status(f"{label}: digest: {digest} size: {len(raw)}")
    yield {"progressDetail": {}, "aux": {"Tag": label, "Digest": digest, "Size": len(raw)}}


async def _push_layers(
    job: _Push, image_id: str, layers: list[tuple[mf.Descriptor, str]], emit: Emit
) -> None:
    for _, diff_id in layers:
        emit(layer_status(_ident(diff_id), "Preparing"))

    async def one(descriptor: mf.Descriptor, ident: str) -> None:
        slots = job.registry.upload_slots
        if slots.locked():
            emit(layer_status(ident, "Waiting"))
        async with slots:
            await _push_blob(job, image_id, descriptor, ident, emit)

    async def run() -> None:
        seen: set[str] = set()
        async with asyncio.TaskGroup() as group:
            for descriptor, diff_id in layers:
                if descriptor.digest not in seen:
                    seen.add(descriptor.digest)
                    group.create_task(one(descriptor, _ident(diff_id)))

    await first_error(run())


async def _push_blob(
    job: _Push, image_id: str, descriptor: mf.Descriptor, ident: str | None, emit: Emit | None
) -> None:
    """Make ``descriptor``'s blob exist in the target repository, saying how (when ``emit``)."""
    digest, ref = descriptor.digest, job.ref
    path = _local_blob(job.source.content, digest, image_id)

    def say(message: Message) -> None:
        if emit is not None:
            emit(message)

    if await job.registry.blob_exists(ref, digest, job.auth):
        say(layer_status(ident or "", "Layer already exists"))
    elif (mounted := await _mount(job, digest)) is not None:
        say(layer_status(ident or "", f"Mounted from {mounted}"))
    else:
        size = path.stat().st_size
        chunks = _read_with_progress(path, size, ident or "", say)
        await job.registry.upload_blob(ref, digest, size, chunks, job.auth)
        say(layer_status(ident or "", "Pushed"))
    job.source.record_blob_source(digest, ref.domain, ref.path)


async def _mount(job: _Push, digest: str) -> str | None:
    """Cross-mount ``digest`` from a repository of the same registry; the repository or None."""
    for registry, repository in job.source.blob_sources(digest):
        if registry != job.ref.domain or repository == job.ref.path:
            continue
        try:
            if await job.registry.mount_blob(job.ref, digest, repository, job.auth):
                return repository
        except (NotFound, PermissionDenied, Unauthenticated, InvalidArgument):
            continue  # no read access to the source repository: upload instead, like dockerd
    return None


async def _read_with_progress(
    path: Path, size: int, ident: str, say: Emit
) -> AsyncIterator[bytes]:
    throttle = Throttle()
    sent = 0
    with path.open("rb") as f:
        while chunk := await asyncio.to_thread(f.read, 1 << 20):
            sent += len(chunk)
            if throttle.ready():
                say(layer_progress(ident, "Pushing", sent, size))
            yield chunk


def _local_blob(content: ContentStore, digest: str, image_id: str) -> Path:
    if not content.has(digest):
        raise NotFound(f"blob {digest} of image {image_id} is missing from the content store")
    return content.path(digest)


def _ident(diff_id: str) -> str:
    return diff_id.removeprefix("sha256:")[:12]
