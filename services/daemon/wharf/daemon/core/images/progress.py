"""Docker's JSON progress messages for pull and push, and running work that emits them.

Message shapes and the progress bar are dockerd's (``jsonmessage``/``progress`` at the daemon's
width); progress is throttled per layer as dockerd's reader does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

Message = dict[str, Any]
Emit = Callable[[Message], None]

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
