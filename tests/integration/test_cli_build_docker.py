"""``wharf build`` against a real dockerd and its classic builder: the wharf CLI reaches any
Docker-API daemon with ``-H``, so its context archive, query and output are checked against
Docker itself, beside ``DOCKER_BUILDKIT=0 docker build`` of the same context.

The base image is the session registry's busybox, pulled into dockerd from 127.0.0.1:<port>
(never Docker Hub). Each test labels its Dockerfile with a nonce, so its first build is cold,
and every image it made (tags, the images of each step) is removed afterwards.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import SeededRegistry

pytestmark = [pytest.mark.integration]
DOCKER = shutil.which("docker")
HOST = "unix:///var/run/docker.sock"
WHARF = str(Path(sys.executable).parent / "wharf")
DOCKERIGNORE = "skip\n!skip/keep\n*.md\nDockerfile\n"
STEP_ID = re.compile(r"^ ---> ([0-9a-f]{12})$", re.MULTILINE)


class Engine:
    """The docker and wharf CLIs against dockerd, with private configs; what they made."""

    def __init__(self, tmp: Path, base: str, base_id: str) -> None:
        self.base, self.base_id = base, base_id
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("DOCKER_", "WHARF_"))}
        self.env.update(DOCKER_CONFIG=str(tmp / "docker-config"),
                        WHARF_CONFIG=str(tmp / "wharf-config"), DOCKER_BUILDKIT="0")
        self.made: list[str] = []

    def run(self, argv: list[str], stdin: bytes | None = None, cwd: Path | None = None
            ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(argv, input=stdin, capture_output=True, check=False, timeout=300,
                              env=self.env, cwd=cwd)
        result = subprocess.CompletedProcess(argv, proc.returncode,
                                             proc.stdout.decode(errors="replace"),
                                             proc.stderr.decode(errors="replace"))
        self.made += [i for i in STEP_ID.findall(result.stdout) if i != self.base_id[7:19]]
        return result

    def docker(self, *args: str, stdin: bytes | None = None,
               cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return self.run([str(DOCKER), "-H", HOST, *args], stdin, cwd)

    def wharf(self, *args: str, stdin: bytes | None = None,
              cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return self.run([WHARF, "-H", HOST, *args], stdin, cwd)

    def image_id(self, name: str) -> str:
        return self.docker("image", "inspect", "-f", "{{.Id}}", name).stdout.strip()

    def output_of(self, image: str, *cmd: str) -> str:
        ran = self.docker("run", "--rm", "--network", "none", image, *cmd)
        assert ran.returncode == 0, ran.stderr
        return ran.stdout

    def cleanup(self) -> None:
        for name in reversed(self.made):  # children before their parents
            self.docker("rmi", name)


def _docker_engine() -> bool:
    if DOCKER is None:
        return False
    probe = subprocess.run([DOCKER, "-H", HOST, "info"], capture_output=True, check=False,
                           timeout=30)
    return probe.returncode == 0


@pytest.fixture(scope="module")
def base(seeded_registry: SeededRegistry, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[tuple[str, str]]:
    """The session registry's busybox in dockerd: (reference, image ID)."""
    if not _docker_engine():
        pytest.skip(f"no Docker engine on {HOST} (`make dockerd`)")
    engine = Engine(tmp_path_factory.mktemp("pull"), "", "")
    ref = f"{seeded_registry.registry.host}/library/busybox:latest"
    pulled = engine.docker("pull", ref)
    assert pulled.returncode == 0, pulled.stderr
    yield ref, engine.image_id(ref)
    engine.docker("rmi", ref)


@pytest.fixture
def engine(base: tuple[str, str], tmp_path: Path) -> Iterator[Engine]:
    running = Engine(tmp_path, *base)
    try:
        yield running
    finally:
        running.cleanup()


def context(root: Path, base: str, nonce: str) -> Path:
    """A context with a .dockerignore (an opened directory, an excluded Dockerfile), a
    symlink and files COPY sees; the image lists what it got."""
    files = {"Dockerfile": f"FROM {base}\nLABEL test.nonce={nonce}\nENV GREETING=hi\n"
                           "WORKDIR /ctx\nCOPY . /ctx/\nRUN ls -a /ctx /ctx/skip /ctx/sub "
                           "> /listing\nCMD [\"cat\", \"/listing\"]\n",
             ".dockerignore": DOCKERIGNORE, "a": "a\n", "README.md": "r\n",
             "skip/keep": "k\n", "skip/drop": "d\n", "sub/x": "x\n"}
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / "link").symlink_to("sub/x")
    return root


def normalised(output: str, tag: str) -> str:
    """Build output without what differs from one build to another: IDs and the tag."""
    text = re.sub(r"\b[0-9a-f]{12}\b", "<id>", output)
    return text.replace(tag, "<tag>")


def test_output_context_and_image_match_docker_build(engine: Engine, tmp_path: Path) -> None:
    nonce = uuid.uuid4().hex
    ctx = context(tmp_path / "ctx", engine.base, nonce)
    tags = {who: f"wharf-build-test-{nonce[:8]}-{who}:1" for who in ("docker", "wharf")}
    engine.made += tags.values()
    by_docker = engine.docker("build", "--no-cache", "-t", tags["docker"], str(ctx))
    by_wharf = engine.wharf("build", "--no-cache", "-t", tags["wharf"], str(ctx))
    assert (by_docker.returncode, by_wharf.returncode) == (0, 0), by_wharf.stderr
    # the same lines, the same upload size (the same archive layout as the docker CLI's)
    assert normalised(by_wharf.stdout, tags["wharf"]) == \
        normalised(by_docker.stdout, tags["docker"])
    assert by_wharf.stdout.startswith("Sending build context to Docker daemon  ")
    listing = engine.output_of(tags["wharf"])
    assert listing == engine.output_of(tags["docker"])
    ctx_dir = listing.split("\n\n")[0].splitlines()
    assert ctx_dir == ["/ctx:", ".", "..", ".dockerignore", "a", "link", "skip", "sub"]
    assert "keep" in listing and "drop" not in listing
    assert engine.output_of(tags["wharf"], "ls", "-l", "/ctx/link").rstrip().endswith(
        "link -> sub/x")


def test_a_cached_rebuild_hits_the_cache_dockers_context_made(engine: Engine,
                                                              tmp_path: Path) -> None:
    """COPY's cache key is the content dockerd received: wharf's archive of the same tree
    must give docker's image, every step from the cache."""
    ctx = context(tmp_path / "ctx", engine.base, uuid.uuid4().hex)
    by_docker = engine.docker("build", str(ctx))
    assert by_docker.returncode == 0, by_docker.stderr
    docker_id = re.findall(r"Successfully built ([0-9a-f]{12})", by_docker.stdout)[0]
    by_wharf = engine.wharf("build", str(ctx))
    assert by_wharf.returncode == 0, by_wharf.stderr
    assert by_wharf.stdout.count(" ---> Using cache") == 6
    assert f"Successfully built {docker_id}" in by_wharf.stdout
    quiet = engine.wharf("build", "-q", str(ctx))
    assert quiet.stdout.startswith("sha256:" + docker_id) and quiet.stdout.count("\n") == 1


def test_stdin_forms_quiet_and_iidfile(engine: Engine, tmp_path: Path) -> None:
    nonce = uuid.uuid4().hex
    ctx = context(tmp_path / "ctx", engine.base, nonce)
    dockerfile = f"FROM {engine.base}\nLABEL test.nonce={nonce}-stdin\nCOPY . /ctx/\n".encode()
    iidfile = tmp_path / "iid"
    # a Dockerfile alone on stdin
    alone = engine.wharf("build", "-q", "--iidfile", str(iidfile), "-", stdin=dockerfile)
    assert alone.returncode == 0, alone.stderr
    assert alone.stdout.strip() == iidfile.read_text() == engine.image_id(iidfile.read_text())
    engine.made.append(iidfile.read_text())
    # -f -: the directory as the context, the Dockerfile under a random name COPY never sees
    dashed = engine.wharf("build", "-q", "-f", "-", str(ctx), stdin=dockerfile)
    assert dashed.returncode == 0, dashed.stderr
    engine.made.append(dashed.stdout.strip())
    listing = engine.output_of(dashed.stdout.strip(), "ls", "-a", "/ctx")
    assert listing.split() == [".", "..", ".dockerignore", "a", "link", "skip", "sub"]
    # a gzipped context archive on stdin, the Dockerfile named with -f inside it
    (ctx / "df").mkdir()
    (ctx / "df" / "Build.df").write_bytes(dockerfile)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        tar.add(ctx, arcname=".")
    archive = engine.wharf("build", "-q", "-f", "df/Build.df", "-",
                           stdin=gzip.compress(raw.getvalue()))
    assert archive.returncode == 0, archive.stderr
    engine.made.append(archive.stdout.strip())
    assert "Build.df" in engine.output_of(archive.stdout.strip(), "ls", "/ctx/df")


def test_flags_and_a_failed_step_as_docker(engine: Engine, tmp_path: Path) -> None:
    nonce = uuid.uuid4().hex
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        f"FROM {engine.base} AS first\nARG WHO=nobody\nARG FROM_ENV\nLABEL test.nonce={nonce}\n"
        "ENV WHO=$WHO FROM_ENV=$FROM_ENV\n"
        "FROM first AS broken\nRUN echo out; echo err >&2; exit 3\n")
    tag = f"wharf-build-test-{nonce[:8]}:flags"
    engine.made.append(tag)
    engine.env["FROM_ENV"] = "from the environment"
    built = engine.wharf("build", "--target", "first", "--build-arg", "WHO=wharf",
                         "--build-arg", "FROM_ENV", "--label", "made.by=wharf", "-t", tag,
                         str(ctx))
    assert built.returncode == 0, built.stderr
    inspected = engine.docker("image", "inspect", "-f",
                              "{{json .Config.Env}} {{index .Config.Labels \"made.by\"}}", tag)
    assert '"WHO=wharf"' in inspected.stdout and '"FROM_ENV=from the environment"' in \
        inspected.stdout and inspected.stdout.rstrip().endswith(" wharf")
    # --force-rm: the failed RUN's container goes too
    failed = engine.wharf("build", "--force-rm", str(ctx))
    by_docker = engine.docker("build", "--force-rm", str(ctx))
    message = "The command '/bin/sh -c echo out; echo err >&2; exit 3' returned a non-zero " \
              "code: 3"
    assert (failed.returncode, by_docker.returncode) == (3, 3)
    assert failed.stderr.splitlines()[-1] == by_docker.stderr.splitlines()[-1] == message


def test_errors_before_anything_is_sent(engine: Engine, tmp_path: Path) -> None:
    for args, code, message in [
        (["-t", "BAD:x", str(tmp_path)], 125, 'invalid argument "BAD:x" for "-t, --tag" flag'),
        ([str(tmp_path / "missing")], 1, f'path "{tmp_path}/missing" not found'),
        ([str(tmp_path)], 1, "unable to evaluate symlinks in Dockerfile path"),
    ]:
        result = engine.wharf("build", *args)
        assert (result.returncode, result.stdout) == (code, "")
        assert message in result.stderr
