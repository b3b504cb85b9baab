"""Settings from environment variables (prefix TERTULIA_), with documented defaults.

Every setting is listed in the README's configuration table. Invalid values stop start-up
with one line naming the variable (see `load_settings`).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger(__name__)

JWT_SECRET_FILE = "jwt-secret"
MIN_SECRET_LENGTH = 32


def origin_of(url: str) -> str | None:
    """scheme://host[:port] of an http(s) URL, as browsers send it in `Origin`."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or "@" in parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


class ConfigError(Exception):
    """A setting is invalid; the message is one line meant for the operator."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TERTULIA_", extra="ignore", frozen=True)

    data_dir: Path = Path("tertulia-data")
    database_url: str | None = None
    # Redis, shared by the workers of a deployment (docs/scaling.md); None: one process.
    redis_url: str | None = None
    redis_prefix: str = Field(default="tertulia", pattern=r"^[A-Za-z0-9_.:-]{1,40}$")
    worker_lease_seconds: float = Field(default=10, ge=0.5, le=300)  # a dead worker's end
    workers: int | None = Field(default=None, ge=1, le=256)  # `serve --workers` overrides
    # Media pipes between workers (docs/sfu.md): where this worker receives them, and the
    # address other nodes send to (the bind address when unset).
    pipe_address: str = "127.0.0.1"
    pipe_announced_address: str | None = None
    jwt_secret: str | None = Field(default=None, repr=False)
    public_url: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    token_ttl_seconds: int = Field(default=12 * 3600, ge=60, le=30 * 24 * 3600)
    allow_registration: bool = False
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    # Media (see signaling/media_config.py): comma-separated lists.
    ice_host_addresses: str = ""
    ice_announced_address: str | None = None
    ice_servers: str = ""
    ice_username: str | None = None
    ice_credential: str | None = Field(default=None, repr=False)
    video_codec: Literal["VP8", "H264"] = "VP8"
    forwarding: Literal["encoded", "relay"] = "encoded"
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    # Large meetings (docs/sfu.md): video streams a receiver gets until it asks otherwise,
    # and how many of the loudest microphones each receiver hears.
    last_n: int = Field(default=20, ge=0, le=25)
    audio_streams: int = Field(default=3, ge=1, le=25)
    recording_retention_days: int = Field(default=0, ge=0, le=36500)  # 0: keep forever
    # A recording's owner renews its lease this often / 3; a lease older than this marks the
    # recording interrupted (its worker died). See signaling/recordings/jobs.py.
    recording_lease_seconds: float = Field(default=30, ge=1, le=3600)
    audit_retention_days: int = Field(default=365, ge=0, le=36500)  # 0: keep forever
    # Waiting room and lifecycle (docs/protocol.md, "Moderation"; docs/api.md, "Lifecycle").
    knock_retry_seconds: int = Field(default=600, ge=0, le=7 * 24 * 3600)  # after a denial
    waiting_room_limit: int = Field(default=100, ge=1, le=10_000)  # people waiting per meeting
    empty_meeting_timeout_seconds: float = Field(default=900, ge=0, le=7 * 24 * 3600)  # 0: never
    lifecycle_interval_seconds: float = Field(default=15, gt=0, le=3600)
    # Operations (docs/deploy.md): logs as JSON lines; who may read /metrics besides loopback.
    log_format: Literal["text", "json"] = "text"
    metrics_allow: str = ""  # comma-separated addresses or networks
    # /metrics on a port of its own as well (on `host`): worker i of `serve --workers N` on
    # metrics_port + i, so Prometheus scrapes each worker (they share the main port).
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    # ICE for real networks: a fixed UDP port range for media, and TURN REST API credentials
    # (a secret shared with coturn's static-auth-secret) handed to each participant.
    ice_port_min: int | None = Field(default=None, ge=1024, le=65535)
    ice_port_max: int | None = Field(default=None, ge=1024, le=65535, validate_default=True)
    turn_urls: str = ""
    turn_secret: str | None = Field(default=None, repr=False)
    turn_ttl_seconds: int = Field(default=3600, ge=60, le=7 * 24 * 3600)
    # HTTP hardening (see signaling/addresses.py and signaling/security.py).
    idle_timeout_seconds: float = Field(default=15.0, ge=1, le=3600)
    trusted_proxies: str = ""
    allowed_origins: str = ""

    @field_validator("trusted_proxies", "metrics_allow")
    @classmethod
    def _networks(cls, value: str) -> str:
        for item in filter(None, (part.strip() for part in value.split(","))):
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network") from None
        return value

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: str) -> str:
        for item in filter(None, (part.strip() for part in value.split(","))):
            if origin_of(item) != item.rstrip("/"):
                raise ValueError(f"{item!r} is not an origin like https://meet.example.org")
        return value

    @field_validator("pipe_address")
    @classmethod
    def _one_ip(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address") from None
        return value

    @field_validator("ice_host_addresses")
    @classmethod
    def _ip_list(cls, value: str) -> str:
        for item in filter(None, (part.strip() for part in value.split(","))):
            try:
                ipaddress.ip_address(item)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address") from None
        return value

    @field_validator("ice_announced_address", "pipe_announced_address")
    @classmethod
    def _ip(cls, value: str | None) -> str | None:
        if value:
            try:
                ipaddress.ip_address(value)
            except ValueError:
                raise ValueError(f"{value!r} is not an IP address") from None
        return value or None

    @field_validator("ice_servers")
    @classmethod
    def _ice_urls(cls, value: str) -> str:
        for item in filter(None, (part.strip() for part in value.split(","))):
            if not item.startswith(("stun:", "turn:", "turns:")):
                raise ValueError(f"{item!r} is not a stun:, turn: or turns: URL")
        return value

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return value

    @field_validator("public_url")
    @classmethod
    def _absolute_http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an absolute http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("jwt_secret")
    @classmethod
    def _strong_secret(cls, value: str | None) -> str | None:
        if value is not None and len(value) < MIN_SECRET_LENGTH:
            raise ValueError(f"must be at least {MIN_SECRET_LENGTH} characters")
        return value

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        if not value:
            raise ValueError("must not be empty")
        try:
            ipaddress.ip_address(value)
        except ValueError:
            if not all(part.isalnum() or "-" in part for part in value.split(".")):
                raise ValueError("must be an IP address or a host name") from None
        return value

    @field_validator("ice_port_max")
    @classmethod
    def _ice_port_range(cls, value: int | None, info: ValidationInfo) -> int | None:
        if "ice_port_min" not in info.data:  # itself invalid: that error is reported
            return value
        low = info.data["ice_port_min"]
        if (low is None) != (value is None):
            raise ValueError("TERTULIA_ICE_PORT_MIN and TERTULIA_ICE_PORT_MAX go together")
        if low is not None and value is not None and low > value:
            raise ValueError(f"must not be below TERTULIA_ICE_PORT_MIN ({low})")
        return value

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'tertulia.db').resolve()}"

    @property
    def origins(self) -> frozenset[str]:
        """Origins whose pages may open the signaling WebSocket: the public URL's, the
        allowed list, and (when no public URL is set) this server's own loopback names."""
        urls = [self.resolved_public_url, *self.allowed_origins.split(",")]
        if not self.public_url:
            urls += [f"http://{host}:{self.port}" for host in ("127.0.0.1", "[::1]")]
        return frozenset(filter(None, (origin_of(u.strip()) for u in urls if u.strip())))

    @property
    def resolved_public_url(self) -> str:
        if self.public_url:
            return self.public_url
        shown_host = "localhost" if self.host in ("127.0.0.1", "0.0.0.0", "::") else self.host
        return f"http://{shown_host}:{self.port}"


def load_settings(**overrides: object) -> Settings:
    """Read the environment; raise ConfigError with one readable line when it is invalid."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "TERTULIA_" + str(first["loc"][0]).upper() if first["loc"] else "TERTULIA_*"
        raise ConfigError(f"invalid setting {name}: {first['msg']}") from None


def ensure_data_dir(settings: Settings) -> Path:
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create TERTULIA_DATA_DIR {settings.data_dir}: {exc}") from None
    return settings.data_dir


def jwt_secret(settings: Settings) -> str:
    """The configured secret, or one generated on first start and kept in the data dir."""
    if settings.jwt_secret:
        return settings.jwt_secret
    path = ensure_data_dir(settings) / JWT_SECRET_FILE
    try:
        if path.exists():
            secret = path.read_text().strip()
            if len(secret) < MIN_SECRET_LENGTH:
                raise ConfigError(f"{path} holds a secret that is too short; delete it")
            return secret
        secret = secrets.token_urlsafe(48)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secret + "\n")
    except OSError as exc:
        raise ConfigError(f"cannot read or write {path}: {exc}") from None
    log.info("generated a new JWT secret in %s", path)
    return secret
