"""The admin API's messages: workers, stats, health, and client API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from shared.base import RequestModel, ResponseModel, ShortText, WorkerId
from shared.capabilities import WorkerCapabilities
from shared.messages import ContainerReport, Liveness, Schedulability, Tier


class WorkerView(ResponseModel):
    """One worker as an admin sees it."""

    worker_id: WorkerId
    name: str | None
    tier: Tier
    status: Liveness
    """``online`` while heartbeats arrive; ``offline`` after three missed intervals."""
    schedulability: Schedulability
    """Whether it may take work: ``active``, ``paused`` by its owner, ``drained`` by an admin."""
    capabilities: WorkerCapabilities
    current_load: float
    reported_status: str | None
    """The free-text status the agent last sent (seed agents)."""
    last_heartbeat: datetime
    registered_at: datetime
    protocol_version: int
    agent_version: str | None
    trusted: bool = False
    """An admin trusts it with services that handle people's personal data."""
    containers: list[ContainerReport] = []
    """Each assigned service's container as the worker last reported it."""
    assigned_services: list[str] = []
    """The services the coordinator placed on this worker (what it should run; compare with
    :attr:`containers`, what it reports running)."""


class WorkerList(ResponseModel):
    """``GET /api/admin/workers``."""

    workers: list[WorkerView]
    total: int
    """How many workers match, before ``limit``/``offset``."""


class TierCounts(ResponseModel):
    """Workers of one tier."""

    total: int
    online: int


class PoolStats(ResponseModel):
    """``GET /api/admin/stats``."""

    total_workers: int
    online_workers: int
    offline_workers: int
    active_workers: int
    """Online workers that may take work (not paused, not drained)."""
    by_tier: dict[str, int]
    """Workers per tier (``"1"``, ``"2"``, ``"3"``), online or not, as the seed reported."""
    tiers: dict[str, TierCounts]
    """Per tier, the total and how many are online."""


class AdminHealth(ResponseModel):
    """``GET /api/admin/health``: the coordinator's own state, in more detail than /health."""

    status: Literal["healthy", "degraded"]
    version: str
    protocol_version: int
    database: str
    """``"ok"`` or what went wrong reaching the registry database."""
    uptime_seconds: float
    heartbeat_interval: float
    online_workers: int
    last_liveness_sweep: datetime | None
    """When the coordinator last checked for workers that stopped sending heartbeats."""


def _not_blank(text: str) -> str:
    if not text:
        raise ValueError("must not be empty: give the key a label, e.g. 'adviser portal'")
    return text


class ApiKeyCreate(RequestModel):
    """``POST /api/admin/api-keys``: a new client API key."""

    name: Annotated[
        ShortText, AfterValidator(_not_blank), Field(json_schema_extra={"minLength": 1})
    ]
    """What the key is for, so admins recognise it in the list (e.g. ``"adviser portal"``);
    1 to 256 characters after surrounding spaces are stripped."""


class ApiKeyCreated(ResponseModel):
    """The answer to ``POST /api/admin/api-keys``: the only time the key itself is shown."""

    key: str
    """The secret, for ``Authorization: Bearer <key>``. The coordinator keeps only its hash,
    so it cannot be shown again; a lost key is revoked and replaced."""
    id: str
    """The key's id, for revoking it."""
    name: str
    prefix: str
    """The key's first characters (e.g. ``"rma_AbCd"``), to recognise it in the list."""
    created_at: datetime


class ApiKeyView(ResponseModel):
    """One client API key as the list shows it: never the key, only its prefix."""

    id: str
    name: str
    prefix: str
    """The key's first characters (e.g. ``"rma_AbCd"``)."""
    created_at: datetime
    revoked_at: datetime | None
    """When an admin revoked it; None while it is in use."""
    active: bool
    """Whether the relay accepts it (not revoked)."""


class ApiKeyList(ResponseModel):
    """``GET /api/admin/api-keys``: every key, newest first, revoked ones included."""

    keys: list[ApiKeyView]
    total: int
