"""Everything on disk for one container: its dir, etc files, rootfs mount and config.json."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from wharf.daemon.core.containers.records import ContainerRecord
from wharf.daemon.core.dataroot import CONTAINER_MODE, DIR_MODES
from wharf.daemon.core.runtime import logfiles, rootfs, seccomp
from wharf.daemon.core.runtime import spec as oci_spec
from wharf.daemon.core.runtime.seccomp_bpf import BpfCache
from wharf.daemon.core.runtime.users import resolve_user


class Bundles:
    """Container dirs under ``root``; the OCI bundle is ``root/<id>`` (runtime's layout).

    ``root`` is 0711 and each container dir 0700 (``core.dataroot``): only root reaches a
    container's rootfs, so a host user never runs a setuid file it made. ``log_opts``
    are the daemon's default log options (a container's own win, key by key).
    """

    def __init__(self, root: Path, host: oci_spec.HostInfo, profile: dict[str, Any],
                 bpf: BpfCache, log_opts: Mapping[str, str] | None = None) -> None:
        self.root = root
        self.host = host
        self.profile = profile
        self.bpf = bpf
        self.log_opts = dict(log_opts or {})

    def dir(self, container_id: str) -> Path:
        return self.root / container_id

    def prepare(self, record: ContainerRecord) -> None:
        """Create the container dir (0700) with its hostname, hosts, resolv.conf and log
        limits; InvalidArgument for a bad ``--log-opt`` (create fails, in dockerd's words)."""
        limits = logfiles.resolve(record.host_config.get("LogConfig"), self.log_opts)
        cdir = self.dir(record.id)
        self.root.mkdir(mode=DIR_MODES["containers"], parents=True, exist_ok=True)
        cdir.mkdir(mode=CONTAINER_MODE, exist_ok=True)
        os.chmod(cdir, CONTAINER_MODE)
        logfiles.write_limits(cdir, limits)
        hostname = record.options.process.hostname or record.short_id
        _write(cdir / "hostname", hostname + "\n")
        _write(cdir / "hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost "
               f"ip6-loopback\n127.0.1.1\t{hostname}\n")
        _write(cdir / "resolv.conf", _resolv_conf(record.options.dns))

    def mount(self, record: ContainerRecord, lowers: list[Path]) -> Path:
        """The merged rootfs, mounted over the image layers (top first); kept across restarts."""
        base = self.dir(record.id) / "rootfs"
        merged = rootfs.OverlayPaths(base).merged
        if merged.exists() and rootfs.is_mounted(merged):
            return merged
        return rootfs.mount_overlay(lowers, base, keep_upper=True).merged

    def write_network_files(self, record: ContainerRecord, addresses: list[str],
                            nameserver: str | None) -> None:
        """/etc/hosts with the container's own addresses, and resolv.conf pointing at the
        network's embedded DNS (``nameserver``; None keeps the host's resolvers), as dockerd."""
        cdir = self.dir(record.id)
        hostname = record.options.process.hostname or record.short_id
        own = "".join(f"{ip}\t{hostname}\n" for ip in addresses) or f"127.0.1.1\t{hostname}\n"
        _write(cdir / "hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost "
               "ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\n"
               "ff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n" + own)
        if nameserver is not None and not record.options.dns:
            host = [line for line in _resolv_conf([]).splitlines()
                    if line.startswith(("search ", "options "))]
            _write(cdir / "resolv.conf", "\n".join([f"nameserver {nameserver}", *host]) + "\n")
        else:
            _write(cdir / "resolv.conf", _resolv_conf(record.options.dns))

    def write_config(self, record: ContainerRecord, merged: Path, takes_bpf: bool,
                     network: str = "private") -> None:
        """Resolve the user in the image, build config.json and write it atomically.

        ``takes_bpf``: the runtime loads precompiled seccomp (crun); runc gets the OCI JSON.
        ``network``: "private" (a new netns), "host", or the path of the netns to join.
        """
        spec = self.spec(record, merged, network)
        unconfined = record.options.seccomp_unconfined
        caps = oci_spec.container_capabilities(spec, self.host)
        sec = None if unconfined else seccomp.to_oci(self.profile, caps)
        program = self.bpf.get(sec) if sec is not None and takes_bpf else None
        config = oci_spec.build_config(spec, self.host, seccomp=sec, seccomp_bpf=program)
        cdir = self.dir(record.id)
        _write(cdir / "config.json", json.dumps(config))
        if logfiles.read_limits(cdir) is None:  # created before wharf kept log limits
            logfiles.write_limits(cdir, logfiles.resolve(record.host_config.get("LogConfig"),
                                                         self.log_opts))

    def spec(self, record: ContainerRecord, merged: Path, network: str) -> oci_spec.ContainerSpec:
        """The runtime's view of the container, from its options (the user resolved in the
        image, the device nodes read now, as dockerd does at start)."""
        options, process = record.options, record.options.process
        return oci_spec.ContainerSpec(
            container_id=record.id,
            args=(record.path, *record.args),
            rootfs=merged,
            container_dir=self.dir(record.id),
            env=tuple(process.env),
            cwd=process.cwd,
            user=resolve_user(merged, process.user, options.group_add),
            hostname=process.hostname or record.short_id,
            terminal=process.tty,
            readonly_rootfs=options.readonly_rootfs,
            tmpfs=tuple(options.tmpfs.items()),
            mounts=tuple(m.oci() for m in record.mounts),
            cap_add=tuple(options.cap_add),
            cap_drop=tuple(options.cap_drop),
            privileged=options.privileged,
            no_new_privileges=options.no_new_privileges,
            ulimits=tuple(u.runtime() for u in options.ulimits),
            devices=tuple(d.node() for d in options.devices),
            network=network,
            resources=options.resources.runtime(),
            shm_size=options.shm_size,
            oom_score_adj=options.oom_score_adj or None,
        )

    def remove(self, container_id: str) -> None:
        """Unmount the rootfs and delete the container dir (idempotent)."""
        cdir = self.dir(container_id)
        rootfs.unmount_overlay(cdir / "rootfs")
        shutil.rmtree(cdir, ignore_errors=True)


def _resolv_conf(servers: list[str]) -> str:
    if not servers:
        try:
            text = Path("/etc/resolv.conf").read_text()
        except OSError:
            text = ""
        # A loopback resolver of the host is unreachable from the container's own netns.
        lines = [line for line in text.splitlines()
                 if not line.startswith("nameserver 127.") and line.strip() != "nameserver ::1"]
        return "\n".join(lines) + "\n"
    return "".join(f"nameserver {s}\n" for s in servers)


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
