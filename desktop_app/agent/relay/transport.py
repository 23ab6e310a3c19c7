"""How the worker's tunnel reaches the coordinator: a WebSocket, or HTTP long-polling.

Both carry the same frames (:mod:`shared.tunnel`); :class:`TunnelConnector` picks one. A
WebSocket is tried first; where something between the worker and the coordinator answers
the upgrade with plain HTTP (a proxy that says 400, 426, 501, 502 or even 200), the
connector falls back to long-polling and keeps to it for a while.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Literal, Protocol
from urllib.parse import urlsplit, urlunsplit

import httpx
from pydantic import ValidationError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidHeader,
    InvalidProxyStatus,
    InvalidStatus,
    InvalidURI,
)

from desktop_app import __version__
from shared.tunnel import (
    FRAME_HEADER,
    FRAMES_MEDIA_TYPE,
    MAX_BODY_CHUNK,
    MAX_HEAD_BYTES,
    POLL_PATH,
    SEND_PATH,
    SESSION_HEADER,
    TUNNEL_PATH,
    TUNNEL_STREAM,
    FrameType,
    TunnelFrameError,
    TunnelHello,
    decode_frame,
    pack_frames,
    unpack_frames,
)

log = logging.getLogger(__name__)

TransportMode = Literal["auto", "websocket", "long-poll"]
"""Which transport to use: ``auto`` tries a WebSocket and falls back to long-polling."""

MAX_FRAME_SIZE = FRAME_HEADER.size + max(MAX_BODY_CHUNK, MAX_HEAD_BYTES) + 1024
"""The largest WebSocket message accepted: a full body chunk or head frame (the protocol
bounds heads at ``MAX_HEAD_BYTES``), with room to spare."""
AUTH_STATUSES = frozenset({401, 403, 404})
"""Statuses that mean the coordinator refused this worker, not that the path is blocked."""
FALLBACK_MEMORY = 600.0
"""Seconds the connector keeps to long-polling after a WebSocket could not get through."""
OPEN_TIMEOUT = 10.0
"""Seconds opening a tunnel may take."""
SEND_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
"""Limits of one long-poll ``POST`` of the worker's frames."""
POLL_MARGIN = 5.0
"""Seconds a long-poll may stay unanswered beyond the tunnel's ``dead_after``."""
SEND_BUFFER_LIMIT = 1024 * 1024
"""Bytes of frames a long-poll tunnel queues before :meth:`LongPollTransport.send` waits."""


class TunnelClosed(Exception):
    """The tunnel ended: the coordinator closed it, the network failed, or it was closed."""


class TunnelConnectError(Exception):
    """A tunnel could not be opened (network, timeout, an unexpected answer): retry later."""


class TunnelAuthRefused(TunnelConnectError):
    """The coordinator refused this worker's identity (401, 403 or 404)."""

    def __init__(self, status_code: int) -> None:
        super().__init__(f"the pool refused the tunnel (HTTP {status_code})")
        self.status_code = status_code


class WebSocketUnsupported(TunnelConnectError):
    """Something answered the WebSocket upgrade with plain HTTP: the path blocks WebSockets."""


class TunnelTransport(Protocol):
    """One open tunnel: frames both ways, one at a time, in order."""

    @property
    def name(self) -> str:
        """The transport, for people: ``"WebSocket"`` or ``"long-poll"``."""
        ...

    async def send(self, frame: bytes) -> None:
        """Send one frame.

        Raises:
            TunnelClosed: The tunnel ended.
        """
        ...

    async def receive(self) -> bytes:
        """The next frame from the coordinator.

        Raises:
            TunnelClosed: The tunnel ended.
            TunnelFrameError: The coordinator sent something that is not a frame.
        """
        ...

    async def close(self) -> None:
        """End the tunnel (idempotent)."""
        ...


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _endpoint(coordinator_url: str, path: str) -> str:
    """``path`` under the coordinator's URL, keeping any prefix it is served under."""
    return coordinator_url.rstrip("/") + path


def websocket_url(coordinator_url: str) -> str:
    """The tunnel's ``ws(s)://`` URL for a coordinator at ``http(s)://host[/prefix]``.

    Raises:
        TunnelConnectError: The coordinator's URL is neither ``http`` nor ``https``.
    """
    parts = urlsplit(coordinator_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme.lower())
    if scheme is None:
        raise TunnelConnectError(f"cannot open a tunnel to {coordinator_url!r}")
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + TUNNEL_PATH, "", ""))


class WebSocketTransport:
    """The tunnel over one WebSocket: one binary message is one frame."""

    name = "WebSocket"

    def __init__(self, connection: ClientConnection) -> None:
        """Wrap an open connection; :meth:`open` makes one."""
        self._connection = connection

    @classmethod
    async def open(cls, coordinator_url: str, token: str) -> WebSocketTransport:
        """Open the WebSocket.

        Raises:
            TunnelAuthRefused: The coordinator refused the token.
            WebSocketUnsupported: Something answered the upgrade with plain HTTP.
            TunnelConnectError: Anything else went wrong.
        """
        url = websocket_url(coordinator_url)
        try:
            connection = await connect(
                url,
                additional_headers=_bearer(token),
                user_agent_header=f"rma-worker/{__version__}",
                max_size=MAX_FRAME_SIZE,
                compression=None,
                # The tunnel has its own keepalive (PING frames), the same on both transports.
                ping_interval=None,
                open_timeout=OPEN_TIMEOUT,
                # A dead coordinator never answers a close; the tunnel is gone anyway.
                close_timeout=1.0,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in AUTH_STATUSES:
                raise TunnelAuthRefused(status) from exc
            raise WebSocketUnsupported(f"the upgrade was answered with HTTP {status}") from exc
        except (InvalidHeader, InvalidProxyStatus) as exc:
            raise WebSocketUnsupported(f"the upgrade failed: {exc}") from exc
        except (InvalidHandshake, InvalidURI, OSError, TimeoutError) as exc:
            raise TunnelConnectError(f"could not open a WebSocket to {url}: {exc}") from exc
        return cls(connection)

    async def send(self, frame: bytes) -> None:
        """Send one frame as one binary message (waits while the network is congested)."""
        try:
            await self._connection.send(frame)
        except ConnectionClosed as exc:
            raise TunnelClosed(f"the WebSocket closed ({exc})") from exc

    async def receive(self) -> bytes:
        """The next binary message."""
        try:
            message = await self._connection.recv()
        except ConnectionClosed as exc:
            raise TunnelClosed(f"the WebSocket closed ({exc})") from exc
        if isinstance(message, str):
            raise TunnelFrameError("a text message on the tunnel")
        return message

    async def close(self) -> None:
        """Close the WebSocket (waits at most a second for the coordinator to agree)."""
        await self._connection.close()


class LongPollTransport:
    """The tunnel over HTTP requests, for networks that let no WebSocket through.

    A background task keeps exactly one poll outstanding and queues the frames it returns;
    another posts the worker's frames, everything queued while the previous post was under
    way in the next one, in order.
    """

    name = "long-poll"

    def __init__(
        self,
        http: httpx.AsyncClient,
        coordinator_url: str,
        token: str,
        hello: TunnelHello,
        frames: list[bytes],
    ) -> None:
        """Take over a session that :meth:`open` opened; its first frames are ``frames``."""
        assert hello.session is not None
        self._http = http
        self._poll_url = _endpoint(coordinator_url, POLL_PATH)
        self._send_url = _endpoint(coordinator_url, SEND_PATH)
        self._headers = {**_bearer(token), SESSION_HEADER: hello.session}
        self._poll_timeout = httpx.Timeout(
            max(hello.dead_after, hello.keepalive) + POLL_MARGIN, connect=OPEN_TIMEOUT
        )
        self._inbox: asyncio.Queue[bytes | Exception] = asyncio.Queue()
        for frame in frames:
            self._inbox.put_nowait(frame)
        self._outbox: list[bytes] = []
        self._outbox_bytes = 0
        self._outbox_ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._ended: Exception | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def _start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._poll_forever(), name="tunnel poll"),
            asyncio.create_task(self._send_forever(), name="tunnel send"),
        ]

    @classmethod
    async def open(
        cls, http: httpx.AsyncClient, coordinator_url: str, token: str
    ) -> LongPollTransport:
        """Open a session: the first poll, without a session id, answers with ``HELLO``.

        Raises:
            TunnelAuthRefused: The coordinator refused the token.
            TunnelConnectError: Anything else went wrong.
        """
        url = _endpoint(coordinator_url, POLL_PATH)
        try:
            response = await http.post(url, headers=_bearer(token), timeout=OPEN_TIMEOUT)
        except httpx.HTTPError as exc:
            raise TunnelConnectError(f"could not open a long-poll tunnel at {url}: {exc}") from exc
        if response.status_code in AUTH_STATUSES:
            raise TunnelAuthRefused(response.status_code)
        if not response.is_success:
            raise TunnelConnectError(f"opening a long-poll tunnel: HTTP {response.status_code}")
        try:
            frames = list(unpack_frames(response.content))
            if not frames:
                raise TunnelFrameError("no HELLO")
            kind, stream, payload = decode_frame(frames[0])
            if kind != FrameType.HELLO or stream != TUNNEL_STREAM:
                raise TunnelFrameError(f"{kind.name} before HELLO")
            hello = TunnelHello.model_validate_json(payload)
        except (TunnelFrameError, ValidationError) as exc:
            raise TunnelConnectError(f"the long-poll tunnel opened with nonsense: {exc}") from exc
        if not hello.session:
            raise TunnelConnectError("the long-poll tunnel's HELLO names no session")
        transport = cls(http, coordinator_url, token, hello, frames)
        transport._start()
        return transport

    async def send(self, frame: bytes) -> None:
        """Queue one frame for the next post; waits only while much is queued already."""
        while True:
            if self._ended is not None:
                raise TunnelClosed(str(self._ended))
            if self._room.is_set():
                break
            await self._room.wait()
        self._outbox.append(frame)
        self._outbox_bytes += len(frame)
        if self._outbox_bytes > SEND_BUFFER_LIMIT:
            self._room.clear()
        self._outbox_ready.set()

    async def receive(self) -> bytes:
        """The next frame a poll returned."""
        item = await self._inbox.get()
        if isinstance(item, Exception):
            self._inbox.put_nowait(item)  # every later call fails the same way
            raise item
        return item

    async def close(self) -> None:
        """Stop polling and posting; the coordinator forgets the session after dead_after."""
        self._end(TunnelClosed("the tunnel was closed"))
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _end(self, reason: Exception) -> None:
        if self._ended is not None:
            return
        self._ended = reason
        self._inbox.put_nowait(reason)
        self._room.set()  # release senders waiting for room: they raise TunnelClosed
        self._outbox_ready.set()

    def _check(self, response: httpx.Response, what: str) -> None:
        if response.status_code == 410:
            raise TunnelClosed("the pool ended the long-poll session")
        if not response.is_success:
            raise TunnelClosed(f"{what} answered HTTP {response.status_code}")

    async def _poll_forever(self) -> None:
        try:
            while self._ended is None:
                response = await self._http.post(
                    self._poll_url, headers=self._headers, timeout=self._poll_timeout
                )
                self._check(response, "a poll")
                # All or nothing: a body cut off in the middle ends the tunnel.
                for frame in list(unpack_frames(response.content)):
                    self._inbox.put_nowait(frame)
        except httpx.HTTPError as exc:
            self._end(TunnelClosed(f"a poll failed: {exc!r}"))
        except (TunnelClosed, TunnelFrameError) as exc:
            self._end(exc)

    async def _send_forever(self) -> None:
        try:
            while True:
                await self._outbox_ready.wait()
                self._outbox_ready.clear()
                if self._ended is not None:
                    return
                if not self._outbox:
                    continue
                batch, self._outbox, self._outbox_bytes = self._outbox, [], 0
                self._room.set()
                response = await self._http.post(
                    self._send_url,
                    headers={**self._headers, "Content-Type": FRAMES_MEDIA_TYPE},
                    content=pack_frames(batch),
                    timeout=SEND_TIMEOUT,
                )
                self._check(response, "sending frames")
        except httpx.HTTPError as exc:
            self._end(TunnelClosed(f"sending frames failed: {exc!r}"))
        except TunnelClosed as exc:
            self._end(exc)


class TunnelConnector:
    """Opens tunnels, remembering for a while that WebSockets do not get through."""

    def __init__(
        self,
        mode: TransportMode,
        http: httpx.AsyncClient,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Nothing is contacted until :meth:`connect`.

        Args:
            mode: Which transport to use.
            http: The client for long-polling (it should trust the environment's proxy
                settings: long-polling is for networks where a proxy stands in the way).
            clock: Monotonic seconds (tests may inject one).
        """
        self._mode = mode
        self._http = http
        self._clock = clock
        self._long_poll_until: float | None = None

    async def connect(self, coordinator_url: str, token: str) -> TunnelTransport:
        """Open a tunnel to ``coordinator_url`` as the worker that holds ``token``.

        Raises:
            TunnelAuthRefused: The coordinator refused the token.
            TunnelConnectError: No tunnel could be opened now.
        """
        mode = self._mode
        if mode == "long-poll" or (mode == "auto" and self._remembers_long_poll()):
            return await LongPollTransport.open(self._http, coordinator_url, token)
        try:
            return await WebSocketTransport.open(coordinator_url, token)
        except WebSocketUnsupported as exc:
            if mode == "websocket":
                raise
            reason = exc
        transport = await LongPollTransport.open(self._http, coordinator_url, token)
        # Remembered only now: when long-polling fails as well, the coordinator (not the
        # path to it) is the trouble, and the next attempt tries a WebSocket again.
        self._long_poll_until = self._clock() + FALLBACK_MEMORY
        log.info(
            "WebSockets do not get through to the pool (%s); long-polling for the next %.0f "
            "minutes.",
            reason,
            FALLBACK_MEMORY / 60,
        )
        return transport

    def _remembers_long_poll(self) -> bool:
        until = self._long_poll_until
        return until is not None and self._clock() < until
