"""Manifest, index and image-config formats: media types, validation and platform choice.

Everything fetched from a registry passes through ``parse_manifest`` / ``parse_config`` before
it is trusted: a malformed document is an InvalidArgument naming the image.
"""

from __future__ import annotations

import json
import platform as host_platform
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from wharf.errors import InvalidArgument, NotFound

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"

DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"

DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_NONDIST = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDIST_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_NONDIST_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"

IMAGE_MANIFEST_TYPES = frozenset({DOCKER_MANIFEST, OCI_MANIFEST})
INDEX_TYPES = frozenset({DOCKER_MANIFEST_LIST, OCI_INDEX})
SCHEMA1_TYPES = frozenset({DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED})
CONFIG_TYPES = frozenset({DOCKER_CONFIG, OCI_CONFIG})
LAYER_TYPES = frozenset({
    DOCKER_LAYER, DOCKER_FOREIGN_LAYER, OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD,
    OCI_LAYER_NONDIST, OCI_LAYER_NONDIST_GZIP, OCI_LAYER_NONDIST_ZSTD,
})
# Every type a registry may answer a manifest GET with, in the order Docker sends in Accept.
ACCEPT = (OCI_MANIFEST, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, DOCKER_SCHEMA1_SIGNED)

MAX_MANIFEST_SIZE = 4 << 20  # distribution's own limit on manifest bodies
MAX_CONFIG_SIZE = 8 << 20

_ARCH_ALIASES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "armv6l": "arm",
                 "i386": "386", "i686": "386", "ppc64le": "ppc64le", "s390x": "s390x",
                 "riscv64": "riscv64"}


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)


class Platform(_Model):
    """An OCI platform; ``variant`` matters for arm (v6/v7/v8)."""

    os: str
    architecture: str
    variant: str | None = None
    os_version: str | None = Field(default=None, alias="os.version")

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text


class Descriptor(_Model):
    """A content descriptor: media type, sha256 digest and non-negative size."""

    mediaType: str  # noqa: N815 - the wire name
    digest: str
    size: int = Field(ge=0)
    urls: list[str] | None = None
    annotations: dict[str, str] | None = None
    platform: Platform | None = None

    @field_validator("digest")
    @classmethod
    def _sha256(cls, value: str) -> str:
        if not (value.startswith("sha256:") and len(value) == 71
                and all(c in "0123456789abcdef" for c in value[7:])):
            raise ValueError(f"digest {value!r} is not sha256:<64 hex>")
        return value


class ImageManifest(_Model):
    """A Docker schema2 or OCI image manifest."""

    schemaVersion: Literal[2]  # noqa: N815
    mediaType: str | None = None  # noqa: N815 - umoci leaves it out
    config: Descriptor
    layers: list[Descriptor]


class ImageIndex(_Model):
    """A Docker manifest list or OCI index."""

    schemaVersion: Literal[2]  # noqa: N815
    mediaType: str | None = None  # noqa: N815
    manifests: list[Descriptor]


class RootFS(_Model):
    type: str
    diff_ids: list[str]

    @field_validator("diff_ids")
    @classmethod
    def _sha256(cls, value: list[str]) -> list[str]:
        for diff_id in value:
            Descriptor._sha256(diff_id)  # same rule as descriptors
        return value


class ImageConfig(_Model):
    """The parts of an image config the puller needs; the raw bytes are kept verbatim."""

    architecture: str = ""
    os: str = ""
    variant: str | None = None
    rootfs: RootFS


def detect_media_type(raw: bytes, content_type: str | None) -> str:
    """The manifest's media type: the served Content-Type when it names a manifest type,
    else the document's ``mediaType``, else (umoci's bare OCI documents) its shape."""
    served = (content_type or "").split(";", 1)[0].strip().lower()
    if served in IMAGE_MANIFEST_TYPES | INDEX_TYPES | SCHEMA1_TYPES:
        return served
    try:
        data = json.loads(raw)
    except ValueError:
        return served
    if not isinstance(data, dict):
        return served
    declared = data.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    if data.get("schemaVersion") == 1:
        return DOCKER_SCHEMA1_SIGNED
    return OCI_INDEX if "manifests" in data else OCI_MANIFEST


def parse_manifest(raw: bytes, media_type: str, image: str) -> ImageManifest | ImageIndex:
    """Validate ``raw`` as a manifest or index; ``media_type`` is the Content-Type served.

    Raises InvalidArgument naming ``image`` when the document is schema1, malformed or of an
    unknown type.
    """
    data = _load_json(raw, f"manifest for {image}")
    kind = media_type if media_type in IMAGE_MANIFEST_TYPES | INDEX_TYPES else ""
    kind = kind or str(data.get("mediaType") or "")
    if media_type in SCHEMA1_TYPES or kind in SCHEMA1_TYPES or data.get("schemaVersion") == 1:
        raise InvalidArgument(
            f"unsupported manifest format (schema1) for {image}; re-push the image"
        )
    if data.get("schemaVersion") != 2:
        raise InvalidArgument(
            f"invalid manifest for {image}: unknown schemaVersion {data.get('schemaVersion')!r}"
        )
    if not kind:  # umoci's OCI manifests carry no mediaType: tell them apart by shape
        kind = OCI_INDEX if "manifests" in data else OCI_MANIFEST
    model: type[ImageManifest] | type[ImageIndex]
    if kind in INDEX_TYPES:
        model = ImageIndex
    elif kind in IMAGE_MANIFEST_TYPES:
        model = ImageManifest
    else:
        raise InvalidArgument(f"unsupported manifest media type {kind!r} for {image}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidArgument(f"invalid manifest for {image}: {_first_error(exc)}") from exc


def parse_config(raw: bytes, image: str, layer_count: int | None = None) -> ImageConfig:
    """Validate an image config; with ``layer_count`` its diff_ids must match the manifest."""
    data = _load_json(raw, f"image config for {image}")
    try:
        config = ImageConfig.model_validate(data)
    except ValidationError as exc:
        raise InvalidArgument(f"invalid image config for {image}: {_first_error(exc)}") from exc
    if layer_count is not None and len(config.rootfs.diff_ids) != layer_count:
        raise InvalidArgument(
            f"invalid image config for {image}: {len(config.rootfs.diff_ids)} diff_ids for "
            f"{layer_count} layers in the manifest"
        )
    return config


def host_arch(machine: str | None = None) -> str:
    """The host's architecture in Go/OCI terms (``x86_64`` → ``amd64``, ``aarch64`` → ``arm64``)."""
    name = (machine or host_platform.machine()).lower()
    return _ARCH_ALIASES.get(name, name)


def parse_platform(text: str | None) -> Platform:
    """``os[/arch[/variant]]`` (Docker's ``--platform``); missing parts default to the host."""
    if not text:
        return Platform(os="linux", architecture=host_arch(),
                        variant="v8" if host_arch() == "arm64" else None)
    parts = text.lower().split("/")
    if len(parts) > 3 or not all(parts):
        raise InvalidArgument(f"invalid platform {text!r}: expected os[/arch[/variant]]")
    arch = host_arch(parts[1]) if len(parts) > 1 else host_arch()
    variant = parts[2] if len(parts) == 3 else None
    return Platform(os=parts[0], architecture=arch, variant=variant)


def select_platform(
    index: ImageIndex, os: str = "linux", arch: str | None = None, variant: str | None = None
) -> Descriptor:
    """The index entry for ``os/arch[/variant]`` (``arch`` defaults to the host's).

    Like containerd's matcher, a missing variant on either side matches (arm64 entries say
    ``v8`` or nothing). Raises NotFound with Docker's wording when nothing matches.
    """
    wanted = Platform(os=os, architecture=host_arch(arch), variant=variant)
    candidates = [d for d in index.manifests if d.platform is not None
                  and d.platform.os == wanted.os
                  and d.platform.architecture == wanted.architecture]
    exact = [d for d in candidates if d.platform and d.platform.variant == wanted.variant]
    loose = [d for d in candidates
             if d.platform and (not d.platform.variant or not wanted.variant)]
    for choice in (exact, loose):
        if choice:
            return choice[0]
    raise NotFound(f"no matching manifest for {wanted} in the manifest list entries")


def _load_json(raw: bytes, what: str) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise InvalidArgument(f"invalid {what}: not JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise InvalidArgument(f"invalid {what}: expected a JSON object")
    return data


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "document"
    return f"{where}: {error['msg']}"
