"""A cheap HTTP/1.1 load generator for the benches: raw asyncio, no HTTP library in the loop.

:func:`run_load` keeps ``concurrency`` connections busy, one request in flight on each, for
a warm-up and then a measured phase, and returns a :class:`LoadResult`. The request is
serialised once. Each connection reads the status line and headers, then the body by
``Content-Length``, by chunks (``Transfer-Encoding: chunked``) or until the server closes
(no length given). It keeps the connection for the next request when the server allows
it (HTTP/1.1 without ``Connection: close``, or HTTP/1.0 with ``Connection: keep-alive``),
and otherwise connects again. busybox httpd, the tests' service, closes after every
answer; uvicorn, the coordinator, keeps connections alive.

A request's latency runs from just before the connection is opened (when one has to be)
or the request is written, to the last byte of the body, read with
``time.perf_counter_ns`` (CLOCK_MONOTONIC on Linux). That is what a client waits for: a
server that closes after each answer makes every client pay a connect. Only 2xx answers
have their latency recorded; other statuses are counted in ``non_2xx``, and failures to
connect, to write or to read a whole answer in ``errors``. A request still unanswered
``grace`` seconds after its phase ended is abandoned and counted as an error. A reused
keep-alive connection that the server closed while it was idle is retried once on a new
connection, as HTTP clients do, and is not counted.

The caller puts the repository on ``sys.path`` and imports ``bench._load``, as the scripts
in ``bench/`` do. ``bench/heartbeats.py`` keeps its own, older client (Content-Length
only, keep-alive only); this one is the general one.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

DEFAULT_GRACE_S = 10.0
"""Seconds a request may run past the end of its phase before it is abandoned."""
CONNECT_RETRY_PAUSE_S = 0.05
"""A connection that could not be opened waits this long before trying again."""
_DRAIN_ABOVE = 64 * 1024
"""Requests larger than this wait for the socket's buffer to drain while being written."""
_READ_CHUNK = 64 * 1024
_NO_BODY_STATUSES = frozenset({204, 304})


class BadResponse(Exception):
    """The server's answer is not HTTP/1.x as this client reads it."""


@dataclass(frozen=True)
class Target:
    """Where the requests go: a plain-HTTP origin and the request target on it."""

    host: str
    port: int
    path: str
    """The request target: path and query string."""

    @classmethod
    def from_url(cls, url: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"only http://host[:port]/path URLs are supported, not {url!r}")
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        return cls(host=parts.hostname, port=parts.port or 80, path=path)

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == 80 else f"{host}:{self.port}"

    def request_bytes(self, method: str, headers: dict[str, str], body: bytes) -> bytes:
        """The whole request, serialised once and written as is for every request."""
        lines = [f"{method} {self.path} HTTP/1.1", f"Host: {self.host_header}"]
        names = {name.lower() for name in headers}
        if "user-agent" not in names:
            lines.append("User-Agent: rma-bench")
        if "accept" not in names:
            lines.append("Accept: */*")
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass
class _Tally:
    latencies_ns: list[int] = field(default_factory=list)
    non_2xx: int = 0
    errors: int = 0
    connects: int = 0
    body_bytes: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    first_error: str | None = None
    last_done_ns: int = 0

    def error(self, what: str) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = what


class _Connection:
    """One client connection, reopened whenever the server closed the previous one."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(
            self.target.host, self.target.port, limit=_READ_CHUNK
        )
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def _read_chunked(reader: asyncio.StreamReader) -> int:
    total = 0
    while True:
        size_line = await reader.readuntil(b"\r\n")
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise BadResponse(f"bad chunk size line {size_line[:60]!r}") from None
        if size == 0:
            # Trailers, if any, end with an empty line.
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass
            return total
        await reader.readexactly(size + 2)
        total += size


async def _read_to_close(reader: asyncio.StreamReader) -> int:
    total = 0
    while chunk := await reader.read(_READ_CHUNK):
        total += len(chunk)
    return total


async def read_response(reader: asyncio.StreamReader, method: str) -> tuple[int, int, bool]:
    """Read one answer; return its status, its body's length and whether it keeps alive.

    Raises:
        asyncio.IncompleteReadError: The server closed before the answer was whole (with
            ``partial == b""`` when it sent nothing at all).
        BadResponse: The answer is not HTTP/1.x.
    """
    head = await reader.readuntil(b"\r\n\r\n")
    status_end = head.find(b"\r\n")
    parts = head[:status_end].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise BadResponse(f"bad status line {head[:status_end][:100]!r}")
    try:
        status = int(parts[1])
    except ValueError:
        raise BadResponse(f"bad status line {head[:status_end][:100]!r}") from None
    keep_alive = parts[0] != b"HTTP/1.0"
    length: int | None = None
    chunked = False
    for line in head[status_end + 2 : -4].split(b"\r\n"):
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                raise BadResponse(f"bad Content-Length {value[:40]!r}") from None
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            tokens = value.lower()
            if b"close" in tokens:
                keep_alive = False
            elif b"keep-alive" in tokens:
                keep_alive = True
    if method == "HEAD" or status < 200 or status in _NO_BODY_STATUSES:
        return status, 0, keep_alive
    if chunked:
        return status, await _read_chunked(reader), keep_alive
    if length is not None:
        if length:
            await reader.readexactly(length)
        return status, length, keep_alive
    # No length: the body ends when the server closes, so the connection cannot be reused.
    return status, await _read_to_close(reader), False


_TRANSPORT_ERRORS = (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, BadResponse)
_IDLE_CLOSE_ERRORS = (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError)
"""How a reused connection fails when the server closed it before the request arrived."""


async def _drive(
    conn: _Connection, request: bytes, method: str, deadline_ns: int, tally: _Tally
) -> None:
    """Send ``request`` on ``conn``, one at a time, until ``deadline_ns``."""
    clock = time.perf_counter_ns
    drain = len(request) > _DRAIN_ABOVE
    latencies = tally.latencies_ns
    while (started := clock()) < deadline_ns:
        for attempt in (1, 2):
            reused = conn.writer is not None
            if not reused:
                try:
                    await conn.open()
                except OSError as exc:
                    tally.error(f"connect: {exc!r}")
                    await asyncio.sleep(CONNECT_RETRY_PAUSE_S)
                    break
                tally.connects += 1
            reader, writer = conn.reader, conn.writer
            assert reader is not None and writer is not None
            try:
                writer.write(request)
                if drain:
                    await writer.drain()
                status, body_bytes, keep_alive = await read_response(reader, method)
            except _TRANSPORT_ERRORS as exc:
                conn.close()
                idle_close = isinstance(exc, _IDLE_CLOSE_ERRORS) and not getattr(
                    exc, "partial", b""
                )
                if reused and attempt == 1 and idle_close:
                    continue  # the server dropped a kept-alive connection while it was idle
                tally.error(repr(exc))
                break
            done = clock()
            if not keep_alive:
                conn.close()
            tally.statuses[status] = tally.statuses.get(status, 0) + 1
            tally.body_bytes += body_bytes
            if 200 <= status < 300:
                latencies.append(done - started)
            else:
                tally.non_2xx += 1
            tally.last_done_ns = done
            break


@dataclass(frozen=True)
class LoadResult:
    """One measured phase of :func:`run_load`."""

    url: str
    method: str
    concurrency: int
    seconds: float
    """Measured wall time: from the start to the end of the phase or of its last answer."""
    latencies_ns: list[int]
    """Latency of every 2xx answer, sorted, in nanoseconds."""
    non_2xx: int
    """Answers with a status outside 200-299."""
    errors: int
    """Requests that got no whole answer (connect, write or read failed, or abandoned)."""
    connects: int
    """Connections opened during the phase (busybox httpd: one per request)."""
    body_bytes: int
    """Body bytes read, all answers together."""
    statuses: dict[int, int]
    """How many answers had each status."""
    first_error: str | None
    """The first error or non-2xx answer seen, for the report."""

    @property
    def ok(self) -> int:
        """2xx answers."""
        return len(self.latencies_ns)

    @property
    def throughput(self) -> float:
        """2xx answers per second."""
        return self.ok / self.seconds if self.seconds > 0 else 0.0

    def count_at_least_ms(self, ms: float) -> int:
        """How many 2xx answers took ``ms`` or longer."""
        threshold = ms * 1e6
        return sum(1 for latency in self.latencies_ns if latency >= threshold)

    def percentile_ms(self, q: float) -> float:
        """Nearest-rank percentile ``q`` (0-1) of the 2xx latencies, in ms (0 when none)."""
        values = self.latencies_ns
        if not values:
            return 0.0
        rank = max(1, min(len(values), round(q * len(values) + 0.5)))
        return values[rank - 1] / 1e6

    @property
    def p50_ms(self) -> float:
        return self.percentile_ms(0.50)

    @property
    def p90_ms(self) -> float:
        return self.percentile_ms(0.90)

    @property
    def p99_ms(self) -> float:
        return self.percentile_ms(0.99)

    @property
    def max_ms(self) -> float:
        return self.latencies_ns[-1] / 1e6 if self.latencies_ns else 0.0

    def summary(self) -> dict[str, Any]:
        """The figures without the individual latencies, for JSON."""
        return {
            "url": self.url,
            "method": self.method,
            "concurrency": self.concurrency,
            "seconds": self.seconds,
            "ok": self.ok,
            "non_2xx": self.non_2xx,
            "errors": self.errors,
            "connects": self.connects,
            "body_bytes": self.body_bytes,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "throughput": self.throughput,
            "p50_ms": self.p50_ms,
            "p90_ms": self.p90_ms,
            "p99_ms": self.p99_ms,
            "max_ms": self.max_ms,
            "first_error": self.first_error,
        }


async def _phase(
    conns: list[_Connection], request: bytes, method: str, seconds: float, grace: float
) -> tuple[int, list[_Tally]]:
    tallies = [_Tally() for _ in conns]
    start = time.perf_counter_ns()
    deadline = start + int(seconds * 1e9)
    tasks = [
        asyncio.ensure_future(_drive(conn, request, method, deadline, tally))
        for conn, tally in zip(conns, tallies, strict=True)
    ]
    done, pending = await asyncio.wait(tasks, timeout=seconds + grace)
    for conn, tally, task in zip(conns, tallies, tasks, strict=True):
        if task in pending:
            task.cancel()
            conn.close()
            tally.error(f"no answer within {grace:g} s after the phase ended")
    await asyncio.gather(*pending, return_exceptions=True)
    for task in done:
        task.result()  # a bug in the client itself surfaces here
    end = max([tally.last_done_ns for tally in tallies] + [deadline])
    return end - start, tallies


async def run_load(
    url: str,
    *,
    concurrency: int,
    seconds: float,
    warmup: float,
    headers: dict[str, str] | None = None,
    method: str = "GET",
    body: bytes = b"",
    grace: float = DEFAULT_GRACE_S,
    at_measure_start: Callable[[], object] | None = None,
) -> LoadResult:
    """Keep ``concurrency`` requests to ``url`` in flight; measure ``seconds`` after ``warmup``.

    Args:
        url: ``http://host:port/path?query``; plain HTTP only.
        concurrency: Connections, each with one request in flight at a time.
        seconds: Length of the measured phase.
        warmup: Length of the phase before it, whose answers are not counted (0: none).
            Kept-alive connections carry over into the measured phase.
        headers: Extra request headers (``Host`` is set from the URL).
        method: The request method.
        body: The request body, sent with ``Content-Length`` with every request.
        grace: Seconds a request may run past its phase's end before it is abandoned.
        at_measure_start: Called between the warm-up and the measured phase (e.g. to read
            a server's CPU time).
    """
    if concurrency < 1 or seconds <= 0 or warmup < 0:
        raise ValueError("concurrency must be >= 1, seconds > 0 and warmup >= 0")
    target = Target.from_url(url)
    request = target.request_bytes(method, headers or {}, body)
    conns = [_Connection(target) for _ in range(concurrency)]
    try:
        if warmup > 0:
            await _phase(conns, request, method, warmup, grace)
        if at_measure_start is not None:
            at_measure_start()
        elapsed_ns, tallies = await _phase(conns, request, method, seconds, grace)
    finally:
        for conn in conns:
            conn.close()
    statuses: dict[int, int] = {}
    for tally in tallies:
        for status, count in tally.statuses.items():
            statuses[status] = statuses.get(status, 0) + count
    first_error = next((t.first_error for t in tallies if t.first_error), None)
    if first_error is None and any(t.non_2xx for t in tallies):
        first_error = "HTTP " + ", ".join(str(s) for s in sorted(statuses) if not 200 <= s < 300)
    return LoadResult(
        url=url,
        method=method,
        concurrency=concurrency,
        seconds=elapsed_ns / 1e9,
        latencies_ns=sorted(latency for tally in tallies for latency in tally.latencies_ns),
        non_2xx=sum(tally.non_2xx for tally in tallies),
        errors=sum(tally.errors for tally in tallies),
        connects=sum(tally.connects for tally in tallies),
        body_bytes=sum(tally.body_bytes for tally in tallies),
        statuses=statuses,
        first_error=first_error,
    )
