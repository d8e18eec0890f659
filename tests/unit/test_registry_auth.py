"""RegistryClient's auth dance, endpoints and error mapping, against httpx.MockTransport fakes."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import httpx
import pytest

from wharf import reference
from wharf.daemon.core.images import manifest as mf
from wharf.daemon.core.images.registry import RegistryClient
from wharf.daemon.core.images.registryauth import parse_challenges
from wharf.errors import InvalidArgument, NotFound, Unauthenticated
from wharf.models import AuthConfig

T = TypeVar("T")
MANIFEST = b'{"schemaVersion":2,"config":{},"layers":[]}'
DIGEST = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()
REALM = "https://auth.test/token"
CHALLENGE = f'Bearer realm="{REALM}",service="registry.test",scope="repository:x:pull"'
CREDS = AuthConfig(username="alice", password="s3cret")


class FakeRegistry:
    """A registry at registry.test requiring a bearer token ``T-<user>``; logs requests."""

    def __init__(self, *, password: str = "s3cret", scheme: str = "bearer") -> None:  # noqa: S107
        self.password = password
        self.scheme = scheme
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.host == "auth.test":
            return self._token(request)
        wanted = "Bearer T-alice" if self.scheme == "bearer" else basic("alice", self.password)
        allowed = {wanted, "Bearer T-anonymous"} if self.scheme == "bearer" else {wanted}
        if request.headers.get("authorization") not in allowed:
            challenge = CHALLENGE if self.scheme == "bearer" else 'Basic realm="r"'
            return httpx.Response(401, headers={"WWW-Authenticate": challenge},
                                  json={"errors": [{"code": "UNAUTHORIZED"}]})
        if request.url.path == "/v2/":
            return httpx.Response(200, json={})
        if request.url.path.endswith("/manifests/latest"):
            return httpx.Response(200, content=MANIFEST, headers={
                "Content-Type": mf.DOCKER_MANIFEST, "Docker-Content-Digest": DIGEST})
        if request.url.path.endswith("/blobs/uploads/") and request.method == "POST":
            return httpx.Response(202, headers={"Location": "/v2/x/blobs/uploads/u1?_state=s"})
        if request.method == "PUT" and "/blobs/uploads/u1" in request.url.path:
            return httpx.Response(201)
        return httpx.Response(404, json={"errors": [{"code": "MANIFEST_UNKNOWN",
                                                     "message": "manifest unknown"}]})

    def _token(self, request: httpx.Request) -> httpx.Response:
        header = request.headers.get("authorization")
        if header is None:
            return httpx.Response(200, json={"token": "T-anonymous"})
        if header == basic("alice", self.password):
            return httpx.Response(200, json={"access_token": "T-alice", "expires_in": 300})
        return httpx.Response(401, json={"details": "incorrect username or password"})

    def calls(self, host: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.host == host]


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def run(
    handler: Callable[[httpx.Request], httpx.Response],
    body: Callable[[RegistryClient], Awaitable[T]], *, mirrors: list[str] | None = None,
) -> T:
    async def main() -> T:
        client = RegistryClient(mirrors=mirrors or [], insecure=["127.0.0.0/8"],
                                transport=httpx.MockTransport(handler))
        try:
            return await body(client)
        finally:
            await client.aclose()

    return asyncio.run(main())


REF = reference.parse("registry.test/x:latest")


def test_anonymous_bearer_dance_and_token_cache() -> None:
    fake = FakeRegistry()

    async def body(client: RegistryClient) -> None:
        for _ in range(2):
            raw, media_type, digest = await client.get_manifest(REF, None)
            assert (raw, media_type, digest) == (MANIFEST, mf.DOCKER_MANIFEST, DIGEST)

    run(fake, body)
    tokens = fake.calls("auth.test")
    assert len(tokens) == 1  # the second GET reused the cached token
    assert tokens[0].url.params.get_list("scope") == ["repository:x:pull"]
    assert tokens[0].url.params["service"] == "registry.test"
    assert "authorization" not in tokens[0].headers
    assert [r.headers.get("authorization") for r in fake.calls("registry.test")] == [
        None, "Bearer T-anonymous", "Bearer T-anonymous"]
    assert fake.requests[0].url.scheme == "https"


def test_bearer_with_credentials_and_push_scope() -> None:
    fake = FakeRegistry()

    async def chunks() -> AsyncIterator[bytes]:
        yield b"abc"

    async def body(client: RegistryClient) -> None:
        digest = "sha256:" + hashlib.sha256(b"abc").hexdigest()
        await client.upload_blob(REF, digest, 3, chunks(), CREDS)

    run(fake, body)
    token = fake.calls("auth.test")[0]
    assert token.headers["authorization"] == basic("alice", "s3cret")
    assert token.url.params.get_list("scope") == ["repository:x:pull,push"]
    put = next(r for r in fake.requests if r.method == "PUT")
    assert put.url.params["digest"].startswith("sha256:") and put.url.params["_state"] == "s"
    assert put.headers["authorization"] == "Bearer T-alice"
    assert put.headers["content-length"] == "3"


def test_basic_challenge() -> None:
    fake = FakeRegistry(scheme="basic")
    run(fake, lambda c: c.get_manifest(REF, CREDS))
    assert fake.requests[-1].headers["authorization"] == basic("alice", "s3cret")
    with pytest.raises(Unauthenticated, match="requires credentials"):
        run(FakeRegistry(scheme="basic"), lambda c: c.get_manifest(REF, None))


def test_denied_after_auth_says_pull_access_denied() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.test":
            return httpx.Response(200, json={"token": "useless"})
        return httpx.Response(401, headers={"WWW-Authenticate": CHALLENGE})

    with pytest.raises(Unauthenticated) as info:
        run(handler, lambda c: c.get_manifest(reference.parse("registry.test/x"), None))
    assert str(info.value) == ("pull access denied for registry.test/x, repository does not "
                               "exist or may require 'docker login'")


def test_bad_credentials_refused_by_token_server() -> None:
    with pytest.raises(Unauthenticated, match="incorrect username or password"):
        run(FakeRegistry(password="other"), lambda c: c.get_manifest(REF, CREDS))


def test_check_login() -> None:
    fake = FakeRegistry()
    run(fake, lambda c: c.check_login("https://registry.test/", CREDS))  # accepted: no raise
    assert fake.calls("auth.test")[0].headers["authorization"] == basic("alice", "s3cret")
    with pytest.raises(Unauthenticated, match="incorrect username or password"):
        run(FakeRegistry(password="x"), lambda c: c.check_login("registry.test", CREDS))


def test_not_found_and_digest_mismatch() -> None:
    fake = FakeRegistry()
    with pytest.raises(NotFound) as info:
        run(fake, lambda c: c.get_manifest(reference.parse("registry.test/x:nope"), None))
    assert str(info.value) == "manifest for registry.test/x:nope not found: manifest unknown"

    def lying(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=MANIFEST, headers={
            "Content-Type": mf.DOCKER_MANIFEST, "Docker-Content-Digest": "sha256:" + "0" * 64})

    with pytest.raises(InvalidArgument, match="registry says"):
        run(lying, lambda c: c.get_manifest(REF, None))
    pinned = REF.with_digest("sha256:" + "1" * 64)
    with pytest.raises(InvalidArgument, match="manifest verification failed"):
        run(lying, lambda c: c.get_manifest(pinned, None))


def test_mirror_fallback_for_docker_hub() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.url.scheme}://{request.url.host}{request.url.path}")
        if request.url.host == "mirror.test":
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, content=MANIFEST, headers={"Content-Type": mf.DOCKER_MANIFEST})

    ref = reference.parse("alpine")
    run(handler, lambda c: c.get_manifest(ref, None), mirrors=["http://mirror.test/"])
    assert seen == ["http://mirror.test/v2/library/alpine/manifests/latest",
                    "https://registry-1.docker.io/v2/library/alpine/manifests/latest"]


def test_a_mirrors_404_with_docker_hub_out_of_reach_says_both() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "mirror.test":
            return httpx.Response(404, json={"errors": [{"code": "MANIFEST_UNKNOWN",
                                                         "message": "manifest unknown"}]})
        raise httpx.ConnectError("[Errno -3] Temporary failure in name resolution",
                                 request=request)

    with pytest.raises(NotFound) as caught:
        run(handler, lambda c: c.get_manifest(reference.parse("alpine"), None),
            mirrors=["http://mirror.test:5000/"])
    message = str(caught.value)
    assert message.startswith("manifest for alpine not found: manifest unknown (the mirror "
                              "mirror.test:5000 answered 404; registry registry-1.docker.io is "
                              "unreachable: ")
    assert message.endswith("name resolution)")


def test_a_mirrors_404_alone_stays_as_it_was() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"errors": [{"code": "MANIFEST_UNKNOWN",
                                                     "message": "manifest unknown"}]})

    with pytest.raises(NotFound) as caught:
        run(handler, lambda c: c.get_manifest(reference.parse("alpine"), None),
            mirrors=["http://mirror.test/"])
    assert str(caught.value) == "manifest for alpine not found: manifest unknown"


def test_endpoints_and_insecure() -> None:
    client = RegistryClient(mirrors=["https://m.test"], insecure=["127.0.0.0/8", "reg.lan:5000",
                                                                  "10.0.0.0/8"])
    try:
        assert client.endpoints("127.0.0.1:5000") == ["http://127.0.0.1:5000"]
        assert client.endpoints("localhost:5000") == ["http://localhost:5000"]
        assert client.endpoints("10.1.2.3") == ["http://10.1.2.3"]
        assert client.endpoints("reg.lan:5000") == ["http://reg.lan:5000"]
        assert client.endpoints("reg.lan:6000") == ["https://reg.lan:6000"]
        assert client.endpoints("ghcr.io") == ["https://ghcr.io"]
        assert client.endpoints("docker.io") == ["https://m.test", "https://registry-1.docker.io"]
        assert client.endpoints("docker.io", push=True) == ["https://registry-1.docker.io"]
    finally:
        asyncio.run(client.aclose())


def test_parse_challenges() -> None:
    [bearer] = parse_challenges(
        'Bearer realm="https://a/t",service="s",scope="repository:a/b:pull,push",error="x\\"y"')
    assert bearer.scheme == "bearer"
    assert bearer.params == {"realm": "https://a/t", "service": "s",
                             "scope": "repository:a/b:pull,push", "error": 'x"y'}
    [basic_] = parse_challenges('Basic realm="Registry Realm"')
    assert basic_.scheme == "basic" and basic_.params["realm"] == "Registry Realm"
