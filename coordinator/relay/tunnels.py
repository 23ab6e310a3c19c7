"""One worker's tunnel on the coordinator, and the relayed requests (streams) it carries.

A :class:`Tunnel` does not know its transport: a WebSocket or a long-poll session hands it
each frame received (:meth:`Tunnel.receive`) and gives it a way to send
(:class:`FrameSender`). Frames for one stream go to its :class:`RelayStream`, which the
relay endpoint reads as events. See ``shared/tunnel.py`` for the protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from pydantic import ValidationError

from shared.tunnel import (
    MAX_BODY_CHUNK,
    TUNNEL_STREAM,
    FrameType,
    RelayFailure,
    RelayResponseHead,
    TunnelFrameError,
    TunnelState,
    decode_frame,
    decode_window,
    encode_frame,
    encode_window,
)

log = logging.getLogger(__name__)

Transport = Literal["websocket", "long-poll"]


class FrameSender(Protocol):
    """How a tunnel's frames leave: the transport under it."""

    async def send(self, frame: bytes) -> None:
        """Send one frame (may wait while the connection is congested)."""
        ...

    def close(self) -> None:
        """End the transport (the worker will open a new tunnel)."""
        ...


class TunnelGone(Exception):
    """The tunnel closed: its worker dropped, was replaced or removed."""


@dataclass(frozen=True)
class Head:
    """The response's status and headers arrived."""

    head: RelayResponseHead


@dataclass(frozen=True)
class Body:
    """A piece of the response body."""

    data: bytes


@dataclass(frozen=True)
class End:
    """The response is complete."""


@dataclass(frozen=True)
class Failed:
    """The worker says the stream failed."""

    failure: RelayFailure


@dataclass(frozen=True)
class Dropped:
    """The tunnel closed under the stream; the worker may have had the request."""

    reason: str


@dataclass(frozen=True)
class ClientLeft:
    """The end user went away; the worker was told to stop."""


StreamEvent = Head | Body | End | Failed | Dropped | ClientLeft

_END = End()


class RelayStream:
    """One relayed request on a tunnel, as the relay endpoint sees it."""

    def __init__(self, tunnel: Tunnel, stream_id: int, window: int) -> None:
        self.tunnel = tunnel
        self.id = stream_id
        self.events: asyncio.Queue[StreamEvent] = asyncio.Queue()
        self._send_credit = window
        self._credit = asyncio.Event()
        self._window = window
        self._receive_credit = window
        self._unacked = 0
        self.answered = False
        """Whether the worker has answered (or failed): the rest of the body is not wanted."""
        self.closed = False

    async def send_request(self, head: bytes, body: bytes) -> None:
        """Send the request: its head, its body within the worker's credit, its end.

        Sending stops as soon as the worker answers or fails: a container may answer (a
        404, a refusal) before it read the body, and then no more credit comes.

        Raises:
            TunnelGone: The tunnel closed meanwhile.
        """
        tunnel = self.tunnel
        await tunnel.send(encode_frame(FrameType.REQUEST, self.id, head))
        offset = 0
        while offset < len(body):
            while self._send_credit <= 0:
                if self.closed or self.answered:
                    return
                self._credit.clear()
                await self._credit.wait()
            if self.closed or self.answered:
                return
            size = min(MAX_BODY_CHUNK, self._send_credit, len(body) - offset)
            await tunnel.send(
                encode_frame(FrameType.REQUEST_BODY, self.id, body[offset : offset + size])
            )
            self._send_credit -= size
            offset += size
        await tunnel.send(encode_frame(FrameType.REQUEST_END, self.id))

    async def passed_on(self, size: int) -> None:
        """The end user took ``size`` more bytes: give the worker credit for them.

        Credit goes back in batches of a quarter window, so a stream of small pieces
        (tokens) does not cost a frame each way per piece.
        """
        self._unacked += size
        self._receive_credit += size
        if self._unacked >= self._window // 4 and not self.closed:
            credit, self._unacked = self._unacked, 0
            with contextlib.suppress(TunnelGone):
                await self.tunnel.send(encode_window(self.id, credit))

    async def cancel(self) -> None:
        """Tell the worker to stop answering (the end user went away) and forget the stream."""
        if self.closed:
            return
        self.finish()
        with contextlib.suppress(TunnelGone):
            await self.tunnel.send(encode_frame(FrameType.CANCEL, self.id))

    def finish(self) -> None:
        """The stream is over on the coordinator's side: drop it from its tunnel."""
        if not self.closed:
            self.closed = True
            self._credit.set()
            self.tunnel.forget(self.id)

    # -- called by the tunnel ----------------------------------------------------------------

    def grant(self, credit: int) -> None:
        """The worker passed on ``credit`` more request bytes."""
        self._send_credit += credit
        self._credit.set()

    def deliver(self, event: StreamEvent) -> None:
        """Hand an event to whoever reads the stream."""
        if not self.answered:
            self.answered = True
            self._credit.set()  # a body still being sent stops
        self.events.put_nowait(event)

    def take_body(self, size: int) -> bool:
        """Count ``size`` response bytes against the credit given; False when over it."""
        self._receive_credit -= size
        return self._receive_credit >= 0


class Tunnel:
    """One worker's open tunnel."""

    def __init__(
        self,
        worker_id: str,
        transport: Transport,
        sender: FrameSender,
        *,
        window: int,
        on_state: Callable[[Tunnel], None],
        on_close: Callable[[Tunnel], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.worker_id = worker_id
        self.transport: Transport = transport
        self._sender = sender
        self._window = window
        self._on_state = on_state
        self._on_close = on_close
        self._clock = clock
        self.opened_at = clock()
        self.last_received = self.opened_at
        self.last_sent = self.opened_at
        self.services: frozenset[str] = frozenset()
        self.paused = False
        self.state_known = False
        """Whether the worker has said what it runs (no request goes before it has)."""
        self.streams: dict[int, RelayStream] = {}
        self.picked = 0
        """When it was last picked (a sequence number), to break ties between workers."""
        self.closed = False
        self.close_reason = ""
        self._next_stream = 1

    @property
    def outstanding(self) -> int:
        """Requests this worker is answering now."""
        return len(self.streams)

    def routable(self) -> bool:
        """Open, told what it runs, and not paused by its owner."""
        return not self.closed and self.state_known and not self.paused

    def open_stream(self) -> RelayStream:
        """A new stream for one request."""
        if self.closed:
            raise TunnelGone(self.close_reason)
        stream_id = self._next_stream
        self._next_stream = stream_id + 1 if stream_id < 0xFFFFFFFF else 1
        stream = RelayStream(self, stream_id, self._window)
        self.streams[stream_id] = stream
        return stream

    def heard(self) -> None:
        """The worker was heard from (a long-poll counts, though it carries no frame)."""
        self.last_received = self._clock()

    def forget(self, stream_id: int) -> None:
        """The stream is over: its late frames are ignored."""
        self.streams.pop(stream_id, None)

    async def send(self, frame: bytes) -> None:
        """Send a frame to the worker.

        Raises:
            TunnelGone: The tunnel is closed.
        """
        if self.closed:
            raise TunnelGone(self.close_reason)
        try:
            await self._sender.send(frame)
        except TunnelGone:
            raise
        except Exception as exc:  # the transport broke: the tunnel is gone
            self.close(f"sending failed ({type(exc).__name__})")
            raise TunnelGone(self.close_reason) from exc
        self.last_sent = self._clock()

    def receive(self, frame: bytes) -> None:
        """Handle one frame from the worker; a malformed one closes the tunnel."""
        self.last_received = self._clock()
        try:
            kind, stream_id, payload = decode_frame(frame)
            if stream_id == TUNNEL_STREAM:
                self._receive_own(kind, payload)
                return
            stream = self.streams.get(stream_id)
            if stream is None:
                return  # late frames of a stream that ended (cancelled, timed out)
            if kind is FrameType.RESPONSE_BODY:
                # A worker that ignores its window could fill the coordinator's memory.
                if len(payload) > MAX_BODY_CHUNK or not stream.take_body(len(payload)):
                    raise TunnelFrameError("response body beyond the stream's window")
                stream.deliver(Body(payload))
            elif kind is FrameType.WINDOW:
                stream.grant(decode_window(payload))
            elif kind is FrameType.RESPONSE:
                stream.deliver(Head(RelayResponseHead.model_validate_json(payload)))
            elif kind is FrameType.RESPONSE_END:
                stream.deliver(_END)
            elif kind is FrameType.FAILED:
                stream.deliver(Failed(RelayFailure.model_validate_json(payload)))
            else:
                raise TunnelFrameError(f"a worker does not send {kind.name} frames")
        except (TunnelFrameError, ValidationError) as exc:
            log.warning(
                "Worker %s sent a malformed tunnel frame (%s); closing", self.worker_id, exc
            )
            self.close("it sent a malformed frame")

    def _receive_own(self, kind: FrameType, payload: bytes) -> None:
        if kind is FrameType.PING:
            return
        if kind is not FrameType.STATE:
            raise TunnelFrameError(f"{kind.name} is not a frame about the tunnel")
        state = TunnelState.model_validate_json(payload)
        self.services = frozenset(state.services)
        self.paused = state.paused
        self.state_known = True
        self._on_state(self)

    def close(self, reason: str) -> None:
        """Close the tunnel: every stream on it ends with :class:`Dropped`."""
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        streams, self.streams = self.streams, {}
        for stream in streams.values():
            stream.closed = True
            stream.deliver(Dropped(reason))
            stream.grant(0)
        self._sender.close()
        self._on_close(self)
