"""The registry's tables. Change them only together with a new migration in ``migrations/``."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with stable constraint names, so migrations can refer to them."""

    metadata = MetaData(naming_convention=NAMING)


class WorkerRow(Base):
    """One registered worker. Times are Unix seconds (UTC)."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str | None] = mapped_column(String(256))
    tier: Mapped[int] = mapped_column(Integer)
    capabilities: Mapped[dict[str, Any]] = mapped_column(JSON)
    protocol_version: Mapped[int] = mapped_column(Integer)
    agent_version: Mapped[str | None] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16))
    """Liveness: ``online`` or ``offline``."""
    owner_paused: Mapped[bool] = mapped_column(Boolean, default=False)
    drained: Mapped[bool] = mapped_column(Boolean, default=False)
    current_load: Mapped[float] = mapped_column(Float, default=0.0)
    reported_status: Mapped[str | None] = mapped_column(String(256))
    registered_at: Mapped[float] = mapped_column(Float)
    last_heartbeat: Mapped[float] = mapped_column(Float)
    containers: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON(none_as_null=True))
    """The container reports (``shared.ContainerReport``) of the worker's last heartbeat that
    had them; None until one does, and again after it registers anew."""
    docker: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    """The Docker status (``shared.DockerInfo``) of its last heartbeat that had one; None
    means the one in ``capabilities`` (from registration) is the latest."""
    trusted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """An admin trusts this machine with services that handle people's personal data."""

    __table_args__ = (Index("ix_workers_status_last_heartbeat", "status", "last_heartbeat"),)


class AssignmentRow(Base):
    """One service placed on one worker (see ``coordinator.placement``)."""

    __tablename__ = "assignments"

    worker_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("workers.id", ondelete="CASCADE"), primary_key=True
    )
    service: Mapped[str] = mapped_column(String(64), primary_key=True)
    assigned_at: Mapped[float] = mapped_column(Float)
    unplaceable_since: Mapped[float | None] = mapped_column(Float)
    """Since when the worker has been unable to run it; it moves after the grace period."""

    __table_args__ = (Index("ix_assignments_service", "service"),)


class IssuedSecretColumns:
    """The columns every admin-issued secret has (see ``coordinator.issued_secrets``).

    Each table adds the column of the secret's hash, the only form of it that is stored.
    """

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(256))
    """The admin's label, e.g. ``adviser portal``."""
    prefix: Mapped[str] = mapped_column(String(16))
    """The secret's first characters, to recognise it in lists without storing it."""
    created_at: Mapped[float] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float)


class ApiKeyRow(IssuedSecretColumns, Base):
    """One client API key (see ``coordinator.relay.api_keys``)."""

    __tablename__ = "api_keys"

    key_hash: Mapped[str] = mapped_column(String(64), unique=True)


class EnrollmentTokenRow(IssuedSecretColumns, Base):
    """One enrollment token, which lets new machines join (``coordinator.workers.enrollment``)."""

    __tablename__ = "enrollment_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    workers_enrolled: Mapped[int] = mapped_column(Integer, default=0)
    """How many machines have joined with it."""
    last_used_at: Mapped[float | None] = mapped_column(Float)
    """When a machine last joined with it; None until one does."""


WORKERS = cast(Table, WorkerRow.__table__)
"""The workers table, for Core statements on hot paths (heartbeats, sweeps)."""

ASSIGNMENTS = cast(Table, AssignmentRow.__table__)
"""The assignments table, for Core statements (heartbeats, placement)."""
