"""``wharf build`` against a fake daemon speaking Docker's classic builder protocol
(httpx.MockTransport): the query and headers sent, the output as the docker CLI prints it, and
the errors that stop a build before anything is sent. Replies are dockerd 20.10's, recorded
from ``POST /build`` on this machine."""

from __future__ import annotations

import base64
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import Result

from tests.unit.test_cli_images import FakeDaemon, json_stream, run

IMAGE_ID = "sha256:a7eae39b28af406cafcb4a955f21832efae19f96e139111eafc772ba187a824a"
STEPS = (
    {"stream": "Step 1/2 : FROM busybox"}, {"stream": "\n"},
    {"stream": " ---> a2e3d67fc067\n"},
    {"stream": "Step 2/2 : COPY a /a"}, {"stream": "\n"},
    {"stream": " ---> a7eae39b28af\n"},
    {"aux": {"ID": IMAGE_ID}},
    {"stream": "Successfully built a7eae39b28af\n"},
)
FAILED_RUN = (
    {"stream": "Step 2/2 : RUN exit 3"}, {"stream": "\n"},
    {"stream": " ---> Running in c749f52b6847\n"},
    {"stream": "\x1b[91merr\n\x1b[0m"},
    {"errorDetail": {"code": 3, "message": "The command '/bin/sh -c exit 3' returned a "
                                           "non-zero code: 3"},
     "error": "The command '/bin/sh -c exit 3' returned a non-zero code: 3"},
)


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    root = tmp_path / "ctx"
    root.mkdir()
    (root / "Dockerfile").write_text("FROM busybox\nCOPY a /a\n")
    (root / "a").write_text("a\n")
    return root


@pytest.fixture
def daemon() -> FakeDaemon:
    return FakeDaemon()


def builder(daemon: FakeDaemon, *messages: dict[str, Any]) -> list[bytes]:
    """Route POST /build to a reply of ``messages``; the bodies received."""
    bodies: list[bytes] = []

    def build(request: httpx.Request) -> httpx.Response:
        bodies.append(request.read())
        return json_stream(*messages)

    daemon.route("POST", "/build", build)
    return bodies


def names(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        return tar.getnames()


def test_build_sends_the_context_and_prints_what_docker_prints(daemon: FakeDaemon,
                                                              ctx: Path) -> None:
    bodies = builder(daemon, *STEPS)
    result = run(daemon, "build", str(ctx))
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes == (
        b"Sending build context to Docker daemon  3.072kB\r\r\n"
        b"Step 1/2 : FROM busybox\n ---> a2e3d67fc067\nStep 2/2 : COPY a /a\n"
        b" ---> a7eae39b28af\nSuccessfully built a7eae39b28af\n")
    assert names(bodies[0]) == ["Dockerfile", "a"]
    request = daemon.seen[0]
    # what the docker CLI 28 sends for a plain `docker build DIR`
    assert dict(request.url.params) == {"version": "1", "dockerfile": "Dockerfile"}
    assert request.headers["Content-Type"] == "application/x-tar"
    assert request.headers["X-Registry-Config"] == "e30="


def test_every_flag_reaches_the_query(daemon: FakeDaemon, ctx: Path) -> None:
    builder(daemon, {"stream": IMAGE_ID + "\n"})
    result = run(daemon, "build", "-t", "app", "-t", "127.0.0.1:5000/app:2",
                 "--build-arg", "A=1", "--build-arg", "FROM_ENV", "--build-arg", "UNSET",
                 "--build-arg", "A=2", "--label", "x=y=z", "--label", "flag",
                 "--target", "final", "--no-cache", "--pull", "--network", "host",
                 "--rm=false", "--force-rm", "-q", "--progress", "plain", str(ctx),
                 env={"FROM_ENV": "from env", "UNSET": None})  # type: ignore[dict-item]
    assert result.exit_code == 0, result.output
    params = daemon.seen[0].url.params
    assert params.get_list("t") == ["app", "127.0.0.1:5000/app:2"]
    assert json.loads(params["buildargs"]) == {"A": "2", "FROM_ENV": "from env", "UNSET": None}
    assert json.loads(params["labels"]) == {"x": "y=z", "flag": ""}
    assert {k: params[k] for k in ("target", "nocache", "pull", "networkmode", "rm", "forcerm",
                                   "q", "dockerfile", "version")} == {
        "target": "final", "nocache": "1", "pull": "1", "networkmode": "host", "rm": "0",
        "forcerm": "1", "q": "1", "dockerfile": "Dockerfile", "version": "1"}


@pytest.mark.parametrize(("flag", "param", "value"), [
    ("--rm", "rm", None), ("--rm=true", "rm", None), ("--no-rm", "rm", "0"),
    ("--no-cache=false", "nocache", None), ("--pull=1", "pull", "1"),
    ("--network=default", "networkmode", None),
])
def test_boolean_flags_take_docker_values(daemon: FakeDaemon, ctx: Path, flag: str,
                                          param: str, value: str | None) -> None:
    builder(daemon, *STEPS)
    result = run(daemon, "build", flag, str(ctx))
    assert result.exit_code == 0, result.output
    assert daemon.seen[0].url.params.get(param) == value


@pytest.mark.parametrize(("args", "message"), [
    (["-t", "BAD:x"], 'invalid argument "BAD:x" for "-t, --tag" flag: invalid reference '
                      "format: repository name must be lowercase"),
    (["-t", "ok", "-t", "a@b"], 'invalid argument "a@b" for "-t, --tag" flag: invalid '
                                "reference format"),
    (["--rm=maybe"], 'invalid argument "maybe" for "--rm" flag: strconv.ParseBool: parsing '
                     '"maybe": invalid syntax'),
    (["--label", "=v"], "invalid label '=v': empty name"),
    (["--progress", "fancy"], "Invalid value for '--progress'"),
])
def test_flag_errors_exit_125_and_send_nothing(daemon: FakeDaemon, ctx: Path,
                                               args: list[str], message: str) -> None:
    result = run(daemon, "build", *args, str(ctx))
    assert result.exit_code == 125, result.output
    assert message in result.stderr
    assert result.stderr.endswith("See 'wharf build --help'.\n")
    assert daemon.seen == []


@pytest.mark.parametrize(("args", "message"), [
    (["{tmp}/missing"], 'unable to prepare context: path "{tmp}/missing" not found'),
    (["-f", "{tmp}/ctx/Nope", "{tmp}/ctx"],
     "unable to prepare context: unable to evaluate symlinks in Dockerfile path: lstat "
     "{tmp}/ctx/Nope: no such file or directory"),
])
def test_a_missing_context_or_dockerfile_is_refused_before_sending(
        daemon: FakeDaemon, ctx: Path, args: list[str], message: str) -> None:
    tmp = ctx.parent
    result = run(daemon, "build", *(a.format(tmp=tmp) for a in args))
    assert result.exit_code == 1
    assert result.stderr == message.format(tmp=tmp) + "\n"
    assert daemon.seen == []


def test_a_failed_step_prints_its_error_and_exits_with_its_code(daemon: FakeDaemon,
                                                               ctx: Path) -> None:
    builder(daemon, *STEPS[:3], *FAILED_RUN)
    result = run(daemon, "build", str(ctx))
    assert result.exit_code == 3
    assert result.stdout.endswith(" ---> Running in c749f52b6847\n\x1b[91merr\n\x1b[0m")
    assert result.stderr == "The command '/bin/sh -c exit 3' returned a non-zero code: 3\n"
    builder(daemon, {"errorDetail": {"message": "no code"}, "error": "no code"})
    assert run(daemon, "build", str(ctx)).exit_code == 1


def test_quiet_prints_only_the_image_id(daemon: FakeDaemon, ctx: Path) -> None:
    builder(daemon, {"stream": IMAGE_ID + "\n"})  # dockerd's whole answer to q=1
    result = run(daemon, "build", "-q", str(ctx))
    assert (result.exit_code, result.stdout, result.stderr) == (0, IMAGE_ID + "\n", "")


def test_quiet_failure_prints_what_was_held_back_to_stderr(daemon: FakeDaemon,
                                                           ctx: Path) -> None:
    builder(daemon, *STEPS[:3], *FAILED_RUN)
    result = run(daemon, "build", "--quiet", str(ctx))
    assert result.exit_code == 3 and result.stdout == ""
    assert result.stderr_bytes.startswith(b"Sending build context to Docker daemon  3.072kB"
                                          b"\r\r\nStep 1/2 : FROM busybox\n")
    assert result.stderr.endswith("\x1b[0mThe command '/bin/sh -c exit 3' returned a non-zero "
                                  "code: 3\n")


def test_iidfile_gets_the_id_and_a_stale_one_is_removed_first(daemon: FakeDaemon, ctx: Path,
                                                              tmp_path: Path) -> None:
    iidfile = tmp_path / "iid"
    builder(daemon, *STEPS)
    assert run(daemon, "build", "--iidfile", str(iidfile), str(ctx)).exit_code == 0
    assert iidfile.read_text() == IMAGE_ID
    builder(daemon, *FAILED_RUN)
    assert run(daemon, "build", "--iidfile", str(iidfile), str(ctx)).exit_code == 3
    assert not iidfile.exists()
    builder(daemon, {"stream": "no id\n"})
    result = run(daemon, "build", "--iidfile", str(iidfile), str(ctx))
    assert result.exit_code == 1
    assert f"Server did not provide an image ID. Cannot write {iidfile}" in result.stderr


def test_image_build_and_a_dockerfile_on_stdin(daemon: FakeDaemon) -> None:
    bodies = builder(daemon, *STEPS)
    result = run(daemon, "image", "build", "-", input=b"FROM busybox\n")
    assert result.exit_code == 0, result.output
    assert names(bodies[0]) == ["Dockerfile"]
    assert result.stdout.startswith("Sending build context to Docker daemon  2.048kB\r\n")


def test_stored_credentials_go_in_x_registry_config(daemon: FakeDaemon, ctx: Path,
                                                    tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(
        {"auths": {"127.0.0.1:5000": {"auth": base64.b64encode(b"bob:s3cret").decode()}}}))
    builder(daemon, *STEPS)
    assert run(daemon, "--config", str(tmp_path), "build", str(ctx)).exit_code == 0
    header = daemon.seen[0].headers["X-Registry-Config"]
    assert json.loads(base64.urlsafe_b64decode(header)) == {"127.0.0.1:5000": {
        "username": "bob", "password": "s3cret", "serveraddress": "127.0.0.1:5000"}}


def test_on_a_terminal_the_upload_line_grows_in_place(daemon: FakeDaemon, ctx: Path) -> None:
    (ctx / "big").write_bytes(bytes(3 << 20))
    builder(daemon, *STEPS)
    result = run(daemon, "build", str(ctx), stdout_tty=True)
    assert result.exit_code == 0, result.output
    upload = result.stdout_bytes.split(b"\n", 1)[0]
    updates = upload.split(b"\r")
    assert len(updates) > 4 and updates[0].startswith(b"Sending build context to Docker daemon")
    assert upload.endswith(b"  3.149MB\r\r")


def test_a_daemon_error_before_the_stream_is_docker_worded(daemon: FakeDaemon,
                                                           ctx: Path) -> None:
    daemon.route("POST", "/build", reply_500)
    result = run(daemon, "build", str(ctx))
    assert result.exit_code == 1
    assert result.stderr == "Error response from daemon: dockerfile parse error line 1\n"


def reply_500(request: httpx.Request) -> httpx.Response:
    request.read()
    return httpx.Response(500, json={"message": "dockerfile parse error line 1"})


def test_help_names_the_flags(daemon: FakeDaemon) -> None:
    result: Result = run(daemon, "build", "--help")
    assert result.exit_code == 0
    for flag in ("-t, --tag", "-f, --file", "--build-arg", "--target", "--no-cache", "--pull",
                 "--label", "--network", "-q, --quiet", "--rm / --no-rm", "--force-rm",
                 "--progress", "--iidfile", "PATH | URL | -"):
        assert flag in result.output


