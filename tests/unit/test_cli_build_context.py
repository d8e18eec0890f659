"""The build context the CLI sends (``wharf.cli.buildcontext``): the archive of a directory as
the docker CLI (28) makes it, the Dockerfile from elsewhere, stdin and the errors raised before
anything is sent. The expected archives were checked against what ``docker build`` sent to a
capturing fake daemon for the same trees.

The round trip through the daemon's ``receive_context`` runs as root, like the layer tests.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import re
import socket
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard

from wharf.cli.buildcontext import Context, from_stream, is_archive, prepare
from wharf.cli.failure import CLIError
from wharf.daemon.core.build.context import apply_dockerignore, read_dockerfile, receive_context

RANDOM_NAME = re.compile(r"\.dockerfile\.[0-9a-f]{20}")
NO_STDIN = io.BytesIO(b"")


def tree(root: Path, files: dict[str, str]) -> Path:
    """Files (a trailing ``/`` makes a directory) under ``root``."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith("/"):
            path.mkdir(exist_ok=True)
        else:
            path.write_text(text)
    return root


def body(context: Context) -> bytes:
    return b"".join(context.body)


def members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        return tar.getmembers()


def names(data: bytes) -> list[str]:
    return [m.name + ("/" if m.isdir() else "") for m in members(data)]


def content(data: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        handle = tar.extractfile(name)
        assert handle is not None
        return handle.read()


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    root = tree(tmp_path / "ctx", {
        "Dockerfile": "FROM busybox\nCOPY . /ctx/\n",
        ".dockerignore": "skip\n!skip/keep\n*.md\nDockerfile\n",
        "README.md": "r", "skip/keep": "k", "skip/drop": "d", "sub/x": "x", "sub/b": "b",
        "a-b": "-", "empty/": ""})
    (root / "link").symlink_to("sub/x")
    os.link(root / "sub/x", root / "hard")
    (root / "sub/x").chmod(0o750)
    return root


def test_a_directory_is_sent_as_the_docker_cli_sends_it(ctx: Path) -> None:
    data = body(context := prepare(str(ctx), "", NO_STDIN))
    assert context.dockerfile == "Dockerfile"
    # byte order, depth first; no "./" entry (the docker CLI 28 sends none); the Dockerfile
    # and .dockerignore though excluded; an excluded directory opened for its exception
    # ("skip") is not an entry itself
    assert names(data) == [".dockerignore", "Dockerfile", "a-b", "empty/", "hard", "link",
                           "skip/keep", "sub/", "sub/b", "sub/x"]
    by_name = {m.name: m for m in members(data)}
    assert all((m.uid, m.gid, m.uname, m.gname) == (0, 0, "", "") for m in by_name.values())
    assert by_name["link"].issym() and by_name["link"].linkname == "sub/x"
    assert by_name["hard"].isreg() and by_name["hard"].size == 1  # the first name seen
    assert by_name["sub/x"].islnk() and by_name["sub/x"].linkname == "hard"
    assert by_name["sub/x"].mode == 0o750
    assert int(by_name["a-b"].mtime) == int((ctx / "a-b").stat().st_mtime)
    assert content(data, "Dockerfile") == b"FROM busybox\nCOPY . /ctx/\n"
    # Go's tar writer: two zero blocks, no padding to a 10 KiB record
    assert len(data) % 512 == 0 and data.endswith(bytes(1024)) and not data.endswith(bytes(1536))


def test_sockets_are_left_out_and_fifos_sent(tmp_path: Path) -> None:
    root = tree(tmp_path / "ctx", {"Dockerfile": "FROM busybox\n"})
    os.mkfifo(root / "fifo")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(root / "sock"))
        data = body(prepare(str(root), "", NO_STDIN))
    assert names(data) == ["Dockerfile", "fifo"]
    assert members(data)[1].isfifo()


def test_a_dockerfile_outside_goes_in_under_a_random_name(ctx: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    (tmp_path / "Outside.df").write_text("FROM outside\n")
    monkeypatch.chdir(tmp_path)  # -f is relative to the working directory, not the context
    context = prepare(str(ctx), "Outside.df", NO_STDIN)
    assert RANDOM_NAME.fullmatch(context.dockerfile)
    data = body(context)
    # the context's Dockerfile stays excluded (it is not the one used); the random name is
    # added last and appended to the .dockerignore, which keeps its header
    assert names(data) == [".dockerignore", "a-b", "empty/", "hard", "link", "skip/keep",
                           "sub/", "sub/b", "sub/x", context.dockerfile]
    assert content(data, context.dockerfile) == b"FROM outside\n"
    assert content(data, ".dockerignore") == (
        f"skip\n!skip/keep\n*.md\nDockerfile\n\n{context.dockerfile}\n".encode())
    assert members(data)[-1].mode == 0o600


def test_a_dockerfile_from_stdin_makes_a_dockerignore_when_there_is_none(tmp_path: Path
                                                                        ) -> None:
    root = tree(tmp_path / "ctx", {"a": "a"})
    context = prepare(str(root), "-", io.BytesIO(b"FROM stdin\n"))
    data = body(context)
    assert names(data) == ["a", context.dockerfile, ".dockerignore"]
    assert content(data, ".dockerignore") == f".dockerignore\n{context.dockerfile}\n".encode()
    assert content(data, context.dockerfile) == b"FROM stdin\n"


def test_a_dockerfile_alone_on_stdin_is_a_context_of_its_own() -> None:
    context = prepare("-", "ignored.df", io.BytesIO(b"FROM busybox\nRUN true\n"))
    data = body(context)
    assert context.dockerfile == "Dockerfile"
    assert names(data) == ["Dockerfile"] and len(data) == 2048
    assert members(data)[0].mode == 0o644


@pytest.mark.parametrize("compress", [lambda raw: raw, gzip.compress, bz2.compress,
                                      lzma.compress, zstandard.ZstdCompressor().compress],
                         ids=["tar", "gzip", "bzip2", "xz", "zstd"])
def test_an_archive_on_stdin_is_sent_as_it_is(compress: Callable[[bytes], bytes]) -> None:
    archive = compress(_small_tar())
    context = prepare("-", "sub/Dockerfile", io.BytesIO(archive))
    assert body(context) == archive
    assert context.dockerfile == "sub/Dockerfile"


def _small_tar() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("sub/Dockerfile")
        info.size = 13
        tar.addfile(info, io.BytesIO(b"FROM busybox\n"))
    return out.getvalue()


def test_is_archive_sniffs_the_first_block_as_docker_does() -> None:
    assert is_archive(_small_tar()[:512])
    assert not is_archive(b"FROM busybox\n")
    assert not is_archive(bytes(512))  # an end-of-archive block: no entry
    assert not is_archive(b"")
    with pytest.raises(CLIError, match="build context is not an archive"):
        from_stream(io.BytesIO(b"FROM busybox\n"), "-")


@pytest.mark.parametrize(("source", "dockerfile", "message"), [
    ("{tmp}/nope", "", 'unable to prepare context: path "{tmp}/nope" not found'),
    ("{tmp}/file", "", "unable to prepare context: context must be a directory: {tmp}/file"),
    ("{tmp}/ctx", "", "unable to prepare context: unable to evaluate symlinks in Dockerfile "
                      "path: lstat {tmp}/ctx/Dockerfile: no such file or directory"),
    ("{tmp}/ctx", "{tmp}/none.df", "unable to prepare context: unable to evaluate symlinks in "
                                   "Dockerfile path: lstat {tmp}/none.df: no such file or "
                                   "directory"),
    ("-", "-", "invalid argument: can't use stdin for both build context and dockerfile"),
    ("github.com/moby/moby", "", "github.com/moby/moby is a git repository"),
    ("https://example.invalid/r.git#main", "", "is a git repository"),
    ("https://example.invalid/ctx.tar", "-", "-f - needs a directory as the context"),
])
def test_what_cannot_be_sent_fails_with_dockers_message(tmp_path: Path, source: str,
                                                        dockerfile: str, message: str) -> None:
    tree(tmp_path, {"ctx/a": "a", "file": "f"})
    with pytest.raises(CLIError) as caught:
        prepare(source.format(tmp=tmp_path), dockerfile.format(tmp=tmp_path), NO_STDIN)
    assert message.format(tmp=tmp_path) in caught.value.format_message()


def test_dockerfile_lower_case_is_found_when_it_is_the_only_one(tmp_path: Path) -> None:
    root = tree(tmp_path, {"dockerfile": "FROM busybox\n"})
    assert prepare(str(root), "", NO_STDIN).dockerfile == "dockerfile"


def test_a_malformed_dockerignore_pattern_stops_the_build(tmp_path: Path) -> None:
    root = tree(tmp_path, {"Dockerfile": "FROM busybox\n", ".dockerignore": "[\n"})
    with pytest.raises(CLIError, match="error checking context: syntax error in pattern"):
        prepare(str(root), "", NO_STDIN)


def test_an_unreadable_file_stops_the_build_before_anything_is_sent(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tree(tmp_path, {"Dockerfile": "FROM busybox\n", "secret": "s"})
    real_open = os.open

    def refusing(path: object, flags: int, *args: int) -> int:
        if str(path).endswith("secret"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", refusing)
    with pytest.raises(CLIError, match=f"no permission to read from '{root}/secret'"):
        prepare(str(root), "", NO_STDIN)


def test_a_file_that_shrinks_while_it_is_sent_fails(tmp_path: Path) -> None:
    root = tree(tmp_path, {"Dockerfile": "FROM busybox\n", "big": "x" * 100})
    context = prepare(str(root), "", NO_STDIN)
    (root / "big").write_text("x")
    with pytest.raises(CLIError, match="changed while the context was sent: 1 of 100 bytes"):
        body(context)


def test_the_daemon_receives_what_the_client_sends(ctx: Path, tmp_path: Path) -> None:
    """The client's archive through the daemon's receive_context and .dockerignore pass: the
    daemon reads the excluded Dockerfile, then COPY sees what docker's would."""
    context = prepare(str(ctx), "", NO_STDIN)
    target = tmp_path / "received"
    receive_context(io.BytesIO(body(context)), target)
    assert read_dockerfile(target, context.dockerfile)[1] == b"FROM busybox\nCOPY . /ctx/\n"
    apply_dockerignore(target)
    seen = sorted(str(p.relative_to(target)) for p in target.rglob("*"))
    assert seen == [".dockerignore", "a-b", "empty", "hard", "link", "skip", "skip/keep",
                    "sub", "sub/b", "sub/x"]
    assert os.readlink(target / "link") == "sub/x"
    assert (target / "hard").stat().st_ino == (target / "sub/x").stat().st_ino
