"""The edges of the relay tunnel, for its tests: a coordinator that speaks the tunnel
protocol, a container that answers HTTP, and a runtime that only knows addresses.

Both servers are real (uvicorn on loopback ports, in threads of the test process); the
test thread drives the coordinator's end frame by frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from desktop_app.agent.identity import WorkerIdentity
from desktop_app.agent.relay import RelayTunnel
from shared import (
    PROTOCOL_VERSION,
    HeartbeatRequest,
    HeartbeatResponse,
    RegisterResponse,
    ServiceAssignment,
    UnregisterResponse,
)
from shared.tunnel import (
    MAX_BODY_CHUNK,
    POLL_PATH,
    SEND_PATH,
    SESSION_HEADER,
    TUNNEL_PATH,
    TUNNEL_STREAM,
    FrameType,
    RelayFailure,
    RelayRequestHead,
    RelayResponseHead,
    TunnelHello,
    TunnelState,
    decode_frame,
    decode_window,
    encode_frame,
    encode_window,
    pack_frames,
    unpack_frames,
)
from tests.fixtures.coordinator import free_port, wait_until

T = TypeVar("T")
POLL_HOLD = 0.2
TOKEN = "worker-token"
WORKER_ID = "0b7e3f2a-5c1d-4e8f-9a6b-2d4c8e1f3a5b"


class Server:
    """An ASGI app served by uvicorn on a free loopback port, in a thread."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()
        wait_until(lambda: self._server.started, 5, "the server to start")

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(5)


@dataclass(frozen=True)
class Frame:
    kind: FrameType
    stream: int
    payload: bytes


@dataclass
class Answer:
    """What the worker sent back on one stream."""

    head: RelayResponseHead | None = None
    body: bytes = b""
    failure: RelayFailure | None = None
    ended: bool = False


class PeerTunnel:
    """The coordinator's end of one tunnel: what the worker sent, and a way to send."""

    def __init__(
        self, transport: str, loop: asyncio.AbstractEventLoop, *, auto_window: bool
    ) -> None:
        self.transport = transport
        self.auto_window = auto_window
        self.muted = False
        """Neither reads nor sends any more (a coordinator that hangs)."""
        self.closed = False
        self.session = str(uuid.uuid4())
        self.outbound: asyncio.Queue[bytes] = asyncio.Queue()
        self.polls_outstanding = 0
        self.most_polls_outstanding = 0
        self._loop = loop
        self._frames: list[Frame] = []
        self._changed = threading.Condition()

    # -- the server's side ----------------------------------------------------------------

    def record(self, data: bytes) -> None:
        frame = Frame(*decode_frame(data))
        if self.auto_window and frame.kind == FrameType.RESPONSE_BODY:
            self.outbound.put_nowait(encode_window(frame.stream, len(frame.payload)))
        with self._changed:
            self._frames.append(frame)
            self._changed.notify_all()

    def mark_closed(self) -> None:
        with self._changed:
            self.closed = True
            self._changed.notify_all()

    # -- the test's side (thread-safe) ----------------------------------------------------

    def send(self, frame: bytes) -> None:
        self._loop.call_soon_threadsafe(self.outbound.put_nowait, frame)

    def request(
        self,
        stream: int,
        method: str,
        target: str,
        *,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
        service: str = "web",
        end: bool = True,
        body_length: int | None = None,
    ) -> None:
        head = RelayRequestHead(
            service=service,
            method=method,
            target=target,
            headers=headers or [],
            body_length=len(body) if body_length is None else body_length,
        )
        self.send(encode_frame(FrameType.REQUEST, stream, head.model_dump_json().encode()))
        for offset in range(0, len(body), MAX_BODY_CHUNK):
            piece = body[offset : offset + MAX_BODY_CHUNK]
            self.send(encode_frame(FrameType.REQUEST_BODY, stream, piece))
        if end:
            self.send(encode_frame(FrameType.REQUEST_END, stream))

    def frames(self, kind: FrameType | None = None, stream: int | None = None) -> list[Frame]:
        with self._changed:
            return [
                frame
                for frame in self._frames
                if (kind is None or frame.kind == kind)
                and (stream is None or frame.stream == stream)
            ]

    def wait_for(self, predicate: Callable[[], T | None], what: str, timeout: float = 3) -> T:
        with self._changed:
            result: T | None = None

            def check() -> bool:
                nonlocal result
                result = predicate()
                return bool(result)

            if not self._changed.wait_for(check, timeout):
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            assert result is not None
            return result

    def states(self) -> list[TunnelState]:
        return [
            TunnelState.model_validate_json(frame.payload)
            for frame in self.frames(FrameType.STATE, TUNNEL_STREAM)
        ]

    def answer_so_far(self, stream: int) -> Answer:
        answer = Answer()
        for frame in self.frames(stream=stream):
            if frame.kind == FrameType.RESPONSE:
                answer.head = RelayResponseHead.model_validate_json(frame.payload)
            elif frame.kind == FrameType.RESPONSE_BODY:
                answer.body += frame.payload
            elif frame.kind == FrameType.RESPONSE_END:
                answer.ended = True
            elif frame.kind == FrameType.FAILED:
                answer.failure = RelayFailure.model_validate_json(frame.payload)
        return answer

    def answer(self, stream: int, timeout: float = 3) -> Answer:
        """The complete answer on ``stream``: up to ``RESPONSE_END`` or ``FAILED``."""

        def complete() -> Answer | None:
            answer = self.answer_so_far(stream)
            return answer if answer.ended or answer.failure is not None else None

        return self.wait_for(complete, f"the answer on stream {stream}", timeout)

    def body_received(self, stream: int) -> int:
        return sum(len(f.payload) for f in self.frames(FrameType.RESPONSE_BODY, stream))

    def windows(self, stream: int) -> list[int]:
        return [decode_window(f.payload) for f in self.frames(FrameType.WINDOW, stream)]


class CoordinatorStandIn:
    """Speaks the tunnel protocol on both transports, as the coordinator would."""

    def __init__(
        self,
        *,
        keepalive: float = 30.0,
        dead_after: float = 60.0,
        initial_window: int = 1024 * 1024,
        refuse_websocket: int | None = None,
        auto_window: bool = True,
        ping_every: float | None = None,
    ) -> None:
        self.keepalive = keepalive
        self.dead_after = dead_after
        self.initial_window = initial_window
        self.refuse_websocket = refuse_websocket
        self.auto_window = auto_window
        self.ping_every = ping_every
        self.websocket_attempts = 0
        self.poll_attempts = 0
        self.assignments = [ServiceAssignment(service="web", image="registry.test/web:1")]
        self.heartbeats: list[HeartbeatRequest] = []
        self.unregistered = False
        self.stopping = False
        self._tunnels: list[PeerTunnel] = []
        self._sessions: dict[str, PeerTunnel] = {}
        self._lock = threading.Lock()
        app = Starlette(
            routes=[
                WebSocketRoute(TUNNEL_PATH, self._websocket),
                Route(POLL_PATH, self._poll, methods=["POST"]),
                Route(SEND_PATH, self._send, methods=["POST"]),
                # Membership, just enough for an Agent to join and heartbeat.
                Route("/api/worker/register", self._register, methods=["POST"]),
                Route("/api/worker/heartbeat", self._heartbeat, methods=["POST"]),
                Route("/api/worker/unregister/{worker_id}", self._unregister, methods=["DELETE"]),
            ]
        )
        self._server = Server(app)

    @property
    def url(self) -> str:
        return self._server.url

    def identity(self) -> WorkerIdentity:
        return WorkerIdentity(WORKER_ID, TOKEN, self.url)

    def start(self) -> CoordinatorStandIn:
        self._server.start()
        return self

    def stop(self) -> None:
        self.stopping = True
        self._server.stop()

    def tunnel(self, index: int = 0, timeout: float = 3) -> PeerTunnel:
        """The ``index``-th tunnel a worker opened (waits for it)."""

        def opened() -> PeerTunnel | None:
            with self._lock:
                return self._tunnels[index] if len(self._tunnels) > index else None

        return wait_until(opened, timeout, f"tunnel {index}", interval=0.01)

    def tunnel_count(self) -> int:
        with self._lock:
            return len(self._tunnels)

    def _open(self, transport: str) -> PeerTunnel:
        peer = PeerTunnel(transport, asyncio.get_running_loop(), auto_window=self.auto_window)
        hello = TunnelHello(
            worker_id=WORKER_ID,
            keepalive=self.keepalive,
            dead_after=self.dead_after,
            initial_window=self.initial_window,
            session=peer.session if transport == "long-poll" else None,
        )
        peer.outbound.put_nowait(
            encode_frame(FrameType.HELLO, TUNNEL_STREAM, hello.model_dump_json().encode())
        )
        with self._lock:
            self._tunnels.append(peer)
            self._sessions[peer.session] = peer
        return peer

    async def _pings(self, peer: PeerTunnel) -> None:
        assert self.ping_every is not None
        while not peer.closed:
            await asyncio.sleep(self.ping_every)
            if not peer.muted:
                peer.outbound.put_nowait(encode_frame(FrameType.PING, TUNNEL_STREAM))

    async def _websocket(self, websocket: WebSocket) -> None:
        self.websocket_attempts += 1
        if self.refuse_websocket is not None:
            response = PlainTextResponse("no", status_code=self.refuse_websocket)
            await websocket.send_denial_response(response)
            return
        if websocket.headers.get("authorization") != f"Bearer {TOKEN}":
            await websocket.close()  # before accepting: an HTTP 403
            return
        await websocket.accept()
        peer = self._open("websocket")

        async def pump_out() -> None:
            while True:
                frame = await peer.outbound.get()
                if not peer.muted:
                    await websocket.send_bytes(frame)

        async def pump_in() -> None:
            while True:
                while peer.muted and not self.stopping:
                    await asyncio.sleep(0.05)
                if self.stopping:
                    return
                peer.record(await websocket.receive_bytes())

        tasks = [asyncio.create_task(pump_out()), asyncio.create_task(pump_in())]
        if self.ping_every is not None:
            tasks.append(asyncio.create_task(self._pings(peer)))
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            peer.mark_closed()
            for task in tasks:
                task.cancel()
            with contextlib.suppress(WebSocketDisconnect, RuntimeError, asyncio.CancelledError):
                await asyncio.gather(*tasks, return_exceptions=True)

    def _authorized(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {TOKEN}"

    async def _poll(self, request: Request) -> Response:
        self.poll_attempts += 1
        if not self._authorized(request):
            return Response(status_code=401)
        session = request.headers.get(SESSION_HEADER)
        if session is None:
            peer = self._open("long-poll")
        else:
            with self._lock:
                found = self._sessions.get(session)
            if found is None or found.closed:
                return Response(status_code=410)
            peer = found
        peer.polls_outstanding += 1
        peer.most_polls_outstanding = max(peer.most_polls_outstanding, peer.polls_outstanding)
        try:
            frames: list[bytes] = []
            # Held briefly (a coordinator may answer sooner than the keepalive), so a
            # poll left behind by a stopped worker never holds up the server's shutdown.
            with contextlib.suppress(TimeoutError):
                frames.append(await asyncio.wait_for(peer.outbound.get(), POLL_HOLD))
            while not peer.outbound.empty():
                frames.append(peer.outbound.get_nowait())
        finally:
            peer.polls_outstanding -= 1
        return Response(pack_frames(frames), media_type="application/octet-stream")

    async def _send(self, request: Request) -> Response:
        if not self._authorized(request):
            return Response(status_code=401)
        with self._lock:
            peer = self._sessions.get(request.headers.get(SESSION_HEADER, ""))
        if peer is None or peer.closed:
            return Response(status_code=410)
        for frame in unpack_frames(await request.body()):
            peer.record(frame)
        return Response(status_code=204)

    async def _register(self, request: Request) -> Response:
        answer = RegisterResponse(
            worker_id=WORKER_ID,
            worker_token=TOKEN,
            tier=2,
            tier_reason="a stand-in",
            assigned_containers=self.assignments,
            heartbeat_interval=0.5,
            next_heartbeat_in=0.5,
            protocol_version=PROTOCOL_VERSION,
        )
        return Response(answer.model_dump_json(), media_type="application/json")

    async def _heartbeat(self, request: Request) -> Response:
        if not self._authorized(request):
            return Response(status_code=401)
        self.heartbeats.append(HeartbeatRequest.model_validate_json(await request.body()))
        answer = HeartbeatResponse(
            worker_id=WORKER_ID,
            tier=2,
            assigned_containers=self.assignments,
            heartbeat_interval=0.5,
            next_heartbeat_in=0.5,
            schedulability="paused" if self.heartbeats[-1].paused else "active",
            protocol_version=PROTOCOL_VERSION,
            server_time=datetime.now(UTC),
        )
        return Response(answer.model_dump_json(), media_type="application/json")

    async def _unregister(self, request: Request) -> Response:
        self.unregistered = True
        answer = UnregisterResponse(worker_id=WORKER_ID)
        return Response(answer.model_dump_json(), media_type="application/json")


@dataclass
class Container:
    """A service's container: echoes requests, streams, and breaks off on demand."""

    release: threading.Event = field(default_factory=threading.Event)
    """Lets ``/stream`` write its second chunk and ``/slow`` finish."""
    disconnects: int = 0
    """How often a client went away before ``/slow`` finished."""
    server: Server | None = None

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/echo", self._echo, methods=["GET", "POST", "PUT", "DELETE"]),
                Route("/stream", self._stream),
                Route("/slow", self._slow),
                Route("/big", self._big),
                Route("/die", self._die),
            ]
        )

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    async def _echo(self, request: Request) -> Response:
        body = await request.body()
        return JSONResponse(
            {
                "method": request.method,
                "path": request.url.path,
                "query": request.url.query,
                "headers": [[k.decode(), v.decode("latin-1")] for k, v in request.headers.raw],
                "body_length": len(body),
                "body_sha256": hashlib.sha256(body).hexdigest(),
            },
            headers={"X-Container": "echo", "Set-Cookie": "a=1"},
        )

    async def _wait_release(self) -> None:
        await asyncio.to_thread(self.release.wait, 5)

    async def _stream(self, request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"first chunk;"
            await self._wait_release()
            yield b"second chunk"

        return StreamingResponse(chunks(), media_type="text/plain")

    async def _slow(self, request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            try:
                yield b"started;"
                await self._wait_release()
                yield b"done"
            except asyncio.CancelledError:
                self.disconnects += 1
                raise

        return StreamingResponse(chunks(), media_type="text/plain")

    async def _big(self, request: Request) -> Response:
        size = int(request.query_params["size"])
        return Response(bytes(i % 251 for i in range(size)), media_type="application/octet-stream")

    async def _die(self, request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"partial"
            raise RuntimeError("the container died")

        return StreamingResponse(chunks(), media_type="text/plain")


def big_body(size: int) -> bytes:
    return bytes(i % 251 for i in range(size))


class LocalServices:
    """The container runtime at the tunnel's edge: which service answers at which address."""

    def __init__(self, urls: dict[str, str]) -> None:
        self.urls = urls

    def local_url(self, service: str) -> str | None:
        return self.urls.get(service)


class TunnelThread:
    """Runs a tunnel on its own event loop in a thread, as the agent's thread does."""

    def __init__(self, tunnel: RelayTunnel) -> None:
        self.tunnel = tunnel
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self.tunnel.run())
        except BaseException as exc:
            self.error = exc

    def start(self) -> TunnelThread:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.tunnel.stop()
        self._thread.join(5)
        assert not self._thread.is_alive(), "the tunnel did not stop"
        assert self.error is None, f"the tunnel failed: {self.error!r}"


@contextlib.contextmanager
def serving(container: Container) -> Iterator[Container]:
    container.server = Server(container.app())
    container.server.start()
    try:
        yield container
    finally:
        container.server.stop()


def echoed(answer: Answer) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(answer.body)
    return result
