"""The container commands against a fake daemon (httpx.MockTransport + a socketpair hijacker).

The fake logs every call, hijacks included, in order, so the tests can check docker's call
sequences (Engine API reference §3) as well as the output and exit codes.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from wharf.cli.hijack import HijackResult, RawStream
from wharf.cli.main import build_cli
from wharf.cli.session import Hooks
from wharf.cli.transport import Params, Reply
from wharf.dockerapi import frame

NOW = int(time.time())
CID = "4eab07" + "a" * 58
EID = "307a21" + "b" * 58
Handler = Callable[[httpx.Request], httpx.Response]


@dataclass
class Daemon:
    """Routes by (method, path without /v1.41); ``log`` has "METHOD path" of every call."""

    routes: dict[tuple[str, str], Handler] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)
    hijack_output: dict[str, bytes] = field(default_factory=dict)
    hijack_params: list[dict[str, Any]] = field(default_factory=list)
    peers: list[socket.socket] = field(default_factory=list)

    def route(self, method: str, path: str, reply: Handler | int | object) -> None:
        if callable(reply):
            self.routes[(method, path)] = reply
        elif isinstance(reply, int):
            self.routes[(method, path)] = lambda r, s=reply: httpx.Response(s)
        else:
            self.routes[(method, path)] = lambda r, b=reply: httpx.Response(200, json=b)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/v1.41")
        self.log.append(f"{request.method} {path}")
        self.requests.append(request)
        handler = self.routes.get((request.method, path))
        if handler is None:
            return httpx.Response(404, json={"message": f"No such container: {path}"})
        return handler(request)

    def open(self, path: str, params: Params, body: object = None) -> HijackResult:
        """The Hijacker seam: a socketpair whose far end already holds the output."""
        self.log.append(f"HIJACK {path}")
        self.hijack_params.append({"params": dict(params), "body": body})
        if path not in self.hijack_output:
            body_bytes = json.dumps({"message": f"No such container: {path}"}).encode()
            return HijackResult(Reply(404, {"content-type": "application/json"}, body_bytes),
                                None)
        ours, theirs = socket.socketpair()
        theirs.sendall(self.hijack_output[path])
        theirs.shutdown(socket.SHUT_WR)
        self.peers.append(theirs)
        return HijackResult(Reply(101, {}, b""), RawStream(ours))

    def stdin_received(self) -> bytes:
        """What the CLI wrote into the last hijack, up to its half-close."""
        peer, data = self.peers[-1], b""
        peer.settimeout(2)
        while chunk := peer.recv(4096):
            data += chunk
        return data


def run(daemon: Daemon, *args: str, input: bytes | str | None = None,
        stdin_tty: bool = False, stdout_tty: bool = False) -> Result:
    hooks = Hooks(wire=httpx.MockTransport(daemon), hijacker=daemon, stdin_tty=stdin_tty,
                  stdout_tty=stdout_tty)
    return CliRunner().invoke(build_cli(), list(args), obj=hooks, input=input)


@pytest.fixture
def daemon() -> Daemon:
    return Daemon()


def _body(request: httpx.Request) -> Any:
    return json.loads(request.read())


def _run_routes(daemon: Daemon, status: int = 0, tty: bool = False) -> None:
    daemon.route("POST", "/containers/create", lambda r: httpx.Response(
        201, json={"Id": CID, "Warnings": []}))
    daemon.route("POST", f"/containers/{CID}/wait", lambda r: httpx.Response(
        200, json={"Error": None, "StatusCode": status}))
    daemon.route("POST", f"/containers/{CID}/start", 204)
    daemon.route("POST", f"/containers/{CID}/resize", 200)
    daemon.hijack_output[f"/containers/{CID}/attach"] = (
        b"raw tty bytes\r\n" if tty else frame(1, b"hi\n") + frame(2, b"err1\n")
        + frame(1, b"bye\n"))


# -- run ----------------------------------------------------------------------------------------
def test_run_sequence_demux_and_exit_code(daemon: Daemon) -> None:
    _run_routes(daemon, status=3)
    result = run(daemon, "run", "--name", "cap-x", "busybox:local", "sh", "-c", "exit 3")
    assert result.exit_code == 3, result.output
    assert result.stdout == "hi\nbye\n"
    assert result.stderr == "err1\n"
    assert daemon.log == ["POST /containers/create", f"HIJACK /containers/{CID}/attach",
                          f"POST /containers/{CID}/wait", f"POST /containers/{CID}/start"]
    create, wait = daemon.requests[0], daemon.requests[1]
    assert create.url.params["name"] == "cap-x"
    assert wait.url.params["condition"] == "next-exit"
    assert daemon.hijack_params[0]["params"] == {"stream": "1", "stdout": "1", "stderr": "1"}
    assert daemon.stdin_received() == b""  # no -i: half-closed at once


def test_run_create_body_has_dockers_shape(daemon: Daemon, tmp_path: Any) -> None:
    _run_routes(daemon)
    env_file = tmp_path / "env"
    env_file.write_text("# comment\nFROM_FILE=1\n\n")
    result = run(daemon, "run", "--rm", "-e", "A=1", "--env-file", str(env_file), "-w", "/data",
                 "-u", "0:0", "-h", "hh", "-l", "k=v", "--restart", "on-failure:3",
                 "-m", "64m", "--cpus", "1.5", "--pids-limit", "50", "--read-only",
                 "--tmpfs", "/tmp", "--cap-add", "NET_ADMIN", "--cap-drop", "ALL",
                 "--security-opt", "no-new-privileges", "--runtime", "crun",
                 "--network", "none", "-p", "18081:80", "-p", "127.0.0.1:18082:81/udp",
                 "-v", "/srv:/host:ro", "-v", "/anon", "--entrypoint", "sh",
                 "busybox:local", "-c", "true")
    assert result.exit_code == 0, result.output
    body = _body(daemon.requests[0])
    assert list(body)[:6] == ["Hostname", "Domainname", "User", "AttachStdin", "AttachStdout",
                              "AttachStderr"]
    assert body["Env"] == ["FROM_FILE=1", "A=1"]
    assert body["Cmd"] == ["-c", "true"] and body["Entrypoint"] == ["sh"]
    assert body["ExposedPorts"] == {"80/tcp": {}, "81/udp": {}}
    assert body["Volumes"] == {"/anon": {}} and body["Labels"] == {"k": "v"}
    assert (body["Hostname"], body["User"], body["WorkingDir"]) == ("hh", "0:0", "/data")
    host = body["HostConfig"]
    assert host["PortBindings"] == {"80/tcp": [{"HostIp": "", "HostPort": "18081"}],
                                    "81/udp": [{"HostIp": "127.0.0.1", "HostPort": "18082"}]}
    assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert (host["Memory"], host["NanoCpus"], host["PidsLimit"]) == (67108864, 1500000000, 50)
    assert host["AutoRemove"] is True and host["ReadonlyRootfs"] is True
    assert host["Binds"] == ["/srv:/host:ro"] and host["Tmpfs"] == {"/tmp": ""}
    assert (host["CapAdd"], host["CapDrop"], host["Runtime"]) == (["NET_ADMIN"], ["ALL"], "crun")
    assert host["NetworkMode"] == "none"
    assert body["NetworkingConfig"] == {"EndpointsConfig": {}}
    assert daemon.requests[1].url.params["condition"] == "removed"


def test_run_pulls_on_404_then_creates_again(daemon: Daemon) -> None:
    _run_routes(daemon)
    created = []

    def create(request: httpx.Request) -> httpx.Response:
        created.append(1)
        if len(created) == 1:
            return httpx.Response(404, json={"message": "No such image: hello-world:latest"})
        return httpx.Response(201, json={"Id": CID, "Warnings": []})

    daemon.route("POST", "/containers/create", create)
    daemon.route("POST", "/images/create", lambda r: httpx.Response(
        200, headers={"Content-Type": "application/json"},
        content=b'{"status":"Pulling from library/hello-world","id":"latest"}\n'
                b'{"status":"Status: Downloaded newer image for hello-world:latest"}\n'))
    result = run(daemon, "run", "hello-world")
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        "Unable to find image 'hello-world:latest' locally",
        "latest: Pulling from library/hello-world",
        "Status: Downloaded newer image for hello-world:latest", "err1"]
    assert daemon.log[:4] == ["POST /containers/create", "POST /images/create",
                              "POST /containers/create", f"HIJACK /containers/{CID}/attach"]
    params = daemon.requests[1].url.params
    assert (params["fromImage"], params["tag"]) == ("hello-world", "latest")


def test_run_pull_never_reports_the_404(daemon: Daemon) -> None:
    daemon.route("POST", "/containers/create", lambda r: httpx.Response(
        404, json={"message": "No such image: nope:latest"}))
    result = run(daemon, "run", "--pull", "never", "nope")
    assert result.exit_code == 125
    assert result.stderr == ("wharf: Error response from daemon: No such image: nope:latest.\n"
                             "See 'wharf run --help'.\n")


def test_run_detached_prints_the_id_without_attaching(daemon: Daemon) -> None:
    _run_routes(daemon)
    result = run(daemon, "run", "-d", "busybox", "sleep", "100")
    assert result.exit_code == 0, result.output
    assert result.stdout == CID + "\n"
    assert daemon.log == ["POST /containers/create", f"POST /containers/{CID}/wait",
                          f"POST /containers/{CID}/start"]
    assert _body(daemon.requests[0])["AttachStdout"] is False


@pytest.mark.parametrize(("message", "code"), [
    ('failed to create shim task: exec: "nope": executable file not found in $PATH', 127),
    ("exec /etc/passwd: permission denied", 126),
    ("cgroup setup failed", 125),
])
def test_run_start_failure_exit_codes(daemon: Daemon, message: str, code: int) -> None:
    _run_routes(daemon)
    daemon.route("POST", f"/containers/{CID}/start",
                 lambda r: httpx.Response(400, json={"message": message}))
    result = run(daemon, "run", "busybox", "nope")
    assert result.exit_code == code
    assert result.stderr.startswith(f"wharf: Error response from daemon: {message}.\n")


def test_run_create_conflict_is_125(daemon: Daemon) -> None:
    daemon.route("POST", "/containers/create", lambda r: httpx.Response(
        409, json={"message": 'Conflict. The container name "/x" is already in use'}))
    result = run(daemon, "run", "--name", "x", "busybox")
    assert result.exit_code == 125
    assert "is already in use." in result.stderr and "See 'wharf run --help'." in result.stderr


def test_run_bad_memory_is_a_flag_error(daemon: Daemon) -> None:
    result = run(daemon, "run", "-m", "x", "busybox")
    assert result.exit_code == 125
    assert result.stderr.splitlines() == [
        "invalid argument \"x\" for \"-m, --memory\" flag: invalid size: 'x'",
        "See 'wharf run --help'."]
    assert daemon.log == []
    assert run(daemon, "run", "--bogus", "busybox").exit_code == 125


def test_run_interactive_sends_stdin_and_half_closes(daemon: Daemon) -> None:
    _run_routes(daemon)
    result = run(daemon, "run", "-i", "busybox", "cat", input=b"piped-in\n")
    assert result.exit_code == 0, result.output
    assert daemon.hijack_params[0]["params"]["stdin"] == "1"
    assert daemon.stdin_received() == b"piped-in\n"
    body = _body(daemon.requests[0])
    assert (body["AttachStdin"], body["OpenStdin"], body["StdinOnce"]) == (True, True, True)


def test_run_tty_passes_raw_bytes_and_resizes(daemon: Daemon) -> None:
    _run_routes(daemon, tty=True)
    result = run(daemon, "run", "-it", "busybox", "sh", input=b"", stdin_tty=True,
                 stdout_tty=True)
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes == b"raw tty bytes\r\n"
    assert daemon.log[-1] == f"POST /containers/{CID}/resize"
    params = daemon.requests[-1].url.params
    assert int(params["h"]) > 0 and int(params["w"]) > 0
    no_tty = run(daemon, "run", "-it", "busybox", "sh", input=b"")
    assert no_tty.exit_code == 1 and "the input device is not a TTY" in no_tty.stderr


def test_create_prints_id_and_warnings(daemon: Daemon) -> None:
    daemon.route("POST", "/containers/create", lambda r: httpx.Response(
        201, json={"Id": CID, "Warnings": ["careful"]}))
    result = run(daemon, "container", "create", "-t", "busybox")
    assert result.exit_code == 0
    assert (result.stdout, result.stderr) == (CID + "\n", "WARNING: careful\n")
    assert _body(daemon.requests[0])["Tty"] is True


# -- ps -----------------------------------------------------------------------------------------
CONTAINERS = [
    {"Id": "74e3bd3c" + "1" * 56, "Names": ["/cap-y"], "Image": "busybox:local",
     "Command": "sh -c 'echo line1; echo line2'", "Created": NOW - 180,
     "Ports": [{"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 18081, "Type": "tcp"},  # noqa: S104
               {"IP": "::", "PrivatePort": 80, "PublicPort": 18081, "Type": "tcp"},
               {"PrivatePort": 81, "Type": "udp"}],
     "State": "running", "Status": "Up 3 minutes"},
    {"Id": "abc123"},
]


def test_ps_table_like_docker(daemon: Daemon) -> None:
    fresh = [dict(CONTAINERS[0], Created=int(time.time()) - 190), CONTAINERS[1]]  # not import time
    daemon.route("GET", "/containers/json", fresh)
    result = run(daemon, "ps")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == ("CONTAINER ID   IMAGE           COMMAND                  CREATED         "
                        "STATUS         PORTS" + " " * 47 + "NAMES")
    assert lines[1].startswith("74e3bd3c1111   busybox:local   \"sh -c 'echo line1; …\"   "
                               "3 minutes ago   Up 3 minutes   ")
    assert "0.0.0.0:18081->80/tcp, [::]:18081->80/tcp, 81/udp   cap-y" in lines[1]
    assert lines[2].startswith('abc123         <no image>      ""   ')
    assert daemon.requests[0].url.params == httpx.QueryParams()


def test_ps_flags_reach_the_daemon(daemon: Daemon) -> None:
    daemon.route("GET", "/containers/json", CONTAINERS[:1])
    result = run(daemon, "container", "ls", "-a", "-q", "-s", "-n", "3", "--no-trunc",
                 "-f", "status=running", "--filter", "label=k=v")
    assert result.output == CONTAINERS[0]["Id"] + "\n"
    params = daemon.requests[0].url.params
    assert (params["all"], params["limit"], params["size"]) == ("1", "3", "1")
    assert json.loads(params["filters"]) == {"status": {"running": True},
                                             "label": {"k=v": True}}
    result = run(daemon, "ps", "--format", "{{.Names}} {{.Command}}", "--no-trunc")
    assert result.output == "cap-y \"sh -c 'echo line1; echo line2'\"\n"


# -- lifecycle ----------------------------------------------------------------------------------
def test_stop_prints_each_name_and_collects_errors(daemon: Daemon) -> None:
    daemon.route("POST", "/containers/a/stop", 204)
    daemon.route("POST", "/containers/c/stop", 304)
    result = run(daemon, "stop", "-t", "1", "a", "b", "c")
    assert result.exit_code == 1
    assert result.stdout == "a\nc\n"
    assert result.stderr == "Error response from daemon: No such container: /containers/b/stop\n"
    assert daemon.requests[0].url.params["t"] == "1"


def test_start_kill_restart_pause_wait_rename(daemon: Daemon) -> None:
    for action in ("start", "kill", "restart", "pause", "unpause"):
        daemon.route("POST", f"/containers/a/{action}", 204)
    daemon.route("POST", "/containers/a/wait", {"Error": None, "StatusCode": 137})
    assert run(daemon, "start", "a").stdout == "a\n"
    bad = run(daemon, "start", "a", "zz")
    assert bad.exit_code == 1 and bad.stdout == "a\n"
    assert bad.stderr.splitlines()[-1] == "Error: failed to start containers: zz"
    assert run(daemon, "kill", "-s", "USR1", "a").stdout == "a\n"
    assert daemon.requests[-1].url.params["signal"] == "USR1"
    for action in ("restart", "pause", "unpause"):
        assert run(daemon, action, "a").output == "a\n"
    assert run(daemon, "wait", "a").output == "137\n"
    renamed = run(daemon, "rename", "zz", "new")
    assert renamed.exit_code == 1
    assert renamed.stderr.splitlines()[-1] == "Error: failed to rename container named zz"


def test_rm_force_volumes_and_missing(daemon: Daemon) -> None:
    daemon.route("DELETE", "/containers/a", 204)
    result = run(daemon, "rm", "-f", "-v", "a", "gone")
    assert result.exit_code == 0
    assert result.stdout == "a\n" and result.stderr == "Error: No such container: gone\n"
    assert dict(daemon.requests[0].url.params) == {"v": "1", "force": "1"}
    result = run(daemon, "rm", "gone")
    assert result.exit_code == 1 and result.stderr == "Error: No such container: gone\n"


def test_container_prune_prompts_and_reports(daemon: Daemon) -> None:
    daemon.route("POST", "/containers/prune", {"ContainersDeleted": [CID],
                                               "SpaceReclaimed": 2048})
    assert "Are you sure" in run(daemon, "container", "prune", input="n\n").output
    assert daemon.log == []
    result = run(daemon, "container", "prune", "-f")
    assert result.output == f"Deleted Containers:\n{CID}\n\nTotal reclaimed space: 2.048kB\n"


# -- logs, exec, attach -------------------------------------------------------------------------
def test_logs_inspects_then_demuxes(daemon: Daemon) -> None:
    daemon.route("GET", "/containers/cap-x/json", {"Id": CID, "Config": {"Tty": False}})
    daemon.route("GET", f"/containers/{CID}/logs", lambda r: httpx.Response(
        200, content=frame(1, b"tick1\n") + frame(2, b"oops\n") + frame(1, b"tick2\n")))
    result = run(daemon, "logs", "--tail", "2", "-t", "--since", "10m", "-f", "cap-x")
    assert result.exit_code == 0, result.output
    assert (result.stdout, result.stderr) == ("tick1\ntick2\n", "oops\n")
    assert daemon.log == ["GET /containers/cap-x/json", f"GET /containers/{CID}/logs"]
    params = daemon.requests[1].url.params
    assert (params["tail"], params["timestamps"], params["follow"]) == ("2", "1", "1")
    assert abs(float(params["since"]) - (time.time() - 600)) < 5


def test_logs_of_a_tty_container_are_raw(daemon: Daemon) -> None:
    daemon.route("GET", "/containers/t/json", {"Id": CID, "Config": {"Tty": True}})
    daemon.route("GET", f"/containers/{CID}/logs", lambda r: httpx.Response(
        200, content=b"\x01raw\r\n"))
    assert run(daemon, "logs", "t").stdout_bytes == b"\x01raw\r\n"


def test_exec_sequence_and_exit_code(daemon: Daemon) -> None:
    daemon.route("GET", "/containers/cap-x/json", {"Id": CID})
    daemon.route("POST", "/containers/cap-x/exec", lambda r: httpx.Response(201, json={"Id": EID}))
    daemon.route("GET", f"/exec/{EID}/json", {"ID": EID, "Running": False, "ExitCode": 5})
    daemon.hijack_output[f"/exec/{EID}/start"] = frame(1, b"bar\n") + frame(1, b"/etc\n")
    result = run(daemon, "exec", "-e", "FOO=bar", "-w", "/etc", "cap-x", "sh", "-c", "exit 5")
    assert result.exit_code == 5
    assert result.stdout == "bar\n/etc\n"
    assert daemon.log == ["GET /containers/cap-x/json", "POST /containers/cap-x/exec",
                          f"HIJACK /exec/{EID}/start", f"GET /exec/{EID}/json"]
    body = _body(daemon.requests[1])
    assert body["Cmd"] == ["sh", "-c", "exit 5"] and body["Env"] == ["FOO=bar"]
    assert (body["WorkingDir"], body["AttachStdin"], body["Tty"]) == ("/etc", False, False)
    assert daemon.hijack_params[0]["body"] == {"Detach": False, "Tty": False}


def test_exec_on_a_stopped_container_fails_like_docker(daemon: Daemon) -> None:
    daemon.route("GET", "/containers/x/json", {"Id": CID})
    daemon.route("POST", "/containers/x/exec", lambda r: httpx.Response(
        409, json={"message": f"Container {CID} is not running"}))
    result = run(daemon, "exec", "x", "ls")
    assert result.exit_code == 1
    assert result.stderr == f"Error response from daemon: Container {CID} is not running\n"


def test_attach_refuses_stopped_and_streams_running(daemon: Daemon) -> None:
    daemon.route("GET", "/containers/s/json", {"Id": CID, "State": {"Running": False}})
    stopped = run(daemon, "attach", "s")
    assert stopped.exit_code == 1
    assert "You cannot attach to a stopped container, start it first" in stopped.stderr
    _run_routes(daemon, status=2)
    daemon.route("GET", "/containers/r/json", {"Id": CID, "State": {"Running": True},
                                               "Config": {"Tty": False}})
    result = run(daemon, "attach", "r")
    assert result.exit_code == 2 and result.stdout == "hi\nbye\n"


# -- inspect, top, stats, events ----------------------------------------------------------------
def test_inspect_tries_container_then_image(daemon: Daemon) -> None:
    doc = {"Id": CID, "State": {"Status": "exited", "ExitCode": 3}}
    daemon.route("GET", "/containers/c/json", doc)
    daemon.route("GET", "/images/busybox/json", {"Id": "sha256:" + "1" * 64})
    result = run(daemon, "inspect", "c", "busybox")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == [doc, {"Id": "sha256:" + "1" * 64}]
    assert '\n    {\n        "Id"' in "\n" + result.output
    assert run(daemon, "inspect", "-f", "{{.State.ExitCode}}", "c").output == "3\n"
    missing = run(daemon, "inspect", "nope")
    assert missing.exit_code == 1
    assert (missing.stdout, missing.stderr) == ("[]\n", "Error: No such object: nope\n")
    typed = run(daemon, "container", "inspect", "busybox")
    assert typed.stderr == "Error: No such container: busybox\n"


def test_top_prints_titles_and_processes(daemon: Daemon) -> None:
    daemon.route("GET", "/containers/c/top", {"Titles": ["PID", "COMMAND"],
                                              "Processes": [["9837", "sh -c echo"]]})
    result = run(daemon, "top", "c", "-o", "pid,args")
    assert result.output.splitlines() == ["PID" + " " * 17 + "COMMAND",
                                          "9837" + " " * 16 + "sh -c echo"]
    assert daemon.requests[0].url.params["ps_args"] == "-o pid,args"


def test_stats_no_stream_computes_cpu_like_docker(daemon: Daemon) -> None:
    daemon.route("GET", "/containers/json", [{"Id": CID}])
    daemon.route("GET", f"/containers/{CID}/stats", {
        "id": CID, "name": "/cap-x",
        "cpu_stats": {"cpu_usage": {"total_usage": 300}, "system_cpu_usage": 2000,
                      "online_cpus": 2},
        "precpu_stats": {"cpu_usage": {"total_usage": 100}, "system_cpu_usage": 1000},
        "memory_stats": {"usage": 2 * 1048576, "limit": 8 * 1048576,
                         "stats": {"inactive_file": 1048576}},
        "networks": {"eth0": {"rx_bytes": 1000, "tx_bytes": 2000}},
        "blkio_stats": {"io_service_bytes_recursive": [{"op": "read", "value": 4096},
                                                       {"op": "write", "value": 0}]},
        "pids_stats": {"current": 3}})
    result = run(daemon, "stats", "--no-stream")
    assert result.exit_code == 0, result.output
    header, row = result.output.splitlines()
    assert header.split() == ["CONTAINER", "ID", "NAME", "CPU", "%", "MEM", "USAGE", "/",
                              "LIMIT", "MEM", "%", "NET", "I/O", "BLOCK", "I/O", "PIDS"]
    assert [c.strip() for c in row.split("   ") if c.strip()] == [
        CID[:12], "cap-x", "40.00%", "1MiB / 8MiB", "12.50%", "1kB / 2kB", "4.1kB / 0B", "3"]
    assert daemon.requests[1].url.params["stream"] == "0"


def test_events_text_lines(daemon: Daemon, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    event = {"status": "start", "id": CID, "Type": "container", "Action": "start",
             "Actor": {"ID": CID, "Attributes": {"name": "cap-ev", "image": "busybox:local"}},
             "time": 1795828004, "timeNano": 1795828004292572235}
    daemon.route("GET", "/events", lambda r: httpx.Response(
        200, headers={"Content-Type": "application/json"}, content=json.dumps(event) + "\n"))
    result = run(daemon, "events", "--since", "1795828000", "-f", "type=container")
    assert result.output == (f"2026-11-28T01:06:44.292572235Z container start {CID} "
                             "(image=busybox:local, name=cap-ev)\n")
    params = daemon.requests[0].url.params
    assert params["since"] == "1795828000"
    assert json.loads(params["filters"]) == {"type": {"container": True}}
    assert run(daemon, "events", "--format", "{{.Action}}").output == "start\n"
    monkeypatch.delenv("TZ")
    time.tzset()
