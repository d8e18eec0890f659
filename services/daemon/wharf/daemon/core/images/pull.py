"""Pull: fetch an image from a registry into the content and layer stores, with Docker's
JSON progress messages.

Order of work (dockerd's): manifest (and, for an index, the platform's manifest) → config →
layers downloaded in parallel (``RegistryClient.download_slots``), each verified while it
streams into the content store → layers unpacked strictly in order, each after its parent →
image record, repo digest and tag. An error raises the wharf error; no image record is written
unless everything succeeded (committed blobs and layers may stay: they are content-addressed and
verified, and garbage collection reclaims them). A layer that inflates past the layer store's
limit (a decompression bomb) is the exception: what the pull stored is collected at once.

A layer counts as present only when both its unpacked form and its blob are in the stores: a
blob that is missing (collected, or never stored because the layer came from ``load`` or
another image) is downloaded even when the layer is unpacked, and then checked against the
layer's diff_id instead of being unpacked again, so the recorded image can be saved and pushed.
Everything the pull needs is held by a lease from the moment it is looked up until the image is
recorded, so a concurrent ``rmi`` or prune cannot collect it half way.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from wharf.daemon.core.images import manifest as mf
from wharf.daemon.core.images.compression import InflateLimitExceeded
from wharf.daemon.core.images.content import ContentStore
from wharf.daemon.core.images.layers import LayerStore, chain_ids
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
from wharf.errors import Internal, InvalidArgument, NotFound, WharfError
from wharf.models import AuthConfig
from wharf.reference import Reference


class StoredImage(Protocol):
    @property
    def id(self) -> str: ...


class Holder(Protocol):
    """A lease: what it holds is spared by garbage collection until the lease ends."""

    def hold(self, *digests: str) -> None: ...
    def hold_layers(self, *chain_ids: str) -> None: ...


class PullTarget(Protocol):
    """What a pull needs from the image store (the daemon's ``ImageStore`` implements it).

    ``resolve`` finds an image by full ID (``sha256:…``) or normalised name (``name:tag`` or
    ``name@digest``) and raises NotFound otherwise. ``add_image`` is called once, after every
    layer of ``chain_ids`` was registered; it stores ``config`` and ``manifest`` in the content
    store and records the repo digest.
    """

    @property
    def content(self) -> ContentStore: ...
    @property
    def layers(self) -> LayerStore: ...
    def lease(self) -> AbstractContextManager[Holder]: ...
    def resolve(self, text: str) -> StoredImage: ...
    def has_layer(self, chain_id: str) -> bool: ...
    def register_layer(self, chain_id: str, diff_id: str, parent: str | None, size: int) -> None:
        ...
    def add_image(
        self, *, config: bytes, manifest: bytes, manifest_digest: str, chain_ids: list[str],
        repo_digest: str,
    ) -> str: ...
    def tag(self, image_id: str, name: str) -> None: ...
    def collect_garbage(self) -> tuple[int, int]: ...
    def record_blob_source(self, digest: str, registry: str, repository: str) -> None: ...


# --- pull ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layer:
    descriptor: mf.Descriptor
    diff_id: str
    chain_id: str
    parent: str | None

    @property
    def ident(self) -> str:
        return self.descriptor.digest.removeprefix("sha256:")[:12]


@dataclass(frozen=True)
class _Pull:
    ref: Reference
    registry: RegistryClient
    target: PullTarget
    auth: AuthConfig | None

    def present(self, layer: _Layer) -> bool:
        """Both the unpacked layer and its blob are stored: nothing to fetch or unpack."""
        return (self.target.has_layer(layer.chain_id)
                and self.target.content.has(layer.descriptor.digest))


async def pull(
    ref: Reference, *, registry: RegistryClient, target: PullTarget, auth: AuthConfig | None,
    platform: str | None = None,
) -> AsyncIterator[Message]:
    """Pull ``ref`` into ``target``, yielding Docker's progress messages (see module doc).

    Errors before the first message (bad reference, manifest not found, unreachable registry)
    let the API answer with a plain error status.
    """
    ref = ref.with_default_tag()
    job = _Pull(ref, registry, target, auth)
    image, raw, manifest_digest, top_digest = await _resolve_manifest(job, platform)
    yield status(f"Pulling from {ref.path}", ref.tag_or_digest)
    try:
        with target.lease() as lease:
            lease.hold(manifest_digest, image.config.digest, *(d.digest for d in image.layers))
            config_raw = await _fetch_config(job, image.config)
            config = mf.parse_config(config_raw, ref.familiar_string, len(image.layers))
            _check_platform(config, platform, ref)
            chains = chain_ids(config.rootfs.diff_ids)
            lease.hold_layers(*chains)
            layers = [
                _Layer(desc, diff_id, chain, chains[i - 1] if i else None)
                for i, (desc, diff_id, chain) in enumerate(
                    zip(image.layers, config.rootfs.diff_ids, chains, strict=True))
            ]
            image_id = "sha256:" + hashlib.sha256(config_raw).hexdigest()
            if _lookup(target, image_id) is None or not all(map(job.present, layers)):
                async for message in run_streaming(
                        lambda emit: _fetch_layers(job, layers, emit)):
                    yield message
            name = f"{ref.name}@{ref.digest}" if ref.digest else ref.string
            previous = _lookup(target, name)
            image_id = target.add_image(
                config=config_raw, manifest=raw, manifest_digest=manifest_digest,
                chain_ids=chains, repo_digest=f"{ref.name}@{top_digest}",
            )
            if not ref.digest:  # under the lease: a prune must not take it untagged
                target.tag(image_id, ref.string)
    except InflateLimitExceeded:
        # A decompression bomb: what this pull stored goes at once (a blob another pull
        # holds, or an image names, is spared by the collection's own rules).
        await asyncio.to_thread(target.collect_garbage)
        raise
    target.record_blob_source(image.config.digest, ref.domain, ref.path)
    yield status(f"Digest: {top_digest}")
    verdict = "Image is up to date" if previous == image_id else "Downloaded newer image"
    yield status(f"Status: {verdict} for {ref.familiar_string}")


async def _resolve_manifest(
    job: _Pull, platform: str | None
) -> tuple[mf.ImageManifest, bytes, str, str]:
    """(image manifest, its bytes, its digest, the digest of what the reference names)."""
    name = job.ref.familiar_string
    raw, media_type, top_digest = await job.registry.get_manifest(job.ref, job.auth)
    parsed = mf.parse_manifest(raw, media_type, name)
    digest = top_digest
    if isinstance(parsed, mf.ImageIndex):
        wanted = mf.parse_platform(platform)
        entry = mf.select_platform(parsed, wanted.os, wanted.architecture, wanted.variant)
        raw, media_type, digest = await job.registry.get_manifest(
            job.ref.with_digest(entry.digest), job.auth)
        parsed = mf.parse_manifest(raw, media_type, name)
        if isinstance(parsed, mf.ImageIndex):
            raise InvalidArgument(f"invalid manifest for {name}: an index inside an index")
    return parsed, raw, digest, top_digest


async def _fetch_config(job: _Pull, descriptor: mf.Descriptor) -> bytes:
    """The config blob (from the content store when present), verified against its digest."""
    content = job.target.content
    if content.has(descriptor.digest):
        return content.read_bytes(descriptor.digest)
    if descriptor.size > mf.MAX_CONFIG_SIZE:
        raise InvalidArgument(f"image config of {job.ref.familiar_string} is too large")
    data = bytearray()
    async with job.registry.open_blob(job.ref, descriptor.digest, job.auth) as chunks:
        async for chunk in chunks:
            data += chunk
            if len(data) > descriptor.size:
                break
    if "sha256:" + hashlib.sha256(data).hexdigest() != descriptor.digest:
        raise InvalidArgument(f"image config verification failed for digest {descriptor.digest}")
    return bytes(data)


def _check_platform(config: mf.ImageConfig, platform: str | None, ref: Reference) -> None:
    if not platform or not config.architecture:
        return
    wanted = mf.parse_platform(platform)
    if (config.os, config.architecture) != (wanted.os, wanted.architecture):
        raise NotFound(
            f"image with reference {ref.familiar_string} was found but does not match the "
            f"specified platform: wanted {wanted}, actual: {config.os}/{config.architecture}"
        )


def _lookup(target: PullTarget, text: str) -> str | None:
    try:
        return target.resolve(text).id
    except NotFound:
        return None


async def _fetch_layers(job: _Pull, layers: list[_Layer], emit: Emit) -> None:
    """Announce every layer, download the missing ones in parallel, unpack them in order."""
    needed: list[_Layer] = []
    for layer in layers:
        if job.present(layer):
            emit(layer_status(layer.ident, "Already exists"))
        else:
            emit(layer_status(layer.ident, "Pulling fs layer"))
            needed.append(layer)

    async def run() -> None:
        async with asyncio.TaskGroup() as group:
            downloads: dict[str, asyncio.Task[None]] = {}
            for layer in needed:
                if layer.descriptor.digest not in downloads:
                    downloads[layer.descriptor.digest] = group.create_task(
                        _download(job, layer, emit))
            group.create_task(_unpack_in_order(job, needed, downloads, emit))

    await first_error(run())


async def _download(job: _Pull, layer: _Layer, emit: Emit) -> None:
    content, digest = job.target.content, layer.descriptor.digest
    if not content.has(digest):
        slots = job.registry.download_slots
        if slots.locked():
            emit(layer_status(layer.ident, "Waiting"))
        async with slots:
            await _stream_blob(job, layer, emit)
    emit(layer_status(layer.ident, "Download complete"))
    job.target.record_blob_source(digest, job.ref.domain, job.ref.path)


async def _stream_blob(job: _Pull, layer: _Layer, emit: Emit) -> None:
    """Stream one layer blob into the content store; InvalidArgument when it does not verify."""
    digest, size = layer.descriptor.digest, layer.descriptor.size
    throttle = Throttle()

    def progress(written: int | None) -> None:
        if written is None:
            emit(layer_status(layer.ident, "Verifying Checksum"))
        elif throttle.ready():
            emit(layer_progress(layer.ident, "Downloading", written, size))

    try:
        await fetch_blob(job.registry, job.ref, digest, size, job.auth, job.target.content,
                         progress)
    except InvalidArgument as exc:
        raise InvalidArgument(
            f"filesystem layer verification failed for digest {digest}: {exc}") from exc


async def fetch_blob(
    registry: RegistryClient, ref: Reference, digest: str, size: int | None,
    auth: AuthConfig | None, content: ContentStore,
    progress: Callable[[int | None], None] = lambda _written: None,
) -> None:
    """Stream blob ``digest`` of ``ref``'s repository into ``content``, verified; ``progress``
    gets the bytes written so far, and None before the checksum is checked."""
    with content.writer(digest, size) as writer:
        async with registry.open_blob(ref, digest, auth) as chunks:
            async for chunk in chunks:
                writer.write(chunk)
                progress(writer.written)
        progress(None)
        writer.commit()


async def _unpack_in_order(
    job: _Pull, layers: list[_Layer], downloads: dict[str, asyncio.Task[None]], emit: Emit
) -> None:
    for layer in layers:
        await downloads[layer.descriptor.digest]
        await _unpack(job, layer, emit)


async def _unpack(job: _Pull, layer: _Layer, emit: Emit) -> None:
    """Unpack one layer (its parent is registered already) and register it; a layer unpacked
    already only has its freshly downloaded blob checked against the diff_id."""
    loop = asyncio.get_running_loop()
    throttle = Throttle()

    def progress(current: int, total: int) -> None:  # runs in the worker thread
        if throttle.ready():
            message = layer_progress(layer.ident, "Extracting", current, total)
            loop.call_soon_threadsafe(emit, message)

    blob = job.target.content.path(layer.descriptor.digest)
    media_type = layer.descriptor.mediaType
    try:
        if job.target.has_layer(layer.chain_id):
            diff_id = await asyncio.to_thread(
                job.target.layers.diff_id_of, blob, media_type, layer.chain_id)
            _check_diff_id(layer, diff_id)
            emit(layer_status(layer.ident, "Pull complete"))
            return
        result = await asyncio.to_thread(
            job.target.layers.unpack, layer.chain_id, blob, media_type, layer.diff_id, progress,
        )
    except WharfError:
        raise
    except OSError as exc:
        raise Internal(f"failed to register layer {layer.ident}: {exc}") from exc
    _check_diff_id(layer, result.diff_id)
    job.target.register_layer(layer.chain_id, layer.diff_id, layer.parent, result.size)
    emit(layer_status(layer.ident, "Pull complete"))


def _check_diff_id(layer: _Layer, diff_id: str) -> None:
    if diff_id != layer.diff_id:
        raise InvalidArgument(
            f"failed to register layer {layer.ident}: diff_id {diff_id} does not match "
            f"the image config's {layer.diff_id}"
        )
