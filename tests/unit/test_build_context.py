"""The build context (``core.build.context``): receiving the POST /build archive with the layers'
safety rules, .dockerignore, COPY/ADD sources and destinations, the cache digest.

Runs as root, like the layer tests (confined GNU tar needs a mount namespace).
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import re
import tarfile
from pathlib import Path

import pytest
import zstandard

from tests.unit.test_layers import Entry, build_tar
from wharf.daemon.core.build.context import (
    MIB,
    ContextLimits,
    apply_dockerignore,
    copy_target,
    dest_path,
    digest_sources,
    read_dockerfile,
    receive_context,
    resolve_sources,
)
from wharf.errors import InvalidArgument

REG, DIR, SYM, LNK = tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE
PWNED = "wharf_context_pwned"
SAMPLE = [
    Entry("Dockerfile", data=b"FROM scratch\n"),
    Entry("src/", DIR, mode=0o755),
    Entry("src/main.go", data=b"package main\n"),
    Entry("src/run.sh", data=b"#!/bin/sh\n", mode=0o755),
    Entry("a.txt", data=b"a"),
    Entry("b.txt", data=b"b"),
    Entry("link", SYM, linkname="src/main.go"),
    Entry("hard", LNK, linkname="a.txt"),
]
COMPRESS = {
    "none": lambda raw: raw,
    "gzip": gzip.compress,
    "bzip2": bz2.compress,
    "xz": lzma.compress,
    "zstd": lambda raw: zstandard.ZstdCompressor().compress(raw),
}


def receive(tmp_path: Path, entries: list[Entry], kind: str = "none",
            limits: ContextLimits | None = None) -> Path:
    raw = COMPRESS[kind](build_tar(entries))
    target = tmp_path / "contexts" / "ctx"
    receive_context(io.BytesIO(raw), target, limits)
    return target


def refused(tmp_path: Path, entries: list[Entry] | bytes, match: str, kind: str = "none",
            limits: ContextLimits | None = None) -> None:
    """The archive is refused with ``match`` and nothing of it is left anywhere."""
    raw = entries if isinstance(entries, bytes) else COMPRESS[kind](build_tar(entries))
    with pytest.raises(InvalidArgument, match=match):
        receive_context(io.BytesIO(raw), tmp_path / "contexts" / "ctx", limits)
    assert os.listdir(tmp_path / "contexts") == []
    assert sorted(os.listdir(tmp_path)) == ["contexts"]
    assert not Path("/", PWNED).exists() and not Path("/etc", PWNED).exists()


@pytest.mark.parametrize("kind", list(COMPRESS))
def test_receive_every_compression_docker_accepts(tmp_path: Path, kind: str) -> None:
    ctx = receive(tmp_path, SAMPLE, kind)
    assert (ctx / "src/main.go").read_bytes() == b"package main\n"
    assert (ctx / "src/run.sh").stat().st_mode & 0o777 == 0o755
    assert os.readlink(ctx / "link") == "src/main.go"
    assert (ctx / "hard").stat().st_ino == (ctx / "a.txt").stat().st_ino
    assert os.listdir(tmp_path / "contexts") == ["ctx"]  # the work directory is gone


def test_a_tar_of_dot_as_gnu_tar_makes_it(tmp_path: Path) -> None:
    ctx = receive(tmp_path, [Entry("./", DIR, mode=0o700), Entry("./sub/", DIR),
                             Entry("./sub/f", data=b"x")])
    assert (ctx / "sub/f").read_bytes() == b"x"
    assert resolve_sources(ctx, ["sub/*"]) == [ctx / "sub/f"]


def test_dotdot_is_refused(tmp_path: Path) -> None:
    refused(tmp_path, [Entry("ok", data=b"x"), Entry(f"../{PWNED}", data=b"x")],
            "^build context: entry .* has a '..' component")


def test_hardlinks_out_of_the_context_are_refused(tmp_path: Path) -> None:
    refused(tmp_path, [Entry("h", LNK, linkname="/etc/passwd")], "hardlink")
    refused(tmp_path, [Entry("h", LNK, linkname=f"../{PWNED}")], "'..' component")


def test_writing_through_a_symlink_of_the_archive_is_refused(tmp_path: Path) -> None:
    refused(tmp_path, [Entry("l", SYM, linkname="/etc"), Entry(f"l/{PWNED}", data=b"x")],
            "goes through the symlink")


def test_absolute_names_land_inside(tmp_path: Path) -> None:
    ctx = receive(tmp_path, [Entry(f"/{PWNED}/f", data=b"x")])
    assert (ctx / PWNED / "f").read_bytes() == b"x"
    assert not Path("/", PWNED).exists()


def test_device_nodes_are_dropped(tmp_path: Path) -> None:
    ctx = receive(tmp_path, [
        Entry("mem", tarfile.CHRTYPE, devmajor=1, devminor=1),
        Entry("sda", tarfile.BLKTYPE, devmajor=8, devminor=0),
        Entry("zero", tarfile.CHRTYPE),  # 0:0, the whiteout form the layer scan keeps
        Entry("fifo", tarfile.FIFOTYPE),
        Entry("f", data=b"x"),
    ])
    assert sorted(os.listdir(ctx)) == ["f", "fifo"]


def test_oversized_contexts_are_refused(tmp_path: Path) -> None:
    limits = ContextLimits(max_bytes=MIB)
    big = [Entry("big", data=b"x" * (2 * MIB))]
    refused(tmp_path, big, r"^build context is larger than the limit of 1 MiB$", limits=limits)
    # a small gzip body that inflates past the limit is stopped while inflating
    refused(tmp_path, big, "larger than the limit of 1 MiB", "gzip", limits)
    refused(tmp_path, [Entry("f", data=b"x")], "larger than the limit of 1024 bytes$",
            limits=ContextLimits(max_bytes=1024))


def test_too_many_entries_are_refused(tmp_path: Path) -> None:
    entries = [Entry(f"f{i}", data=b"x") for i in range(5)]
    refused(tmp_path, entries, "5 entries, more than the limit of 4",
            limits=ContextLimits(max_files=4))


@pytest.mark.parametrize("kind", ["gzip", "bzip2", "xz"])
def test_corrupt_or_truncated_archives_are_refused(tmp_path: Path, kind: str) -> None:
    whole = COMPRESS[kind](build_tar(SAMPLE))
    refused(tmp_path, whole[:-20], f"^build context: .*{kind}")


def test_garbage_is_not_a_tar(tmp_path: Path) -> None:
    refused(tmp_path, b"hello" * 300, "^build context is not a valid tar archive")


def test_an_existing_target_is_refused(tmp_path: Path) -> None:
    (tmp_path / "ctx").mkdir()
    with pytest.raises(InvalidArgument, match="already exists"):
        receive_context(io.BytesIO(build_tar(SAMPLE)), tmp_path / "ctx")


# --- inside the context ---------------------------------------------------------------------


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    """A received context with symlinks leading out of it, and a secret beside it."""
    (tmp_path / "secret").write_text("host file")
    return receive(tmp_path, [*SAMPLE,
                              Entry("out-abs", SYM, linkname="/etc/passwd"),
                              Entry("out-rel", SYM, linkname="../../secret"),
                              Entry("dir-out", SYM, linkname=".."),
                              Entry("dir-in", SYM, linkname="src"),
                              Entry("src/up", SYM, linkname="../a.txt"),
                              Entry("loop", SYM, linkname="loop")])


NOT_FOUND = ("COPY failed: file not found in build context or excluded by .dockerignore: "
             "stat {}: file does not exist")


def test_sources_resolve_inside_the_context(ctx: Path) -> None:
    assert resolve_sources(ctx, ["a.txt", "./src/", "/b.txt", ".", "link", "dir-in/main.go",
                                 "src/up", "src/../a.txt"]) == [
        ctx / "a.txt", ctx / "src", ctx / "b.txt", ctx, ctx / "link", ctx / "dir-in/main.go",
        ctx / "src/up", ctx / "a.txt"]


@pytest.mark.parametrize("source", ["out-abs", "out-rel", "dir-out/secret", "../secret",
                                    "src/../../secret", "loop"])
def test_sources_leading_out_are_forbidden(ctx: Path, source: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        resolve_sources(ctx, [source])
    assert str(info.value) == f"COPY failed: forbidden path outside the build context: {source}"


def test_a_missing_source_says_what_docker_says(ctx: Path) -> None:
    with pytest.raises(InvalidArgument) as info:
        resolve_sources(ctx, ["a.txt", "./nope/x"], instruction="ADD")
    assert str(info.value) == NOT_FOUND.format("nope/x").replace("COPY", "ADD")
    with pytest.raises(InvalidArgument, match=r"stat a\.txt/x: file does not exist"):
        resolve_sources(ctx, ["a.txt/x"])


def test_wildcards_follow_go_filepath_match(ctx: Path) -> None:
    assert resolve_sources(ctx, ["*.txt"]) == [ctx / "a.txt", ctx / "b.txt"]
    assert resolve_sources(ctx, ["[a]?txt", "src/*.??"]) == [ctx / "a.txt", ctx / "src/main.go",
                                                            ctx / "src/run.sh"]
    assert resolve_sources(ctx, ["nothing*", "a.txt"]) == [ctx / "a.txt"]
    with pytest.raises(InvalidArgument, match=r"^COPY failed: no source files were specified$"):
        resolve_sources(ctx, ["*.none", "x?"])
    with pytest.raises(InvalidArgument, match="forbidden path outside the build context: out-"):
        resolve_sources(ctx, ["out-*"])  # a match leading out fails the copy, as in Docker
    with pytest.raises(InvalidArgument, match="no source files"):
        resolve_sources(ctx, ["a[.txt"])  # Docker ignores filepath.Match's syntax error


def test_dockerignore_hides_sources_but_not_the_dockerfile_read(tmp_path: Path) -> None:
    ctx = receive(tmp_path, [*SAMPLE, Entry(".dockerignore", data=b"*.txt\n!b.txt\nDockerfile\n"
                                                              b".dockerignore\nsrc\n!src/run.sh\n")])
    assert read_dockerfile(ctx) == ("Dockerfile", b"FROM scratch\n")
    assert sorted(apply_dockerignore(ctx)) == [".dockerignore", "Dockerfile", "a.txt",
                                               "src/main.go"]
    assert sorted(os.listdir(ctx)) == ["b.txt", "hard", "link", "src"]
    with pytest.raises(InvalidArgument, match=re.escape(NOT_FOUND.format("a.txt"))):
        resolve_sources(ctx, ["a.txt"])
    assert resolve_sources(ctx, ["*.txt", "h*", "s*"]) == [ctx / "b.txt", ctx / "hard",
                                                           ctx / "src"]
    with pytest.raises(InvalidArgument, match=re.escape(NOT_FOUND.format("link"))):
        resolve_sources(ctx, ["*"])  # "link" matches, but its target was excluded


def test_read_dockerfile(tmp_path: Path) -> None:
    ctx = receive(tmp_path, [Entry("dockerfile", data=b"FROM a\n"),
                             Entry("sub/Build.df", data=b"FROM b\n"),
                             Entry("out", SYM, linkname="/etc/passwd")])
    assert read_dockerfile(ctx) == ("dockerfile", b"FROM a\n")
    assert read_dockerfile(ctx, "sub/Build.df") == ("sub/Build.df", b"FROM b\n")
    for name in ("Nope", "out", "sub", "../x"):
        with pytest.raises(InvalidArgument,
                           match="^Cannot locate specified Dockerfile: " + re.escape(name)):
            read_dockerfile(ctx, name)
    assert apply_dockerignore(ctx) == []  # no .dockerignore: nothing hidden


def test_destinations(ctx: Path) -> None:
    one, two = [ctx / "a.txt"], [ctx / "a.txt", ctx / "b.txt"]
    assert dest_path("/app", "x", one) == "/app/x"
    assert dest_path("/app", ".", one) == "/app"
    assert dest_path("/app", "./", two) == "/app/"
    assert dest_path("", "rel/", one) == "/rel/"
    assert dest_path("/app", "/abs//y/../z", one) == "/abs/z"
    assert dest_path("/app", "/", two) == "/"
    message = ("When using ADD with more than one source file, the destination must be a "
               "directory and end with a /")
    with pytest.raises(InvalidArgument) as info:
        dest_path("/app", "dir", two, instruction="ADD")
    assert str(info.value) == message
    # a wildcard matching a single file is one source; matching two, two
    assert dest_path("/", "f", resolve_sources(ctx, ["a*"])) == "/f"
    with pytest.raises(InvalidArgument, match="more than one source file"):
        dest_path("/", "f", resolve_sources(ctx, ["*.txt"]))


def test_copy_targets(ctx: Path) -> None:
    assert copy_target("/app/", ctx / "a.txt", existing_dir=False) == "/app/a.txt"
    assert copy_target("/app", ctx / "a.txt", existing_dir=False) == "/app"
    assert copy_target("/app", ctx / "a.txt", existing_dir=True) == "/app/a.txt"
    assert copy_target("/", ctx / "link", existing_dir=True) == "/link"  # the name as written
    assert copy_target("/app/", ctx / "src", existing_dir=False) == "/app"  # its contents
    assert copy_target("/app", ctx / "dir-in", existing_dir=False) == "/app"
    assert copy_target("/", ctx, existing_dir=True) == "/"


def test_digest_is_stable_and_follows_what_is_copied(ctx: Path) -> None:
    sources = resolve_sources(ctx, ["src", "a.txt"])
    first = digest_sources(sources)
    assert first.startswith("sha256:") and len(first) == 71
    os.utime(ctx / "src/main.go", (1, 1))  # mtimes do not count
    assert digest_sources(sources) == first
    assert digest_sources(list(reversed(sources))) != first
    assert digest_sources(sources, owner=(1000, 1000)) != first

    def changed(edit: str) -> str:
        if edit == "content":
            (ctx / "src/main.go").write_bytes(b"package other\n")
        elif edit == "mode":
            (ctx / "src/main.go").chmod(0o600)
        elif edit == "link":
            (ctx / "src/up").unlink()
            (ctx / "src/up").symlink_to("../b.txt")
        elif edit == "name":
            (ctx / "src/run.sh").rename(ctx / "src/run2.sh")
        elif edit == "new":
            (ctx / "src/new").mkdir()
        return digest_sources(sources)

    seen = {first}
    for edit in ("content", "mode", "link", "name", "new"):
        digest = changed(edit)
        assert digest not in seen, edit
        seen.add(digest)


def test_digest_of_a_source_symlink_is_its_targets_content(ctx: Path) -> None:
    link, = resolve_sources(ctx, ["link"])
    twin = ctx / "twin" / "link"  # a plain file with the link's name and its target's content
    twin.parent.mkdir()
    twin.write_bytes(b"package main\n")
    twin.chmod((ctx / "src/main.go").stat().st_mode)
    assert digest_sources([link]) == digest_sources([twin])
    (ctx / "fifo-dir").mkdir()
    os.mkfifo(ctx / "fifo-dir/p")
    assert digest_sources([ctx / "fifo-dir"]).startswith("sha256:")  # never opened
