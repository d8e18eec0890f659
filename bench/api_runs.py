"""``run --rm true`` through the Docker API over an engine's unix socket, one or many at once.

- :func:`api_run_once`: create → open wait (``next-exit``, headers only, on a second
  keep-alive connection, as the docker CLI does) → start → wait body → delete, timed per phase;
- :func:`concurrently`: one thread and one pre-connected connection per item, released
  together; :func:`run_to_completion`: one whole lifecycle (create, start, wait, remove) whose
  exit code is returned.

The same code drives wharfd, dockerd and podman's API service; not a script.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bench.engines import call
from tests.daemon_fixture import UnixConnection

PHASES = ("create", "open wait", "start", "start -> exit", "create -> exit", "delete")


def create(conn: UnixConnection, body: Mapping[str, Any]) -> str:
    reply = call(conn, "POST", "/containers/create", dict(body))
    return str(reply["Id"])


def open_wait(conn: UnixConnection, cid: str) -> http.client.HTTPResponse:
    """POST wait?condition=next-exit and read the headers only (as the docker CLI does)."""
    conn.request("POST", f"/containers/{cid}/wait?condition=next-exit")
    response = conn.getresponse()
    if response.status != 200:
        raise RuntimeError(f"wait {cid[:12]} -> {response.status}: {response.read()[:400]!r}")
    return response


def exit_code(response: http.client.HTTPResponse) -> int:
    """The wait body's StatusCode (-1 when there is none)."""
    body = json.loads(response.read())
    return int(body.get("StatusCode", -1))


def api_run_once(conn: UnixConnection, waiter: UnixConnection,
                 body: Mapping[str, Any]) -> dict[str, float]:
    """create → wait (headers) → start → wait body → delete; seconds per :data:`PHASES`."""
    t0 = time.perf_counter()
    cid = create(conn, body)
    t1 = time.perf_counter()
    response = open_wait(waiter, cid)
    t2 = time.perf_counter()
    call(conn, "POST", f"/containers/{cid}/start")
    t3 = time.perf_counter()
    code = exit_code(response)
    t4 = time.perf_counter()
    call(conn, "DELETE", f"/containers/{cid}")
    t5 = time.perf_counter()
    if code != 0:
        raise RuntimeError(f"container {cid[:12]} exited {code}")
    return dict(zip(PHASES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0, t5 - t4), strict=True))


def concurrently(sock: Path, items: list[str],
                 work: Callable[[UnixConnection, str], None]) -> float:
    """Wall seconds for ``work(conn, item)`` on one thread and pre-connected connection each.

    Interrupted before the start, the threads return without working; they are daemon threads
    so an interrupted run never waits for them at exit (the engine's cleanup removes what they
    made)."""
    conns = [UnixConnection(sock, timeout=300) for _ in items]
    go, abort = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def body(conn: UnixConnection, item: str) -> None:
        go.wait()
        if abort.is_set():
            return
        try:
            work(conn, item)
        except BaseException as exc:  # reported after the join
            errors.append(exc)

    threads = [threading.Thread(target=body, args=pair, daemon=True)
               for pair in zip(conns, items, strict=True)]
    try:
        for conn in conns:
            conn.connect()
        for thread in threads:
            thread.start()
        start = time.perf_counter()
        go.set()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - start
    finally:
        if not go.is_set():
            abort.set()
            go.set()
        for conn in conns:
            conn.close()
    if errors:
        raise RuntimeError(f"{len(errors)} of {len(items)} concurrent calls failed: {errors[0]}")
    return elapsed


def run_to_completion(conn: UnixConnection, body: Mapping[str, Any],
                      codes: list[int]) -> None:
    """create, open wait on a second connection (it blocks until the exit), start, read the
    exit code into ``codes`` (list.append is atomic), remove."""
    cid = create(conn, body)
    waiter = UnixConnection(Path(conn.unix_path), timeout=300)
    try:
        response = open_wait(waiter, cid)
        call(conn, "POST", f"/containers/{cid}/start")
        codes.append(exit_code(response))
    finally:
        waiter.close()
    call(conn, "DELETE", f"/containers/{cid}")
