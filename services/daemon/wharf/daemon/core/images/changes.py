"""Dockerfile-style ``--change`` lines (``docker import --change``, ``docker commit --change``)
applied to an image's container config."""

from __future__ import annotations

import json
import shlex
from typing import Any

from wharf.errors import InvalidArgument


def apply_changes(config: dict[str, Any], changes: list[str]) -> dict[str, Any]:
    """Apply Dockerfile-style ``--change`` lines (CMD, ENTRYPOINT, ENV, …) to a config."""
    out = dict(config)
    for change in changes:
        keyword, _, rest = change.strip().partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword in {"CMD", "ENTRYPOINT"}:
            out["Cmd" if keyword == "CMD" else "Entrypoint"] = _exec_form(rest)
        elif keyword == "ENV":
            key, sep, value = rest.partition("=")
            if not sep:
                key, _, value = rest.partition(" ")
            env = [e for e in out.get("Env") or [] if not e.startswith(key + "=")]
            out["Env"] = [*env, f"{key}={value.strip()}"]
        elif keyword in {"WORKDIR", "USER"}:
            out["WorkingDir" if keyword == "WORKDIR" else "User"] = rest
        elif keyword == "EXPOSE":
            ports = out.setdefault("ExposedPorts", {})
            for port in rest.split():
                ports[port if "/" in port else f"{port}/tcp"] = {}
        elif keyword == "LABEL":
            labels = out.setdefault("Labels", {})
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                labels[key] = value
        elif keyword == "VOLUME":
            volumes = out.setdefault("Volumes", {})
            for path in _exec_form(rest):
                volumes[path] = {}
        else:
            raise InvalidArgument(f"{keyword} is not a valid change command")
    return out


def _exec_form(text: str) -> list[str]:
    if text.startswith("["):
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise InvalidArgument(f"invalid JSON array in change: {text}") from exc
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidArgument(f"change must be a JSON array of strings: {text}")
        return value
    return ["/bin/sh", "-c", text]
