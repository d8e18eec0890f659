"""``exec -it`` in a real terminal: the wharf CLI and the docker CLI, each in a tmux pane of
120x40 on a private tmux server, run a shell in a container on a real wharfd; ``stty size`` in
it prints the pane's size, and again after the pane is resized to 100x30.

Every container, and the tmux server, is removed at the end.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon_fixture import Daemon, busybox_daemon
from tests.integration.conftest import SeededRegistry

pytestmark = [pytest.mark.integration]
WHARF = str(Path(sys.executable).parent / "wharf")
DOCKER = shutil.which("docker")
TIMEOUT = 20.0


@pytest.fixture(scope="module")
def daemon(seeded_registry: SeededRegistry, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Daemon]:
    base = tmp_path_factory.mktemp("wharfd-exec-tty")
    with busybox_daemon(base, seeded_registry.registry.url) as running:
        yield running


@pytest.fixture
def container(daemon: Daemon) -> Iterator[str]:
    made = subprocess.run([WHARF, "-H", daemon.host, "run", "-d", "busybox", "sleep", "300"],
                          capture_output=True, text=True, timeout=60, check=True, env=_env(daemon))
    cid = made.stdout.strip()
    try:
        yield cid
    finally:
        daemon.request("DELETE", f"/containers/{cid}?force=1")


class Pane:
    """One tmux session on a private server (its own socket), running ``argv`` in a
    ``cols``x``rows`` window."""

    def __init__(self, socket: Path, argv: list[str], env: dict[str, str], cols: int, rows: int
                 ) -> None:
        self.socket = socket  # tmux leaves its socket file behind: we remove it in kill()
        self.env = env
        # a shell prints the program's exit status and keeps the pane: tmux (3.3a) here often
        # misses its own child's SIGCHLD, so its pane_dead_status cannot be relied on
        self.tmux("new-session", "-d", "-s", "t", "-x", str(cols), "-y", str(rows), "--",
                  "sh", "-c", '"$@"; echo "exited $?"; exec sleep 600', "sh", *argv)

    def tmux(self, *args: str) -> str:
        done = subprocess.run(["tmux", "-S", str(self.socket), *args], capture_output=True,
                              text=True, timeout=TIMEOUT, check=True, env=self.env)
        return done.stdout

    def screen(self) -> list[str]:
        return [line.rstrip() for line in self.tmux("capture-pane", "-p", "-t", "t").splitlines()]

    def type(self, line: str) -> None:
        self.tmux("send-keys", "-t", "t", "-l", line)
        self.tmux("send-keys", "-t", "t", "Enter")

    def wait_for(self, text: str) -> list[str]:
        """The screen once ``text`` is a whole line on it (fails the test after a while)."""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.1)
        pytest.fail(f"{text!r} never showed up; the pane:\n" + "\n".join(self.screen()))

    def kill(self) -> None:
        subprocess.run(["tmux", "-S", str(self.socket), "kill-server"], capture_output=True,
                       timeout=TIMEOUT, env=self.env, check=False)
        self.socket.unlink(missing_ok=True)


def _env(daemon: Daemon) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WHARF_", "TMUX"))}
    return {**env, "WHARF_CONFIG": str(daemon.run_dir / "wharf-config"),
            "DOCKER_CONFIG": str(daemon.run_dir / "docker-config")}


@pytest.mark.parametrize("client", ["wharf", "docker"])
def test_exec_it_shell_sees_the_terminal_size_and_its_resize(daemon: Daemon, container: str,
                                                             client: str, tmp_path: Path
                                                             ) -> None:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    binary = WHARF if client == "wharf" else DOCKER
    if binary is None:
        pytest.skip("the docker CLI is not installed")
    argv = [binary, "-H", daemon.host, "exec", "-it", container, "sh"]
    pane = Pane(tmp_path / "tmux.sock", argv, _env(daemon), 120, 40)
    try:
        pane.wait_for("/ #")
        pane.type("stty size")
        pane.wait_for("40 120")
        pane.tmux("resize-window", "-t", "t", "-x", "100", "-y", "30")
        pane.type("stty size")
        screen = pane.wait_for("30 100")
        pane.type("exit 7")
        pane.wait_for("exited 7")
    finally:
        pane.kill()
    assert "stty: standard input" not in screen

