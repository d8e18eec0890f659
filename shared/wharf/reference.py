"""Image references, parsed and normalised exactly like Docker (distribution/reference).

Grammar (distribution/reference)::

    reference  := name [ ":" tag ] [ "@" digest ]
    name       := [domain "/"] path-component ["/" path-component]*
    domain     := host [":" port]          host := domain-name | "[" ipv6 "]"
    path-comp  := [a-z0-9]+ (([._]|__|-+) [a-z0-9]+)*
    tag        := [\\w][\\w.-]{0,127}       (\\w is Go's: ASCII letters, digits and _)
    digest     := "sha256:" 64 lowercase hex   (other algorithms are rejected here)

Normalisation (``ParseNormalizedNamed``): the first component is a domain when it contains
``.`` or ``:``, is ``localhost`` or has uppercase letters; otherwise the domain is ``docker.io``
and a single-component path gets ``library/``. ``index.docker.io`` becomes ``docker.io``.
This module is pure: the CLI uses it too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from wharf.errors import InvalidArgument

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"  # Go's \w is ASCII; Python's is not
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
# Every pattern is used with fullmatch: "$" also matches before a final newline.
_REFERENCE = re.compile(rf"({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?")
_TAG_ONLY = re.compile(_TAG)
_SHA256 = re.compile(r"sha256:[0-9a-f]{64}")
_HEX64 = re.compile(r"[a-f0-9]{64}")

_FORMAT = "invalid reference format"


@dataclass(frozen=True)
class Reference:
    """A normalised reference: ``domain``/``path`` with an optional tag and digest."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """The full repository name, e.g. ``docker.io/library/alpine``."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar(self) -> str:
        """Docker's FamiliarName: ``alpine``, ``user/x``, ``127.0.0.1:5000/x``."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        short = self.path.removeprefix(OFFICIAL_REPO_PREFIX)
        return short if "/" not in short else self.path

    @property
    def familiar_string(self) -> str:
        """Docker's FamiliarString: familiar name plus ``:tag`` and ``@digest`` when set."""
        return self.familiar + self._suffix

    @property
    def string(self) -> str:
        """The full normalised form, e.g. ``docker.io/library/alpine:latest``."""
        return self.name + self._suffix

    @property
    def tag_or_digest(self) -> str:
        """The digest when pinned, else the tag (``latest`` when neither is set)."""
        return self.digest or self.tag or DEFAULT_TAG

    @property
    def _suffix(self) -> str:
        return (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    def with_default_tag(self) -> Reference:
        """This reference, with tag ``latest`` when it has neither tag nor digest."""
        if self.tag is None and self.digest is None:
            return replace(self, tag=DEFAULT_TAG)
        return self

    def with_digest(self, digest: str) -> Reference:
        """The same repository pinned to ``digest`` (the tag dropped)."""
        return replace(self, tag=None, digest=_check_digest(digest))

    def with_tag(self, tag: str) -> Reference:
        """The same repository with ``tag`` (the digest dropped)."""
        if not _TAG_ONLY.fullmatch(tag):
            raise InvalidArgument(f"invalid tag format: {tag!r}")
        return replace(self, tag=tag, digest=None)

    def __str__(self) -> str:
        return self.string


def parse(text: str) -> Reference:
    """Parse and normalise ``text`` like ``docker pull`` does; InvalidArgument when invalid."""
    if _HEX64.fullmatch(text):
        raise InvalidArgument(
            f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings"
        )
    domain, remainder = _split_domain(text)
    remote = remainder.split("@", 1)[0].split(":", 1)[0]
    if remote.lower() != remote:
        raise InvalidArgument(f"{_FORMAT}: repository name must be lowercase")
    match = _REFERENCE.fullmatch(f"{domain}/{remainder}")
    if match is None:
        if not text:
            raise InvalidArgument(f"{_FORMAT}: repository name must have at least one component")
        raise InvalidArgument(_FORMAT)
    name, tag, digest = match.group(1), match.group(2), match.group(3)
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidArgument(
            f"{_FORMAT}: repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters"
        )
    return Reference(
        domain=domain,
        path=name[len(domain) + 1 :],
        tag=tag,
        digest=_check_digest(digest) if digest else None,
    )


def _split_domain(text: str) -> tuple[str, str]:
    """Docker's splitDockerDomain: (domain, remainder) with ``library/`` added on Docker Hub."""
    first, sep, rest = text.partition("/")
    if not sep:
        return DEFAULT_DOMAIN, OFFICIAL_REPO_PREFIX + text
    if first == LEGACY_DEFAULT_DOMAIN:
        domain, remainder = DEFAULT_DOMAIN, rest
    elif first == "localhost" or any(c in first for c in ".:") or first.lower() != first:
        domain, remainder = first, rest
    else:
        domain, remainder = DEFAULT_DOMAIN, text
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_REPO_PREFIX + remainder
    return domain, remainder


def _check_digest(digest: str) -> str:
    if _SHA256.fullmatch(digest):
        return digest
    algorithm = digest.split(":", 1)[0]
    if algorithm != "sha256":
        raise InvalidArgument(f"{_FORMAT}: unsupported digest algorithm {algorithm!r}")
    raise InvalidArgument(f"{_FORMAT}: invalid checksum digest {digest!r}")
