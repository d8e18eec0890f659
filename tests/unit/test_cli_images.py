"""The image commands against a fake daemon speaking the Docker Engine API (httpx.MockTransport).

The fake replies with the literal shapes of docs/…/docker-engine-api.md §2.4 and §4.7.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from wharf.cli.main import build_cli
from wharf.cli.session import Hooks

NOW = int(time.time())
BUSYBOX_ID = "sha256:349a1b2c3d4e5f60718293a4b5c6d7e8f90123456789abcdef0123456789abcd"
DANGLING_ID = "sha256:aaaabbbbccccddddeeeeffff00001111222233334444555566667777888899990"


@dataclass
class FakeDaemon:
    """Records requests; routes answer like dockerd 20.10 (API 1.41)."""

    routes: dict[tuple[str, str], Callable[[httpx.Request], httpx.Response]] = field(
        default_factory=dict)
    seen: list[httpx.Request] = field(default_factory=list)

    def route(self, method: str, path: str,
              reply: Callable[[httpx.Request], httpx.Response]) -> None:
        self.routes[(method, "/v1.41" + path)] = reply

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        handler = self.routes.get((request.method, request.url.path))
        if handler is None:
            return httpx.Response(404, json={"message": f"page not found: {request.url.path}"})
        return handler(request)


def run(daemon: FakeDaemon, *args: str, input: bytes | str | None = None,
        stdout_tty: bool = False, stdin_tty: bool = False, env: dict[str, str] | None = None,
        ) -> Result:
    hooks = Hooks(wire=httpx.MockTransport(daemon), stdout_tty=stdout_tty, stdin_tty=stdin_tty)
    return CliRunner().invoke(build_cli(), list(args), obj=hooks, input=input, env=env)


def json_stream(*messages: dict[str, Any]) -> httpx.Response:
    body = b"".join(json.dumps(m).encode() + b"\n" for m in messages)
    return httpx.Response(200, headers={"Content-Type": "application/json"}, content=body)


def _images() -> list[dict[str, object]]:
    """The daemon's list, with times relative to the request (a slow suite must not shift them)."""
    now = int(time.time())
    return [
    {"Containers": -1, "Created": now - 3 * 86400, "Id": BUSYBOX_ID, "Labels": None,
     "ParentId": "", "RepoDigests": ["busybox@sha256:" + "d" * 64],
     "RepoTags": ["busybox:local", "127.0.0.1:5000/cap-bb:v1"], "SharedSize": -1,
     "Size": 1982305, "VirtualSize": 1982305},
    {"Containers": -1, "Created": now - 130, "Id": DANGLING_ID, "Labels": None, "ParentId": "",
     "RepoDigests": None, "RepoTags": ["<none>:<none>"], "SharedSize": -1, "Size": 999,
     "VirtualSize": 999},
    ]


@pytest.fixture
def daemon() -> FakeDaemon:
    fake = FakeDaemon()
    fake.route("GET", "/images/json", lambda r: httpx.Response(200, json=_images()))
    return fake


def test_images_table_has_docker_columns_sizes_times_and_none(daemon: FakeDaemon) -> None:
    result = run(daemon, "images")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines == [
        "REPOSITORY              TAG       IMAGE ID       CREATED         SIZE",
        "busybox                 local     349a1b2c3d4e   3 days ago      1.98MB",
        "127.0.0.1:5000/cap-bb   v1        349a1b2c3d4e   3 days ago      1.98MB",
        "<none>                  <none>    aaaabbbbcccc   2 minutes ago   999B",
    ]
    assert daemon.seen[0].url.params["all"] == "0"


def test_image_ls_quiet_all_and_filters_reach_the_daemon(daemon: FakeDaemon) -> None:
    result = run(daemon, "image", "ls", "-q", "-a", "--filter", "dangling=true")
    assert result.exit_code == 0, result.output
    assert result.output.split() == ["349a1b2c3d4e", "349a1b2c3d4e", "aaaabbbbcccc"]
    params = daemon.seen[0].url.params
    assert params["all"] == "1"
    assert json.loads(params["filters"]) == {"dangling": {"true": True}}


def test_images_digests_and_no_trunc(daemon: FakeDaemon) -> None:
    result = run(daemon, "images", "--digests", "--no-trunc")
    assert result.exit_code == 0, result.output
    header, first = result.output.splitlines()[:2]
    assert header.split()[:4] == ["REPOSITORY", "TAG", "DIGEST", "IMAGE"]
    assert first.split()[:4] == ["busybox", "local", "sha256:" + "d" * 64, BUSYBOX_ID]


@pytest.mark.parametrize(("fmt", "expected"), [
    ("{{.Repository}}:{{.Tag}}", ["busybox:local", "127.0.0.1:5000/cap-bb:v1", "<none>:<none>"]),
    ("table {{.ID}}\\t{{.Size}}", ["IMAGE ID       SIZE", "349a1b2c3d4e   1.98MB",
                                  "349a1b2c3d4e   1.98MB", "aaaabbbbcccc   999B"]),
])
def test_images_format_templates(daemon: FakeDaemon, fmt: str, expected: list[str]) -> None:
    result = run(daemon, "images", "--format", fmt)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == expected


def test_images_format_json_escapes_like_docker(daemon: FakeDaemon) -> None:
    result = run(daemon, "images", "--format", "{{json .}}")
    row = json.loads(result.output.splitlines()[2])
    assert row["Repository"] == "<none>" and row["Size"] == "999B"
    assert "\\u003cnone\\u003e" in result.output.splitlines()[2]


def test_images_format_unknown_field_fails(daemon: FakeDaemon) -> None:
    result = run(daemon, "images", "--format", "{{.Nope}}")
    assert result.exit_code == 1
    assert "can't evaluate field Nope" in result.output


def _pull_routes(daemon: FakeDaemon) -> None:
    daemon.route("POST", "/images/create", lambda r: json_stream(
        {"status": "Pulling from library/alpine", "id": "latest"},
        {"status": "Pulling fs layer", "progressDetail": {}, "id": "abe9b3c44e31"},
        {"status": "Downloading", "progressDetail": {"current": 294912, "total": 3146885},
         "progress": "[====>   ]  294.9kB/3.147MB", "id": "abe9b3c44e31"},
        {"status": "Download complete", "progressDetail": {}, "id": "abe9b3c44e31"},
        {"status": "Pull complete", "progressDetail": {}, "id": "abe9b3c44e31"},
        {"status": "Digest: sha256:" + "a" * 64},
        {"status": "Status: Downloaded newer image for alpine:latest"},
    ))


def test_pull_prints_what_docker_prints_without_a_terminal(daemon: FakeDaemon) -> None:
    _pull_routes(daemon)
    result = run(daemon, "pull", "alpine")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "Using default tag: latest",
        "latest: Pulling from library/alpine",
        "abe9b3c44e31: Pulling fs layer",
        "abe9b3c44e31: Download complete",
        "abe9b3c44e31: Pull complete",
        "Digest: sha256:" + "a" * 64,
        "Status: Downloaded newer image for alpine:latest",
        "docker.io/library/alpine:latest",
    ]
    request = daemon.seen[0]
    assert request.url.params["fromImage"] == "alpine"
    assert request.url.params["tag"] == "latest"
    assert request.headers["X-Registry-Auth"] == "e30="


def test_pull_on_a_terminal_redraws_layer_lines_in_place(daemon: FakeDaemon) -> None:
    _pull_routes(daemon)
    result = run(daemon, "pull", "-q", "alpine:3.19")
    assert result.output == "docker.io/library/alpine:3.19\n"
    daemon.seen.clear()
    result = run(daemon, "image", "pull", "alpine:3.19", stdout_tty=True)
    assert result.exit_code == 0, result.output
    assert "\x1b[1A" in result.output and "\x1b[2K" in result.output
    assert "294.9kB/3.147MB" in result.output
    assert "Using default tag" not in result.output


def test_pull_error_in_stream_prints_message_and_exits_1(daemon: FakeDaemon) -> None:
    daemon.route("POST", "/images/create", lambda r: json_stream(
        {"status": "Pulling from cap", "id": "v1"},
        {"errorDetail": {"message": "unknown blob"}, "error": "unknown blob"}))
    result = run(daemon, "pull", "127.0.0.1:5000/cap:v1")
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == "unknown blob"
    assert daemon.seen[0].url.params["fromImage"] == "127.0.0.1:5000/cap"


def test_pull_sends_stored_credentials_for_the_registry(daemon: FakeDaemon, tmp_path: Any) -> None:
    (tmp_path / "config.json").write_text(json.dumps(
        {"auths": {"127.0.0.1:5000": {"auth": base64.b64encode(b"bob:s3cret").decode()}}}))
    _pull_routes(daemon)
    result = run(daemon, "--config", str(tmp_path), "pull", "127.0.0.1:5000/x:v1")
    assert result.exit_code == 0, result.output
    header = daemon.seen[0].headers["X-Registry-Auth"]
    decoded = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    assert decoded == {"username": "bob", "password": "s3cret",
                       "serveraddress": "127.0.0.1:5000"}


def test_bad_reference_is_refused_before_any_request(daemon: FakeDaemon) -> None:
    result = run(daemon, "pull", "Not/Valid::x")
    assert result.exit_code == 1
    assert "invalid reference format" in result.output
    assert daemon.seen == []


def test_inspect_404_prints_docker_error_and_exit_1(daemon: FakeDaemon) -> None:
    result = run(daemon, "image", "inspect", "nope")
    assert result.exit_code == 1
    assert result.output.splitlines() == ["[]", "Error: No such image: nope"]


def test_inspect_prints_indented_array_and_formats(daemon: FakeDaemon) -> None:
    doc = {"Id": BUSYBOX_ID, "Config": {"Cmd": ["sh"], "Env": None}, "Size": 1982305}
    daemon.route("GET", "/images/busybox:local/json", lambda r: httpx.Response(200, json=doc))
    result = run(daemon, "image", "inspect", "busybox:local")
    assert result.exit_code == 0
    assert json.loads(result.output) == [doc]
    assert '\n    {\n        "Id"' in "\n" + result.output
    result = run(daemon, "image", "inspect", "-f", "{{.Config.Cmd}} {{json .Config}}",
                 "busybox:local")
    assert result.output == '[sh] {"Cmd":["sh"],"Env":null}\n'
    result = run(daemon, "image", "inspect", "-f", "{{.Nope}}", "busybox:local")
    assert result.exit_code == 1 and 'map has no entry for key "Nope"' in result.output


def test_rmi_prints_untagged_and_deleted_and_collects_errors(daemon: FakeDaemon) -> None:
    daemon.route("DELETE", "/images/cap-bb:t1", lambda r: httpx.Response(
        200, json=[{"Untagged": "cap-bb:t1"}, {"Deleted": BUSYBOX_ID}]))
    daemon.route("DELETE", "/images/busybox", lambda r: httpx.Response(
        409, json={"message": "conflict: unable to remove repository reference"}))
    result = run(daemon, "rmi", "-f", "cap-bb:t1", "busybox")
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "Untagged: cap-bb:t1", f"Deleted: {BUSYBOX_ID}",
        "Error response from daemon: conflict: unable to remove repository reference"]
    assert daemon.seen[0].url.params["force"] == "1"


def test_tag_sends_repo_and_tag(daemon: FakeDaemon) -> None:
    daemon.route("POST", "/images/busybox/tag", lambda r: httpx.Response(201))
    result = run(daemon, "tag", "busybox", "127.0.0.1:5000/bb")
    assert result.exit_code == 0, result.output
    assert dict(daemon.seen[0].url.params) == {"repo": "127.0.0.1:5000/bb", "tag": "latest"}


def test_save_refuses_a_terminal_and_writes_a_file(daemon: FakeDaemon, tmp_path: Any) -> None:
    daemon.route("GET", "/images/get", lambda r: httpx.Response(200, content=b"TARBYTES"))
    result = run(daemon, "save", "busybox", stdout_tty=True)
    assert result.exit_code == 1
    assert "cowardly refusing to save to a terminal" in result.output
    assert daemon.seen == []
    out = tmp_path / "bb.tar"
    result = run(daemon, "image", "save", "-o", str(out), "busybox", "alpine")
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == b"TARBYTES"
    assert daemon.seen[0].url.params.get_list("names") == ["busybox", "alpine"]
    result = run(daemon, "save", "busybox")
    assert result.stdout_bytes == b"TARBYTES"


def test_load_streams_stdin_and_prints_loaded_image(daemon: FakeDaemon) -> None:
    bodies: list[bytes] = []

    def load(request: httpx.Request) -> httpx.Response:
        bodies.append(request.read())
        return json_stream({"stream": "Loaded image: busybox:latest\n"})

    daemon.route("POST", "/images/load", load)
    result = run(daemon, "load", input=b"TAR")
    assert result.exit_code == 0, result.output
    assert result.output == "Loaded image: busybox:latest\n"
    assert bodies == [b"TAR"]
    assert daemon.seen[0].url.params["quiet"] == "1"  # not a terminal: docker asks quiet
    result = run(daemon, "load", stdin_tty=True)
    assert result.exit_code == 1
    assert "requested load from stdin, but stdin is empty" in result.output


def test_import_from_stdin_prints_the_new_id(daemon: FakeDaemon) -> None:
    daemon.route("POST", "/images/create", lambda r: json_stream({"status": DANGLING_ID}))
    result = run(daemon, "image", "import", "-c", "CMD [\"sh\"]", "-m", "hi", "-", "cap-imp:v1",
                 input=b"TAR")
    assert result.exit_code == 0, result.output
    assert result.output == DANGLING_ID + "\n"
    params = daemon.seen[0].url.params
    assert (params["fromSrc"], params["repo"], params["message"]) == ("-", "cap-imp:v1", "hi")
    assert params.get_list("changes") == ['CMD ["sh"]']


def test_prune_asks_and_treats_no_input_as_no(daemon: FakeDaemon) -> None:
    daemon.route("POST", "/images/prune", lambda r: httpx.Response(200, json={
        "ImagesDeleted": [{"Untagged": "x:1"}, {"Deleted": DANGLING_ID}],
        "SpaceReclaimed": 1982305}))
    result = run(daemon, "image", "prune", input="")
    assert result.exit_code == 0
    assert "Are you sure you want to continue? [y/N]" in result.output
    assert daemon.seen == []
    result = run(daemon, "image", "prune", "-a", "-f")
    assert result.output.splitlines() == [
        "Deleted Images:", "untagged: x:1", f"deleted: {DANGLING_ID}", "",
        "Total reclaimed space: 1.982MB"]
    assert json.loads(daemon.seen[0].url.params["filters"]) == {"dangling": {"false": True}}


def test_history_table(daemon: FakeDaemon) -> None:
    daemon.route("GET", "/images/busybox/history", lambda r: httpx.Response(200, json=[
        {"Id": BUSYBOX_ID, "Created": NOW - 7200, "CreatedBy": "/bin/sh -c #(nop)  CMD [\"sh\"]"
         " with a long tail that docker cuts", "Tags": ["busybox:local"], "Size": 0,
         "Comment": ""},
        {"Id": "<missing>", "Created": NOW - 7200, "CreatedBy": "ADD file:abc in /",
         "Tags": None, "Size": 1982305, "Comment": "imported"}]))
    result = run(daemon, "image", "history", "busybox")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "IMAGE          CREATED       CREATED BY" + " " * 38 + "SIZE      COMMENT",
        '349a1b2c3d4e   2 hours ago   /bin/sh -c #(nop)  CMD ["sh"] with a long ta…   0B        ',
        "<missing>      2 hours ago   ADD file:abc in /" + " " * 31 + "1.98MB    imported",
    ]
    result = run(daemon, "image", "history", "-q", "--no-trunc", "busybox")
    assert result.output.split() == [BUSYBOX_ID, "<missing>"]
