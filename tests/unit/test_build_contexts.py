"""Received build contexts kept for the next build of the same archive: reused as they are,
told apart by archive and Dockerfile name, evicted beyond their bounds, never left half made."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from wharf.daemon.core.build.context import ContextLimits
from wharf.daemon.core.build.contexts import ContextStore
from wharf.errors import InvalidArgument


def archive(tmp: Path, name: str, files: dict[str, str]) -> Path:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for path, text in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    target = tmp / name
    target.write_bytes(out.getvalue())
    return target


@pytest.fixture
def store(tmp_path: Path) -> ContextStore:
    return ContextStore(tmp_path / "contexts", ContextLimits(), keep=2)


def test_the_same_archive_is_unpacked_once(store: ContextStore, tmp_path: Path) -> None:
    body = archive(tmp_path, "a.tar", {"Dockerfile": "FROM busybox\n", "secret": "s",
                                       ".dockerignore": "secret\nDockerfile\n"})
    first, release_first = store.acquire(body, "Dockerfile")
    assert first.dockerfile == b"FROM busybox\n"  # read before .dockerignore hid it
    assert sorted(p.name for p in first.root.iterdir()) == [".dockerignore"]
    second, release_second = store.acquire(body, "Dockerfile")
    assert second is first and first.users == 2
    assert first.digest([first.root / ".dockerignore"]) == first.digest(
        [first.root / ".dockerignore"])
    release_first()
    release_second()
    assert first.root.is_dir()  # kept, idle, for the next build
    again, release_again = store.acquire(body, "Dockerfile")
    assert again is first
    release_again()


def test_another_dockerfile_name_or_archive_is_another_context(store: ContextStore,
                                                               tmp_path: Path) -> None:
    body = archive(tmp_path, "a.tar", {"Dockerfile": "FROM a\n", "b.Dockerfile": "FROM b\n"})
    one, release_one = store.acquire(body, "Dockerfile")
    two, release_two = store.acquire(body, "b.Dockerfile")
    assert one is not two and two.dockerfile == b"FROM b\n"
    release_one()
    release_two()


def test_idle_contexts_beyond_the_bounds_are_deleted(store: ContextStore,
                                                     tmp_path: Path) -> None:
    roots = []
    for index in range(4):
        body = archive(tmp_path, f"{index}.tar", {"Dockerfile": f"FROM x{index}\n"})
        context, release = store.acquire(body, "Dockerfile")
        roots.append(context.root)
        release()
    assert [r.is_dir() for r in roots] == [False, False, True, True]  # keep=2


def test_a_bad_archive_or_a_missing_dockerfile_leaves_nothing(store: ContextStore,
                                                             tmp_path: Path) -> None:
    body = archive(tmp_path, "a.tar", {"README": "no Dockerfile here"})
    with pytest.raises(InvalidArgument, match="Cannot locate specified Dockerfile"):
        store.acquire(body, "Dockerfile")
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"not a tar at all" * 100)
    with pytest.raises(InvalidArgument):
        store.acquire(bad, "Dockerfile")
    assert not store.root.is_dir() or list(store.root.iterdir()) == []
