"""The worker API: register, heartbeat, unregister."""

from __future__ import annotations

import asyncio
import inspect
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.routing import Route

from coordinator.clock import to_datetime
from coordinator.errors import ApiError, unauthorized
from coordinator.runtime import (
    OptionalBearerDep,
    RuntimeDep,
    WorkerTokenDep,
    get_runtime_of,
    require_worker_token,
)
from coordinator.security import hash_token
from coordinator.workers.heartbeats import HeartbeatAccepted, HeartbeatRecord, HeartbeatRefused
from coordinator.workers.registry import next_heartbeat_in
from shared import (
    PROTOCOL_VERSION,
    ContainerReport,
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

_CONTAINER_REPORTS = TypeAdapter(list[ContainerReport])
"""Serialises a heartbeat's container reports to JSON in one call, for storage."""

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


async def heartbeat(request: Request) -> Response:
    """Report that the worker is alive; the answer says what to run and when to call next.

    The body is a ``HeartbeatRequest``, sent with ``Authorization: Bearer <worker_token>``;
    the answer a ``HeartbeatResponse``.
    """
    # The hottest route: every worker, every interval. It is a plain Starlette route that
    # reads and writes JSON with pydantic directly, because FastAPI's parameter solving and
    # generic body and response handling cost more than the route's own work
    # (bench/heartbeats.py). Errors go through the same handlers as every route, and
    # HEARTBEAT_OPENAPI documents it with the same models.
    runtime = get_runtime_of(request)
    token = require_worker_token(request.headers.get("authorization"))
    try:
        body = HeartbeatRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        ) from exc
    now = runtime.clock()
    outcome = await runtime.heartbeats.record(
        HeartbeatRecord(
            worker_id=body.worker_id,
            token_hash=hash_token(token),
            load=body.current_load,
            reported_status=body.status,
            paused=body.paused,
            received_at=now,
            containers_json=(
                _CONTAINER_REPORTS.dump_json(body.containers).decode()
                if body.containers is not None
                else None
            ),
            docker_json=body.docker.model_dump_json() if body.docker is not None else None,
        )
    )
    if isinstance(outcome, HeartbeatAccepted):
        interval = runtime.settings.heartbeat_interval
        # Every value below is the coordinator's own; validating them again costs a
        # measurable share of this route, so the model is constructed as it is.
        answer = HeartbeatResponse.model_construct(
            worker_id=body.worker_id,
            tier=outcome.tier,
            assigned_containers=runtime.placement.assignments_for(outcome.tier, outcome.services),
            heartbeat_interval=interval,
            next_heartbeat_in=next_heartbeat_in(interval),
            schedulability=outcome.schedulability,
            protocol_version=PROTOCOL_VERSION,
            server_time=to_datetime(now),
        )
        return Response(answer.model_dump_json(), media_type="application/json")
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
async def unregister(
    worker_id: WorkerIdPath, runtime: RuntimeDep, token: WorkerTokenDep
) -> UnregisterResponse:
    """Leave the pool. A worker can only unregister itself; its tunnel closes."""
    answer = await asyncio.to_thread(runtime.registry.unregister, worker_id, token)
    runtime.relay.hub.close(worker_id, "the worker left the pool")
    return answer


HEARTBEAT_PATH = "/api/worker/heartbeat"

heartbeat_route = Route(HEARTBEAT_PATH, heartbeat, methods=["POST"], name="heartbeat")
"""Added to the app beside :data:`router`."""


def _json_body(schema_name: str, description: str) -> dict[str, Any]:
    reference = {"$ref": f"#/components/schemas/{schema_name}"}
    return {"description": description, "content": {"application/json": {"schema": reference}}}


HEARTBEAT_OPENAPI: dict[str, Any] = {
    "post": {
        "tags": ["worker"],
        "summary": "Heartbeat",
        "description": inspect.cleandoc(heartbeat.__doc__ or ""),
        "operationId": "heartbeat_api_worker_heartbeat_post",
        "requestBody": {"required": True, **_json_body("HeartbeatRequest", "The heartbeat")},
        "responses": {
            "200": _json_body("HeartbeatResponse", "Recorded"),
            "401": _json_body("ErrorResponse", "No token, or not this worker's token"),
            "403": _json_body("ErrorResponse", "Another worker's token"),
            "404": _json_body("ErrorResponse", "Unknown worker: register again"),
            "422": _json_body("ErrorResponse", "Invalid body"),
        },
    }
}
"""The OpenAPI operation of :data:`heartbeat_route`, which FastAPI cannot see."""

HEARTBEAT_MODELS: tuple[type[BaseModel], ...] = (HeartbeatRequest, HeartbeatResponse, ErrorResponse)
"""The models :data:`HEARTBEAT_OPENAPI` refers to."""
