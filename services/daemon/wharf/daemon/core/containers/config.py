"""From a Docker create request and the image config to what the engine records and runs.

Pure functions: the request's ``Config`` is merged with the image's (Cmd/Entrypoint, Env,
WorkingDir, User, Labels, Healthcheck); ``HostConfig`` becomes the container's typed options in
``options``.
"""

from __future__ import annotations

import shlex
from typing import Any

from wharf.daemon.core.containers import health
from wharf.errors import InvalidArgument


def merge_config(request: dict[str, Any], image_config: dict[str, Any],
                 short_id: str) -> dict[str, Any]:
    """Docker's container Config: the request's fields, the image's where the request is empty."""
    image = image_config.get("config") or {}
    config: dict[str, Any] = {
        "Hostname": request.get("Hostname") or short_id,
        "Domainname": request.get("Domainname") or "",
        "User": request.get("User") or image.get("User") or "",
        "AttachStdin": bool(request.get("AttachStdin")),
        "AttachStdout": bool(request.get("AttachStdout")),
        "AttachStderr": bool(request.get("AttachStderr")),
        "ExposedPorts": request.get("ExposedPorts") or image.get("ExposedPorts"),
        "Tty": bool(request.get("Tty")),
        "OpenStdin": bool(request.get("OpenStdin")),
        "StdinOnce": bool(request.get("StdinOnce")),
        "Env": _merge_env(image.get("Env") or [], request.get("Env") or []),
        "Cmd": None,
        "Image": request.get("Image") or "",
        "Volumes": _volumes(image.get("Volumes"), request.get("Volumes")),
        "WorkingDir": request.get("WorkingDir") or image.get("WorkingDir") or "",
        "Entrypoint": None,
        "OnBuild": None,
        "Labels": {**(image.get("Labels") or {}), **(request.get("Labels") or {})},
        "StopSignal": request.get("StopSignal") or image.get("StopSignal") or "SIGTERM",
    }
    entrypoint = _strings(request.get("Entrypoint"), "Entrypoint")
    cmd = _strings(request.get("Cmd"), "Cmd")
    if entrypoint is None:
        entrypoint = image.get("Entrypoint")
        if cmd is None:
            cmd = image.get("Cmd")
    elif entrypoint == [""]:  # --entrypoint "" clears the image's entrypoint
        entrypoint = None
    config["Entrypoint"], config["Cmd"] = entrypoint, cmd
    healthcheck = _healthcheck(request.get("Healthcheck"), image.get("Healthcheck"))
    if healthcheck is not None:  # absent, not null, without one (dockerd's omitempty)
        config["Healthcheck"] = healthcheck.docker()
    return config


def _healthcheck(request: Any, image: Any) -> health.HealthConfig | None:
    """The request's Healthcheck, checked as dockerd checks it, merged with the image's."""
    asked = health.parse(request, "Config.Healthcheck")
    health.check(asked)
    return health.merge(asked, health.parse(image, "image config Healthcheck"))


def command_line(config: dict[str, Any]) -> list[str]:
    """Entrypoint + Cmd; InvalidArgument("No command specified") when both are empty."""
    argv = [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]
    if not argv:
        raise InvalidArgument("No command specified")
    return argv


def docker_command(path: str, args: list[str]) -> str:
    """``ps`` COMMAND: the argv joined with shell quoting, as dockerd shows it."""
    return " ".join(shlex.quote(a) if a else "''" for a in [path, *args])


def _volumes(image: Any, request: Any) -> dict[str, Any] | None:
    """The image's VOLUME paths and the request's, together (dockerd merges them)."""
    for what, value in (("image config Volumes", image), ("Config.Volumes", request)):
        if value is not None and not isinstance(value, dict):
            raise InvalidArgument(f"{what} must be an object")
    merged = {**(image or {}), **(request or {})}
    return merged or None


def _merge_env(image_env: list[str], request_env: list[str]) -> list[str]:
    merged: dict[str, str] = {}
    for item in [*image_env, *request_env]:
        key, _, _ = str(item).partition("=")
        if not key:
            raise InvalidArgument(f"invalid environment variable: {item!r}")
        merged[key] = str(item)
    return list(merged.values())


def _strings(value: Any, what: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"{what} must be a list of strings")
    return list(value)
