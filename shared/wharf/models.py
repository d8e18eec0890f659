"""Pydantic models that cross program boundaries (CLI ⇄ daemon ⇄ gateway)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from wharf.errors import InvalidArgument


class AuthConfig(BaseModel):
    """Registry credentials, as ``X-Registry-Auth`` and ``POST /auth`` carry them."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    username: str = Field(default="", alias="username")
    password: str = Field(default="", alias="password")
    serveraddress: str = Field(default="", alias="serveraddress")
    identitytoken: str = Field(default="", alias="identitytoken")
    registrytoken: str = Field(default="", alias="registrytoken")

    @property
    def empty(self) -> bool:
        return not (self.username or self.password or self.identitytoken or self.registrytoken)

    def to_header(self) -> str:
        """Base64url JSON, the form the docker CLI sends in ``X-Registry-Auth``."""
        raw = self.model_dump_json(exclude_defaults=True).encode()
        return base64.urlsafe_b64encode(raw).decode()

    @classmethod
    def from_header(cls, header: str | None) -> AuthConfig | None:
        """Decode ``X-Registry-Auth``; ``None`` when absent or empty (``e30=`` is ``{}``)."""
        if not header:
            return None
        auth = cls.from_object(header_object(header, "X-Registry-Auth header"),
                               "X-Registry-Auth header")
        return None if auth.empty else auth

    @classmethod
    def from_object(cls, data: dict[str, Any], what: str) -> AuthConfig:
        """Credentials from a decoded JSON object (keys in any case); InvalidArgument naming
        ``what`` when they do not validate."""
        try:
            return cls.model_validate({k.lower(): v for k, v in data.items()})
        except ValidationError as exc:
            raise InvalidArgument(f"{what} is invalid: {exc}") from exc


def header_object(header: str, what: str) -> dict[str, Any]:
    """A header carrying base64url JSON of an object (``X-Registry-Auth``,
    ``X-Registry-Config``), decoded; InvalidArgument naming ``what`` otherwise."""
    try:
        padded = header + "=" * (-len(header) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError) as exc:
        raise InvalidArgument(f"{what} is not base64-encoded JSON") from exc
    if not isinstance(data, dict):
        raise InvalidArgument(f"{what} must encode a JSON object")
    return data
