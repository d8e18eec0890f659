"""Reference parsing and normalisation, cases taken from distribution/reference's tests."""

from __future__ import annotations

import pytest

from wharf import reference
from wharf.errors import InvalidArgument

D = "sha256:" + "a" * 64
D2 = "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"

# text -> (string, familiar, domain, path, tag, digest)
VALID: list[tuple[str, str, str, str, str, str | None, str | None]] = [
    ("alpine", "docker.io/library/alpine", "alpine", "docker.io", "library/alpine", None, None),
    ("alpine:3.19", "docker.io/library/alpine:3.19", "alpine", "docker.io", "library/alpine",
     "3.19", None),
    ("library/alpine", "docker.io/library/alpine", "alpine", "docker.io", "library/alpine",
     None, None),
    ("docker.io/alpine", "docker.io/library/alpine", "alpine", "docker.io", "library/alpine",
     None, None),
    ("docker.io/library/alpine:edge", "docker.io/library/alpine:edge", "alpine", "docker.io",
     "library/alpine", "edge", None),
    ("index.docker.io/alpine", "docker.io/library/alpine", "alpine", "docker.io",
     "library/alpine", None, None),
    ("index.docker.io/user/x", "docker.io/user/x", "user/x", "docker.io", "user/x", None, None),
    ("user/x", "docker.io/user/x", "user/x", "docker.io", "user/x", None, None),
    ("user/x:1", "docker.io/user/x:1", "user/x", "docker.io", "user/x", "1", None),
    ("docker.io/library/a/b", "docker.io/library/a/b", "library/a/b", "docker.io",
     "library/a/b", None, None),
    ("127.0.0.1:5000/x", "127.0.0.1:5000/x", "127.0.0.1:5000/x", "127.0.0.1:5000", "x",
     None, None),
    ("127.0.0.1:5000/x:v1", "127.0.0.1:5000/x:v1", "127.0.0.1:5000/x", "127.0.0.1:5000", "x",
     "v1", None),
    ("localhost/x", "localhost/x", "localhost/x", "localhost", "x", None, None),
    ("localhost:5000/a/b:t", "localhost:5000/a/b:t", "localhost:5000/a/b", "localhost:5000",
     "a/b", "t", None),
    ("localhost", "docker.io/library/localhost", "localhost", "docker.io", "library/localhost",
     None, None),
    ("example.com/foo", "example.com/foo", "example.com/foo", "example.com", "foo", None, None),
    ("Example.com/foo", "Example.com/foo", "Example.com/foo", "Example.com", "foo", None, None),
    ("xn--n3h.com/myimage:x", "xn--n3h.com/myimage:x", "xn--n3h.com/myimage", "xn--n3h.com",
     "myimage", "x", None),
    ("[::1]:5000/x", "[::1]:5000/x", "[::1]:5000/x", "[::1]:5000", "x", None, None),
    (f"alpine@{D}", f"docker.io/library/alpine@{D}", "alpine", "docker.io", "library/alpine",
     None, D),
    (f"alpine:3@{D}", f"docker.io/library/alpine:3@{D}", "alpine", "docker.io",
     "library/alpine", "3", D),
    (f"127.0.0.1:5000/x@{D2}", f"127.0.0.1:5000/x@{D2}", "127.0.0.1:5000/x", "127.0.0.1:5000",
     "x", None, D2),
    ("a__b/c-d/e---f.g_h", "docker.io/a__b/c-d/e---f.g_h", "a__b/c-d/e---f.g_h", "docker.io",
     "a__b/c-d/e---f.g_h", None, None),
    ("x:" + "T" * 128, "docker.io/library/x:" + "T" * 128, "x", "docker.io", "library/x",
     "T" * 128, None),
    ("x:_private", "docker.io/library/x:_private", "x", "docker.io", "library/x", "_private",
     None),
]

INVALID: list[tuple[str, str]] = [
    ("", "invalid reference format"),
    (":", "invalid reference format"),
    ("Alpine", "invalid reference format: repository name must be lowercase"),
    ("user/Alpine", "invalid reference format: repository name must be lowercase"),
    ("example.com/Foo:tag", "invalid reference format: repository name must be lowercase"),
    ("alpine:", "invalid reference format"),
    ("alpine:-tag", "invalid reference format"),
    ("alpine:.tag", "invalid reference format"),
    ("alpine:" + "t" * 129, "invalid reference format"),
    ("a/", "invalid reference format"),
    ("/a", "invalid reference format"),
    ("a//b", "invalid reference format"),
    ("a-/b", "invalid reference format"),
    ("-a/b", "invalid reference format"),
    ("a..b", "invalid reference format"),
    ("a___b", "invalid reference format"),
    ("alpine@sha256:abc", "invalid reference format"),
    ("alpine@sha512:" + "a" * 128, "unsupported digest algorithm"),
    ("alpine@sha256:" + "A" * 64, "invalid checksum digest"),
    ("alpine@sha256:" + "a" * 65, "invalid checksum digest"),
    ("a" * 64, "cannot specify 64-byte hexadecimal strings"),
    ("example.com:port/x", "invalid reference format"),
    ("foo_bar.com:8080/x", "invalid reference format"),
    ("a b", "invalid reference format"),
    ("example.com/" + "a" * 250, "must not be more than 255 characters"),
]


@pytest.mark.parametrize("case", VALID, ids=[case[0][:40] for case in VALID])
def test_valid(case: tuple[str, str, str, str, str, str | None, str | None]) -> None:
    text, string, familiar, domain, path, tag, digest = case
    ref = reference.parse(text)
    assert (ref.string, ref.familiar, ref.domain, ref.path, ref.tag, ref.digest) == (
        string, familiar, domain, path, tag, digest,
    )
    assert ref.name == f"{domain}/{path}"
    assert reference.parse(ref.string) == ref  # the normalised form is a fixed point


@pytest.mark.parametrize(("text", "message"), INVALID)
def test_invalid(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        reference.parse(text)
    assert message in str(info.value)


def test_default_tag_and_tag_or_digest() -> None:
    ref = reference.parse("alpine")
    assert ref.tag_or_digest == "latest"
    assert ref.with_default_tag().string == "docker.io/library/alpine:latest"
    pinned = reference.parse(f"alpine@{D}")
    assert pinned.with_default_tag() == pinned
    assert pinned.tag_or_digest == D
    assert reference.parse("alpine:3").with_default_tag().tag == "3"


def test_familiar_string_and_rewrites() -> None:
    ref = reference.parse("127.0.0.1:5000/x:v1")
    assert ref.familiar_string == "127.0.0.1:5000/x:v1"
    assert reference.parse(f"alpine:3@{D}").familiar_string == f"alpine:3@{D}"
    assert ref.with_digest(D).string == f"127.0.0.1:5000/x@{D}"
    assert ref.with_digest(D).with_tag("v2").string == "127.0.0.1:5000/x:v2"
    with pytest.raises(InvalidArgument):
        ref.with_tag("-bad")
    with pytest.raises(InvalidArgument):
        ref.with_digest("md5:" + "a" * 32)


def test_max_length_boundary() -> None:
    name = "example.com/" + "a" * (255 - len("example.com/"))
    assert reference.parse(name).name == name
