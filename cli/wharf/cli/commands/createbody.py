"""The POST /containers/create body that the flags of ``run`` and ``create`` make.

The body has Docker's shape (Engine API reference §4.1): the Config fields at the top level, then
``HostConfig`` and ``NetworkingConfig``. Values are parsed like the docker CLI parses them
(go-units RAMInBytes for ``--memory``, ``-p`` specs, ``--env-file``), and a bad value stops with
docker's flag error text and exit status 125 (:class:`~wharf.cli.failure.FlagError`). No click
here: the fast path of ``wharf run`` (:mod:`wharf.cli.fast`) builds the body too; the flags are
declared in :mod:`wharf.cli.commands.runflags`.
"""

from __future__ import annotations

import os
import re

from wharf.cli.commands.healthopts import healthcheck
from wharf.cli.failure import FlagError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

_SIZE = re.compile(r"(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?")
_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
PULL_POLICIES = ("missing", "always", "never")


def ram_in_bytes(text: str) -> int:
    """go-units RAMInBytes: ``64m``, ``1g``, ``512k``, ``100`` (bytes); binary multiples."""
    match = _SIZE.fullmatch(text)
    if not match:
        raise ValueError(f"invalid size: '{text}'")
    number = float(match.group(1)) if match.group(1).count(".") <= 1 else None
    if number is None:
        raise ValueError(f"invalid size: '{text}'")
    unit = (match.group(2) or "").lower()
    return int(number * _UNITS.get(unit, 1))


def parse_env(values: Sequence[str], environ: Mapping[str, str]) -> list[str]:
    """``-e``/``--env-file`` entries; a bare ``NAME`` takes its value from the client's env."""
    out = []
    for value in values:
        name, sep, _ = value.partition("=")
        if not name:
            raise FlagError(f'invalid argument "{value}" for "-e, --env" flag: '
                            f"invalid environment variable: {value}")
        out.append(f"{name}={environ[name]}" if not sep and name in environ else value)
    return out


def read_env_files(paths: Sequence[str]) -> list[str]:
    """Lines of ``--env-file`` files, without blanks and ``#`` comments."""
    lines: list[str] = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as file:
                text = file.read()
        except OSError as exc:
            raise FlagError(f"open {path}: {exc.strerror}") from exc
        lines += [ln.lstrip() for ln in text.splitlines()
                  if ln.strip() and not ln.lstrip().startswith("#")]
    return lines


def _range(text: str, spec: str) -> tuple[int, int]:
    low, sep, high = text.partition("-")
    if not low.isdigit() or (sep and not high.isdigit()):
        raise FlagError(f'invalid argument "{spec}" for "-p, --publish" flag: '
                        f"invalid port format: {spec}")
    lo, hi = int(low), int(high) if sep else int(low)
    if not 0 < lo <= hi <= 65535:
        raise FlagError(f'invalid argument "{spec}" for "-p, --publish" flag: '
                        f"invalid range format for --expose: {text}")
    return lo, hi


def parse_ports(specs: Sequence[str]) -> tuple[dict[str, Any], dict[str, list[dict[str, str]]]]:
    """``-p [ip:][hostPort[-end]:]containerPort[-end][/proto]`` → ExposedPorts and PortBindings.

    Container ranges become one key per port (a host range of the same length maps port to
    port); a host range for one container port means "a free port of the range", as docker.
    """
    exposed: dict[str, Any] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for spec in specs:
        rest, _, proto = spec.partition("/")
        proto = proto or "tcp"
        if proto not in ("tcp", "udp", "sctp"):
            raise FlagError(f'invalid argument "{spec}" for "-p, --publish" flag: '
                            f"invalid proto: {proto}")
        parts = rest.rsplit(":", 2) if not rest.startswith("[") else _split_v6(rest)
        host_port = parts[-2] if len(parts) >= 2 else ""
        host_ip = parts[-3].strip("[]") if len(parts) == 3 else ""
        c_lo, c_hi = _range(parts[-1], spec)
        h_lo, h_hi = _range(host_port, spec) if host_port else (0, 0)
        if host_port and c_hi > c_lo and h_hi - h_lo != c_hi - c_lo:
            raise FlagError(f'invalid argument "{spec}" for "-p, --publish" flag: invalid '
                            f"ranges specified for container and host Ports: {spec}")
        for offset, port in enumerate(range(c_lo, c_hi + 1)):
            if not host_port:
                host = ""
            elif c_hi > c_lo:
                host = str(h_lo + offset)
            else:
                host = host_port
            key = f"{port}/{proto}"
            exposed[key] = {}
            bindings.setdefault(key, []).append({"HostIp": host_ip, "HostPort": host})
    return exposed, bindings


def _split_v6(text: str) -> list[str]:
    address, _, rest = text.partition("]")
    return [address + "]", *rest.lstrip(":").split(":", 1)]


def parse_restart(text: str) -> dict[str, Any]:
    """``no``, ``always``, ``unless-stopped``, ``on-failure[:N]``."""
    name, _, count = text.partition(":")
    if count and not count.isdigit():
        raise FlagError(f'invalid argument "{text}" for "--restart" flag: '
                        "maximum retry count must be an integer")
    return {"Name": name or "no", "MaximumRetryCount": int(count or 0)}


_TRUE = {"1", "t", "T", "true", "TRUE", "True"}
_FALSE = {"0", "f", "F", "false", "FALSE", "False"}
_MOUNT_TYPES = ("volume", "bind", "tmpfs")


def _go_bool(key: str, value: str | None) -> bool:
    if value is None or value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"invalid value for {key}: {value}")


# --mount keys: key → (options object or None for the Mount itself, field)
_MOUNT_BOOLS = {"readonly": (None, "ReadOnly"), "ro": (None, "ReadOnly"),
                "volume-nocopy": ("VolumeOptions", "NoCopy"),
                "bind-nonrecursive": ("BindOptions", "NonRecursive")}
_MOUNT_STRINGS = {"type": (None, "Type"), "source": (None, "Source"), "src": (None, "Source"),
                  "target": (None, "Target"), "dst": (None, "Target"),
                  "destination": (None, "Target"),
                  "bind-propagation": ("BindOptions", "Propagation")}


def _mount_field(mount: dict[str, Any], key: str, value: str | None) -> None:
    """One ``key[=value]`` of ``--mount`` into the Mount object (docker's opts/mount.go)."""
    if key in _MOUNT_BOOLS:
        where, name = _MOUNT_BOOLS[key]
        (mount.setdefault(where, {}) if where else mount)[name] = _go_bool(key, value)
        return
    if value is None:
        raise ValueError(f"invalid field '{key}' must be a key=value pair")
    if key in _MOUNT_STRINGS:
        where, name = _MOUNT_STRINGS[key]
        text = value.lower() if name in ("Type", "Propagation") else value
        (mount.setdefault(where, {}) if where else mount)[name] = text
    elif key in ("volume-label", "volume-opt", "volume-driver"):
        volume = mount.setdefault("VolumeOptions", {})
        name, _, val = value.partition("=")
        if key == "volume-label":
            volume.setdefault("Labels", {})[name] = val
        elif key == "volume-opt":
            volume.setdefault("DriverConfig", {}).setdefault("Options", {})[name] = val
        else:
            volume.setdefault("DriverConfig", {})["Name"] = value
    elif key in ("tmpfs-size", "tmpfs-mode"):
        tmpfs = mount.setdefault("TmpfsOptions", {})
        try:
            if key == "tmpfs-size":
                tmpfs["SizeBytes"] = ram_in_bytes(value)
            else:
                tmpfs["Mode"] = int(value, 8)
        except ValueError:
            raise ValueError(f"invalid value for {key}: {value}") from None
    elif key != "consistency":
        raise ValueError(f"unexpected key '{key}' in '{key}={value}'")


def parse_mount(spec: str) -> dict[str, Any]:
    """``--mount type=…,source=…,target=…,readonly,…`` → a ``HostConfig.Mounts`` entry.

    Raises:
        FlagError: docker's message for a bad field, a missing target or mixed options.
    """
    mount: dict[str, Any] = {"Type": "volume"}
    try:
        for field_text in (f.strip() for f in spec.split(",")):
            if not field_text:
                continue
            key, sep, value = field_text.partition("=")
            _mount_field(mount, key.strip().lower(), value if sep else None)
        kind = mount["Type"]
        if kind not in _MOUNT_TYPES:
            raise ValueError(f"invalid mount type {kind!r}: wharf mounts volume, bind or tmpfs")
        if not mount.get("Target"):
            raise ValueError("target is required")
        for prefix, key in (("volume", "VolumeOptions"), ("bind", "BindOptions"),
                            ("tmpfs", "TmpfsOptions")):
            if key in mount and kind != prefix:
                raise ValueError(f"cannot mix '{prefix}-*' options with mount type '{kind}'")
    except ValueError as exc:
        raise FlagError(f'invalid argument "{spec}" for "--mount" flag: {exc}') from exc
    return mount


def _log_config(opts: Mapping[str, Any]) -> dict[str, Any]:
    """``--log-driver``/``--log-opt`` as docker sends them (the daemon checks the options)."""
    config = dict(value.partition("=")[::2] for value in opts.get("log_opts", ()))
    driver = opts.get("log_driver", "")
    if driver == "none" and config:
        raise FlagError("invalid logging opts for driver none")
    return {"Type": driver, "Config": config}


def _labels(values: Sequence[str]) -> dict[str, str]:
    return {k: v for k, _, v in (value.partition("=") for value in values)}


def _resources(opts: Mapping[str, Any]) -> dict[str, Any]:
    memory = 0
    if opts["memory"]:
        try:
            memory = ram_in_bytes(opts["memory"])
        except ValueError as exc:
            raise FlagError(f'invalid argument "{opts["memory"]}" for "-m, --memory" flag: '
                            f"{exc}") from exc
    nano = 0
    if opts["cpus"]:
        try:
            nano = round(float(opts["cpus"]) * 1e9)
        except ValueError as exc:
            raise FlagError(f'invalid argument "{opts["cpus"]}" for "--cpus" flag: failed to '
                            f'parse {opts["cpus"]} as a rational number') from exc
    return {"Memory": memory, "NanoCpus": nano, "PidsLimit": opts["pids_limit"]}


def host_config(opts: Mapping[str, Any], bindings: Mapping[str, Any]) -> dict[str, Any]:
    """HostConfig from the flags (Docker's key names; zero values where unset)."""
    binds = [v for v in opts["volumes"] if ":" in v]
    tmpfs = {path: options for path, _, options in (t.partition(":") for t in opts["tmpfs"])}
    config: dict[str, Any] = {
        "Binds": binds or None, "LogConfig": _log_config(opts),
        "NetworkMode": opts["network"], "PortBindings": dict(bindings),
        "RestartPolicy": parse_restart(opts["restart"]), "AutoRemove": opts["auto_remove"],
        "VolumeDriver": "", "VolumesFrom": list(opts["volumes_from"]) or None,
        "CapAdd": list(opts["cap_add"]) or None, "CapDrop": list(opts["cap_drop"]) or None,
        "Dns": [], "DnsOptions": [], "DnsSearch": [], "ExtraHosts": None, "GroupAdd": None,
        "IpcMode": "", "Links": None, "OomScoreAdj": 0, "PidMode": "",
        "Privileged": opts["privileged"], "PublishAllPorts": opts["publish_all"],
        "ReadonlyRootfs": opts["read_only"], "SecurityOpt": list(opts["security_opt"]) or None,
        "UTSMode": "", "UsernsMode": "", "ShmSize": 0, "ConsoleSize": [0, 0],
        **_resources(opts), "MemorySwappiness": -1,
    }
    if tmpfs:
        config["Tmpfs"] = tmpfs
    mounts = [parse_mount(m) for m in opts["mounts"]]
    if mounts:
        config["Mounts"] = mounts
    if opts["runtime"]:
        config["Runtime"] = opts["runtime"]
    return config


def create_body(opts: Mapping[str, Any], image: str, command: Sequence[str], *,
                attach: bool, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The POST /containers/create body; ``attach`` is False for ``run -d``."""
    if opts["pull"] not in PULL_POLICIES:
        raise FlagError(f"invalid pull option: '{opts['pull']}': must be one of \"always\", "
                        '"missing" or "never"')
    env = parse_env(read_env_files(opts["env_file"]) + list(opts["env"]),
                    os.environ if environ is None else environ)
    exposed, bindings = parse_ports(opts["publish"])
    for spec in opts["expose"]:
        port, _, proto = spec.partition("/")
        low, high = _range(port, spec)
        exposed.update({f"{p}/{proto or 'tcp'}": {} for p in range(low, high + 1)})
    entrypoint = opts["entrypoint"]
    stdin = attach and opts["interactive"]
    try:
        health = healthcheck(opts)
    except ValueError as exc:
        raise FlagError(str(exc)) from exc
    body: dict[str, Any] = {
        "Hostname": opts["hostname"], "Domainname": "", "User": opts["user"],
        "AttachStdin": stdin, "AttachStdout": attach, "AttachStderr": attach,
    }
    if exposed:
        body["ExposedPorts"] = exposed
    body.update({
        "Tty": opts["tty"], "OpenStdin": opts["interactive"], "StdinOnce": stdin,
        "Env": env or None, "Cmd": list(command) or None,
        **({"Healthcheck": health} if health is not None else {}), "Image": image,
        "Volumes": {v: {} for v in opts["volumes"] if ":" not in v},
        "WorkingDir": opts["workdir"],
        "Entrypoint": None if entrypoint is None else [entrypoint],
        "OnBuild": None, "Labels": _labels(opts["labels"]),
        "HostConfig": host_config(opts, bindings),
        "NetworkingConfig": {"EndpointsConfig": endpoints_config(opts)},
    })
    return body


def endpoints_config(opts: Mapping[str, Any]) -> dict[str, Any]:
    """``--ip`` and ``--network-alias`` for the ``--network`` named (as docker sends them)."""
    network = str(opts["network"] or "default")
    if not opts["ip"] and not opts["network_aliases"]:
        return {}
    if network in ("default", "bridge", "host", "none") or network.startswith("container:"):
        raise FlagError("user specified IP address and aliases are supported only on "
                        "user defined networks (--network NAME)")
    endpoint: dict[str, Any] = {"Aliases": list(opts["network_aliases"]) or None}
    if opts["ip"]:
        endpoint["IPAMConfig"] = {"IPv4Address": opts["ip"]}
    return {network: endpoint}
