"""A launcher for confined GNU tar: one small helper process, started once, forks each tar.

Extracting a layer or a build context runs GNU tar in a private mount namespace where every
mount is read-only except the target directory (``untar``'s module docstring says why). Doing
that through ``python -c <confine> tar ...`` cost an interpreter start per extraction (~35 ms of
the ~45 ms a build context of 200 small files took); the helper pays it once. It is a
single-threaded Python process (``python -I -S``, a handful of standard modules) that reads
requests from a socket pair, forks, and in the child confines itself and execs tar with the
request's stdin and stderr (passed as file descriptors); it reports each child's exit status by
request number. Forking there is safe: the helper has one thread, unlike the daemon.

The helper exits when the daemon's end of the socket closes (the daemon died or closed it);
when it dies, waiting callers get Internal and the next call starts a new one.
"""

from __future__ import annotations

import array
import concurrent.futures
import itertools
import json
import socket
import subprocess
import sys
import threading

from wharf.errors import Internal

CONFINE_FAILED = 125  # the child could not confine itself (no CAP_SYS_ADMIN...)

_HELPER = r"""
import array, ctypes, json, os, select, signal, socket, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def ok(rc, what):
    if rc != 0:
        os.write(2, ("wharf-untar: %s: %s\n" % (what, os.strerror(ctypes.get_errno()))).encode())
        os._exit(125)
def setattr(path, flags, attr_set, attr_clr):
    attr = ctypes.create_string_buffer(struct.pack("QQQQ", attr_set, attr_clr, 0, 0), 32)
    return libc.syscall(442, -100, path, flags, attr, 32)
def child(request, fds, own):
    for fd in own:
        os.close(fd)
    os.dup2(fds[0], 0)
    os.dup2(fds[1], 2)
    target = request["target"].encode()
    ok(libc.unshare(0x20000), "unshare(CLONE_NEWNS)")
    ok(libc.mount(b"none", b"/", None, 0x4000 | 0x40000, None), "make mounts private")
    ok(libc.mount(target, target, None, 0x1000, None), "bind the target directory")
    ok(setattr(b"/", 0x8000, 1, 0), "make every mount read-only")
    ok(setattr(target, 0, 0, 1), "make the target directory writable")
    os.execv(request["argv"][0], request["argv"])
sock = socket.socket(fileno=int(sys.argv[1]))
wake_r, wake_w = os.pipe()
os.set_blocking(wake_w, False)
signal.set_wakeup_fd(wake_w)
signal.signal(signal.SIGCHLD, lambda *_: None)
children = {}
while True:
    try:
        ready, _, _ = select.select([sock, wake_r], [], [])
    except InterruptedError:
        continue
    if sock in ready:
        msg, ancdata, _, _ = sock.recvmsg(65536, socket.CMSG_SPACE(8))
        if not msg:
            os._exit(0)
        fds = array.array("i")
        for level, kind, data in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
        request = json.loads(msg)
        pid = os.fork()
        if pid == 0:
            try:
                child(request, list(fds), [sock.fileno(), wake_r, wake_w])
            finally:
                os._exit(126)
        for fd in fds:
            os.close(fd)
        children[pid] = request["id"]
    if wake_r in ready:
        os.read(wake_r, 4096)
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        reply = {"id": children.pop(pid), "status": os.waitstatus_to_exitcode(status)}
        sock.send(json.dumps(reply).encode())
"""


class _Helper:
    """One helper process, its socket and the requests it has not answered yet."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _HELPER, str(theirs.fileno())],
                pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL)
        finally:
            theirs.close()
        self.sock = ours
        self.waiting: dict[int, concurrent.futures.Future[int]] = {}


class ConfinedLauncher:
    """Runs argv confined to a target directory through the helper (started on first use)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._helper: _Helper | None = None
        self._numbers = itertools.count(1)

    def run(self, target: str, argv: list[str], stdin: int, stderr: int) -> int:
        """Run ``argv`` (an absolute path first) with ``stdin``/``stderr`` (file descriptors,
        still the caller's to close), writes allowed below ``target`` only; its exit code
        (CONFINE_FAILED when the confinement could not be set up)."""
        return self.submit(target, argv, stdin, stderr).result()

    def submit(self, target: str, argv: list[str], stdin: int, stderr: int
               ) -> concurrent.futures.Future[int]:
        """:meth:`run` without waiting: the descriptors are the helper's own copies once this
        returns (the caller may close its own), the future gives the exit code."""
        future: concurrent.futures.Future[int] = concurrent.futures.Future()
        fds = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [stdin, stderr]))]
        with self._lock:
            number = next(self._numbers)
            request = json.dumps({"id": number, "target": target, "argv": argv}).encode()
            for attempt in (1, 2):  # a helper that died since the last call: start another
                helper = self._running()
                helper.waiting[number] = future
                try:
                    helper.sock.sendmsg([request], fds)
                    break
                except OSError as exc:
                    helper.waiting.pop(number, None)
                    self._helper = None
                    if attempt == 2:
                        raise Internal(f"the confined-tar helper is gone: {exc}") from exc
        return future

    def _running(self) -> _Helper:
        if self._helper is None:
            self._helper = _Helper()
            threading.Thread(target=self._read, args=(self._helper,), daemon=True,
                             name="confined-tar").start()
        return self._helper

    def _read(self, helper: _Helper) -> None:
        """Hand each exit status to its caller; when the helper goes, fail its waiting ones."""
        while True:
            try:
                message = helper.sock.recv(4096)
            except OSError:
                message = b""
            if not message:
                break
            reply = json.loads(message)
            with self._lock:
                future = helper.waiting.pop(int(reply["id"]), None)
            if future is not None:
                future.set_result(int(reply["status"]))
        with self._lock:
            if self._helper is helper:
                self._helper = None
            waiting, helper.waiting = helper.waiting, {}
        helper.sock.close()
        helper.process.wait()
        for future in waiting.values():
            future.set_exception(Internal("the confined-tar helper died during an extraction"))

    @property
    def pid(self) -> int | None:
        """The helper's pid while it runs."""
        helper = self._helper
        if helper is None or helper.process.poll() is not None:
            return None
        return helper.process.pid

    def close(self) -> None:
        """Stop the helper (it exits when its socket closes)."""
        with self._lock:
            helper, self._helper = self._helper, None
        if helper is not None:
            helper.sock.shutdown(socket.SHUT_RDWR)


LAUNCHER = ConfinedLauncher()  # one helper per daemon process
