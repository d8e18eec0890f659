"""``wharf cp`` and ``wharf diff`` against a fake daemon: argument rules, Docker's path rules,
the requests sent, and what lands on the host."""

from __future__ import annotations

import base64
import io
import json
import tarfile
from pathlib import Path

import httpx
import pytest

from tests.unit.test_cli_containers import Daemon, run
from wharf.cli.commands.copy import (
    Target,
    plan_copy,
    rebase_name,
    renamed,
    split_cp_arg,
    split_dir_entry,
)
from wharf.cli.failure import CLIError

DIR_MODE = (1 << 31) | 0o755


@pytest.fixture
def daemon() -> Daemon:
    return Daemon()


def _stat(name: str, mode: int, link: str = "") -> str:
    body = {"name": name, "size": 0, "mode": mode, "mtime": "2026-11-28T01:06:53Z",
            "linkTarget": link}
    return base64.b64encode(json.dumps(body).encode()).decode()


def _tar(entries: dict[str, bytes | None]) -> bytes:
    """name -> content (None: a directory)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tf:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(info)
            else:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return out.getvalue()


# -- pure rules ----------------------------------------------------------------------------------

def test_split_cp_arg_like_docker() -> None:
    assert split_cp_arg("c1:/etc/passwd") == ("c1", "/etc/passwd")
    assert split_cp_arg("c1:") == ("c1", "")
    assert split_cp_arg("/abs:with:colon") == ("", "/abs:with:colon")
    assert split_cp_arg("./rel:colon") == ("", "./rel:colon")
    assert split_cp_arg("file") == ("", "file")
    assert split_cp_arg("-") == ("", "-")


def test_dir_entry_and_rebase_names() -> None:
    assert split_dir_entry("/a/b/") == ("/a", "b")
    assert split_dir_entry("/a/b/.") == ("/a/b", ".")
    assert split_dir_entry("b") == (".", "b")
    assert rebase_name("/lnk", "/etc") == ("/etc", "lnk")
    assert rebase_name("/lnk/.", "/etc") == ("/etc/.", "")
    assert renamed("etc/passwd", "etc", "out") == "out/passwd"
    assert renamed("./x", ".", "dst") == "dst/x"
    assert renamed("other/x", "etc", "out") == "other/x"


def test_plan_copy_covers_dockers_cases() -> None:
    # into an existing dir: the archive lands as it is
    assert plan_copy("/etc", True, "", "/tmp/d", True, True) == Target("/tmp/d", "etc", "etc")
    # a dir to a new name: extract in the parent, renamed
    assert plan_copy("/etc", True, "", "/tmp/new", False, False) == Target("/tmp", "etc", "new")
    # the content of a dir (SRC/.) to a new name
    assert plan_copy("/etc/.", True, "", "/tmp/new", False, False) == Target("/tmp", ".", "new")
    # a file over an existing file: renamed to it
    assert plan_copy("/etc/passwd", False, "", "/tmp/f", True, False) == Target("/tmp", "passwd",
                                                                              "f")
    with pytest.raises(CLIError, match="cannot copy directory"):
        plan_copy("/etc", True, "", "/tmp/f", True, False)
    with pytest.raises(CLIError, match="no such directory"):
        plan_copy("/etc/passwd", False, "", "/tmp/missing/", False, False)


# -- commands ------------------------------------------------------------------------------------

def test_cp_needs_exactly_one_container(daemon: Daemon) -> None:
    both = run(daemon, "cp", "a:/x", "b:/y")
    assert both.exit_code == 1 and "copying between containers is not supported" in both.output
    none = run(daemon, "cp", "/x", "./y")
    assert none.exit_code == 1 and "must specify at least one container source" in none.output
    empty = run(daemon, "cp", "", "c:/y")
    assert empty.exit_code == 1 and "source can not be empty" in empty.output
    assert daemon.requests == []


def test_cp_out_of_a_container_renames_to_a_new_destination(daemon: Daemon,
                                                            tmp_path: Path) -> None:
    body = _tar({"etc": None, "etc/passwd": b"root\n", "etc/sub": None, "etc/sub/f": b"f"})
    daemon.route("GET", "/containers/c1/archive", lambda r: httpx.Response(
        200, content=body, headers={"X-Docker-Container-Path-Stat": _stat("etc", DIR_MODE)}))
    result = run(daemon, "cp", "c1:/etc", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert daemon.requests[0].url.params["path"] == "/etc"
    assert (tmp_path / "out/passwd").read_text() == "root\n"
    assert (tmp_path / "out/sub/f").read_text() == "f"


def test_cp_out_refuses_entries_that_leave_the_destination(daemon: Daemon,
                                                           tmp_path: Path) -> None:
    (tmp_path / "dst").mkdir()
    (tmp_path / "dst/link").symlink_to(tmp_path / "victim")
    (tmp_path / "victim").mkdir()
    for bad in ({"../escape": b"x"}, {"link/owned": b"x"}):
        daemon.route("GET", "/containers/c1/archive", lambda r, b=bad: httpx.Response(
            200, content=_tar(b), headers={"X-Docker-Container-Path-Stat": _stat("x", 0o644)}))
        result = run(daemon, "cp", "c1:/x", str(tmp_path / "dst"))
        assert result.exit_code == 1 and "refusing archive entry" in result.output
    assert not (tmp_path / "escape").exists() and list((tmp_path / "victim").iterdir()) == []


def test_cp_out_without_the_stat_header_fails_like_docker(daemon: Daemon,
                                                          tmp_path: Path) -> None:
    daemon.route("GET", "/containers/c1/archive", lambda r: httpx.Response(200, content=b""))
    result = run(daemon, "cp", "c1:/x", str(tmp_path))
    assert result.exit_code == 1 and "unable to decode container path stat header" in result.output


def test_cp_into_a_container_dir_sends_the_tar_with_dockers_params(daemon: Daemon,
                                                                   tmp_path: Path) -> None:
    (tmp_path / "hello.txt").write_text("hi\n")
    daemon.route("HEAD", "/containers/c1/archive", lambda r: httpx.Response(
        200, headers={"X-Docker-Container-Path-Stat": _stat("tmp", DIR_MODE)}))
    daemon.route("PUT", "/containers/c1/archive", 200)
    result = run(daemon, "cp", str(tmp_path / "hello.txt"), "c1:/tmp")
    assert result.exit_code == 0, result.output
    put = daemon.requests[-1]
    assert put.method == "PUT"
    assert dict(put.url.params) == {"path": "/tmp", "noOverwriteDirNonDir": "1",
                                    "copyUIDGID": "0"}
    with tarfile.open(fileobj=io.BytesIO(put.read())) as tf:
        member = tf.getmember("hello.txt")
        assert (member.uid, member.gid) == (0, 0)  # without -a the files belong to root


def test_cp_into_a_missing_path_extracts_in_its_parent_renamed(daemon: Daemon,
                                                               tmp_path: Path) -> None:
    (tmp_path / "hello.txt").write_text("hi\n")
    daemon.route("HEAD", "/containers/c1/archive", 404)
    daemon.route("PUT", "/containers/c1/archive", 200)
    result = run(daemon, "cp", "-a", str(tmp_path / "hello.txt"), "c1:/tmp/renamed")
    assert result.exit_code == 0, result.output
    put = daemon.requests[-1]
    assert put.url.params["path"] == "/tmp" and put.url.params["copyUIDGID"] == "1"
    with tarfile.open(fileobj=io.BytesIO(put.read())) as tf:
        assert tf.getnames() == ["renamed"]


def test_cp_from_stdin_needs_a_directory(daemon: Daemon) -> None:
    daemon.route("HEAD", "/containers/c1/archive", lambda r: httpx.Response(
        200, headers={"X-Docker-Container-Path-Stat": _stat("passwd", 0o644)}))
    result = run(daemon, "cp", "-", "c1:/etc/passwd", input=_tar({"x": b"x"}))
    assert result.exit_code == 1 and 'destination "c1:/etc/passwd" must be a directory' in (
        result.output)
    assert [r.method for r in daemon.requests] == ["HEAD"]


def test_diff_prints_kind_letters(daemon: Daemon) -> None:
    daemon.route("GET", "/containers/c1/changes", [
        {"Path": "/etc", "Kind": 0}, {"Path": "/etc/group", "Kind": 2},
        {"Path": "/new", "Kind": 1}])
    result = run(daemon, "diff", "c1")
    assert result.exit_code == 0, result.output
    assert result.stdout == "C /etc\nD /etc/group\nA /new\n"
    missing = run(daemon, "container", "diff", "nope")
    assert missing.exit_code == 1 and "No such container" in missing.output
