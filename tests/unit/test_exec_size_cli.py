"""``wharf exec -t`` sends the terminal's size: as ``ConsoleSize`` in the create, as a resize
once the hijacked start answered, and again on every SIGWINCH (as ``run -t`` does), against the
fake daemon of test_cli_containers."""

from __future__ import annotations

import os
import signal
import socket
import threading
from typing import Any

import httpx
import pytest

from tests.unit.test_cli_containers import CID, EID, Daemon, _body, run
from wharf.cli.hijack import HijackResult, RawStream
from wharf.cli.transport import Params, Reply


class LiveExecDaemon(Daemon):
    """The exec's hijacked stream stays open until :meth:`end`; resizes are recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[tuple[str, str]] = []
        self.resized = threading.Semaphore(0)
        self.far: socket.socket | None = None
        self.opened = threading.Event()
        self.route("GET", "/containers/cap-x/json", {"Id": CID})
        self.route("POST", "/containers/cap-x/exec",
                   lambda r: httpx.Response(201, json={"Id": EID}))
        self.route("POST", f"/exec/{EID}/resize", self._resize)
        self.route("GET", f"/exec/{EID}/json", {"ID": EID, "Running": False, "ExitCode": 0})

    def _resize(self, request: httpx.Request) -> httpx.Response:
        self.sizes.append((request.url.params["h"], request.url.params["w"]))
        self.resized.release()
        return httpx.Response(200)

    def open(self, path: str, params: Params, body: object = None) -> HijackResult:
        self.log.append(f"HIJACK {path}")
        self.hijack_params.append({"params": dict(params), "body": body})
        ours, self.far = socket.socketpair()
        self.opened.set()
        return HijackResult(Reply(101, {}, b""), RawStream(ours))

    def end(self) -> None:
        """Send the last output and close the stream (once the CLI has opened it)."""
        if self.opened.wait(timeout=10) and self.far is not None:
            self.far.sendall(b"bye\r\n")
            self.far.close()


def _resize_the_terminal_then_end(daemon: LiveExecDaemon, failures: list[str]) -> None:
    try:
        if not daemon.resized.acquire(timeout=10):
            failures.append("no resize at the start")
            return
        os.environ["COLUMNS"], os.environ["LINES"] = "100", "30"
        os.kill(os.getpid(), signal.SIGWINCH)
        if not daemon.resized.acquire(timeout=10):
            failures.append("no resize after SIGWINCH")
    finally:
        daemon.end()


def test_exec_t_sends_the_size_at_create_at_start_and_on_sigwinch(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.setenv("LINES", "40")
    daemon = LiveExecDaemon()
    failures: list[str] = []
    helper = threading.Thread(target=_resize_the_terminal_then_end, args=(daemon, failures))
    helper.start()
    result = run(daemon, "exec", "-t", "cap-x", "sh", stdout_tty=True)
    helper.join(timeout=20)
    assert not failures and result.exit_code == 0, (failures, result.output)
    assert result.stdout.strip() == "bye"
    create: Any = _body(daemon.requests[1])
    assert create["Tty"] is True and create["ConsoleSize"] == [40, 120]
    assert daemon.sizes == [("40", "120"), ("30", "100")]


def test_exec_without_a_terminal_sends_no_size() -> None:
    daemon = LiveExecDaemon()
    helper = threading.Thread(target=daemon.end)
    helper.start()
    result = run(daemon, "exec", "-t", "cap-x", "sh", stdout_tty=False)
    helper.join()
    assert result.exit_code == 0, result.output
    assert "ConsoleSize" not in _body(daemon.requests[1]) and daemon.sizes == []
