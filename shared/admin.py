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
        raise ValueError(
            "must not be empty: give it a label that says what it is for, e.g. 'adviser portal'"
        )
    return text


Label = Annotated[ShortText, AfterValidator(_not_blank), Field(json_schema_extra={"minLength": 1})]
"""An admin's label for a secret: 1 to 256 characters after surrounding spaces are stripped."""


class ApiKeyCreate(RequestModel):
    """``POST /api/admin/api-keys``: a new client API key."""

    name: Label
    """What the key is for, so admins recognise it in the list (e.g. ``"adviser portal"``)."""


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


class EnrollmentTokenCreate(RequestModel):
    """``POST /api/admin/enrollment-tokens``: a new token that lets machines join the pool."""

    name: Label
    """Who or what it is for, so admins recognise it (e.g. ``"Leeds office volunteers"``)."""


class EnrollmentTokenCreated(ResponseModel):
    """The answer to ``POST /api/admin/enrollment-tokens``: the only time the token is shown."""

    token: str
    """The secret a volunteer's agent presents when it joins (``--enrollment-token``). The
    coordinator keeps only its hash, so it cannot be shown again."""
    id: str
    name: str
    prefix: str
    """The token's first characters (e.g. ``"rma_join_AbCd"``), to recognise it in the list."""
    created_at: datetime


class EnrollmentTokenView(ResponseModel):
    """One enrollment token as the list shows it: never the token, only its prefix."""

    id: str
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None
    active: bool
    """Whether new machines can join with it (not revoked)."""
    workers_enrolled: int
    """How many machines have joined with it."""
    last_used_at: datetime | None
    """When a machine last joined with it."""


class EnrollmentTokenList(ResponseModel):
    """``GET /api/admin/enrollment-tokens``: every token, newest first, revoked ones included."""

    tokens: list[EnrollmentTokenView]
    total: int
    required: bool
    """Whether a new machine needs a token to join. A pool is open until its first token is
    created (or ``RMA_ENROLLMENT_TOKEN`` is set); from then on it always needs one, even
    when every token is revoked."""
    from_settings: bool
    """Whether ``RMA_ENROLLMENT_TOKEN`` is set; that token works beside these and is changed
    only in the coordinator's settings."""


class WorkerRemoved(ResponseModel):
    """``DELETE /api/admin/workers/{worker_id}``: the worker is out of the registry."""

    worker_id: WorkerId
    name: str | None
    message: str
    """What happens next, in words (a machine still running joins again if it may enroll)."""


class AdminSignIn(RequestModel):
    """``POST /api/admin/session``: sign in to the dashboard with the admin token."""

    token: Annotated[str, Field(min_length=1, max_length=512)]


class AdminSession(ResponseModel):
    """The dashboard's signed-in session. The session itself is an HttpOnly cookie."""

    csrf_token: str
    """Send it as ``X-CSRF-Token`` with every request that changes something."""
    expires_at: datetime
    """When the session ends unless it is used; each use moves this on."""


class ServiceStatus(ResponseModel):
    """One catalogue service: how many replicas are wanted, placed, running and ready."""

    name: str
    description: str
    tiers: list[Tier]
    sensitive: bool
    gpu: bool
    desired: int
    """Replicas the catalogue asks for."""
    placed: int
    """Workers the coordinator assigned it to."""
    running: int
    """Online workers that report its container running."""
    ready: int
    """Workers whose tunnel is open and says it is ready to answer (what the relay uses)."""


class RelaySummary(ResponseModel):
    """The relay since the coordinator started, and now."""

    requests_total: int
    errors_total: int
    """Answers with a 5xx status (the coordinator's own refusals included)."""
    in_flight: int
    tunnels_open: int
    workers_banned: int


class HistoryPoint(ResponseModel):
    """The pool at one moment of the last hour (one sample per ``history_interval``)."""

    at: datetime
    online: int
    active: int
    offline: int
    requests: int
    """Relayed requests answered since the previous sample."""
    errors: int
    """Of those, answers with a 5xx status."""
    mean_latency_ms: float | None
    """Their mean duration; None when there were none."""


class PoolOverview(ResponseModel):
    """``GET /api/admin/overview``: what the dashboard's top half shows."""

    stats: PoolStats
    services: list[ServiceStatus]
    relay: RelaySummary
    history: list[HistoryPoint]
    """Oldest first, at most an hour of samples."""
    history_interval_seconds: float
    enrollment_required: bool
    version: str
