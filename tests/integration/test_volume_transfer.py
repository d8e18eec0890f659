"""Volume export and import for real: a wharfd with busybox from the session registry, the wharf
CLI and the raw API (``GET /volumes/{name}/export``, ``POST /volumes/{name}/import``).

A volume written by a container is exported, imported into another volume and exported again:
the two archives match entry by entry (names, types, modes, owners, times, links, content) and a
container sees the same files. Unsafe archives are refused whole with 400 and write nothing, a
missing volume is 404 and a tmpfs volume 400. Every test removes the volumes it made; its
containers run with ``--rm``; host files live in tmp_path.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon_fixture import Daemon, UnixConnection, busybox_daemon
from tests.integration.conftest import SeededRegistry

pytestmark = [pytest.mark.integration]
WHARF = str(Path(sys.executable).parent / "wharf")
TAR = {"Content-Type": "application/x-tar"}
# The source volume's content: a file and a hard link to it, a subdir, symlinks (one pointing
# out of the volume: kept as a link, never followed), a private file of another owner, a FIFO,
# and a root of its own owner and mode (a database's data dir).
WRITE = ("echo hello > /data/file && ln /data/file /data/hard && mkdir -p /data/dir/sub"
         " && echo deep > /data/dir/sub/y && ln -s file /data/link"
         " && ln -s /etc/passwd /data/abslink && echo secret > /data/private"
         " && chown 1234:4321 /data/private && chmod 600 /data/private && mkfifo /data/fifo"
         " && chown 999:999 /data && chmod 750 /data")
CHECK = ("cat /data/file /data/dir/sub/y && readlink /data/link && readlink /data/abslink"
         " && stat -c '%n %u:%g %a %F' /data /data/private /data/fifo"
         " && stat -c %h /data/file && ls /data")


@pytest.fixture(scope="module")
def daemon(seeded_registry: SeededRegistry, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Daemon]:
    base = tmp_path_factory.mktemp("wharfd-volxfer")
    with busybox_daemon(base, seeded_registry.registry.url) as running:
        yield running


@pytest.fixture
def volumes(daemon: Daemon) -> Iterator[list[str]]:
    """Volume names to remove after the test."""
    made: list[str] = []
    yield made
    for name in made:
        daemon.request("DELETE", f"/volumes/{name}?force=1")


def wharf(daemon: Daemon, *args: str, stdin: bytes | None = None
          ) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHARF_")}
    env["WHARF_CONFIG"] = str(daemon.run_dir / "wharf-config")
    return subprocess.run([WHARF, "-H", daemon.host, *args], capture_output=True, timeout=60,
                          check=False, env=env, input=stdin)


def ok(result: subprocess.CompletedProcess[bytes]) -> str:
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def create(daemon: Daemon, volumes: list[str], prefix: str,
           options: dict[str, str] | None = None) -> tuple[str, Path]:
    """A new volume (removed after the test): its name and its data directory."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    volumes.append(name)
    status, reply = daemon.request("POST", "/volumes/create", json.dumps(
        {"Name": name, "DriverOpts": options or {}}).encode(),
        {"Content-Type": "application/json"})
    assert status == 201, reply
    return name, Path(json.loads(reply)["Mountpoint"])


def describe(archive: bytes) -> list[tuple[object, ...]]:
    """Each entry as (name, type, mode, uid, gid, mtime, link, content digest)."""
    out: list[tuple[object, ...]] = []
    with tarfile.open(fileobj=io.BytesIO(archive)) as tf:
        for m in tf:
            body = tf.extractfile(m) if m.isreg() else None
            digest = hashlib.sha256(body.read()).hexdigest() if body else ""
            out.append((m.name, m.type, m.mode, m.uid, m.gid, round(m.mtime, 3), m.linkname,
                        digest))
    return out


def tar_of(*entries: tuple[str, bytes, str]) -> bytes:
    """A tar of (name, type, link target) entries; regular files hold ``bad``."""
    body = io.BytesIO()
    with tarfile.open(fileobj=body, mode="w") as tf:
        for name, kind, link in entries:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, link
            info.size = 3 if kind == tarfile.REGTYPE else 0
            tf.addfile(info, io.BytesIO(b"bad") if info.size else None)
    return body.getvalue()


def one_entry_tar(name: str) -> bytes:
    return tar_of((name, tarfile.REGTYPE, ""))


def test_a_volume_round_trips_through_export_and_import(daemon: Daemon, volumes: list[str],
                                                        tmp_path: Path) -> None:
    a, _ = create(daemon, volumes, "xfer-a")
    b, b_data = create(daemon, volumes, "xfer-b")
    ok(wharf(daemon, "run", "--rm", "-v", f"{a}:/data", "busybox", "sh", "-c", WRITE))
    ok(wharf(daemon, "run", "--rm", "-v", f"{b}:/data", "busybox", "sh", "-c",
             "echo old > /data/file && echo kept > /data/keep"))
    ok(wharf(daemon, "volume", "export", "-o", str(tmp_path / "a.tar"), a))
    exported = (tmp_path / "a.tar").read_bytes()
    names = [entry[0] for entry in describe(exported)]
    assert names == [".", "abslink", "dir", "dir/sub", "dir/sub/y", "fifo", "file", "hard",
                     "link", "private"]  # the root ("./") first, then relative names, sorted
    ok(wharf(daemon, "volume", "import", b, "-", stdin=exported))
    status, again = daemon.request("GET", f"/volumes/{b}/export")
    assert status == 200
    assert [e for e in describe(again) if e[0] != "keep"] == describe(exported)
    assert (b_data / "keep").read_text() == "kept\n"  # merged: what the archive lacks stays
    assert ok(wharf(daemon, "run", "--rm", "-v", f"{b}:/data", "busybox", "sh", "-c",
                    CHECK)).splitlines() == [
        "hello", "deep", "file", "/etc/passwd", "/data 999:999 750 directory",
        "/data/private 1234:4321 600 regular file", "/data/fifo 0:0 644 fifo", "2",
        "abslink", "dir", "fifo", "file", "hard", "keep", "link", "private"]


def test_export_replies_a_tar_and_the_cli_refuses_nothing_else(daemon: Daemon,
                                                               volumes: list[str]) -> None:
    name, data = create(daemon, volumes, "xfer-head")
    (data / "x").write_text("x\n")
    conn = UnixConnection(daemon.socket)
    try:
        conn.request("GET", f"/v1.41/volumes/{name}/export")
        reply = conn.getresponse()
        body = reply.read()
    finally:
        conn.close()
    assert reply.status == 200 and reply.getheader("Content-Type") == "application/x-tar"
    assert [e[0] for e in describe(body)] == [".", "x"]
    piped = wharf(daemon, "volume", "export", name)
    assert piped.returncode == 0 and piped.stdout == body


def test_unsafe_archives_are_refused_whole(daemon: Daemon, volumes: list[str],
                                           tmp_path: Path) -> None:
    name, data = create(daemon, volumes, "xfer-bad")
    escape = tar_of(("link", tarfile.SYMTYPE, "/"), (f"link{tmp_path}/evil", tarfile.REGTYPE, ""))
    cases = {
        "'..' component": one_entry_tar("../evil"),
        "goes through the symlink 'link'": escape,
        "is a hardlink to '/etc/passwd'": tar_of(("hl", tarfile.LNKTYPE, "/etc/passwd")),
        "not a valid tar archive": b"not a tar" * 200,
        "compressed": gzip.compress(one_entry_tar("fine")),
    }
    for why, body in cases.items():
        status, reply = daemon.request("POST", f"/volumes/{name}/import", body, TAR)
        assert status == 400, (why, reply)
        assert why in json.loads(reply)["message"], reply
    assert list(data.iterdir()) == []
    assert sorted(p.name for p in data.parent.iterdir()) == ["_data"]
    assert not (tmp_path / "evil").exists()
    assert not list((daemon.data_root / "tmp").glob("volume-*"))  # no spool left behind
    refused = wharf(daemon, "volume", "import", name, "-", stdin=one_entry_tar("a/../../x"))
    assert refused.returncode == 1 and b"'..' component" in refused.stderr


def test_absolute_names_and_the_volumes_own_symlinks_stay_inside(daemon: Daemon,
                                                                 volumes: list[str]) -> None:
    name, data = create(daemon, volumes, "xfer-abs")
    (data / "up").symlink_to("/")  # the volume's own link: "/" is the volume root in the helper
    marker = f"wharf-xfer-{uuid.uuid4().hex[:8]}"
    for entry in (f"/{marker}/x", f"up/{marker}-y"):
        status, reply = daemon.request("POST", f"/volumes/{name}/import", one_entry_tar(entry),
                                       TAR)
        assert status == 204, reply
    assert (data / marker / "x").read_bytes() == b"bad"
    assert (data / f"{marker}-y").read_bytes() == b"bad"
    assert not Path(f"/{marker}").exists() and not Path(f"/{marker}-y").exists()


def test_a_missing_volume_is_404(daemon: Daemon) -> None:
    for method, path, body in (("GET", "/volumes/xfer-none/export", None),
                               ("POST", "/volumes/xfer-none/import", one_entry_tar("f"))):
        status, reply = daemon.request(method, path, body, TAR)
        assert status == 404, reply
        assert json.loads(reply)["message"] == "get xfer-none: no such volume"


def test_a_tmpfs_volume_is_refused_with_400(daemon: Daemon, volumes: list[str],
                                            tmp_path: Path) -> None:
    name, _ = create(daemon, volumes, "xfer-mem",
                     {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"})
    for method, path, body in (("GET", f"/volumes/{name}/export", None),
                               ("POST", f"/volumes/{name}/import", one_entry_tar("f"))):
        status, reply = daemon.request(method, path, body, TAR)
        assert status == 400, reply
        assert f"volume {name} is mounted from tmpfs (type=tmpfs)" in json.loads(reply)["message"]
    refused = wharf(daemon, "volume", "export", "-o", str(tmp_path / "mem.tar"), name)
    assert refused.returncode == 1 and b"only plain local volumes" in refused.stderr
    assert not (tmp_path / "mem.tar").exists()
