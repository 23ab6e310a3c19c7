"""One relayed request, passed to the local container and its answer passed back.

The agent forwards only to the containers it manages, on 127.0.0.1: the service a request
names must have a local address in the container runtime, and the request's target is a
path on that address, never a URL of its own.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

from pydantic import ValidationError

from shared.tunnel import (
    MAX_BODY_CHUNK,
    FrameType,
    RelayFailure,
    RelayFailureCode,
    RelayRequestHead,
    RelayResponseHead,
    connection_headers,
    encode_frame,
    encode_window,
)

from .local_http import ConnectFailed, InvalidRequest, LocalHttpClient, LocalHttpError

SendFrame = Callable[[bytes], Awaitable[None]]
"""Sends one frame on the tunnel (raises ``TunnelClosed`` when it ended)."""
LocalUrl = Callable[[str], "str | None"]
"""A service's local address (``http://127.0.0.1:<port>``) while its container is up."""

REQUEST_ONLY_HEADERS = frozenset({"host", "content-length", "expect"})
"""Request headers the forwarder sets itself (or, ``Expect``, must not send: the body is
here already, so there is nothing to wait for a ``100 Continue`` for)."""


class _ProtocolViolation(Exception):
    """The coordinator broke the protocol on one stream."""


class RelayStream:
    """One end user's request on its way to a container, and the answer on its way back.

    The tunnel's reader feeds it (:meth:`on_body`, :meth:`on_body_end`, :meth:`on_window`)
    without waiting; :meth:`Forwarder.forward` runs it.
    """

    def __init__(
        self, stream_id: int, head: RelayRequestHead, initial_window: int, send: SendFrame
    ) -> None:
        """A stream the coordinator opened with ``head``.

        Args:
            stream_id: The id the coordinator chose.
            head: The request.
            initial_window: Each direction's credit before any ``WINDOW``, in bytes.
            send: Sends a frame on the tunnel.
        """
        self.id = stream_id
        self.head = head
        self._send_frame = send
        self._window = initial_window
        self._credit = initial_window
        self._credit_granted = asyncio.Event()
        self._body: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._body_received = 0
        self._body_unacknowledged = 0
        self._body_ended = False
        self._violation: str | None = None
        self.task: asyncio.Task[None] | None = None
        """The task answering it (set by the tunnel)."""

    # -- from the tunnel's reader ----------------------------------------------------------

    def on_body(self, data: bytes) -> None:
        """A ``REQUEST_BODY`` frame arrived."""
        if self._violation is not None:
            return
        self._body_received += len(data)
        self._body_unacknowledged += len(data)
        if self._body_ended or self._body_received > self.head.body_length:
            self._break("more request body than its length")
        elif self._body_unacknowledged > self._window:
            self._break("more request body than the window allows")
        else:
            self._body.put_nowait(data)

    def on_body_end(self) -> None:
        """``REQUEST_END`` arrived."""
        if self._violation is None and self._body_received < self.head.body_length:
            self._break("the request body ended before its length")
        self._body_ended = True

    def on_window(self, credit: int) -> None:
        """The coordinator passed ``credit`` bytes on: that many more may be sent."""
        self._credit += credit
        self._credit_granted.set()

    def _break(self, violation: str) -> None:
        self._violation = violation
        self._body.put_nowait(None)

    # -- towards the coordinator -----------------------------------------------------------

    async def request_body(self) -> AsyncIterator[bytes]:
        """The request body as the coordinator sends it, granting credit back as it goes.

        The client asks for the next piece only once the connection to the container took
        the previous one, so the credit granted is for bytes really passed on.

        Raises:
            _ProtocolViolation: The coordinator sent too much, too little, or out of order.
        """
        remaining = self.head.body_length
        while remaining > 0:
            chunk = await self._body.get()
            if chunk is None:
                raise _ProtocolViolation(self._violation or "the request body broke off")
            remaining -= len(chunk)
            yield chunk
            self._body_unacknowledged -= len(chunk)
            if remaining > 0:  # after the last piece there is nothing more to grant for
                await self._send_frame(encode_window(self.id, len(chunk)))

    async def send_head(self, status: int, headers: list[tuple[str, str]]) -> None:
        """Send ``RESPONSE``.

        Raises:
            ValidationError: The container's status or headers do not fit the protocol.
        """
        head = RelayResponseHead(status=status, headers=headers)
        await self._send_frame(
            encode_frame(FrameType.RESPONSE, self.id, head.model_dump_json().encode())
        )

    async def send_body(self, data: bytes) -> None:
        """Send ``data`` as ``RESPONSE_BODY`` frames, each within the credit left."""
        offset = 0
        while offset < len(data):
            while self._credit <= 0:
                self._credit_granted.clear()
                await self._credit_granted.wait()
            size = min(len(data) - offset, self._credit, MAX_BODY_CHUNK)
            piece = data if size == len(data) else data[offset : offset + size]
            self._credit -= size
            offset += size
            await self._send_frame(encode_frame(FrameType.RESPONSE_BODY, self.id, piece))

    async def send_end(self) -> None:
        """Send ``RESPONSE_END``."""
        await self._send_frame(encode_frame(FrameType.RESPONSE_END, self.id))

    async def fail(self, code: RelayFailureCode, message: str, *, forwarded: bool) -> None:
        """Send ``FAILED``."""
        failure = RelayFailure(code=code, message=message[:1000], forwarded=forwarded)
        await self._send_frame(
            encode_frame(FrameType.FAILED, self.id, failure.model_dump_json().encode())
        )


class Forwarder:
    """Passes streams to the local containers over one shared, keep-alive HTTP client.

    The client (:mod:`.local_http`) sends only the end user's headers, ``Host`` and
    ``Content-Length``, and goes straight to the container: no proxy may stand between
    the agent and a container on loopback.
    """

    def __init__(self, local_url: LocalUrl, http: LocalHttpClient | None = None) -> None:
        """Nothing is contacted until :meth:`forward`.

        Args:
            local_url: The container runtime's local address of a service.
            http: The client to use (one of its own otherwise).
        """
        self._local_url = local_url
        self._http = http if http is not None else LocalHttpClient()
        self._own_http = http is None

    async def aclose(self) -> None:
        """Close the client's idle connections, when it made the client."""
        if self._own_http:
            self._http.close()

    async def forward(self, stream: RelayStream) -> str:
        """Answer ``stream`` from its service's container; return the outcome, for the log.

        The outcome is the response's status, or the failure code sent instead.

        Raises:
            TunnelClosed: The tunnel ended (nothing more can be sent).
        """
        head = stream.head
        base = self._local_url(head.service)
        if base is None:
            return await _fail(stream, "not_running", f"{head.service} does not run here", False)
        address = _address(base)
        if address is None:
            message = f"{head.service}: no usable local address ({base})"
            return await _fail(stream, "unreachable", message, False)
        try:
            response = await self._http.request(
                address,
                head.method,
                head.target,
                _request_headers(head),
                stream.request_body() if head.body_length > 0 else None,
                head.body_length,
            )
        except (InvalidRequest, UnicodeError) as exc:
            return await _fail(stream, "protocol", f"unusable request: {exc}", False)
        except ConnectFailed as exc:
            return await _fail(stream, "unreachable", _describe(exc, head.service), False)
        except _ProtocolViolation as exc:
            return await _fail(stream, "protocol", str(exc), True)
        except LocalHttpError as exc:
            return await _fail(stream, "failed", _describe(exc, head.service), True)
        try:
            raw = [
                (name.decode("latin-1"), value.decode("latin-1"))
                for name, value in response.headers
            ]
            drop = connection_headers(raw)
            await stream.send_head(
                response.status, [(n, v) for n, v in raw if n.lower() not in drop]
            )
            # The body goes as the container encoded it (its Content-Encoding stays).
            async for chunk in response:
                await stream.send_body(chunk)
            await stream.send_end()
        except (LocalHttpError, ValidationError) as exc:
            return await _fail(stream, "failed", _describe(exc, head.service), True)
        finally:
            response.close()
        return str(response.status)


@functools.lru_cache(maxsize=256)
def _address(base: str) -> tuple[str, int] | None:
    """The host and port of a local address (``http://127.0.0.1:<port>``), if it is one."""
    try:
        parts = urlsplit(base)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme != "http" or not parts.hostname or port is None or parts.path not in ("", "/"):
        return None
    return parts.hostname, port


def _request_headers(head: RelayRequestHead) -> list[tuple[bytes, bytes]]:
    """The end user's headers for the container: connection headers dropped once more.

    Latin-1, as HTTP/1.1 carries header bytes: any byte the end user sent goes through.
    ``Host`` and ``Content-Length`` are the client's to write.

    Raises:
        UnicodeEncodeError: A header holds a character latin-1 has not.
    """
    drop = connection_headers(head.headers) | REQUEST_ONLY_HEADERS
    return [
        (name.encode("latin-1"), value.encode("latin-1"))
        for name, value in head.headers
        if name.lower() not in drop
    ]


async def _fail(stream: RelayStream, code: RelayFailureCode, message: str, forwarded: bool) -> str:
    await stream.fail(code, message, forwarded=forwarded)
    return code


def _describe(exc: Exception, service: str) -> str:
    detail = str(exc) or type(exc).__name__
    return f"{service}: {detail}"
