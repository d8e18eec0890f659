"""RegistryClient: the distribution v2 HTTP API (manifests, blobs, uploads, mounts, login).

Endpoint choice follows dockerd: Docker Hub (``docker.io``) is reached through the configured
mirrors first, in order, then ``https://registry-1.docker.io``; pushes never go to a mirror.
A registry whose host (or IP, by CIDR) is in the insecure list, or ``localhost``, is spoken to
over plain http, every other over https. Authentication is lazy: a 401 is answered once with
the challenge's credentials (see ``registryauth``) and the request retried.

Every failure is a wharf error naming the registry, repository or digest (``registryreplies``
says which).
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from wharf.daemon.core.images import manifest as mf
from wharf.daemon.core.images import registryreplies as replies
from wharf.daemon.core.images.registryauth import Authenticator
from wharf.errors import (
    DeadlineExceeded,
    Internal,
    InvalidArgument,
    Unauthenticated,
    Unavailable,
)
from wharf.models import AuthConfig
from wharf.reference import DEFAULT_DOMAIN, Reference

DOCKER_HUB_UPSTREAM = "https://registry-1.docker.io"
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})

BlobSource = AsyncIterator[bytes] | Path


class RegistryClient:
    """An async distribution-API client shared by every pull and push of the daemon.

    ``download_slots`` / ``upload_slots`` bound concurrent layer transfers daemon-wide (the
    pull and push orchestrators acquire them); the client itself never blocks on them.
    """

    def __init__(
        self,
        *,
        mirrors: list[str],
        insecure: list[str],
        max_concurrent_downloads: int = 3,
        max_concurrent_uploads: int = 5,
        timeout: float = 30,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.mirrors = [m.rstrip("/") for m in mirrors]
        self._insecure_names = {entry for entry in insecure if "/" not in entry}
        self._insecure_nets = [ipaddress.ip_network(e, strict=False) for e in insecure if "/" in e]
        self.download_slots = asyncio.Semaphore(max_concurrent_downloads)
        self.upload_slots = asyncio.Semaphore(max_concurrent_uploads)
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout), follow_redirects=True, transport=transport,
            headers={"User-Agent": "wharf/0.1 (distribution-client)"},
        )
        self._auth = Authenticator(self._client)

    async def aclose(self) -> None:
        await self._client.aclose()

    # --- endpoints ------------------------------------------------------------------------

    def endpoints(self, domain: str, *, push: bool = False) -> list[str]:
        """Base URLs to try for ``domain``, in order (mirrors only for Docker Hub pulls)."""
        if domain in _HUB_ALIASES:
            return ([] if push else list(self.mirrors)) + [DOCKER_HUB_UPSTREAM]
        return [f"{'http' if self.is_insecure(domain) else 'https'}://{domain}"]

    def is_insecure(self, domain: str) -> bool:
        """Whether ``domain`` (host[:port]) is spoken to over plain http."""
        host = domain[1:domain.index("]")] if domain.startswith("[") else domain.split(":", 1)[0]
        if domain in self._insecure_names or host in self._insecure_names or host == "localhost":
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in net for net in self._insecure_nets)

    # --- manifests ------------------------------------------------------------------------

    async def get_manifest(
        self, ref: Reference, auth: AuthConfig | None
    ) -> tuple[bytes, str, str]:
        """(raw bytes, media type, sha256 digest) of the manifest ``ref`` names.

        The digest is computed over the bytes and checked against the requested digest and
        the registry's ``Docker-Content-Digest``; a mismatch is InvalidArgument.
        """
        what = f"manifest for {ref.familiar_string}"
        path = f"/v2/{ref.path}/manifests/{ref.tag_or_digest}"
        headers = {"Accept": ", ".join(mf.ACCEPT)}
        async with self._request(ref, "GET", path, auth, headers=headers) as response:
            await replies.check(response, 200, what, ref)
            raw = await replies.read_limited(response, mf.MAX_MANIFEST_SIZE, what)
            media_type = mf.detect_media_type(raw, response.headers.get("content-type"))
            served = response.headers.get("docker-content-digest", "")
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        if ref.digest and digest != ref.digest:
            raise InvalidArgument(f"manifest verification failed for digest {ref.digest}")
        if served.startswith("sha256:") and served != digest:
            raise InvalidArgument(
                f"{what}: registry says {served} but the content is {digest}"
            )
        return raw, media_type, digest

    async def put_manifest(
        self, ref: Reference, raw: bytes, media_type: str, auth: AuthConfig | None
    ) -> str:
        """Upload ``raw`` unchanged under ``ref``'s tag (or digest); returns its digest."""
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        path = f"/v2/{ref.path}/manifests/{ref.tag_or_digest}"
        async with self._request(
            ref, "PUT", path, auth, push=True, headers={"Content-Type": media_type}, content=raw
        ) as response:
            what = f"manifest for {ref.familiar_string}"
            await replies.check(response, 201, what, ref, push=True)
            served = response.headers.get("docker-content-digest", "")
        if served.startswith("sha256:") and served != digest:
            raise Internal(f"registry stored manifest {ref.familiar_string} as {served}, "
                           f"expected {digest}")
        return digest

    # --- blobs ----------------------------------------------------------------------------

    def open_blob(
        self, ref: Reference, digest: str, auth: AuthConfig | None
    ) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """A streaming GET of blob ``digest`` (redirects followed); the caller verifies it."""
        return self._open_blob(ref, digest, auth)

    @asynccontextmanager
    async def _open_blob(
        self, ref: Reference, digest: str, auth: AuthConfig | None
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        async with self._request(ref, "GET", f"/v2/{ref.path}/blobs/{digest}", auth) as response:
            await replies.check(response, 200, f"blob {digest} of {ref.familiar}", ref)
            yield replies.guarded(response.aiter_bytes(replies.CHUNK), ref.domain)

    async def blob_exists(self, ref: Reference, digest: str, auth: AuthConfig | None) -> bool:
        """Whether the repository already has blob ``digest`` (HEAD)."""
        path = f"/v2/{ref.path}/blobs/{digest}"
        async with self._request(ref, "HEAD", path, auth, push=True) as response:
            if response.status_code == 404:
                return False
            await replies.check(response, 200, f"blob {digest} of {ref.familiar}", ref, push=True)
        return True

    async def mount_blob(
        self, ref: Reference, digest: str, from_repo: str, auth: AuthConfig | None
    ) -> bool:
        """Cross-repository mount of ``digest`` from ``from_repo`` (a path in the same
        registry); True when the registry mounted it (201)."""
        path = f"/v2/{ref.path}/blobs/uploads/"
        params = {"mount": digest, "from": from_repo}
        extra = [f"repository:{from_repo}:pull"]
        async with self._request(
            ref, "POST", path, auth, push=True, params=params, extra_scopes=extra
        ) as response:
            if response.status_code == 201:
                return True
            await replies.check(response, 202, f"blob upload to {ref.familiar}", ref, push=True)
            location = response.headers.get("location")
            upload_url = response.request.url.join(location) if location else None
        if upload_url is not None:  # the registry opened an upload instead: cancel it
            async with self._request(ref, "DELETE", upload_url, auth, push=True):
                pass
        return False

    async def upload_blob(
        self, ref: Reference, digest: str, size: int, chunks: BlobSource,
        auth: AuthConfig | None,
    ) -> None:
        """Upload a blob monolithically (POST to open, PUT ``?digest=`` with the bytes)."""
        what = f"blob upload to {ref.familiar}"
        path = f"/v2/{ref.path}/blobs/uploads/"
        async with self._request(ref, "POST", path, auth, push=True) as response:
            await replies.check(response, 202, what, ref, push=True)
            location = response.headers.get("location")
            if not location:
                raise Internal(f"{what}: the registry sent no upload location")
            url = response.request.url.join(location).copy_merge_params({"digest": digest})
        body = chunks if not isinstance(chunks, Path) else _file_chunks(chunks)
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        async with self._request(
            ref, "PUT", url, auth, push=True, headers=headers, content=body, retry=False
        ) as response:
            await replies.check(response, 201, what, ref, push=True)

    # --- login ----------------------------------------------------------------------------

    async def check_login(self, server: str, auth: AuthConfig) -> None:
        """Verify ``auth`` against ``server`` (GET /v2/ and the auth dance), like docker login.

        Returns when the registry accepts them; Unauthenticated when it refuses them.
        """
        domain = _server_domain(server)
        base = self.endpoints(domain, push=True)[0]
        host = httpx.URL(base).netloc.decode()
        url = f"{base}/v2/"
        try:
            response = await self._client.get(url)
            if response.status_code == 401:
                challenge = response.headers.get("www-authenticate", "")
                self._auth.forget(host)
                value = await self._auth.authorize(host, challenge, [], auth)
                response = await self._client.get(url, headers={"Authorization": value})
        except httpx.TimeoutException as exc:
            raise DeadlineExceeded(f"registry {domain} timed out: {exc}") from exc
        except httpx.TransportError as exc:
            raise Unavailable(f"registry {domain} is unreachable: {replies.reason(exc)}") from exc
        if response.status_code in (401, 403):
            raise Unauthenticated(f"login to {domain} failed: unauthorized: "
                                  "incorrect username or password")
        if response.status_code != 200:
            raise Unavailable(f"registry {domain} answered {response.status_code} to /v2/")

    # --- plumbing -------------------------------------------------------------------------

    @asynccontextmanager
    async def _request(
        self, ref: Reference, method: str, path: str | httpx.URL, auth: AuthConfig | None, *,
        push: bool = False, headers: Mapping[str, str] | None = None, content: Any = None,
        params: Mapping[str, str] | None = None, extra_scopes: list[str] | None = None,
        retry: bool = True,
    ) -> AsyncIterator[httpx.Response]:
        """Send to the first endpoint that answers (mirrors fall through on failure).

        ``path`` is either a path under the endpoint or an absolute URL (upload sessions).
        The response is streamed and closed when the context exits.
        """
        scopes = [f"repository:{ref.path}:{'pull,push' if push else 'pull'}", *(extra_scopes or [])]
        bases = self.endpoints(ref.domain, push=push)
        # A mirror's 404 is kept: when every later endpoint is unreachable (an offline host
        # with a local mirror), "manifest unknown" is the answer, not "registry unreachable".
        held: httpx.Response | None = None
        held_from = ""
        try:
            for position, base in enumerate(bases):
                url = path if isinstance(path, httpx.URL) else httpx.URL(base + path)
                last = position == len(bases) - 1
                try:
                    response = await self._send(
                        method, url, scopes=scopes, auth=auth, headers=dict(headers or {}),
                        content=content, params=params, retry=retry,
                        denied=replies.denied(ref, push),
                    )
                except (Unavailable, DeadlineExceeded) as exc:
                    if not last:
                        continue
                    if held is None:
                        raise
                    response, held = held, None
                    # both sides in the message: the mirror's 404 may only mean it has not
                    # got the image, and the upstream that would have it is out of reach
                    response.extensions["wharf.fallback"] = (
                        f"the mirror {held_from} answered 404; {exc}")
                if not last and (response.status_code == 404 or response.status_code >= 500):
                    if held is None and response.status_code == 404:
                        held, held_from = response, httpx.URL(base).netloc.decode()
                    else:
                        await response.aclose()
                    continue
                try:
                    yield response
                finally:
                    await response.aclose()
                return
        finally:
            if held is not None:
                await held.aclose()

    async def _send(
        self, method: str, url: httpx.URL, *, scopes: list[str], auth: AuthConfig | None,
        headers: dict[str, str], content: Any, params: Mapping[str, str] | None, retry: bool,
        denied: str,
    ) -> httpx.Response:
        host = url.netloc.decode()
        cached = self._auth.cached(host, scopes)
        if cached:
            headers["Authorization"] = cached
        response = await self._transmit(method, url, headers, content, params)
        if response.status_code != 401 or not retry:
            return response
        challenge = response.headers.get("www-authenticate", "")
        await response.aclose()
        if cached:  # the registry refused a cached token: it may have expired early
            self._auth.forget(host)
        try:
            headers["Authorization"] = await self._auth.authorize(host, challenge, scopes, auth)
        except Unauthenticated as exc:
            raise Unauthenticated(f"{denied}: {exc}") from exc
        response = await self._transmit(method, url, headers, content, params)
        if response.status_code == 401:
            await response.aclose()
            raise Unauthenticated(denied)
        return response

    async def _transmit(
        self, method: str, url: httpx.URL, headers: dict[str, str], content: Any,
        params: Mapping[str, str] | None,
    ) -> httpx.Response:
        request = self._client.build_request(
            method, url, headers=headers, content=content, params=params
        )
        registry = url.netloc.decode()
        try:
            return await self._client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise DeadlineExceeded(
                f"registry {registry} timed out: {replies.reason(exc)}") from exc
        except httpx.TransportError as exc:
            raise Unavailable(
                f"registry {registry} is unreachable: {replies.reason(exc)}") from exc


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as f:
        while chunk := await asyncio.to_thread(f.read, 1 << 20):
            yield chunk


def _server_domain(server: str) -> str:
    """``https://index.docker.io/v1/`` → ``docker.io``; ``http://h:5000/`` → ``h:5000``."""
    host = server.split("://", 1)[-1].split("/", 1)[0]
    return DEFAULT_DOMAIN if host in _HUB_ALIASES or not host else host
