"""crun's and runc's exec start failures, as seen on this machine, in Docker's words."""

from __future__ import annotations

import pytest

from wharf.daemon.core.runtime.exec_errors import NOT_RUNNING, docker_start_error, failure_line

P = "OCI runtime exec failed: exec failed: unable to start container process: "


@pytest.mark.parametrize(("raw", "command", "expected"), [
    (b"executable file `nope` not found in $PATH: No such file or directory\n", "nope",
     (127, P + 'exec: "nope": executable file not found in $PATH: unknown')),
    (b"\x1b[1;31m2026-11-28T04:04:57.225701Z: executable file `nope` not found in $PATH: No such"
     b" file or directory\x1b[0m\r\n", "nope",
     (127, P + 'exec: "nope": executable file not found in $PATH: unknown')),
    (b"open executable: Permission denied\n", "/etc/passwd",
     (126, P + 'exec: "/etc/passwd": permission denied: unknown')),
    (b"open executable: Operation not permitted\n", "/etc",
     (126, P + 'exec: "/etc": permission denied: unknown')),
    (b"exec: Exec format error\n", "garbage",
     (126, P + 'exec: "garbage": exec format error: unknown')),
    (b"chdir `/x`: No such file or directory\n", "sh",
     (126, P + 'chdir to cwd ("/x") set in config.json failed: '
      "no such file or directory: unknown")),
    (b'time="2026-11-28T04:11:06Z" level=error msg="exec failed: unable to start container process:'
     b' exec: \\"nope\\": executable file not found in $PATH"\n', "nope",
     (127, P + 'exec: "nope": executable file not found in $PATH: unknown')),
    (b"\x1b[31mERRO\x1b[0m[0000] exec failed: unable to start container process: exec: \"/etc\": "
     b"permission denied \r\n", "/etc", (126, P + 'exec: "/etc": permission denied: unknown')),
    (b"exec /bin/garbage: exec format error\n", "garbage",
     (126, P + 'exec: "garbage": exec format error: unknown')),
])
def test_start_failures_map_like_docker(raw: bytes, command: str,
                                        expected: tuple[int, str]) -> None:
    line = failure_line(raw)
    assert line is not None and docker_start_error(line, command) == expected


@pytest.mark.parametrize("raw", [b"hello\n", b"two\nlines: x\n", b"", b"just: text\n",
                                 b'time="x" level=error msg="container not running"\n'])
def test_ordinary_output_is_not_a_failure(raw: bytes) -> None:
    line = failure_line(raw)
    assert line is None or docker_start_error(line, "x") is None


def test_not_running_words() -> None:
    assert NOT_RUNNING.search(b"the container `abc` is not running")
    assert NOT_RUNNING.search(b"error opening file `/run/crun/abc/status`: No such file or dir")
    assert NOT_RUNNING.search(b'level=error msg="exec failed: cannot exec in a stopped container"')
    assert not NOT_RUNNING.search(b"hello")
