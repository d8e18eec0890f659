"""Volume names and the ``local`` driver's options, validated as dockerd validates them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wharf.errors import InvalidArgument, NotFound

LOCAL = "local"
ANONYMOUS_LABEL = "com.docker.volume.anonymous"  # what dockerd >= 23 puts on anonymous volumes
NAME_CHARS = "[a-zA-Z0-9][a-zA-Z0-9_.-]"
# Patterns are used with fullmatch: "$" with re.match also accepts a final newline.
_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")
_LOCAL_KEYS = ("type", "device", "o", "size")
_REQUIRES = {"device": ("type",), "type": ("device",), "o": ("device", "type")}
# tmpfs mount options the kernel knows; anything else is refused before it reaches mount(2).
_TMPFS_FLAGS = {
    "rw", "ro", "exec", "noexec", "suid", "nosuid", "dev", "nodev", "sync", "async", "dirsync",
    "atime", "noatime", "diratime", "nodiratime", "relatime", "norelatime", "strictatime",
    "nostrictatime", "mand", "nomand", "lazytime", "nolazytime", "tmpcopyup",
}
_TMPFS_KEYS = {"size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "mpol", "huge"}
_SIZE = re.compile(r"\d+[kKmMgG%]?")
_MODE = re.compile(r"[0-7]{1,4}")
# Flags of the bind variant of the local driver (``type=none,o=bind``).
_BIND_FLAGS = {"bind", "rbind", "ro", "rw", "nosuid", "suid", "nodev", "dev", "noexec", "exec"}


def validate_name(name: str) -> str:
    """A volume name as dockerd's local driver accepts it.

    Raises:
        InvalidArgument: the name is too short or has other characters.
    """
    if not _NAME.fullmatch(name):
        raise InvalidArgument(
            f'create {name}: "{name}" includes invalid characters for a local volume name, only '
            f'"{NAME_CHARS}" are allowed. If you intended to pass a host directory, use '
            "absolute path")
    return name


def is_name(text: str) -> bool:
    return _NAME.fullmatch(text) is not None


def check_driver(name: str, driver: str) -> str:
    """``local`` (or empty, meaning local); any other driver is an unknown plugin.

    Raises:
        NotFound: dockerd answers 404 for a volume plugin it cannot find.
    """
    if driver in ("", LOCAL):
        return LOCAL
    raise NotFound(f'create {name}: error looking up volume plugin {driver}: plugin "{driver}" '
                   "not found")


@dataclass(frozen=True)
class LocalOptions:
    """The local driver's options: a plain dir (``kind`` "") or a tmpfs/bind mounted at use."""

    kind: str = ""  # "", "tmpfs" or "bind"
    device: str = ""
    options: str = ""  # the ``o=`` string

    @property
    def mounted(self) -> bool:
        return bool(self.kind)


def local_options(name: str, opts: Mapping[str, str]) -> LocalOptions:
    """Parse ``DriverOpts`` (``type``, ``device``, ``o``) of the local driver.

    wharf honours a plain directory, ``type=tmpfs device=tmpfs o=size=…`` and
    ``type=none o=bind device=/path``; other filesystem types are refused.

    Raises:
        InvalidArgument: an unknown key, a missing companion key, a type or option wharf
            cannot mount.
    """
    for key in opts:
        if key not in _LOCAL_KEYS:
            raise InvalidArgument(f'create {name}: invalid option: "{key}"')
    for key, needs in _REQUIRES.items():
        for need in needs:
            if key in opts and need not in opts:
                raise InvalidArgument(f'create {name}: missing required option: "{need}"')
    if "size" in opts:
        raise InvalidArgument(f"create {name}: quota size requested but no quota support")
    if not opts:
        return LocalOptions()
    kind, device, options = opts["type"], opts["device"], opts.get("o", "")
    flags = [o for o in options.split(",") if o]
    if kind == "tmpfs":
        check_tmpfs_options(options, f"create {name}: ")
        return LocalOptions("tmpfs", device or "tmpfs", options)
    if kind == "none" and ("bind" in flags or "rbind" in flags):
        if not device.startswith("/"):
            raise InvalidArgument(f"create {name}: a bind device must be an absolute path: "
                                  f"{device!r}")
        unknown = [f for f in flags if f not in _BIND_FLAGS]
        if unknown:
            raise InvalidArgument(f"create {name}: invalid bind option: {unknown[0]!r}")
        return LocalOptions("bind", device, options)
    raise InvalidArgument(
        f"create {name}: the local driver of wharf mounts type=tmpfs or type=none with o=bind; "
        f"type={kind!r} with o={options!r} is not supported")


def check_tmpfs_options(options: str, prefix: str = "") -> list[str]:
    """The comma-separated tmpfs options, each one the kernel knows.

    Raises:
        InvalidArgument: an unknown option or a malformed size/mode.
    """
    out = []
    for option in (o.strip() for o in options.split(",")):
        if not option:
            continue
        key, sep, value = option.partition("=")
        if (not sep and key not in _TMPFS_FLAGS) or (sep and key not in _TMPFS_KEYS):
            raise InvalidArgument(f"{prefix}invalid tmpfs option {option!r}")
        if key == "size" and not _SIZE.fullmatch(value):
            raise InvalidArgument(f"{prefix}invalid tmpfs size {value!r}")
        if key == "mode" and not _MODE.fullmatch(value):
            raise InvalidArgument(f"{prefix}invalid tmpfs mode {value!r}")
        if key in ("uid", "gid", "nr_inodes", "nr_blocks") and not _SIZE.fullmatch(value):
            raise InvalidArgument(f"{prefix}invalid tmpfs option {option!r}")
        out.append(option)
    return out


def string_map(value: Any, what: str) -> dict[str, str]:
    """A JSON object of strings (``null`` is empty).

    Raises:
        InvalidArgument: not an object, or a value that is not a string.
    """
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise InvalidArgument(f"{what} must be an object of strings")
    return dict(value)
