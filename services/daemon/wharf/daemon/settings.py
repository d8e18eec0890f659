"""wharfd's typed settings: defaults < /etc/wharf/daemon.json < WHARF_* environment < flags."""

from __future__ import annotations

import ipaddress
import json
import platform
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from wharf.amqp import broker_urls
from wharf.daemon.core.images.compression import InflateLimit
from wharf.daemon.core.runtime.logfiles import DEFAULT_LOG_OPTS, parse_log_opts
from wharf.daemon.listen import ListenAddress, parse_listen_address
from wharf.errors import InvalidArgument, as_value_error
from wharf.protocol import ADDRESS

DEFAULT_CONFIG_FILE = Path("/etc/wharf/daemon.json")
DEFAULT_CERT_DIR = Path("/etc/wharf/tls")


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
            if "bip" in self._data:  # dockerd's name (a gateway/prefix: the subnet is kept)
                self._data.setdefault("bridge_subnet", self._data.pop("bip"))

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
    # Who may use the API socket: root alone (0600) or root and the socket's group (0660).
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
    # The agent's command journal: entries older than this go (never sooner than the longest
    # command deadline, one hour), and beyond journal_keep entries the oldest go.
    journal_keep_seconds: float = Field(default=86400.0, ge=3600, le=90 * 86400)
    journal_keep: int = Field(default=10_000, ge=100, le=10_000_000)
    # The largest build context (POST /build) accepted, compressed as sent and unpacked.
    build_context_max_bytes: int = Field(default=2 << 30, ge=1 << 20, le=1 << 40)
    # Decompression bound of a layer (and a build context): it may inflate to
    # max(ratio x its compressed size, min bytes); past that it is refused as a bomb.
    layer_inflate_ratio: int = Field(default=8, ge=1, le=1 << 20)
    layer_inflate_min_bytes: int = Field(default=10 << 30, ge=1 << 20, le=1 << 50)
    # The containers' default log options (dockerd's daemon.json "log-opts"): a container's
    # own --log-opt keys win, key by key. max-size and max-file bound each container's log.
    log_opts: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_LOG_OPTS))
    # Containers' cgroups live under this parent (/sys/fs/cgroup/<parent>/<id>, or
    # <parent>.slice with systemd); daemons sharing a host each need their own.
    cgroup_parent: str = Field(default="wharf", pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$")
    # Listeners (dockerd's -H, repeatable): unix:///path and tcp://HOST[:PORT]. Empty means
    # the one unix socket above. TCP needs --tlsverify (mutual TLS) unless insecure_tcp says
    # otherwise; --tls alone is refused on TCP (docs/tls.md).
    hosts: list[str] = Field(default_factory=list)
    tls: bool = False
    tlsverify: bool = False
    tlscacert: Path | None = None
    tlscert: Path | None = None
    tlskey: Path | None = None
    cert_dir: Path = DEFAULT_CERT_DIR
    insecure_tcp: bool = False
    # HOST:PORT of this daemon's mutual-TLS listener as the gateway reaches it (sent in the
    # heartbeat, for the gateway's interactive streams); default: the first tcp:// listener
    # on a specific address when --tlsverify is on, else none (docs/cluster.md).
    advertise_addr: str | None = Field(default=None, max_length=300)
    # HOST:PORT where GET /metrics alone is served over plain HTTP for Prometheus (which
    # cannot scrape a unix socket); none by default: /metrics is on the API (docs/metrics.md).
    metrics_addr: str | None = Field(default=None, max_length=300)
    # The default bridge network: its device (dockerd's "bridge") and subnet (dockerd's "bip";
    # default 172.17.0.0/16 unless a host route overlaps it). Daemons sharing a host (tests)
    # each need their own; wharf's iptables chains are named after a non-default bridge.
    bridge: str = Field(default="wharf0", pattern=r"^[a-zA-Z][a-zA-Z0-9_.-]{0,14}$")
    bridge_subnet: str | None = None  # daemon.json also takes dockerd's "bip" for it

    @field_validator("amqp_url")
    @classmethod
    def _brokers(cls, value: str | None) -> str | None:
        """One AMQP URL, or a RabbitMQ cluster's separated by commas (wharf.amqp)."""
        return as_value_error(broker_urls, value)  # the message hides any password

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

    @field_validator("bridge_subnet")
    @classmethod
    def _bridge_subnet(cls, value: str | None) -> str | None:
        if not value:
            return None
        try:
            network = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ValueError(f"bridge subnet {value!r} is not a CIDR such as 172.17.0.0/16"
                             ) from None
        if network.version != 4 or network.prefixlen > 30:
            raise ValueError(f"bridge subnet {value!r} must be IPv4 with room for addresses")
        return str(network)

    @field_validator("socket_mode", mode="before")
    @classmethod
    def _socket_mode(cls, value: Any) -> Any:
        mode = int(value, 8) if isinstance(value, str) else value  # daemon.json's "0660"
        if mode not in (0o600, 0o660):
            shown = oct(mode) if isinstance(mode, int) else repr(mode)
            raise ValueError(f"socket mode {shown} is not allowed: use 0600 (root only) or "
                             "0660 (root and the socket's group); others must never reach it")
        return mode

    @field_validator("log_opts")
    @classmethod
    def _log_opts(cls, value: dict[str, str]) -> dict[str, str]:
        try:
            parse_log_opts(value)
        except InvalidArgument as exc:
            raise ValueError(f"log-opts: {exc.message}") from None
        return value

    @field_validator("hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        for url in value:
            parse_listen_address(url, tls=True)  # raises ValueError naming the bad address
        return value

    @field_validator("advertise_addr")
    @classmethod
    def _advertise(cls, value: str | None) -> str | None:
        if value and not ADDRESS.fullmatch(value):
            raise ValueError(f"advertise address {value!r} is not HOST:PORT")
        return value or None

    @field_validator("metrics_addr")
    @classmethod
    def _metrics(cls, value: str | None) -> str | None:
        if value and not ADDRESS.fullmatch(value):
            raise ValueError(f"metrics address {value!r} is not HOST:PORT")
        if value:
            parse_listen_address(f"tcp://{value}", tls=False)  # the port's range, not 0
        return value or None

    @property
    def metrics_address(self) -> ListenAddress | None:
        """Where ``--metrics-addr`` serves /metrics, if anywhere."""
        return parse_listen_address(f"tcp://{self.metrics_addr}", tls=False) \
            if self.metrics_addr else None

    @model_validator(mode="after")
    def _tcp_needs_tls(self) -> DaemonSettings:
        tcp = [a.url for a in self.listen_addresses if a.scheme == "tcp"]
        if self.insecure_tcp and self.tls_enabled:
            raise ValueError("--insecure-tcp contradicts --tls/--tlsverify; choose one")
        if tcp and not self.tls_enabled and not self.insecure_tcp:
            raise ValueError(
                f"refusing to listen on {', '.join(tcp)} without TLS: anyone who can reach it "
                "would own this host. Use --tlsverify (mutual TLS, see docs/tls.md), or "
                "--insecure-tcp if you really want plain TCP")
        if tcp and not self.tlsverify and not self.insecure_tcp:
            raise ValueError(
                f"refusing to listen on {', '.join(tcp)} with --tls but without --tlsverify: "
                "TLS alone does not check who connects, so anyone who can reach the port "
                "would be root on this host. Add --tlsverify (client certificates signed by "
                "--tlscacert, see docs/tls.md)")
        return self

    @property
    def socket_path(self) -> Path:
        """The first unix socket wharfd listens on (the default one without ``hosts``)."""
        for address in self.listen_addresses:
            if address.path is not None:
                return address.path
        return self.socket or self.run_dir / "wharfd.sock"

    @property
    def inflate_limit(self) -> InflateLimit:
        """How far a compressed layer or build context may inflate."""
        return InflateLimit(self.layer_inflate_ratio, self.layer_inflate_min_bytes)

    @property
    def tls_enabled(self) -> bool:
        """TCP listeners speak TLS (``--tlsverify`` implies ``--tls``, as in dockerd)."""
        return self.tls or self.tlsverify

    @property
    def listen_addresses(self) -> list[ListenAddress]:
        """Every listener, in the order given; the default unix socket when none is."""
        if not self.hosts:
            return [ListenAddress("unix", path=self.socket or self.run_dir / "wharfd.sock")]
        return [parse_listen_address(url, tls=self.tls_enabled) for url in self.hosts]

    @property
    def advertised_address(self) -> str:
        """``HOST:PORT`` the gateway relays streams to, or "" (no mutual-TLS listener)."""
        if self.advertise_addr:
            return self.advertise_addr
        for address in self.listen_addresses:
            wildcard = address.host in ("", "0.0.0.0", "::")  # noqa: S104 - not dialable
            if address.scheme == "tcp" and self.tlsverify and not wildcard:
                return address.url.removeprefix("tcp://")
        return ""

    def tls_files(self) -> tuple[Path, Path, Path]:
        """CA, certificate and key paths; the flags win over ``cert_dir``.

        The default certificate is ``server-cert.pem``/``server-key.pem`` when present (what
        ``make certs`` writes beside the client's ``cert.pem``), else Docker's
        ``cert.pem``/``key.pem``.
        """
        cert, key = self.cert_dir / "server-cert.pem", self.cert_dir / "server-key.pem"
        if not (cert.exists() and key.exists()):
            cert, key = self.cert_dir / "cert.pem", self.cert_dir / "key.pem"
        return (self.tlscacert or self.cert_dir / "ca.pem", self.tlscert or cert,
                self.tlskey or key)

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
