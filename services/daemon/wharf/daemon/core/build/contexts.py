"""Received build contexts, kept for the next build of the same context.

A rebuild usually sends the very archive it sent before (the cached rebuild of an unchanged
tree). Unpacking it again is most of such a build's time here: checking ~200 tar headers and
writing ~200 small files costs ~30-50 ms on this machine's ext4, where the whole cached build
takes ~10 ms. So a context is kept after its build, keyed by the SHA-256 of the archive as
received and the Dockerfile's name (the Dockerfile is read before ``.dockerignore`` hides what
it excludes, perhaps the Dockerfile itself): the next build of the same archive takes the tree
as it is, with the Dockerfile's bytes and the COPY sources' digests already known.

A kept tree is never written to: builds only read their context (COPY's copies, ADD's archives
and downloads go to the build's own work dir). The store keeps the ``keep`` most recently used
trees no build is using, up to ``keep_bytes`` of content; the rest are deleted. Nothing of it
survives a restart (the service removes its directory at start).
"""

from __future__ import annotations

import hashlib
import shutil
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from wharf.daemon.core.build.context import (
    ContextLimits,
    apply_dockerignore,
    digest_sources,
    read_dockerfile,
    receive_context,
)

_CHUNK = 1 << 20


@dataclass
class Context:
    """An unpacked context: its tree, the Dockerfile's bytes, its size, its builds."""

    root: Path
    dockerfile: bytes
    size: int
    users: int = 0
    digests: dict[tuple[str, ...], str] = field(default_factory=dict)

    def digest(self, paths: Sequence[Path]) -> str:
        """``context.digest_sources`` of ``paths``, computed once per tree."""
        key = tuple(str(p) for p in paths)
        found = self.digests.get(key)
        if found is None:
            found = self.digests[key] = digest_sources(paths)
        return found


class ContextStore:
    """The contexts of the builds running now and of the last few."""

    def __init__(self, root: Path, limits: ContextLimits, *, keep: int = 8,
                 keep_bytes: int = 1 << 30) -> None:
        self.root = root
        self.limits = limits
        self.keep = keep
        self.keep_bytes = keep_bytes
        self._lock = threading.Lock()
        self._known: OrderedDict[str, Context] = OrderedDict()  # least recently used first

    def acquire(self, archive: Path, dockerfile: str) -> tuple[Context, Callable[[], None]]:
        """The context the archive at ``archive`` unpacks to (blocking: call it in a thread),
        and the function that hands it back when the build ends. InvalidArgument for a bad
        archive or a missing Dockerfile; nothing is then left."""
        key = _key(archive, dockerfile)
        with self._lock:
            context = self._known.get(key)
            if context is not None:
                context.users += 1
                self._known.move_to_end(key)
        if context is None:
            context = self._unpack(archive, dockerfile)
            with self._lock:
                if key not in self._known:  # else another build made it meanwhile: ours is
                    self._known[key] = context  # used once and deleted on release
        return context, lambda: self._release(key, context)

    def _unpack(self, archive: Path, dockerfile: str) -> Context:
        target = self.root / uuid.uuid4().hex
        try:
            with archive.open("rb") as body:
                received = receive_context(body, target, self.limits)
            _, raw = read_dockerfile(target, dockerfile)
            apply_dockerignore(target)
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
        return Context(target, raw, received.size, users=1)

    def _release(self, key: str, context: Context) -> None:
        doomed: list[Path] = []
        with self._lock:
            context.users -= 1
            if self._known.get(key) is not context:
                if context.users == 0:
                    doomed.append(context.root)
            else:
                doomed += self._evict()
        for root in doomed:
            shutil.rmtree(root, ignore_errors=True)

    def _evict(self) -> list[Path]:
        """Under the lock: forget the idle contexts beyond ``keep`` and ``keep_bytes``."""
        doomed = []
        idle = [(k, c) for k, c in self._known.items() if c.users == 0]
        total = sum(c.size for _, c in idle)
        for index, (key, context) in enumerate(idle):
            if len(idle) - index <= self.keep and total <= self.keep_bytes:
                break
            del self._known[key]
            total -= context.size
            doomed.append(context.root)
        return doomed


def _key(archive: Path, dockerfile: str) -> str:
    h = hashlib.sha256()
    with archive.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    h.update(b"\0" + dockerfile.encode())
    return h.hexdigest()
