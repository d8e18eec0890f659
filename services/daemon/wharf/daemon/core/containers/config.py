"""From a Docker create request and the image config to what the engine records and runs.

Pure functions: the request's ``Config`` is merged with the image's (Cmd/Entrypoint, Env,
WorkingDir, User, Labels), ``HostConfig`` is validated and turned into runtime options.
"""

from __future__ import annotations

import shlex
from typing import Any

from wharf.daemon.core.runtime.spec import Resources
from wharf.errors import InvalidArgument

RESTART_POLICIES = {"", "no", "always", "on-failure", "unless-stopped"}


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
    return config


def command_line(config: dict[str, Any]) -> list[str]:
    """Entrypoint + Cmd; InvalidArgument("No command specified") when both are empty."""
    argv = [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]
    if not argv:
        raise InvalidArgument("No command specified")
    return argv


def docker_command(path: str, args: list[str]) -> str:
    """``ps`` COMMAND: the argv joined with shell quoting, as dockerd shows it."""
    return " ".join(shlex.quote(a) if a else "''" for a in [path, *args])


def check_host_config(host: dict[str, Any]) -> dict[str, Any]:
    """Validate what wharf honours today; refuse, with a clear message, what it cannot yet.

    Mounts (Binds, Mounts, Tmpfs, VolumesFrom) are checked by ``volumes.mountspec.plan``;
    networks and ports by ``network.attach`` and the container service (they need the store).
    """
    mode = str(host.get("NetworkMode") or "default")
    if mode.startswith("container:") and not mode.removeprefix("container:"):
        raise InvalidArgument("network mode container: needs a container name or ID")
    if host.get("Links"):
        raise InvalidArgument("--link (Links) is not supported by wharf: put the containers on "
                              "a user-defined network (wharf network create) and use names")
    policy = host.get("RestartPolicy") or {}
    if str(policy.get("Name") or "") not in RESTART_POLICIES:
        raise InvalidArgument(f"invalid restart policy {policy.get('Name')!r}")
    if policy.get("Name") not in ("on-failure",) and int(policy.get("MaximumRetryCount") or 0):
        raise InvalidArgument("maximum retry count cannot be used with restart policy "
                              f"'{policy.get('Name')}'")
    if host.get("AutoRemove") and policy.get("Name") not in (None, "", "no"):
        raise InvalidArgument("can't create 'AutoRemove' container with restart policy")
    resources(host)  # validates the numbers
    return {**host, "NetworkMode": "default" if mode in ("", "bridge") else mode}


def resources(host: dict[str, Any]) -> Resources:
    memory = _int(host, "Memory")
    swap = _int(host, "MemorySwap")
    nano_cpus = _int(host, "NanoCpus")
    if memory is not None and 0 < memory < 6 * 1024 * 1024:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    if nano_cpus is not None and nano_cpus < 0:
        raise InvalidArgument("Range of CPUs is from 0.01 to the number of CPUs")
    pids = _int(host, "PidsLimit")
    return Resources(
        memory=memory or None,
        memory_swap=swap if swap not in (None, 0) else None,
        nano_cpus=nano_cpus or None,
        cpu_shares=_int(host, "CpuShares") or None,
        pids_limit=pids if pids is not None and pids > 0 else None,
    )


def security_options(host: dict[str, Any]) -> tuple[bool, bool]:
    """(no_new_privileges, seccomp unconfined) from ``--security-opt``."""
    nnp, unconfined = False, False
    for option in host.get("SecurityOpt") or []:
        key, _, value = str(option).replace(":", "=", 1).partition("=")
        if key == "no-new-privileges":
            nnp = value in ("", "true")
        elif key == "seccomp":
            unconfined = value == "unconfined"
            if not unconfined:
                raise InvalidArgument("custom seccomp profiles are not supported yet")
        elif key in ("label", "apparmor"):
            continue  # no LSM on this engine; accepted like Docker on hosts without one
        else:
            raise InvalidArgument(f"invalid --security-opt: {option!r}")
    return nnp, unconfined


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


def _int(host: dict[str, Any], key: str) -> int | None:
    value = host.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgument(f"HostConfig.{key} must be a number")
    return int(value)
