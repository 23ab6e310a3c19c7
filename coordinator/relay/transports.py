"""The routes workers open their tunnels on: a WebSocket, or the long-poll fallback.

Both authenticate the worker by its own token (``Authorization: Bearer``) and hand frames
to the same :class:`~coordinator.relay.tunnels.Tunnel`; see ``shared/tunnel.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine, select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from coordinator.db.schema import WORKERS
from coordinator.errors import ApiError, unauthorized
from coordinator.relay.hub import TunnelHub, WorkerFlags
from coordinator.relay.tunnels import Tunnel, TunnelGone
from coordinator.runtime import get_runtime_of
from coordinator.security import bearer_token, hash_token
from shared import ErrorResponse
from shared.tunnel import (
    FRAMES_MEDIA_TYPE,
    POLL_PATH,
    SEND_PATH,
    SESSION_HEADER,
    TUNNEL_PATH,
    TUNNEL_STREAM,
    FrameType,
    TunnelFrameError,
    encode_frame,
    pack_frames,
    unpack_frames,
)

log = logging.getLogger(__name__)

MAX_SEND_BODY = 8 * 1024 * 1024
"""The largest long-poll send a worker may post (its frames within their streams' credit)."""


@dataclass(frozen=True)
class TunnelWorker:
    """The worker a tunnel call authenticated as."""

    worker_id: str
    token_hash: str
    flags: WorkerFlags


def find_worker(engine: Engine, token_hash: str) -> TunnelWorker | None:
    """The worker whose token hashes to ``token_hash``, with its admin flags."""
    query = select(WORKERS.c.id, WORKERS.c.trusted, WORKERS.c.drained).where(
        WORKERS.c.token_hash == token_hash
    )
    with engine.connect() as connection:
        row = connection.execute(query).first()
    if row is None:
        return None
    return TunnelWorker(row.id, token_hash, WorkerFlags(trusted=row.trusted, drained=row.drained))


async def _authenticate(engine: Engine, authorization: str | None) -> TunnelWorker:
    token = bearer_token(authorization)
    if token is None:
        raise unauthorized(
            "A tunnel needs the worker's token: send 'Authorization: Bearer <worker_token>'.",
            "missing_token",
        )
    worker = await asyncio.to_thread(find_worker, engine, hash_token(token))
    if worker is None:
        raise unauthorized(
            "No registered worker has this token; register again, then open the tunnel.",
            "bad_token",
        )
    return worker


async def _confirm_after_open(engine: Engine, hub: TunnelHub, worker: TunnelWorker) -> None:
    """Apply what changed between the tunnel's authentication and its opening.

    An admin may have removed the worker, or drained or untrusted it, while the tunnel was
    being opened: the hub then holds a tunnel (or flags) read before the change, which the
    admin's call could not reach. Reading the worker again after the hub has the tunnel
    closes that gap.
    """
    current = await asyncio.to_thread(find_worker, engine, worker.token_hash)
    if current is None or current.worker_id != worker.worker_id:
        hub.close(worker.worker_id, "the worker is no longer registered")
    elif current.flags != worker.flags:
        hub.set_flags(worker.worker_id, current.flags)


def _error_response(error: ApiError) -> JSONResponse:
    body = ErrorResponse(detail=error.detail, code=error.code).model_dump()
    return JSONResponse(body, status_code=error.status_code, headers=error.headers)


# -- WebSocket ---------------------------------------------------------------------------------


class _WebSocketSender:
    def __init__(self, websocket: WebSocket) -> None:
        self._websocket = websocket
        self._closing: asyncio.Task[None] | None = None

    async def send(self, frame: bytes) -> None:
        await self._websocket.send_bytes(frame)

    def close(self) -> None:
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close())

    async def _close(self) -> None:
        with contextlib.suppress(Exception):  # already closed by the worker: nothing to do
            await self._websocket.close()


async def tunnel_websocket(websocket: WebSocket) -> None:
    """A worker's tunnel over a WebSocket: one binary message per frame."""
    runtime = get_runtime_of(websocket)  # type: ignore[arg-type]
    try:
        worker = await _authenticate(runtime.engine, websocket.headers.get("authorization"))
    except ApiError as error:
        await websocket.send_denial_response(_error_response(error))
        return
    await websocket.accept()
    hub: TunnelHub = runtime.relay.hub
    sender = _WebSocketSender(websocket)
    try:
        tunnel = await hub.open(worker.worker_id, "websocket", sender, worker.flags)
        await _confirm_after_open(runtime.engine, hub, worker)
    except TunnelGone:
        return
    reason = "the worker closed it"
    try:
        while not tunnel.closed:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            data = message.get("bytes")
            if data is None:
                reason = "the worker sent text, not frames"
                break
            tunnel.receive(data)
    except Exception as exc:  # the connection broke under us
        reason = f"the connection broke ({type(exc).__name__})"
    finally:
        tunnel.close(reason)


# -- long-poll ---------------------------------------------------------------------------------


class PollSession:
    """A long-poll tunnel: frames wait in an outbox until the worker's next poll takes them."""

    def __init__(self, session_id: str, worker: TunnelWorker) -> None:
        self.id = session_id
        self.worker = worker
        self.tunnel: Tunnel | None = None
        self._outbox: list[bytes] = []
        self._ready = asyncio.Event()
        self.closed = False
        self.on_close: Callable[[], None] | None = None

    async def send(self, frame: bytes) -> None:
        """Queue a frame for the next poll."""
        if self.closed:
            raise TunnelGone("the long-poll session ended")
        self._outbox.append(frame)
        self._ready.set()

    def close(self) -> None:
        """End the session: it is forgotten, and the next poll gets a 410."""
        self.closed = True
        self._outbox.clear()
        self._ready.set()
        if self.on_close is not None:
            self.on_close()

    async def take(self, wait: float) -> list[bytes]:
        """The frames waiting, after up to ``wait`` seconds for the first one."""
        if not self._outbox and not self.closed:
            self._ready.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), wait)
        frames, self._outbox = self._outbox, []
        return frames


class PollSessions:
    """The open long-poll sessions, by id."""

    def __init__(self) -> None:
        self._sessions: dict[str, PollSession] = {}

    def add(self, session: PollSession) -> None:
        """Keep a new session, until it closes."""
        self._sessions[session.id] = session
        session.on_close = lambda: self.discard(session)

    def get(self, session_id: str | None, worker: str) -> PollSession:
        """The open session ``session_id`` of the worker whose token hash is ``worker``."""
        session = self._sessions.get(session_id or "")
        if session is None or session.closed:
            self._sessions.pop(session_id or "", None)
            raise ApiError(410, "tunnel_closed", "This tunnel session is closed; open a new one.")
        if not secrets.compare_digest(session.worker.token_hash, worker):
            raise unauthorized("This token does not own the tunnel session.", "bad_token")
        return session

    def discard(self, session: PollSession) -> None:
        """Forget a closed session."""
        if self._sessions.get(session.id) is session:
            del self._sessions[session.id]


def _token_hash(request: Request) -> str:
    token = bearer_token(request.headers.get("authorization"))
    if token is None:
        raise unauthorized(
            "A tunnel needs the worker's token: send 'Authorization: Bearer <worker_token>'.",
            "missing_token",
        )
    return hash_token(token)


async def tunnel_poll(request: Request) -> Response:
    """Long-poll: the frames waiting for the worker (a new session when none is named)."""
    runtime = get_runtime_of(request)
    relay = runtime.relay
    try:
        session_id = request.headers.get(SESSION_HEADER)
        if session_id is None:
            worker = await _authenticate(runtime.engine, request.headers.get("authorization"))
            session = PollSession(secrets.token_urlsafe(16), worker)
            relay.sessions.add(session)
            tunnel = await relay.hub.open(
                worker.worker_id, "long-poll", session, worker.flags, session=session.id
            )
            session.tunnel = tunnel
            await _confirm_after_open(runtime.engine, relay.hub, worker)
            frames = await session.take(0)
        else:
            session = relay.sessions.get(session_id, _token_hash(request))
            assert session.tunnel is not None
            session.tunnel.heard()
            frames = await session.take(relay.hub.timing.keepalive)
            if session.closed and not frames:
                relay.sessions.discard(session)
                raise ApiError(410, "tunnel_closed", "This tunnel session is closed.")
    except ApiError as error:
        return _error_response(error)
    if not frames:
        frames = [encode_frame(FrameType.PING, TUNNEL_STREAM)]
    return Response(pack_frames(frames), media_type=FRAMES_MEDIA_TYPE)


async def tunnel_send(request: Request) -> Response:
    """Long-poll: the worker's frames for the coordinator."""
    runtime = get_runtime_of(request)
    relay = runtime.relay
    try:
        session = relay.sessions.get(request.headers.get(SESSION_HEADER), _token_hash(request))
        tunnel = session.tunnel
        assert tunnel is not None
        body = await request.body()
        if len(body) > MAX_SEND_BODY:
            raise ApiError(
                413, "too_large", f"Send at most {MAX_SEND_BODY} bytes of frames at a time."
            )
        try:
            frames = list(unpack_frames(body))
        except TunnelFrameError as exc:
            tunnel.close(f"it sent a malformed long-poll body ({exc})")
            raise ApiError(400, "bad_frames", f"The body is not tunnel frames: {exc}.") from exc
        for frame in frames:
            tunnel.receive(frame)
        tunnel.heard()
    except ApiError as error:
        return _error_response(error)
    return Response(status_code=204)


tunnel_routes = [
    WebSocketRoute(TUNNEL_PATH, tunnel_websocket, name="tunnel"),
    Route(POLL_PATH, tunnel_poll, methods=["POST"], name="tunnel-poll"),
    Route(SEND_PATH, tunnel_send, methods=["POST"], name="tunnel-send"),
]
"""Added to the app beside the worker API."""
