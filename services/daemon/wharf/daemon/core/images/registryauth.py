"""Registry authentication: ``WWW-Authenticate`` challenges, bearer tokens and their cache.

The flow is the distribution token protocol: a request answered 401 carries a challenge;
``Bearer realm=…,service=…,scope=…`` means "fetch a token from realm" (with basic auth when we
have credentials, anonymously otherwise), ``Basic`` means "send the credentials". The resulting
``Authorization`` value is cached per (registry host, scopes) until it expires.
"""

from __future__ import annotations

import base64
import re
import time
from dataclasses import dataclass

import httpx

from wharf.errors import DeadlineExceeded, InvalidArgument, Unauthenticated, Unavailable
from wharf.models import AuthConfig

_PARAM = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?')
_DEFAULT_TOKEN_TTL = 60.0
_EXPIRY_MARGIN = 5.0


@dataclass(frozen=True)
class Challenge:
    """One parsed ``WWW-Authenticate`` challenge; ``scheme`` is lower-case."""

    scheme: str
    params: dict[str, str]


def parse_challenges(header: str) -> list[Challenge]:
    """Parse a ``WWW-Authenticate`` value (one or more challenges, quoted parameters)."""
    challenges: list[Challenge] = []
    rest = header.strip()
    while rest:
        scheme, _, rest = rest.partition(" ")
        params: dict[str, str] = {}
        while (match := _PARAM.match(rest)) and match.group(0):
            value = match.group(2) if match.group(2) is not None else match.group(3)
            params[match.group(1).lower()] = re.sub(r"\\(.)", r"\1", value or "")
            rest = rest[match.end():]
        challenges.append(Challenge(scheme.strip(",").lower(), params))
        rest = rest.lstrip(", ")
    return [c for c in challenges if c.scheme]


def basic_header(auth: AuthConfig) -> str:
    raw = f"{auth.username}:{auth.password}".encode()
    return "Basic " + base64.b64encode(raw).decode()


class Authenticator:
    """Turns challenges into ``Authorization`` values and caches them per (host, scopes)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client
        self._cache: dict[tuple[str, tuple[str, ...]], tuple[str, float]] = {}

    def cached(self, host: str, scopes: list[str]) -> str | None:
        """A still-valid ``Authorization`` value for ``host`` and ``scopes``, if any."""
        entry = self._cache.get((host, tuple(sorted(scopes))))
        if entry is None or entry[1] <= time.monotonic():
            return None
        return entry[0]

    def forget(self, host: str) -> None:
        """Drop every cached value for ``host`` (after the registry rejected one)."""
        for key in [k for k in self._cache if k[0] == host]:
            del self._cache[key]

    async def authorize(
        self, host: str, header: str, scopes: list[str], auth: AuthConfig | None
    ) -> str:
        """Answer the challenge in ``header``; returns (and caches) the ``Authorization`` value.

        Raises Unauthenticated when the challenge cannot be met (no credentials for Basic,
        credentials refused by the token server) and Unavailable when the realm is unreachable.
        """
        challenges = {c.scheme: c for c in parse_challenges(header)}
        if "bearer" in challenges:
            value, ttl = await self._bearer(host, challenges["bearer"], scopes, auth)
        elif "basic" in challenges and auth is not None and auth.username:
            value, ttl = basic_header(auth), 3600.0
        elif "basic" in challenges:
            raise Unauthenticated(f"registry {host} requires credentials (basic auth)")
        else:
            raise Unauthenticated(f"registry {host} sent an unsupported challenge: {header!r}")
        self._cache[(host, tuple(sorted(scopes)))] = (value, time.monotonic() + ttl)
        return value

    async def _bearer(
        self, host: str, challenge: Challenge, scopes: list[str], auth: AuthConfig | None
    ) -> tuple[str, float]:
        if auth is not None and auth.registrytoken:
            return "Bearer " + auth.registrytoken, _DEFAULT_TOKEN_TTL
        realm = challenge.params.get("realm")
        if not realm or not realm.startswith(("http://", "https://")):
            raise InvalidArgument(f"registry {host} sent a bearer challenge without a valid realm")
        wanted = scopes or [s for s in challenge.params.get("scope", "").split(" ") if s]
        service = challenge.params.get("service", "")
        try:
            response = await self._token_request(realm, service, wanted, auth)
        except httpx.TimeoutException as exc:
            raise DeadlineExceeded(f"token server {realm} timed out: {exc}") from exc
        except httpx.TransportError as exc:
            raise Unavailable(f"token server {realm} is unreachable: {exc}") from exc
        if response.status_code in (401, 403):
            raise Unauthenticated(
                "unauthorized: incorrect username or password"
                if auth is not None and not auth.empty
                else f"unauthorized: {host} refused an anonymous token"
            )
        if response.status_code != 200:
            raise Unavailable(f"token server {realm} answered {response.status_code}")
        try:
            body = response.json()
            token = str(body.get("token") or body.get("access_token") or "")
            ttl = float(body.get("expires_in") or _DEFAULT_TOKEN_TTL)
        except (ValueError, AttributeError, TypeError) as exc:
            raise InvalidArgument(f"token server {realm} sent an invalid reply") from exc
        if not token:
            raise InvalidArgument(f"token server {realm} sent no token")
        return "Bearer " + token, max(ttl - _EXPIRY_MARGIN, 1.0)

    async def _token_request(
        self, realm: str, service: str, scopes: list[str], auth: AuthConfig | None
    ) -> httpx.Response:
        if auth is not None and auth.identitytoken:  # OAuth2 refresh token, as docker login keeps
            form = {"grant_type": "refresh_token", "refresh_token": auth.identitytoken,
                    "service": service, "client_id": "wharf", "scope": " ".join(scopes)}
            return await self._client.post(realm, data=form)
        params = httpx.QueryParams([("service", service)] if service else [])
        for scope in scopes:
            params = params.add("scope", scope)
        headers = {}
        if auth is not None and auth.username:
            headers["Authorization"] = basic_header(auth)
        return await self._client.get(realm, params=params, headers=headers)
