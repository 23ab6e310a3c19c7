"""The worker tunnel: end users' requests relayed to a worker over a connection it opened.

Volunteers sit behind home routers, so the coordinator never connects to a worker. Each
worker opens one tunnel and keeps it open:

- a WebSocket at :data:`TUNNEL_PATH` (one binary message per frame), or, where WebSockets
  are blocked,
- an HTTP long-poll: ``POST`` :data:`POLL_PATH` returns the frames waiting for the worker
  (holding the request up to the keepalive when there are none) and ``POST``
  :data:`SEND_PATH` carries the worker's frames. Both bodies are frames, each prefixed by
  its length (:func:`pack_frames`), and both name the session the first poll opened
  (:data:`SESSION_HEADER`).

Every call carries ``Authorization: Bearer <worker_token>``.

Many requests share one tunnel (multiplexing): each is a *stream* with its own id, chosen
by the coordinator, and a frame belongs to one stream (id 0 is the tunnel itself). A
stream's frames, in order::

    coordinator → worker   REQUEST (head) · REQUEST_BODY … · REQUEST_END · [CANCEL]
    worker → coordinator   RESPONSE (head) · RESPONSE_BODY … · RESPONSE_END
                           or FAILED (instead of, or after, the head)

Flow control is by credit, per stream and direction, as in HTTP/2: a sender may have at
most the receiver's window of body bytes unacknowledged (:attr:`TunnelHello.initial_window`
at the start); the receiver sends ``WINDOW`` with the number of bytes it has passed on, and
the sender may send that many more. So a slow end user never makes the coordinator buffer
a fast worker's answer, and one stream never starves the others.

Either side sends ``PING`` when it has sent nothing for :attr:`TunnelHello.keepalive`
seconds, and drops the tunnel when it has received nothing for
:attr:`TunnelHello.dead_after` seconds: a worker whose tunnel dropped is unroutable within
that time, independent of the heartbeat timeout.

The frame layout (:func:`encode_frame`): one byte of :class:`FrameType`, four bytes of
stream id (big-endian), then the payload: a model's JSON for heads, raw bytes for bodies,
a four-byte count for ``WINDOW``, nothing for the rest.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from enum import IntEnum
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from shared.base import RequestModel, ResponseModel

TUNNEL_PATH = "/api/worker/tunnel"
"""The WebSocket a worker opens (``ws://`` or ``wss://`` on the coordinator's address)."""
POLL_PATH = "/api/worker/tunnel/poll"
"""Long-poll fallback: ``POST`` here to receive the frames waiting for this worker."""
SEND_PATH = "/api/worker/tunnel/send"
"""Long-poll fallback: ``POST`` the worker's frames here."""
FRAMES_MEDIA_TYPE = "application/vnd.rma.tunnel-frames"
"""The content type of long-poll bodies (length-prefixed frames)."""
SESSION_HEADER = "X-RMA-Tunnel-Session"
"""Names the long-poll session: absent on the first poll, which opens one (its ``HELLO``
carries the id); a poll or send naming an unknown or replaced session gets a 410."""

FRAME_HEADER = struct.Struct("!BI")
"""Frame type (1 byte) and stream id (4 bytes, big-endian)."""
LENGTH_PREFIX = struct.Struct("!I")
"""The length of each frame in a long-poll body."""
WINDOW_PAYLOAD = struct.Struct("!I")
"""A ``WINDOW`` frame's payload: how many more body bytes the sender may send."""

MAX_BODY_CHUNK = 64 * 1024
"""The largest body payload in one frame: bigger bodies are split, so that other streams'
frames get their turn between the pieces."""
MAX_HEAD_BYTES = 64 * 1024
"""The largest head payload (``REQUEST``, ``RESPONSE``): a request whose headers do not fit
is refused before it reaches any worker, whose frame limit is this plus a body chunk."""
MAX_HEADER_VALUE = 16 * 1024
"""The longest single header value relayed."""
TUNNEL_STREAM = 0
"""The stream id of frames about the tunnel itself (``HELLO``, ``STATE``, ``PING``)."""


class FrameType(IntEnum):
    """What a frame carries."""

    # coordinator → worker
    HELLO = 1
    """Stream 0; :class:`TunnelHello`: the tunnel is open, and its parameters."""
    REQUEST = 2
    """Opens a stream; :class:`RelayRequestHead`."""
    REQUEST_BODY = 3
    """A piece of the request body (raw bytes, at most :data:`MAX_BODY_CHUNK`)."""
    REQUEST_END = 4
    """The request body is complete (no payload)."""
    CANCEL = 5
    """The end user went away, or the coordinator gave up: stop and forget the stream."""
    # worker → coordinator
    STATE = 10
    """Stream 0; :class:`TunnelState`: which services this worker can answer now."""
    RESPONSE = 11
    """The response's status and headers; :class:`RelayResponseHead`."""
    RESPONSE_BODY = 12
    """A piece of the response body (raw bytes, at most :data:`MAX_BODY_CHUNK`)."""
    RESPONSE_END = 13
    """The response is complete (no payload)."""
    FAILED = 14
    """The stream failed on the worker; :class:`RelayFailure`."""
    # both directions
    WINDOW = 20
    """Credit: the receiver passed on this many body bytes of the stream; send that many more."""
    PING = 21
    """Stream 0; nothing else was sent for a keepalive period (no payload, no answer)."""


class TunnelFrameError(ValueError):
    """Bytes that are not a frame of this protocol."""


def encode_frame(kind: FrameType, stream: int, payload: bytes = b"") -> bytes:
    """One frame's bytes."""
    return FRAME_HEADER.pack(kind, stream) + payload


def decode_frame(data: bytes) -> tuple[FrameType, int, bytes]:
    """A frame's type, stream id and payload.

    Raises:
        TunnelFrameError: Too short, or an unknown type.
    """
    if len(data) < FRAME_HEADER.size:
        raise TunnelFrameError(f"a frame needs at least {FRAME_HEADER.size} bytes")
    kind, stream = FRAME_HEADER.unpack_from(data)
    try:
        frame_type = FrameType(kind)
    except ValueError:
        raise TunnelFrameError(f"unknown frame type {kind}") from None
    return frame_type, stream, data[FRAME_HEADER.size :]


def encode_window(stream: int, credit: int) -> bytes:
    """A ``WINDOW`` frame granting ``credit`` more body bytes on ``stream``."""
    return encode_frame(FrameType.WINDOW, stream, WINDOW_PAYLOAD.pack(credit))


def decode_window(payload: bytes) -> int:
    """The credit a ``WINDOW`` frame grants.

    Raises:
        TunnelFrameError: The payload is not four bytes.
    """
    if len(payload) != WINDOW_PAYLOAD.size:
        raise TunnelFrameError("a WINDOW frame carries exactly four bytes")
    credit: int = WINDOW_PAYLOAD.unpack(payload)[0]
    return credit


def pack_frames(frames: Iterable[bytes]) -> bytes:
    """Frames as one long-poll body: each prefixed by its length."""
    return b"".join(LENGTH_PREFIX.pack(len(frame)) + frame for frame in frames)


def unpack_frames(body: bytes) -> Iterator[bytes]:
    """The frames of a long-poll body.

    Raises:
        TunnelFrameError: A length runs past the end of the body.
    """
    offset = 0
    while offset < len(body):
        if offset + LENGTH_PREFIX.size > len(body):
            raise TunnelFrameError("a frame length is cut off")
        (length,) = LENGTH_PREFIX.unpack_from(body, offset)
        offset += LENGTH_PREFIX.size
        if offset + length > len(body):
            raise TunnelFrameError("a frame is cut off")
        yield body[offset : offset + length]
        offset += length


HOP_BY_HOP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
"""Headers about one connection, not the message (RFC 9110 §7.6.1): never relayed. Each
side frames the body itself (``Content-Length`` or chunked) on its own connection."""

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
"""Methods a client may repeat (RFC 9110 §9.2.2): the only requests either side sends a
second time (to another worker, or on a fresh connection)."""


def connection_headers(headers: Iterable[tuple[str, str]]) -> frozenset[str]:
    """The lower-case names of the headers about one connection: never relayed.

    The fixed hop-by-hop set, and whatever a ``Connection`` header names besides.
    """
    named = {
        token.strip().lower()
        for name, value in headers
        if name.lower() == "connection"
        for token in value.split(",")
    }
    return HOP_BY_HOP_HEADERS | named


HeaderName = Annotated[str, StringConstraints(min_length=1, max_length=256)]
HeaderValue = Annotated[str, StringConstraints(max_length=MAX_HEADER_VALUE)]
Headers = list[tuple[HeaderName, HeaderValue]]
"""Header name and value pairs in order (a name may repeat, e.g. ``Set-Cookie``)."""


class TunnelHello(ResponseModel):
    """The coordinator's first frame on a new tunnel."""

    worker_id: str
    keepalive: float
    """Send ``PING`` after this many seconds without sending anything."""
    dead_after: float
    """The tunnel is dead after this many seconds without receiving anything."""
    initial_window: int
    """Each stream's credit in each direction before any ``WINDOW``, in bytes."""
    session: str | None = None
    """The long-poll session id (None on a WebSocket)."""


class TunnelState(RequestModel):
    """What a worker can answer now; sent on every new tunnel and whenever it changes."""

    services: list[Annotated[str, StringConstraints(max_length=64)]] = Field(max_length=64)
    """Services whose container runs here and answers its health check."""
    paused: bool = False
    """The volunteer paused (or their rules did): route no new requests here."""


class RelayRequestHead(ResponseModel):
    """An end user's request, as the coordinator hands it to a worker."""

    service: str
    method: str
    target: str
    """The path inside the service, with the query: ``/v1/chat/completions?stream=1``."""
    headers: Headers
    """The end user's headers, less hop-by-hop ones and their API key."""
    body_length: int = 0
    """The body's size in bytes; its frames follow."""


class RelayResponseHead(RequestModel):
    """The service's status and headers, as the worker hands them back."""

    status: Annotated[int, Field(ge=100, le=599)]
    headers: Headers


RelayFailureCode = Literal["not_running", "paused", "unreachable", "failed", "protocol"]
"""Why a stream failed on the worker:

- ``not_running``: no container of this service runs here (the request went nowhere);
- ``paused``: the volunteer paused (the request went nowhere);
- ``unreachable``: the container did not accept the connection (the request went nowhere);
- ``failed``: the container broke off after taking the request, or answered nonsense;
- ``protocol``: the coordinator sent frames out of order.
"""


class RelayFailure(RequestModel):
    """A stream failed on the worker."""

    code: RelayFailureCode
    message: Annotated[str, StringConstraints(max_length=1000)]
    forwarded: bool
    """Whether the request may have reached the service: when False, any request can be
    retried elsewhere; when True only idempotent ones."""


__all__ = [
    "FRAMES_MEDIA_TYPE",
    "HOP_BY_HOP_HEADERS",
    "IDEMPOTENT_METHODS",
    "LENGTH_PREFIX",
    "MAX_BODY_CHUNK",
    "MAX_HEADER_VALUE",
    "MAX_HEAD_BYTES",
    "POLL_PATH",
    "SEND_PATH",
    "SESSION_HEADER",
    "TUNNEL_PATH",
    "TUNNEL_STREAM",
    "FrameType",
    "Headers",
    "RelayFailure",
    "RelayFailureCode",
    "RelayRequestHead",
    "RelayResponseHead",
    "TunnelFrameError",
    "TunnelHello",
    "TunnelState",
    "connection_headers",
    "decode_frame",
    "decode_window",
    "encode_frame",
    "encode_window",
    "pack_frames",
    "unpack_frames",
]
