"""wharf-gateway's typed settings: defaults < WHARF_GATEWAY_* environment < flags."""

from __future__ import annotations

import platform
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WHARF_GATEWAY_", extra="forbid")

    listen: str = Field(default="127.0.0.1:8080", pattern=r"^[^\s:]+:\d{1,5}$")
    # `make rabbitmq` writes the gateway's own account as WHARF_GATEWAY_AMQP_URL to
    # /etc/wharf/amqp.env; there is no default, so a gateway never falls back to guest.
    amqp_url: str | None = None
    state_dir: Path = Path("/var/lib/wharf-gateway")
    tokens_file: Path = Path("/etc/wharf/gateway-tokens")
    # Stable across restarts: the durable queue of results and reports is named after it.
    gateway_id: str = Field(default_factory=lambda: "gw-" + platform.node(),
                            pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$")
    node_down_after: float = Field(default=2.5, gt=0, le=600)
    default_deadline: float = Field(default=60.0, gt=0, le=3600)
    # The command history (GET /v1/commands/{id}, Idempotency-Key): commands older than this go,
    # and beyond command_keep commands the oldest whose deadline has passed.
    command_keep_seconds: float = Field(default=7 * 24 * 3600.0, ge=3600, le=365 * 86400)
    command_keep: int = Field(default=100_000, ge=1000, le=100_000_000)
    log_level: str = Field(default="info", pattern="^(debug|info|warning|error)$")

    @field_validator("state_dir", "tokens_file")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        if not value.is_absolute():
            raise ValueError(f"{value} must be an absolute path")
        return value

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host, int(port)
