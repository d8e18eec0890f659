"""The layer store: chain IDs, unpack of plain/gzip/zstd layers, overlay whiteouts, atomicity.

Runs as root (mknod, chown, trusted.* xattrs, mount namespaces), like the rest of CI.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import zstandard

from wharf.daemon.core.images.layers import LayerStore, UnpackResult, chain_ids
from wharf.errors import InvalidArgument, NotFound

TAR = "application/vnd.oci.image.layer.v1.tar"
TAR_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
TAR_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
CAP_NET_RAW = bytes.fromhex("0100000200200000000000000000000000000000")  # cap_net_raw+ep


@dataclass
class Entry:
    """One tar member to build (only what the tests need)."""

    name: str
    type: bytes = tarfile.REGTYPE
    data: bytes = b""
    linkname: str = ""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    mtime: int = 1_700_000_000
    devmajor: int = 0
    devminor: int = 0
    pax: dict[str, str] = field(default_factory=dict)


def build_tar(entries: list[Entry], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    """An uncompressed tar of ``entries``, in order, exactly as given."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for e in entries:
            info = tarfile.TarInfo(e.name)
            info.type, info.linkname, info.mode = e.type, e.linkname, e.mode
            info.uid, info.gid, info.mtime = e.uid, e.gid, e.mtime
            info.devmajor, info.devminor = e.devmajor, e.devminor
            info.size = len(e.data)
            info.pax_headers = dict(e.pax)
            tf.addfile(info, io.BytesIO(e.data) if e.data else None)
    return buf.getvalue()


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def compress(raw: bytes, kind: str) -> bytes:
    if kind == "gzip":
        return gzip.compress(raw)
    if kind == "zstd":
        return zstandard.ZstdCompressor().compress(raw)
    return raw


def unpack(store: LayerStore, raw: bytes, kind: str = "gzip", media_type: str | None = None,
           expected: str | None = None, blob_dir: Path | None = None) -> UnpackResult:
    """Write the blob next to the store and unpack it as a single-layer chain."""
    blob = (blob_dir or store.root.parent) / f"blob-{digest_of(raw)[7:19]}.{kind}"
    blob.write_bytes(compress(raw, kind))
    types = {"gzip": TAR_GZIP, "zstd": TAR_ZSTD, "none": TAR}
    try:
        return store.unpack(digest_of(raw), blob, media_type or types[kind], expected)
    finally:
        blob.unlink()


def leftovers(store: LayerStore) -> list[str]:
    """Everything in the store root other than finished layers and the (empty) tmp dir."""
    if not store.root.exists():
        return []
    names = [p.name for p in (store.root / "tmp").glob("*")]
    for p in store.root.iterdir():
        if p.name != "tmp" and not (p / "layer.json").is_file():
            names.append(p.name)
    return names


@pytest.fixture
def store(tmp_path: Path) -> LayerStore:
    return LayerStore(tmp_path / "layers")


SAMPLE = [
    Entry("bin/", tarfile.DIRTYPE, mode=0o755),
    Entry("bin/ping", data=b"\x7fELF", mode=0o4755, uid=0, gid=0,
          pax={"SCHILY.xattr.security.capability": CAP_NET_RAW.decode("latin-1")}),
    Entry("etc/", tarfile.DIRTYPE, mode=0o755, mtime=1_600_000_000),
    Entry("etc/shadow", data=b"root:*:", mode=0o640, uid=0, gid=42),
    Entry("home/", tarfile.DIRTYPE, mode=0o755),
    Entry("home/u/", tarfile.DIRTYPE, mode=0o700, uid=1000, gid=1000),
    Entry("home/u/f", data=b"hi", uid=1000, gid=1000, mtime=1_234_567_890),
    Entry("home/u/hard", tarfile.LNKTYPE, linkname="home/u/f"),
    Entry("lib", tarfile.SYMTYPE, linkname="usr/lib"),
    Entry("fifo", tarfile.FIFOTYPE),
]


def test_chain_ids_known_vectors() -> None:
    a, b, c = (digest_of(x) for x in (b"a", b"b", b"c"))
    ab = "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()
    abc = "sha256:" + hashlib.sha256(f"{ab} {c}".encode()).hexdigest()
    assert chain_ids([a]) == [a]
    assert chain_ids([a, b, c]) == [a, ab, abc]
    assert chain_ids([]) == []
    with pytest.raises(InvalidArgument):
        chain_ids(["sha256:nothex"])


@pytest.mark.parametrize(("kind", "media_type"), [
    ("none", TAR), ("gzip", TAR_GZIP), ("zstd", TAR_ZSTD), ("gzip", DOCKER_GZIP),
    ("gzip", TAR),   # mislabelled: the magic bytes win
    ("zstd", TAR_GZIP),
])
def test_unpack_keeps_owners_modes_times_xattrs(
    store: LayerStore, kind: str, media_type: str
) -> None:
    raw = build_tar(SAMPLE)
    result = unpack(store, raw, kind, media_type, expected=digest_of(raw))
    assert result == UnpackResult(diff_id=digest_of(raw), size=4 + 7 + 2)
    diff = store.diff_path(digest_of(raw))
    ping = os.lstat(diff / "bin/ping")
    assert stat.S_IMODE(ping.st_mode) == 0o4755
    assert os.getxattr(diff / "bin/ping", "security.capability") == CAP_NET_RAW
    shadow = os.lstat(diff / "etc/shadow")
    assert (shadow.st_uid, shadow.st_gid, stat.S_IMODE(shadow.st_mode)) == (0, 42, 0o640)
    home = os.lstat(diff / "home/u")
    assert (home.st_uid, stat.S_IMODE(home.st_mode)) == (1000, 0o700)
    f = os.lstat(diff / "home/u/f")
    assert (f.st_uid, int(f.st_mtime), f.st_nlink) == (1000, 1_234_567_890, 2)
    assert os.lstat(diff / "home/u/hard").st_ino == f.st_ino
    assert os.readlink(diff / "lib") == "usr/lib"
    assert stat.S_ISFIFO(os.lstat(diff / "fifo").st_mode)
    assert int(os.lstat(diff / "etc").st_mtime) == 1_600_000_000
    assert store.has(digest_of(raw))
    assert store.size(digest_of(raw)) == 13
    assert leftovers(store) == []


def test_whiteouts_become_overlay_forms(store: LayerStore) -> None:
    raw = build_tar([
        Entry("etc/", tarfile.DIRTYPE, mode=0o755, mtime=1_500_000_000),
        Entry("etc/.wh.passwd"),
        Entry("usr/", tarfile.DIRTYPE, mode=0o755),
        Entry("usr/share/", tarfile.DIRTYPE, mode=0o755),
        Entry("usr/share/.wh..wh..opq"),
        Entry("usr/share/new", data=b"n"),
        Entry(".wh.rootfile"),
        Entry("implicit/.wh.gone"),   # parent never listed: created like Docker does
        Entry("x/.wh..wh.plnk"),      # aufs bookkeeping: dropped
    ])
    unpack(store, raw)
    diff = store.diff_path(digest_of(raw))
    for hidden in ("etc/passwd", "rootfile", "implicit/gone"):
        st = os.lstat(diff / hidden)
        assert stat.S_ISCHR(st.st_mode)
        assert st.st_rdev == 0
    assert os.getxattr(diff / "usr/share", "trusted.overlay.opaque") == b"y"
    assert (diff / "usr/share/new").read_bytes() == b"n"
    names = [n for _, dirs, files in os.walk(diff) for n in dirs + files]
    assert [n for n in names if n.startswith(".wh.")] == []
    assert int(os.lstat(diff / "etc").st_mtime) == 1_500_000_000  # tar's time survives
    assert leftovers(store) == []


def test_a_char_0_0_in_the_tar_is_kept_as_a_whiteout(store: LayerStore) -> None:
    raw = build_tar([Entry("gone", tarfile.CHRTYPE, mode=0)])
    unpack(store, raw)
    st = os.lstat(store.diff_path(digest_of(raw)) / "gone")
    assert stat.S_ISCHR(st.st_mode)
    assert st.st_rdev == 0


def test_whiteout_of_a_file_the_layer_creates_is_refused(store: LayerStore) -> None:
    raw = build_tar([Entry("a", data=b"1"), Entry(".wh.a")])
    with pytest.raises(InvalidArgument, match="whiteout"):
        unpack(store, raw)
    assert not store.has(digest_of(raw))
    assert leftovers(store) == []


def test_overlay_xattrs_in_the_tar_are_not_applied(store: LayerStore) -> None:
    raw = build_tar([Entry("d/", tarfile.DIRTYPE, mode=0o755,
                           pax={"SCHILY.xattr.trusted.overlay.redirect": "/etc",
                                "SCHILY.xattr.user.ok": "1"})])
    unpack(store, raw)
    d = store.diff_path(digest_of(raw)) / "d"
    assert os.getxattr(d, "user.ok") == b"1"
    assert "trusted.overlay.redirect" not in os.listxattr(d)


def test_wrong_diff_id_leaves_nothing(store: LayerStore) -> None:
    raw = build_tar(SAMPLE)
    with pytest.raises(InvalidArgument, match="diff_id"):
        unpack(store, raw, expected=digest_of(b"other"))
    assert not store.has(digest_of(raw))
    assert leftovers(store) == []


@pytest.mark.parametrize("damage", [
    lambda b: b[:10] + bytes(x ^ 0xFF for x in b[10:40]) + b[40:],  # corrupt deflate data
    lambda b: b[: len(b) // 2],                                     # truncated
    lambda b: b[:-4] + b"\0\0\0\0",                                 # bad length trailer
    lambda b: b + b"garbage",                                       # trailing junk
])
def test_corrupt_gzip_leaves_nothing(
    store: LayerStore, tmp_path: Path, damage: Callable[[bytes], bytes]
) -> None:
    raw = build_tar([*SAMPLE, Entry("big", data=os.urandom(200_000))])
    blob = tmp_path / "bad.gz"
    blob.write_bytes(damage(gzip.compress(raw)))
    with pytest.raises(InvalidArgument, match="gzip"):
        store.unpack(digest_of(raw), blob, TAR_GZIP, None)
    assert not store.has(digest_of(raw))
    assert leftovers(store) == []


def test_truncated_zstd_leaves_nothing(store: LayerStore, tmp_path: Path) -> None:
    raw = build_tar([Entry("big", data=os.urandom(300_000))])
    blob = tmp_path / "bad.zst"
    blob.write_bytes(zstandard.ZstdCompressor().compress(raw)[:-100])
    with pytest.raises(InvalidArgument, match="zstd"):
        store.unpack(digest_of(raw), blob, TAR_ZSTD, None)
    assert leftovers(store) == []


def test_multi_member_gzip_and_multi_frame_zstd(store: LayerStore, tmp_path: Path) -> None:
    raw = build_tar(SAMPLE)
    half = len(raw) // 2
    for name, data, media_type in (
        ("m.gz", gzip.compress(raw[:half]) + gzip.compress(raw[half:]), TAR_GZIP),
        ("m.zst", zstandard.ZstdCompressor().compress(raw[:half])
         + zstandard.ZstdCompressor().compress(raw[half:]), TAR_ZSTD),
    ):
        blob = tmp_path / name
        blob.write_bytes(data)
        result = store.unpack(digest_of(raw), blob, media_type, digest_of(raw))
        assert result.diff_id == digest_of(raw)
        store.delete(digest_of(raw))


def test_unknown_media_type_is_refused(store: LayerStore) -> None:
    with pytest.raises(InvalidArgument, match="media type"):
        unpack(store, build_tar(SAMPLE), "gzip", "application/vnd.oci.image.config.v1+json")
    assert leftovers(store) == []


def test_unpack_is_idempotent_and_races_are_harmless(store: LayerStore) -> None:
    raw = build_tar(SAMPLE)
    results: list[UnpackResult] = []
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            results.append(unpack(store, raw, blob_dir=store.root.parent / f"b{i}"))
        except BaseException as exc:  # collected for the main thread
            errors.append(exc)

    for i in range(4):
        (store.root.parent / f"b{i}").mkdir()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(results)) == 1
    assert unpack(store, raw) == results[0]
    with pytest.raises(InvalidArgument):
        unpack(store, raw, expected=digest_of(b"other"))
    assert leftovers(store) == []


def test_progress_reports_compressed_bytes(store: LayerStore, tmp_path: Path) -> None:
    raw = build_tar([Entry("big", data=os.urandom(3 << 20))])
    blob = tmp_path / "p.gz"
    blob.write_bytes(gzip.compress(raw, 1))
    seen: list[tuple[int, int]] = []
    store.unpack(digest_of(raw), blob, TAR_GZIP, None, progress=lambda a, b: seen.append((a, b)))
    assert seen[-1] == (blob.stat().st_size, blob.stat().st_size)
    assert [a for a, _ in seen] == sorted(a for a, _ in seen)


def test_delete_and_missing_layers(store: LayerStore) -> None:
    raw = build_tar(SAMPLE)
    unpack(store, raw)
    store.delete(digest_of(raw))
    assert not store.has(digest_of(raw))
    assert not store.diff_path(digest_of(raw)).exists()
    store.delete(digest_of(raw))  # missing is fine
    with pytest.raises(NotFound):
        store.size(digest_of(raw))
    assert leftovers(store) == []
