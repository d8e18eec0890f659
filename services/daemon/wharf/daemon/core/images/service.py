"""ImageService: the image operations the daemon's adapters call (one engine, many front doors)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wharf import reference
from wharf.daemon.core.images import archive
from wharf.daemon.core.images import check as store_check
from wharf.daemon.core.images import commit as committing
from wharf.daemon.core.images.filters import ImageFilter
from wharf.daemon.core.images.gc import Lease
from wharf.daemon.core.images.pull import fetch_blob, pull
from wharf.daemon.core.images.push import push
from wharf.daemon.core.images.registry import RegistryClient
from wharf.daemon.core.images.removal import Removal, remove
from wharf.daemon.core.images.store import ImageRecord, ImageStore
from wharf.errors import InvalidArgument, NotFound, WharfError
from wharf.models import AuthConfig


@dataclass(frozen=True)
class PruneReport:
    deleted: list[Removal]
    space_reclaimed: int


class ImageService:
    """Pull, push, tag, remove, list, save, load and import images."""

    def __init__(self, store: ImageStore, registry: RegistryClient, tmp_dir: Path) -> None:
        self.store = store
        self.registry = registry
        self.tmp_dir = tmp_dir
        # pulls by outcome: ok, an error kind's code, cancelled (read by /metrics)
        self.pulls: Counter[str] = Counter()

    def list_images(self, image_filter: ImageFilter | None = None, *,
                    intermediate: bool = True) -> list[ImageRecord]:
        """The images, newest first; without ``intermediate``, as ``docker images`` lists
        them: untagged images that are another's parent (a build's steps) left out. An image
        is dangling when it is untagged and no image's parent."""
        records = self.store.list_images()
        parents = self.store.parents()
        if not intermediate:
            records = [r for r in records if r.tags or r.repo_digests or r.id not in parents]
        if image_filter is None:
            return records
        if image_filter.dangling:
            records = [r for r in records if r.id not in parents]
        return [r for r in records if image_filter.matches(r, self.store)]

    def get(self, name: str) -> ImageRecord:
        return self.store.resolve(name)

    def layers(self, record: ImageRecord) -> list[tuple[str, int]]:
        """(diff_id, size) of each of the image's layers, bottom first (inspect, history)."""
        return [(diff, size) for _, diff, size in self.store.layer_diff_ids(record.chain_ids)]

    def top_layer_dir(self, record: ImageRecord) -> str:
        """Where the image's top layer is unpacked ('' for an image without layers)."""
        top = record.chain_ids[-1] if record.chain_ids else ""
        return str(self.store.layers.diff_path(top)) if top else ""

    async def pull(
        self, text: str, tag: str, auth: AuthConfig | None, platform: str | None
    ) -> AsyncIterator[dict[str, Any]]:
        """Pull ``text`` (with ``tag`` when given separately, as the API sends it); its
        outcome is counted in :attr:`pulls`."""
        outcome = "cancelled"  # the stream's reader went away before its end
        try:
            ref = reference.parse(_join_tag(text, tag)).with_default_tag()
            async for message in pull(
                ref, registry=self.registry, target=self.store, auth=auth, platform=platform
            ):
                yield message
            outcome = "ok"
        except WharfError as exc:
            outcome = exc.code
            raise
        except Exception:
            outcome = "internal"
            raise
        finally:
            self.pulls[outcome] += 1

    async def push(
        self, name: str, tag: str, auth: AuthConfig | None
    ) -> AsyncIterator[dict[str, Any]]:
        ref = reference.parse(_join_tag(name, tag)).with_default_tag()
        try:
            record = self.store.resolve(ref.string)
        except NotFound:
            raise NotFound(
                f"An image does not exist locally with the tag: {ref.familiar}") from None
        async for message in push(
            ref, record.id, registry=self.registry, source=self, auth=auth
        ):
            yield message

    # PushSource, for push.py: the content store, manifests and blob sources.
    @property
    def content(self) -> Any:
        return self.store.content

    def image_manifest(self, image_id: str) -> tuple[bytes, str]:
        record = self.store.get(image_id)
        if record.manifest is None:
            raise NotFound(f"image {image_id} has no manifest to push")
        media_type = json.loads(record.manifest).get("mediaType") or archive.OCI_MANIFEST
        return record.manifest, str(media_type)

    def blob_sources(self, digest: str) -> list[tuple[str, str]]:
        return self.store.blob_sources(digest)

    def record_blob_source(self, digest: str, registry: str, repository: str) -> None:
        self.store.record_blob_source(digest, registry, repository)

    def tag(self, source: str, repo: str, tag: str) -> str:
        """Tag ``source`` as ``repo:tag``; returns the normalised name."""
        if not repo:
            raise InvalidArgument("repository name must not be empty")
        ref = reference.parse(_join_tag(repo, tag)).with_default_tag()
        if ref.digest:
            raise InvalidArgument("refusing to create a tag with a digest reference")
        record = self.store.resolve(source)
        self.store.tag(record.id, ref.string)
        return ref.string

    def remove(self, name: str, *, force: bool, prune: bool) -> Removal:
        return remove(self.store, name, force=force, prune=prune)

    def prune(self, dangling_only: bool, image_filter: ImageFilter | None) -> PruneReport:
        """Remove unused images: untagged ones, or every unused one with ``dangling_only=False``."""
        removed: list[Removal] = []
        while True:  # a pass can leave a tagged parent unused: another pass then takes it
            taken = len(removed)
            for record in self.list_images(image_filter):
                held = self.store.leases.held()  # a pull or load recording it: not unused
                if (self.store.users(record.id) or (dangling_only and record.tags)
                        or record.id in held or self.store.children(record.id)):
                    continue  # a parent goes with the last image built on it
                try:
                    removed.append(remove(self.store, record.id, force=True, collect=False))
                except NotFound:  # went as an untagged parent of one removed before it
                    continue
            if dangling_only or len(removed) == taken:
                break
        _, reclaimed = self.store.collect_garbage()
        return PruneReport(deleted=removed, space_reclaimed=reclaimed)

    def save(self, names: list[str]) -> Iterator[bytes]:
        return archive.save(self.store, names)

    def load(self, tar_path: Path) -> list[str]:
        return archive.load(self.store, tar_path, self.tmp_dir)

    def import_rootfs(
        self, tar_path: Path, repo: str, tag: str, changes: list[str], message: str
    ) -> str:
        name = reference.parse(_join_tag(repo, tag)).with_default_tag().string if repo else None
        return archive.import_rootfs(
            self.store, tar_path, self.tmp_dir, name=name, changes=changes, message=message
        )

    async def commit(
        self, source: committing.CommitSource, *, repo: str, tag: str, comment: str,
        author: str, changes: list[str], config: dict[str, Any] | None,
        frozen: AbstractAsyncContextManager[object] | None = None,
    ) -> str:
        """``docker commit``: a new image from ``source``'s upper dir (core/images/commit.py);
        the name and the config are checked before anything is written or ``frozen`` (the
        container's pause) is entered. Returns the image ID."""
        name = None
        if repo:
            ref = reference.parse(_join_tag(repo, tag)).with_default_tag()
            if ref.digest:
                raise InvalidArgument("refusing to create a tag with a digest reference")
            name = ref.string
        elif tag:
            raise InvalidArgument("a tag needs a repository")
        image_config = committing.commit_config(source.config, config, changes)
        async with frozen or nullcontext():
            return await asyncio.to_thread(
                committing.commit, self.store, self.tmp_dir, source, image_config,
                comment=comment, author=author, name=name)

    def temp_dirs(self) -> list[Path]:
        """Where writes in progress keep their temporary files."""
        return [self.store.content.root / "ingest", self.store.layers.root / "tmp", self.tmp_dir]

    async def check(self, repair: bool) -> list[store_check.Problem]:
        """The image store's problems (``wharf system check``); with ``repair``, each is
        repaired where it can be, missing layer blobs fetched again from where they came from.
        """
        problems = await asyncio.to_thread(store_check.inspect, self.store, self.temp_dirs())
        if repair:
            with self.store.lease() as lease:
                for problem in problems:
                    if problem.fix == "fetch":
                        await self._fetch_again(lease, problem)
                await asyncio.to_thread(store_check.repair_locally, self.store, lease, problems)
        return problems

    async def _fetch_again(self, lease: Lease, problem: store_check.Problem) -> None:
        """Fetch a missing layer blob from a repository it is known to live in, checked
        against the layer's diff_id."""
        record = self.store.get(problem.image)
        layer = json.loads(record.manifest or "{}")["layers"][problem.layer_index]
        diff_id = record.config["rootfs"]["diff_ids"][problem.layer_index]
        sources = self.store.blob_sources(problem.id) + [
            (ref.domain, ref.path) for ref in map(reference.parse, record.repo_digests)]
        lease.hold(problem.id)
        for domain, path in dict.fromkeys(sources):
            source = reference.Reference(domain=domain, path=path)
            try:
                await fetch_blob(self.registry, source, problem.id, int(layer.get("size", 0))
                                 or None, None, self.store.content)
                blob = self.store.content.path(problem.id)
                media_type = str(layer.get("mediaType", ""))
                fetched = await asyncio.to_thread(
                    self.store.layers.diff_id_of, blob, media_type, problem.id)
            except WharfError as exc:
                problem.advice = f"fetching it from {source.name} failed: {exc}; " + (
                    problem.advice)
                continue
            if fetched != diff_id:
                problem.advice = (f"the blob from {source.name} is not the layer the image "
                                  f"config names; {problem.advice}")
                return
            problem.repaired, problem.advice = True, f"fetched from {source.name}"
            return

    async def login(self, auth: AuthConfig) -> None:
        """Check ``auth`` against its registry; wharf keeps no identity tokens of its own."""
        await self.registry.check_login(auth.serveraddress or "docker.io", auth)


def _join_tag(name: str, tag: str) -> str:
    """The API passes ``fromImage=busybox&tag=1.36``; a tag that is a digest joins with '@'."""
    if not tag:
        return name
    return f"{name}@{tag}" if tag.startswith("sha256:") else f"{name}:{tag}"
