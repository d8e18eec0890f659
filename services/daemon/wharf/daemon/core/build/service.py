"""BuildService: ``POST /build`` and ``POST /build/prune`` for every front door.

A build lives in its own directory under ``<data root>/builds/<id>``: ``context`` (the received
context) and ``work`` (the steps' mounts and downloads). :meth:`prepare` receives the context
and plans the build (an error there is the request's error); :meth:`run` runs the builder in
its own task and yields its messages. When the reader stops early (the client went away), the
task is cancelled: the running step removes its container and mounts, and the build's
directory goes once the task has ended. A directory left by a daemon that died mid-build is
removed (its mounts first) when the service starts.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from wharf.daemon.core.build.builder import Builder
from wharf.daemon.core.build.cache import BuildCache, PruneResult
from wharf.daemon.core.build.context import ContextLimits, receive_context
from wharf.daemon.core.build.prepare import BuildRequest, Prepared, prepare
from wharf.daemon.core.build.runstep import StepFailed
from wharf.daemon.core.containers.service import ContainerService
from wharf.daemon.core.images.service import ImageService
from wharf.daemon.core.runtime import rootfs
from wharf.errors import WharfError

log = logging.getLogger("wharf.build")
_QUEUE = 256  # messages a slow reader may lag behind before the build waits for it


@dataclass(frozen=True)
class PreparedBuild:
    """A received context and its plan, ready to run (or to be discarded)."""

    directory: Path
    request: BuildRequest
    prepared: Prepared

    @property
    def context(self) -> Path:
        return self.directory / "context"


class BuildService:
    """Builds images from Dockerfiles; owns the build cache."""

    def __init__(self, images: ImageService, containers: ContainerService, root: Path,
                 limits: ContextLimits | None = None) -> None:
        self.images = images
        self.containers = containers
        self.root = root
        self.limits = limits or ContextLimits()
        self.cache = BuildCache(images.store)

    def clean_leftovers(self) -> None:
        """Remove what builds of an earlier daemon left (their mounts first)."""
        if not self.root.is_dir():
            return
        for build in self.root.iterdir():
            for mount in (build / "work").glob("*/merged"):
                rootfs.unmount_overlay(mount.parent)
            shutil.rmtree(build, ignore_errors=True)

    def prepare(self, body: BinaryIO, request: BuildRequest) -> PreparedBuild:
        """Receive the context tar from ``body`` and plan the build (blocking: call it in a
        thread). InvalidArgument for a bad context or Dockerfile; nothing is then left."""
        directory = self.root / uuid.uuid4().hex
        try:
            receive_context(body, directory / "context", self.limits)
            (directory / "work").mkdir()
            return PreparedBuild(directory, request, prepare(directory / "context", request))
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise

    def discard(self, build: PreparedBuild) -> None:
        shutil.rmtree(build.directory, ignore_errors=True)

    async def run(self, build: PreparedBuild) -> AsyncIterator[dict[str, Any]]:
        """The build's messages as it runs; the last is an ``errorDetail`` when it fails."""
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(_QUEUE)
        builder = Builder(self.images, self.containers, self.cache, build.request,
                          build.prepared, build.context, build.directory / "work", queue.put)
        task = asyncio.create_task(self._run(builder, queue))
        task.add_done_callback(lambda _: self.discard(build))
        try:
            while (message := await queue.get()) is not None:
                yield message
        finally:
            task.cancel()  # a no-op once it ended; the done callback removes the directory

    async def _run(self, builder: Builder, queue: asyncio.Queue[dict[str, Any] | None]
                   ) -> None:
        try:
            await builder.run()
        except StepFailed as exc:
            await queue.put(error_message(exc.message, exc.exit_code))
        except WharfError as exc:
            await queue.put(error_message(exc.message))
        except Exception as exc:  # a bug: logged in full, the client gets its text
            log.exception("build failed")
            await queue.put(error_message(f"internal error: {exc}"))
        await queue.put(None)

    def prune(self, *, everything: bool) -> PruneResult:
        return self.cache.prune(everything=everything)


def error_message(message: str, code: int | None = None) -> dict[str, Any]:
    detail: dict[str, Any] = {"message": message}
    if code is not None:
        detail = {"code": code, **detail}
    return {"errorDetail": detail, "error": message}
