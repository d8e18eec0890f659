"""ADD <url>: a remote file fetched for a build step (the one place a build reaches out)."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import httpx

from wharf.errors import InvalidArgument

TIMEOUT = 30.0
MAX_BYTES = 2 << 30


def fetch(url: str, directory: Path, max_bytes: int = MAX_BYTES) -> Path:
    """Download ``url`` into ``directory``, named after the URL's last path segment, mode
    0600 (as Docker gives a remote ADD). InvalidArgument when it cannot be fetched: no answer,
    a status other than 200, or more than ``max_bytes``."""
    name = urllib.parse.urlsplit(url).path.rstrip("/").rpartition("/")[2] or "download"
    target = directory / name
    try:
        with httpx.stream("GET", url, timeout=TIMEOUT, follow_redirects=True) as reply:
            if reply.status_code != 200:
                raise InvalidArgument(f"ADD failed: {url} answered {reply.status_code}")
            size = 0
            with target.open("wb") as f:
                for chunk in reply.iter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise InvalidArgument(f"ADD failed: {url} is larger than {max_bytes} "
                                              "bytes")
                    f.write(chunk)
    except httpx.HTTPError as exc:
        target.unlink(missing_ok=True)
        raise InvalidArgument(f"ADD failed: cannot fetch {url}: {exc}") from None
    except InvalidArgument:
        target.unlink(missing_ok=True)
        raise
    target.chmod(0o600)
    return target
