"""The image store stays whole (#17), against a real wharfd and a real registry.

Two images that share their base layer go through pull, save, tag, rmi, load and pull again;
every recorded image must still save to an archive other tools read and push. A blob deleted
behind the daemon's back is found by ``wharf system check`` and fetched again. An image with no
PATH runs ``sh`` (Docker's default PATH).
"""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon_fixture import Daemon, running_daemon, wharf_cli
from tests.integration.registry_fixture import BUSYBOX, Registry, push_shared_images

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def shared(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """``acc/integrity-a:1`` and ``acc/integrity-b:1``, sharing their base layer."""
    return push_shared_images(registry, tmp_path_factory.mktemp("shared"),
                              repo="acc/integrity")


@pytest.fixture
def daemon(registry: Registry, tmp_path: Path) -> Iterator[Daemon]:
    """A daemon of its own for each test: every test starts from an empty store."""
    with running_daemon(tmp_path / "wharfd", mirrors=[registry.url]) as running:
        yield running


def wharf(daemon: Daemon, *args: str) -> str:
    return wharf_cli(daemon, *args).stdout


def skopeo_reads(archive: Path) -> dict[str, object]:
    """What skopeo makes of a saved archive (it fails on a broken one)."""
    out = subprocess.run(["skopeo", "inspect", f"docker-archive:{archive}"],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    inspected: dict[str, object] = json.loads(out)
    return inspected


def content_files(daemon: Daemon) -> list[str]:
    blobs = daemon.data_root / "content" / "sha256"
    return sorted(p.name for p in blobs.iterdir()) if blobs.exists() else []


def test_the_issue_sequence_keeps_share_a_saveable_and_pushable(
        daemon: Daemon, shared: list[str], registry: Registry, tmp_path: Path) -> None:
    a, b = shared
    wharf(daemon, "pull", a)
    wharf(daemon, "pull", b)
    wharf(daemon, "save", "-o", str(tmp_path / "a.tar"), a)
    wharf(daemon, "tag", a, "keep/a:1")
    wharf(daemon, "rmi", a)
    wharf(daemon, "load", "-i", str(tmp_path / "a.tar"))
    wharf(daemon, "rmi", "keep/a:1")
    wharf(daemon, "rmi", b)
    wharf(daemon, "pull", a)
    wharf(daemon, "save", "-o", str(tmp_path / "a2.tar"), a)
    assert (tmp_path / "a2.tar").stat().st_size > 1_000_000
    assert skopeo_reads(tmp_path / "a2.tar")["Layers"]
    copy = f"{registry.host}/acc/integrity-copy:1"
    wharf(daemon, "tag", a, copy)
    assert "digest: sha256:" in wharf(daemon, "push", copy)
    assert "I am a" in wharf(daemon, "run", "--rm", copy, "cat", "/a.txt")
    assert "consistent" in wharf(daemon, "system", "check")


def test_a_pull_fetches_the_blobs_a_loaded_image_lacks(
        daemon: Daemon, shared: list[str], registry: Registry, tmp_path: Path) -> None:
    """Loaded first (uncompressed blobs), then pulled: the registry's manifest is recorded
    only with its own (compressed) blobs, fetched although the layers are unpacked."""
    a, b = shared
    wharf(daemon, "pull", a)
    wharf(daemon, "save", "-o", str(tmp_path / "a.tar"), a)
    wharf(daemon, "rmi", a)
    assert content_files(daemon) == []
    wharf(daemon, "load", "-i", str(tmp_path / "a.tar"))
    out = wharf(daemon, "pull", b)  # shares the loaded base layer, not its blob
    assert "Download complete" in out
    wharf(daemon, "pull", a)
    wharf(daemon, "save", "-o", str(tmp_path / "b.tar"), b)
    assert skopeo_reads(tmp_path / "b.tar")["Layers"]
    copy = f"{registry.host}/acc/integrity-copy-b:1"
    wharf(daemon, "tag", b, copy)
    assert "digest: sha256:" in wharf(daemon, "push", copy)
    assert "consistent" in wharf(daemon, "system", "check")


def test_system_check_finds_a_deleted_blob_and_fetches_it_again(
        daemon: Daemon, shared: list[str], tmp_path: Path) -> None:
    a, _ = shared
    wharf(daemon, "pull", a)
    layer_blobs = [d for d in content_files(daemon)
                   if _is_gzip(daemon.data_root / "content" / "sha256" / d)]
    assert len(layer_blobs) == 2
    (daemon.data_root / "content" / "sha256" / layer_blobs[0]).unlink()
    report = wharf_cli(daemon, "system", "check", check=False)
    assert report.returncode == 1
    assert f"blob sha256:{layer_blobs[0]}" in report.stdout
    assert "repairable with --repair" in report.stdout
    save = wharf_cli(daemon, "save", "-o", str(tmp_path / "broken.tar"), a, check=False)
    assert save.returncode != 0 and not (tmp_path / "broken.tar").exists()
    repaired = wharf(daemon, "system", "check", "--repair")
    assert "repaired (fetched from" in repaired
    assert "consistent" in wharf(daemon, "system", "check")
    wharf(daemon, "save", "-o", str(tmp_path / "fixed.tar"), a)
    assert skopeo_reads(tmp_path / "fixed.tar")["Layers"]


def test_the_daemon_repairs_what_it_can_at_start(registry: Registry, shared: list[str],
                                                 tmp_path: Path) -> None:
    """Missing config blob (kept in state.db), a leftover partial write, an unreferenced blob:
    all repaired when wharfd starts."""
    a, _ = shared
    base = tmp_path / "wharfd"
    with running_daemon(base, mirrors=[registry.url]) as daemon:
        wharf(daemon, "pull", a)
        image_id = wharf(daemon, "image", "inspect", "-f", "{{.Id}}", a).strip()
    blobs = base / "data" / "content" / "sha256"
    (blobs / image_id.removeprefix("sha256:")).unlink()
    (blobs / ("0" * 64)).write_bytes(b"stray")
    ingest = base / "data" / "content" / "ingest"
    (ingest / "interrupted.partial").write_bytes(b"half")
    with running_daemon(base, mirrors=[registry.url]) as daemon:
        assert "consistent" in wharf(daemon, "system", "check")
        assert "repaired" in daemon.log_text()
        assert not (blobs / ("0" * 64)).exists()
        assert list(ingest.iterdir()) == []
        wharf(daemon, "save", "-o", str(tmp_path / "a.tar"), a)


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(2) == b"\x1f\x8b"


def _rootfs_tar() -> bytes:
    """busybox with an ``sh`` link: an image config made by import has no Env at all."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        tar.add(BUSYBOX, arcname="bin/busybox")
        for applet in ("sh", "echo", "sleep"):
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info)
    return out.getvalue()


def test_an_image_without_path_runs_sh_with_dockers_default_path(daemon: Daemon,
                                                                  tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs.tar"
    rootfs.write_bytes(_rootfs_tar())
    wharf(daemon, "import", str(rootfs), "nopath:1")
    env = wharf(daemon, "image", "inspect", "-f", "{{json .Config.Env}}", "nopath:1").strip()
    assert "PATH" not in env
    default = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    assert wharf(daemon, "run", "--rm", "nopath:1", "sh", "-c", "echo $PATH").strip() == default
    wharf(daemon, "run", "-d", "--name", "nopath", "nopath:1", "sleep", "30")
    try:
        assert wharf(daemon, "exec", "nopath", "sh", "-c", "echo $PATH").strip() == default
    finally:
        wharf(daemon, "rm", "-f", "nopath")
