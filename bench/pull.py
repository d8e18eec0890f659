"""Pull, unpack and CLI start-up figures for wharf, each beside a reference tool in the same run.

    .venv/bin/python bench/pull.py [--runs N] [--registry 127.0.0.1:5000] [--skip-debian]

Sections (all figures are wall times; ratios are medians over the reference's median):

1. cold pull of busybox and debian:bookworm-slim from the local registry: ``wharf pull`` (wharf's
   store emptied between runs: ``wharf rmi`` and a check that no layer or blob is left) beside
   ``skopeo copy`` to a fresh OCI layout (no unpack), ``skopeo copy`` + ``tar -xzf`` of the
   layers and ``skopeo copy`` + ``umoci unpack`` ("pull + unpack");
2. unpack of one layer blob: ``LayerStore.unpack`` beside GNU ``tar -xzf`` (+ syncfs, since
   LayerStore syncs) and ``tarfile.extractall`` (r:gz), fresh target dirs, same filesystem;
3. CLI start-up: ``wharf version`` (one daemon round trip) and ``wharf --help`` beside the
   venv's ``python -c pass`` (the floor) and, when installed, ``docker version`` against wharfd.

It starts its own wharfd (temporary data root and socket under ``--work-dir``), and removes
everything it created at the end. Run from the repository root as root; needs skopeo, umoci, GNU
tar and the registry seeded by ``make images`` (and ``make images-debian``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `tests` and `bench` from any cwd

import wharf
from bench.common import (
    REPO,
    SUMMARY_HEADER,
    VENV_BIN,
    CommandFailed,
    Summary,
    machine_lines,
    print_table,
    ratio,
    run_timed,
    summary_row,
    timed,
)
from tests.daemon_fixture import running_daemon
from wharf.daemon.core.images.layers import LayerStore, chain_ids

WHARF = str(VENV_BIN / "wharf")
MANIFEST_TYPES = ", ".join([
    "application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
])


@dataclass(frozen=True)
class Image:
    repo: str
    tag: str

    def ref(self, registry: str) -> str:
        return f"{registry}/{self.repo}:{self.tag}"


BUSYBOX = Image("library/busybox", "latest")
DEBIAN = Image("library/debian", "bookworm-slim")


@dataclass(frozen=True)
class Layer:
    """One layer of an OCI layout: compressed blob, media type, diff_id and chain ID."""

    blob: Path
    media_type: str
    diff_id: str
    chain_id: str


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per pull/unpack case (5)")
    parser.add_argument("--startup-runs", type=int, default=30, help="runs per CLI case (30)")
    parser.add_argument("--registry", default="127.0.0.1:5000", help="plain-HTTP registry")
    parser.add_argument("--skip-debian", action="store_true", help="busybox only")
    parser.add_argument("--work-dir", type=Path, default=Path("/var/tmp"),
                        help="where the temporary tree goes (same fs for every tool)")
    args = parser.parse_args()
    if args.runs < 1 or args.startup_runs < 1:
        parser.error("--runs and --startup-runs must be at least 1")
    return args


def registry_has(registry: str, image: Image) -> bool:
    """Whether the registry answers the manifest of ``image`` (HEAD, plain HTTP, no proxy)."""
    url = f"http://{registry}/v2/{image.repo}/manifests/{image.tag}"
    request = urllib.request.Request(url, method="HEAD", headers={"Accept": MANIFEST_TYPES})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=5) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


# ---- OCI layouts (skopeo output) --------------------------------------------------------------

def skopeo_copy(registry: str, image: Image, layout: Path) -> float:
    """Seconds for ``skopeo copy`` of ``image`` into a new OCI layout at ``layout`` (tag x)."""
    return run_timed(["skopeo", "copy", "-q", "--src-tls-verify=false",
                      f"docker://{image.ref(registry)}", f"oci:{layout}:x"])


def layout_layers(layout: Path) -> list[Layer]:
    """The layers of the only image in ``layout``, in order, with diff_ids from the config."""
    def blob(digest: str) -> Path:
        algo, hexdigest = digest.split(":", 1)
        return layout / "blobs" / algo / hexdigest

    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads(blob(index["manifests"][0]["digest"]).read_text())
    config = json.loads(blob(manifest["config"]["digest"]).read_text())
    diff_ids: list[str] = config["rootfs"]["diff_ids"]
    return [Layer(blob(d["digest"]), d["mediaType"], diff, chain)
            for d, diff, chain in zip(manifest["layers"], diff_ids, chain_ids(diff_ids),
                                      strict=True)]


def tar_argv(layer: Layer, target: Path) -> list[str]:
    """GNU tar extracting ``layer`` into ``target``, no checks beyond tar's own."""
    flag = "--zstd" if layer.media_type.endswith("+zstd") else "--gzip"
    if layer.media_type.endswith(".tar"):
        flag = "--no-auto-compress"
    return ["tar", "-x", flag, "-f", str(layer.blob), "-C", str(target)]


# ---- 1. pull -----------------------------------------------------------------------------------

def store_leftovers(data_root: Path) -> list[str]:
    """Anything in wharf's layer or blob store (layers/tmp and content/ingest may exist, empty)."""
    left: list[str] = []
    for sub in ("layers", "layers/tmp", "content/sha256", "content/ingest"):
        folder = data_root / sub
        if folder.is_dir():
            left += [f"{sub}/{p.name}" for p in folder.iterdir() if p.name != "tmp"]
    return left


def wharf_pull_once(host: str, ref: str, data_root: Path) -> float:
    """Seconds for a cold ``wharf pull ref``, then ``wharf rmi`` and a check the store is empty."""
    if left := store_leftovers(data_root):
        raise RuntimeError(f"wharf's store is not empty before the pull: {left[:5]}")
    os.sync()  # earlier runs' writeback is not charged to this one
    seconds = run_timed([WHARF, "-H", host, "pull", ref])
    run_timed([WHARF, "-H", host, "rmi", ref])
    if left := store_leftovers(data_root):
        raise RuntimeError(f"`wharf rmi {ref}` left layers/blobs behind: {left[:5]}")
    return seconds


def skopeo_once(registry: str, image: Image, work: Path) -> dict[str, float]:
    """skopeo copy, then tar -x of every layer, then umoci unpack, each into fresh dirs."""
    layout, rootfs, bundle = work / "layout", work / "rootfs", work / "bundle"
    work.mkdir(parents=True)
    os.sync()
    out = {"copy": skopeo_copy(registry, image, layout)}
    rootfs.mkdir()
    os.sync()
    out["tar"] = sum(run_timed(tar_argv(layer, rootfs)) for layer in layout_layers(layout))
    os.sync()
    out["umoci"] = run_timed(["umoci", "unpack", "--image", f"{layout}:x", str(bundle)])
    shutil.rmtree(work)
    return out


def pull_section(host: str, data_root: Path, registry: str, image: Image, runs: int,
                 work: Path) -> None:
    ref = image.ref(registry)
    skopeo_once(registry, image, work / "warm-up")  # registry blobs into the page cache
    wharf: list[float] = []
    skopeo: list[dict[str, float]] = []
    for i in range(runs):  # alternate which tool goes first
        for tool in ("wharf", "skopeo") if i % 2 == 0 else ("skopeo", "wharf"):
            if tool == "wharf":
                wharf.append(wharf_pull_once(host, ref, data_root))
            else:
                skopeo.append(skopeo_once(registry, image, work / f"skopeo-{i}"))
    _pull_table(image, ref, wharf, skopeo)


def _pull_table(image: Image, ref: str, wharf: list[float],
                skopeo: list[dict[str, float]]) -> None:
    copy = [s["copy"] for s in skopeo]
    with_tar = [s["copy"] + s["tar"] for s in skopeo]
    with_umoci = [s["copy"] + s["umoci"] for s in skopeo]
    base = Summary.of(copy).median
    rows = [
        summary_row(f"wharf pull {ref}", wharf, base),
        summary_row("skopeo copy -> oci: (reference; no unpack)", copy, base),
        summary_row("skopeo copy + tar -xzf layers", with_tar, base),
        summary_row("skopeo copy + umoci unpack", with_umoci, base),
        summary_row("  tar -xzf layers alone", [s["tar"] for s in skopeo], base),
        summary_row("  umoci unpack alone", [s["umoci"] for s in skopeo], base),
    ]
    print_table(f"1. cold pull {image.repo}:{image.tag}  (ratio = median / skopeo copy median)",
                SUMMARY_HEADER, rows)
    w = Summary.of(wharf).median
    print(f"\nwharf pull / skopeo copy:               {ratio(w, base)}"
          "  (wharf also unpacks, verifies and fsyncs; skopeo only downloads)")
    print(f"wharf pull / (skopeo copy + tar -xzf):   {ratio(w, Summary.of(with_tar).median)}"
          "  (closest: pull + unpack, without safety checks or fsync)")
    print(f"wharf pull / (skopeo copy + umoci):      {ratio(w, Summary.of(with_umoci).median)}")
    print("cold: after each `wharf rmi`, layers/ and content/sha256/ were checked empty; skopeo "
          "wrote a fresh layout each run; one untimed warm-up skopeo copy filled the page cache.")


# ---- 2. unpack ---------------------------------------------------------------------------------

def unpack_cases(layer: Layer) -> list[tuple[str, Callable[[Path], object]]]:
    """(label, extract-into-fresh-dir) for each extractor; GNU tar first (the reference)."""
    def gnu_tar(target: Path) -> None:
        run_timed(tar_argv(layer, target))

    def gnu_tar_syncfs(target: Path) -> None:
        run_timed(tar_argv(layer, target))
        run_timed(["sync", "-f", str(target)])

    def layer_store(target: Path) -> None:
        LayerStore(target).unpack(layer.chain_id, layer.blob, layer.media_type, layer.diff_id)

    def python_tarfile(target: Path) -> None:
        # the point is the unchecked stdlib baseline; the blob comes from our own registry
        with tarfile.open(layer.blob, "r:*") as archive:
            if hasattr(tarfile, "fully_trusted_filter"):  # 3.11.4+: say so, no warning in 3.12+
                archive.extractall(target, filter="fully_trusted")  # noqa: S202
            else:
                archive.extractall(target)  # noqa: S202

    return [("GNU tar -xzf (reference)", gnu_tar), ("GNU tar -xzf + syncfs", gnu_tar_syncfs),
            ("wharf LayerStore.unpack", layer_store),
            ("tarfile.extractall (r:gz, no filter)", python_tarfile)]


def unpack_section(registry: str, image: Image, runs: int, work: Path) -> None:
    layout = work / "layout"
    work.mkdir(parents=True)
    skopeo_copy(registry, image, layout)
    layer = max(layout_layers(layout), key=lambda item: item.blob.stat().st_size)
    cases = unpack_cases(layer)
    samples: dict[str, list[float]] = {label: [] for label, _ in cases}
    for i in range(runs):
        rotated = cases[i % len(cases):] + cases[:i % len(cases)]  # spread ext4 drift evenly
        for label, extract in rotated:
            target = work / f"target-{i}"
            target.mkdir()
            os.sync()
            samples[label].append(timed(partial(extract, target)))
            shutil.rmtree(target)
    base = Summary.of(samples[cases[0][0]]).median
    rows = [summary_row(label, samples[label], base) for label, _ in cases]
    size = layer.blob.stat().st_size / 1e6
    print_table(f"2. unpack one layer of {image.repo}:{image.tag}: {size:.1f} MB {layer.media_type}"
                f", diff_id {layer.diff_id[:19]}…  (ratio = median / GNU tar median)",
                SUMMARY_HEADER, rows)
    print("\nLayerStore.unpack = decompress + diff_id check to a temp tar, tarsafety.scan, GNU tar "
          "in a confined mount namespace, whiteouts, syncfs, rename.\nTargets: fresh dirs on "
          "the work dir's filesystem; order rotated per run. ext4 extraction times drift "
          "(runtime-facts §4): compare rows of this run only.")


# ---- 3. CLI start-up ---------------------------------------------------------------------------

def startup_section(host: str, runs: int) -> None:
    cases = [("python -c pass (venv floor)", [sys.executable, "-c", "pass"]),
             ("wharf --help (no daemon)", [WHARF, "--help"]),
             ("wharf version (1 round trip)", [WHARF, "-H", host, "version"])]
    docker = shutil.which("docker")
    if docker:
        cases.append(("docker version -> wharfd", [docker, "-H", host, "version"]))
    samples: dict[str, list[float]] = {label: [] for label, _ in cases}
    failed: dict[str, str] = {}
    for i in range(runs + 1):  # round-robin; round 0 is a warm-up
        for label, argv in cases:
            if label in failed:
                continue
            try:
                seconds = run_timed(argv)
            except CommandFailed as exc:
                failed[label] = str(exc)
                continue
            if i:
                samples[label].append(seconds)
    base = Summary.of(samples[cases[0][0]]).median
    rows = [summary_row(label, samples[label], base) for label, _ in cases if label not in failed]
    print_table("3. CLI start-up  (ratio = median / python -c pass median)", SUMMARY_HEADER, rows)
    for label, error in failed.items():
        print(f"{label}: FAILED, not timed: {error}")
    if not docker:
        print("docker CLI not installed: no docker reference row")


# ---- main --------------------------------------------------------------------------------------

@contextmanager
def wharfd(base: Path, registry: str) -> Iterator[tuple[str, Path]]:
    """A private wharfd (data root, run dir and socket under ``base``): (host URL, data root)."""
    with running_daemon(base, mirrors=[f"http://{registry}"]) as daemon:
        yield daemon.host, daemon.data_root


def git_head() -> str:
    """The repository's HEAD commit, ``+dirty`` with uncommitted changes (what was measured)."""
    try:
        out = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty=+dirty"],
                             capture_output=True, text=True, check=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip()


def images_to_bench(args: argparse.Namespace) -> list[Image]:
    if not registry_has(args.registry, BUSYBOX):
        sys.exit(f"registry {args.registry} does not answer library/busybox:latest: run "
                 "`make images` (starts and seeds the local registry)")
    if args.skip_debian:
        print("debian: skipped (--skip-debian)")
        return [BUSYBOX]
    if not registry_has(args.registry, DEBIAN):
        print(f"debian: library/debian:bookworm-slim is not in {args.registry}: run "
              "`make images-debian` to seed it; skipped, unpack uses busybox's layer")
        return [BUSYBOX]
    return [BUSYBOX, DEBIAN]


def main() -> int:
    args = parse_args()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="wharf-bench-pull.", dir=args.work_dir))
    try:
        print("# bench/pull.py\n\n" + "\n".join(machine_lines(base)))
        print(f"wharf:    packages {' '.join(sorted(wharf.__path__))}, repo {git_head()}")
        print(f"runs:     {args.runs} per pull/unpack case, {args.startup_runs} per CLI case; "
              f"registry http://{args.registry}")
        images = images_to_bench(args)
        with wharfd(base / "daemon", args.registry) as (host, data_root):
            print(f"wharfd:   {host}, data root {data_root}")
            for image in images:
                pull_section(host, data_root, args.registry, image, args.runs,
                             base / f"pull-{image.repo.rsplit('/', 1)[-1]}")
            unpack_section(args.registry, images[-1], args.runs, base / "unpack")
            startup_section(host, args.startup_runs)
    except (CommandFailed, RuntimeError) as exc:
        print(f"\nbench/pull.py: FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
