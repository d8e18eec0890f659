"""Paths inside a container root (``core.rootpath``): no symlink, ``..`` chain or loop leads out
of the root; checked on plain temp dirs, and against the kernel itself inside a chroot."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from wharf.daemon.core.rootpath import MAX_SYMLINKS, OutsideRoot, host_path, resolve_in_root
from wharf.errors import InvalidArgument, NotFound


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A container root with links that would leave it if followed on the host."""
    r = tmp_path / "rootfs"
    (r / "etc").mkdir(parents=True)
    (r / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (r / "data/deep/er").mkdir(parents=True)
    (r / "abs").symlink_to("/etc")  # absolute: must mean the container's /etc
    (r / "rel").symlink_to("../../../etc")  # climbs above the root: clamped at /
    (r / "data/up").symlink_to("..")
    (r / "data/deep/er/out").symlink_to("../../../../../../../../..")
    (r / "escape").symlink_to("/../../..")
    (r / "host").symlink_to(tmp_path)  # the host's path of the root's parent
    (r / "loop").symlink_to("loop")
    (r / "ping").symlink_to("pong")
    (r / "pong").symlink_to("/ping")
    (tmp_path / "secret").write_text("host file")
    return r


def _inside(root: Path, container_path: str) -> bool:
    """The host path is below the root with no symlink on the way (realpath changes nothing)."""
    host = host_path(root, container_path)
    real = os.path.realpath(host)
    return real == str(host) and (real + "/").startswith(os.path.realpath(root) + "/")


def test_absolute_symlinks_mean_the_containers_paths(root: Path) -> None:
    assert resolve_in_root(root, "/abs/passwd") == "/etc/passwd"
    assert resolve_in_root(root, "abs/passwd", must_exist=True) == "/etc/passwd"
    # a link to the host path of the root's parent is, in the container, just a missing path
    assert resolve_in_root(root, "/host/secret") == str(root.parent / "secret")
    with pytest.raises(NotFound):
        resolve_in_root(root, "/host/secret", must_exist=True)
    assert _inside(root, resolve_in_root(root, "/host/secret"))


def test_confined_paths_refuse_what_leads_out_instead_of_clamping_it(root: Path) -> None:
    # a build context: its links may not point out of it at all
    for path in ("abs/passwd", "rel/passwd", "data/deep/er/out", "escape", "..", "data/../.."):
        with pytest.raises(OutsideRoot):
            resolve_in_root(root, path, must_exist=True, confine=True)
    assert resolve_in_root(root, "data/up/etc/passwd", must_exist=True,
                           confine=True) == "/etc/passwd"
    with pytest.raises(InvalidArgument, match="too many levels"):
        resolve_in_root(root, "loop", must_exist=True, confine=True)


def test_dotdot_chains_stop_at_the_root(root: Path) -> None:
    assert resolve_in_root(root, "/rel/passwd") == "/etc/passwd"
    assert resolve_in_root(root, "/data/up/etc") == "/etc"
    assert resolve_in_root(root, "/escape") == "/"
    assert resolve_in_root(root, "/data/deep/er/out/etc/passwd", must_exist=True) == "/etc/passwd"
    assert resolve_in_root(root, "/../../etc/../etc/passwd") == "/etc/passwd"
    assert resolve_in_root(root, "/" + "../" * 50 + "etc") == "/etc"
    assert resolve_in_root(root, "/data/up/data/up/rel/../..") == "/"
    for path in ("/escape", "/rel", "/data/deep/er/out", "/" + "../" * 50):
        assert _inside(root, resolve_in_root(root, path))


def test_symlink_loops_are_refused(root: Path) -> None:
    for path in ("/loop", "/ping", "/loop/x", "/data/up/ping/etc"):
        with pytest.raises(InvalidArgument, match="too many levels of symbolic links"):
            resolve_in_root(root, path)
        with pytest.raises(InvalidArgument):
            resolve_in_root(root, path, must_exist=True)


def test_the_link_limit_is_the_kernels(tmp_path: Path) -> None:
    (tmp_path / "l0").mkdir()
    for i in range(1, MAX_SYMLINKS + 2):
        (tmp_path / f"l{i}").symlink_to(f"l{i - 1}")
    assert MAX_SYMLINKS == 40
    assert resolve_in_root(tmp_path, f"/l{MAX_SYMLINKS}", must_exist=True) == "/l0"
    with pytest.raises(InvalidArgument):
        resolve_in_root(tmp_path, f"/l{MAX_SYMLINKS + 1}")


def test_missing_components_are_kept_unless_they_must_exist(root: Path) -> None:
    assert resolve_in_root(root, "/missing/../etc/x") == "/etc/x"
    assert resolve_in_root(root, "/abs/new/file") == "/etc/new/file"
    assert resolve_in_root(root, "/etc/passwd/x") == "/etc/passwd/x"
    for path in ("/missing", "/missing/../etc", "/etc/passwd/x", "/etc/passwd/.."):
        with pytest.raises(NotFound):
            resolve_in_root(root, path, must_exist=True)
    assert resolve_in_root(root, "/", must_exist=True) == "/"
    assert resolve_in_root(root, "", must_exist=True) == "/"


def test_host_path_stays_below_the_root(tmp_path: Path) -> None:
    assert host_path(tmp_path, "/") == tmp_path
    assert host_path(tmp_path, "/etc/passwd") == tmp_path / "etc/passwd"
    assert host_path(tmp_path, "/../../etc") == tmp_path / "etc"
    assert host_path(tmp_path, "a/../../..") == tmp_path


# -- against the kernel: the same path looked up inside a chroot of the root -------------------

_NAMES = ["a", "b", "c", "d"]
_KERNEL = r"""
import json, os, sys
root, paths = sys.argv[1], json.loads(sys.argv[2])
os.chroot(root)
os.chdir("/")
out = []
for p in paths:
    try:
        st = os.stat(p)
        out.append([st.st_dev, st.st_ino])
    except OSError as exc:
        out.append(exc.errno)
print(json.dumps(out))
"""


def _random_tree(root: Path, rng: random.Random) -> None:
    """Dirs, files and symlinks with absolute, relative, climbing and looping targets."""
    root.mkdir()
    dirs = [root]
    for _ in range(40):
        parent = rng.choice(dirs)
        name = parent / rng.choice(_NAMES)
        if os.path.lexists(name):
            continue
        kind = rng.random()
        if kind < 0.3:
            name.mkdir()
            dirs.append(name)
        elif kind < 0.4:
            name.write_text("f")
        else:
            parts = [rng.choice([*_NAMES, "..", ".", ".."]) for _ in range(rng.randint(1, 5))]
            name.symlink_to(("/" if rng.random() < 0.4 else "") + "/".join(parts))


def _random_path(rng: random.Random) -> str:
    return "/" + "/".join(rng.choice([*_NAMES, "..", "."]) for _ in range(rng.randint(1, 6)))


@pytest.mark.skipif(os.geteuid() != 0, reason="chroot needs root")
def test_random_trees_resolve_as_the_kernel_does_in_a_chroot(tmp_path: Path) -> None:
    rng = random.Random(10)
    checked = {"same": 0, "missing": 0, "loop": 0}
    for n in range(30):
        root = tmp_path / f"t{n}"
        _random_tree(root, rng)
        paths = list({_random_path(rng) for _ in range(60)})
        kernel = json.loads(subprocess.run(
            [sys.executable, "-I", "-S", "-c", _KERNEL, str(root), json.dumps(paths)],
            capture_output=True, text=True, check=True).stdout)
        for path, answer in zip(paths, kernel, strict=True):
            try:
                lenient = resolve_in_root(root, path)
            except InvalidArgument:
                lenient = None
            else:
                assert _inside(root, lenient), (n, path, lenient)
            try:
                ours = resolve_in_root(root, path, must_exist=True)
            except NotFound:
                assert answer in (2, 20), (n, path, answer)  # ENOENT, ENOTDIR
                checked["missing"] += 1
                continue
            except InvalidArgument:
                assert answer == 40 and lenient is None, (n, path, answer)  # ELOOP
                checked["loop"] += 1
                continue
            assert _inside(root, ours) and lenient == ours, (n, path, ours, lenient)
            st = os.stat(host_path(root, ours))
            assert answer == [st.st_dev, st.st_ino], (n, path, ours, answer)
            checked["same"] += 1
    assert all(count > 20 for count in checked.values()), checked
