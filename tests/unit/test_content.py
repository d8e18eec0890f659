"""The content store: digest-verified, atomic blobs; failed writes leave nothing."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

from wharf.daemon.core.images.content import ContentStore
from wharf.errors import InvalidArgument, NotFound


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _ingest_empty(store: ContentStore) -> bool:
    ingest = store.root / "ingest"
    return not ingest.exists() or not any(ingest.iterdir())


@pytest.fixture
def store(tmp_path: Path) -> ContentStore:
    return ContentStore(tmp_path / "content")


def test_put_bytes_stores_read_only_blob_under_its_digest(store: ContentStore) -> None:
    data = b"hello wharf"
    digest = store.put_bytes(data)
    assert digest == _digest(data)
    assert store.path(digest) == store.root / "sha256" / digest.removeprefix("sha256:")
    assert store.has(digest)
    assert store.read_bytes(digest) == data
    assert store.size(digest) == len(data)
    assert os.stat(store.path(digest)).st_mode & 0o777 == 0o444
    assert list(store.digests()) == [digest]
    assert store.put_bytes(data, digest) == digest  # idempotent
    assert _ingest_empty(store)


def test_put_bytes_refuses_a_wrong_expected_digest(store: ContentStore) -> None:
    with pytest.raises(InvalidArgument, match="expected"):
        store.put_bytes(b"abc", _digest(b"abd"))
    assert list(store.digests()) == []
    assert _ingest_empty(store)


def test_missing_blob_is_not_found_and_delete_is_quiet(store: ContentStore) -> None:
    digest = _digest(b"nope")
    assert not store.has(digest)
    with pytest.raises(NotFound, match=digest):
        store.size(digest)
    with pytest.raises(NotFound):
        store.read_bytes(digest)
    store.delete(digest)
    assert list(store.digests()) == []


def test_invalid_digest_is_refused(store: ContentStore) -> None:
    for bad in ("sha256:../../etc/passwd", "md5:abc", "sha256:" + "A" * 64, ""):
        with pytest.raises(InvalidArgument):
            store.path(bad)


def test_delete_removes_the_blob(store: ContentStore) -> None:
    digest = store.put_bytes(b"x")
    store.delete(digest)
    assert not store.has(digest)


def test_writer_streams_and_commits(store: ContentStore) -> None:
    chunks = [os.urandom(1000) for _ in range(5)]
    digest = _digest(b"".join(chunks))
    with store.writer(digest, 5000) as w:
        for c in chunks:
            w.write(c)
        assert w.written == 5000
        assert not store.has(digest)  # not visible before commit
        assert w.commit() == digest
    assert store.read_bytes(digest) == b"".join(chunks)
    assert _ingest_empty(store)


def test_writer_digest_mismatch_names_both_digests_and_leaves_nothing(
    store: ContentStore,
) -> None:
    expected = _digest(b"right")
    with store.writer(expected) as w:
        w.write(b"wrong")
        with pytest.raises(InvalidArgument) as err:
            w.commit()
    assert expected in str(err.value)
    assert _digest(b"wrong") in str(err.value)
    assert not store.has(expected)
    assert _ingest_empty(store)


def test_writer_truncated_blob_is_refused(store: ContentStore) -> None:
    data = b"0123456789"
    with store.writer(_digest(data), len(data)) as w:
        w.write(data[:6])
        with pytest.raises(InvalidArgument, match="truncated"):
            w.commit()
    assert list(store.digests()) == []
    assert _ingest_empty(store)


def test_writer_overrun_is_refused_at_once(store: ContentStore) -> None:
    with store.writer(_digest(b"abc"), 3) as w:
        w.write(b"ab")
        with pytest.raises(InvalidArgument, match="larger"):
            w.write(b"cd")
    assert _ingest_empty(store)


def test_writer_abandoned_or_failing_leaves_nothing(store: ContentStore) -> None:
    digest = _digest(b"data")
    with store.writer(digest) as w:
        w.write(b"da")
    assert _ingest_empty(store)
    with pytest.raises(RuntimeError), store.writer(digest) as w:
        w.write(b"data")
        raise RuntimeError("network dropped")
    assert _ingest_empty(store)
    assert not store.has(digest)


def test_parallel_writers_of_one_digest_all_succeed(store: ContentStore) -> None:
    data = os.urandom(256 * 1024)
    digest = _digest(data)
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def write() -> None:
        try:
            with store.writer(digest, len(data)) as w:
                barrier.wait()
                for i in range(0, len(data), 4096):
                    w.write(data[i:i + 4096])
                w.commit()
        except BaseException as exc:  # collected for the main thread
            errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.read_bytes(digest) == data
    assert list(store.digests()) == [digest]
    assert _ingest_empty(store)
