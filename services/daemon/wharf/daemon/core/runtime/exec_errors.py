"""How crun 1.8 and runc 1.1 report an exec whose command cannot start, in Docker's words.

The runtime prints one line and exits 255 (1 for an exec format error), on the process's
stderr or on its pty (crun colours it and prefixes a timestamp there; runc logs
``time=… level=error msg="exec failed: …"``, or ``ERRO[0000] exec failed: …`` on a terminal).
Docker (``translateContainerdStartErr``) makes that exit code 127 for a missing command and
126 otherwise, and reports ``OCI runtime exec failed: exec failed: unable to start container
process: exec: "nope": executable file not found in $PATH: unknown``.
"""

from __future__ import annotations

import re

_PREFIX = "OCI runtime exec failed: exec failed: unable to start container process: "
_ANSI = re.compile(rb"\x1b\[[0-9;]*m")
# crun's start failures (after colour codes and its "<timestamp>: " prefix on a terminal).
_NOT_FOUND = re.compile(r"executable file `(.*)` not found in \$PATH: .*")
_OPEN = re.compile(r"open executable: (.*)")
_CHDIR = re.compile(r"chdir `(.*)`: (.*)")
_EXEC = re.compile(r"exec(?: `(.*)`)?: (.*)")
# runc reports a start failure as a logrus line of its own: level=error msg="exec failed: …".
_RUNC = re.compile(r'time="[^"]*" level=error msg="((?:[^"\\]|\\.)*)"')
_RUNC_TTY = re.compile(r"ERRO\[\d+\] (exec failed: .*?)\s*")  # the same on a terminal
_RUNC_EXEC = re.compile(r"exec (/\S*): (.*)")  # runc's init, e.g. "exec format error"
# crun's and runc's words when the container has no running process to join.
NOT_RUNNING = re.compile(rb"the container `[^`]*` is not running|error opening file `[^`]*/status`"
                          rb"|cannot exec in a stopped container|exec failed: container does not")


def docker_start_error(line: str, command: str) -> tuple[int, str] | None:
    """(exit code, Docker's message) for a crun or runc start-failure line, None if it is not
    one. Docker (``translateContainerdStartErr``) gives 127 for a missing command, else 126."""
    if m := _RUNC.fullmatch(line) or _RUNC_TTY.fullmatch(line):
        message = re.sub(r"\\(.)", r"\1", m.group(1)) if m.re is _RUNC else m.group(1)
        if not message.startswith("exec failed: "):
            return None
        code = 127 if "executable file not found" in message else 126
        return code, f"OCI runtime exec failed: {message}: unknown"
    if m := _RUNC_EXEC.fullmatch(line):
        return 126, f'{_PREFIX}exec: "{command}": {m.group(2).lower()}: unknown'
    if m := _NOT_FOUND.fullmatch(line):
        return 127, f'{_PREFIX}exec: "{m.group(1)}": executable file not found in $PATH: unknown'
    if m := _OPEN.fullmatch(line):
        reason = m.group(1).lower()
        reason = "permission denied" if "not permitted" in reason else reason  # runc's words
        return 126, f'{_PREFIX}exec: "{command}": {reason}: unknown'
    if m := _CHDIR.fullmatch(line):
        return 126, (f'{_PREFIX}chdir to cwd ("{m.group(1)}") set in config.json failed: '
                     f"{m.group(2).lower()}: unknown")
    if m := _EXEC.fullmatch(line):
        return 126, f'{_PREFIX}exec: "{m.group(1) or command}": {m.group(2).lower()}: unknown'
    return None


def failure_line(chunk: bytes) -> str | None:
    """The text of ``chunk`` if it is exactly one line that may be crun's start failure."""
    text = _ANSI.sub(b"", chunk).rstrip(b"\r\n")
    if b"\n" in text or not text:
        return None
    line = text.decode(errors="replace")
    stamp, sep, rest = line.partition(": ")
    if sep and re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z", stamp):
        line = rest  # crun's terminal log format
    return line
