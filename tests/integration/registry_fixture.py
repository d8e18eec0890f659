"""A real local registry and small test images, for integration and e2e tests.

``running_registry(dir)`` starts ``docker-registry serve`` (CNCF distribution) on a free
127.0.0.1 port with its own config and storage under ``dir`` and stops it on exit.
``build_busybox_layout`` makes an OCI image layout with umoci from the host's busybox-static
(optionally a second layer that deletes a file, so it carries a ``.wh.`` whiteout), and
``push_layout`` copies it into the registry with skopeo.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

BUSYBOX = Path("/bin/busybox")
APPLETS = ("sh", "ls", "cat", "echo", "true", "false", "sleep", "env", "id", "rm")
_PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
_GROUP = "root:x:0:\nnogroup:x:65534:\n"


def tools_available() -> bool:
    """Whether docker-registry, umoci, skopeo and busybox-static are installed."""
    tools = ("docker-registry", "umoci", "skopeo")
    return BUSYBOX.is_file() and all(shutil.which(tool) for tool in tools)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Registry:
    """A running registry: ``host`` is ``127.0.0.1:<port>``, ``storage`` its root directory."""

    host: str
    storage: Path
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def blob_data(self, digest: str) -> Path:
        """The file the registry serves blob ``digest`` from (to corrupt it in tests)."""
        hex_ = digest.removeprefix("sha256:")
        return self.storage / "docker/registry/v2/blobs/sha256" / hex_[:2] / hex_ / "data"

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        host, port = self.host.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            conn.request("GET", path, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()


def start_registry(workdir: Path, timeout: float = 15) -> Registry:
    """Start a registry with storage and config under ``workdir``; waits for ``GET /v2/``."""
    storage = workdir / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = workdir / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log: {level: warn, accesslog: {disabled: true}}\n"
        f"storage: {{filesystem: {{rootdirectory: {storage}}}, delete: {{enabled: true}}}}\n"
        f"http: {{addr: 127.0.0.1:{port}}}\n"
    )
    log = workdir / "registry.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["docker-registry", "serve", str(config)], stdout=out, stderr=subprocess.STDOUT,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        )
    registry = Registry(f"127.0.0.1:{port}", storage, process, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {log.read_text()[-2000:]}")
        try:
            if registry.get("/v2/")[0] == 200:
                return registry
        except OSError:
            pass
        time.sleep(0.05)
    stop_registry(registry)
    raise RuntimeError(f"docker-registry did not answer on {registry.host}")


def stop_registry(registry: Registry) -> None:
    if registry.process.poll() is None:
        registry.process.terminate()
        try:
            registry.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            registry.process.kill()
            registry.process.wait()


@contextmanager
def running_registry(workdir: Path) -> Iterator[Registry]:
    registry = start_registry(workdir)
    try:
        yield registry
    finally:
        stop_registry(registry)


def _run(*args: str, cwd: Path | None = None) -> str:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def _applets() -> list[str]:
    """Every applet of the installed busybox (the container tests use tr, seq, tail, …)."""
    listed = _run(BUSYBOX, "--list").split()
    return sorted({*APPLETS, *listed} - {"busybox"})


def _fixed_mtimes(root: Path, when: float = 1_700_000_000) -> None:
    for path in [*root.rglob("*"), root]:
        os.utime(path, (when, when), follow_symlinks=False)


def build_busybox_layout(workdir: Path, tag: str = "latest", *, whiteout: bool = False) -> Path:
    """An OCI layout at ``workdir/oci`` holding ``tag``: busybox + applets + /etc/passwd.

    With ``whiteout`` a second layer deletes ``/bin/rm`` and adds ``/hello.txt``, so its tar
    carries ``bin/.wh.rm``.
    """
    layout, bundle = workdir / "oci", workdir / "bundle"
    image = f"{layout}:{tag}"
    if not layout.exists():
        _run("umoci", "init", "--layout", str(layout))
    _run("umoci", "new", "--image", image)
    _run("umoci", "unpack", "--image", image, str(bundle))
    rootfs = bundle / "rootfs"
    for sub in ("bin", "etc", "tmp", "root"):
        (rootfs / sub).mkdir(exist_ok=True)
    shutil.copy2(BUSYBOX, rootfs / "bin/busybox")
    for applet in _applets():
        (rootfs / "bin" / applet).symlink_to("busybox")
    (rootfs / "etc/passwd").write_text(_PASSWD)
    (rootfs / "etc/group").write_text(_GROUP)
    _fixed_mtimes(rootfs)  # the same base layer, byte for byte, whenever it is built
    # --refresh-bundle: a later repack then stacks on this one instead of replacing it
    _run("umoci", "repack", "--refresh-bundle", "--image", image, str(bundle))
    if whiteout:
        (rootfs / "bin/rm").unlink()
        (rootfs / "hello.txt").write_text("hello from layer two\n")
        _run("umoci", "repack", "--image", image, str(bundle))
    _run("umoci", "config", "--image", image, "--config.cmd", "/bin/sh",
         "--config.env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    _run("umoci", "gc", "--layout", str(layout))
    shutil.rmtree(bundle)
    return layout


def push_layout(layout: Path, tag: str, registry: Registry, name: str) -> None:
    """``skopeo copy`` the layout's ``tag`` to ``<registry>/<name>`` (name includes a tag)."""
    _run("skopeo", "copy", "--quiet", "--dest-tls-verify=false",
         f"oci:{layout}:{tag}", f"docker://{registry.host}/{name}")


def inspect_raw(registry: Registry, name: str) -> bytes:
    """The manifest bytes skopeo reads for ``<registry>/<name>``."""
    return _run("skopeo", "inspect", "--raw", "--tls-verify=false",
                f"docker://{registry.host}/{name}").encode()


def manifest_blobs(raw: bytes) -> list[str]:
    """Config and layer digests a manifest names, config first."""
    data = json.loads(raw)
    return [data["config"]["digest"], *(layer["digest"] for layer in data["layers"])]


def push_shared_images(registry: Registry, workdir: Path, names: tuple[str, ...] = ("a", "b"),
                       repo: str = "acc/share") -> list[str]:
    """Push ``<repo>-<name>:1`` for each name: one busybox base layer they all share, then a
    layer of each one's own (``/<name>.txt``). Returns the references, registry included."""
    layout = build_busybox_layout(workdir, "base")
    refs = []
    for name in names:
        bundle = workdir / f"bundle-{name}"
        _run("umoci", "unpack", "--image", f"{layout}:base", str(bundle))
        (bundle / "rootfs" / f"{name}.txt").write_text(f"I am {name}\n")
        _run("umoci", "repack", "--image", f"{layout}:{name}", str(bundle))
        shutil.rmtree(bundle)
        push_layout(layout, name, registry, f"{repo}-{name}:1")
        refs.append(f"{registry.host}/{repo}-{name}:1")
    return refs
