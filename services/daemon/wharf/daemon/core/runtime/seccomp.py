"""Docker-format seccomp profiles → the OCI ``linux.seccomp`` object for one container.

The profile wharf ships by default is Debian's containers-common one
(/usr/share/containers/seccomp.json): ``archMap`` plus rules with ``includes``/``excludes``
by capability, architecture and minimum kernel. The conversion follows moby's
``profiles/seccomp.setupSeccomp``: keep the native arch and its sub-arches, drop the rules
whose conditions do not hold for this host and capability set. Pure functions over data.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from wharf.errors import InvalidArgument, NotFound

DEFAULT_PROFILE = Path("/usr/share/containers/seccomp.json")

# uname machine → (Go arch name used in profiles, libseccomp arch name used in OCI)
_MACHINES: dict[str, tuple[str, str]] = {
    "x86_64": ("amd64", "SCMP_ARCH_X86_64"),
    "i686": ("386", "SCMP_ARCH_X86"),
    "aarch64": ("arm64", "SCMP_ARCH_AARCH64"),
    "armv7l": ("arm", "SCMP_ARCH_ARM"),
    "ppc64le": ("ppc64le", "SCMP_ARCH_PPC64LE"),
    "s390x": ("s390x", "SCMP_ARCH_S390X"),
    "riscv64": ("riscv64", "SCMP_ARCH_RISCV64"),
}

Profile = Mapping[str, Any]


def load_profile(path: Path = DEFAULT_PROFILE) -> dict[str, Any]:
    """Read a Docker-format profile.

    Raises:
        NotFound: the file does not exist.
        InvalidArgument: it is not a JSON object.
    """
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise NotFound(f"seccomp profile {path} not found") from exc
    except ValueError as exc:
        raise InvalidArgument(f"seccomp profile {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidArgument(f"seccomp profile {path} must be a JSON object")
    return data


def kernel_version(release: str | None = None) -> tuple[int, int]:
    """(major, minor) of a kernel release string such as ``6.18.44-fc``."""
    match = re.match(r"(\d+)\.(\d+)", release or os.uname().release)
    if not match:
        raise InvalidArgument(f"cannot parse kernel release {release!r}")
    return int(match.group(1)), int(match.group(2))


def _architectures(profile: Profile, native: str) -> list[str]:
    if profile.get("architectures") and profile.get("archMap"):
        raise InvalidArgument("seccomp profile has both 'architectures' and 'archMap'")
    arches = list(profile.get("architectures") or [])
    for entry in profile.get("archMap") or []:
        if entry.get("architecture") == native:
            arches += [native, *(entry.get("subArchitectures") or [])]
            break
    return arches


def _applies(
    rule: Mapping[str, Any], goarch: str, caps: Collection[str], kernel: tuple[int, int]
) -> bool:
    """moby's include/exclude logic: every exclude must miss and every include must hold."""
    exc = rule.get("excludes") or {}
    inc = rule.get("includes") or {}
    if goarch in (exc.get("arches") or []):
        return False
    if any(c in caps for c in exc.get("caps") or []):
        return False
    if exc.get("minKernel") and kernel >= kernel_version(exc["minKernel"]):
        return False
    if inc.get("arches") and goarch not in inc["arches"]:
        return False
    if any(c not in caps for c in inc.get("caps") or []):
        return False
    return not (inc.get("minKernel") and kernel < kernel_version(inc["minKernel"]))


def _oci_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    names = list(rule.get("names") or [])
    if rule.get("name"):
        if names:
            raise InvalidArgument("seccomp rule has both 'name' and 'names'")
        names = [rule["name"]]
    out: dict[str, Any] = {"names": names, "action": rule["action"]}
    if rule.get("errnoRet") is not None:
        out["errnoRet"] = int(rule["errnoRet"])
    args = [
        {"index": a["index"], "value": a["value"], "valueTwo": a.get("valueTwo", 0), "op": a["op"]}
        for a in rule.get("args") or []
    ]
    if args:
        out["args"] = args
    return out


def to_oci(
    profile: Profile,
    capabilities: Collection[str],
    *,
    machine: str | None = None,
    kernel: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """The OCI ``linux.seccomp`` object for this host's arch and the container's capabilities.

    Raises:
        InvalidArgument: the profile is malformed or the host architecture is unknown.
    """
    machine = machine or os.uname().machine
    if machine not in _MACHINES:
        raise InvalidArgument(f"no seccomp mapping for host architecture {machine}")
    goarch, native = _MACHINES[machine]
    kernel = kernel or kernel_version()
    if "defaultAction" not in profile:
        raise InvalidArgument("seccomp profile has no defaultAction")
    oci: dict[str, Any] = {"defaultAction": profile["defaultAction"]}
    if profile.get("defaultErrnoRet") is not None:
        oci["defaultErrnoRet"] = int(profile["defaultErrnoRet"])
    arches = _architectures(profile, native)
    if arches:
        oci["architectures"] = arches
    if profile.get("flags"):
        oci["flags"] = list(profile["flags"])
    oci["syscalls"] = [
        _oci_rule(rule)
        for rule in profile.get("syscalls") or []
        if _applies(rule, goarch, capabilities, kernel)
    ]
    return oci


def canonical_json(oci_seccomp: Mapping[str, Any]) -> bytes:
    """A stable serialization (sorted keys, no spaces): the cache key is its sha256."""
    return json.dumps(oci_seccomp, sort_keys=True, separators=(",", ":")).encode()
