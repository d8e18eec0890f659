"""Helpers the build steps share: blocking work in a thread that a cancelled build waits for,
and a step's image recorded."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from wharf.daemon.core.build.steps import StageConfig
from wharf.daemon.core.images.commit import NewImage, record_image
from wharf.daemon.core.images.service import ImageService
from wharf.daemon.core.images.store import ImageRecord

T = TypeVar("T")


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a worker thread. When the build is cancelled meanwhile, the thread is
    waited for (it cannot be stopped) so that its mounts are gone before the build's work dir
    is removed; the cancellation then goes on."""
    future = asyncio.ensure_future(asyncio.to_thread(fn, *args))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        with contextlib.suppress(BaseException):
            await future
        raise


def record_step(images: ImageService, parent: ImageRecord | None, new: StageConfig,
                probe: list[str], upper: Path | None, *, container_id: str = "",
                skip: frozenset[str] = frozenset()) -> str:
    """A build step's image: ``new``'s config on ``parent``, ``upper`` as its layer when it
    holds anything; the history's ``created_by`` and the probe config as dockerd writes them."""
    image = NewImage(parent=parent, config=new.config, author=new.author,
                     history={"created_by": " ".join(probe)}, container_id=container_id,
                     container_config={**new.config, "Cmd": probe})
    return record_image(images.store, images.tmp_dir, image, upper, skip)
