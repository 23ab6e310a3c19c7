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

from coordinator.admin.sessions import (
    CSRF_HEADER,
    SAFE_METHODS,
    SESSION_COOKIE,
    AdminSessionState,
    SessionStore,
    SignInThrottle,
    cross_site_reason,
    csrf_matches,
)
from coordinator.clock import Clock
from coordinator.errors import ApiError, unauthorized
from coordinator.liveness import LivenessMonitor
from coordinator.metrics import MetricsRegistry
from coordinator.placement.service import PlacementService
from coordinator.pool import PoolWatch
from coordinator.relay.api_keys import ApiKeyStore
from coordinator.relay.endpoint import Relay
from coordinator.security import bearer_token, tokens_match
from coordinator.settings import CoordinatorSettings
from coordinator.workers.enrollment import EnrollmentTokenStore
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
    enrollment: EnrollmentTokenStore
    relay: Relay
    metrics: MetricsRegistry
    admin_sessions: SessionStore
    sign_in_throttle: SignInThrottle
    pool: PoolWatch


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


def dashboard_session(request: Request, runtime: CoordinatorRuntime) -> AdminSessionState:
    """The request's signed-in dashboard session, checked against cross-site use.

    Raises:
        ApiError: 401 without a live session; 403 when the request comes from another site,
            or changes something without the session's CSRF token.
    """
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie is None:
        raise unauthorized(
            "Admin endpoints need 'Authorization: Bearer <admin token>' (RMA_ADMIN_TOKEN, or "
            "the admin-token file in the coordinator's data dir), or signing in on /admin.",
            "missing_token",
        )
    state = runtime.admin_sessions.find(cookie)
    if state is None:
        raise unauthorized(
            "Your dashboard session has ended: sign in again on /admin.", "session_expired"
        )
    headers = request.headers
    reason = cross_site_reason(
        headers.get("origin"), headers.get("sec-fetch-site"), headers.get("host")
    )
    if reason is not None:
        raise ApiError(403, "cross_site", f"Refused because {reason}.")
    if request.method not in SAFE_METHODS and not csrf_matches(headers.get(CSRF_HEADER), state):
        raise ApiError(
            403,
            "csrf_failed",
            "This change needs the dashboard's CSRF token in the X-CSRF-Token header; "
            "reload /admin and try again.",
        )
    return state


async def require_admin(
    request: Request, runtime: RuntimeDep, authorization: Annotated[str | None, Header()] = None
) -> None:
    """Let the request through with the admin token, or from a signed-in dashboard.

    A bearer token is checked first: scripts send it, browsers never add it by themselves,
    so it needs no CSRF check. Without one, the dashboard's session cookie is checked (see
    :func:`dashboard_session`).
    """
    if authorization is None:
        dashboard_session(request, runtime)
        return
    token = bearer_token(authorization)
    if token is None:
        raise unauthorized(
            "Admin endpoints need 'Authorization: Bearer <admin token>' (RMA_ADMIN_TOKEN, or "
            "the admin-token file in the coordinator's data dir).",
            "missing_token",
        )
    client = request.client.host if request.client is not None else "unknown"
    wait = runtime.sign_in_throttle.retry_after(client)
    if wait:
        raise too_many_attempts(wait)
    if not tokens_match(token, runtime.admin_token_hash):
        runtime.sign_in_throttle.failed(client)
        raise unauthorized("The admin token is not valid.", "bad_token")


def too_many_attempts(wait: int) -> ApiError:
    """The 429 for a client that sent too many wrong admin tokens."""
    return ApiError(
        429,
        "too_many_attempts",
        f"Too many wrong admin tokens from this address; try again in {wait} seconds.",
        headers={"Retry-After": str(wait)},
    )


AdminDep = Depends(require_admin)
