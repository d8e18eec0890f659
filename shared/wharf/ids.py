"""Identifiers: 64-hex IDs, their 12-character short form, and digests."""

from __future__ import annotations

import hashlib
import re
import secrets

from wharf.errors import InvalidArgument

# Used with fullmatch: "$" with re.match also accepts a final newline ("sha256:…\n").
_HEX64 = re.compile(r"[0-9a-f]{64}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def new_id() -> str:
    """A random 64-hex identifier, as Docker gives containers and execs."""
    return secrets.token_hex(32)


def short_id(full: str) -> str:
    """The 12-character form of an ID or digest (``sha256:`` dropped)."""
    return full.removeprefix("sha256:")[:12]


def is_full_id(value: str) -> bool:
    return _HEX64.fullmatch(value) is not None


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def check_digest(value: str) -> str:
    """Return ``value`` when it is a ``sha256:<64 hex>`` digest, else raise InvalidArgument."""
    if not _DIGEST.fullmatch(value):
        raise InvalidArgument(f"invalid digest {value!r}: expected sha256:<64 hex characters>")
    return value
