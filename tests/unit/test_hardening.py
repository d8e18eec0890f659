"""Issue #12, daemon side: validators, the TCP and socket rules, file modes, the decompression
limit (layers and build contexts), and the pid and root checks of ``docker cp``.

Runs as root, like the layer tests (chmod checks, confined tar, /proc of other processes).
"""

from __future__ import annotations

import gzip
import io
import os
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest
from pydantic import ValidationError

from wharf import reference
from wharf.daemon.core import dataroot
from wharf.daemon.core.build.context import ContextLimits, receive_context
from wharf.daemon.core.containers import archive, names
from wharf.daemon.core.images.compression import (
    TAR_GZIP,
    InflateLimit,
    InflateLimitExceeded,
    decompressed,
)
from wharf.daemon.core.images.layers import LayerStore
from wharf.daemon.core.runtime import procroot, users
from wharf.daemon.core.state import StateStore
from wharf.daemon.settings import DaemonSettings
from wharf.errors import InvalidArgument

CHAIN = "sha256:" + "ab" * 32


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


# --- names and tags --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["web\n", "/web\n", "web\nx", "wéb"])
def test_a_container_name_with_a_newline_or_non_ascii_is_refused(name: str) -> None:
    with pytest.raises(InvalidArgument, match="Invalid container name"):
        names.validate(name)


def test_a_valid_container_name_passes() -> None:
    assert names.validate("/web-1.a_b") == "web-1.a_b"


@pytest.mark.parametrize("text", ["alpine:latest\n", "alpine\n", "alpine:tä", "alpine:\uff561",
                                  "alpine:\u0661\u0662", "alpine@sha256:" + "a" * 64 + "\n"])
def test_a_reference_with_a_trailing_newline_or_a_non_ascii_tag_is_refused(text: str) -> None:
    with pytest.raises(InvalidArgument):
        reference.parse(text)


def test_tags_are_docker_s_ascii_grammar() -> None:
    assert reference.parse("alpine:V1_2.3-x").tag == "V1_2.3-x"
    ref = reference.parse("alpine")
    assert ref.with_tag("a" * 128).tag == "a" * 128
    for bad in ("tä", "v1\n", ".v1", "a" * 129):
        with pytest.raises(InvalidArgument, match="invalid tag format"):
            ref.with_tag(bad)


# --- TCP, TLS and the socket -----------------------------------------------------------------


def test_tcp_with_tls_but_without_tlsverify_is_refused() -> None:
    with pytest.raises(ValidationError, match="with --tls but without --tlsverify"):
        DaemonSettings(hosts=["tcp://127.0.0.1:23760"], tls=True)
    assert DaemonSettings(hosts=["tcp://127.0.0.1:23760"], tlsverify=True).tlsverify
    assert DaemonSettings(hosts=["unix:///tmp/x.sock"], tls=True).tls  # no TCP: nothing open


@pytest.mark.parametrize("value", [0o777, 0o666, 0o644, 0o770, "0777"])
def test_a_socket_mode_other_than_0600_or_0660_is_refused(value: int | str) -> None:
    with pytest.raises(ValidationError, match=r"use 0600 .* or 0660"):
        DaemonSettings(socket_mode=value)


def test_socket_modes_0600_and_0660_are_accepted_also_as_octal_text() -> None:
    assert DaemonSettings(socket_mode=0o600).socket_mode == 0o600
    assert DaemonSettings(socket_mode="0660").socket_mode == 0o660


# --- modes of the data root and state.db ------------------------------------------------------


def test_the_data_root_is_created_with_modes_no_other_user_can_read(tmp_path: Path) -> None:
    root = tmp_path / "data"
    dataroot.secure(root)
    assert mode(root) == 0o711
    assert mode(root / "containers") == 0o711
    for name in ("content", "layers", "volumes", "tmp", "builds", "seccomp"):
        assert mode(root / name) == 0o700, name


def test_an_older_install_gets_its_modes_fixed(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "containers" / "c1" / "rootfs").mkdir(parents=True)
    (root / "layers").mkdir()
    for path in (root, root / "containers", root / "containers" / "c1", root / "layers"):
        path.chmod(0o755)
    dataroot.secure(root)
    assert (mode(root), mode(root / "containers")) == (0o711, 0o711)
    assert mode(root / "containers" / "c1") == 0o700
    assert mode(root / "layers") == 0o700


def test_state_db_and_its_wal_and_shm_are_0600_new_or_old(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = StateStore(path)
    store.open()
    store.close()
    assert mode(path) == 0o600
    for name in ("state.db", "state.db-wal", "state.db-shm"):
        if (tmp_path / name).exists():
            (tmp_path / name).chmod(0o644)
    store.open()
    try:
        for name in ("state.db", "state.db-wal", "state.db-shm"):
            assert mode(tmp_path / name) == 0o600, name
    finally:
        store.close()


# --- the decompression limit -------------------------------------------------------------------


def test_the_limit_is_8_times_the_compressed_size_or_10_gib_whichever_is_larger() -> None:
    rule = InflateLimit()
    assert rule.bound(1 << 20) == 10 << 30
    assert rule.bound(2 << 30) == 16 << 30
    assert InflateLimit(4, 1 << 20).bound(1 << 20) == 4 << 20
    settings = DaemonSettings(layer_inflate_ratio=3, layer_inflate_min_bytes=5 << 20)
    assert settings.inflate_limit == InflateLimit(3, 5 << 20)
    assert DaemonSettings().inflate_limit == InflateLimit(8, 10 << 30)


def zeros_tar(size: int) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo("zeros")
        info.size = size
        tar.addfile(info, io.BytesIO(bytes(size)))
    return out.getvalue()


def test_decompression_stops_at_the_limit(tmp_path: Path) -> None:
    blob = gzip.compress(bytes(8 << 20))
    with pytest.raises(InflateLimitExceeded, match=r"refusing to decompress past 2 MiB"):
        for _ in decompressed(io.BytesIO(blob), "gzip", "bomb", 2 << 20):
            pass
    assert sum(map(len, decompressed(io.BytesIO(blob), "gzip", "ok", 8 << 20))) == 8 << 20


def test_a_layer_that_inflates_past_the_limit_leaves_nothing(tmp_path: Path) -> None:
    blob = tmp_path / "bomb.gz"
    blob.write_bytes(gzip.compress(zeros_tar(6 << 20)))
    store = LayerStore(tmp_path / "layers", InflateLimit(8, 1 << 20))
    with pytest.raises(InflateLimitExceeded, match="decompression bomb"):
        store.unpack(CHAIN, blob, TAR_GZIP, None)
    assert not store.has(CHAIN)
    assert [p.name for p in (tmp_path / "layers").iterdir()] == ["tmp"]
    assert list((tmp_path / "layers" / "tmp").iterdir()) == []
    roomy = LayerStore(tmp_path / "roomy", InflateLimit(8, 16 << 20))
    assert roomy.unpack(CHAIN, blob, TAR_GZIP, None).size == 6 << 20


def test_a_build_context_follows_the_same_rule(tmp_path: Path) -> None:
    body = gzip.compress(zeros_tar(6 << 20))
    limits = ContextLimits(max_bytes=64 << 20, inflate=InflateLimit(8, 1 << 20))
    with pytest.raises(InvalidArgument, match="build context inflates past the limit"):
        receive_context(io.BytesIO(body), tmp_path / "ctx", limits)
    assert not (tmp_path / "ctx").exists()
    assert list(tmp_path.iterdir()) == []
    roomy = ContextLimits(max_bytes=64 << 20)
    assert receive_context(io.BytesIO(body), tmp_path / "ctx", roomy).size == 6 << 20


# --- pids and roots ---------------------------------------------------------------------------


def test_a_pid_outside_the_container_s_cgroup_gives_no_root() -> None:
    assert procroot.open_root(os.getpid(), "f" * 64) is None
    assert procroot.open_root(0, "f" * 64) is None
    dead = subprocess.Popen(["true"])
    dead.wait()
    assert procroot.open_root(dead.pid, "f" * 64) is None


def test_a_pid_in_the_container_s_cgroup_gives_its_root(monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    monkeypatch.setattr(procroot, "in_container", lambda pid, cid: pid == os.getpid())
    fd = procroot.open_root(os.getpid(), "f" * 64)
    assert fd is not None
    try:
        root = procroot.fd_path(fd)
        assert procroot.inherited(root) == (fd,)
        assert os.path.samefile(root, "/")
    finally:
        os.close(fd)
    assert procroot.inherited(Path("/var/lib/wharf/x")) == ()


def test_users_are_read_inside_a_proc_root_not_in_the_host_s(tmp_path: Path) -> None:
    """/proc/<pid>/root resolves to "/" for Path.resolve: the old check read the host's
    files through a link. The files are read with the root as "/" now."""
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc" / "passwd").symlink_to("/etc/hostpasswd")
    (rootfs / "etc" / "hostpasswd").write_text("app:x:1234:1234::/home/app:/bin/sh\n")
    (rootfs / "etc" / "group").symlink_to("../../../../../../../etc/group")
    fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY)
    try:
        ids = users.resolve_user(procroot.fd_path(fd), "app")
    finally:
        os.close(fd)
    assert (ids.uid, ids.gid) == (1234, 1234)
    with pytest.raises(Exception, match="unable to find user root"):
        users.resolve_user(rootfs, "root")  # the host's root is not the container's


# --- the cp helper ----------------------------------------------------------------------------


def test_the_cp_helper_can_load_no_module_from_files_after_its_prelude(tmp_path: Path) -> None:
    script = "import sys\ntry:\n    import csv\nexcept ImportError as e:\n" \
             "    sys.stdout.write('refused ' + type(e).__name__)\n"
    proc = archive.start_helper(tmp_path, "get", {}, stdin=subprocess.DEVNULL, script=script)
    out, _ = proc.communicate(timeout=30)
    assert out == b"refused ModuleNotFoundError"


def test_the_cp_helper_passes_filter_explicitly_where_tarfile_has_filters() -> None:
    assert 'src.extract(member, ".", set_attrs=True, numeric_owner=True, **trusted)' in \
        archive._HELPER
    assert '"filter": "fully_trusted"' in archive._HELPER
