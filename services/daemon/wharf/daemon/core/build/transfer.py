"""COPY, ADD and WORKDIR: files written into an overlay of the step's parent image.

Sources come from the build context (links may not lead out of it), from an earlier stage's
image or from another image (``COPY --from``: that image's root mounted, its links read inside
it), or, for ADD, from a URL (fetched into the build's work dir; a clear error when it does not
answer). The cache key holds a digest of what is copied (``context.digest_sources``: names,
modes, content, link targets) and the --chown/--chmod values, so an unchanged COPY is reused
and a changed file rebuilds from its step on. ADD unpacks a local tar archive (plain, gzip,
bzip2, xz) into the destination with the build context's safety checks.
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from wharf.daemon.core.build import steps
from wharf.daemon.core.build.contexts import Context
from wharf.daemon.core.build.context import (
    copy_target,
    dest_path,
    digest_sources,
    receive_context,
    resolve_sources,
)
from wharf.daemon.core.build.files import (
    chown_ids,
    copy_in,
    is_archive,
    is_dir_in,
    make_dirs,
    mounted,
)
from wharf.daemon.core.build.instructions import Add, Copy, FileTransfer
from wharf.daemon.core.build.remote import fetch
from wharf.daemon.core.build.stages import resolve_stage
from wharf.daemon.core.build.work import in_thread, record_step
from wharf.daemon.core.images.service import ImageService
from wharf.daemon.core.images.store import ImageRecord
from wharf.errors import InvalidArgument

if TYPE_CHECKING:
    from wharf.daemon.core.build.builder import Builder, StageState

def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


class Transfers:
    """The file steps of one build, working under ``work``."""

    def __init__(self, images: ImageService, context: Context, work: Path) -> None:
        self.images = images
        self.context = context.root
        self._digest = context.digest  # its sources' digests, computed once per context
        self.work = work
        self._numbers = itertools.count(1)

    def _scratch_dir(self, kind: str) -> Path:
        return self.work / f"{kind}-{next(self._numbers)}"

    def _lowers(self, image: ImageRecord | None) -> list[Path]:
        if image is None:
            return []
        return [self.images.store.layers.diff_path(c) for c in reversed(image.chain_ids)]

    async def step(self, builder: Builder, state: StageState, instruction: FileTransfer) -> None:
        keyword = instruction.keyword.upper()
        root, release = await self._source_root(builder, state, instruction)
        try:
            sources = await in_thread(self._sources, root, instruction, keyword)
            local = root == self.context and not any(_is_url(s) for s in instruction.sources)
            digest = await in_thread(self._digest if local else digest_sources, sources)
            workdir = str(state.config.config.get("WorkingDir") or "/")
            dest = dest_path(workdir, instruction.dest, sources, instruction=keyword)
            kinds = ["dir" if p.is_dir() else "file" for p in sources]
            probe = steps.copy_created_by(state.config, keyword, digest, kinds,
                                          instruction.dest)
            new = steps.StageConfig(dict(state.config.config), state.config.author,
                                    state.config.cmd_set)
            unpack = isinstance(instruction, Add)
            urls = {p for p in sources if p.is_relative_to(self.work)}

            async def make() -> str:
                return await in_thread(self._copy, state, new, probe, sources, dest,
                                       instruction, unpack, urls)
            await builder.commit(state, new, probe, make=make,
                                 extra=(instruction.chown, instruction.chmod))
        finally:
            await in_thread(release)

    async def _source_root(self, builder: Builder, state: StageState,
                           instruction: FileTransfer) -> tuple[Path, Callable[[], None]]:
        """Where the sources are: the context, or a mounted image for ``COPY --from``."""
        if not isinstance(instruction, Copy) or not instruction.from_:
            return self.context, lambda: None
        index = resolve_stage(builder.prepared.stages, state.stage.index, instruction.from_)
        if index is not None:
            if index not in builder.built:
                raise InvalidArgument(f"COPY --from={instruction.from_}: that stage was not "
                                      "built (its name must be known before the build runs)")
            image = builder.built[index].image
        else:
            image = await builder.image(instruction.from_)
        base = self._scratch_dir("from")
        mount = mounted(self._lowers(image), base, self.work / "empty")
        paths = await in_thread(mount.__enter__)

        def release() -> None:
            mount.__exit__(None, None, None)
        return paths.merged, release

    def _sources(self, root: Path, instruction: FileTransfer, keyword: str) -> list[Path]:
        local = [s for s in instruction.sources if not _is_url(s)]
        if len(local) < len(instruction.sources) and not isinstance(instruction, Add):
            raise InvalidArgument(f"{keyword} failed: source can't be a URL for COPY")
        found = resolve_sources(root, local, instruction=keyword,
                                confine=root == self.context) if local else []
        fetched = [self._fetch(s) for s in instruction.sources if _is_url(s)]
        return found + fetched

    def _fetch(self, url: str) -> Path:
        directory = self._scratch_dir("url")
        directory.mkdir(parents=True)
        return fetch(url, directory)

    def _copy(self, state: StageState, new: steps.StageConfig, probe: list[str],
              sources: list[Path], dest: str, instruction: FileTransfer, unpack: bool,
              urls: set[Path]) -> str:
        base = self._scratch_dir("copy")
        with mounted(self._lowers(state.image), base, self.work / "empty") as paths:
            root = paths.merged
            owner = chown_ids(root, instruction.chown)
            existing = is_dir_in(root, dest)
            for source in sources:
                if unpack and source not in urls and is_archive(source):
                    self._unpack(root, source, dest)
                    continue
                target = copy_target(dest, source, existing_dir=existing)
                copy_in(root, source, target, owner=owner, mode=instruction.mode)
            return self._record(state, new, probe, paths.upper)

    def _unpack(self, root: Path, archive: Path, dest: str) -> None:
        """ADD of a local archive: its tree merged into ``dest``, owners as in the archive."""
        tree = self._scratch_dir("unpack")
        try:
            with archive.open("rb") as body:
                receive_context(body, tree)
            copy_in(root, tree, dest.rstrip("/") or "/", owner=None, mode=None)
        finally:
            shutil.rmtree(tree, ignore_errors=True)

    def workdir(self, state: StageState, new: steps.StageConfig, probe: list[str],
                path: str) -> str:
        """WORKDIR: the directory made (0755, root's) when the image has none there."""
        base = self._scratch_dir("workdir")
        with mounted(self._lowers(state.image), base, self.work / "empty") as paths:
            if is_dir_in(paths.merged, path):
                return self._record(state, new, probe, None)
            make_dirs(paths.merged, path)
            return self._record(state, new, probe, paths.upper)

    def _record(self, state: StageState, new: steps.StageConfig, probe: list[str],
                upper: Path | None) -> str:
        return record_step(self.images, state.image, new, probe, upper)
