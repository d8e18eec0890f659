"""The classic builder: a prepared build (``prepare``) run stage by stage, step by step.

Every step makes an image whose parent is the step before (Docker's classic builder): a
metadata step only a new config, RUN a container of the step's image whose changes become a
layer (``runstep``), COPY/ADD and WORKDIR files written into an overlay of the parent
(``transfer``). Before a step runs, the build cache is asked for its key (``steps.cache_key``);
a hit prints `` ---> Using cache`` and takes the cached image. The output is the classic
builder's, message by message (``Step N/M : …``, `` ---> <id>``, ``Successfully built``).

A lease holds the images the build stands on (bases, every step so far) until it ends, so an
``image prune`` meanwhile leaves them; cancelling the build's task (the client went away) stops
the running step, whose ``finally`` blocks remove its container and mounts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wharf import reference
from wharf.daemon.core.build import steps
from wharf.daemon.core.build.cache import BuildCache
from wharf.daemon.core.build.contexts import Context
from wharf.daemon.core.build.dockerfile import parse_trigger
from wharf.daemon.core.build.expansion import Scope, expand
from wharf.daemon.core.build.instructions import FileTransfer, Instruction, Run, Workdir
from wharf.daemon.core.build.prepare import BuildRequest, Prepared
from wharf.daemon.core.build.runstep import run_step
from wharf.daemon.core.build.stages import Stage
from wharf.daemon.core.build.transfer import Transfers
from wharf.daemon.core.build.work import in_thread, record_step
from wharf.daemon.core.containers.service import ContainerService
from wharf.daemon.core.images.gc import Lease
from wharf.daemon.core.images.service import ImageService
from wharf.daemon.core.images.store import ImageRecord
from wharf.errors import InvalidArgument, NotFound

Say = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass
class StageState:
    """A stage while it is built: its config, variables and current image (None: scratch)."""

    stage: Stage
    config: steps.StageConfig
    scope: Scope
    image: ImageRecord | None

    @property
    def parent_id(self) -> str:
        return self.image.id if self.image is not None else ""


class Builder:
    """One build: ``run`` returns the final image's ID."""

    def __init__(self, images: ImageService, containers: ContainerService, cache: BuildCache,
                 request: BuildRequest, prepared: Prepared, context: Context, work: Path,
                 say: Say) -> None:
        self.images = images
        self.containers = containers
        self.cache = cache
        self.request = request
        self.prepared = prepared
        self.context = context
        self.work = work
        self._say = say
        self.step = 0
        self.built: dict[int, StageState] = {}
        self.transfers = Transfers(images, context, work)
        self._lease: Lease | None = None

    async def say(self, text: str) -> None:
        if not self.request.quiet:
            await self._say({"stream": text})

    async def run(self) -> str:
        with self.images.store.lease() as lease:
            self._lease = lease
            for arg in self.prepared.plan.global_args:
                await self._step_line(arg)
            for index in self.prepared.needed:
                self.built[index] = await self._build_stage(self.prepared.stages[index])
            final = self.built[self.prepared.needed[-1]].image
            if final is None:
                raise InvalidArgument("No image was generated. Is your Dockerfile empty?")
            for tag in self.request.tags:
                await asyncio.to_thread(self.images.store.tag, final.id, tag)
        await self._say({"aux": {"ID": final.id}})
        if self.request.quiet:
            await self._say({"stream": final.id + "\n"})
        await self.say(f"Successfully built {final.id[7:19]}\n")
        for tag in self.request.tags:
            await self.say(f"Successfully tagged {reference.parse(tag).familiar_string}\n")
        return final.id

    async def _step_line(self, instruction: Instruction) -> None:
        self.step += 1
        await self.say(f"Step {self.step}/{self.prepared.total_steps} : {instruction.original}")
        await self.say("\n")

    # --- stages -----------------------------------------------------------------------------

    async def _build_stage(self, stage: Stage) -> StageState:
        await self._step_line(stage.source)
        parent: StageState | None = None
        if stage.base_stage is not None:
            parent = self.built[stage.base_stage]
            image = parent.image
        elif stage.scratch:
            image = None
        else:
            image = await self.image(stage.base)
        await self.say(f" ---> {image.id[7:19] if image is not None else ''}\n")
        self._hold(image)
        config = steps.StageConfig.from_image(image.config if image is not None else None)
        state = StageState(stage, config, Scope.start(
            self.prepared.plan.build_args, config.config.get("Env") or [],
            parent.scope if parent is not None else None), image)
        await self._triggers(state)
        for instruction in stage.instructions:
            await self._step_line(instruction)
            await self._instruction(state, instruction)
        return state

    async def _triggers(self, state: StageState) -> None:
        """The base image's ONBUILD triggers, run first; the new image keeps none of them."""
        triggers = list(state.config.config.get("OnBuild") or [])
        if not triggers:
            return
        plural = "s" if len(triggers) > 1 else ""
        await self.say(f"# Executing {len(triggers)} build trigger{plural}\n")
        state.config.config["OnBuild"] = None
        for expression in triggers:
            await self._instruction(state, parse_trigger(str(expression)))

    async def image(self, name: str) -> ImageRecord:
        """An image a stage starts FROM or copies from: pulled when missing or ``pull``."""
        present = True
        try:
            record = self.images.get(name)
        except NotFound:
            present = False
        if not present or self.request.pull:
            ref = reference.parse(name).with_default_tag()
            auth = self.request.auth(ref.domain)
            async for message in self.images.pull(ref.string, "", auth, None):
                if not self.request.quiet:
                    await self._say(message)
            record = self.images.get(ref.string)
        self._hold(record)
        return record

    def _hold(self, image: ImageRecord | None) -> None:
        if image is not None and self._lease is not None:
            self._lease.hold(image.id)

    # --- steps ------------------------------------------------------------------------------

    async def _instruction(self, state: StageState, instruction: Instruction) -> None:
        expanded = expand(instruction, state.scope.variables(), self.prepared.plan.escape)
        if isinstance(expanded, Run):
            await run_step(self, state, expanded)
        elif isinstance(expanded, FileTransfer):
            await self.transfers.step(self, state, expanded)
        elif isinstance(expanded, Workdir):
            await self._workdir(state, expanded)
        else:
            new, message = steps.apply(state.config, expanded)
            probe = steps.created_by(state.config, message)
            await self.commit(state, new, probe, make=lambda: self._record(state, new, probe))
        state.scope = state.scope.apply(expanded)

    async def _workdir(self, state: StageState, instruction: Workdir) -> None:
        new, message = steps.apply(state.config, instruction)
        probe = steps.created_by(state.config, message, joined=True)
        path = str(new.config["WorkingDir"])

        async def make() -> str:
            return await in_thread(self.transfers.workdir, state, new, probe, path)
        await self.commit(state, new, probe, make=make)

    async def _record(self, state: StageState, new: steps.StageConfig,
                      probe: list[str]) -> str:
        return await in_thread(record_step, self.images, state.image, new, probe, None)

    async def commit(self, state: StageState, new: steps.StageConfig, probe: list[str], *,
                     make: Callable[[], Awaitable[str]], extra: tuple[str, ...] = ()) -> None:
        """The step's image from the cache, or made by ``make``; the stage moves on to it."""
        key = steps.cache_key(state.parent_id, probe, new.config, *extra)
        cached = None if self.request.no_cache else self.cache.get(key)
        image = None
        if cached is not None:
            try:
                image = self.images.store.get(cached)
                await self.say(" ---> Using cache\n")
            except NotFound:
                image = None
        if image is None:
            image = self.images.store.get(await make())
            self.cache.put(key, image.id)
        self._hold(image)
        await self.say(f" ---> {image.id[7:19]}\n")
        state.image, state.config = image, new
