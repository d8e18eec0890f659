"""A typed client of wharfd's Docker Engine API (images, containers, exec, system endpoints).

Every method is one API call. Non-2xx replies raise the ``wharf.errors`` kind for the status
(``from_http_status``) with the daemon's ``message``; streaming methods return an iterator of the
JSON messages the daemon sends (pull, push, load, import, build) or of raw bytes (save, logs).
Attach and exec start hijack the connection through a :class:`~wharf.cli.hijack.Hijacker` and
return its :class:`~wharf.cli.hijack.RawStream`.

The calls are grouped by what they act on (``apiresources``: system, images, volumes,
networks; ``apicontainers``: containers and exec) over the plumbing of ``apibase``; the
replies are read by ``apireplies``.
"""

from __future__ import annotations

from wharf.cli.apicontainers import ContainerCalls
from wharf.cli.apireplies import (
    EMPTY_AUTH,
    JSONObject,
    WaitHandle,
    decode_messages,
    error_for,
    filters_param,
)
from wharf.cli.apiresources import ResourceCalls

__all__ = ["EMPTY_AUTH", "APIClient", "JSONObject", "WaitHandle",
           "decode_messages", "error_for", "filters_param"]


class APIClient(ResourceCalls, ContainerCalls):
    """Docker Engine API v1.41 calls over a :class:`Transport` (and a Hijacker for attach)."""
