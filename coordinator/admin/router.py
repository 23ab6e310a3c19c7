"""The admin API. Every route needs the admin token."""

from __future__ import annotations

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
from shared import PROTOCOL_VERSION, AdminHealth, ErrorResponse, Liveness, PoolStats, WorkerList
from shared.admin import ApiKeyCreate, ApiKeyCreated, ApiKeyList, ApiKeyView, WorkerView

MAX_OFFSET = 2**63 - 1
"""The largest offset the databases take (a signed 64-bit integer, PostgreSQL's ``BIGINT``);
a larger one would fail in the driver with a 500 instead of a 422."""

router = APIRouter(
    prefix="/api/admin",
    tags=["admin"],
    dependencies=[AdminDep],
    responses={401: {"model": ErrorResponse}, 404: {"model": ErrorResponse}},
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
