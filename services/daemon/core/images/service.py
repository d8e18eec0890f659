"""ImageService: the image operations the daemon's adapters call (one engine, many front doors)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wharf import reference
from wharf.daemon.core.images import archive
from wharf.daemon.core.images.filters import ImageFilter
from wharf.daemon.core.images.pull import pull
from wharf.daemon.core.images.push import push
from wharf.daemon.core.images.registry import RegistryClient
from wharf.daemon.core.images.store import ImageRecord, ImageStore, Removal
from wharf.errors import InvalidArgument, NotFound
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

    def list_images(self, image_filter: ImageFilter | None = None) -> list[ImageRecord]:
        records = self.store.list_images()
        if image_filter is None:
            return records
        return [r for r in records if image_filter.matches(r, self.store)]

    def get(self, name: str) -> ImageRecord:
        return self.store.resolve(name)

    async def pull(
        self, text: str, tag: str, auth: AuthConfig | None, platform: str | None
    ) -> AsyncIterator[dict[str, Any]]:
        """Pull ``text`` (with ``tag`` when given separately, as the API sends it)."""
        ref = reference.parse(_join_tag(text, tag)).with_default_tag()
        async for message in pull(
            ref, registry=self.registry, target=self.store, auth=auth, platform=platform
        ):
            yield message

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
        return self.store.remove(name, force=force, prune=prune)

    def prune(self, dangling_only: bool, image_filter: ImageFilter | None) -> PruneReport:
        """Remove unused images: untagged ones, or every unused one with ``dangling_only=False``."""
        removed: list[Removal] = []
        for record in self.list_images(image_filter):
            if self.store.users(record.id) or (dangling_only and record.tags):
                continue
            removed.append(self.store.remove(record.id, force=True, prune=False))
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

    async def login(self, auth: AuthConfig) -> None:
        """Check ``auth`` against its registry; wharf keeps no identity tokens of its own."""
        await self.registry.check_login(auth.serveraddress or "docker.io", auth)


def _join_tag(name: str, tag: str) -> str:
    """The API passes ``fromImage=busybox&tag=1.36``; a tag that is a digest joins with '@'."""
    if not tag:
        return name
    return f"{name}@{tag}" if tag.startswith("sha256:") else f"{name}:{tag}"
