"""wharfd's typed settings: defaults < /etc/wharf/daemon.json < WHARF_* environment < flags."""

from __future__ import annotations

import ipaddress
import json
import platform
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from wharf.errors import InvalidArgument

DEFAULT_CONFIG_FILE = Path("/etc/wharf/daemon.json")


class _JsonFileSource(PydanticBaseSettingsSource):
    """Reads the optional daemon.json (the path itself comes from WHARF_CONFIG_FILE)."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        super().__init__(settings_cls)
        self._data: dict[str, Any] = {}
        if path.is_file():
            try:
                loaded = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise InvalidArgument(f"cannot read daemon config {path}: {exc}") from exc
            if not isinstance(loaded, dict):
                raise InvalidArgument(f"daemon config {path} must hold a JSON object")
            self._data = {k.replace("-", "_"): v for k, v in loaded.items()}

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._data.items() if k in self.settings_cls.model_fields}


class DaemonSettings(BaseSettings):
    """Everything wharfd can be told. Paths are absolute; the socket is a unix path."""

    model_config = SettingsConfigDict(env_prefix="WHARF_", extra="forbid")

    config_file: Path = DEFAULT_CONFIG_FILE
    data_root: Path = Path("/var/lib/wharf")
    run_dir: Path = Path("/run/wharf")
    socket: Path | None = Field(default=None,
                                description="unix socket; default <run_dir>/wharfd.sock")
    socket_mode: int = 0o660
    registry_mirrors: list[str] = Field(default_factory=list)
    insecure_registries: list[str] = Field(default_factory=lambda: ["127.0.0.0/8"])
    max_concurrent_downloads: int = Field(default=3, ge=1, le=32)
    max_concurrent_uploads: int = Field(default=5, ge=1, le=32)
    log_level: str = "info"
    default_runtime: str = Field(default="crun", pattern="^(crun|runc)$")
    # The control-plane agent runs only when an AMQP URL is set (a single host needs no broker).
    amqp_url: str | None = None
    node_name: str = Field(default_factory=platform.node,
                           pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$")
    node_labels: dict[str, str] = Field(default_factory=dict)
    heartbeat_interval: float = Field(default=1.0, gt=0, le=60)
    snapshot_interval: float = Field(default=30.0, gt=0, le=3600)

    @field_validator("data_root", "run_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        if not value.is_absolute():
            raise ValueError(f"{value} is not an absolute path")
        return value

    @field_validator("registry_mirrors")
    @classmethod
    def _mirrors(cls, value: list[str]) -> list[str]:
        for mirror in value:
            if not mirror.startswith(("http://", "https://")):
                raise ValueError(f"registry mirror {mirror!r} must start with http:// or https://")
        return [m.rstrip("/") for m in value]

    @field_validator("insecure_registries")
    @classmethod
    def _insecure(cls, value: list[str]) -> list[str]:
        for entry in value:
            if "/" in entry:
                ipaddress.ip_network(entry, strict=False)  # raises ValueError on junk
        return value

    @property
    def socket_path(self) -> Path:
        return self.socket or self.run_dir / "wharfd.sock"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config_path = Path(str(env_settings().get("config_file") or DEFAULT_CONFIG_FILE))
        init_path = init_settings().get("config_file")
        if init_path:
            config_path = Path(str(init_path))
        return (init_settings, env_settings, _JsonFileSource(settings_cls, config_path))
