"""Resolve ``--user`` against the image's /etc/passwd and /etc/group, as Docker does.

Follows runc's ``user.GetExecUser`` (which dockerd uses): ``user[:group]`` where each part is
a name or a number; a numeric user needs no passwd entry, a named one does; supplementary
groups come from /etc/group membership only when the group was not given explicitly.
Files are read with the rootfs as root and never through symlinks that leave it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from wharf.daemon.core.runtime import procroot
from wharf.errors import InvalidArgument, NotFound

_MAX_ID = 2**31 - 1
_MAX_FILE = 16 << 20  # more passwd than any image has; a bigger file is read this far


@dataclass(frozen=True)
class UserIds:
    """The process identity for the OCI ``process.user`` object."""

    uid: int = 0
    gid: int = 0
    additional_gids: tuple[int, ...] = ()
    home: str = "/"


@dataclass(frozen=True)
class _Entry:
    name: str
    id: int
    gid: int = 0
    home: str = "/"
    members: tuple[str, ...] = field(default=())


def _read_in_root(rootfs: Path, rel: str) -> str | None:
    """A regular file of the rootfs, every link on the way read with the rootfs as ``/``
    (``procroot.open_in_root``; ``rootfs`` may be a running container's ``/proc/…`` root,
    which ``Path.resolve`` would turn into the host's ``/``). None when there is none."""
    try:
        fd = procroot.open_in_root(rootfs, rel, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return f.read(_MAX_FILE).decode(errors="replace")


def _parse(text: str | None, kind: str) -> list[_Entry]:
    out: list[_Entry] = []
    for line in (text or "").splitlines():
        parts = line.strip().split(":")
        if len(parts) < 3 or not parts[0] or not parts[2].isdigit():
            continue
        if kind == "passwd":
            gid = int(parts[3]) if len(parts) > 3 and parts[3].isdigit() else 0
            home = parts[5] if len(parts) > 5 and parts[5] else "/"
            out.append(_Entry(parts[0], int(parts[2]), gid, home))
        else:
            members = tuple(m for m in (parts[3] if len(parts) > 3 else "").split(",") if m)
            out.append(_Entry(parts[0], int(parts[2]), members=members))
    return out


def _numeric(value: str, what: str) -> int | None:
    if not value.isdigit():
        return None
    number = int(value)
    if number > _MAX_ID:
        raise InvalidArgument(f"{what} {value} is out of range")
    return number


def _match(entries: list[_Entry], arg: str, number: int | None) -> _Entry | None:
    for entry in entries:
        if (number is None and entry.name == arg) or (number is not None and entry.id == number):
            return entry
    return None


def resolve_user(rootfs: Path, spec: str = "", group_add: Sequence[str] = ()) -> UserIds:
    """uid, gid and supplementary gids for ``spec`` (``user``, ``uid``, ``user:group``...).

    Raises:
        NotFound: a named user or group has no entry in the image
            ("unable to find user x: no matching entries in passwd file").
        InvalidArgument: a malformed spec or an out-of-range number.
    """
    user_arg, _, group_arg = (spec or "").partition(":")
    if spec.count(":") > 1:
        raise InvalidArgument(f"invalid user spec {spec!r}: expected user[:group]")
    user_arg = user_arg or "0"
    uid_num = _numeric(user_arg, "uid")
    user = _match(_parse(_read_in_root(rootfs, "etc/passwd"), "passwd"), user_arg, uid_num)
    if user is None and uid_num is None:
        raise NotFound(f"unable to find user {user_arg}: no matching entries in passwd file")
    uid = user.id if user else int(user_arg)
    gid = user.gid if user else 0
    home = user.home if user else "/"
    groups = _parse(_read_in_root(rootfs, "etc/group"), "group")
    extra: list[int] = []
    if group_arg:
        gid = _resolve_group(groups, group_arg)
    elif user is not None:
        extra = [g.id for g in groups if user.name in g.members]
    extra += [_resolve_group(groups, g) for g in group_add]
    # dockerd (since the CVE-2023-25173 fix) lists the primary group first among the
    # supplementary ones: `id` in the container shows it in groups=
    return UserIds(uid, gid, tuple(dict.fromkeys([gid, *extra])), home)


def _resolve_group(groups: list[_Entry], arg: str) -> int:
    number = _numeric(arg, "gid")
    found = _match(groups, arg, number)
    if found is not None:
        return found.id
    if number is None:
        raise NotFound(f"unable to find group {arg}: no matching entries in group file")
    return number
