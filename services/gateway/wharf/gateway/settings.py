"""wharf-gateway's typed settings: defaults < WHARF_GATEWAY_* environment < flags."""

from __future__ import annotations

import ipaddress
import platform
import sys
from pathlib import Path
from typing import Any, Self

import click
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from wharf.amqp import broker_urls
from wharf.errors import as_value_error


class GatewaySettings(BaseSettings):
    # hide_input_in_errors: an error about the broker address must not print its password
    model_config = SettingsConfigDict(env_prefix="WHARF_GATEWAY_", extra="forbid",
                                      hide_input_in_errors=True)

    listen: str = Field(default="127.0.0.1:8080", pattern=r"^[^\s:]+:\d{1,5}$")
    # `make rabbitmq` writes the gateway's own account as WHARF_GATEWAY_AMQP_URL to
    # /etc/wharf/amqp.env; there is no default, so a gateway never falls back to guest.
    amqp_url: str | None = None
    state_dir: Path = Path("/var/lib/wharf-gateway")
    # PostgreSQL shared by several gateways of one cluster (commands, results, idempotency
    # keys, node availability, tokens); None: the gateway's own SQLite file in state_dir.
    database_url: str | None = None
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
    # Request limits (wharf.gateway.limits): a body larger than this is 413; each token may
    # send `rate` requests a second on average, `burst` at once (rate 0: no limit).
    max_body_bytes: int = Field(default=1 << 20, ge=1024, le=1 << 30)
    rate: float = Field(default=50.0, ge=0, le=1_000_000)
    burst: int = Field(default=100, ge=1, le=1_000_000)
    # HTTPS: a PEM certificate (chain) and its key; with tls_client_ca, clients must also
    # present a certificate that CA signed. Plain HTTP is served on a loopback address only,
    # unless insecure_http says otherwise.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    insecure_http: bool = False
    # Interactive streams (attach, exec, logs -f) go straight to a node's wharfd over mutual
    # TLS: the CA that signed the daemons and the gateway's client certificate and key.
    node_tls_ca: Path | None = None
    node_tls_cert: Path | None = None
    node_tls_key: Path | None = None

    @field_validator("amqp_url")
    @classmethod
    def _brokers(cls, value: str | None) -> str | None:
        """One AMQP URL, or a RabbitMQ cluster's separated by commas (wharf.amqp)."""
        return as_value_error(broker_urls, value)  # the message hides any password

    @field_validator("database_url")
    @classmethod
    def _database(cls, value: str | None) -> str | None:
        from wharf.gateway.pgrecords import check_url  # noqa: PLC0415

        return as_value_error(check_url, value)

    @field_validator("state_dir", "tokens_file")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        if not value.is_absolute():
            raise ValueError(f"{value} must be an absolute path")
        return value

    @model_validator(mode="after")
    def _tls_files_together(self) -> Self:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("--tls-cert and --tls-key go together: give both (or neither)")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("--tls-client-ca needs --tls-cert and --tls-key (mutual TLS is "
                             "TLS first)")
        nodes = (self.node_tls_ca, self.node_tls_cert, self.node_tls_key)
        if any(f is not None for f in nodes) and any(f is None for f in nodes):
            raise ValueError("--node-tls-ca, --node-tls-cert and --node-tls-key go together: "
                             "give all three (or none)")
        return self

    def node_tls(self) -> Any:
        """The client ``ssl.SSLContext`` the gateway dials nodes' daemons with (None: no
        stream is relayed); ValueError names a file it cannot load."""
        if self.node_tls_ca is None or self.node_tls_cert is None or self.node_tls_key is None:
            return None
        import ssl  # noqa: PLC0415 - only when serving

        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        try:
            context.load_verify_locations(cafile=self.node_tls_ca)
            context.load_cert_chain(self.node_tls_cert, self.node_tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"cannot load the nodes' TLS files (CA {self.node_tls_ca}, "
                             f"certificate {self.node_tls_cert}, key {self.node_tls_key}): "
                             f"{exc}") from exc
        return context

    @property
    def scheme(self) -> str:
        return "http" if self.tls_cert is None else "https"

    def plain_http_refusal(self) -> str | None:
        """Why serving as configured must not start (plain HTTP off loopback without
        ``insecure_http``), or None."""
        host = self.host_port[0]
        if self.tls_cert is not None or self.insecure_http or _loopback(host):
            return None
        return (f"refusing to serve plain HTTP on {self.listen}: bearer tokens would cross the "
                "network in the clear. Give --tls-cert and --tls-key (WHARF_GATEWAY_TLS_CERT, "
                "WHARF_GATEWAY_TLS_KEY), listen on a loopback address, or pass --insecure-http "
                "if something in front of the gateway terminates TLS")

    def server_tls(self) -> Any:
        """The server ``ssl.SSLContext`` for these settings (None for plain HTTP), its files
        loaded once so that a bad one is a message at start-up, not a traceback; ValueError
        names it."""
        if self.tls_cert is None or self.tls_key is None:
            return None
        import ssl  # noqa: PLC0415 - only when serving HTTPS

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(self.tls_cert, self.tls_key)
            if self.tls_client_ca is not None:
                context.load_verify_locations(cafile=self.tls_client_ca)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"cannot load the TLS files (certificate {self.tls_cert}, key "
                             f"{self.tls_key}, client CA {self.tls_client_ca}): {exc}") from exc
        if self.tls_client_ca is not None:
            context.verify_mode = ssl.CERT_REQUIRED
        return context

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host, int(port)


def from_flags(**flags: Any) -> GatewaySettings:
    """Settings from a command's flags (None: not given) over the environment; a bad value is
    a message and exit status 1."""
    overrides = {k: v for k, v in flags.items() if v is not None}
    try:
        return GatewaySettings(**overrides)
    except ValueError as exc:
        click.echo(f"wharf-gateway: invalid settings: {exc}", err=True)
        sys.exit(1)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve anywhere
