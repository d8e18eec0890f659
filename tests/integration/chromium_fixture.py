"""Debian's ``chromium``, headless, driven over the Chrome DevTools Protocol, for tests of web
pages (tests/integration/test_dashboard.py).

The protocol goes over a pipe (``--remote-debugging-pipe``: Chromium reads commands from fd 3
and writes answers and events to fd 4, each a JSON message ending in a NUL byte), as Puppeteer's
``pipe: true`` does: no port to find, no websocket client to install.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

CHROMIUM = "chromium"
FLAGS = [
    "--headless=new", "--remote-debugging-pipe",
    "--no-sandbox",  # CI runs the tests as root, where Chromium refuses its own sandbox
    "--no-first-run", "--no-default-browser-check", "--disable-gpu", "--disable-extensions",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--mute-audio", "--lang=en-US",
]


class PageError(AssertionError):
    """A command Chromium refused, a script that threw, a wait that timed out."""


class Browser:
    """One Chromium process and one page (tab) in it, attached with a flat session."""

    def __init__(self, profile: Path, log: Path, flags: list[str] | None = None,
                 width: int = 1440, height: int = 1000, home: Path | None = None) -> None:
        read_end, self._to_chromium = os.pipe()
        self._from_chromium, write_end = os.pipe()
        # Numbered 10 and up, so that moving them onto 3 and 4 cannot overwrite one another;
        # bash moves them (dash takes one digit; no preexec_fn: unsafe with threads).
        child_in = fcntl.fcntl(read_end, fcntl.F_DUPFD_CLOEXEC, 10)
        child_out = fcntl.fcntl(write_end, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(read_end)
        os.close(write_end)
        moves = f"3<&{child_in} 4>&{child_out} {child_in}<&- {child_out}>&-"
        try:
            with log.open("ab") as out:
                self.process = subprocess.Popen(
                    ["bash", "-c", f'exec "$@" {moves}', "bash", CHROMIUM, *FLAGS, *(flags or []),
                     f"--user-data-dir={profile}", f"--window-size={width},{height}",
                     "about:blank"], stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                    pass_fds=(child_in, child_out), start_new_session=True,
                    env=_environment(home))
        finally:
            os.close(child_in)
            os.close(child_out)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []  # every event Chromium sent, in order
        try:
            self._open_page(width, height)
        except BaseException:
            self.close()
            raise

    def _open_page(self, width: int, height: int) -> None:
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target,
                                 flatten=True)["sessionId"]
        for domain in ("Page", "Runtime"):
            self.page(f"{domain}.enable")
        self.page("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=False)

    # --- the protocol ----------------------------------------------------------------------

    def send(self, method: str, session: str | None = None, timeout: float = 30,
             **params: Any) -> dict[str, Any]:
        """Send a command (to the browser, or to ``session``) and return its result."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        os.write(self._to_chromium, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            for answer in self._messages(deadline):
                if answer.get("id") != self._next_id:
                    self.events.append(answer)
                    continue
                if "error" in answer:
                    raise PageError(f"{method}: {answer['error']}")
                result: dict[str, Any] = answer.get("result", {})
                return result

    def _messages(self, deadline: float) -> Iterator[dict[str, Any]]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_chromium], [], [], left)[0]:
                raise PageError("Chromium did not answer in time")
            data = os.read(self._from_chromium, 1 << 20)
            if not data:
                raise PageError(f"Chromium exited ({self.process.poll()})")
            self._buffer += data
        *messages, self._buffer = self._buffer.split(b"\0")
        for message in messages:
            yield json.loads(message)

    def page(self, method: str, **params: Any) -> dict[str, Any]:
        """A command to the page's session."""
        return self.send(method, self.session, **params)

    # --- what a test does with the page ----------------------------------------------------

    def goto(self, url: str) -> None:
        """Open ``url`` and wait until it (or where it redirects) has loaded."""
        answer = self.page("Page.navigate", url=url)
        if answer.get("errorText"):
            raise PageError(f"{url}: {answer['errorText']}")
        self.wait(f"location.href.startsWith({json.dumps(url)}) && "
                  "document.readyState === 'complete'", what=f"{url} loaded")

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        answer = self.page("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in answer:
            details = answer["exceptionDetails"]
            raise PageError(f"{expression}: {details.get('exception', {}).get('description')}"
                            f" {details.get('text')}")
        return answer["result"].get("value")

    def wait(self, expression: str, timeout: float = 30, what: str = "") -> Any:
        """Poll ``expression`` until it is truthy; its value, or PageError with the page's
        text."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                text = self.evaluate("document.body ? document.body.innerText : ''")
                raise PageError(f"not within {timeout}s: {what or expression}\n--- the page "
                                f"---\n{str(text)[-3000:]}")
            time.sleep(0.1)

    def type(self, selector: str, text: str) -> None:
        """Focus an input, clear it, and type ``text`` into it (input events as a user's)."""
        self.evaluate(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); "
                      "e.focus(); e.select(); })()")
        self.page("Input.insertText", text=text)

    def click(self, selector: str) -> None:
        self.evaluate(f"document.querySelector({json.dumps(selector)}).click()")

    def text(self, selector: str) -> str:
        return str(self.evaluate(f"document.querySelector({json.dumps(selector)})"
                                 "?.textContent ?? ''"))

    def screenshot(self, path: Path, selector: str | None = None) -> bytes:
        """A PNG of the whole page, or of one element (with a margin), written to ``path``."""
        if selector is None:
            size = self.page("Page.getLayoutMetrics")["cssContentSize"]
            clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"]}
        else:
            clip = self.evaluate(
                f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
                ".getBoundingClientRect(); return {x: Math.max(0, r.x + scrollX - 8), "
                "y: Math.max(0, r.y + scrollY - 8), width: r.width + 16, "
                "height: r.height + 16}; })()")
        data = base64.b64decode(self.page("Page.captureScreenshot", format="png",
                                          captureBeyondViewport=True,
                                          clip={**clip, "scale": 1})["data"])
        path.write_bytes(data)
        return data

    def exceptions(self) -> list[str]:
        """What the page's scripts threw and nobody caught (rejected promises included)."""
        return [str(e["params"]["exceptionDetails"].get("exception", {}).get("description")
                    or e["params"]["exceptionDetails"].get("text"))
                for e in self.events if e.get("method") == "Runtime.exceptionThrown"]

    def close(self) -> None:
        with suppress(PageError, OSError):
            self.send("Browser.close", timeout=10)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)  # its own session: the helpers too
            self.process.wait()
        os.close(self._to_chromium)
        os.close(self._from_chromium)


def _environment(home: Path | None) -> dict[str, str]:
    """Chromium's environment: with ``home``, what it writes outside its profile (crash
    report settings, dconf's cache) goes there rather than into the user's home."""
    if home is None:
        return dict(os.environ)
    return {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_CACHE_HOME": str(home / ".cache")}


@contextmanager
def running_browser(base: Path, flags: list[str] | None = None) -> Iterator[Browser]:
    """A headless Chromium (with ``flags`` besides :data:`FLAGS`) with its profile and home
    under ``base`` (both removed afterwards; its log stays)."""
    profile, home = base / "chromium-profile", base / "home"
    profile.mkdir(parents=True)
    home.mkdir()
    try:
        browser = Browser(profile, base / "chromium.log", flags, home=home)
        try:
            yield browser
        finally:
            browser.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)


def available() -> bool:
    return shutil.which(CHROMIUM) is not None
