"""A small HTTP/1.1 client for one job: relayed requests to a container on loopback.

The relay's worker passes every end user's request to a container on ``127.0.0.1``; a
general client (httpx, over httpcore and anyio) spent about 1.5 ms of CPU on each, more
than the rest of the relay together. This one does only what that job needs, on asyncio
protocols and httptools' C parser (llhttp):

- a request is a method, a target (a path with its query: never a URL, so it cannot name
  another host), headers as latin-1 bytes, and a body of known length that arrives in
  pieces (:class:`LocalHttpClient.request`); nothing else is added but ``Host`` and
  ``Content-Length``;
- the response's body comes piece by piece as the container sends it, framed by
  ``Content-Length``, chunked (de-chunked here: ``Transfer-Encoding`` belongs to one
  connection) or ended by the container closing the connection;
- kept-alive connections wait in a pool per address, and are reused only after an answer
  that allowed it and was read to its end;
- backpressure both ways: the next piece of the request body is asked for only once the
  connection took the last one, and a response body nobody reads stops being read from the
  socket.

Errors say how far the request got: :class:`InvalidRequest` (nothing sent, the request
cannot be written), :class:`ConnectFailed` (nothing sent, no connection), and
:class:`ExchangeFailed` (the request, or part of it, may have reached the container).
"""

from __future__ import annotations

import asyncio
import collections
import re
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from typing import cast

import httptools

from shared.tunnel import IDEMPOTENT_METHODS

CONNECT_TIMEOUT = 5.0
"""Seconds a connection to a container may take to open."""
READ_TIMEOUT = 300.0
"""Seconds a container may stay silent before its head or between pieces of its body: a
language model can think for minutes before its next token."""
WRITE_TIMEOUT = 300.0
"""Seconds a container may take no request bytes while the request body is being sent."""
MAX_IDLE_PER_ADDRESS = 32
"""Idle kept-alive connections kept per address; more are closed when they free up. The
coordinator bounds how many requests a worker answers at once, so more are rarely needed."""
READ_BUFFER_LIMIT = 256 * 1024
"""Bytes of response body buffered unread before the socket is no longer read."""
REPLAY_LIMIT = 1024 * 1024
"""The most request body bytes kept to send again when a reused connection turns out to
have been closed by the container before it answered (see :meth:`LocalHttpClient.request`)."""

_METHOD = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
"""An HTTP token (RFC 9110 §5.6.2): a method, or a header's name."""
_TARGET = re.compile(rb"/[\x21-\x7e]*")
"""An origin-form target: a path and query of visible ASCII, no space, no control."""
_FIELD_VALUE = re.compile(rb"[^\x00-\x08\x0a-\x1f\x7f]*")
"""A header's value: any byte but the controls (tab allowed), so never a line break."""
_SET_HERE = frozenset({b"host", b"content-length", b"transfer-encoding"})
"""Headers this client writes itself (or, ``Transfer-Encoding``, never): a second copy from
the caller would let the container frame the request differently from this client."""
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
"""Methods sent with ``Content-Length: 0`` when they have no body: some servers refuse them
without one (``411 Length Required``)."""


class LocalHttpError(Exception):
    """A request to a local container failed."""


class InvalidRequest(LocalHttpError, ValueError):
    """The request cannot be written as HTTP/1.1 as given; nothing was sent."""


class ConnectFailed(LocalHttpError):
    """No connection to the container (refused, or not within the timeout); nothing was sent."""


class ExchangeFailed(LocalHttpError):
    """The exchange broke off after the request, or part of it, was sent.

    The connection closed early, the container was silent too long, or it answered
    something that is not HTTP/1.1.
    """


class _ClosedUnanswered(ExchangeFailed):
    """The connection closed before a single byte of the answer came."""


def _wake(waiter: asyncio.Future[bool] | None, result: bool = True) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(result)


class _Connection(asyncio.Protocol):
    """One TCP connection to a container, carrying one exchange at a time.

    The parser's callbacks record the answer; the task that sent the request, and then
    :class:`LocalResponse`, wait for it through :meth:`wait_for_news`.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, address: tuple[str, int]) -> None:
        self._loop = loop
        self.address = address
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self.closed = False
        """The connection is gone, or going: it carries nothing more."""
        self.idle_in: list[_Connection] | None = None
        """The pool's list this connection waits in while idle."""
        self._waiter: asyncio.Future[bool] | None = None
        self._write_paused = False
        self._drained: asyncio.Future[bool] | None = None
        self._reset()

    def _reset(self) -> None:
        """Forget the last exchange: the connection is idle."""
        self.in_exchange = False
        """A request went out on it (and the connection was not made idle since)."""
        self._request_whole = True  # all of the request was sent
        self._head_only = False
        self._answered = False  # a byte of the answer came
        self._interim = False  # parsing a 1xx head, to be skipped
        self.head_done = False
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self._has_length = False
        self._chunked = False
        self.complete = False
        """The whole answer is here (in :attr:`body`, if not yet read)."""
        self.reusable = False
        """The answer allowed keeping the connection, and nothing odd happened."""
        self.failure: ExchangeFailed | None = None
        self.body: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._reading_paused = False

    # -- the exchange, from the task that runs it ------------------------------------------

    def start(self, head: bytes, head_only: bool) -> None:
        """Send a request's head; its answer is parsed as it comes from now on."""
        assert self.transport is not None and not self.in_exchange
        self.in_exchange = True
        self._head_only = head_only
        self.transport.write(head)

    def write(self, data: bytes) -> None:
        """Send a piece of the request body."""
        assert self.transport is not None
        if not self.closed:
            self.transport.write(data)

    def cut_request(self) -> None:
        """The request was not sent whole: the connection can carry nothing after it."""
        self._request_whole = False
        self.reusable = False

    @property
    def must_stop_sending(self) -> bool:
        """The connection closed, or the container answered before it had the whole body."""
        return self.closed or self.head_done

    async def drain(self, timeout: float) -> None:
        """Wait until the connection can take more request bytes (or closed).

        Raises:
            ExchangeFailed: It took nothing for ``timeout`` seconds.
        """
        while self._write_paused and not self.closed:
            self._drained = self._loop.create_future()
            if not await _wait(self._loop, self._drained, timeout):
                raise ExchangeFailed(f"the container took no request bytes for {timeout:.0f} s")

    async def wait_for_news(self, timeout: float) -> None:
        """Wait until the answer moves on: its head, body, end, or a failure.

        Raises:
            ExchangeFailed: Nothing came for ``timeout`` seconds.
        """
        self._waiter = self._loop.create_future()
        if not await _wait(self._loop, self._waiter, timeout):
            raise ExchangeFailed(f"the container sent nothing for {timeout:.0f} s")

    def take_body(self) -> bytes:
        """All of the body that arrived and was not taken yet (b"" when none)."""
        body = self.body
        if not body:
            return b""
        data = body.popleft() if len(body) == 1 else b"".join(body)
        body.clear()
        self._buffered = 0
        if self._reading_paused and not self.closed:
            self._reading_paused = False
            assert self.transport is not None
            self.transport.resume_reading()
        return data

    def finish(self) -> None:
        """Make the connection idle again after a complete answer that was read to its end."""
        if self._head_only:
            # llhttp cannot be told that an answer to HEAD has no body: a new parser.
            self._parser = httptools.HttpResponseParser(self)
        self._reset()

    def close(self) -> None:
        """Close the connection (whatever is under way on it breaks off)."""
        if not self.closed:
            self.closed = True
            self.reusable = False
            if self.transport is not None:
                self.transport.close()

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if not self.in_exchange:
            # Bytes nobody asked for (or more after an answer's end): nothing on this
            # connection can be trusted to line up any more.
            self.close()
            return
        self._answered = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(ExchangeFailed("the container switched protocols"))
        except httptools.HttpParserError as exc:
            self._fail(ExchangeFailed(f"the container's answer is not HTTP/1.1 ({exc})"))

    def eof_received(self) -> bool | None:
        return None  # close: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        if self.idle_in is not None:
            self.idle_in.remove(self)
            self.idle_in = None
        if self.in_exchange and not self.complete and self.failure is None:
            if self.head_done and not self._has_length and not self._chunked:
                self.complete = True  # a body that ends when the connection does
            elif not self._answered:
                reason = f" ({exc})" if exc is not None else ""
                self.failure = _ClosedUnanswered(f"the container closed the connection{reason}")
            else:
                reason = f" ({exc})" if exc is not None else ""
                what = "its body" if self.head_done else "its head"
                self.failure = ExchangeFailed(
                    f"the container closed the connection before the end of {what}{reason}"
                )
        _wake(self._waiter)
        _wake(self._drained)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        _wake(self._drained)

    def _fail(self, failure: ExchangeFailed) -> None:
        if self.failure is None and not self.complete:
            self.failure = failure
        self.close()
        _wake(self._waiter)

    # -- httptools' callbacks --------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.complete:  # a second answer to one request
            self.close()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        if len(name) == 14 and name.lower() == b"content-length":
            self._has_length = True
        elif len(name) == 17 and name.lower() == b"transfer-encoding":
            self._chunked = value.rpartition(b",")[2].strip().lower() == b"chunked"

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:  # 100 Continue, 103 Early Hints: the answer is yet to come
            self._interim = True
            self.headers = []
            self._has_length = self._chunked = False
            return
        self.status = status
        self.head_done = True
        if self._head_only:
            self._complete(self._parser.should_keep_alive())
        else:
            _wake(self._waiter)

    def on_body(self, body: bytes) -> None:
        if self.complete:  # a body after an answer to HEAD
            self.close()
            return
        self.body.append(body)
        self._buffered += len(body)
        if self._buffered > READ_BUFFER_LIMIT and not self._reading_paused:
            self._reading_paused = True
            assert self.transport is not None
            self.transport.pause_reading()
        _wake(self._waiter)

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
        elif not self.complete:
            self._complete(self._parser.should_keep_alive())

    def _complete(self, keep_alive: bool) -> None:
        self.complete = True
        self.reusable = keep_alive and self._request_whole and not self.closed
        _wake(self._waiter)


async def _wait(
    loop: asyncio.AbstractEventLoop, waiter: asyncio.Future[bool], timeout: float
) -> bool:
    """Wait for ``waiter``; False when ``timeout`` seconds passed first.

    One timer per wait, cheaper than ``asyncio.wait_for`` (which wraps the wait in a task).
    """
    timer = loop.call_later(timeout, _wake, waiter, False)
    try:
        return await waiter
    finally:
        timer.cancel()


class _Replay:
    """The request body sent on a reused connection, kept to send again if need be."""

    def __init__(self) -> None:
        self.pieces: list[bytes] | None = []
        self._size = 0

    def keep(self, piece: bytes) -> None:
        if self.pieces is not None:
            self._size += len(piece)
            if self._size > REPLAY_LIMIT:
                self.pieces = None  # too big to keep: this request will not be tried again
            else:
                self.pieces.append(piece)


async def _replayed(sent: list[bytes], rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    for piece in sent:
        yield piece
    async for piece in rest:
        yield piece


class LocalResponse:
    """A container's answer: its status and headers, then its body as an async iterator.

    ``async for chunk in response`` gives the body's pieces as they come (de-chunked);
    :meth:`close` whenever done with it, read to the end or not.
    """

    def __init__(
        self, client: LocalHttpClient, connection: _Connection, read_timeout: float
    ) -> None:
        self._client = client
        self._connection: _Connection | None = connection
        self._read_timeout = read_timeout
        self.status = connection.status
        """The status code (never 1xx: interim answers are skipped)."""
        self.headers = connection.headers
        """The headers in order, as sent (names in their case, values as bytes)."""

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        """The next piece of the body.

        Raises:
            ExchangeFailed: The body broke off, or the container was silent for too long.
            StopAsyncIteration: The body is complete.
        """
        connection = self._connection
        if connection is None:
            raise StopAsyncIteration
        while True:
            data = connection.take_body()
            if data:
                return data
            if connection.failure is not None:
                raise connection.failure
            if connection.complete:
                self._connection = None
                self._client.release(connection)
                raise StopAsyncIteration
            if connection.closed:  # closed meanwhile by close()
                raise ExchangeFailed("the response was closed")
            await connection.wait_for_news(self._read_timeout)

    def close(self) -> None:
        """Done with the answer, read to its end or not.

        Its connection goes back to the pool when the whole body was read and the container
        allows keeping it, and is closed otherwise.
        """
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if connection.complete and not connection.body:
            self._client.release(connection)
        else:
            connection.close()


class LocalHttpClient:
    """Sends requests to the containers on this machine over kept-alive connections."""

    def __init__(
        self,
        *,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        write_timeout: float = WRITE_TIMEOUT,
        max_idle_per_address: int = MAX_IDLE_PER_ADDRESS,
    ) -> None:
        """Nothing is contacted until :meth:`request`.

        Args:
            connect_timeout: Seconds a connection may take to open.
            read_timeout: Seconds the container may stay silent while an answer is due.
            write_timeout: Seconds the container may take no bytes of a request body.
            max_idle_per_address: Idle connections kept per address.
        """
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self._max_idle = max_idle_per_address
        self._idle: dict[tuple[str, int], list[_Connection]] = {}

    async def request(
        self,
        address: tuple[str, int],
        method: str,
        target: str,
        headers: Sequence[tuple[bytes, bytes]] = (),
        body: AsyncIterable[bytes] | None = None,
        body_length: int = 0,
    ) -> LocalResponse:
        """Send a request and return the answer once its head arrived.

        The body goes piece by piece as ``body`` yields them, each asked for only once the
        connection took the one before. Only idempotent requests use a kept-alive
        connection, which the container may have closed just as it was picked; when it
        closes before a single byte of the answer, the request is sent once more, on a new
        connection (with the body pieces sent so far, up to :data:`REPLAY_LIMIT` bytes; a
        longer body is not tried again).

        Args:
            address: The container's host and port (``("127.0.0.1", port)``).
            method: The request method (an HTTP token, such as ``GET``).
            target: The path with its query: ``/v1/models?x=1``; nothing else.
            headers: Header names and values, as latin-1 bytes; ``Host`` and
                ``Content-Length`` are this client's to write.
            body: The body's pieces (ignored when ``body_length`` is 0).
            body_length: The body's size in bytes: ``body`` must yield exactly that many.

        Raises:
            InvalidRequest: The request cannot be written; nothing was sent.
            ConnectFailed: No connection; nothing was sent.
            ExchangeFailed: The request (or part of it) was sent, and then it broke off.
            Exception: Whatever ``body`` raised (the connection is closed).
        """
        head = _request_head(address, method, target, headers, body_length)
        pieces = body.__aiter__() if body is not None and body_length > 0 else None
        head_only = method == "HEAD"
        # A kept-alive connection may have been closed by the container just now; only a
        # request that may be sent twice risks it (and is sent again if so). The others get
        # a new connection, so a container that died holding one is never asked twice.
        connection = self._idle_connection(address) if method in IDEMPOTENT_METHODS else None
        if connection is not None:
            replay = _Replay() if pieces is not None else None
            try:
                return await self._exchange(
                    connection, head, head_only, pieces, body_length, replay
                )
            except _ClosedUnanswered:
                # The container closed it just as it was picked (its idle timeout): it
                # answered nothing, so the request goes once more, on a new connection.
                if pieces is not None:
                    assert replay is not None
                    if replay.pieces is None:
                        raise
                    pieces = _replayed(replay.pieces, pieces)
        connection = await self._connect(address)
        return await self._exchange(connection, head, head_only, pieces, body_length, None)

    async def _exchange(
        self,
        connection: _Connection,
        head: bytes,
        head_only: bool,
        pieces: AsyncIterator[bytes] | None,
        body_length: int,
        replay: _Replay | None,
    ) -> LocalResponse:
        try:
            connection.start(head, head_only)
            if pieces is not None:
                await self._send_body(connection, pieces, body_length, replay)
            while not connection.head_done:
                if connection.failure is not None:
                    raise connection.failure
                if connection.closed:
                    raise ExchangeFailed("the connection closed before the answer")
                await connection.wait_for_news(self._read_timeout)
        except BaseException:
            connection.close()
            raise
        return LocalResponse(self, connection, self._read_timeout)

    async def _send_body(
        self,
        connection: _Connection,
        pieces: AsyncIterator[bytes],
        body_length: int,
        replay: _Replay | None,
    ) -> None:
        sent = 0
        while not connection.must_stop_sending:
            try:
                piece = await pieces.__anext__()
            except StopAsyncIteration:
                break
            sent += len(piece)
            if sent > body_length:
                raise ExchangeFailed("the request body was longer than its length")
            if replay is not None:
                replay.keep(piece)
            connection.write(piece)
            await connection.drain(self._write_timeout)
        else:
            # Answered early, or closed: the rest of the body goes nowhere, and the
            # connection cannot carry another request.
            if sent < body_length:
                connection.cut_request()
            return
        if sent < body_length:
            raise ExchangeFailed("the request body was shorter than its length")

    def _idle_connection(self, address: tuple[str, int]) -> _Connection | None:
        idle = self._idle.get(address)
        while idle:
            connection = idle.pop()  # the most recently used: the least likely timed out
            connection.idle_in = None
            assert connection.transport is not None
            if not connection.closed and not connection.transport.is_closing():
                return connection
        return None

    async def _connect(self, address: tuple[str, int]) -> _Connection:
        loop = asyncio.get_running_loop()
        host, port = address
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, connection = await loop.create_connection(
                    lambda: _Connection(loop, address), host, port
                )
        except TimeoutError:  # before OSError: a TimeoutError is one
            raise ConnectFailed(
                f"no connection to {host}:{port} within {self._connect_timeout:.0f} s"
            ) from None
        except OSError as exc:
            raise ConnectFailed(f"cannot connect to {host}:{port}: {exc}") from exc
        return connection

    def release(self, connection: _Connection) -> None:
        """Take back a connection whose answer was read to its end: kept or closed."""
        if not connection.reusable or connection.closed:
            connection.close()
            return
        idle = self._idle.setdefault(connection.address, [])
        if len(idle) >= self._max_idle:
            connection.close()
            return
        connection.finish()
        connection.idle_in = idle
        idle.append(connection)

    def close(self) -> None:
        """Close every idle connection (connections in use close when their answers end)."""
        idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in list(connections):
                connection.idle_in = None
                connection.close()


def _request_head(
    address: tuple[str, int],
    method: str,
    target: str,
    headers: Sequence[tuple[bytes, bytes]],
    body_length: int,
) -> bytes:
    """The request's head, every part checked: nothing can add a line or change the host.

    Raises:
        InvalidRequest: A part of the request cannot be written as it is.
    """
    try:
        method_bytes = method.encode("ascii")
        target_bytes = target.encode("ascii")
    except UnicodeEncodeError:
        raise InvalidRequest("the method and the target must be ASCII") from None
    if not _METHOD.fullmatch(method_bytes):
        raise InvalidRequest(f"not a method: {method!r}")
    if not _TARGET.fullmatch(target_bytes):
        raise InvalidRequest(f"not a path: {target!r}")
    if body_length < 0:
        raise InvalidRequest("a body cannot be shorter than nothing")
    host, port = address
    parts = [
        method_bytes,
        b" ",
        target_bytes,
        b" HTTP/1.1\r\nHost: %s:%d\r\n" % (host.encode(), port),
    ]
    for name, value in headers:
        if not _METHOD.fullmatch(name) or not _FIELD_VALUE.fullmatch(value):
            raise InvalidRequest(f"not a header: {name!r}")
        if name.lower() in _SET_HERE:
            raise InvalidRequest(f"{name.decode()} is for the client to write")
        parts += (name, b": ", value, b"\r\n")
    if body_length > 0 or method in _BODY_METHODS:
        parts.append(b"Content-Length: %d\r\n" % body_length)
    parts.append(b"\r\n")
    return b"".join(parts)


__all__ = [
    "CONNECT_TIMEOUT",
    "MAX_IDLE_PER_ADDRESS",
    "READ_BUFFER_LIMIT",
    "READ_TIMEOUT",
    "REPLAY_LIMIT",
    "WRITE_TIMEOUT",
    "ConnectFailed",
    "ExchangeFailed",
    "InvalidRequest",
    "LocalHttpClient",
    "LocalHttpError",
    "LocalResponse",
]
