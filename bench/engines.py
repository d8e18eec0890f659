"""The engines a bench compares, set up and cleaned up the same way for every script.

- :func:`wharfd`: a private wharfd (data root and socket under a temporary directory, the
  registry as its docker.io mirror); every container is removed before it stops;
- :func:`engine_check`: whether another engine (dockerd, podman) answers, and if not, why;
- :func:`leftovers`: after a run, conmon processes and mounts of that run that outlived the
  daemon, reported and cleared;
- :func:`call` / :func:`once`: the Docker API over wharfd's unix socket (``http.client``).

Not a script; ``bench/run_latency.py`` and ``bench/build.py`` use it.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from tests.daemon_fixture import Daemon, UnixConnection, running_daemon


def call(conn: UnixConnection, method: str, path: str, body: object = None,
         expect: tuple[int, ...] = (200, 201, 204)) -> Any:
    """One request; the decoded JSON body (None when empty). RuntimeError on another status."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if data is not None else {}
    conn.request(method, path, body=data, headers=headers)
    response = conn.getresponse()
    raw = response.read()
    if response.status not in expect:
        raise RuntimeError(f"{method} {path} -> {response.status}: {raw[:400]!r}")
    return json.loads(raw) if raw.strip() else None


def once(sock: Path, method: str, path: str, expect: tuple[int, ...] = (200, 204)) -> Any:
    """One request on a fresh connection (cleanup: no state left from a failed call)."""
    conn = UnixConnection(sock)
    try:
        return call(conn, method, path, expect=expect)
    finally:
        conn.close()


def remove_all(sock: Path, attempts: int = 5) -> int:
    """Force-remove every container the daemon knows, retrying those that fail (a removal
    still in flight from an interrupted section answers 409); how many were found."""
    found: set[str] = set()
    for _ in range(attempts):
        ids = [c["Id"] for c in once(sock, "GET", "/containers/json?all=1")]
        if not ids:
            break
        found.update(ids)
        for cid in ids:
            with suppress(RuntimeError, OSError, http.client.HTTPException):
                once(sock, "DELETE", f"/containers/{cid}?force=1", expect=(204, 404))
        time.sleep(0.5)
    return len(found)


@contextmanager
def wharfd(base: Path, registry: str) -> Iterator[Daemon]:
    """A private wharfd; every container removed before it stops."""
    with running_daemon(base, mirrors=[f"http://{registry}"]) as daemon:
        try:
            yield daemon
        finally:
            try:
                left = remove_all(daemon.socket)
                if left:
                    print(f"cleanup: removed {left} leftover container(s)")
            except (OSError, RuntimeError, http.client.HTTPException) as exc:
                print(f"cleanup: removing the containers failed: {exc!r}", file=sys.stderr)


def engine_check(argv: list[str]) -> str | None:
    """None when ``argv`` (an engine's info command) succeeds, else why it did not."""
    if shutil.which(argv[0]) is None:
        return f"shutil.which({argv[0]!r}) is None"
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    except subprocess.TimeoutExpired:
        return f"`{' '.join(argv)}` timed out"
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines() or ["(no output)"]
        return f"`{' '.join(argv)}` exited {proc.returncode}: {lines[-1][:160]}"
    return None


def conmon_pids(base: Path) -> list[int]:
    """PIDs of conmon processes whose command line mentions ``base`` (this run's only)."""
    out: list[int] = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with suppress(OSError):
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            if argv and argv[0].endswith(b"conmon") and str(base).encode() in b" ".join(argv):
                out.append(int(proc.name))
    return out


def mounts_under(base: Path) -> list[str]:
    prefix = str(base.resolve()) + "/"
    return [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
            if line.split()[1].startswith(prefix)]


def leftovers(base: Path) -> None:
    """Report (and clear) conmon processes and mounts of this run that outlived the daemon."""
    pids = conmon_pids(base)
    mounts = mounts_under(base)
    print(f"\ncleanup check: conmon processes under {base}: {pids or 'none'}; "
          f"mounts under it: {len(mounts) or 'none'} {mounts[:3] if mounts else ''}".rstrip())
    if pids or mounts:
        print("cleanup: killing those conmon processes and unmounting (umount -l) those mounts")
    for pid in pids:
        with suppress(OSError):
            os.kill(pid, 9)
    for mount in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], check=False)
