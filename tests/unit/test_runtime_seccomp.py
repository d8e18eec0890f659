"""Docker-format seccomp → OCI, and the libseccomp BPF compile and cache."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from wharf.daemon.core.runtime import seccomp
from wharf.daemon.core.runtime.capabilities import DOCKER_DEFAULT_CAPS
from wharf.daemon.core.runtime.seccomp_bpf import (
    ANNOTATION,
    BpfCache,
    action_value,
    compile_bpf,
    profile_digest,
)
from wharf.errors import InvalidArgument, NotFound

PROFILE: dict[str, Any] = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "defaultErrnoRet": 38,
    "archMap": [
        {"architecture": "SCMP_ARCH_X86_64",
         "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
        {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
    ],
    "syscalls": [
        {"names": ["read", "write", "no_such_syscall"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64"]}},
        {"names": ["cacheflush"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm64"]}},
        {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["mount"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
         "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["newer"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "9.0"}},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]},
    ],
}


def _names(oci: dict[str, Any]) -> list[str]:
    return [n for rule in oci["syscalls"] for n in rule["names"]]


def test_conversion_follows_arch_caps_and_kernel() -> None:
    oci = seccomp.to_oci(PROFILE, DOCKER_DEFAULT_CAPS, machine="x86_64", kernel=(6, 18))
    assert oci["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    assert oci["defaultErrnoRet"] == 38
    assert _names(oci) == ["read", "write", "no_such_syscall", "arch_prctl", "mount",
                           "personality"]
    assert oci["syscalls"][2] == {"names": ["mount"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}
    admin = seccomp.to_oci(PROFILE, [*DOCKER_DEFAULT_CAPS, "CAP_SYS_ADMIN"], machine="x86_64",
                           kernel=(9, 1))
    assert admin["syscalls"][2] == {"names": ["mount"], "action": "SCMP_ACT_ALLOW"}
    assert "newer" in _names(admin)
    arm = seccomp.to_oci(PROFILE, (), machine="aarch64", kernel=(6, 1))
    assert arm["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert "cacheflush" in _names(arm) and "arch_prctl" not in _names(arm)


def test_bad_profiles() -> None:
    with pytest.raises(InvalidArgument, match="both"):
        seccomp.to_oci({**PROFILE, "architectures": ["SCMP_ARCH_X86"]}, ())
    with pytest.raises(InvalidArgument, match="defaultAction"):
        seccomp.to_oci({"syscalls": []}, ())
    with pytest.raises(NotFound):
        seccomp.load_profile(Path("/nonexistent/seccomp.json"))


def test_shipped_profile_default_caps() -> None:
    if not seccomp.DEFAULT_PROFILE.exists():
        pytest.skip("containers-common seccomp.json not installed")
    oci = seccomp.to_oci(seccomp.load_profile(), DOCKER_DEFAULT_CAPS, machine="x86_64")
    allowed = {n for r in oci["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" for n in r["names"]}
    assert {"read", "clone", "chroot", "arch_prctl"} <= allowed
    # containers-common gates these on capabilities (mount/unshare it leaves to the caps)
    assert not {"sethostname", "bpf", "open_by_handle_at", "kexec_load"} & allowed


def test_compile_is_deterministic_and_well_formed() -> None:
    oci = seccomp.to_oci(PROFILE, DOCKER_DEFAULT_CAPS, machine="x86_64", kernel=(6, 18))
    program = compile_bpf(oci)
    assert len(program) % 8 == 0 and len(program) > 8
    assert compile_bpf(oci) == program
    assert action_value("SCMP_ACT_ERRNO", None) == 0x00050001
    with pytest.raises(InvalidArgument, match="unsupported seccomp action"):
        compile_bpf({**oci, "defaultAction": "SCMP_ACT_NOTIFY"})


def test_cache_compiles_once_and_writes_atomically(tmp_path: Path) -> None:
    oci = seccomp.to_oci(PROFILE, DOCKER_DEFAULT_CAPS, machine="x86_64", kernel=(6, 18))
    cache = BpfCache(tmp_path / "seccomp")
    program = cache.get(oci)
    stored = tmp_path / "seccomp" / f"{profile_digest(oci)}.bpf"
    assert stored.read_bytes() == program
    assert [p.name for p in stored.parent.iterdir()] == [stored.name]  # no temp files left
    stored.write_bytes(b"from-disk")  # a fresh cache reads the file instead of compiling
    assert BpfCache(tmp_path / "seccomp").get(oci) == b"from-disk"
    assert base64.b64decode(cache.annotation(oci)[ANNOTATION]) == program
