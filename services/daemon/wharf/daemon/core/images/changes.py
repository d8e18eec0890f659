"""Dockerfile-style ``--change`` lines (``docker import --change``, ``docker commit --change``)
applied to an image's container config."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from typing import Any

from wharf.errors import InvalidArgument


def apply_changes(config: dict[str, Any], changes: list[str]) -> dict[str, Any]:
    """Apply Dockerfile-style ``--change`` lines (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD,
    STOPSIGNAL, USER, VOLUME, WORKDIR: the ones dockerd accepts) to a config."""
    out = dict(config)
    for change in changes:
        keyword, _, rest = change.strip().partition(" ")
        if not keyword:
            continue
        apply = _CHANGES.get(keyword.upper())
        if apply is None:
            raise InvalidArgument(f"{keyword.upper()} is not a valid change command")
        apply(out, rest.strip())
    return out


def _env(out: dict[str, Any], rest: str) -> None:
    key, sep, value = rest.partition("=")
    if not sep:
        key, _, value = rest.partition(" ")
    env = [e for e in out.get("Env") or [] if not e.startswith(key + "=")]
    out["Env"] = [*env, f"{key}={value.strip()}"]


def _expose(out: dict[str, Any], rest: str) -> None:
    ports = out.setdefault("ExposedPorts", {})
    for port in rest.split():
        ports[port if "/" in port else f"{port}/tcp"] = {}


def _label(out: dict[str, Any], rest: str) -> None:
    labels = out.setdefault("Labels", {})
    for item in shlex.split(rest):
        key, _, value = item.partition("=")
        labels[key] = value


def _volume(out: dict[str, Any], rest: str) -> None:  # paths, not a command: no shell form
    out["Volumes"] = {**(out.get("Volumes") or {}), **{v: {} for v in _paths(rest)}}


def _set(key: str) -> Callable[[dict[str, Any], str], None]:
    def apply(out: dict[str, Any], rest: str) -> None:
        out[key] = rest
    return apply


def _command(key: str) -> Callable[[dict[str, Any], str], None]:
    def apply(out: dict[str, Any], rest: str) -> None:
        out[key] = _exec_form(rest)
    return apply


def _onbuild(out: dict[str, Any], rest: str) -> None:
    out["OnBuild"] = [*(out.get("OnBuild") or []), rest]


_CHANGES: dict[str, Callable[[dict[str, Any], str], None]] = {
    "CMD": _command("Cmd"), "ENTRYPOINT": _command("Entrypoint"), "ENV": _env,
    "EXPOSE": _expose, "LABEL": _label, "ONBUILD": _onbuild, "STOPSIGNAL": _set("StopSignal"),
    "USER": _set("User"), "VOLUME": _volume, "WORKDIR": _set("WorkingDir"),
}


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


def _paths(text: str) -> list[str]:
    """VOLUME's argument: a JSON array of paths, or paths separated by spaces."""
    if text.startswith("["):
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise InvalidArgument(f"invalid JSON array in change: VOLUME {text}") from exc
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidArgument(f"VOLUME must be a JSON array of strings: {text}")
        return value
    return text.split()
