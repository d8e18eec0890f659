"""``docker build`` against wharfd for real (issue #11): the classic builder's protocol driven by
the docker CLI (``DOCKER_BUILDKIT=0``), docker-py and the wharf CLI, beside real Docker building
the same Dockerfile; the layer cache; and bad input leaving nothing behind.

Needs the session registry (busybox), crun/conmon, and for the comparisons the docker CLI and
a Docker engine on unix:///var/run/docker.sock (``make dockerd``). Every test removes what it
made: images it tagged, containers (the builder's own are checked to be gone).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import docker as docker_sdk
import pytest

from tests.daemon_fixture import Daemon, busybox_daemon, running_daemon, wharf_cli
from tests.integration.conftest import SeededRegistry

pytestmark = [pytest.mark.integration]
DOCKER = shutil.which("docker")
DOCKER_ENGINE = "unix:///var/run/docker.sock"

# The multi-stage Dockerfile: ARG before FROM, COPY --from, COPY --chown, ENV expansion
# in WORKDIR, USER, .dockerignore, ENTRYPOINT + CMD; a stage the target does not need (Docker's
# classic builder builds it anyway; wharf does not).
DOCKERFILE = """\
ARG BASE
FROM $BASE AS build
ARG GREETING=hi
WORKDIR /out
COPY src/ ./src/
RUN echo "$GREETING $(cat src/msg.txt)" > result.txt \\
    && echo "app:x:1234:1234::/home/app:/bin/sh" >> /etc/passwd \\
    && echo "app:x:1234:" >> /etc/group

FROM build AS unused
RUN echo building the unused stage

FROM $BASE
ENV APP_HOME=/srv/app
WORKDIR $APP_HOME/bin
COPY --from=build /etc/passwd /etc/group /etc/
COPY --from=build --chown=app:app /out/result.txt ./
COPY --chown=1234 src/ ./
USER app
ENTRYPOINT ["sh", "-c", "cat result.txt msg.txt; stat -c '%n %u %g %a' *; id; pwd; \\
ls /srv/app/bin; ls -a / | grep -c ignored; echo args: \\"$@\\"", "--"]
CMD ["default-arg"]
"""


@pytest.fixture(scope="module")
def daemon(seeded_registry: SeededRegistry, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Daemon]:
    base = tmp_path_factory.mktemp("wharfd-build")
    with busybox_daemon(base, seeded_registry.registry.url) as running:
        yield running


@pytest.fixture
def base_image(seeded_registry: SeededRegistry) -> str:
    return f"{seeded_registry.registry.url.removeprefix('http://')}/library/busybox:latest"


def make_context(root: Path, dockerfile: str = DOCKERFILE) -> Path:
    (root / "src").mkdir(parents=True)
    (root / "src" / "msg.txt").write_text("hello from src\n")
    (root / "ignored").mkdir()
    (root / "ignored" / "secret.txt").write_text("secret\n")
    (root / "notes.tmp").write_text("scratch\n")
    (root / ".dockerignore").write_text("ignored\n*.tmp\n")
    (root / "Dockerfile").write_text(dockerfile)
    return root


def context_tar(root: Path) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        tar.add(root, arcname=".")
    return out.getvalue()


def api_build(daemon: Daemon, body: bytes, query: str = "") -> tuple[int, list[dict[str, object]]]:
    status, raw = daemon.request("POST", f"/build?{query}", body=body,
                                 headers={"Content-Type": "application/x-tar"})
    if status != 200:
        return status, [json.loads(raw)]
    return status, [json.loads(line) for line in raw.splitlines() if line.strip()]


def stream_text(messages: list[dict[str, object]]) -> str:
    return "".join(str(m.get("stream", "")) for m in messages)


def docker(host: str, *args: str, check: bool = True, input_: bytes | None = None
           ) -> subprocess.CompletedProcess[bytes]:
    assert DOCKER is not None
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    env.pop("DOCKER_HOST", None)
    result = subprocess.run([DOCKER, "-H", host, *args], capture_output=True, env=env,
                            input=input_, timeout=300, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {result.stdout.decode()}"
                             f"{result.stderr.decode()}")
    return result


def left_behind(daemon: Daemon) -> list[str]:
    """What a finished build must not leave: containers, work dirs, overlay mounts (received
    contexts are kept for the next build of the same archive: core/build/contexts.py)."""
    found = [f"container {c['Id'][:12]}" for c in
             json.loads(daemon.request("GET", "/containers/json?all=1")[1])]
    builds = daemon.data_root / "builds"
    work = builds / "work"
    found += [f"build dir {p.name}" for p in work.iterdir()] if work.is_dir() else []
    mounts = Path("/proc/self/mountinfo").read_text()
    found += [f"mount {line.split()[4]}" for line in mounts.splitlines()
              if str(builds) in line.split()[4]]
    return found


def run_output(host: str, image: str, *args: str) -> str:
    return docker(host, "run", "--rm", image, *args).stdout.decode()


def config_of(host: str, image: str) -> dict[str, object]:
    config = json.loads(docker(host, "image", "inspect", image).stdout)[0]["Config"]
    return {k: config.get(k) for k in ("Env", "Entrypoint", "Cmd", "WorkingDir", "User")}


@pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed")
def test_multi_stage_build_alike_in_wharf_docker_cli_docker_py_and_real_docker(
        daemon: Daemon, base_image: str, tmp_path: Path) -> None:
    context = make_context(tmp_path / "ctx")
    tag = f"wharf-test/ms-{uuid.uuid4().hex[:8]}"
    args = ("--build-arg", f"BASE={base_image}", "--build-arg", "GREETING=hey")
    built = {}
    try:
        out = docker(daemon.host, "build", *args, "-t", f"{tag}:cli", str(context)).stdout
        assert b"Successfully tagged " + f"{tag}:cli".encode() in out
        assert b"building the unused stage" not in out  # a stage the target does not need
        client = docker_sdk.DockerClient(base_url=daemon.host)
        _, logs = client.images.build(path=str(context), tag=f"{tag}:py", buildargs={
            "BASE": base_image, "GREETING": "hey"})
        assert any("Successfully built" in str(m.get("stream", "")) for m in logs)
        cli = wharf_cli(daemon, "build", *args, "-t", f"{tag}:wharf", str(context))
        assert "Successfully built" in cli.stdout
        for name in ("cli", "py", "wharf"):
            built[name] = (run_output(daemon.host, f"{tag}:{name}"),
                           run_output(daemon.host, f"{tag}:{name}", "x", "y"),
                           config_of(daemon.host, f"{tag}:{name}"))
        if not _docker_engine():
            pytest.skip("no Docker engine to compare with (`make dockerd`)")
        docker(DOCKER_ENGINE, "build", *args, "-t", f"{tag}:docker", str(context))
        reference = (run_output(DOCKER_ENGINE, f"{tag}:docker"),
                     run_output(DOCKER_ENGINE, f"{tag}:docker", "x", "y"),
                     config_of(DOCKER_ENGINE, f"{tag}:docker"))
        assert "hey hello from src" in reference[0] and "args: x y" in reference[1]
        for name, result in built.items():
            assert result == reference, name
    finally:
        for name in ("cli", "py", "wharf"):
            docker(daemon.host, "rmi", f"{tag}:{name}", check=False)
        if _docker_engine():
            docker(DOCKER_ENGINE, "rmi", f"{tag}:docker", check=False)
    assert left_behind(daemon) == []


def test_second_build_uses_the_cache_and_a_changed_file_rebuilds_from_its_step(
        daemon: Daemon, base_image: str, tmp_path: Path) -> None:
    context = make_context(tmp_path / "ctx", f"""\
FROM {base_image}
ENV A=1
COPY src/msg.txt /msg.txt
RUN cat /msg.txt > /copy.txt
CMD ["cat", "/copy.txt"]
""")
    tag = f"wharf-test/cache-{uuid.uuid4().hex[:8]}:1"
    query = f"t={quote(tag)}"
    try:
        status, first = api_build(daemon, context_tar(context), query)
        assert status == 200 and "Successfully built" in stream_text(first)
        _, second = api_build(daemon, context_tar(context), query)
        text = stream_text(second)
        assert text.count(" ---> Using cache") == 4, text  # every step after FROM
        assert " ---> Running in" not in text
        assert second[-2:] == first[-2:]  # the same image: "Successfully built", tagged
        (context / "src" / "msg.txt").write_text("changed\n")
        _, third = api_build(daemon, context_tar(context), query)
        steps = stream_text(third).split("Step ")[1:]
        assert [" ---> Using cache" in s for s in steps] == [False, True, False, False, False]
        assert run_output(daemon.host, tag) == "changed\n"
    finally:
        daemon.request("DELETE", f"/images/{quote(tag, safe='')}")
    assert left_behind(daemon) == []


def test_system_df_shows_the_cached_steps_and_builder_prune_removes_them(
        daemon: Daemon, base_image: str, tmp_path: Path) -> None:
    context = make_context(tmp_path / "ctx", f"""\
FROM {base_image}
LABEL purpose=df-{uuid.uuid4().hex}
RUN echo data > /data
""")
    status, messages = api_build(daemon, context_tar(context), "t=wharf-test/df:1")
    assert status == 200, messages
    usage = json.loads(daemon.request("GET", "/system/df")[1])
    steps = [c for c in usage["BuildCache"] if "purpose=df-" in c["Description"]
             or "echo data" in c["Description"]]
    assert len(steps) == 2 and all(c["InUse"] for c in steps), usage["BuildCache"]
    assert next(c for c in steps if "echo data" in c["Description"])["Size"] > 0
    assert "wharf-test/df:1" in str(usage["Images"]) and len(usage["Images"]) == len(
        json.loads(daemon.request("GET", "/images/json")[1]))  # the steps are not images
    wharf_cli(daemon, "rmi", "--no-prune", "wharf-test/df:1")
    out = wharf_cli(daemon, "builder", "prune", "-f").stdout
    assert "Total reclaimed space:" in out
    usage = json.loads(daemon.request("GET", "/system/df")[1])
    assert not [c for c in usage["BuildCache"] if "purpose=df-" in c["Description"]]
    assert left_behind(daemon) == []


def test_add_unpacks_archives_and_fetches_urls_and_onbuild_triggers_run(
        daemon: Daemon, base_image: str, tmp_path: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    (served / "remote.txt").write_text("from the web\n")
    server = subprocess.Popen(["python3", "-m", "http.server", "--bind", "127.0.0.1", "0",
                               "--directory", str(served)], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = server.stdout.readline().split("port ")[1].split()[0]
        parent = f"wharf-test/onbuild-{uuid.uuid4().hex[:8]}:1"
        child = f"wharf-test/child-{uuid.uuid4().hex[:8]}:1"
        context = make_context(tmp_path / "ctx", f"""\
FROM {base_image}
ADD bundle.tar.gz /opt/
ADD http://127.0.0.1:{port}/remote.txt /opt/
HEALTHCHECK --interval=5s CMD test -f /opt/remote.txt
ONBUILD RUN echo triggered > /onbuild
""")
        with tarfile.open(context / "bundle.tar.gz", "w:gz") as bundle:
            bundle.add(context / "src", arcname="unpacked")
        status, messages = api_build(daemon, context_tar(context), f"t={quote(parent)}")
        assert status == 200, messages
        out = run_output(daemon.host, parent, "sh", "-c",
                         "cat /opt/unpacked/msg.txt /opt/remote.txt; stat -c %a /opt/remote.txt")
        assert out == "hello from src\nfrom the web\n600\n"
        inspect = json.loads(daemon.request("GET", f"/images/{quote(parent, safe='')}/json")[1])
        assert inspect["Config"]["Healthcheck"]["Test"] == ["CMD-SHELL", "test -f /opt/remote.txt"]
        assert inspect["Config"]["OnBuild"] == ["RUN echo triggered > /onbuild"]
        status, messages = api_build(daemon, context_tar(make_context(
            tmp_path / "child", f"FROM {parent}\nCMD [\"cat\", \"/onbuild\"]\n")),
            f"t={quote(child)}")
        assert "# Executing 1 build trigger" in stream_text(messages), messages
        assert run_output(daemon.host, child) == "triggered\n"
        config = json.loads(daemon.request("GET", f"/images/{quote(child, safe='')}/json")[1])
        assert not config["Config"]["OnBuild"]
        gone = make_context(tmp_path / "gone", f"FROM {base_image}\n"
                            f"ADD http://127.0.0.1:{port}/missing.txt /x\n")
        status, messages = api_build(daemon, context_tar(gone))
        assert "ADD failed: http://127.0.0.1:" in str(messages[-1].get("error")), messages
    finally:
        server.terminate()
        server.wait(timeout=10)
        for name in ("child", "parent"):
            tag = child if name == "child" else parent
            daemon.request("DELETE", f"/images/{quote(tag, safe='')}")
    assert left_behind(daemon) == []


def test_bad_input_is_a_clear_error_and_leaves_nothing(daemon: Daemon, base_image: str,
                                                       tmp_path: Path) -> None:
    images_before = _image_ids(daemon)
    cases = {
        "unknown": (f"FROM {base_image}\nRUN true\nFOO bar\n", 400,
                    "dockerfile parse error on line 3: unknown instruction: FOO"),
        "missing": (f"FROM {base_image}\nCOPY nothere /x\n", 200,
                    "COPY failed: file not found in build context or excluded by "
                    ".dockerignore: stat nothere: file does not exist"),
        "outside": (f"FROM {base_image}\nCOPY link/passwd /x\n", 200,
                    "COPY failed: forbidden path outside the build context: link/passwd"),
        "exit3": (f"FROM {base_image}\nRUN echo out; exit 3\n", 200,
                  "The command '/bin/sh -c echo out; exit 3' returned a non-zero code: 3"),
    }
    for name, (dockerfile, status_wanted, message) in cases.items():
        context = make_context(tmp_path / name, dockerfile)
        (context / "link").symlink_to("/etc")
        status, messages = api_build(daemon, context_tar(context), "t=wharf-test/bad:1")
        assert status == status_wanted, (name, messages)
        last = messages[-1]
        assert message in str(last.get("message") or last.get("error")), (name, last)
        if name == "exit3":
            assert last["errorDetail"] == {"code": 3, "message": message}
            assert "out\n" in stream_text(messages)
        assert left_behind(daemon) == [], name
    assert daemon.request("GET", "/images/wharf-test/bad:1/json")[0] == 404
    new = _image_ids(daemon) - images_before
    # what may stay: the cached steps before the one that failed (FROM + nothing here)
    assert new == set(), new


def test_a_context_over_the_limit_is_refused(seeded_registry: SeededRegistry,
                                             tmp_path: Path) -> None:
    with running_daemon(tmp_path / "d", mirrors=[seeded_registry.registry.url],
                        env={"WHARF_BUILD_CONTEXT_MAX_BYTES": str(1 << 20)}) as small:
        context = make_context(tmp_path / "ctx", "FROM busybox\nCOPY big /big\n")
        (context / "big").write_bytes(os.urandom(2 << 20))
        status, messages = api_build(small, context_tar(context))
        assert status == 400
        assert "build context is larger than the limit of 1 MiB" in str(messages[0]["message"])
        assert left_behind(small) == []
        assert not list((small.data_root / "tmp").glob("build-*"))
        contexts = small.data_root / "builds" / "contexts"
        assert not contexts.is_dir() or not list(contexts.iterdir())


def test_the_cache_survives_a_restart_and_a_client_going_away_stops_the_build(
        seeded_registry: SeededRegistry, tmp_path: Path) -> None:
    context = make_context(tmp_path / "ctx", "FROM busybox\nENV A=1\nRUN echo one > /one\n")
    body = context_tar(context)
    with busybox_daemon(tmp_path / "d", seeded_registry.registry.url) as first:
        assert api_build(first, body, "t=cached")[0] == 200
    with busybox_daemon(tmp_path / "d", seeded_registry.registry.url) as second:
        _, messages = api_build(second, body, "t=cached")
        assert stream_text(messages).count(" ---> Using cache") == 2
        slow = context_tar(make_context(tmp_path / "slow", "FROM busybox\nRUN sleep 60\n"))
        _abandon_build(second, slow, until=b"Running in")
        deadline = time.monotonic() + 20
        while left_behind(second) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert left_behind(second) == []


def _abandon_build(daemon: Daemon, body: bytes, until: bytes) -> None:
    """POST /build, read until ``until`` shows up, then hang up."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(60)
    sock.connect(str(daemon.socket))
    head = (f"POST /build HTTP/1.1\r\nHost: d\r\nContent-Type: application/x-tar\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    sock.sendall(head + body)
    seen = b""
    while until not in seen:
        chunk = sock.recv(65536)
        assert chunk, seen
        seen += chunk
    sock.close()


def _image_ids(daemon: Daemon) -> set[str]:
    return {i["Id"] for i in json.loads(daemon.request("GET", "/images/json?all=1")[1])}


def _docker_engine() -> bool:
    if DOCKER is None:
        return False
    return subprocess.run([DOCKER, "-H", DOCKER_ENGINE, "info"], capture_output=True,
                          timeout=30, check=False).returncode == 0
