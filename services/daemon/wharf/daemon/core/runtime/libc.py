"""The C library for mount(2), umount2(2) and statfs(2), loaded once per process.

``ctypes.util.find_library`` runs ``ldconfig -p`` (a process, ~3 ms) each time it is called;
called per mount, it cost every ``run`` two processes on its critical path.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.cache
def libc() -> ctypes.CDLL:
    """The C library, with ``errno`` kept for ``ctypes.get_errno``."""
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
