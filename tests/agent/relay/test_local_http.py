"""The relay's own HTTP/1.1 client against real servers on loopback: bodies framed every way
HTTP/1.1 frames them, kept-alive connections reused only when that is safe, backpressure
both ways, and errors that say how far a request got."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import pytest

from desktop_app.agent.relay.local_http import (
    READ_BUFFER_LIMIT,
    ConnectFailed,
    ExchangeFailed,
    InvalidRequest,
    LocalHttpClient,
    LocalResponse,
)
from tests.fixtures.coordinator import free_port

T = TypeVar("T")
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coroutine, 5)

    return asyncio.run(bounded())


class Scripted:
    """A server on a free loopback port that runs ``handler`` for each connection."""

    def __init__(self, make: Callable[[Scripted], Handler]) -> None:
        self.handler = make(self)
        self.connections = 0
        self.requests: list[tuple[bytes, bytes]] = []
        self.closed_by_client = asyncio.Event()
        self._server: asyncio.Server | None = None

    @property
    def address(self) -> tuple[str, int]:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[:2]

    async def __aenter__(self) -> Scripted:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = self.connections
        self.connections += 1
        try:
            await self.handler(reader, writer, index)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:  # still serving when the test's loop ended
            pass
        finally:
            writer.close()

    async def read_request(self, reader: asyncio.StreamReader) -> tuple[bytes, bytes] | None:
        """One request's head and body (None when the client closed the connection)."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            self.closed_by_client.set()
            return None
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        body = await reader.readexactly(length)
        self.requests.append((head, body))
        return head, body


def answering(*responses: bytes, then_close: bool = False) -> Callable[[Scripted], Handler]:
    """A handler that answers each request on a connection with the next of ``responses``."""

    def make(server: Scripted) -> Handler:
        async def handle(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int
        ) -> None:
            for response in responses:
                if await server.read_request(reader) is None:
                    return
                writer.write(response)
                await writer.drain()
            if not then_close:
                await server.read_request(reader)  # until the client goes

        return handle

    return make


async def body_of(response: LocalResponse) -> bytes:
    try:
        return b"".join([chunk async for chunk in response])
    finally:
        response.close()


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"


def test_content_length_body_and_the_request_as_sent() -> None:
    async def main() -> None:
        answer = (
            b"HTTP/1.1 201 Created\r\nX-Thing: a\r\nContent-Length: 5\r\nSet-Cookie: b=1\r\n\r\n"
            b"hello"
        )
        async with Scripted(answering(answer)) as server:
            client = LocalHttpClient()
            headers = [(b"Accept", b"text/plain"), (b"X-Custom", "café".encode("latin-1"))]
            response = await client.request(server.address, "GET", "/p?q=1&r=%20", headers)
            assert response.status == 201
            assert response.headers == [
                (b"X-Thing", b"a"),
                (b"Content-Length", b"5"),
                (b"Set-Cookie", b"b=1"),
            ]
            assert await body_of(response) == b"hello"
            port = server.address[1]
            assert server.requests == [
                (
                    b"GET /p?q=1&r=%%20 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                    b"Accept: text/plain\r\nX-Custom: caf\xe9\r\n\r\n" % port,
                    b"",
                )
            ]
            client.close()

    run(main())


def test_a_chunked_body_arrives_piece_by_piece() -> None:
    async def main() -> None:
        release = asyncio.Event()

        def make(server: Scripted) -> Handler:
            async def handle(
                reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int
            ) -> None:
                await server.read_request(reader)
                writer.write(
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nfirst;\r\n"
                )
                await release.wait()
                writer.write(b"6\r\nsecond\r\n0\r\n\r\n")
                await server.read_request(reader)
                writer.write(OK)
                await server.read_request(reader)

            return handle

        async with Scripted(make) as server:
            client = LocalHttpClient()
            response = await client.request(server.address, "GET", "/stream")
            chunks = aiter(response)
            assert await anext(chunks) == b"first;"  # before the container wrote more
            release.set()
            assert await anext(chunks) == b"second"
            with pytest.raises(StopAsyncIteration):
                await anext(chunks)
            response.close()
            # De-chunked and complete: the connection is kept.
            await body_of(await client.request(server.address, "GET", "/again"))
            assert server.connections == 1
            client.close()

    run(main())


def test_a_body_that_ends_when_the_connection_does() -> None:
    async def main() -> None:
        def make(server: Scripted) -> Handler:
            async def handle(
                reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int
            ) -> None:
                await server.read_request(reader)
                writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nbusybox ")
                await writer.drain()
                await asyncio.sleep(0.01)
                writer.write(b"cgi answer")
                # then close: the body ends here

            return handle

        async with Scripted(make) as server:
            client = LocalHttpClient()
            for _ in range(2):
                response = await client.request(server.address, "GET", "/cgi-bin/echo")
                assert await body_of(response) == b"busybox cgi answer"
            assert server.connections == 2  # never kept
            client.close()

    run(main())


def test_kept_alive_connections_are_reused() -> None:
    async def main() -> None:
        async with Scripted(answering(OK, OK, OK)) as server:
            client = LocalHttpClient()
            for _ in range(3):
                response = await client.request(server.address, "GET", "/")
                assert await body_of(response) == b"hello"
            assert server.connections == 1
            client.close()
            await asyncio.wait_for(server.closed_by_client.wait(), 1)

    run(main())


def test_a_post_never_rides_a_kept_alive_connection() -> None:
    """A container that died holding a reused connection must not get the POST again."""

    async def main() -> None:
        async with Scripted(answering(OK, OK, OK)) as server:
            client = LocalHttpClient()
            await body_of(await client.request(server.address, "GET", "/"))
            await body_of(await client.request(server.address, "POST", "/pay"))
            assert server.connections == 2
            await body_of(await client.request(server.address, "GET", "/"))
            assert server.connections == 2  # the GET's connection was still there
            client.close()

    run(main())


def test_connection_close_and_http_1_0_are_not_reused() -> None:
    async def main() -> None:
        close = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi"
        old = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi"
        async with Scripted(answering(close, close)) as server:
            client = LocalHttpClient()
            for _ in range(2):
                assert await body_of(await client.request(server.address, "GET", "/")) == b"hi"
            assert server.connections == 2
        async with Scripted(answering(old, old)) as server:
            for _ in range(2):
                assert await body_of(await client.request(server.address, "GET", "/")) == b"hi"
            assert server.connections == 2

    run(main())


def test_a_connection_closed_while_idle_is_not_used() -> None:
    async def main() -> None:
        async with Scripted(answering(OK, then_close=True)) as server:
            client = LocalHttpClient()
            await body_of(await client.request(server.address, "GET", "/"))
            await asyncio.sleep(0.05)  # the container's idle timeout closes it
            assert await body_of(await client.request(server.address, "GET", "/")) == b"hello"
            assert server.connections == 2
            client.close()

    run(main())


def test_a_reused_connection_closed_before_answering_is_retried_once() -> None:
    """Only for idempotent methods, which alone are sent on kept-alive connections."""

    async def main() -> None:
        def make(server: Scripted) -> Handler:
            async def handle(
                reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int
            ) -> None:
                await server.read_request(reader)
                if index == 0:
                    writer.write(OK)
                    await writer.drain()
                    # The idle timeout strikes just as the next request comes.
                    await server.read_request(reader)
                    return
                writer.write(OK)
                await server.read_request(reader)

            return handle

        async def body() -> AsyncIterator[bytes]:
            yield b"first piece, "
            await asyncio.sleep(0)
            yield b"second piece"

        async with Scripted(make) as server:
            client = LocalHttpClient()
            await body_of(await client.request(server.address, "GET", "/"))
            response = await client.request(server.address, "PUT", "/", (), body(), 25)
            assert await body_of(response) == b"hello"
            assert server.connections == 2
            # The body went whole both times: the pieces sent were kept for the retry.
            assert [body for _, body in server.requests] == [
                b"",
                b"first piece, second piece",
                b"first piece, second piece",
            ]
            client.close()

    run(main())


def test_a_new_connection_closed_before_answering_is_not_retried() -> None:
    async def main() -> None:
        def make(server: Scripted) -> Handler:
            async def handle(
                reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int
            ) -> None:
                await server.read_request(reader)  # and close, unanswered

            return handle

        async with Scripted(make) as server:
            client = LocalHttpClient()
            with pytest.raises(ExchangeFailed, match="closed the connection"):
                await client.request(server.address, "GET", "/")
            assert server.connections == 1

    run(main())


def test_head_and_no_content_have_no_body_and_keep_the_connection() -> None:
    async def main() -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
        no_content = b"HTTP/1.1 204 No Content\r\n\r\n"
        not_modified = b"HTTP/1.1 304 Not Modified\r\nContent-Length: 1000\r\n\r\n"
        async with Scripted(answering(head, no_content, not_modified, OK)) as server:
            client = LocalHttpClient()
            response = await client.request(server.address, "HEAD", "/file")
            assert response.status == 200
            assert (b"Content-Length", b"1000") in response.headers
            assert await body_of(response) == b""
            for status in (204, 304):
                response = await client.request(server.address, "GET", "/")
                assert response.status == status and await body_of(response) == b""
            assert await body_of(await client.request(server.address, "GET", "/")) == b"hello"
            assert server.connections == 1
            client.close()

    run(main())


def test_interim_answers_are_skipped() -> None:
    async def main() -> None:
        answer = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + OK
        async with Scripted(answering(answer)) as server:
            client = LocalHttpClient()
            response = await client.request(server.address, "GET", "/")
            assert (response.status, response.headers) == (200, [(b"Content-Length", b"5")])
            assert await body_of(response) == b"hello"

    run(main())


def test_the_request_body_is_streamed_with_its_length() -> None:
    async def main() -> None:
        pulled: list[int] = []

        async def body() -> AsyncIterator[bytes]:
            for index in range(3):
                pulled.append(index)
                await asyncio.sleep(0.01)
                yield b"piece %d;" % index

        async with Scripted(answering(OK)) as server:
            client = LocalHttpClient()
            response = await client.request(server.address, "PUT", "/up", (), body(), 24)
            assert await body_of(response) == b"hello"
            head, sent = server.requests[0]
            assert b"\r\nContent-Length: 24\r\n" in head
            assert sent == b"piece 0;piece 1;piece 2;"
            # A body-less POST still says its length.
            await body_of(await client.request(server.address, "POST", "/", (), None, 0))
            client.close()
        assert b"\r\nContent-Length: 0\r\n" in server.requests[-1][0]

    run(main())


def test_a_body_of_the_wrong_length_breaks_the_exchange() -> None:
    async def main() -> None:
        async def body() -> AsyncIterator[bytes]:
            yield b"12345"

        async with Scripted(answering(OK)) as server:
            client = LocalHttpClient()
            with pytest.raises(ExchangeFailed, match="longer"):
                await client.request(server.address, "POST", "/", (), body(), 3)
            with pytest.raises(ExchangeFailed, match="shorter"):
                await client.request(server.address, "POST", "/", (), body(), 10)

    run(main())


def test_a_request_body_goes_no_faster_than_the_container_takes_it() -> None:
    async def main() -> None:
        piece, pieces = b"x" * 65536, 512  # 32 MiB
        pulled = 0
        reading = asyncio.Event()

        async def body() -> AsyncIterator[bytes]:
            nonlocal pulled
            for _ in range(pieces):
                pulled += len(piece)
                yield piece

        def make(server: Scripted) -> Handler:
            async def handle(
                reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int
            ) -> None:
                await reading.wait()
                await server.read_request(reader)
                writer.write(OK)
                await server.read_request(reader)

            return handle

        async with Scripted(make) as server:
            client = LocalHttpClient()
            request = asyncio.create_task(
                client.request(server.address, "POST", "/", (), body(), len(piece) * pieces)
            )
            await asyncio.sleep(0.2)
            # Socket buffers and the transport's own hold a few MiB at most.
            assert pulled < len(piece) * pieces // 2
            reading.set()
            assert await body_of(await request) == b"hello"
            assert len(server.requests[0][1]) == len(piece) * pieces
            client.close()

    run(main())


def test_an_unread_body_stops_being_read_from_the_socket() -> None:
    async def main() -> None:
        size = 32 * 1024 * 1024
        written = 0

        def make(server: Scripted) -> Handler:
            async def handle(
                reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int
            ) -> None:
                nonlocal written
                await server.read_request(reader)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
                piece = b"y" * 65536
                while written < size:
                    writer.write(piece)
                    await writer.drain()
                    written += len(piece)
                await server.read_request(reader)

            return handle

        async with Scripted(make) as server:
            client = LocalHttpClient()
            response = await client.request(server.address, "GET", "/big")
            chunks = aiter(response)
            received = len(await anext(chunks))
            await asyncio.sleep(0.2)  # a slow reader: nothing taken meanwhile
            # The server's writes block once the client buffered its limit and the kernel's
            # buffers are full, far before the whole body went.
            assert written < size // 2
            async for chunk in chunks:
                assert len(chunk) <= 2 * READ_BUFFER_LIMIT
                received += len(chunk)
            assert received == size
            response.close()
            client.close()

    run(main())


def test_closing_an_answer_early_closes_its_connection() -> None:
    async def main() -> None:
        partial = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nstarted;"

        def make(server: Scripted) -> Handler:
            first, then = answering(partial)(server), answering(OK)(server)

            async def handle(
                reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int
            ) -> None:
                await (first if index == 0 else then)(reader, writer, index)

            return handle

        async with Scripted(make) as server:
            client = LocalHttpClient()
            response = await client.request(server.address, "GET", "/slow")
            assert await anext(aiter(response)) == b"started;"
            response.close()  # the end user went away
            await asyncio.wait_for(server.closed_by_client.wait(), 1)
            assert await body_of(await client.request(server.address, "GET", "/")) == b"hello"
            assert server.connections == 2

    run(main())


def test_a_body_cut_short_fails() -> None:
    async def main() -> None:
        cut = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial"
        async with Scripted(answering(cut, then_close=True)) as server:
            client = LocalHttpClient()
            response = await client.request(server.address, "GET", "/die")
            with pytest.raises(ExchangeFailed, match="before the end of its body"):
                await body_of(response)

    run(main())


def test_nonsense_and_silence_fail() -> None:
    async def main() -> None:
        async with Scripted(answering(b"SSH-2.0-OpenSSH\r\n\r\n")) as server:
            with pytest.raises(ExchangeFailed, match="not HTTP"):
                await LocalHttpClient().request(server.address, "GET", "/")

        def silent(server: Scripted) -> Handler:
            async def handle(
                reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int
            ) -> None:
                await server.read_request(reader)
                await asyncio.sleep(1)  # and answers nothing

            return handle

        async with Scripted(silent) as server:
            client = LocalHttpClient(read_timeout=0.1)
            with pytest.raises(ExchangeFailed, match="sent nothing for"):
                await client.request(server.address, "GET", "/")

    run(main())


def test_connection_refused() -> None:
    async def main() -> None:
        with pytest.raises(ConnectFailed, match="cannot connect"):
            await LocalHttpClient().request(("127.0.0.1", free_port()), "GET", "/")

    run(main())


@pytest.mark.parametrize(
    ("method", "target", "headers"),
    [
        ("GET", "@elsewhere.example/", []),
        ("GET", "http://elsewhere.example/", []),
        ("GET", "", []),
        ("GET", "/a b", []),
        ("GET", "/a\r\nHost: elsewhere.example", []),
        ("GET", "/\x00", []),
        ("GET", "/caf\u00e9", []),
        ("GE T", "/", []),
        ("GET", "/", [(b"X-A", b"1\r\nHost: elsewhere.example")]),
        ("GET", "/", [(b"X A", b"1")]),
        ("GET", "/", [(b"Host", b"elsewhere.example")]),
        ("GET", "/", [(b"Transfer-Encoding", b"chunked")]),
    ],
)
def test_a_request_that_could_say_something_else_is_refused(
    method: str, target: str, headers: list[tuple[bytes, bytes]]
) -> None:
    async def main() -> None:
        async with Scripted(answering(OK)) as server:
            with pytest.raises(InvalidRequest):
                await LocalHttpClient().request(server.address, method, target, headers)
            assert server.connections == 0

    run(main())


def test_closing_the_client_closes_idle_connections() -> None:
    async def main() -> None:
        async with Scripted(answering(OK, OK)) as server:
            client = LocalHttpClient()
            responses = [await client.request(server.address, "GET", "/") for _ in range(2)]
            for response in responses:
                await body_of(response)
            assert server.connections == 2
            client.close()
            await asyncio.wait_for(server.closed_by_client.wait(), 1)

    run(main())
