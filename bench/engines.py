"""The engines a bench compares, set up and cleaned up the same way for every script.

- :func:`wharfd`: a private wharfd (data root and socket under a temporary directory, the
  registry as its docker.io mirror); every container is removed before it stops;
- :func:`engine_check`: whether another engine (dockerd, podman) answers, and if not, why;
- :func:`leftovers`: after a run, conmon processes and mounts of that run that outlived the
  daemon, reported and cleared;
- :func:`call` / :func:`once`: the Docker API over a unix socket (``http.client``);
- :func:`dockerd` / :func:`podman_service`: dockerd found running (or installed and started,
  with ``make dockerd``'s flags) and podman's Docker-compatible API service for one run, with
  :func:`podman_run_flags`, the flags podman needs on this host.

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
from collections.abc import Callable, Iterator
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


# ---- dockerd and podman, found or started ------------------------------------------------------

DOCKER_SOCKET = Path("/var/run/docker.sock")
# the flags of `make dockerd` (infra/dockerd.sh): dockerd leaves networking to wharfd
DOCKERD_FLAGS = ["--iptables=false", "--ip-forward=false", "--bridge=none"]
# podman's crun fails on this host's hybrid cgroups, and the host lacks CAP_SYS_RESOURCE for
# podman's default rlimits; with these a container runs
PODMAN_RUNTIME = "runc"
PODMAN_ULIMITS = {"nofile": 1024, "nproc": 1024}


def podman_run_flags() -> list[str]:
    """The flags every ``podman run`` of a bench takes on this host."""
    flags = ["--runtime", PODMAN_RUNTIME]
    for name, limit in PODMAN_ULIMITS.items():
        flags += ["--ulimit", f"{name}={limit}:{limit}"]
    return flags


def apt_install(package: str, command: str) -> None:
    """``apt-get install -y package`` unless ``command`` is already on PATH."""
    if shutil.which(command):
        return
    print(f"installing {package} (apt-get install -y {package})")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "install", "-y", "-q", package], env=env, check=True,
                   stdout=subprocess.DEVNULL)


@contextmanager
def dockerd(log: Path) -> Iterator[str]:
    """dockerd answering on :data:`DOCKER_SOCKET`: the running one (left running), else one
    started here with :data:`DOCKERD_FLAGS` and stopped at the end; yields how it was found."""
    apt_install("docker.io", "dockerd")
    check = ["docker", "-H", f"unix://{DOCKER_SOCKET}", "info"]
    if engine_check(check) is None:
        yield "found running (left running)"
        return
    with log.open("ab") as out:
        process = subprocess.Popen(["dockerd", *DOCKERD_FLAGS], stdout=out, stderr=out)
    try:
        _await(lambda: engine_check(check) is None, process, "dockerd", log)
        yield f"started here (pid {process.pid}, {' '.join(DOCKERD_FLAGS)}), stopped at the end"
    finally:
        _stop(process)


@contextmanager
def podman_service(sock: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``podman system service`` (Docker-compatible API) on ``sock`` for this run only."""
    apt_install("podman", "podman")
    argv = ["podman", "--runtime", PODMAN_RUNTIME, "system", "service", "--time=0",
            f"unix://{sock}"]
    with log.open("ab") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=out)
    try:
        _await(lambda: _pings(sock), process, "podman system service", log)
        yield process
    finally:
        _stop(process)


def _pings(sock: Path) -> bool:
    if not sock.exists():
        return False
    conn = UnixConnection(sock, timeout=5)
    try:
        conn.request("GET", "/_ping")
        response = conn.getresponse()
        response.read()
        return response.status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def _await(ready: Callable[[], bool], process: subprocess.Popen[bytes], what: str,
           log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace").strip().splitlines()[-5:]
            raise RuntimeError(f"{what} did not answer (exit {process.poll()}): {tail}")
        time.sleep(0.2)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
