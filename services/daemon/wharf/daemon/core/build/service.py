"""BuildService: ``POST /build`` and ``POST /build/prune`` for every front door.

Under ``<data root>/builds``: ``contexts/<id>`` the received contexts (``contexts``: kept for
the next build of the same archive) and ``work/<id>`` each build's own directory (its steps'
mounts and downloads). :meth:`prepare` receives the context and plans the build (an error there
is the request's error); :meth:`run` runs the builder in its own task and yields its messages.
When the reader stops early (the client went away), the task is cancelled: the running step
removes its container and mounts, and the build's directory goes once the task has ended. What
a daemon that died left there is removed (its mounts first) when the service starts.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wharf.daemon.core.build.builder import Builder
from wharf.daemon.core.prunefilter import PruneFilter
from wharf.daemon.core.build.cache import BuildCache, PruneResult
from wharf.daemon.core.build.context import ContextLimits
from wharf.daemon.core.build.contexts import Context, ContextStore
from wharf.daemon.core.build.prepare import BuildRequest, Prepared, plan_build
from wharf.daemon.core.build.runstep import StepFailed
from wharf.daemon.core.containers.service import ContainerService
from wharf.daemon.core.images.service import ImageService
from wharf.daemon.core.runtime import rootfs
from wharf.errors import WharfError

log = logging.getLogger("wharf.build")
_QUEUE = 256  # messages a slow reader may lag behind before the build waits for it


@dataclass(frozen=True)
class PreparedBuild:
    """A received context and its plan, ready to run (or to be discarded): ``directory`` is
    the build's work dir, ``release`` hands the context back."""

    directory: Path
    request: BuildRequest
    prepared: Prepared
    context: Context
    release: Callable[[], None]


class BuildService:
    """Builds images from Dockerfiles; owns the build cache."""

    def __init__(self, images: ImageService, containers: ContainerService, root: Path,
                 limits: ContextLimits | None = None) -> None:
        self.images = images
        self.containers = containers
        self.root = root
        self.limits = limits or ContextLimits()
        self.cache = BuildCache(images.store)
        self.contexts = ContextStore(root / "contexts", self.limits)

    def clean_leftovers(self) -> None:
        """Remove what builds of an earlier daemon left (their mounts first)."""
        if not self.root.is_dir():
            return
        for mount in self.root.glob("work/*/*/merged"):
            rootfs.unmount_overlay(mount.parent)
        shutil.rmtree(self.root, ignore_errors=True)

    def prepare(self, archive: Path, request: BuildRequest) -> PreparedBuild:
        """Take the context the archive (the request body, spooled) unpacks to and plan the
        build (blocking: call it in a thread). InvalidArgument for a bad context or
        Dockerfile; nothing is then left."""
        context, release = self.contexts.acquire(archive, request.dockerfile)
        try:
            prepared = plan_build(context.dockerfile, request)
            directory = self.root / "work" / uuid.uuid4().hex
            directory.mkdir(parents=True)
        except BaseException:
            release()
            raise
        return PreparedBuild(directory, request, prepared, context, release)

    def discard(self, build: PreparedBuild) -> None:
        shutil.rmtree(build.directory, ignore_errors=True)
        build.release()

    async def run(self, build: PreparedBuild) -> AsyncIterator[dict[str, Any]]:
        """The build's messages as it runs; the last is an ``errorDetail`` when it fails."""
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(_QUEUE)
        builder = Builder(self.images, self.containers, self.cache, build.request,
                          build.prepared, build.context, build.directory, queue.put)
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

    def prune(self, *, everything: bool, wanted: PruneFilter | None = None) -> PruneResult:
        return self.cache.prune(everything=everything, wanted=wanted)


def error_message(message: str, code: int | None = None) -> dict[str, Any]:
    detail: dict[str, Any] = {"message": message}
    if code is not None:
        detail = {"code": code, **detail}
    return {"errorDetail": detail, "error": message}
