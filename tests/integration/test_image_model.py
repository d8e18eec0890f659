"""A model-based test of the image store (#17): a seeded random walk of pull, tag, rmi, save,
load, import, image prune and push over images that share layers, against a real wharfd, the
real registry, skopeo and (when one runs) a Docker engine.

The model is what the user expects: which names exist and which content each shows. After every
step each listed image must inspect, run, save to an archive that skopeo (and ``docker load``)
accept, and push; at the end, once everything is removed, no blob, layer or temporary file may be
left. The walk is printed with its seed; run a longer one with

    WHARF_MODEL_SEED=1234 WHARF_MODEL_STEPS=200 .venv/bin/pytest -s -m slow -o timeout=3600 \
        tests/integration/test_image_model.py

(a step takes about 5 s here: lift pytest's 300 s per-test timeout for a long walk).
"""

from __future__ import annotations

import io
import os
import random
import shutil
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.daemon_fixture import Daemon, running_daemon, wharf_cli
from tests.integration.registry_fixture import BUSYBOX, Registry, push_shared_images

pytestmark = [pytest.mark.integration, pytest.mark.slow]
DOCKER = shutil.which("docker")
# the engine `make dockerd` starts, never whatever DOCKER_HOST names (it may be a wharfd)
DOCKER_ENGINE = ["-H", "unix:///var/run/docker.sock"]
STEPS = int(os.environ.get("WHARF_MODEL_STEPS", "14"))


def docker_engine() -> bool:
    """Whether a Docker engine answers (``make test`` starts one)."""
    if DOCKER is None:
        return False
    probe = subprocess.run([DOCKER, *DOCKER_ENGINE, "info"], capture_output=True, check=False,
                           timeout=30)
    return probe.returncode == 0


@pytest.fixture(scope="module")
def pulled(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    return push_shared_images(registry, tmp_path_factory.mktemp("model"), repo="acc/model")


@pytest.fixture
def daemon(registry: Registry, tmp_path: Path) -> Iterator[Daemon]:
    with running_daemon(tmp_path / "wharfd", mirrors=[registry.url]) as running:
        yield running


@dataclass
class Walk:
    """The model (name → content key) and the real daemon it is checked against."""

    daemon: Daemon
    registry: Registry
    pulled: dict[str, str]  # reference → content key ("a", "b")
    workdir: Path
    rng: random.Random
    names: dict[str, str] = field(default_factory=dict)
    archives: list[tuple[Path, dict[str, str]]] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    imports: int = 0
    ids: dict[str, str] = field(default_factory=dict)  # name → image ID, as last inspected

    def wharf(self, *args: str, check: bool = True) -> str:
        self.log.append("wharf " + " ".join(args))
        return wharf_cli(self.daemon, *args, check=check).stdout

    # --- the steps ----------------------------------------------------------------------------
    def pull(self) -> None:
        ref = self.rng.choice(sorted(self.pulled))
        self.wharf("pull", ref)
        self.names[ref] = self.pulled[ref]

    def tag(self) -> None:
        source = self.rng.choice(sorted(self.names))
        target = self.rng.choice(["keep/x:1", "keep/y:1", "other/z:2"])
        self.wharf("tag", source, target)
        self.names[target] = self.names[source]

    def rmi(self) -> None:
        self.names.pop(name := self.rng.choice(sorted(self.names)))
        self.wharf("rmi", name)

    def rmi_by_id(self) -> None:
        ids = {name: self.image_id(name) for name in self.names}
        image_id = ids[self.rng.choice(sorted(self.names))]
        self.wharf("rmi", "-f", image_id)
        self.names = {n: k for n, k in self.names.items() if ids[n] != image_id}

    def save(self) -> None:
        chosen = self.rng.sample(sorted(self.names), k=min(len(self.names), self.rng.randint(1, 2)))
        path = self.workdir / f"archive-{len(self.archives)}.tar"
        self.wharf("save", "-o", str(path), *chosen)
        self.archives.append((path, {n: self.names[n] for n in chosen}))

    def load(self) -> None:
        path, names = self.rng.choice(self.archives)
        self.wharf("load", "-i", str(path))
        self.names.update(names)

    def import_(self) -> None:
        self.imports += 1
        name = f"imported:{self.imports}"
        self.wharf("import", str(self.workdir / "rootfs.tar"), name)
        self.names[name] = "c"

    def prune(self) -> None:
        self.wharf("image", "prune", "-f")

    def push(self) -> None:
        name = self.rng.choice(sorted(self.names))
        target = f"{self.registry.host}/acc/model-push:{self.rng.randint(1, 2)}"
        self.wharf("tag", name, target)
        self.wharf("push", target)
        self.names[target] = self.names[name]

    def steps(self) -> list[Callable[[], None]]:
        """The steps that make sense now (a name to act on, an archive to load)."""
        possible: list[Callable[[], None]] = [self.pull, self.import_, self.prune]
        if self.names:
            possible += [self.tag, self.rmi, self.rmi_by_id, self.save, self.push, self.pull]
        if self.archives:
            possible.append(self.load)
        return possible

    # --- what must hold after every step ----------------------------------------------------
    def image_id(self, name: str) -> str:
        return self.wharf("image", "inspect", "-f", "{{.Id}}", name).strip()

    def check(self) -> None:
        """The listed names are the model's; each image inspects, runs, saves and pushes."""
        listed = self.wharf("images", "--format", "{{.Repository}}:{{.Tag}}").split()
        assert sorted(n for n in listed if not n.endswith(":<none>")) == sorted(self.names)
        seen: set[str] = set()
        for name in sorted(self.names):
            image_id = self.image_id(name)
            if image_id not in seen:
                seen.add(image_id)
                self._check_image(name, self.names[name])

    def _check_image(self, name: str, key: str) -> None:
        command = ["cat", f"/{key}.txt"] if key != "c" else ["echo", "I am c"]
        assert self.wharf("run", "--rm", name, *command).strip() == f"I am {key}"
        archive = self.workdir / "check.tar"
        self.wharf("save", "-o", str(archive), name)
        subprocess.run(["skopeo", "inspect", f"docker-archive:{archive}"], check=True,
                       capture_output=True, timeout=60)
        if docker_engine():
            assert DOCKER is not None
            loaded = subprocess.run([DOCKER, *DOCKER_ENGINE, "load", "-i", str(archive)],
                                    check=True,
                                    capture_output=True, text=True, timeout=120).stdout
            image = loaded.strip().splitlines()[-1].split(": ", 1)[1]
            subprocess.run([DOCKER, *DOCKER_ENGINE, "rmi", "-f", image], check=True,
                           capture_output=True, timeout=60)
        archive.unlink()
        target = f"{self.registry.host}/acc/model-check:{key}"
        self.wharf("tag", name, target)
        self.wharf("push", target)
        self.wharf("rmi", target)


def _rootfs(path: Path) -> None:
    with tarfile.open(path, mode="w") as tar:
        tar.add(BUSYBOX, arcname="bin/busybox")
        for applet in ("sh", "cat", "echo"):
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info, io.BytesIO())


def leftovers(data_root: Path) -> list[str]:
    """Every blob, layer and temporary file under the data root's image directories."""
    found = []
    for sub in ("content/sha256", "content/ingest", "layers", "layers/tmp", "tmp"):
        directory = data_root / sub
        if directory.is_dir():
            found += [f"{sub}/{p.name}" for p in directory.iterdir()
                      if (sub, p.name) != ("layers", "tmp")]
    return found


def test_a_random_walk_keeps_every_image_whole(daemon: Daemon, registry: Registry,
                                               pulled: list[str], tmp_path: Path) -> None:
    seed = int(os.environ.get("WHARF_MODEL_SEED") or random.SystemRandom().randrange(1 << 32))
    print(f"image store model: seed {seed}, {STEPS} steps")
    walk = Walk(daemon, registry, {pulled[0]: "a", pulled[1]: "b"}, tmp_path,
                random.Random(seed))
    _rootfs(tmp_path / "rootfs.tar")
    for number in range(STEPS):
        step = walk.rng.choice(walk.steps())
        try:
            step()
            walk.check()
        except AssertionError as exc:
            raise AssertionError(f"seed {seed}, step {number + 1} ({step.__name__}):\n"
                                 + "\n".join(walk.log[-40:]) + f"\n{exc}") from exc
        print(f"step {number + 1}: {step.__name__}: {len(walk.names)} names")
    for image_id in set(walk.wharf("images", "-q").split()):
        walk.wharf("rmi", "-f", image_id)
    walk.wharf("image", "prune", "-a", "-f")
    assert walk.wharf("images", "-q").split() == []
    assert leftovers(daemon.data_root) == [], f"seed {seed}"
    assert "consistent" in walk.wharf("system", "check")
