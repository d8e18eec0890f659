"""Who may do what through the gateway: token scopes and the create policy (pure functions).

A token has one scope, each including the one before it:

- ``read``: every ``GET`` (nodes, containers, inspect, logs, stats, images, placement, events, the
  token's own commands);
- ``operate``: also the lifecycle of containers and images on one node (create and run within
  the policy, start, stop, restart, kill, rm, pull, rmi) and runs placed by the gateway;
- ``admin``: everything: node patterns (``/v1/nodes/*/…`` reaches every node at once), pulls
  on every node, a node's availability (``POST /v1/nodes/{node}/update``), anyone's commands,
  and what the policy refuses the others.

:func:`required_scope` decides from a request's method and path alone, so the check stands in
front of the whole app (``auth.BearerAuth``) and a new route cannot escape it: what is not a
read needs ``operate``. The policy reads a Docker create body by the keys wharfd reads and names
each setting that reaches past the container's sandbox into the host (:data:`RULES`); a token
that is not admin may be allowed some of them by name (``token create --allow``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from wharf.errors import InvalidArgument, PermissionDenied
from wharf.protocol import CreatePayload, Payload, RunPayload


class Scope(StrEnum):
    READ = "read"
    OPERATE = "operate"
    ADMIN = "admin"

    def covers(self, needed: Scope) -> bool:
        """True when this scope includes ``needed`` (admin ⊇ operate ⊇ read)."""
        order = list(Scope)
        return order.index(self) >= order.index(needed)


@dataclass(frozen=True)
class Grant:
    """What a request's token grants: its name (the commands' principal), its scope and the
    policy rules it is allowed past."""

    name: str
    scope: Scope
    allow: frozenset[str] = frozenset()


# The policy's rules: the name a token is allowed by (--allow NAME), and what it covers.
RULES: dict[str, str] = {
    "privileged": "HostConfig.Privileged (--privileged)",
    "host-path": "a host path mounted: Binds with a /path source (-v /src:/dst), Mounts of "
                 "type bind, a volume Mount with driver options (type=none,o=bind,device=/…)",
    "volumes-from": "HostConfig.VolumesFrom: another container's mounts, host paths included",
    "host-network": "NetworkMode host",
    "host-pid": "PidMode host",
    "host-ipc": "IpcMode host",
    "host-uts": "UTSMode host",
    "host-cgroupns": "CgroupnsMode host",
    "host-userns": "UsernsMode host",
    "shared-namespace": "NetworkMode, PidMode or IpcMode container:NAME (that container's "
                        "namespaces may be the host's)",
    "cap-add": "CapAdd (any capability)",
    "devices": "Devices, DeviceCgroupRules, DeviceRequests",
    "security-opt": "SecurityOpt other than no-new-privileges and seccomp=builtin "
                    "(seccomp=unconfined, apparmor=unconfined, label=disable…)",
}


@dataclass(frozen=True)
class Violation:
    """One setting of a create body that needs an admin token: the rule, and the setting as
    the docker CLI spells it (for the message)."""

    rule: str
    flag: str


# --- scopes ---------------------------------------------------------------------------------

_NODE_PATH = re.compile(r"^/v1/nodes/([^/]+)(?:/|$)")
_PLAIN_NODE = re.compile(r"[A-Za-z0-9_.-]+")  # a node's name; anything else is a pattern
_EVERY_NODE = {("POST", "/v1/images/pull"): "POST /v1/images/pull (every node)"}
_NODE_UPDATE = re.compile(r"/v1/nodes/[^/]+/update/?")  # a node's availability (fullmatch)
_READS = frozenset({"GET", "HEAD", "OPTIONS"})


def required_scope(method: str, path: str) -> tuple[Scope, str]:
    """The scope a request needs, and the request as the refusal names it."""
    match = _NODE_PATH.match(path)
    if match is not None and not _PLAIN_NODE.fullmatch(match.group(1)):
        return Scope.ADMIN, f"the node pattern {match.group(1)!r} (every node)"
    if (method, path) in _EVERY_NODE:
        return Scope.ADMIN, _EVERY_NODE[method, path]
    if method == "POST" and _NODE_UPDATE.fullmatch(path):
        return Scope.ADMIN, f"{method} {path} (a node's availability)"
    return (Scope.READ if method in _READS else Scope.OPERATE), f"{method} {path}"


def check_scope(grant: Grant, method: str, path: str) -> None:
    """PermissionDenied, naming the scope needed, when the token's scope does not cover it."""
    needed, what = required_scope(method, path)
    if not grant.scope.covers(needed):
        raise PermissionDenied(f"scope: {what} needs a token with scope '{needed}'; token "
                               f"'{grant.name}' has scope '{grant.scope}'")


def may_see_command(grant: Grant, principal: str) -> bool:
    """A command is its principal's (and an admin's) to look at."""
    return grant.scope is Scope.ADMIN or grant.name == principal


# --- the create policy ------------------------------------------------------------------------

_HOST_MODES = {"NetworkMode": ("host-network", "--network"), "PidMode": ("host-pid", "--pid"),
               "IpcMode": ("host-ipc", "--ipc"), "UTSMode": ("host-uts", "--uts"),
               "CgroupnsMode": ("host-cgroupns", "--cgroupns"),
               "UsernsMode": ("host-userns", "--userns")}
_SHARED_MODES = {"NetworkMode": "--network", "PidMode": "--pid", "IpcMode": "--ipc"}
_DEVICES = {"Devices": "--device", "DeviceCgroupRules": "--device-cgroup-rule",
            "DeviceRequests": "--gpus"}
_SAFE_SECURITY_OPT = re.compile(r"no-new-privileges(?:[=:].*)?|seccomp[=:]builtin",
                                re.DOTALL)


def violations(body: Mapping[str, Any]) -> list[Violation]:
    """Every setting of a Docker create body that reaches into the host.

    Read by the keys wharfd reads (``HostConfig.*``, case as sent); a value of the wrong
    shape counts as set (wharfd refuses it anyway), so a body is never let through by being
    odd.
    """
    host = body.get("HostConfig")
    if not isinstance(host, Mapping):
        return []
    found = [Violation("privileged", "--privileged")] if host.get("Privileged") not in \
        (None, False) else []
    found += _mounts(host)
    if host.get("VolumesFrom"):
        found.append(Violation("volumes-from", f"--volumes-from {_words(host['VolumesFrom'])}"))
    for key, (rule, flag) in _HOST_MODES.items():
        if str(host.get(key) or "") == "host":
            found.append(Violation(rule, f"{flag} host"))
    for key, flag in _SHARED_MODES.items():
        if str(host.get(key) or "").startswith("container:"):
            found.append(Violation("shared-namespace", f"{flag} {host[key]}"))
    if host.get("CapAdd"):
        found.append(Violation("cap-add", f"--cap-add {_words(host['CapAdd'])}"))
    for key, flag in _DEVICES.items():
        if host.get(key):
            found.append(Violation("devices", flag))
    found += [Violation("security-opt", f"--security-opt {option}")
              for option in _listed(host.get("SecurityOpt"))
              if not _SAFE_SECURITY_OPT.fullmatch(option)]
    return found


def _mounts(host: Mapping[str, Any]) -> Iterator[Violation]:
    """Host paths among ``Binds`` (a source that starts with ``/``, as wharfd tells a bind
    from a named volume) and ``Mounts`` (type bind, or a volume whose driver options make the
    local driver bind a device)."""
    for bind in _listed(host.get("Binds")):
        source, separator, _ = bind.partition(":")
        if separator and source.startswith("/"):
            yield Violation("host-path", f"-v {bind}")
    mounts = host.get("Mounts")
    for mount in mounts if isinstance(mounts, list) else []:
        if not isinstance(mount, Mapping):
            continue
        kind = mount.get("Type")
        if kind == "bind":
            yield Violation("host-path", f"--mount type=bind,source={mount.get('Source')}")
        elif kind == "volume" and _driver_options(mount):
            yield Violation("host-path", "--mount type=volume with driver options "
                            f"{_words(_driver_options(mount))}")


def _driver_options(mount: Mapping[str, Any]) -> list[str]:
    """A volume mount's driver options other than a tmpfs (the local driver's other kind
    with options is a bind of a host path)."""
    volume = mount.get("VolumeOptions")
    config = volume.get("DriverConfig") if isinstance(volume, Mapping) else None
    options = config.get("Options") if isinstance(config, Mapping) else None
    if not options:
        return []
    if not isinstance(options, Mapping):
        return [str(options)]
    if options.get("type") == "tmpfs":
        return []
    return [f"{k}={v}" for k, v in options.items()]


def _listed(value: Any) -> list[str]:
    """A list of strings as sent; anything else as one string (so it is still looked at)."""
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)]


def _words(value: Any) -> str:
    return ",".join(_listed(value))


def check_create(grant: Grant, body: Mapping[str, Any]) -> None:
    """PermissionDenied naming every rule a create body breaks that the token is not
    allowed (an admin token is allowed everything)."""
    if grant.scope is Scope.ADMIN:
        return
    refused = [v for v in violations(body) if v.rule not in grant.allow]
    if not refused:
        return
    flags = ", ".join(v.flag for v in refused)
    rules = ",".join(dict.fromkeys(v.rule for v in refused))
    raise PermissionDenied(f"policy: {flags} {'needs' if len(refused) == 1 else 'need'} an "
                           f"admin token (or an operate token created with --allow {rules})")


def check_payload(grant: Grant, payload: Payload) -> None:
    """The policy for a command about to be sent: the create body of create and run."""
    if isinstance(payload, RunPayload | CreatePayload):
        check_create(grant, payload.create)


def parse_scope(text: str) -> Scope:
    try:
        return Scope(text)
    except ValueError:
        raise InvalidArgument(f"unknown scope {text!r}: one of "
                              f"{', '.join(s.value for s in Scope)}") from None


def parse_allow(words: Iterable[str]) -> frozenset[str]:
    """Rule names from ``--allow a,b`` (each word may hold several, comma-separated)."""
    names = {n.strip() for w in words for n in w.split(",") if n.strip()}
    unknown = sorted(names - set(RULES))
    if unknown:
        raise InvalidArgument(f"unknown policy rule {unknown[0]!r}: one of "
                              f"{', '.join(RULES)}")
    return frozenset(names)
