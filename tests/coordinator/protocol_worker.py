"""A worker that speaks the tunnel protocol by hand, to test the coordinator's side of it.

It registers through the real worker API, opens a real WebSocket to a live coordinator and
answers relayed requests with whatever its ``handler`` says: answer, stream, fail, vanish.
The real agent's side is tested in tests/agent/relay and end to end in tests/e2e.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from shared.tunnel import (
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
)
from tests.coordinator.conftest import TIER2_CAPABILITIES
from tests.fixtures.coordinator import LiveCoordinator, wait_until


@dataclass
class Request:
    """One relayed request as the worker received it."""

    stream: int
    head: RelayRequestHead
    body: bytes


Handler = Callable[["ProtocolWorker", Request], Awaitable[None]]


async def echo(worker: ProtocolWorker, request: Request) -> None:
    """Answer 200 with what arrived, as JSON."""
    payload = {
        "worker": worker.name,
        "method": request.head.method,
        "target": request.head.target,
        "headers": [list(pair) for pair in request.head.headers],
        "body": request.body.decode("latin-1"),
    }
    await worker.answer(request.stream, 200, json.dumps(payload).encode())


@dataclass
class ProtocolWorker:
    """A registered worker with a hand-driven tunnel, running on its own event loop thread."""

    coordinator: LiveCoordinator
    name: str
    services: list[str]
    handler: Handler = echo
    early: Handler | None = None
    """Answers a request as soon as its head arrives, before its body (a quick refusal)."""
    muted: bool = False
    """Send nothing at all: no answers, no pings (a machine that vanished from the net)."""
    worker_id: str = ""
    token: str = ""
    hello: TunnelHello | None = None
    received: list[Request] = field(default_factory=list)
    frames_in: list[tuple[FrameType, int, bytes]] = field(default_factory=list)
    cancelled: set[int] = field(default_factory=set)
    credit: dict[int, int] = field(default_factory=dict)
    _loop: asyncio.AbstractEventLoop | None = None
    _socket: ClientConnection | None = None
    _thread: threading.Thread | None = None
    _bodies: dict[int, bytearray] = field(default_factory=dict)
    _heads: dict[int, RelayRequestHead] = field(default_factory=dict)
    _credit_changed: asyncio.Event | None = None
    _tasks: set[asyncio.Future[None]] = field(default_factory=set)

    def register(self, capabilities: dict[str, Any] | None = None) -> ProtocolWorker:
        response = httpx.post(
            self.coordinator.url + "/api/worker/register",
            json={"capabilities": capabilities or TIER2_CAPABILITIES, "name": self.name},
            timeout=5,
        )
        assert response.status_code == 200, response.text
        self.worker_id = response.json()["worker_id"]
        self.token = response.json()["worker_token"]
        return self

    def connect(self, paused: bool = False) -> ProtocolWorker:
        """Open the tunnel and say which services run here; wait until the hub has it."""
        if not self.token:
            self.register()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready, paused), daemon=True)
        self._thread.start()
        assert ready.wait(10), "the tunnel did not open"
        return self

    def _run(self, ready: threading.Event, paused: bool) -> None:
        asyncio.run(self._main(ready, paused))

    async def _main(self, ready: threading.Event, paused: bool) -> None:
        self._loop = asyncio.get_running_loop()
        self._credit_changed = asyncio.Event()
        url = self.coordinator.url.replace("http://", "ws://") + TUNNEL_PATH
        async with connect(
            url, additional_headers={"Authorization": f"Bearer {self.token}"}, ping_interval=None
        ) as socket:
            self._socket = socket
            kind, _, payload = decode_frame(await socket.recv())  # type: ignore[arg-type]
            assert kind is FrameType.HELLO
            self.hello = TunnelHello.model_validate_json(payload)
            await self.send_state(self.services, paused=paused)
            pinger = asyncio.ensure_future(self._ping())
            ready.set()
            try:
                # Closed under us, the loop ends: the test looks at what happened.
                with contextlib.suppress(Exception):
                    async for message in socket:
                        assert isinstance(message, bytes)
                        self._take(*decode_frame(message))
            finally:
                pinger.cancel()

    async def _ping(self) -> None:
        assert self.hello is not None
        while True:
            await asyncio.sleep(self.hello.keepalive / 2)
            if not self.muted:
                await self.send(encode_frame(FrameType.PING, TUNNEL_STREAM))

    def _take(self, kind: FrameType, stream: int, payload: bytes) -> None:
        self.frames_in.append((kind, stream, payload))
        if kind is FrameType.REQUEST:
            self._heads[stream] = RelayRequestHead.model_validate_json(payload)
            self._bodies[stream] = bytearray()
            assert self.hello is not None
            self.credit[stream] = self.hello.initial_window
            if self.early is not None:
                early = Request(stream, self._heads[stream], b"")
                self._tasks.add(task := asyncio.ensure_future(self.early(self, early)))
                task.add_done_callback(self._tasks.discard)
        elif kind is FrameType.REQUEST_BODY:
            self._bodies[stream] += payload
        elif kind is FrameType.REQUEST_END:
            request = Request(stream, self._heads.pop(stream), bytes(self._bodies.pop(stream)))
            self.received.append(request)
            if self.muted:
                return
            self._tasks.add(task := asyncio.ensure_future(self.handler(self, request)))
            task.add_done_callback(self._tasks.discard)
        elif kind is FrameType.CANCEL:
            self.cancelled.add(stream)
        elif kind is FrameType.WINDOW:
            self.credit[stream] = self.credit.get(stream, 0) + decode_window(payload)
            assert self._credit_changed is not None
            self._credit_changed.set()

    # -- what handlers (and tests) do ----------------------------------------------------------

    async def send(self, frame: bytes) -> None:
        assert self._socket is not None
        await self._socket.send(frame)

    async def send_state(self, services: list[str], paused: bool = False) -> None:
        state = TunnelState(services=services, paused=paused).model_dump_json().encode()
        await self.send(encode_frame(FrameType.STATE, TUNNEL_STREAM, state))

    async def head(self, stream: int, status: int, headers: list[tuple[str, str]]) -> None:
        head = RelayResponseHead(status=status, headers=headers).model_dump_json().encode()
        await self.send(encode_frame(FrameType.RESPONSE, stream, head))

    async def body(self, stream: int, data: bytes) -> None:
        """Send body bytes within the stream's credit, waiting for WINDOW frames as needed."""
        assert self._credit_changed is not None
        while self.credit.get(stream, 0) < len(data):
            self._credit_changed.clear()
            await self._credit_changed.wait()
        self.credit[stream] -= len(data)
        await self.send(encode_frame(FrameType.RESPONSE_BODY, stream, data))

    async def end(self, stream: int) -> None:
        await self.send(encode_frame(FrameType.RESPONSE_END, stream))

    async def answer(self, stream: int, status: int, data: bytes) -> None:
        await self.head(stream, status, [("content-type", "application/json")])
        await self.body(stream, data)
        await self.end(stream)

    async def fail(self, stream: int, code: str, forwarded: bool) -> None:
        failure = RelayFailure(code=code, message=f"{code} on {self.name}", forwarded=forwarded)  # type: ignore[arg-type]
        await self.send(encode_frame(FrameType.FAILED, stream, failure.model_dump_json().encode()))

    async def vanish(self) -> None:
        """Drop the connection without a word, as a killed process does."""
        assert self._socket is not None
        self._socket.transport.abort()

    def call(self, action: Callable[[], Awaitable[None]]) -> None:
        """Run ``action`` on the worker's loop and wait for it."""
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(action(), self._loop).result(5)

    def close(self) -> None:
        socket = self._socket
        if self._loop is not None and self._loop.is_running() and socket is not None:
            with contextlib.suppress(Exception):
                self.call(socket.close)
        if self._thread is not None:
            self._thread.join(5)


def routable(coordinator: LiveCoordinator, key: str, service: str, worker: ProtocolWorker) -> None:
    """Wait until a request for ``service`` reaches ``worker``."""

    def reached() -> bool:
        response = httpx.get(
            f"{coordinator.url}/api/service/{service}/probe",
            headers={"Authorization": f"Bearer {key}"},
            timeout=5,
        )
        return response.headers.get("x-rma-worker") == worker.worker_id

    wait_until(reached, 5, f"{worker.name} to be routable")
