"""The admin API. Every route needs the admin token."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query
from sqlalchemy import text

from coordinator import __version__
from coordinator.admin.service import AdminService
from coordinator.clock import to_datetime
from coordinator.relay.hub import WorkerFlags
from coordinator.runtime import AdminDep, CoordinatorRuntime, RuntimeDep
from coordinator.workers.router import WorkerIdPath
from shared import (
    PROTOCOL_VERSION,
    AdminHealth,
    ErrorResponse,
    Liveness,
    PoolOverview,
    PoolStats,
    WorkerList,
)
from shared.admin import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyList,
    ApiKeyView,
    EnrollmentTokenCreate,
    EnrollmentTokenCreated,
    EnrollmentTokenList,
    EnrollmentTokenView,
    WorkerRemoved,
    WorkerView,
)

MAX_OFFSET = 2**63 - 1
"""The largest offset the databases take (a signed 64-bit integer, PostgreSQL's ``BIGINT``);
a larger one would fail in the driver with a 500 instead of a 422."""

router = APIRouter(
    prefix="/api/admin",
    tags=["admin"],
    dependencies=[AdminDep],
    responses={
        401: {"model": ErrorResponse},
        403: {"model": ErrorResponse, "description": "A dashboard request from another site"},
        404: {"model": ErrorResponse},
    },
)


def _routing_follows(runtime: CoordinatorRuntime, view: WorkerView) -> WorkerView:
    """The relay uses an admin's drain or trust change from the next request on."""
    flags = WorkerFlags(trusted=view.trusted, drained=view.schedulability == "drained")
    runtime.relay.hub.set_flags(view.worker_id, flags)
    return view


@router.get("/workers")
def list_workers(
    runtime: RuntimeDep,
    status: Liveness | None = None,
    tier: Annotated[int | None, Query(ge=1, le=3)] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> WorkerList:
    """Registered workers, optionally only ``online``/``offline`` ones or one tier."""
    return AdminService(runtime.engine, runtime.placement).list_workers(
        status=status, tier=tier, limit=limit, offset=offset
    )


@router.get("/workers/{worker_id}")
def get_worker(worker_id: WorkerIdPath, runtime: RuntimeDep) -> WorkerView:
    """One worker."""
    return AdminService(runtime.engine, runtime.placement).get_worker(worker_id)


@router.post("/workers/{worker_id}/drain")
def drain_worker(worker_id: WorkerIdPath, runtime: RuntimeDep) -> WorkerView:
    """Give this worker no new work until it is undrained (its owner cannot override it)."""
    return _routing_follows(
        runtime,
        AdminService(runtime.engine, runtime.placement).set_drained(worker_id, drained=True),
    )


@router.post("/workers/{worker_id}/undrain")
def undrain_worker(worker_id: WorkerIdPath, runtime: RuntimeDep) -> WorkerView:
    """Let a drained worker take work again."""
    return _routing_follows(
        runtime,
        AdminService(runtime.engine, runtime.placement).set_drained(worker_id, drained=False),
    )


@router.post("/workers/{worker_id}/trust")
def trust_worker(worker_id: WorkerIdPath, runtime: RuntimeDep) -> WorkerView:
    """Trust this worker with services marked ``sensitive`` (people's personal data)."""
    return _routing_follows(
        runtime,
        AdminService(runtime.engine, runtime.placement).set_trusted(worker_id, trusted=True),
    )


@router.post("/workers/{worker_id}/untrust")
def untrust_worker(worker_id: WorkerIdPath, runtime: RuntimeDep) -> WorkerView:
    """Stop trusting this worker; its sensitive services are taken away at once."""
    return _routing_follows(
        runtime,
        AdminService(runtime.engine, runtime.placement).set_trusted(worker_id, trusted=False),
    )


@router.delete("/workers/{worker_id}")
async def remove_worker(worker_id: WorkerIdPath, runtime: RuntimeDep) -> WorkerRemoved:
    """Remove a worker from the registry: its services move elsewhere and its tunnel closes.

    A machine that is still running joins again on its own unless it can no longer enroll:
    to keep it out, revoke the enrollment token it joined with.
    """
    service = AdminService(runtime.engine, runtime.placement)
    answer = await asyncio.to_thread(service.remove_worker, worker_id)
    runtime.relay.hub.close(worker_id, "an admin removed the worker")
    return answer


ApiKeyIdPath = Annotated[uuid.UUID, Path(description="The key's id, from the list of keys")]


@router.post("/api-keys", status_code=201, responses={422: {"model": ErrorResponse}})
def create_api_key(body: ApiKeyCreate, runtime: RuntimeDep) -> ApiKeyCreated:
    """Create a client API key for end users of the relay (``Authorization: Bearer <key>``).

    The key is in this answer only: the coordinator keeps just its hash, so it can never be
    shown again. Store it now; a lost key is revoked and replaced by a new one.
    """
    return runtime.api_keys.create(body.name)


@router.get("/api-keys")
def list_api_keys(runtime: RuntimeDep) -> ApiKeyList:
    """Every client API key, newest first, revoked ones included.

    The keys themselves are never listed (they are shown only once, when created): each is
    shown by its id, name and prefix (its first characters).
    """
    return runtime.api_keys.list()


@router.delete("/api-keys/{key_id}", responses={422: {"model": ErrorResponse}})
def revoke_api_key(key_id: ApiKeyIdPath, runtime: RuntimeDep) -> ApiKeyView:
    """Revoke a client API key: the relay refuses it from now on.

    Revoking it again is harmless. A revoked key cannot be restored; create a new one.
    """
    return runtime.api_keys.revoke(str(key_id))


EnrollmentTokenIdPath = Annotated[
    uuid.UUID, Path(description="The token's id, from the list of enrollment tokens")
]


@router.post("/enrollment-tokens", status_code=201, responses={422: {"model": ErrorResponse}})
def create_enrollment_token(
    body: EnrollmentTokenCreate, runtime: RuntimeDep
) -> EnrollmentTokenCreated:
    """Create an enrollment token, which lets new machines join the pool.

    Volunteers pass it to their agent (``--enrollment-token``) the first time it joins. The
    token is in this answer only: the coordinator keeps just its hash, so it can never be
    shown again. From the first token on, every new machine needs one.
    """
    return runtime.enrollment.create(body.name)


@router.get("/enrollment-tokens")
def list_enrollment_tokens(runtime: RuntimeDep) -> EnrollmentTokenList:
    """Every enrollment token, newest first, revoked ones included, and the pool's rule.

    The tokens themselves are never listed (they are shown only once, when created): each
    is shown by its id, name and prefix, with how many machines joined with it and when
    one last did. ``required`` says whether new machines need a token now.
    """
    return runtime.enrollment.list()


@router.delete("/enrollment-tokens/{token_id}", responses={422: {"model": ErrorResponse}})
def revoke_enrollment_token(
    token_id: EnrollmentTokenIdPath, runtime: RuntimeDep
) -> EnrollmentTokenView:
    """Revoke an enrollment token: no new machine can join with it from now on.

    Machines that already joined with it stay in the pool. Revoking it again is harmless;
    revoking every token closes the pool to new machines rather than opening it.
    """
    return runtime.enrollment.revoke(str(token_id))


@router.get("/overview")
async def overview(runtime: RuntimeDep) -> PoolOverview:
    """The pool at a glance, as the dashboard shows it.

    Workers by liveness and tier; each service's replicas desired, placed (assigned),
    running (reported by online workers) and ready (routable now); the relay's requests and
    errors; and the last hour, sampled every ``history_interval_seconds`` since this
    coordinator started.
    """
    required = await asyncio.to_thread(runtime.enrollment.required)
    return await runtime.pool.overview(enrollment_required=required)


@router.get("/stats")
def stats(runtime: RuntimeDep) -> PoolStats:
    """Counts of workers: total, online, active, by tier."""
    return AdminService(runtime.engine, runtime.placement).stats()


@router.get("/health")
def admin_health(runtime: RuntimeDep) -> AdminHealth:
    """The coordinator's own health: database, uptime, liveness sweeps."""
    try:
        with runtime.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        database = "ok"
        online = AdminService(runtime.engine, runtime.placement).count_online()
    except Exception as exc:  # report, don't fail: this endpoint exists to say what is wrong
        database = f"unreachable: {type(exc).__name__}: {exc}"
        online = 0
    last_sweep = runtime.liveness.last_sweep
    return AdminHealth(
        status="healthy" if database == "ok" else "degraded",
        version=__version__,
        protocol_version=PROTOCOL_VERSION,
        database=database,
        uptime_seconds=round(runtime.clock() - runtime.started_at, 3),
        heartbeat_interval=runtime.settings.heartbeat_interval,
        online_workers=online,
        last_liveness_sweep=to_datetime(last_sweep) if last_sweep is not None else None,
    )
