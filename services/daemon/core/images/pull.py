"""Pull: fetch an image from a registry into the content and layer stores, with Docker's
JSON progress messages.

Order of work (dockerd's): manifest (and, for an index, the platform's manifest) → config →
layers downloaded in parallel (``RegistryClient.download_slots``), each verified while it
streams into the content store → layers unpacked strictly in order, each after its parent →
image record, repo digest and tag. An error raises the wharf error; no image record is written
unless everything succeeded (committed blobs and layers may stay: they are content-addressed and
verified, and garbage collection reclaims them).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from wharf.daemon.core.images import manifest as mf
from wharf.daemon.core.images.content import ContentStore
from wharf.daemon.core.images.layers import LayerStore, chain_ids
from wharf.daemon.core.images.registry import RegistryClient
from wharf.errors import Internal, InvalidArgument, NotFound, WharfError
from wharf.models import AuthConfig
from wharf.reference import Reference

Message = dict[str, Any]
Emit = Callable[[Message], None]


class StoredImage(Protocol):
    @property
    def id(self) -> str: ...


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
    def resolve(self, text: str) -> StoredImage: ...
    def has_layer(self, chain_id: str) -> bool: ...
    def register_layer(self, chain_id: str, diff_id: str, parent: str | None, size: int) -> None:
        ...
    def add_image(
        self, *, config: bytes, manifest: bytes, manifest_digest: str, chain_ids: list[str],
        repo_digest: str,
    ) -> str: ...
    def tag(self, image_id: str, name: str) -> None: ...
    def record_blob_source(self, digest: str, registry: str, repository: str) -> None: ...


# --- Docker JSON messages ------------------------------------------------------------------

_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_BAR_WIDTH = 50
_UPDATE_INTERVAL = 0.1  # seconds between progress messages per layer, as dockerd's reader


def human_size(size: float) -> str:
    """go-units HumanSize: decimal units, 4 significant digits (``294.9kB``, ``3.147MB``)."""
    unit = 0
    while size >= 1000 and unit < len(_UNITS) - 1:
        size /= 1000
        unit += 1
    return f"{size:.4g}{_UNITS[unit]}"


def progress_bar(current: int, total: int) -> str:
    """Docker's JSONProgress string at the daemon's width: ``[====>   ]  294.9kB/3.147MB``."""
    if total <= 0:
        return f"{human_size(current):>8}" if current > 0 else ""
    filled = min(int(current / total * 100) // 2, _BAR_WIDTH)
    bar = f"[{'=' * filled}>{' ' * (_BAR_WIDTH - filled)}] "
    numbers = f"{human_size(current):>8}"
    return bar + (numbers if current > total else f"{numbers}/{human_size(total)}")


def status(text: str, ident: str | None = None) -> Message:
    """A status line (``Pulling from …``, ``Digest: …``)."""
    return {"status": text, "id": ident} if ident is not None else {"status": text}


def layer_status(ident: str, text: str) -> Message:
    return {"status": text, "progressDetail": {}, "id": ident}


def layer_progress(ident: str, text: str, current: int, total: int) -> Message:
    return {
        "status": text,
        "progressDetail": {"current": current, "total": total},
        "progress": progress_bar(current, total),
        "id": ident,
    }


class Throttle:
    """True at most every ``interval`` seconds (first call included)."""

    def __init__(self, interval: float = _UPDATE_INTERVAL) -> None:
        self._interval = interval
        self._last = float("-inf")

    def ready(self) -> bool:
        now = time.monotonic()
        if now - self._last < self._interval:
            return False
        self._last = now
        return True


async def run_streaming(
    work: Callable[[Emit], Coroutine[Any, Any, None]],
) -> AsyncIterator[Message]:
    """Run ``work`` and yield the messages it emits as they come; re-raise its error.

    Closing the iterator early (client gone) cancels the work.
    """
    queue: asyncio.Queue[Message | None] = asyncio.Queue()
    task: asyncio.Task[None] = asyncio.create_task(work(queue.put_nowait))
    task.add_done_callback(lambda _task: queue.put_nowait(None))
    try:
        while (message := await queue.get()) is not None:
            yield message
        task.result()
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def first_error(group: Awaitable[None]) -> None:
    """Await a TaskGroup-based coroutine, re-raising its first error unwrapped."""
    try:
        await group
    except BaseExceptionGroup as errors:
        first = errors.exceptions[0]
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None


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
    config_raw = await _fetch_config(job, image.config)
    config = mf.parse_config(config_raw, ref.familiar_string, len(image.layers))
    _check_platform(config, platform, ref)
    chains = chain_ids(config.rootfs.diff_ids)
    image_id = "sha256:" + hashlib.sha256(config_raw).hexdigest()
    if _lookup(target, image_id) is None:
        layers = [
            _Layer(desc, diff_id, chain, chains[i - 1] if i else None)
            for i, (desc, diff_id, chain) in enumerate(
                zip(image.layers, config.rootfs.diff_ids, chains, strict=True))
        ]
        async for message in run_streaming(lambda emit: _fetch_layers(job, layers, emit)):
            yield message
    name = f"{ref.name}@{ref.digest}" if ref.digest else ref.string
    previous = _lookup(target, name)
    image_id = target.add_image(
        config=config_raw, manifest=raw, manifest_digest=manifest_digest, chain_ids=chains,
        repo_digest=f"{ref.name}@{top_digest}",
    )
    if not ref.digest:
        target.tag(image_id, ref.string)
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
        if job.target.has_layer(layer.chain_id):
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
    try:
        with job.target.content.writer(digest, size) as writer:
            async with job.registry.open_blob(job.ref, digest, job.auth) as chunks:
                async for chunk in chunks:
                    writer.write(chunk)
                    if throttle.ready():
                        emit(layer_progress(layer.ident, "Downloading", writer.written, size))
            emit(layer_status(layer.ident, "Verifying Checksum"))
            writer.commit()
    except InvalidArgument as exc:
        raise InvalidArgument(
            f"filesystem layer verification failed for digest {digest}: {exc}") from exc


async def _unpack_in_order(
    job: _Pull, layers: list[_Layer], downloads: dict[str, asyncio.Task[None]], emit: Emit
) -> None:
    for layer in layers:
        await downloads[layer.descriptor.digest]
        await _unpack(job, layer, emit)


async def _unpack(job: _Pull, layer: _Layer, emit: Emit) -> None:
    """Unpack one layer (its parent is registered already) and register it."""
    loop = asyncio.get_running_loop()
    throttle = Throttle()

    def progress(current: int, total: int) -> None:  # runs in the worker thread
        if throttle.ready():
            message = layer_progress(layer.ident, "Extracting", current, total)
            loop.call_soon_threadsafe(emit, message)

    blob = job.target.content.path(layer.descriptor.digest)
    try:
        result = await asyncio.to_thread(
            job.target.layers.unpack, layer.chain_id, blob, layer.descriptor.mediaType,
            layer.diff_id, progress,
        )
    except WharfError:
        raise
    except OSError as exc:
        raise Internal(f"failed to register layer {layer.ident}: {exc}") from exc
    if result.diff_id != layer.diff_id:
        raise InvalidArgument(
            f"failed to register layer {layer.ident}: diff_id {result.diff_id} does not match "
            f"the image config's {layer.diff_id}"
        )
    job.target.register_layer(layer.chain_id, layer.diff_id, layer.parent, result.size)
    emit(layer_status(layer.ident, "Pull complete"))
