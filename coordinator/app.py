"""The coordinator's FastAPI app, built by :func:`create_app` from settings."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from coordinator import __version__
from coordinator.admin.router import router as admin_router
from coordinator.admin.session_router import router as session_router
from coordinator.admin.sessions import SessionStore, SignInThrottle
from coordinator.catalog import load_catalog
from coordinator.clock import Clock, system_clock
from coordinator.compression import CompressAdmin
from coordinator.dashboard.routes import router as dashboard_router
from coordinator.db import make_engine, migrate
from coordinator.errors import ApiError, install_error_handlers
from coordinator.liveness import LivenessMonitor
from coordinator.metrics import MetricsRegistry
from coordinator.placement.service import PlacementService
from coordinator.pool import PoolWatch
from coordinator.relay.api_keys import ApiKeyStore
from coordinator.relay.endpoint import (
    RELAY_OPENAPI,
    SERVICE_PREFIX,
    Relay,
    RelayLimits,
    RelayShortcut,
)
from coordinator.relay.hub import TunnelHub, TunnelTiming
from coordinator.relay.metrics import RelayMetrics
from coordinator.relay.transports import MAX_SEND_BODY, PollSessions, tunnel_routes
from coordinator.runtime import AdminDep, CoordinatorRuntime, RuntimeDep
from coordinator.security import hash_token, load_or_create_admin_token
from coordinator.settings import CoordinatorSettings
from coordinator.workers.enrollment import EnrollmentTokenStore
from coordinator.workers.heartbeats import HeartbeatWriter
from coordinator.workers.registry import WorkerRegistry
from coordinator.workers.router import (
    HEARTBEAT_MODELS,
    HEARTBEAT_OPENAPI,
    HEARTBEAT_PATH,
    heartbeat_route,
)
from coordinator.workers.router import router as worker_router
from shared import PROTOCOL_VERSION, ErrorResponse, HealthResponse, ResponseModel, ServiceCatalog
from shared.tunnel import SEND_PATH

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
"""No protocol message comes near 1 MiB; larger bodies are refused with a 413."""


class BodyTooLarge(HTTPException):
    """A request body grew past the limit while it was read (no or a false Content-Length)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is larger than {limit} bytes.")


class BodySizeLimit:
    """Refuse requests whose body is larger than ``limit`` with a 413.

    A declared (Content-Length) size over the limit is refused before the body is read; a
    body without one (chunked) is counted as it is read and refused once it passes the limit.
    """

    def __init__(
        self,
        app: ASGIApp,
        limit: int = MAX_BODY_BYTES,
        elsewhere: tuple[tuple[str, int | None], ...] = (),
    ) -> None:
        """Limit bodies to ``limit`` bytes, except under the prefixes in ``elsewhere``.

        Args:
            app: The app behind.
            limit: The limit for every path not in ``elsewhere``.
            elsewhere: Path prefixes with their own limit; None where the route enforces one.
        """
        self.app = app
        self.limit = limit
        self.elsewhere = elsewhere

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit: int | None = self.limit
        path: str = scope["path"]
        for prefix, own_limit in self.elsewhere:
            if path.startswith(prefix):
                limit = own_limit
                break
        if limit is None:
            await self.app(scope, receive, send)
            return
        await self._limited(scope, receive, send, limit)

    async def _limited(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        declared: int | None = None
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit():
                declared = int(value)
        if declared is not None and declared > limit:
            body = ErrorResponse(
                detail=f"The request body is larger than {limit} bytes.",
                code="too_large",
            ).model_dump_json()
            await send(
                {
                    "type": "http.response.start",
                    "status": 413,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": body.encode()})
            return
        if declared is not None:
            # The server frames the body by its declared length, so it cannot grow past it.
            await self.app(scope, receive, send)
            return
        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # An HTTPException, so the route's body parsing passes it on to the
                    # error handlers instead of turning it into a 400.
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, receive_within_limit, send)


def sweep_period(settings: CoordinatorSettings) -> float:
    """How often to look for silent workers: often enough to notice within an interval."""
    return max(0.1, min(settings.heartbeat_interval / 3, 10.0))


def _start_runtime(
    settings: CoordinatorSettings, clock: Clock, catalog: ServiceCatalog | None
) -> CoordinatorRuntime:
    if catalog is None:
        catalog = load_catalog(settings.catalog)
    log.info(
        "Service catalogue: %d services from %s",
        len(catalog.services),
        settings.catalog or "the built-in default",
    )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)
    migrate(engine)
    admin_token = (
        settings.admin_token.get_secret_value()
        if settings.admin_token is not None
        else load_or_create_admin_token(settings.data_dir)
    )
    started_at = clock()
    heartbeats = HeartbeatWriter(engine)
    placement = PlacementService(engine, catalog, clock, grace=settings.placement_grace)
    api_keys = ApiKeyStore(engine, clock)
    api_keys.load()
    enrollment = EnrollmentTokenStore(engine, clock, settings.enrollment_token)
    metrics = MetricsRegistry()
    hub = TunnelHub(
        TunnelTiming(keepalive=settings.tunnel_keepalive, dead_after=settings.tunnel_dead_after)
    )
    relay_metrics = RelayMetrics(hub, metrics)
    pool = PoolWatch(
        engine,
        clock,
        catalog,
        hub,
        relay_metrics,
        heartbeat_interval=settings.heartbeat_interval,
        history_interval=settings.history_interval,
    )
    pool.add_metrics(metrics)
    relay = Relay(
        hub=hub,
        catalog=catalog,
        identify_key=api_keys.identify,
        metrics=relay_metrics,
        limits=RelayLimits(
            max_body=settings.relay_max_body,
            attempts=settings.relay_attempts,
            head_timeout=settings.relay_head_timeout,
        ),
        sessions=PollSessions(),
    )
    return CoordinatorRuntime(
        settings=settings,
        engine=engine,
        clock=clock,
        started_at=started_at,
        admin_token_hash=hash_token(admin_token),
        registry=WorkerRegistry(engine, settings, clock, placement, enrollment),
        heartbeats=heartbeats,
        placement=placement,
        api_keys=api_keys,
        enrollment=enrollment,
        relay=relay,
        metrics=metrics,
        admin_sessions=SessionStore(
            clock,
            idle_timeout=settings.admin_session_idle,
            max_age=settings.admin_session_max_age,
        ),
        sign_in_throttle=SignInThrottle(clock),
        pool=pool,
        liveness=LivenessMonitor(
            engine,
            offline_after=settings.offline_after,
            retention=settings.retention_seconds,
            started_at=started_at,
            clock=clock,
        ),
    )


async def _sweep_forever(runtime: CoordinatorRuntime) -> None:
    """Every period: mark silent workers offline, then place services to match."""
    period = sweep_period(runtime.settings)
    while True:
        await asyncio.sleep(period)
        try:
            await asyncio.to_thread(runtime.liveness.sweep)
        except Exception:  # a failed sweep is retried next period; never kill the loop
            log.exception("Liveness sweep failed")
        await asyncio.to_thread(runtime.placement.run_after, "the liveness sweep")


def _document_plain_routes(app: FastAPI) -> None:
    """Add the heartbeat and relay routes, which FastAPI does not see, to the OpenAPI schema."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            schema["paths"][HEARTBEAT_PATH] = HEARTBEAT_OPENAPI
            schema["paths"][SERVICE_PREFIX + "{service}/{path}"] = RELAY_OPENAPI
            schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
            schemes["ApiKey"] = {
                "type": "http",
                "scheme": "bearer",
                "description": "A client API key an admin created (POST /api/admin/api-keys).",
            }
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in HEARTBEAT_MODELS:
                model_schema = model.model_json_schema(
                    ref_template="#/components/schemas/{model}",
                    mode="serialization" if issubclass(model, ResponseModel) else "validation",
                )
                components.update(model_schema.pop("$defs", {}))
                components.setdefault(model.__name__, model_schema)
        return app.openapi_schema or generate()

    # FastAPI's documented way to extend the schema: replace app.openapi.
    app.openapi = openapi  # type: ignore[method-assign]


def create_app(
    settings: CoordinatorSettings,
    *,
    clock: Clock = system_clock,
    catalog: ServiceCatalog | None = None,
) -> FastAPI:
    """Build the coordinator app. Nothing is opened until the app starts (lifespan).

    Args:
        settings: The coordinator's settings.
        clock: Where the time comes from (tests move it by hand).
        catalog: The services to place; by default loaded at start-up from
            ``settings.catalog`` (or the built-in catalogue). ``rma-coordinator`` loads it
            before it serves, so a bad file stops it with a plain message.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await asyncio.to_thread(_start_runtime, settings, clock, catalog)
        app.state.runtime = runtime
        # The catalogue may have changed since the last run: services it dropped go at once.
        await asyncio.to_thread(runtime.placement.run_after, "start-up")
        await runtime.heartbeats.start()
        runtime.relay.hub.start()
        runtime.pool.start()
        sweeper = asyncio.create_task(_sweep_forever(runtime), name="liveness-sweep")
        # What exists now (modules, the app, the engine) lives as long as the process: move
        # it out of the collector's sight so full collections stay short. Without this, full
        # collections paused request handling for ~95 ms at a time under heartbeat load
        # (bench/heartbeats.py); see https://docs.python.org/3/library/gc.html#gc.freeze
        gc.freeze()
        log.info(
            "Coordinator %s ready: heartbeat every %.1f s, offline after %.1f s",
            __version__,
            settings.heartbeat_interval,
            settings.offline_after,
        )
        try:
            yield
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            await runtime.pool.stop()
            await runtime.relay.hub.stop()
            await runtime.heartbeats.stop()
            runtime.engine.dispose()
            log.info("Coordinator stopped")

    app = FastAPI(
        title="RMA Compute Pool coordinator",
        version=__version__,
        summary="Registry, tiers and liveness of the volunteer compute pool.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, elsewhere=((SEND_PATH, MAX_SEND_BODY),))
    app.add_middleware(CompressAdmin)
    # Outermost: the relay takes end users' bodies up to its own (larger) limit itself.
    app.add_middleware(RelayShortcut)
    app.router.routes.append(heartbeat_route)
    app.router.routes.extend(tunnel_routes)
    app.include_router(worker_router)
    app.include_router(session_router)
    app.include_router(admin_router)
    app.include_router(dashboard_router)

    _document_plain_routes(app)

    @app.get(
        "/metrics",
        tags=["metrics"],
        dependencies=[AdminDep],
        response_class=PlainTextResponse,
        responses={401: {"model": ErrorResponse}},
    )
    async def metrics(runtime: RuntimeDep) -> PlainTextResponse:
        """The coordinator's figures in the Prometheus text format (needs the admin token).

        Workers by tier, liveness and schedulability; heartbeat lag; each service's replicas
        desired, placed, running and ready; relayed requests by service, status and outcome;
        their duration; retries; worker failures; open tunnels; requests in flight.
        """
        await runtime.pool.refresh()
        return PlainTextResponse(runtime.metrics.render(), media_type=MetricsRegistry.CONTENT_TYPE)

    @app.get("/health", tags=["health"])
    async def health() -> HealthResponse:
        """Whether the coordinator answers (no auth; for load balancers and agents)."""
        return HealthResponse(version=__version__, protocol_version=PROTOCOL_VERSION)

    return app


__all__ = ["ApiError", "create_app"]
