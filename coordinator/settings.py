"""Coordinator settings, from flags or ``RMA_*`` environment variables."""

from __future__ import annotations

from pathlib import Path

import platformdirs
from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.tiers import TierRules

_WEAK_SECRETS = {"changeme", "change-me", "admin", "secret", "password", "token", "test"}
MIN_SECRET_LENGTH = 16


class CoordinatorSettings(BaseSettings):
    """Everything the coordinator needs to start; see ``rma-coordinator --help``."""

    model_config = SettingsConfigDict(
        env_prefix="RMA_", env_nested_delimiter="__", extra="ignore", frozen=True
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    data_dir: Path = Field(default_factory=lambda: platformdirs.user_data_path("rma-coordinator"))
    """Where the registry database and the generated admin token live."""
    database_url: str | None = None
    """An SQLAlchemy URL to use instead of SQLite in the data dir (e.g. PostgreSQL)."""
    admin_token: SecretStr | None = None
    """The admin API's bearer token; generated into ``<data_dir>/admin-token`` when unset."""
    enrollment_token: SecretStr | None = None
    """When set, new workers must present it to register."""
    heartbeat_interval: float = Field(default=30.0, gt=0, le=3600)
    """Seconds between a worker's heartbeats."""
    missed_heartbeats_offline: int = Field(default=3, ge=1)
    """A worker is offline after this many missed heartbeat intervals."""
    retention_days: float = Field(default=14.0, gt=0)
    """An offline worker is removed from the registry after this many days."""
    tiers: TierRules = TierRules()
    catalog: Path | None = None
    """The service catalogue, a ``.json`` or ``.toml`` file; the built-in one when unset."""
    placement_grace: float = Field(default=300.0, ge=0, le=30 * 86400)
    """Seconds a worker that went offline, was paused or drained keeps its services before
    they are placed elsewhere (home PCs reboot; don't move everything for that)."""
    log_level: str = "INFO"
    relay_max_body: int = Field(default=32 * 1024 * 1024, ge=1024, le=1024**3)
    """The largest request body the relay takes, in bytes; larger ones get a 413."""
    relay_attempts: int = Field(default=3, ge=1, le=10)
    """Workers tried for one relayed request before it fails."""
    relay_head_timeout: float = Field(default=300.0, gt=0, le=3600)
    """Seconds a worker may take to start answering a relayed request."""
    tunnel_keepalive: float = Field(default=0.5, gt=0, le=60)
    """Seconds of silence after which either end of a worker's tunnel sends a ping."""
    tunnel_dead_after: float = Field(default=1.5, gt=0, le=600)
    """Seconds of silence after which a worker's tunnel is closed and the worker unroutable."""
    admin_session_idle: float = Field(default=8 * 3600.0, ge=60, le=30 * 86400)
    """Seconds a dashboard session lasts without use before the admin signs in again."""
    admin_session_max_age: float = Field(default=24 * 3600.0, ge=60, le=365 * 86400)
    """Seconds a dashboard session lasts at most, used or not."""
    history_interval: float = Field(default=10.0, ge=0.1, le=600)
    """Seconds between the samples the dashboard's charts of the last hour show."""

    @field_validator("tunnel_dead_after")
    @classmethod
    def _dead_after_keepalive(cls, value: float, info: ValidationInfo) -> float:
        keepalive = info.data.get("tunnel_keepalive")
        if keepalive is not None and value <= keepalive:
            raise ValueError(
                f"must be longer than tunnel_keepalive ({keepalive:g} s), or quiet tunnels "
                "would be closed between their pings"
            )
        return value

    @field_validator("admin_token", "enrollment_token")
    @classmethod
    def _refuse_weak_secrets(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        secret = value.get_secret_value()
        if len(secret) < MIN_SECRET_LENGTH or secret.lower() in _WEAK_SECRETS:
            raise ValueError(
                f"is too weak: use at least {MIN_SECRET_LENGTH} random characters, e.g. "
                "the output of: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return value

    @property
    def resolved_database_url(self) -> str:
        """The database to use: the configured URL, or SQLite in the data dir."""
        return self.database_url or f"sqlite:///{self.data_dir / 'registry.db'}"

    @property
    def offline_after(self) -> float:
        """Seconds without a heartbeat after which a worker counts as offline."""
        return self.heartbeat_interval * self.missed_heartbeats_offline

    @property
    def retention_seconds(self) -> float:
        """Seconds an offline worker is kept before it is removed."""
        return self.retention_days * 86400
