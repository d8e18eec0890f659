"""Manifest/index/config validation, media-type detection and platform selection."""

from __future__ import annotations

import json
from typing import Any

import pytest

from wharf.daemon.core.images import manifest as mf
from wharf.daemon.core.images.progress import human_size, progress_bar
from wharf.errors import InvalidArgument, NotFound

D1, D2, D3 = ("sha256:" + c * 64 for c in "123")


def image_manifest(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mf.DOCKER_MANIFEST,
        "config": {"mediaType": mf.DOCKER_CONFIG, "digest": D1, "size": 10},
        "layers": [{"mediaType": mf.DOCKER_LAYER, "digest": D2, "size": 20}],
    }
    doc.update(overrides)
    return doc


def index(*platforms: dict[str, str]) -> mf.ImageIndex:
    doc = {"schemaVersion": 2, "mediaType": mf.OCI_INDEX, "manifests": [
        {"mediaType": mf.OCI_MANIFEST, "digest": "sha256:" + f"{i:x}" * 64, "size": 1,
         "platform": p} for i, p in enumerate(platforms, start=1)]}
    parsed = mf.parse_manifest(json.dumps(doc).encode(), mf.OCI_INDEX, "x")
    assert isinstance(parsed, mf.ImageIndex)
    return parsed


def test_valid_manifest_and_index() -> None:
    parsed = mf.parse_manifest(json.dumps(image_manifest()).encode(), mf.DOCKER_MANIFEST, "x")
    assert isinstance(parsed, mf.ImageManifest)
    assert parsed.config.digest == D1 and parsed.layers[0].size == 20
    bare = image_manifest()
    del bare["mediaType"]  # umoci writes no mediaType: the served type or shape decides
    assert isinstance(mf.parse_manifest(json.dumps(bare).encode(), "", "x"), mf.ImageManifest)
    assert index({"os": "linux", "architecture": "amd64"}).manifests[0].platform is not None


@pytest.mark.parametrize(("doc", "message"), [
    (image_manifest(config=None), "config"),
    ({k: v for k, v in image_manifest().items() if k != "config"}, "config"),
    (image_manifest(layers=[{"mediaType": mf.DOCKER_LAYER, "digest": "md5:abc", "size": 1}]),
     "layers.0.digest"),
    (image_manifest(layers=[{"mediaType": mf.DOCKER_LAYER, "digest": D2, "size": -1}]),
     "layers.0.size"),
    (image_manifest(schemaVersion=3), "unknown schemaVersion 3"),
    (image_manifest(schemaVersion=1), "unsupported manifest format (schema1)"),
    (image_manifest(mediaType="application/x-nope"), "unsupported manifest media type"),
])
def test_malformed_manifests(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        mf.parse_manifest(json.dumps(doc).encode(), "application/json", "example/img:1")
    assert message in str(info.value)
    assert "example/img:1" in str(info.value)


def test_schema1_by_content_type_and_bad_json() -> None:
    with pytest.raises(InvalidArgument, match="schema1"):
        mf.parse_manifest(b"{}", mf.DOCKER_SCHEMA1_SIGNED, "old:1")
    with pytest.raises(InvalidArgument, match="not JSON"):
        mf.parse_manifest(b"{", mf.OCI_MANIFEST, "x")
    with pytest.raises(InvalidArgument, match="JSON object"):
        mf.parse_manifest(b"[]", mf.OCI_MANIFEST, "x")


def test_detect_media_type() -> None:
    raw = json.dumps(image_manifest()).encode()
    assert mf.detect_media_type(raw, "application/vnd.oci.image.manifest.v1+json; x=y") == (
        mf.OCI_MANIFEST)
    assert mf.detect_media_type(raw, "application/json") == mf.DOCKER_MANIFEST
    assert mf.detect_media_type(b'{"schemaVersion":2,"manifests":[]}', None) == mf.OCI_INDEX
    assert mf.detect_media_type(b'{"schemaVersion":2,"layers":[]}', "text/plain") == (
        mf.OCI_MANIFEST)


def test_config_validation() -> None:
    good = json.dumps({"architecture": "amd64", "os": "linux",
                       "rootfs": {"type": "layers", "diff_ids": [D3]}}).encode()
    assert mf.parse_config(good, "x", 1).rootfs.diff_ids == [D3]
    with pytest.raises(InvalidArgument, match="1 diff_ids for 2 layers"):
        mf.parse_config(good, "x", 2)
    with pytest.raises(InvalidArgument, match="rootfs"):
        mf.parse_config(b'{"os": "linux"}', "x")


def test_host_arch_and_platform() -> None:
    assert mf.host_arch("x86_64") == "amd64"
    assert mf.host_arch("aarch64") == "arm64"
    assert mf.parse_platform("linux/arm/v7").variant == "v7"
    assert str(mf.parse_platform("linux/x86_64")) == "linux/amd64"
    with pytest.raises(InvalidArgument):
        mf.parse_platform("linux//")


def test_select_platform() -> None:
    idx = index({"os": "linux", "architecture": "amd64"},
                {"os": "linux", "architecture": "arm", "variant": "v6"},
                {"os": "linux", "architecture": "arm", "variant": "v7"},
                {"os": "linux", "architecture": "arm64", "variant": "v8"})
    assert mf.select_platform(idx, arch="amd64").digest == idx.manifests[0].digest
    assert mf.select_platform(idx, arch="x86_64").digest == idx.manifests[0].digest
    assert mf.select_platform(idx, arch="arm", variant="v7").digest == idx.manifests[2].digest
    assert mf.select_platform(idx, arch="arm64").digest == idx.manifests[3].digest
    with pytest.raises(NotFound) as info:
        mf.select_platform(idx, arch="s390x")
    assert str(info.value) == "no matching manifest for linux/s390x in the manifest list entries"


def test_progress_strings_match_docker() -> None:
    assert human_size(294912) == "294.9kB"
    assert human_size(3146885) == "3.147MB"
    assert human_size(512) == "512B"
    bar = progress_bar(294912, 3146885)
    assert bar == "[====>" + " " * 46 + "]  294.9kB/3.147MB"
    assert progress_bar(10, 10).startswith("[" + "=" * 50 + ">]")
    assert progress_bar(0, 0) == ""
