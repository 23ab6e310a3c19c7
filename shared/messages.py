"""The worker API: registration, heartbeats, unregistration and service assignments.

Paths (kept from the seed): ``POST /api/worker/register``, ``POST /api/worker/heartbeat``,
``DELETE /api/worker/unregister/{worker_id}``. Every call but a first registration carries
``Authorization: Bearer <worker_token>``.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, field_validator

from shared.base import RequestModel, ResponseModel, ShortText, WorkerId
from shared.capabilities import DockerInfo, WorkerCapabilities

Tier = Annotated[int, Field(ge=1, le=3)]
"""1 = GPU worker, 2 = service (CPU) worker, 3 = data worker."""

Liveness = Literal["online", "offline"]
"""Whether the worker's heartbeats arrive. Says nothing about whether it may take work."""

Schedulability = Literal["active", "paused", "drained"]
"""Whether the worker may take work: ``paused`` by its owner, ``drained`` by an admin."""

TIER_NAMES: dict[int, str] = {1: "GPU worker", 2: "service worker", 3: "data worker"}


class ServiceAssignment(ResponseModel):
    """One service container the coordinator wants a worker to run."""

    service: str
    """The catalogue name of the service, e.g. ``"rag"``."""
    image: str
    """The container image to run, e.g. ``"ghcr.io/org/rag-service:1.4"``."""
    port: int | None = None
    """The port the service listens on inside its container."""
    env: dict[str, str] = {}
    """Environment variables for the container."""
    command: list[str] | None = None
    """Overrides the image's command."""
    gpu: bool = False
    """Whether the container needs GPU devices."""
    health_path: str | None = None
    """An HTTP path that answers 2xx when the service is healthy."""
    volumes: list[str] = []
    """Paths inside the container that get named volumes."""
    cap_add: list[str] = []
    """Linux capabilities to add back after dropping all."""
    min_ram: int | None = None
    """Memory the service needs, in bytes."""
    min_disk: int | None = None
    """Free disk needed before pulling, in bytes."""
    reason: str = ""
    """Why this runs on this machine, in words a volunteer understands."""


ContainerState = Literal["pulling", "starting", "running", "unhealthy", "exited", "error"]
"""Where one assigned container stands on its worker."""


class ContainerReport(RequestModel):
    """How one assigned container is doing, as its worker sees it."""

    service: ShortText
    image: Annotated[str, Field(max_length=512)]
    state: ContainerState
    progress: Annotated[float, Field(ge=0, le=1)] | None = None
    """While pulling: the fraction downloaded, when the registry says the sizes."""
    bytes_done: Annotated[int, Field(ge=0)] | None = None
    bytes_total: Annotated[int, Field(ge=0)] | None = None
    message: Annotated[str, Field(max_length=1000)] | None = None
    """The last error or what is happening, in plain words."""
    restarts: Annotated[int, Field(ge=0)] = 0
    """How often the agent restarted it after it died."""


class RegisterRequest(RequestModel):
    """A worker asks to join the pool (or to re-join under the identity it already has)."""

    capabilities: WorkerCapabilities
    """What the machine offers."""
    protocol_version: Annotated[int, Field(ge=0, le=1_000_000)] | None = None
    """The agent's protocol version; absent from the seed agents, read as version 1."""
    worker_id: WorkerId | None = None
    """The identity this worker had before. Kept when the coordinator no longer knows it;
    when it does, the request must carry that worker's token."""
    name: ShortText | None = None
    """A display name for admins, usually the host name."""
    agent_version: ShortText | None = None
    """The agent software's version, for support."""
    enrollment_token: Annotated[str, Field(max_length=256)] | None = None
    """The pool's enrollment secret, required for new workers when the operator set one."""


class RegisterResponse(ResponseModel):
    """The coordinator accepted the worker."""

    status: Literal["registered"] = "registered"
    worker_id: WorkerId
    """The worker's identity; keep it across restarts."""
    worker_token: str
    """The worker's own secret, shown only here; send it as ``Authorization: Bearer``."""
    tier: Tier
    """The tier the hardware qualifies for."""
    tier_reason: str
    """Why this tier, in plain words."""
    assigned_containers: list[ServiceAssignment] = []
    """The services this worker should run."""
    heartbeat_interval: float
    """Seconds between heartbeats the coordinator expects."""
    next_heartbeat_in: float
    """Seconds until the first heartbeat (the interval with jitter)."""
    schedulability: Schedulability = "active"
    """Whether the worker may take work now."""
    protocol_version: int
    """The coordinator's protocol version."""


class HeartbeatRequest(RequestModel):
    """A worker says it is alive and how busy it is."""

    worker_id: WorkerId
    """The worker's identity; must match the token."""
    current_load: Annotated[
        float, Field(ge=0, validation_alias=AliasChoices("current_load", "load"))
    ] = 0.0
    """How busy the machine is, as a fraction of its CPU capacity (0.0 idle, 1.0 fully
    busy). The seed's ``load`` is read as this."""
    status: ShortText | None = None
    """The seed agents' free-text status, kept for display."""
    paused: bool = False
    """True while the volunteer has paused contribution: no new work should be routed."""
    containers: Annotated[list[ContainerReport], Field(max_length=64)] | None = None
    """The state of each assigned container; absent from agents that run none (the seed's)."""
    docker: DockerInfo | None = None
    """Docker's status now, when the agent reports it (it can stop and start at any time)."""

    @field_validator("current_load")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("current_load must be a finite number")
        return value


class HeartbeatResponse(ResponseModel):
    """The coordinator's answer to a heartbeat: what to run and when to call again."""

    status: Literal["ok"] = "ok"
    worker_id: WorkerId
    tier: Tier
    assigned_containers: list[ServiceAssignment] = []
    """The services this worker should run now."""
    heartbeat_interval: float
    """Seconds between heartbeats the coordinator expects."""
    next_heartbeat_in: float
    """Seconds until the next heartbeat (the interval with jitter)."""
    schedulability: Schedulability
    """Whether the worker may take work now."""
    protocol_version: int
    server_time: datetime
    """The coordinator's clock (UTC), for diagnosing skew."""


class UnregisterResponse(ResponseModel):
    """The worker has left the pool."""

    status: Literal["unregistered"] = "unregistered"
    worker_id: WorkerId


class HealthResponse(ResponseModel):
    """``GET /health``: the coordinator answers."""

    status: Literal["healthy"] = "healthy"
    version: str
    protocol_version: int


class ErrorResponse(ResponseModel):
    """Every 4xx/5xx answer: a sentence saying what was wrong, and a stable code."""

    detail: str
    """What went wrong and, where it helps, what to do."""
    code: str
    """A machine-readable reason, e.g. ``"unknown_worker"`` or ``"tier_requirements"``."""
