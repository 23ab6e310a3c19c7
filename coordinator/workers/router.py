"""The worker API: register, heartbeat, unregister."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from coordinator.clock import to_datetime
from coordinator.errors import ApiError, unauthorized
from coordinator.runtime import OptionalBearerDep, RuntimeDep, WorkerTokenDep
from coordinator.security import hash_token
from coordinator.workers.heartbeats import HeartbeatAccepted, HeartbeatRecord, HeartbeatRefused
from coordinator.workers.registry import next_heartbeat_in
from shared import (
    PROTOCOL_VERSION,
    ErrorResponse,
    HeartbeatRequest,
    HeartbeatResponse,
    RegisterRequest,
    RegisterResponse,
    UnregisterResponse,
)
from shared.base import WorkerId

router = APIRouter(prefix="/api/worker", tags=["worker"])

WorkerIdPath = Annotated[WorkerId, Path(description="The worker's id")]

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse},
    403: {"model": ErrorResponse},
    404: {"model": ErrorResponse},
    409: {"model": ErrorResponse},
    422: {"model": ErrorResponse},
    426: {"model": ErrorResponse},
}


@router.post("/register", responses=_ERRORS)
def register(
    body: RegisterRequest, runtime: RuntimeDep, token: OptionalBearerDep
) -> RegisterResponse:
    """Join the pool, or re-join under an existing ``worker_id`` (with its token)."""
    return runtime.registry.register(body, token)


@router.post("/heartbeat", responses=_ERRORS)
async def heartbeat(
    body: HeartbeatRequest, runtime: RuntimeDep, token: WorkerTokenDep
) -> HeartbeatResponse:
    """Report that the worker is alive; the answer says what to run and when to call next."""
    now = runtime.clock()
    outcome = await runtime.heartbeats.record(
        HeartbeatRecord(
            worker_id=body.worker_id,
            token_hash=hash_token(token),
            load=body.current_load,
            reported_status=body.status,
            paused=body.paused,
            received_at=now,
        )
    )
    if isinstance(outcome, HeartbeatAccepted):
        interval = runtime.settings.heartbeat_interval
        return HeartbeatResponse(
            worker_id=body.worker_id,
            tier=outcome.tier,
            assigned_containers=[],
            heartbeat_interval=interval,
            next_heartbeat_in=next_heartbeat_in(interval),
            schedulability=outcome.schedulability,
            protocol_version=PROTOCOL_VERSION,
            server_time=to_datetime(now),
        )
    if outcome is HeartbeatRefused.UNKNOWN_WORKER:
        raise ApiError(
            404,
            "unknown_worker",
            f"The coordinator does not know worker {body.worker_id}; register again.",
        )
    if outcome is HeartbeatRefused.NOT_THIS_WORKER:
        raise ApiError(
            403, "not_this_worker", f"This token belongs to another worker, not {body.worker_id}."
        )
    raise unauthorized(f"The token is not valid for worker {body.worker_id}.", "bad_token")


@router.delete("/unregister/{worker_id}", responses=_ERRORS)
def unregister(
    worker_id: WorkerIdPath, runtime: RuntimeDep, token: WorkerTokenDep
) -> UnregisterResponse:
    """Leave the pool. A worker can only unregister itself."""
    return runtime.registry.unregister(worker_id, token)
