"""A container's mounts: Docker's ``Binds``, ``Mounts``, ``Tmpfs`` and ``Config.Volumes`` →
:class:`MountPoint` records (pure, apart from the ``exists`` probe for ``--mount type=bind``).

Precedence is dockerd's: ``--volumes-from`` first, then ``Binds``/``Mounts``/``Tmpfs`` (two of
them at one destination is an error), then an anonymous volume for every ``Config.Volumes``
(image ``VOLUME``) path nothing else covers.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pydantic import BaseModel, Field

from wharf import ids
from wharf.daemon.core.runtime import mounts as fsmounts
from wharf.daemon.core.volumes import options as vopts
from wharf.errors import InvalidArgument

PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave")
_GiB, _MiB, _KiB = 1 << 30, 1 << 20, 1 << 10


class MountPoint(BaseModel):
    """One mount of a container, kept in its record; ``inspect`` shows Docker's fields."""

    type: str  # volume | bind | tmpfs
    destination: str
    name: str = ""  # the volume's name
    source: str = ""  # host path (a volume's _data, filled in when the volume is attached)
    driver: str = ""
    mode: str = ""
    rw: bool = True
    propagation: str = ""
    anonymous: bool = False
    copy_data: bool = True  # seed a new, empty volume with the image's content
    create_source: bool = False  # ``-v /missing:/x`` creates /missing
    recursive: bool = True  # rbind (BindOptions.NonRecursive → bind)
    tmpfs_options: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    driver_opts: dict[str, str] = Field(default_factory=dict)

    def docker(self) -> dict[str, Any]:
        """The ``Mounts`` entry of container inspect."""
        out: dict[str, Any] = {"Type": self.type}
        if self.type == "volume":
            out["Name"] = self.name
        out.update({"Source": self.source, "Destination": self.destination})
        if self.type == "volume":
            out["Driver"] = self.driver or vopts.LOCAL
        out.update({"Mode": self.mode, "RW": self.rw, "Propagation": self.propagation})
        return out

    def oci(self) -> fsmounts.Mount:
        """The OCI mount: a bind of the source (rprivate unless told) or a tmpfs."""
        if self.type == "tmpfs":
            opts = [self.tmpfs_options] if self.tmpfs_options else []
            return fsmounts.tmpfs_mount(self.destination, ",".join([*opts, *self._ro()]))
        return fsmounts.Mount(self.destination, self.source, "bind",
                              ("rbind" if self.recursive else "bind",
                               self.propagation or "rprivate", *self._ro()))

    def _ro(self) -> list[str]:
        return [] if self.rw else ["ro"]


def _mount_error(kind: str, message: str) -> InvalidArgument:
    return InvalidArgument(f'invalid mount config for type "{kind}": {message}')


def _absolute(path: str, kind: str) -> str:
    if not path.startswith("/"):
        raise _mount_error(kind, f"invalid mount path: '{path}' mount path must be absolute")
    clean = posixpath.normpath(path)
    return "/" + clean.lstrip("/")


def _destination(path: str, kind: str) -> str:
    clean = _absolute(path, kind)
    if clean == "/":
        raise InvalidArgument("invalid specification: destination can't be '/'")
    return clean


def parse_bind(spec: str, new_name: Callable[[], str] = ids.new_id) -> MountPoint:
    """One ``Binds`` entry: ``[name|/host/path:]/container/path[:mode]``.

    ``mode`` is a comma list of at most one each of ``ro``/``rw``, ``z``/``Z``, a propagation
    (binds only) and ``nocopy`` (volumes only).

    Raises:
        InvalidArgument: in dockerd's words.
    """
    if not isinstance(spec, str) or not spec:
        raise InvalidArgument(f"invalid volume specification: '{spec}'")
    parts = spec.split(":")
    if len(parts) > 3 or any(p == "" for p in parts):
        raise InvalidArgument(f"invalid volume specification: '{spec}'")
    source = parts[0] if len(parts) >= 2 else ""
    target = parts[1] if len(parts) >= 2 else parts[0]
    mode = parts[2] if len(parts) == 3 else ""
    kind = "bind" if source.startswith("/") else "volume"
    try:
        destination = _destination(target, kind)
    except InvalidArgument as exc:
        raise InvalidArgument(f"invalid volume specification: '{spec}': {exc.message}") from None
    rw, propagation, nocopy = _mode(mode, kind)
    if kind == "bind":
        return MountPoint(type="bind", source=_absolute(source, kind), destination=destination,
                          mode=mode, rw=rw, propagation=propagation or "rprivate",
                          create_source=True)
    if source:
        vopts.validate_name(source)
    return MountPoint(type="volume", name=source or new_name(), anonymous=not source,
                      destination=destination, mode=mode or "z", rw=rw, copy_data=not nocopy,
                      driver=vopts.LOCAL)


def _mode(mode: str, kind: str) -> tuple[bool, str, bool]:
    """(rw, propagation, nocopy) of a ``-v`` mode string."""
    seen: dict[str, str] = {}
    for word in mode.split(",") if mode else []:
        if word in ("ro", "rw"):
            group = "rw"
        elif word in ("z", "Z"):
            group = "label"
        elif word in PROPAGATIONS and kind == "bind":
            group = "propagation"
        elif word == "nocopy" and kind == "volume":
            group = "copy"
        else:
            raise InvalidArgument(f"invalid mode: {mode}")
        if group in seen:
            raise InvalidArgument(f"invalid mode: {mode}")
        seen[group] = word
    return seen.get("rw") != "ro", seen.get("propagation", ""), "copy" in seen


def parse_mount(spec: Any, *, exists: Callable[[str], bool] = os.path.exists,
                new_name: Callable[[], str] = ids.new_id) -> MountPoint:
    """One ``HostConfig.Mounts`` entry (``Type`` volume, bind or tmpfs).

    Raises:
        InvalidArgument: a bad field, or a bind source that does not exist (``--mount``
            never creates it).
    """
    if not isinstance(spec, dict):
        raise InvalidArgument("HostConfig.Mounts entries must be objects")
    kind = spec.get("Type")
    if kind not in ("volume", "bind", "tmpfs"):
        raise _mount_error(str(kind or ""), "mount type unknown")
    target, source = spec.get("Target") or "", spec.get("Source") or ""
    if not isinstance(target, str) or not isinstance(source, str):
        raise _mount_error(kind, "fields Source and Target must be strings")
    if not target:
        raise _mount_error(kind, "field Target must not be empty")
    destination = _destination(target, kind)
    rw = not _flag(spec.get("ReadOnly"), kind, "ReadOnly")
    for other in ("BindOptions", "VolumeOptions", "TmpfsOptions"):
        if spec.get(other) and other.lower() != f"{kind}options":
            raise _mount_error(kind, f"field {other} must not be specified")
    if kind == "bind":
        return _bind_mount(spec, source, destination, rw, exists)
    if kind == "tmpfs":
        if source:
            raise _mount_error(kind, "field Source must not be specified")
        return MountPoint(type="tmpfs", destination=destination, rw=rw,
                          tmpfs_options=tmpfs_options(spec.get("TmpfsOptions")))
    return _volume_mount(spec, source, destination, rw, new_name)


def _flag(value: Any, kind: str, what: str) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    raise _mount_error(kind, f"field {what} must be a boolean")


def _bind_mount(spec: dict[str, Any], source: str, destination: str, rw: bool,
                exists: Callable[[str], bool]) -> MountPoint:
    if not source:
        raise _mount_error("bind", "field Source must not be empty")
    source = _absolute(source, "bind")
    options = spec.get("BindOptions") or {}
    if not isinstance(options, dict):
        raise _mount_error("bind", "field BindOptions must be an object")
    propagation = str(options.get("Propagation") or "rprivate")
    if propagation not in PROPAGATIONS:
        raise _mount_error("bind", f"invalid propagation mode: {propagation}")
    if not exists(source):
        raise _mount_error("bind", f"bind source path does not exist: {source}")
    return MountPoint(type="bind", source=source, destination=destination, rw=rw,
                      propagation=propagation,
                      recursive=not _flag(options.get("NonRecursive"), "bind", "NonRecursive"))


def _volume_mount(spec: dict[str, Any], source: str, destination: str, rw: bool,
                  new_name: Callable[[], str]) -> MountPoint:
    options = spec.get("VolumeOptions") or {}
    if not isinstance(options, dict):
        raise _mount_error("volume", "field VolumeOptions must be an object")
    if source:
        vopts.validate_name(source)
    config = options.get("DriverConfig") or {}
    if not isinstance(config, dict):
        raise _mount_error("volume", "field DriverConfig must be an object")
    return MountPoint(
        type="volume", name=source or new_name(), anonymous=not source,
        destination=destination, rw=rw, driver=str(config.get("Name") or vopts.LOCAL),
        copy_data=not _flag(options.get("NoCopy"), "volume", "NoCopy"),
        labels=vopts.string_map(options.get("Labels"), "VolumeOptions.Labels"),
        driver_opts=vopts.string_map(config.get("Options"), "DriverConfig.Options"))


def tmpfs_options(options: Any) -> str:
    """``TmpfsOptions`` (``SizeBytes``, ``Mode``) as mount options, the way dockerd writes them.

    Raises:
        InvalidArgument: a negative or non-integer size, or a bad mode.
    """
    if not options:
        return ""
    if not isinstance(options, dict):
        raise _mount_error("tmpfs", "field TmpfsOptions must be an object")
    out = []
    size, mode = options.get("SizeBytes"), options.get("Mode")
    if size not in (None, 0):
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise _mount_error("tmpfs", "invalid tmpfs option: size must be a positive integer")
        for suffix, divisor in (("g", _GiB), ("m", _MiB), ("k", _KiB)):
            if size % divisor == 0:
                out.append(f"size={size // divisor}{suffix}")
                break
        else:
            out.append(f"size={size}")
    if mode not in (None, 0):
        if isinstance(mode, bool) or not isinstance(mode, int) or not 0 < mode <= 0o7777:
            raise _mount_error("tmpfs", "invalid tmpfs option: bad mode")
        out.append(f"mode={mode:o}")
    return ",".join(out)


def from_volumes_from(mounts: Iterable[MountPoint], mode: str) -> list[MountPoint]:
    """The volume and bind mounts of another container (``--volumes-from c[:ro|rw]``)."""
    if mode not in ("", "ro", "rw"):
        raise InvalidArgument(f"invalid mode: {mode}")
    out = []
    for mount in mounts:
        if mount.type == "tmpfs":
            continue
        rw = mount.rw if not mode else mode == "rw"
        out.append(mount.model_copy(update={"rw": rw, "create_source": False,
                                            "copy_data": False}))
    return out


def check_tmpfs(tmpfs: Any) -> dict[str, str]:
    """``HostConfig.Tmpfs``: ``{"/path": "size=64m,mode=1777"}``.

    Raises:
        InvalidArgument: not an object of strings, a relative path or an unknown option.
    """
    table = vopts.string_map(tmpfs, "HostConfig.Tmpfs")
    for path, options in table.items():
        _destination(path, "tmpfs")
        vopts.check_tmpfs_options(options, f"invalid tmpfs mount {path!r}: ")
    return table


def plan(host: Mapping[str, Any], image_volumes: Any, *,
         inherited: Iterable[MountPoint] = (),
         exists: Callable[[str], bool] = os.path.exists,
         new_name: Callable[[], str] = ids.new_id) -> list[MountPoint]:
    """Every mount of a new container, in dockerd's precedence (see the module docstring).

    Raises:
        InvalidArgument: a bad spec, or two explicit mounts at one destination
            (``Duplicate mount point``).
    """
    binds = host.get("Binds") or []
    mounts = host.get("Mounts") or []
    if not isinstance(binds, list) or not isinstance(mounts, list):
        raise InvalidArgument("HostConfig.Binds and HostConfig.Mounts must be lists")
    driver = host.get("VolumeDriver") or vopts.LOCAL  # -v NAME:… volumes use this driver
    explicit = [parse_bind(b, new_name) for b in binds]
    explicit = [m.model_copy(update={"driver": str(driver)}) if m.type == "volume" else m
                for m in explicit]
    explicit += [parse_mount(m, exists=exists, new_name=new_name) for m in mounts]
    taken: set[str] = set(check_tmpfs(host.get("Tmpfs")))
    for mount in explicit:
        if mount.destination in taken:
            raise InvalidArgument(f"Duplicate mount point: {mount.destination}")
        taken.add(mount.destination)
    result = {m.destination: m for m in inherited if m.destination not in taken}
    result.update({m.destination: m for m in explicit})
    if image_volumes is not None and not isinstance(image_volumes, dict):
        raise InvalidArgument("Config.Volumes must be an object")
    for path in image_volumes or {}:
        destination = _destination(str(path), "volume")
        if destination not in result and destination not in taken:
            result[destination] = MountPoint(type="volume", name=new_name(), anonymous=True,
                                             destination=destination, driver=vopts.LOCAL)
    return list(result.values())
