"""--user resolution against the image's passwd and group files (runc/Docker semantics)."""

from __future__ import annotations

from pathlib import Path

import pytest

from wharf.daemon.core.runtime.users import UserIds, resolve_user
from wharf.errors import InvalidArgument, NotFound


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\n"
        "www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n"
        "app:x:1000:1000::/home/app:/bin/sh\n# comment\nbroken line\n")
    (tmp_path / "etc/group").write_text(
        "root:x:0:root\nwww-data:x:33:\napp:x:1000:\nwheel:x:10:app,root\ndocker:x:999:app\n")
    return tmp_path


def test_default_is_root_with_its_groups(rootfs: Path) -> None:
    assert resolve_user(rootfs) == UserIds(0, 0, (0, 10), "/root")


def test_names_and_numbers(rootfs: Path) -> None:
    # the primary group comes first among the supplementary ones, as dockerd sets them
    # (`docker run --user 4242:77 busybox id` prints groups=77)
    assert resolve_user(rootfs, "www-data:www-data") == UserIds(33, 33, (33,), "/var/www")
    assert resolve_user(rootfs, "app") == UserIds(1000, 1000, (1000, 10, 999), "/home/app")
    assert resolve_user(rootfs, "1000") == UserIds(1000, 1000, (1000, 10, 999), "/home/app")
    assert resolve_user(rootfs, "4242") == UserIds(4242, 0, (0,), "/")
    assert resolve_user(rootfs, "4242:77") == UserIds(4242, 77, (77,), "/")
    assert resolve_user(rootfs, "app", group_add=("www-data", "5")).additional_gids == (
        1000, 10, 999, 33, 5)


def test_unknown_names_are_not_found(rootfs: Path) -> None:
    with pytest.raises(NotFound, match="unable to find user x: no matching entries in passwd file"):
        resolve_user(rootfs, "x")
    with pytest.raises(NotFound, match="unable to find group nogroup"):
        resolve_user(rootfs, "app:nogroup")
    with pytest.raises(InvalidArgument):
        resolve_user(rootfs, "a:b:c")


def test_missing_files(tmp_path: Path) -> None:
    assert resolve_user(tmp_path, "1000:1000") == UserIds(1000, 1000, (1000,), "/")
    with pytest.raises(NotFound):
        resolve_user(tmp_path, "www-data")


def test_symlink_out_of_the_rootfs_is_not_followed(
    rootfs: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = tmp_path_factory.mktemp("host") / "passwd"
    outside.write_text("evil:x:0:0::/:/bin/sh\n")
    (rootfs / "etc/passwd").unlink()
    (rootfs / "etc/passwd").symlink_to(Path("../../..") / outside.relative_to("/"))
    with pytest.raises(NotFound):
        resolve_user(rootfs, "evil")
