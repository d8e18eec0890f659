"""What a container runs with: the create request's ``HostConfig`` (and the ``Config`` fields
that shape the process) parsed and checked once, at create, into typed options kept in its
record. A bad value fails ``create`` (400, in dockerd's words), never ``start``; the HostConfig
itself is kept as sent, for ``inspect``.

dockerd's checks are ``verifyPlatformContainerResources`` and ``verifyPlatformContainerSettings``
(daemon/daemon_unix.go), ``ValidateRestartPolicy``, ``parseSecurityOpt``, ``devicesFromPath``
and go-units' ulimits; the host facts (CPU count, the daemon's own hard rlimits, device nodes)
are checked by ``ContainerOptions.check_host``.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal as signals
import stat
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, Field

from wharf.daemon.core.containers.limits import (
    ResourceOptions,
    UlimitOption,
    check_cpus,
    check_ulimits,
    number,
    resources,
    ulimits,
)
from wharf.daemon.core.network import attach
from wharf.daemon.core.network.ports import ANY_IP, PortRequest
from wharf.daemon.core.runtime import capabilities
from wharf.daemon.core.runtime import mounts as fsmounts
from wharf.daemon.core.runtime import spec as oci_spec
from wharf.daemon.core.volumes import mountspec
from wharf.errors import InvalidArgument

RESTART_POLICIES = ("no", "always", "on-failure", "unless-stopped")
_TRUE, _FALSE = ("1", "t", "T", "TRUE", "true", "True"), ("0", "f", "F", "FALSE", "false", "False")
# What wharf ignored before the options were typed: a container created then runs as it did.
_NEW_IN_OPTIONS = ("Devices", "Ulimits", "OomScoreAdj", "MemoryReservation", "CpuQuota",
                   "CpuPeriod")


def parse_signal(value: str | int | None, default: int = signals.SIGKILL) -> int:
    """Docker's signal argument: a name (KILL, SIGKILL) or a number."""
    if value in (None, ""):
        return default
    text = str(value).upper()
    if text.isdigit():
        code = int(text)
        if not 0 < code < 65:
            raise InvalidArgument(f"Invalid signal: {value}")
        return code
    try:
        return int(signals.Signals[text if text.startswith("SIG") else "SIG" + text])
    except KeyError:
        raise InvalidArgument(f"Invalid signal: {value}") from None


class RestartOptions(BaseModel):
    """``--restart``: no, always, on-failure (at most ``max_retries`` times; 0 = no cap) or
    unless-stopped."""

    name: str = "no"
    max_retries: int = 0


class PublishedPort(BaseModel):
    """One ``-p``: a container port and the host address and port range it is published on
    (``(0, 0)`` = any free port)."""

    container_port: int
    proto: str = "tcp"
    host_ip: str = ANY_IP
    host_lo: int = 0
    host_hi: int = 0

    def request(self) -> PortRequest:
        return PortRequest(self.container_port, self.proto, self.host_ip, self.host_lo,
                           self.host_hi)


class DeviceOption(BaseModel):
    """``--device host[:container][:rwm]``."""

    path_on_host: str
    path_in_container: str
    permissions: str = "rwm"

    def node(self, stat_path: Callable[[str], os.stat_result] = os.stat) -> oci_spec.Device:
        """The device as the runtime creates it, from the host's node (symlinks followed).

        Raises:
            InvalidArgument: the path is missing or not a character or block device.
        """
        try:
            info = stat_path(self.path_on_host)
        except OSError as exc:
            reason = (exc.strerror or str(exc)).lower()
            raise _device_error(self.path_on_host, reason) from None
        if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode):
            return oci_spec.Device(
                self.path_in_container, "c" if stat.S_ISCHR(info.st_mode) else "b",
                os.major(info.st_rdev), os.minor(info.st_rdev), stat.S_IMODE(info.st_mode),
                info.st_uid, info.st_gid, self.permissions)
        raise _device_error(self.path_on_host, "not a device node")


class ProcessOptions(BaseModel):
    """The ``Config`` fields that shape the container's process (image defaults merged)."""

    hostname: str = ""
    user: str = ""
    env: list[str] = Field(default_factory=list)
    cwd: str = "/"
    tty: bool = False
    open_stdin: bool = False
    stdin_once: bool = False
    stop_signal: int = int(signals.SIGTERM)


class ContainerOptions(BaseModel):
    """A container's run options, parsed and checked at create (``parse``)."""

    resources: ResourceOptions = Field(default_factory=ResourceOptions)
    restart: RestartOptions = Field(default_factory=RestartOptions)
    auto_remove: bool = False
    # as recorded in HostConfig: default, host, none, container:<full id> or a network
    network_mode: str = "default"
    ports: list[PublishedPort] = Field(default_factory=list)
    publish_all: bool = False
    exposed_ports: list[tuple[int, str]] = Field(default_factory=list)
    devices: list[DeviceOption] = Field(default_factory=list)
    ulimits: list[UlimitOption] = Field(default_factory=list)
    tmpfs: dict[str, str] = Field(default_factory=dict)
    readonly_rootfs: bool = False
    privileged: bool = False
    cap_add: list[str] = Field(default_factory=list)
    cap_drop: list[str] = Field(default_factory=list)
    no_new_privileges: bool = False
    seccomp_unconfined: bool = False
    shm_size: int = fsmounts.DEFAULT_SHM_SIZE
    oom_score_adj: int = 0
    group_add: list[str] = Field(default_factory=list)
    dns: list[str] = Field(default_factory=list)
    process: ProcessOptions = Field(default_factory=ProcessOptions)
    # a record of an older wharfd whose HostConfig is refused now: start reports this
    refused: str = ""

    @property
    def network(self) -> str:
        """The network mode with Docker's spellings folded (bridge for default)."""
        return attach.normal_mode(self.network_mode)

    def port_requests(self) -> list[PortRequest]:
        """What to publish at start: ``-p`` bindings, plus every other exposed port for
        ``-P``."""
        requests = [p.request() for p in self.ports]
        if self.publish_all:
            bound = {(r.container_port, r.proto) for r in requests}
            requests += [PortRequest(port, proto) for port, proto in self.exposed_ports
                         if (port, proto) not in bound]
        return requests

    def check_host(self, host: oci_spec.HostInfo,
                   stat_path: Callable[[str], os.stat_result] = os.stat) -> None:
        """What depends on the host: the CPU count, the daemon's own hard rlimits, the
        device nodes."""
        check_cpus(self.resources, host.cpus)
        check_ulimits(self.ulimits, host.hard_limits)
        for device in self.devices:
            device.node(stat_path)


def parse(host: Mapping[str, Any], config: Mapping[str, Any]) -> ContainerOptions:
    """The options of a create request: ``host`` is its HostConfig, ``config`` the Config as
    merged with the image's.

    Mounts (Binds, Mounts, VolumesFrom) are planned by ``volumes.mountspec.plan``; the network
    references by the container service (they need the stores).

    Raises:
        InvalidArgument: a value dockerd refuses, in its words, or one wharf cannot honour.
    """
    _links(host.get("Links"), _network_mode(host.get("NetworkMode")))
    restart = _restart(host.get("RestartPolicy"))
    auto_remove = _bool(host, "AutoRemove")
    if auto_remove and restart.name != "no":
        raise InvalidArgument("can't create 'AutoRemove' container with restart policy")
    nnp, unconfined = _security(_strings(host, "SecurityOpt"))
    cap_add, cap_drop = _strings(host, "CapAdd"), _strings(host, "CapDrop")
    capabilities.normalize([*cap_add, *cap_drop])
    shm_size = number(host, "ShmSize")
    if shm_size < 0:
        raise InvalidArgument("SHM size can not be less than 0")
    oom_score_adj = number(host, "OomScoreAdj")
    if not -1000 <= oom_score_adj <= 1000:
        raise InvalidArgument(f"Invalid value {oom_score_adj}, range for oom score adj is "
                              "[-1000, 1000]")
    return ContainerOptions(
        resources=resources(host), restart=restart, auto_remove=auto_remove,
        network_mode=_network_mode(host.get("NetworkMode")),
        ports=[PublishedPort(container_port=r.container_port, proto=r.proto,
                             host_ip=r.host_ip, host_lo=r.host_lo, host_hi=r.host_hi)
               for r in attach.port_bindings(host.get("PortBindings"))],
        publish_all=_bool(host, "PublishAllPorts"),
        exposed_ports=attach.exposed_ports(config.get("ExposedPorts")),
        devices=_devices(host.get("Devices")), ulimits=ulimits(host.get("Ulimits")),
        tmpfs=mountspec.check_tmpfs(host.get("Tmpfs")),
        readonly_rootfs=_bool(host, "ReadonlyRootfs"), privileged=_bool(host, "Privileged"),
        cap_add=cap_add, cap_drop=cap_drop, no_new_privileges=nnp, seccomp_unconfined=unconfined,
        shm_size=shm_size or fsmounts.DEFAULT_SHM_SIZE, oom_score_adj=oom_score_adj,
        group_add=_strings(host, "GroupAdd"), dns=_dns(_strings(host, "Dns")),
        process=_process(config),
    )


def from_record(host: Mapping[str, Any], config: Mapping[str, Any]) -> ContainerOptions:
    """The options of a record an older wharfd wrote (no ``options`` in it), from its
    HostConfig as that wharfd honoured it. Never raises: a HostConfig refused now (that
    wharfd checked some values only at start) keeps the refusal for ``start`` to report."""
    honoured = {k: v for k, v in host.items() if k not in _NEW_IN_OPTIONS}
    try:
        return parse(honoured, config)
    except InvalidArgument as exc:
        return ContainerOptions(network_mode=str(host.get("NetworkMode") or "default"),
                                auto_remove=bool(host.get("AutoRemove")), refused=exc.message)


def _links(links: Any, mode: str) -> None:
    """``Links`` ("NAME[:ALIAS]"): on a user-defined network they add nothing the network's
    DNS does not give (every container there answers by name, and docker-compose's services
    by their service name too), so they are checked and left at that; docker-compose sends
    them with every ``run``. On the default bridge, where they would mean /etc/hosts entries
    and environment variables, wharf refuses them."""
    if not links:
        return
    if not isinstance(links, list) or not all(isinstance(x, str) and x.split(":")[0]
                                              and x.count(":") <= 1 for x in links):
        raise InvalidArgument("Links must be a list of NAME[:ALIAS] strings")
    if mode in ("default", "bridge", "host", "none") or mode.startswith("container:"):
        raise InvalidArgument("--link (Links) is not supported by wharf on the default bridge: "
                              "put the containers on a user-defined network (wharf network "
                              "create) and use names")


def _network_mode(value: Any) -> str:
    """NetworkMode as recorded: "" and bridge are "default" (``container:`` names are
    resolved to IDs by the container service)."""
    mode = str(value or "default")
    if mode.startswith("container:") and not mode.removeprefix("container:"):
        raise InvalidArgument("network mode container: needs a container name or ID")
    return "default" if mode in ("", "bridge") else mode


def _restart(value: Any) -> RestartOptions:
    """dockerd's ``ValidateRestartPolicy`` ("" is "no", with any retry count, as dockerd)."""
    if value is None:
        return RestartOptions()
    if not isinstance(value, dict):
        raise InvalidArgument("HostConfig.RestartPolicy must be an object")
    name, count = str(value.get("Name") or ""), number(value, "MaximumRetryCount", "RestartPolicy")
    if name not in ("", *RESTART_POLICIES):
        raise InvalidArgument(f"invalid restart policy: unknown policy '{name}'; use one of "
                              "'no', 'always', 'on-failure', or 'unless-stopped'")
    if name == "on-failure" and count < 0:
        raise InvalidArgument("invalid restart policy: maximum retry count cannot be negative")
    if name not in ("", "on-failure") and count != 0:
        raise InvalidArgument("invalid restart policy: maximum retry count can only be used "
                              "with 'on-failure'" + (" and cannot be negative" if count < 0
                                                     else ""))
    return RestartOptions(name=name or "no", max_retries=max(count, 0))


def _security(options: list[str]) -> tuple[bool, bool]:
    """(no_new_privileges, seccomp unconfined) from ``--security-opt``, as dockerd's
    ``parseSecurityOpt`` reads them; no LSM here, so label and apparmor are accepted like
    Docker on hosts without one."""
    nnp, unconfined = False, False
    for option in options:
        if option in ("no-new-privileges", "disable"):
            nnp = nnp or option == "no-new-privileges"
            continue
        separator = "=" if "=" in option else ":"
        key, found, value = option.partition(separator)
        if not found:
            raise InvalidArgument(f"invalid --security-opt 1: {json.dumps(option)}")
        if key == "seccomp":
            unconfined = value == "unconfined"
            if value not in ("unconfined", "builtin"):
                raise InvalidArgument("custom seccomp profiles are not supported yet")
        elif key == "no-new-privileges" and value in (*_TRUE, *_FALSE):
            nnp = value in _TRUE
        elif key not in ("label", "apparmor"):
            raise InvalidArgument(f"invalid --security-opt 2: {json.dumps(option)}")
    return nnp, unconfined


def _devices(value: Any) -> list[DeviceOption]:
    """``HostConfig.Devices`` (``PathOnHost``, ``PathInContainer``, ``CgroupPermissions``), in
    the docker CLI's words; the nodes themselves are checked by ``check_host``."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(d, dict) for d in value):
        raise InvalidArgument("HostConfig.Devices must be a list of objects")
    out = []
    for entry in value:
        on_host = str(entry.get("PathOnHost") or "")
        if not on_host:
            raise _device_error(on_host, "no such file or directory")
        inside = str(entry.get("PathInContainer") or on_host)
        if not inside.startswith("/"):
            raise InvalidArgument(f"{inside} is not an absolute path")
        mode = str(entry.get("CgroupPermissions") or "rwm")
        if not set(mode) <= set("rwm") or len(set(mode)) != len(mode):
            raise InvalidArgument(f"bad mode specified: {mode}")
        out.append(DeviceOption(path_on_host=on_host, path_in_container=inside,
                                permissions=mode))
    return out


def _device_error(path: str, reason: str) -> InvalidArgument:
    return InvalidArgument(f"error gathering device information while adding custom device "
                           f"{json.dumps(path)}: {reason}")


def _dns(servers: list[str]) -> list[str]:
    for server in servers:
        try:
            ipaddress.ip_address(server)
        except ValueError:
            raise InvalidArgument(f"IP address is not correctly formatted: {server}") from None
    return servers


def _process(config: Mapping[str, Any]) -> ProcessOptions:
    cwd = str(config.get("WorkingDir") or "/")
    if not cwd.startswith("/"):
        raise InvalidArgument(f"the working directory '{cwd}' is invalid, it needs to be an "
                              "absolute path")
    return ProcessOptions(
        hostname=str(config.get("Hostname") or ""), user=str(config.get("User") or ""),
        env=[str(e) for e in config.get("Env") or []], cwd=cwd, tty=bool(config.get("Tty")),
        open_stdin=bool(config.get("OpenStdin")), stdin_once=bool(config.get("StdinOnce")),
        stop_signal=parse_signal(config.get("StopSignal"), signals.SIGTERM))


def _bool(host: Mapping[str, Any], key: str) -> bool:
    value = host.get(key)
    if value is not None and not isinstance(value, bool):
        raise InvalidArgument(f"HostConfig.{key} must be a boolean")
    return bool(value)


def _strings(host: Mapping[str, Any], key: str) -> list[str]:
    value = host.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"HostConfig.{key} must be a list of strings")
    return list(value)
