"""Crafted hostile tarballs: each is refused or neutralised, and nothing lands outside the layer.

The store lives in ``tmp_path/box/layers``; ``tmp_path`` and ``box`` are otherwise empty, so any
escape shows up as a new entry there (or at an absolute target checked by name). Runs as root.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from tests.unit.test_layers import Entry, build_tar, digest_of, leftovers, unpack
from wharf.daemon.core.images import untar
from wharf.daemon.core.images.layers import LayerStore
from wharf.errors import InvalidArgument

REG, DIR, SYM, LNK = tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE
PWNED = "wharf_corpus_pwned"
ABSOLUTE_TARGETS = [Path("/etc") / PWNED, Path("/") / PWNED, Path("/tmp") / PWNED]

# (id, entries, refused?) - refused cases must match "layer <chain> ... entry".
CORPUS: list[tuple[str, list[Entry], bool]] = [
    ("dotdot", [Entry(f"../{PWNED}", data=b"x")], True),
    ("dotdot-deep", [Entry(f"../../../../../../{PWNED}", data=b"x")], True),
    ("dotdot-middle", [Entry(f"a/../../{PWNED}", data=b"x")], True),
    ("dotdot-harmless-still-refused", [Entry("a/../b", data=b"x")], True),
    ("symlink-root-then-write", [Entry("l", SYM, linkname="/"),
                                 Entry(f"l/etc/{PWNED}", data=b"x")], True),
    ("symlink-up-then-write", [Entry("l", SYM, linkname="../../.."),
                               Entry(f"l/{PWNED}", data=b"x")], True),
    ("symlink-then-dir-then-write", [Entry("l", SYM, linkname="/etc"), Entry("l/", DIR),
                                     Entry(f"l/{PWNED}", data=b"x")], True),
    ("symlink-chain", [Entry("a", SYM, linkname="/"), Entry("b", SYM, linkname="a"),
                       Entry(f"b/etc/{PWNED}", data=b"x")], True),
    ("hardlink-to-symlink-then-write", [Entry("l", SYM, linkname="/etc"),
                                        Entry("h", LNK, linkname="l"),
                                        Entry(f"h/{PWNED}", data=b"x")], True),
    ("hardlink-abs", [Entry("h", LNK, linkname="/etc/passwd")], True),
    ("hardlink-dotdot", [Entry("h", LNK, linkname=f"../{PWNED}")], True),
    ("hardlink-through-symlink", [Entry("l", SYM, linkname="/etc"),
                                  Entry("h", LNK, linkname="l/passwd")], True),
    ("hardlink-to-dir", [Entry("d/", DIR), Entry("h", LNK, linkname="d")], True),
    ("whiteout-dotdot", [Entry("../.wh.etc")], True),
    ("whiteout-through-symlink", [Entry("l", SYM, linkname="/etc"),
                                  Entry("l/.wh.passwd")], True),
    ("opaque-through-symlink", [Entry("l", SYM, linkname="/etc"),
                                Entry("l/.wh..wh..opq")], True),
    ("whiteout-dir", [Entry(".wh.d/", DIR)], True),
    ("whiteout-of-dotdot", [Entry("a/.wh...")], True),
    ("pax-2MiB", [Entry("big", data=b"x", pax={"comment": "a" * (2 << 20)})], True),
    ("nul-in-name", [Entry("a\x00" + "b" * 200, data=b"x")], True),
    ("pax-path-dotdot", [Entry("innocent", data=b"x", pax={"path": f"../{PWNED}"})], True),
    ("pax-linkpath-abs", [Entry("h", LNK, linkname="x", pax={"linkpath": "/etc/shadow"})], True),
    ("absolute-name", [Entry(f"/abs/{PWNED}", data=b"x")], False),
    ("absolute-dir", [Entry("/etc/", DIR), Entry(f"/etc/{PWNED}", data=b"x")], False),
    ("char-device", [Entry("dev/mem", tarfile.CHRTYPE, devmajor=1, devminor=1)], False),
    ("block-device", [Entry("dev/sda", tarfile.BLKTYPE, devmajor=8, devminor=0)], False),
    ("fifo", [Entry("p", tarfile.FIFOTYPE)], False),
    ("long-name", [Entry("d" * 150 + "/" + "f" * 200, data=b"x")], False),
    ("long-symlink", [Entry("s", SYM, linkname="t" * 300)], False),
    ("symlinks-pointing-out-are-fine", [Entry("l", SYM, linkname="/etc/passwd"),
                                        Entry("u", SYM, linkname="../../../x")], False),
]


def _snapshot(paths: list[Path]) -> dict[Path, list[str]]:
    return {p: sorted(os.listdir(p)) for p in paths if p.exists()}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def box(tmp_path: Path) -> LayerStore:
    (tmp_path / "box").mkdir()
    return LayerStore(tmp_path / "box" / "layers")


@pytest.mark.parametrize(("entries", "refused"), [(e, r) for _, e, r in CORPUS],
                         ids=[i for i, _, _ in CORPUS])
def test_hostile_tar_is_refused_or_neutralised(
    box: LayerStore, tmp_path: Path, entries: list[Entry], refused: bool
) -> None:
    for target in ABSOLUTE_TARGETS:
        assert not target.exists()
    passwd = _sha(Path("/etc/passwd"))
    watched = [tmp_path, tmp_path / "box", Path("/"), Path("/etc"), Path("/tmp")]
    before = _snapshot(watched)
    raw = build_tar(entries)
    if refused:
        with pytest.raises(InvalidArgument, match="layer sha256:"):
            unpack(box, raw, blob_dir=tmp_path)
        assert not box.has(digest_of(raw))
    else:
        unpack(box, raw, blob_dir=tmp_path)
        _check_inside(box.diff_path(digest_of(raw)))
    after = _snapshot(watched)
    after[tmp_path / "box"] = [n for n in after[tmp_path / "box"] if n != "layers"]
    assert after == before
    for target in ABSOLUTE_TARGETS:
        assert not target.exists()
    assert _sha(Path("/etc/passwd")) == passwd
    assert leftovers(box) == []


def _check_inside(diff: Path) -> None:
    """A neutralised layer holds no device node other than whiteouts."""
    for dirpath, _dirs, files in os.walk(diff):  # never follows the layer's symlinks
        for name in files:
            st = os.lstat(os.path.join(dirpath, name))
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0, name


def test_absolute_names_land_inside_the_layer(box: LayerStore, tmp_path: Path) -> None:
    raw = build_tar([Entry(f"/abs/{PWNED}", data=b"x")])
    unpack(box, raw, blob_dir=tmp_path)
    assert (box.diff_path(digest_of(raw)) / "abs" / PWNED).read_bytes() == b"x"


def test_device_nodes_are_skipped_and_the_rest_extracted(box: LayerStore, tmp_path: Path) -> None:
    raw = build_tar([Entry("dev/", DIR), Entry("dev/sda", tarfile.BLKTYPE, devmajor=8),
                     Entry("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3),
                     Entry("after", data=b"ok")])
    unpack(box, raw, blob_dir=tmp_path)
    diff = box.diff_path(digest_of(raw))
    assert sorted(os.listdir(diff / "dev")) == []
    assert (diff / "after").read_bytes() == b"ok"


def _with_tail(raw: bytes, tail: bytes) -> bytes:
    """``raw`` (a tar) with its end-of-archive zeros replaced by ``tail``."""
    body = raw.rstrip(b"\0")
    body += b"\0" * (-len(body) % 512)
    return body + tail + b"\0" * 1024


def test_entries_hidden_after_a_bad_header_are_refused(box: LayerStore, tmp_path: Path) -> None:
    hidden = build_tar([Entry(f"../{PWNED}", data=b"x")])
    damaged = bytearray(b"\xff" * 512)  # not a valid header: tarfile stops, GNU tar skips on
    raw = _with_tail(build_tar([Entry("ok", data=b"1")]), bytes(damaged) + hidden)
    with pytest.raises(InvalidArgument, match="after the end"):
        unpack(box, raw, "none", blob_dir=tmp_path)
    assert leftovers(box) == []


def test_entries_after_a_lone_zero_block_are_refused(box: LayerStore, tmp_path: Path) -> None:
    hidden = build_tar([Entry("sneaky", data=b"x")])
    raw = _with_tail(build_tar([Entry("ok", data=b"1")]), b"\0" * 512 + hidden)
    with pytest.raises(InvalidArgument, match="after the end"):
        unpack(box, raw, "none", blob_dir=tmp_path)


def test_oversized_gnu_long_name_is_refused(box: LayerStore, tmp_path: Path) -> None:
    header = tarfile.TarInfo("././@LongLink")
    header.type = tarfile.GNUTYPE_LONGNAME
    header.size = 2 << 20
    buf = io.BytesIO()
    buf.write(header.tobuf(tarfile.GNU_FORMAT))
    buf.write(b"n" * header.size + b"\0" * (-header.size % 512))
    buf.write(tarfile.TarInfo("x").tobuf(tarfile.GNU_FORMAT) + b"\0" * 1024)
    with pytest.raises(InvalidArgument, match="extended header"):
        unpack(box, buf.getvalue(), "none", blob_dir=tmp_path)


def test_confinement_holds_even_if_the_scan_missed_something(
    box: LayerStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replace tar by a hostile program: it can write only inside the layer directory."""
    outside = tmp_path / "outside"
    evil = tmp_path / "evil.sh"
    evil.write_text(
        "#!/bin/sh\n"
        f"echo pwned > {outside} 2>/dev/null && exit 0\n"
        f"ln /etc/passwd \"$5/hard\" 2>/dev/null && exit 0\n"
        "echo inside > \"$5/fine\" || exit 3\n"
        "echo confined-but-writable-inside >&2; exit 7\n"
    )
    evil.chmod(0o755)
    monkeypatch.setattr(untar, "TAR_BINARY", str(evil))
    raw = build_tar([Entry("a", data=b"1")])
    with pytest.raises(InvalidArgument, match="confined-but-writable-inside"):
        unpack(box, raw, blob_dir=tmp_path)
    assert not outside.exists()
    assert leftovers(box) == []
