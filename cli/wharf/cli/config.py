"""The CLI's config file, ``<config dir>/config.json``, in Docker's format.

``{"auths": {"127.0.0.1:5000": {"auth": base64("user:pass")}}}``; Docker Hub's key is
``https://index.docker.io/v1/``. Writes are atomic (temp file, fsync, rename) with mode 0600 in a
0700 directory; unknown keys are kept as they were.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wharf.cli.failure import CLIError

INDEX_SERVER = "https://index.docker.io/v1/"
_HUB_NAMES = {"docker.io", "index.docker.io", "registry-1.docker.io", INDEX_SERVER,
              "https://index.docker.io", "https://registry-1.docker.io"}


def registry_key(server: str) -> str:
    """The key credentials for ``server`` are stored under (Docker's conventions)."""
    if not server or server in _HUB_NAMES or hostname(server) in _HUB_NAMES:
        return INDEX_SERVER
    return hostname(server)


def hostname(server: str) -> str:
    """``https://host:5000/v2/`` → ``host:5000`` (Docker's ConvertToHostname)."""
    text = server
    for scheme in ("http://", "https://"):
        if text.startswith(scheme):
            text = text[len(scheme):]
    return text.split("/", 1)[0]


@dataclass(frozen=True)
class Credentials:
    """What is stored for one registry."""

    server: str
    username: str = ""
    password: str = ""
    identity_token: str = ""

    def auth_config(self) -> dict[str, str]:
        """The AuthConfig fields Docker sends for these credentials (empty ones left out)."""
        data = {"username": self.username, "password": self.password,
                "serveraddress": self.server, "identitytoken": self.identity_token}
        return {k: v for k, v in data.items() if v}


@dataclass
class ConfigFile:
    """``config.json`` loaded into memory; :meth:`save` writes it back atomically."""

    path: Path
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, directory: Path) -> ConfigFile:
        path = directory / "config.json"
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return cls(path)
        except (OSError, ValueError) as exc:
            raise CLIError(f"cannot read the wharf config file {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise CLIError(f"the wharf config file {path} does not hold a JSON object")
        return cls(path, data)

    @property
    def auths(self) -> dict[str, Any]:
        auths = self.data.setdefault("auths", {})
        if not isinstance(auths, dict):
            raise CLIError(f'"auths" in {self.path} must be a JSON object')
        return auths

    def _find(self, server: str) -> str | None:
        key = registry_key(server)
        if key in self.auths:
            return key
        return next((k for k in self.auths if registry_key(k) == key), None)

    def credentials(self, server: str) -> Credentials | None:
        """Stored credentials for a registry (``docker.io`` or ``host:port``), if any."""
        key = self._find(server)
        if key is None:
            return None
        entry = self.auths[key]
        if not isinstance(entry, dict):
            return None
        username, password = "", ""
        if entry.get("auth"):
            try:
                raw = base64.b64decode(str(entry["auth"])).decode()
            except (binascii.Error, UnicodeDecodeError) as exc:
                raise CLIError(f"invalid auth entry for {key} in {self.path}") from exc
            username, _, password = raw.partition(":")
        return Credentials(key, username, password, str(entry.get("identitytoken", "")))

    def store(self, creds: Credentials) -> None:
        """Remember credentials (in memory; call :meth:`save`)."""
        key = registry_key(creds.server)
        old = self._find(key)
        if old is not None:
            del self.auths[old]
        entry: dict[str, str] = {}
        if creds.identity_token:
            entry["auth"] = base64.b64encode(f"{creds.username}:".encode()).decode()
            entry["identitytoken"] = creds.identity_token
        else:
            entry["auth"] = base64.b64encode(
                f"{creds.username}:{creds.password}".encode()).decode()
        self.auths[key] = entry

    def forget(self, server: str) -> bool:
        """Drop a registry's credentials; False when there were none."""
        key = self._find(server)
        if key is None:
            return False
        del self.auths[key]
        return True

    def save(self) -> None:
        """Write atomically: a 0600 temp file in the same 0700 directory, fsync, rename."""
        directory = self.path.parent
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".config.", suffix=".tmp", dir=directory)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump(self.data, handle, indent="\t")
                handle.write("\n")
                handle.flush()
                os.fsync(handle.fileno())
            Path(tmp).replace(self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                Path(tmp).unlink()
            raise
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def auth_header(config: ConfigFile, registry: str) -> str:
    """``X-Registry-Auth`` for a registry: stored credentials, or ``e30=`` (``{}``) like Docker."""
    creds = config.credentials(registry)
    if creds is None:
        return "e30="
    # pydantic costs ~100 ms to import: only pay it when there are credentials to send
    from wharf.models import AuthConfig  # noqa: PLC0415

    return AuthConfig.model_validate(creds.auth_config()).to_header()
