"""wharfd end to end for images: the wharf CLI, skopeo, the docker CLI and docker-py as peers.

One daemon per module, its docker.io mirror the session registry (seeded by skopeo from an
OCI layout made with umoci), exactly as `make setup` configures a host.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon_fixture import Daemon, running_daemon, stop_daemon
from tests.integration.conftest import SeededRegistry
from tests.integration.registry_fixture import inspect_raw, manifest_blobs

pytestmark = pytest.mark.integration
WHARF = str(Path(sys.executable).parent / "wharf")
DOCKER = shutil.which("docker")
DOCKERD_HOST = "unix:///var/run/docker.sock"  # the Docker engine `make test` starts (dockerd.sh)


@pytest.fixture(scope="module")
def daemon(seeded_registry: SeededRegistry, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Daemon]:
    base = tmp_path_factory.mktemp("wharfd")
    with running_daemon(base, mirrors=[seeded_registry.registry.url]) as running:
        yield running


def wharf(daemon: Daemon, *args: str, stdin: bytes | None = None
          ) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WHARF_", "DOCKER_"))}
    env["WHARF_CONFIG"] = str(daemon.data_root.parent / "client")
    return subprocess.run([WHARF, "-H", daemon.host, *args], capture_output=True, check=False,
                          env=env, input=stdin.decode("latin-1") if stdin else None, text=True)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_pull_through_the_mirror_lists_and_inspects(seeded_registry: SeededRegistry,
                                                    tmp_path: Path) -> None:
    # Its own daemon: "Downloaded newer image" and "Pull complete" need one that has never
    # pulled busybox, nor busybox:whiteout (same first layer), whatever ran before.
    with running_daemon(tmp_path / "fresh", mirrors=[seeded_registry.registry.url]) as daemon:
        _pull_lists_and_inspects(daemon)


def _pull_lists_and_inspects(daemon: Daemon) -> None:
    out = ok(wharf(daemon, "pull", "busybox"))
    lines = out.splitlines()
    assert lines[0] == "Using default tag: latest"
    assert lines[1] == "latest: Pulling from library/busybox"
    assert any(line.endswith(": Pull complete") for line in lines)
    assert lines[-2] == "Status: Downloaded newer image for busybox:latest"
    assert lines[-1] == "docker.io/library/busybox:latest"
    assert "Status: Image is up to date for busybox:latest" in ok(wharf(daemon, "pull", "busybox"))
    table = ok(wharf(daemon, "images")).splitlines()
    assert table[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert any(row.split()[:2] == ["busybox", "latest"] for row in table[1:])
    inspect = json.loads(ok(wharf(daemon, "image", "inspect", "busybox")))[0]
    assert inspect["RepoTags"] == ["busybox:latest"]
    assert inspect["Config"]["Cmd"]
    assert len(inspect["RootFS"]["Layers"]) == 1
    history = ok(wharf(daemon, "image", "history", "busybox")).splitlines()
    assert history[0].split()[:2] == ["IMAGE", "CREATED"]


def test_whiteout_image_unpacks_into_overlay_form(daemon: Daemon) -> None:
    ok(wharf(daemon, "pull", "busybox:whiteout"))
    try:
        inspect = json.loads(ok(wharf(daemon, "image", "inspect", "busybox:whiteout")))[0]
        assert len(inspect["RootFS"]["Layers"]) == 2
        upper = Path(inspect["GraphDriver"]["Data"]["UpperDir"])
        whiteouts = [p for p in upper.rglob("*")
                     if p.is_char_device() and os.stat(p).st_rdev == 0]
        assert whiteouts, "the second layer's .wh. entry should be a 0:0 character device"
        assert not list(upper.rglob(".wh.*"))
    finally:
        wharf(daemon, "rmi", "busybox:whiteout")


def test_push_round_trips_with_skopeo_digests(daemon: Daemon,
                                              seeded_registry: SeededRegistry) -> None:
    registry = seeded_registry.registry
    ok(wharf(daemon, "pull", "busybox"))
    target = f"{registry.host}/roundtrip/busybox:v1"
    ok(wharf(daemon, "tag", "busybox", target))
    out = ok(wharf(daemon, "push", target))
    assert f"The push refers to repository [{registry.host}/roundtrip/busybox]" in out
    original = inspect_raw(registry, "library/busybox:latest")
    pushed = inspect_raw(registry, "roundtrip/busybox:v1")
    assert pushed == original  # the manifest bytes, hence the digest, are identical
    assert manifest_blobs(pushed) == manifest_blobs(original)
    ok(wharf(daemon, "rmi", target))


def test_save_then_load_restores_the_same_image(daemon: Daemon, tmp_path: Path) -> None:
    ok(wharf(daemon, "pull", "busybox"))
    image_id = ok(wharf(daemon, "image", "inspect", "-f", "{{.Id}}", "busybox")).strip()
    archive = tmp_path / "busybox.tar"
    ok(wharf(daemon, "save", "-o", str(archive), "busybox"))
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        assert manifest[0]["RepoTags"] == ["busybox:latest"]
        assert "index.json" in tar.getnames() and "oci-layout" in tar.getnames()
    ok(wharf(daemon, "tag", "busybox", "keep:me"))  # keeps the layers while busybox is gone
    removed = ok(wharf(daemon, "rmi", "busybox"))
    assert "Untagged: busybox:latest" in removed and "Untagged: busybox@sha256:" in removed
    assert "Deleted" not in removed  # keep:me still refers to it
    names = ok(wharf(daemon, "images", "--format", "{{.Repository}}:{{.Tag}}"))
    assert "busybox:latest" not in names
    out = ok(wharf(daemon, "load", "-i", str(archive)))
    assert "Loaded image: busybox:latest" in out
    assert ok(wharf(daemon, "image", "inspect", "-f", "{{.Id}}", "busybox")).strip() == image_id
    ok(wharf(daemon, "rmi", "keep:me"))


def test_import_a_rootfs_tarball(daemon: Daemon, tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs.tar"
    with tarfile.open(rootfs, "w") as tar:
        data = b"hello from an imported image\n"
        info = tarfile.TarInfo("greeting.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    image_id = ok(wharf(daemon, "import", "-c", 'CMD ["cat", "/greeting.txt"]', str(rootfs),
                        "imported:v1")).strip()
    assert image_id.startswith("sha256:")
    inspect = json.loads(ok(wharf(daemon, "image", "inspect", "imported:v1")))[0]
    assert inspect["Config"]["Cmd"] == ["cat", "/greeting.txt"]
    ok(wharf(daemon, "rmi", "imported:v1"))


def test_errors_are_one_clear_line_and_leave_nothing(
    daemon: Daemon, seeded_registry: SeededRegistry, tmp_path: Path
) -> None:
    result = wharf(daemon, "pull", "busybox:nope")
    assert result.returncode == 1
    assert "manifest for busybox:nope not found" in result.stderr
    result = wharf(daemon, "pull", "Bad/Name")
    assert result.returncode == 1 and "invalid reference format" in result.stderr
    result = wharf(daemon, "image", "inspect", "nothing-here")
    assert result.returncode == 1 and "No such image: nothing-here" in result.stderr
    # A registry that is down, named in the message.
    result = wharf(daemon, "pull", "127.0.0.1:9/x")
    assert result.returncode == 1 and "127.0.0.1:9" in result.stderr
    # A corrupt blob: refused, and no image, ingest file or temp layer is left.
    registry = seeded_registry.registry
    rootfs = tmp_path / "unique.tar"
    with tarfile.open(rootfs, "w") as tar:  # a layer no other image in this daemon has
        data = os.urandom(4096)
        info = tarfile.TarInfo("random.bin")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    name = f"{registry.host}/corrupt/busybox:v1"
    ok(wharf(daemon, "import", str(rootfs), name))
    ok(wharf(daemon, "push", name))
    ok(wharf(daemon, "rmi", name))
    layer = manifest_blobs(inspect_raw(registry, "corrupt/busybox:v1"))[-1]
    blob = registry.blob_data(layer)
    original = blob.read_bytes()
    try:
        blob.write_bytes(bytes(len(original)))  # same size, wrong content
        result = wharf(daemon, "pull", f"{registry.host}/corrupt/busybox:v1")
        assert result.returncode == 1, result.stdout
        assert "verification failed" in result.stderr or "digest" in result.stderr
        assert "corrupt/busybox" not in ok(wharf(daemon, "images"))
        assert not any((daemon.data_root / "content" / "ingest").glob("*"))
        assert not any((daemon.data_root / "layers" / "tmp").glob("*"))
    finally:
        blob.write_bytes(original)


def test_rmi_removes_layers_and_blobs_no_image_needs(daemon: Daemon) -> None:
    ok(wharf(daemon, "pull", "busybox:whiteout"))
    before = set((daemon.data_root / "layers").iterdir())
    out = ok(wharf(daemon, "rmi", "busybox:whiteout"))
    assert "Untagged: busybox:whiteout" in out and "Deleted: sha256:" in out
    after = set((daemon.data_root / "layers").iterdir())
    assert len(after) < len(before)


def test_one_daemon_per_data_root_and_clean_sigterm(tmp_path: Path) -> None:
    with running_daemon(tmp_path / "a") as first:
        second = subprocess.run(
            [str(Path(sys.executable).parent / "wharfd"), "--data-root", str(first.data_root),
             "--run-dir", str(tmp_path / "other-run"), "--config-file", str(tmp_path / "none")],
            capture_output=True, text=True, timeout=30, check=False)
        assert second.returncode == 1
        assert "already running on data root" in second.stderr
        assert stop_daemon(first) == 0
        assert not first.socket.exists()
        assert not (first.run_dir / "wharfd.pid").exists()


def test_cli_says_how_to_start_a_missing_daemon(tmp_path: Path) -> None:
    result = subprocess.run([WHARF, "-H", f"unix://{tmp_path}/none.sock", "images"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert "Cannot connect to the wharf daemon" in result.stderr
    assert "Is wharfd running?" in result.stderr


@pytest.mark.docker_cli
@pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed")
def test_the_real_docker_cli_drives_wharfd_for_images(daemon: Daemon) -> None:
    def docker(*args: str) -> str:
        result = subprocess.run([str(DOCKER), "-H", daemon.host, *args], capture_output=True,
                                text=True, timeout=60, check=False,
                                env={**os.environ, "DOCKER_CONFIG": str(daemon.run_dir)})
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    assert "API version:      1.41" in docker("version")
    assert "Server Version: 0.1.0" in docker("info")
    assert "Digest: sha256:" in docker("pull", "busybox")
    docker("tag", "busybox", "dockertag:v2")
    assert "dockertag" in docker("images")
    assert docker("image", "inspect", "-f", "{{.Os}}", "dockertag:v2").strip() == "linux"
    assert "Untagged: dockertag:v2" in docker("rmi", "dockertag:v2")


def test_the_docker_sdk_lists_and_pulls(daemon: Daemon) -> None:
    docker_sdk = pytest.importorskip("docker")
    client = docker_sdk.DockerClient(base_url=daemon.host)
    try:
        assert client.ping() is True
        image = client.images.pull("busybox", tag="latest")
        assert "busybox:latest" in image.tags
        assert any("busybox:latest" in i.tags for i in client.images.list())
        with pytest.raises(docker_sdk.errors.NotFound):
            client.images.get("no-such-image")
    finally:
        client.close()


def test_docker_load_accepts_wharf_save(daemon: Daemon, tmp_path: Path) -> None:
    """A Docker engine loads what wharf saves and runs it (`make test` starts one)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env["DOCKER_CONFIG"] = str(tmp_path / "docker-config")

    def docker(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(DOCKER), "-H", DOCKERD_HOST, *args], capture_output=True,
                              text=True, timeout=120, check=False, env=env)

    if DOCKER is None or docker("info").returncode != 0:
        pytest.skip(f"no Docker engine on {DOCKERD_HOST} to run `docker load` against "
                    "(`make dockerd` starts one)")
    # A name of its own: nothing of dockerd's is overwritten, and it is removed afterwards.
    name = f"wharf-test/busybox:{uuid.uuid4().hex[:12]}"
    ok(wharf(daemon, "pull", "busybox"))
    ok(wharf(daemon, "tag", "busybox", name))
    try:
        image_id = ok(wharf(daemon, "image", "inspect", "-f", "{{.Id}}", name)).strip()
        archive = tmp_path / "busybox.tar"
        ok(wharf(daemon, "save", "-o", str(archive), name))
        loaded = docker("load", "-i", str(archive))
        assert loaded.returncode == 0, loaded.stdout + loaded.stderr
        assert f"Loaded image: {name}" in loaded.stdout
        inspected = docker("image", "inspect", "-f", "{{.Id}}", name)
        assert inspected.stdout.strip() == image_id, inspected.stderr
        ran = docker("run", "--rm", "--network", "none", name, "sh", "-c", "echo loaded; id -un")
        assert (ran.returncode, ran.stdout) == (0, "loaded\nroot\n"), ran.stderr
    finally:
        docker("rmi", name)
        wharf(daemon, "rmi", name)
    assert docker("image", "inspect", name).returncode != 0
