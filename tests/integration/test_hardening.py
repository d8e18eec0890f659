"""Issue #12 against a real wharfd: host paths closed to local users, TCP only with client
certificates, a decompression bomb refused with nothing left, container logs capped."""

from __future__ import annotations

import gzip
import hashlib
import http.client
import json
import os
import stat
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon_fixture import WHARFD, Daemon, busybox_daemon, running_daemon, wharf_cli
from tests.integration.conftest import SeededRegistry
from tests.integration.registry_fixture import Registry

pytestmark = pytest.mark.integration

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
ZEROS = 16 << 20


@pytest.fixture(scope="module")
def daemon(seeded_registry: SeededRegistry, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Daemon]:
    with busybox_daemon(tmp_path_factory.mktemp("hardening"), seeded_registry.registry.url
                        ) as running:
        yield running


def wharf(daemon: Daemon, *args: str) -> str:
    return wharf_cli(daemon, *args).stdout


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


# --- host paths -------------------------------------------------------------------------------


def test_the_data_root_a_container_dir_and_state_db_have_no_world_access(daemon: Daemon
                                                                         ) -> None:
    cid = wharf(daemon, "run", "-d", "busybox", "sh", "-c",
                "cp /bin/busybox /tmp/su && chmod 4755 /tmp/su && sleep 60").strip()
    try:
        deadline = time.monotonic() + 20
        upper = daemon.data_root / "containers" / cid / "rootfs" / "upper"
        while not (upper / "tmp" / "su").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        setuid = upper / "tmp" / "su"
        assert os.stat(setuid).st_mode & stat.S_ISUID  # the container made a setuid file ...
        # ... and no local user can reach it: some directory on the way has no "x" for others
        ancestors = [p for p in setuid.parents if p.is_relative_to(daemon.data_root)]
        assert any(not mode(p) & 0o001 for p in ancestors)
        assert mode(daemon.data_root) == 0o711
        assert mode(daemon.data_root / "containers") == 0o711
        assert mode(daemon.data_root / "containers" / cid) == 0o700
        for name in ("state.db", "state.db-wal", "state.db-shm"):
            path = daemon.data_root / name
            if path.exists():
                assert mode(path) & 0o077 == 0, name
        for name in ("content", "layers", "volumes", "tmp", "builds"):
            assert mode(daemon.data_root / name) == 0o700, name
    finally:
        wharf(daemon, "rm", "-f", cid)


def test_containers_still_run_as_another_user(daemon: Daemon) -> None:
    """The container dir is 0700: the runtime (root) mounts what the process then uses."""
    out = wharf(daemon, "run", "--rm", "--user", "65534:65534", "busybox", "sh", "-c",
                "id -u && cat /etc/hostname >/dev/null && ls / >/dev/null && echo ok")
    assert out.split() == ["65534", "ok"]


def test_an_older_install_is_fixed_at_start(tmp_path: Path) -> None:
    base = tmp_path / "old"
    with running_daemon(base):
        pass
    data = base / "data"
    for path in (data, data / "layers", data / "state.db"):
        path.chmod(0o755)
    with running_daemon(base):
        assert mode(data) == 0o711
        assert mode(data / "layers") == 0o700
        assert mode(data / "state.db") == 0o600


# --- TCP ---------------------------------------------------------------------------------------


def test_tcp_with_tls_but_without_tlsverify_refuses_to_start(tmp_path: Path) -> None:
    args = [WHARFD, "--data-root", str(tmp_path / "data"), "--run-dir", str(tmp_path / "run"),
            "--config-file", str(tmp_path / "none.json"), "-H", "tcp://127.0.0.1:23760", "--tls"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHARF_")}
    refused = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False,
                             env=env)
    assert refused.returncode == 1
    assert "refusing to listen on tcp://127.0.0.1:23760 with --tls but without --tlsverify" \
        in refused.stderr
    assert "Add --tlsverify" in refused.stderr


# --- a decompression bomb ----------------------------------------------------------------------


def _bomb_layer(members: int) -> tuple[bytes, str]:
    """A gzip layer (multi-member, about 16 KiB per 16 MiB of zeros) and its diff_id."""
    info = tarfile.TarInfo("zeros")
    info.size = members * ZEROS
    header = info.tobuf(tarfile.PAX_FORMAT)
    diff = hashlib.sha256(header)
    zeros = bytes(ZEROS)
    for _ in range(members):
        diff.update(zeros)
    diff.update(bytes(1024))  # the end-of-archive blocks
    member = gzip.compress(zeros, 9)
    blob = gzip.compress(header) + member * members + gzip.compress(bytes(1024))
    return blob, "sha256:" + diff.hexdigest()


def _push_blob(registry: Registry, repo: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    host, port = registry.host.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        conn.request("POST", f"/v2/{repo}/blobs/uploads/")
        reply = conn.getresponse()
        reply.read()
        assert reply.status == 202, reply.status
        location = reply.getheader("Location") or ""
        location = location.split(registry.host, 1)[-1]
        sep = "&" if "?" in location else "?"
        conn.request("PUT", f"{location}{sep}digest={digest}", body=data,
                     headers={"Content-Type": "application/octet-stream"})
        reply = conn.getresponse()
        reply.read()
        assert reply.status == 201, reply.status
    finally:
        conn.close()
    return digest


def _push_manifest(registry: Registry, repo: str, tag: str, manifest: bytes) -> None:
    host, port = registry.host.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        conn.request("PUT", f"/v2/{repo}/manifests/{tag}", body=manifest,
                     headers={"Content-Type": OCI_MANIFEST})
        reply = conn.getresponse()
        reply.read()
        assert reply.status == 201, reply.status
    finally:
        conn.close()


def push_bomb(registry: Registry, repo: str) -> int:
    """``<repo>:1``: one gzip layer of about 1 MiB that inflates to 1 GiB; its size."""
    layer, diff_id = _bomb_layer(64)
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    descriptors = []
    for data, media_type in ((config, "application/vnd.oci.image.config.v1+json"),
                             (layer, "application/vnd.oci.image.layer.v1.tar+gzip")):
        descriptors.append({"mediaType": media_type, "size": len(data),
                            "digest": _push_blob(registry, repo, data)})
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptors[0],
                "layers": descriptors[1:]}
    _push_manifest(registry, repo, "1", json.dumps(manifest).encode())
    return len(layer)


def test_a_layer_that_inflates_past_the_limit_fails_the_pull_and_leaves_nothing(
        registry: Registry, tmp_path: Path) -> None:
    size = push_bomb(registry, "acc/bomb")
    assert (1 << 20) // 2 < size < 2 << 20
    env = {"WHARF_LAYER_INFLATE_MIN_BYTES": str(64 << 20)}  # 8 x 1 MiB < 64 MiB < 1 GiB
    with running_daemon(tmp_path / "wharfd", mirrors=[registry.url], env=env) as running:
        pulled = wharf_cli(running, "pull", f"{registry.host}/acc/bomb:1", check=False)
        assert pulled.returncode != 0
        message = pulled.stdout + pulled.stderr
        assert "refusing to decompress past 64 MiB" in message
        assert "decompression bomb" in message
        assert wharf(running, "images", "-q").strip() == ""
        data = running.data_root
        assert [p.name for p in (data / "layers").iterdir() if p.name != "tmp"] == []
        assert list((data / "layers" / "tmp").glob("*")) == []
        assert list((data / "content" / "sha256").glob("*")) == []
        assert list((data / "content" / "ingest").glob("*")) == []
        assert "consistent" in wharf(running, "system", "check")


# --- logs --------------------------------------------------------------------------------------


def test_log_opts_cap_a_container_s_log(daemon: Daemon) -> None:
    script = "i=0; while [ $i -lt 600 ]; do echo line-$i-abcdefghijklmnopqrstuvwxyz; " \
             "i=$((i+1)); done"
    cid = wharf(daemon, "run", "-d", "--log-opt", "max-size=4k", "--log-opt", "max-file=2",
                "busybox", "sh", "-c", script).strip()
    try:
        assert wharf(daemon, "wait", cid).strip() == "0"
        cdir = daemon.data_root / "containers" / cid
        files = {(p.stat().st_ino, p.stat().st_size) for p in cdir.glob("ctr.log*")}
        assert (cdir / "ctr.log").stat().st_size <= 4000
        # the live file and one kept (plus, until the keeper's next look, the file conmon
        # has just replaced)
        assert sum(size for _, size in files) <= 3 * 4000, files
        out = wharf(daemon, "logs", cid).splitlines()
        assert out[-1] == "line-599-abcdefghijklmnopqrstuvwxyz"
        assert len(out) < 600
    finally:
        wharf(daemon, "rm", "-f", cid)


def test_a_bad_log_opt_fails_create(daemon: Daemon) -> None:
    before = wharf(daemon, "ps", "-aq")
    result = wharf_cli(daemon, "create", "--log-opt", "max-size=0", "busybox", check=False)
    assert result.returncode != 0
    assert "max-size must be a positive number" in result.stderr
    assert wharf(daemon, "ps", "-aq") == before
