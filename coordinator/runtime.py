"""What a running coordinator holds, and the dependencies routes use to reach it.

The dependencies are ``async def`` although they do no I/O: FastAPI runs plain ``def``
dependencies in its thread pool, a round trip per dependency per request that cost the
heartbeat route more than all its own work (bench/heartbeats.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy import Engine

from coordinator.clock import Clock
from coordinator.errors import unauthorized
from coordinator.liveness import LivenessMonitor
from coordinator.metrics import MetricsRegistry
from coordinator.placement.service import PlacementService
from coordinator.relay.api_keys import ApiKeyStore
from coordinator.relay.endpoint import Relay
from coordinator.security import bearer_token, tokens_match
from coordinator.settings import CoordinatorSettings
from coordinator.workers.heartbeats import HeartbeatWriter
from coordinator.workers.registry import WorkerRegistry


@dataclass
class CoordinatorRuntime:
    """The coordinator's live parts, built at start-up and closed at shutdown."""

    settings: CoordinatorSettings
    engine: Engine
    clock: Clock
    started_at: float
    admin_token_hash: str
    registry: WorkerRegistry
    heartbeats: HeartbeatWriter
    liveness: LivenessMonitor
    placement: PlacementService
    api_keys: ApiKeyStore
    relay: Relay
    metrics: MetricsRegistry


def get_runtime_of(request: Request) -> CoordinatorRuntime:
    """The runtime of the app serving this request."""
    runtime: CoordinatorRuntime = request.app.state.runtime
    return runtime


async def get_runtime(request: Request) -> CoordinatorRuntime:
    """The runtime, as a dependency."""
    return get_runtime_of(request)


RuntimeDep = Annotated[CoordinatorRuntime, Depends(get_runtime)]


def require_worker_token(authorization: str | None) -> str:
    """The worker's own token from an ``Authorization: Bearer`` header; 401 without one."""
    token = bearer_token(authorization)
    if token is None:
        raise unauthorized(
            "This call needs the worker's token: send 'Authorization: Bearer <worker_token>' "
            "with the token the coordinator gave at registration.",
            "missing_token",
        )
    return token


async def worker_token(authorization: Annotated[str | None, Header()] = None) -> str:
    """The worker's own token, as a dependency."""
    return require_worker_token(authorization)


WorkerTokenDep = Annotated[str, Depends(worker_token)]


async def optional_bearer(authorization: Annotated[str | None, Header()] = None) -> str | None:
    """A bearer token if the request has one."""
    return bearer_token(authorization)


OptionalBearerDep = Annotated[str | None, Depends(optional_bearer)]


async def require_admin(
    runtime: RuntimeDep, authorization: Annotated[str | None, Header()] = None
) -> None:
    """Let the request through only with the admin token."""
    token = bearer_token(authorization)
    if token is None:
        raise unauthorized(
            "Admin endpoints need 'Authorization: Bearer <admin token>' (RMA_ADMIN_TOKEN, or "
            "the admin-token file in the coordinator's data dir).",
            "missing_token",
        )
    if not tokens_match(token, runtime.admin_token_hash):
        raise unauthorized("The admin token is not valid.", "bad_token")


AdminDep = Depends(require_admin)
