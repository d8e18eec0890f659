"""The engines ``bench/run_latency.py`` runs side by side, and the one image they all run.

- :class:`Contender`: an engine's CLI (argv prefix and the flags its ``run`` needs on this
  host), its Docker API socket, the network its bridge rows use and what its API ``create``
  needs beyond the image;
- :func:`busybox_tar`: a rootfs tar of Debian's busybox-static (``/bin/busybox`` with ``true``
  and ``sh`` symlinks to it); :func:`import_image` imports it into an engine with that engine's
  own ``import`` under a bench-only name, so every engine runs the identical layer
  (:func:`layer_of` reads the layer's diff_id back to show it);
- :func:`docker_bridge`: the bridge network docker's bridge rows use.

Not a script.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import shutil
import subprocess
import tarfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from bench.common import run_timed
from bench.engines import engine_check, once

MODES = ("none", "bridge")
MODE_LABELS = {"none": "--network none", "bridge": "bridge"}
BUSYBOX_STATIC = Path("/bin/busybox")  # Debian's busybox-static
BENCH_NETWORK = "wharf-bench-br"
LABEL = "wharf-bench=run-latency"  # on every container the bench creates through an API


def bench_labels() -> dict[str, str]:
    """:data:`LABEL` as a create body's ``Labels``."""
    key, value = LABEL.split("=")
    return {key: value}


@dataclass(frozen=True)
class Contender:
    """One engine as the bench drives it, through its CLI and its Docker API socket."""

    name: str
    cli: tuple[str, ...]
    socket: Path
    bridge: str | None = None  # ``--network`` of the bridge rows; None: the engine's default
    bridge_api: str = "bridge"  # HostConfig.NetworkMode of the bridge rows
    run_flags: tuple[str, ...] = ()
    host_config: Mapping[str, Any] = field(default_factory=dict)

    def run_argv(self, image: str, mode: str) -> list[str]:
        """``<cli> run --rm [flags] [--network N] IMAGE true`` for ``mode`` (none/bridge)."""
        network = "none" if mode == "none" else self.bridge
        net = ["--network", network] if network else []
        return [*self.cli, "run", "--rm", *self.run_flags, *net, image, "true"]

    def create_body(self, image: str, cmd: list[str], mode: str,
                    labels: Mapping[str, str]) -> dict[str, Any]:
        """The ``POST /containers/create`` body for ``mode``."""
        network = "none" if mode == "none" else self.bridge_api
        return {"Image": image, "Cmd": cmd, "Labels": dict(labels),
                "HostConfig": {"NetworkMode": network, **self.host_config}}


def busybox_tar(directory: Path) -> tuple[Path, str]:
    """The rootfs tar (``bin/busybox``, ``bin/true``, ``bin/sh``) and its sha256 (the
    uncompressed layer's diff_id, the same in every engine that stores it as imported)."""
    if not BUSYBOX_STATIC.is_file():
        raise RuntimeError(f"{BUSYBOX_STATIC} missing: apt-get install -y busybox-static")
    root = directory / "rootfs"
    (root / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX_STATIC, root / "bin" / "busybox")
    for applet in ("true", "sh"):
        (root / "bin" / applet).symlink_to("busybox")
    tar = directory / "busybox-static.tar"

    def as_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.mtime = 0
        return info

    with tarfile.open(tar, "w", format=tarfile.PAX_FORMAT) as archive:
        archive.add(root / "bin", arcname="bin", filter=as_root)
    return tar, "sha256:" + hashlib.sha256(tar.read_bytes()).hexdigest()


def import_image(contender: Contender, tar: Path, image: str) -> None:
    """``<cli> import TAR IMAGE`` (each engine's own import)."""
    run_timed([*contender.cli, "import", str(tar), image])


def layer_of(contender: Contender, image: str) -> str:
    """The image's first layer diff_id, read back through the engine's API."""
    reply = once(contender.socket, "GET", f"/images/{image}/json")
    layers = reply.get("RootFS", {}).get("Layers") or ["?"]
    return str(layers[0])


def remove_image(contender: Contender, image: str) -> str:
    """``<cli> rmi IMAGE``; an empty string, or why it failed."""
    proc = subprocess.run([*contender.cli, "rmi", image], capture_output=True, text=True,
                          check=False, timeout=60)
    return "" if proc.returncode == 0 else proc.stderr.strip()[-200:]


@contextmanager
def docker_bridge(cli: tuple[str, ...]) -> Iterator[str | None]:
    """The network docker's bridge rows use: None (the default bridge) when dockerd has one,
    else a bridge network made here (dockerd with ``--bridge=none``) and removed at the end."""
    if engine_check([*cli, "network", "inspect", "bridge"]) is None:
        yield None
        return
    subprocess.run([*cli, "network", "rm", BENCH_NETWORK], capture_output=True, check=False)
    if engine_check([*cli, "network", "inspect", BENCH_NETWORK]) is None:
        # dockerd 20.10 can keep an endpoint of a container removed concurrently and then
        # refuses to remove the network ("has active endpoints") until it restarts: an
        # earlier run's network, empty, serves as well
        print(f"dockerd: reusing {BENCH_NETWORK} (an earlier run's; dockerd refused to remove "
              "it)")
    else:
        subprocess.run([*cli, "network", "create", "--driver", "bridge", BENCH_NETWORK],
                       capture_output=True, check=True)
    try:
        yield BENCH_NETWORK
    finally:
        gone = subprocess.run([*cli, "network", "rm", BENCH_NETWORK], capture_output=True,
                              text=True, check=False)
        if gone.returncode != 0:
            print(f"cleanup: docker network rm {BENCH_NETWORK}: {gone.stderr.strip()[-160:]}")


def labelled(contender: Contender, label: str, *, running_only: bool = False) -> list[str]:
    """Ids of the engine's containers carrying ``label`` (all states unless ``running_only``)."""
    query = quote(json.dumps({"label": [label]}), safe="")
    listing = once(contender.socket, "GET",
                   f"/containers/json?all={0 if running_only else 1}&filters={query}")
    return [str(c["Id"]) for c in listing]


def remove_labelled(contender: Contender, label: str) -> int:
    """Force-remove the engine's containers carrying ``label``; how many there were."""
    ids = labelled(contender, label)
    for cid in ids:
        with suppress(OSError, RuntimeError, http.client.HTTPException):
            once(contender.socket, "DELETE", f"/containers/{cid}?force=1", expect=(204, 404))
    return len(ids)
