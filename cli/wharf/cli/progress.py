"""Render a JSON-message stream (pull, push, load, import) like the docker CLI.

A port of moby's ``jsonmessage.DisplayJSONMessagesStream``: on a terminal every layer ``id``
keeps one line that is redrawn in place with ANSI cursor moves; elsewhere progress updates are
dropped and each status is printed as a plain line (``abe9b3c44e31: Pull complete``). A message
with ``errorDetail``/``error`` ends the rendering with :class:`CLIError` (the docker CLI prints
the bare message and exits 1).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

from wharf.cli.failure import CLIError
from wharf.cli.formatting import human_size
from wharf.humanize import human_duration

Message = Mapping[str, Any]


def progress_bar(detail: Mapping[str, Any], width: int, now: float | None = None) -> str:
    """moby's ``JSONProgress.String()``: ``[==>   ]  294.9kB/3.147MB``; "" without numbers."""
    current = int(detail.get("current") or 0)
    total = int(detail.get("total") or 0)
    if current <= 0 and total <= 0:
        return ""
    if total <= 0:
        return f"{human_size(current):>8}"
    percentage = min(int(current / total * 100) // 2, 50)
    bar = ""
    if width > 110:
        bar = "[" + "=" * percentage + ">" + " " * max(50 - percentage, 0) + "] "
    numbers = f"{human_size(current):>8}/{human_size(total)}"
    if current > total:
        numbers = f"{human_size(current):>8}"
    left = ""
    start = int(detail.get("start") or 0)
    if current > 0 and start > 0 and percentage < 50:
        elapsed = (time.time() if now is None else now) - start
        if elapsed > 0:
            remaining = (total - current) * elapsed / current
            left = " " + human_duration(remaining)
    return bar + numbers + left


def _fail(message: Message) -> None:
    """CLIError for an error message: one with ``errorDetail`` (as moby's ``jm.Error != nil``,
    even without a text) or a non-empty ``error``."""
    detail = message.get("errorDetail")
    text = detail.get("message") if isinstance(detail, Mapping) else None
    if detail is not None or message.get("error"):
        raise CLIError(str(text or message.get("error")
                           or "the daemon reported an error without a message"))


def _has_progress(message: Message) -> bool:
    detail = message.get("progressDetail")
    return isinstance(detail, Mapping) and bool(detail.get("current") or detail.get("total"))


def _line(message: Message, tty: bool, width: int) -> str:
    """One message as text, without the line ending (moby's ``JSONMessage.Display``)."""
    prefix = f"{message['id']}: " if message.get("id") else ""
    if message.get("from"):
        prefix += f"(from {message['from']}) "
    status = str(message.get("status", ""))
    detail = message.get("progressDetail")
    if tty and isinstance(detail, Mapping) and "progressDetail" in message:
        return f"{prefix}{status} {progress_bar(detail, width)}"
    if message.get("progress"):
        return f"{prefix}{status} {message['progress']}"
    if "stream" in message:
        return prefix + str(message["stream"])
    return prefix + status


def display(messages: Iterable[Message], out: TextIO, tty: bool,
            width: int | None = None) -> None:
    """Write the stream to ``out``; raises CLIError on an error message."""
    cols = width if width is not None else shutil.get_terminal_size((80, 24)).columns
    if tty:
        _display_tty(messages, out, cols)
        return
    for message in messages:
        _fail(message)
        if "aux" in message or _has_progress(message):  # aux is data for the caller
            continue  # docker drops progress bars when not on a terminal
        text = _line(message, False, cols)
        out.write(text if "stream" in message else text + "\n")
        out.flush()


def _display_tty(messages: Iterable[Message], out: TextIO, cols: int) -> None:
    ids: dict[str, int] = {}
    for message in messages:
        _fail(message)
        if "aux" in message:
            continue
        layer = str(message.get("id") or "")
        diff = 0
        if layer and ("progressDetail" in message or message.get("progress")):
            if layer not in ids:
                ids[layer] = len(ids)
                out.write("\n")
            diff = len(ids) - ids[layer]
            out.write(f"\x1b[{diff}A")
        else:
            ids = {}  # anything that is not a layer update starts a new block
        text = _line(message, True, cols)
        if "stream" in message:
            out.write(text)
        elif diff:
            out.write("\x1b[2K\r" + text + "\r")
        else:
            out.write(text + "\n")
        if diff:
            out.write(f"\x1b[{diff}B")
        out.flush()


def drain(messages: Iterable[Message]) -> list[Message]:
    """Consume a stream silently (``-q``), still failing on an error message."""
    seen = []
    for message in messages:
        _fail(message)
        seen.append(message)
    return seen
