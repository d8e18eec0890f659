"""cp and diff in the daemon's core: the path-stat header, symlinks resolved inside the container
root, and overlay upper dirs read as Docker's changes (plain temp dirs, no daemon, no mount)."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from wharf.daemon.core.containers import archive, changes
from wharf.daemon.core.containers.changes import Change, Kind, container_changes
from wharf.errors import Internal, InvalidArgument, NotFound

# -- the X-Docker-Container-Path-Stat header ------------------------------------------------------


def test_go_file_mode_bits_match_docker() -> None:
    assert archive.go_file_mode(stat.S_IFDIR | 0o755) == 2147484141  # 1<<31 | 0o755
    assert archive.go_file_mode(stat.S_IFREG | 0o644) == 420
    assert archive.go_file_mode(stat.S_IFLNK | 0o777) == (1 << 27) | 0o777
    assert archive.go_file_mode(stat.S_IFCHR | 0o600) == (1 << 26) | (1 << 21) | 0o600
    assert archive.go_file_mode(stat.S_IFREG | stat.S_ISUID | 0o755) == (1 << 23) | 0o755
    sticky = archive.go_file_mode(stat.S_IFDIR | stat.S_ISVTX | 0o777)
    assert sticky == (1 << 31) | (1 << 20) | 0o777


def test_go_time_is_rfc3339_nano_without_trailing_zeros() -> None:
    assert archive.go_time(1_795_827_613_472_783_669) == "2026-11-28T01:00:13.472783669Z"
    assert archive.go_time(1_795_827_613_500_000_000) == "2026-11-28T01:00:13.5Z"
    assert archive.go_time(1_795_827_613_000_000_000) == "2026-11-28T01:00:13Z"


def test_header_is_base64_json_in_dockers_field_order() -> None:
    info = archive.PathStat("file.txt", 5, 420, "2026-11-28T01:06:53.472783669Z")
    raw = base64.b64decode(info.header()).decode()
    assert raw == ('{"name":"file.txt","size":5,"mode":420,'
                   '"mtime":"2026-11-28T01:06:53.472783669Z","linkTarget":""}')
    assert json.loads(raw)["linkTarget"] == ""


# -- paths inside the container root -------------------------------------------------------------


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "rootfs"
    (r / "etc").mkdir(parents=True)
    (r / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (r / "data").mkdir()
    (r / "abs").symlink_to("/etc")  # absolute: must mean the container's /etc
    (r / "rel").symlink_to("../../../etc")  # climbs above the root: clamped at /
    (r / "data/up").symlink_to("..")
    (r / "escape").symlink_to("/../../..")
    (r / "loop").symlink_to("loop")
    return r


def test_cp_paths_resolve_inside_the_root(root: Path) -> None:
    """cp resolves with ``core.rootpath`` (tests/unit/test_rootpath.py); the parent only,
    unless a trailing ``/`` asks for what a link points to."""
    assert archive.resolve_path(root, "/rel/passwd") == ("/rel/passwd", "/etc/passwd")
    assert archive.resolve_path(root, "/escape/etc/") == ("/escape/etc/", "/etc")
    assert archive.resolve_path(root, "/data/up/abs") == ("/data/up/abs", "/abs")
    assert archive.resolve_path(root, "/missing/x") == ("/missing/x", "/missing/x")
    with pytest.raises(InvalidArgument, match="too many levels"):
        archive.resolve_path(root, "/loop/x")


def test_abs_path_keeps_trailing_slash_and_dot() -> None:
    assert archive.abs_path("etc//passwd") == "/etc/passwd"
    assert archive.abs_path("/etc/") == "/etc/"
    assert archive.abs_path("/etc/.") == "/etc/."
    assert archive.abs_path("/../etc") == "/etc"
    assert archive.abs_path("/") == "/"
    with pytest.raises(InvalidArgument):
        archive.abs_path("/a\x00b")


def test_stat_does_not_follow_the_last_link_but_reports_its_target(root: Path) -> None:
    info, resolved = archive.stat_path(root, "/abs")
    assert resolved == "/abs"
    assert info.mode & archive.GO_SYMLINK and info.link_target == "/etc"
    assert info.name == "abs"
    followed, resolved = archive.stat_path(root, "/abs/")
    assert resolved == "/etc" and followed.is_dir and followed.name == "abs"
    content, _ = archive.stat_path(root, "/abs/.")
    assert content.is_dir and content.name == "."
    (root / "etc/passwd").chmod(0o640)
    file, resolved = archive.stat_path(root, "/rel/passwd")
    assert resolved == "/etc/passwd" and file.size == 26 and file.mode == 0o640


def test_stat_of_a_missing_path_is_not_found(root: Path) -> None:
    with pytest.raises(NotFound, match="Could not find the file /etc/nope in container c1"):
        archive.stat_path(root, "/etc/nope", "c1")
    with pytest.raises(NotFound):
        archive.stat_path(root, "/etc/passwd/x")


# -- diff over an upper dir ----------------------------------------------------------------------


def _whiteout(path: Path) -> None:
    os.mknod(path, stat.S_IFCHR | 0o000, os.makedev(0, 0))


@pytest.fixture
def layers(tmp_path: Path) -> tuple[Path, Path]:
    if os.geteuid() != 0:
        pytest.skip("whiteouts are char devices: mknod needs root")
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    for d in ("etc", "bin", "var/lib", "tmp"):
        (lower / d).mkdir(parents=True)
    for f in ("etc/passwd", "etc/group", "bin/cat", "var/lib/a", "var/lib/b"):
        (lower / f).write_text(f)
    upper.mkdir()
    return lower, upper


def _copy_up_dir(lower: Path, upper: Path, rel: str) -> None:
    """What overlayfs does before a change inside ``rel``: same mode and mtime (call it
    again, deepest first, after creating entries in it)."""
    (upper / rel).mkdir(parents=True, exist_ok=True)
    st = os.stat(lower / rel)
    os.chmod(upper / rel, stat.S_IMODE(st.st_mode))
    os.utime(upper / rel, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_diff_reports_added_changed_and_whiteouts_as_deleted(layers: tuple[Path, Path]) -> None:
    lower, upper = layers
    (upper / "new").write_text("x")
    (upper / "etc").mkdir()
    _whiteout(upper / "etc/group")
    (upper / "etc/passwd").write_text("changed")
    (upper / "newdir").mkdir()
    (upper / "newdir/f").write_text("f")
    found = container_changes(upper, [lower])
    assert [(c.kind.letter, c.path) for c in found] == [
        ("C", "/etc"), ("D", "/etc/group"), ("C", "/etc/passwd"), ("A", "/new"),
        ("A", "/newdir"), ("A", "/newdir/f")]
    assert Change("/new", Kind.ADDED).docker() == {"Path": "/new", "Kind": 1}


def test_an_unchanged_parent_dir_is_reported_once_as_changed(layers: tuple[Path, Path]) -> None:
    lower, upper = layers
    (upper / "bin").mkdir()
    _whiteout(upper / "bin/cat")
    (upper / "bin/new").write_text("n")
    (upper / "var/lib").mkdir(parents=True)
    (upper / "var/lib/a").write_text("modified")
    for rel in ("bin", "var/lib", "var"):  # the entries made above changed their mtimes
        _copy_up_dir(lower, upper, rel)
    found = [(c.kind.letter, c.path) for c in container_changes(upper, [lower])]
    # bin is a copied-up dir identical to the image's: reported only as the parent of A/D;
    # var and var/lib hold only a modification: not reported, like Docker.
    assert found == [("C", "/bin"), ("D", "/bin/cat"), ("A", "/bin/new"),
                     ("C", "/var/lib/a")]


def test_an_opaque_dir_deletes_what_the_image_had_in_it(layers: tuple[Path, Path]) -> None:
    lower, upper = layers
    (upper / "var/lib").mkdir(parents=True)
    try:
        os.setxattr(upper / "var/lib", changes.OPAQUE_XATTR, b"y")
    except OSError as exc:
        pytest.skip(f"no trusted xattrs here: {exc}")
    (upper / "var/lib/a").write_text("again")
    found = [(c.kind.letter, c.path) for c in container_changes(upper, [lower])]
    assert ("D", "/var/lib/b") in found and ("C", "/var/lib/a") not in found
    assert ("A", "/var/lib/a") in found and ("C", "/var/lib") in found


def test_lower_layers_honour_their_own_whiteouts(layers: tuple[Path, Path],
                                                 tmp_path: Path) -> None:
    lower, upper = layers
    top = tmp_path / "top"
    (top / "etc").mkdir(parents=True)
    _whiteout(top / "etc/group")  # the image itself deleted /etc/group in a later layer
    (upper / "etc").mkdir()
    (upper / "etc/group").write_text("new")
    found = [(c.kind.letter, c.path) for c in container_changes(upper, [top, lower])]
    assert ("A", "/etc/group") in found


def test_runtime_mount_points_and_volume_targets_are_not_changes(
        layers: tuple[Path, Path]) -> None:
    lower, upper = layers
    for d in ("dev", "proc", "sys", "data"):
        (upper / d).mkdir()
    _copy_up_dir(lower, upper, "etc")
    os.utime(upper / "etc")  # creating the mount point changed the dir's mtime
    for f in ("hosts", "hostname", "resolv.conf"):
        (upper / "etc" / f).touch()
    assert container_changes(upper, [lower], mount_points=["/data/"]) == []
    (upper / "etc/extra").touch()
    found = [(c.kind.letter, c.path) for c in container_changes(upper, [lower], ["/data"])]
    assert found == [("C", "/etc"), ("A", "/etc/extra")]


def test_a_container_that_never_started_has_no_changes(tmp_path: Path) -> None:
    assert container_changes(tmp_path / "missing-upper", [tmp_path]) == []


def test_a_helper_that_fails_after_its_output_began_cuts_the_stream() -> None:
    """Its output so far is passed on, then Internal: the API ends the reply uncleanly instead
    of passing a broken tar off as a whole one."""
    proc = subprocess.Popen(["sh", "-c", "printf data; echo 'disk on fire' >&2; exit 1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    chunks = archive.stream_output(proc, "c0ffee")
    assert next(chunks) == b"data"
    with pytest.raises(Internal, match="archive of c0ffee failed: disk on fire"):
        next(chunks)


def test_a_helper_that_succeeds_ends_the_stream() -> None:
    proc = subprocess.Popen(["sh", "-c", "printf data"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert list(archive.stream_output(proc, "c0ffee")) == [b"data"]
