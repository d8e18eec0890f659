"""Docker Engine API JSON shapes for containers (types exactly as the docker CLI decodes them)."""

from __future__ import annotations

from typing import Any

from wharf import dockerapi
from wharf.daemon.core.containers.config import docker_command
from wharf.daemon.core.containers.lifecycle import Status
from wharf.daemon.core.containers.records import ZERO_TIME, ContainerRecord
from wharf.daemon.core.network import attach
from wharf.dockerapi import unix_seconds


def status_text(record: ContainerRecord) -> str:
    state = record.state
    return dockerapi.status_text(state.status.value, state.exit_code, state.started_at,
                                 state.finished_at,
                                 health=state.health.status.value if state.health else "")


def container_summary(record: ContainerRecord) -> dict[str, Any]:
    return {
        "Id": record.id,
        "Names": ["/" + record.name],
        "Image": record.image,
        "ImageID": record.image_id,
        "Command": docker_command(record.path, record.args),
        "Created": unix_seconds(record.created_at),
        "Ports": attach.summary_ports(record.network),
        "Labels": record.config.get("Labels") or {},
        "State": record.state.status.value,
        "Status": status_text(record),
        "HostConfig": {"NetworkMode": record.host_config.get("NetworkMode", "default")},
        "NetworkSettings": {"Networks": _networks(record)},
        "Mounts": [m.docker() for m in record.mounts],
    }


def _networks(record: ContainerRecord) -> dict[str, Any]:
    """The recorded endpoints while the network is up; the configured names (no address)
    otherwise, as dockerd shows a stopped container."""
    recorded = record.network.get("Networks")
    if recorded is not None:
        return dict(recorded)
    mode = attach.normal_mode(record.host_config.get("NetworkMode"))
    names = [] if mode.startswith("container:") else [mode]
    names += [n for n in record.endpoints if n not in names and n != "default"]
    return {n: attach.network_entry("", "", "", 0, "", "", ()) for n in names}


def network_settings(record: ContainerRecord) -> dict[str, Any]:
    """Docker's ``NetworkSettings``: the first endpoint's address at the top level."""
    networks = _networks(record)
    first = next((n for n in networks.values() if n.get("IPAddress")), None) or {}
    ports = record.network.get("Ports")
    if ports is None:
        ports = attach.ports_json(record.config.get("ExposedPorts"), [])
    return {
        "Bridge": "", "SandboxID": record.id if record.network else "", "HairpinMode": False,
        "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0, "Ports": ports,
        "SandboxKey": record.network.get("NetnsPath", ""), "SecondaryIPAddresses": None,
        "SecondaryIPv6Addresses": None, "EndpointID": first.get("EndpointID", ""),
        "Gateway": first.get("Gateway", ""), "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
        "IPAddress": first.get("IPAddress", ""), "IPPrefixLen": first.get("IPPrefixLen", 0),
        "IPv6Gateway": "", "MacAddress": first.get("MacAddress", ""), "Networks": networks,
    }


def _state(record: ContainerRecord) -> dict[str, Any]:
    """Docker's ``State``; ``Health`` once a container with a HEALTHCHECK has started."""
    state = record.state
    shown: dict[str, Any] = {
        "Status": state.status.value,
        "Running": state.status in (Status.RUNNING, Status.PAUSED),
        "Paused": state.status is Status.PAUSED,
        "Restarting": state.status is Status.RESTARTING,
        "OOMKilled": state.oom_killed,
        "Dead": state.status is Status.DEAD,
        "Pid": state.pid,
        "ExitCode": state.exit_code,
        "Error": state.error,
        "StartedAt": state.started_at,
        "FinishedAt": state.finished_at,
    }
    if state.health is not None:
        shown["Health"] = state.health.docker()
    return shown


def container_inspect(record: ContainerRecord, container_dir: str, log_path: str
                      ) -> dict[str, Any]:
    state = record.state
    started = state.status is not Status.CREATED or state.started_at != ZERO_TIME
    host_config = {
        "NetworkMode": "default", "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
        "AutoRemove": False, "Privileged": False, "ReadonlyRootfs": False, "Memory": 0,
        "NanoCpus": 0, "PidsLimit": None, "CapAdd": None, "CapDrop": None, "Binds": None,
        # docker-py reads logs only for json-file or journald; the API serves conmon's log
        # with json-file semantics (docs/architecture.md).
        "LogConfig": {"Type": "json-file", "Config": {}}, "ShmSize": 67108864,
        "Runtime": record.runtime, "IpcMode": "private", "PortBindings": {},
        **record.host_config,
    }
    return {
        "Id": record.id,
        "Created": record.created_at,
        "Path": record.path,
        "Args": record.args,
        "State": _state(record),
        "Image": record.image_id,
        "ResolvConfPath": f"{container_dir}/resolv.conf" if started else "",
        "HostnamePath": f"{container_dir}/hostname" if started else "",
        "HostsPath": f"{container_dir}/hosts" if started else "",
        "LogPath": log_path,
        "Name": "/" + record.name,
        "RestartCount": state.restart_count,
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": record.exec_ids or None,
        "HostConfig": host_config,
        "GraphDriver": {"Name": "overlay2", "Data": {
            "MergedDir": f"{container_dir}/rootfs/merged",
            "UpperDir": f"{container_dir}/rootfs/upper",
            "WorkDir": f"{container_dir}/rootfs/work"}},
        "Mounts": [m.docker() for m in record.mounts],
        "Config": record.config,
        "NetworkSettings": network_settings(record),
    }
