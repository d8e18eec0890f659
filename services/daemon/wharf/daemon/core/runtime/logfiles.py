"""Container log limits: ``--log-opt max-size/max-file``, conmon's cap and the files kept.

conmon writes the k8s-file log ``ctr.log``; with ``--log-size-max`` it never lets the file pass
that size: when the next line would, it starts an empty file in its place (``ctr.log.tmp``
renamed over ``ctr.log``), even while wharfd is down. That is Docker's ``max-file=1``.

For ``max-file`` N > 1 the older files are kept beside it, oldest last: ``ctr.log.1`` …
``ctr.log.<N-1>``. ``ctr.log.0`` is a hard link to the file conmon writes; when conmon replaces
``ctr.log``, the old file lives on through that link, and :class:`LogKeeper` (a daemon thread,
a look each second) shifts it to ``ctr.log.1``, drops what is past N and links the new file.
So at most N files of max-size each are on disk, plus, for the moment between conmon starting a
new file and the keeper's next look (or while wharfd is down), the one ``ctr.log.0`` holds.
A container that starts again begins a new file when it keeps older ones (conmon counts from
its own start); with ``max-file=1`` it appends, so that file may reach twice max-size once.

The limits of a container are resolved at create, the daemon's ``log-opts`` merged under the
container's own (dockerd's rule, key by key), and kept in ``log.json`` in its directory.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from wharf.errors import InvalidArgument

log = logging.getLogger("wharf.runtime")

LIMITS_FILE = "log.json"
LOG_FILE = "ctr.log"
# The daemon's default: Docker's "local" driver bounds (5 files of 20 MB).
DEFAULT_LOG_OPTS = {"max-size": "20m", "max-file": "5"}
# json-file's options (moby's ValidateLogOpt); wharf acts on max-size and max-file.
_KNOWN = frozenset({"max-size", "max-file", "compress", "labels", "labels-regex", "env",
                    "env-regex", "tag", "mode", "max-buffer-size"})
_FILE_DRIVERS = ("", "json-file", "k8s-file", "local")
# go-units FromHumanSize: decimal multiples, an optional i and b ("10m", "1.5GB", "512k").
_SIZE = re.compile(r"(\d+(?:\.\d+)?) ?([kmgtp])?i?b?", re.IGNORECASE)
_DECIMAL = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15}
_rotating = threading.Lock()  # the keeper and a container's start shift the same files


@dataclass(frozen=True)
class LogLimits:
    """``max_size`` in bytes (None: unbounded); ``max_file``: files kept, the live one included."""

    max_size: int | None = None
    max_file: int = 1


def from_human_size(text: str) -> int:
    """go-units ``FromHumanSize`` (what json-file uses for max-size): decimal multiples."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise InvalidArgument(f"invalid size: '{text}'")
    return int(float(match.group(1)) * _DECIMAL[(match.group(2) or "").lower()])


def parse_log_opts(opts: Mapping[str, str], driver: str = "") -> LogLimits:
    """The limits ``opts`` ask for, checked with dockerd's json-file messages (pure)."""
    if driver not in _FILE_DRIVERS:
        return LogLimits()  # wharf writes one kind of log; other drivers' options are theirs
    for key in opts:
        if key not in _KNOWN:
            raise InvalidArgument(f"unknown log opt '{key}' for json-file log driver")
    size = None
    if "max-size" in opts:
        size = from_human_size(str(opts["max-size"]))
        if size <= 0:
            raise InvalidArgument("max-size must be a positive number")
    files = 1
    if "max-file" in opts:
        try:
            files = int(str(opts["max-file"]))
        except ValueError:
            raise InvalidArgument(f"invalid max-file: '{opts['max-file']}'") from None
        if files < 1:
            raise InvalidArgument("max-file cannot be less than 1")
    return LogLimits(size, files if size is not None else 1)


def resolve(log_config: object, defaults: Mapping[str, str]) -> LogLimits:
    """A create request's ``HostConfig.LogConfig`` over the daemon's ``log-opts`` (pure)."""
    config = log_config if isinstance(log_config, Mapping) else {}
    driver = str(config.get("Type") or "")
    own = config.get("Config") or {}
    if not isinstance(own, Mapping):
        raise InvalidArgument("HostConfig.LogConfig.Config must be an object")
    merged = {**defaults, **{str(k): str(v) for k, v in own.items()}}
    return parse_log_opts(merged, driver)


def write_limits(container_dir: Path, limits: LogLimits) -> None:
    """Keep ``limits`` in the container's directory (atomically)."""
    tmp = container_dir / f".{LIMITS_FILE}.tmp"
    tmp.write_text(json.dumps({"max_size": limits.max_size, "max_file": limits.max_file}))
    os.replace(tmp, container_dir / LIMITS_FILE)


def read_limits(container_dir: Path) -> LogLimits | None:
    """The limits kept for a container; None when it has none (created before they existed)."""
    try:
        data = json.loads((container_dir / LIMITS_FILE).read_text())
        return LogLimits(data.get("max_size"), int(data.get("max_file", 1)))
    except (OSError, ValueError, AttributeError):
        return None


def older_files(log_path: Path) -> list[Path]:
    """The kept files of ``log_path``, oldest first (``ctr.log.0`` when conmon replaced the log
    and the keeper has not shifted it yet)."""
    numbered = []
    for path in log_path.parent.glob(log_path.name + ".*"):
        suffix = path.name[len(log_path.name) + 1:]
        if suffix.isdigit() and suffix != "0":
            numbered.append((int(suffix), path))
    out = [path for _, path in sorted(numbered, reverse=True)]
    anchor = _numbered(log_path, 0)
    with contextlib.suppress(OSError):
        if not _same_file(anchor, log_path):
            out.append(anchor)
    return out


def keep(log_path: Path, max_file: int) -> None:
    """Keep the file conmon left when it started a new ``log_path`` (see the module doc)."""
    with _rotating:
        anchor = _numbered(log_path, 0)
        if not log_path.exists():
            return
        if os.path.lexists(anchor):
            if _same_file(anchor, log_path):
                return
            _shift(log_path, max_file)
        os.link(log_path, anchor)


def start_new_file(log_path: Path, limits: LogLimits) -> None:
    """Before a container's monitor starts: with older files kept, a non-empty log moves to
    ``ctr.log.1`` (conmon's size count starts at zero again)."""
    if limits.max_file <= 1 or limits.max_size is None:
        return
    with _rotating:
        try:
            if log_path.stat().st_size == 0:
                return
        except FileNotFoundError:
            return
        anchor = _numbered(log_path, 0)
        if os.path.lexists(anchor):
            if _same_file(anchor, log_path):
                anchor.unlink()  # rename(2) between two links of one file does nothing
            else:
                _shift(log_path, limits.max_file)  # a replaced file the keeper did not see
        os.replace(log_path, anchor)
        _shift(log_path, limits.max_file)


def _shift(log_path: Path, max_file: int) -> None:
    """``.0`` → ``.1`` → … ; what would pass ``.<max_file - 1>`` is removed."""
    _numbered(log_path, max_file - 1).unlink(missing_ok=True)
    for index in range(max_file - 2, -1, -1):
        with contextlib.suppress(FileNotFoundError):
            os.replace(_numbered(log_path, index), _numbered(log_path, index + 1))
    _numbered(log_path, 0).unlink(missing_ok=True)  # max_file == 1: nothing is kept


def _numbered(log_path: Path, index: int) -> Path:
    return log_path.with_name(f"{log_path.name}.{index}")


def _same_file(a: Path, b: Path) -> bool:
    sa, sb = os.stat(a), os.stat(b)
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


class LogKeeper:
    """A daemon thread that runs :func:`keep` for every container under ``containers_root``
    whose limits keep older files, once per ``interval`` seconds."""

    def __init__(self, containers_root: Path, interval: float = 1.0) -> None:
        self.root = containers_root
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="log-keeper", daemon=True)

    def start(self) -> LogKeeper:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def sweep(self) -> None:
        """One look at every container's log."""
        try:
            dirs = list(os.scandir(self.root))
        except FileNotFoundError:
            return
        for entry in dirs:
            limits = read_limits(Path(entry.path))
            if limits is None or limits.max_file <= 1 or limits.max_size is None:
                continue
            try:
                keep(Path(entry.path) / LOG_FILE, limits.max_file)
            except OSError as exc:  # removed meanwhile, or a disk problem: try next time
                log.debug("keeping the log files of %s: %s", entry.name, exc)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sweep()
