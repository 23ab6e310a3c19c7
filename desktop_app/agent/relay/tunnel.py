"""The worker's end of the relay tunnel: kept open, and every stream on it answered.

:class:`RelayTunnel` opens a tunnel (:mod:`.transport`) as soon as the worker has an
identity, says which services it can answer (``STATE``), answers each ``REQUEST`` from the
local container (:mod:`.forwarder`) and reconnects with backoff whenever the tunnel drops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import httpx
from pydantic import ValidationError

from desktop_app.agent.backoff import Backoff
from desktop_app.agent.identity import WorkerIdentity
from shared import ContainerReport
from shared.tunnel import (
    TUNNEL_STREAM,
    FrameType,
    RelayRequestHead,
    TunnelFrameError,
    TunnelHello,
    TunnelState,
    decode_frame,
    decode_window,
    encode_frame,
)

from .forwarder import Forwarder, LocalUrl, RelayStream
from .transport import (
    TransportMode,
    TunnelAuthRefused,
    TunnelClosed,
    TunnelConnectError,
    TunnelConnector,
    TunnelTransport,
)

log = logging.getLogger(__name__)

HELLO_TIMEOUT = 10.0
"""Seconds a new tunnel may take to say ``HELLO``."""
IDENTITY_RECHECK = 0.5
"""Seconds between looks for an identity while the worker has none yet."""
STABLE_AFTER = 10.0
"""A tunnel that lived this long forgives earlier failures: the next retry comes soon."""
MAX_STATE_SERVICES = 64
"""The most services one ``STATE`` may name (:class:`TunnelState`)."""
MAX_SERVICE_NAME = 64
"""The longest service name a ``STATE`` may carry (:class:`TunnelState`)."""


class _TunnelDropped(Exception):
    """This worker gave up on the tunnel; the message says why."""


def ready_services(reports: Iterable[ContainerReport], local_url: LocalUrl) -> list[str]:
    """The services a tunnel can answer now: running, with a local address."""
    return [
        report.service
        for report in reports
        if report.state == "running" and local_url(report.service) is not None
    ]


@dataclass
class _Session:
    """One open tunnel and the streams on it."""

    transport: TunnelTransport
    identity: WorkerIdentity
    hello: TunnelHello
    last_sent: float
    last_received: float
    state_sent: tuple[tuple[str, ...], bool] | None = None
    streams: dict[int, RelayStream] = field(default_factory=dict)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


class RelayTunnel:
    """Keeps a tunnel to the coordinator open and answers the requests relayed on it."""

    def __init__(
        self,
        identity: Callable[[], WorkerIdentity | None],
        local_url: LocalUrl,
        *,
        mode: TransportMode = "auto",
        initial_retry_delay: float = 0.5,
        max_retry_delay: float = 10.0,
    ) -> None:
        """Nothing runs until :meth:`run`.

        Args:
            identity: The worker's current identity (None until it has joined the pool);
                the tunnel opens as that worker, to the coordinator it belongs to.
            local_url: The container runtime's local address of a service, while its
                container is up (thread-safe and cheap).
            mode: Which transport to use.
            initial_retry_delay: The first wait before reconnecting after a failure.
            max_retry_delay: The longest wait between attempts.
        """
        self._identity = identity
        self._local_url = local_url
        self._mode: TransportMode = mode
        self._backoff = Backoff(initial=initial_retry_delay, maximum=max_retry_delay)
        self._lock = threading.Lock()
        self._services: tuple[str, ...] = ()
        self._paused = False
        self._stopping = False
        self._session: _Session | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stop: asyncio.Event | None = None

    # -- controlling (thread-safe) ---------------------------------------------------------

    def update(self, services: Iterable[str], paused: bool) -> None:
        """Say which services answer here now and whether the volunteer paused.

        A new ``STATE`` goes only when this changed; while paused, new requests are refused
        at once. Safe from any thread.
        """
        ready = tuple(sorted(set(services)))
        with self._lock:
            if (ready, paused) == (self._services, self._paused):
                return
            self._services, self._paused = ready, paused
        self._notify(self._wake)

    def in_flight(self) -> int:
        """How many requests are being answered now. Safe from any thread."""
        session = self._session
        # len() of a dict is atomic; the session may be replaced meanwhile, which is fine.
        return len(session.streams) if session is not None else 0

    def stop(self) -> None:
        """Close the tunnel and return from :meth:`run`. Safe from any thread."""
        self._stopping = True
        self._notify(self._stop)

    def _notify(self, event: asyncio.Event | None) -> None:
        loop = self._loop
        if loop is not None and event is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(event.set)

    # -- running ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Keep a tunnel open until :meth:`stop`."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        if self._stopping:
            self._stop.set()
        # Long-polling is for networks with a proxy in the way: this client trusts the
        # environment's proxy settings, like the heartbeats' client does.
        http = httpx.AsyncClient()
        forwarder = Forwarder(self._local_url)
        work = asyncio.create_task(
            self._connect_forever(TunnelConnector(self._mode, http), forwarder), name="tunnel"
        )
        stopped = asyncio.create_task(self._stop.wait(), name="tunnel stop")
        try:
            # Stopping cancels whatever is under way: opening a tunnel can take seconds.
            await asyncio.wait({work, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            work.cancel()
            stopped.cancel()
            await asyncio.gather(work, stopped, return_exceptions=True)
            await forwarder.aclose()
            await http.aclose()
            self._loop = None
        if not work.cancelled():
            work.result()  # it never ends by itself: a bug, which should show

    async def _connect_forever(self, connector: TunnelConnector, forwarder: Forwarder) -> None:
        loop = asyncio.get_running_loop()
        reported_failure = False
        while True:
            identity = self._identity()
            if identity is None:
                await asyncio.sleep(IDENTITY_RECHECK)
                continue
            try:
                transport = await connector.connect(identity.coordinator_url, identity.token)
            except TunnelConnectError as exc:
                # The membership loop has its own log lines for a pool that is unreachable
                # or refuses this worker: one line here, the repeats at DEBUG.
                kind = "was refused" if isinstance(exc, TunnelAuthRefused) else "failed"
                log.log(
                    logging.DEBUG if reported_failure else logging.INFO,
                    "Opening the relay tunnel %s (%s); retrying.",
                    kind,
                    exc,
                )
                reported_failure = True
                await asyncio.sleep(self._backoff.next_delay())
                continue
            reported_failure = False
            opened = loop.time()
            await self._serve(transport, identity, forwarder)
            if loop.time() - opened >= STABLE_AFTER:
                self._backoff.reset()
            await asyncio.sleep(self._backoff.next_delay())

    async def _serve(
        self, transport: TunnelTransport, identity: WorkerIdentity, forwarder: Forwarder
    ) -> None:
        """Run one tunnel until it drops (or the task is cancelled); then close it."""
        loop = asyncio.get_running_loop()
        reason = "the worker stopped"
        session: _Session | None = None
        try:
            hello = await asyncio.wait_for(self._read_hello(transport), HELLO_TIMEOUT)
            now = loop.time()
            session = _Session(transport, identity, hello, now, now)
            self._session = session
            log.info("Relay tunnel open over %s to %s.", transport.name, identity.coordinator_url)
            reason = await self._tend(session, forwarder)
        except TimeoutError:
            reason = f"no HELLO within {HELLO_TIMEOUT:.0f} s"
        except TunnelClosed as exc:
            reason = str(exc)
        except (TunnelFrameError, _TunnelDropped) as exc:
            log.warning("The pool sent nonsense on the relay tunnel (%s); reconnecting.", exc)
            reason = "nonsense from the pool"
        except Exception:  # a bug here must not end the worker's relaying for good
            log.exception("The relay tunnel failed")
            reason = "an error"
        finally:
            self._session = None
            if session is not None:
                await _end_streams(session)
            with contextlib.suppress(Exception):
                await transport.close()
            opened = "closed" if session is not None else "did not open"
            log.info("Relay tunnel over %s %s: %s.", transport.name, opened, reason)

    async def _read_hello(self, transport: TunnelTransport) -> TunnelHello:
        kind, stream, payload = decode_frame(await transport.receive())
        if kind != FrameType.HELLO or stream != TUNNEL_STREAM:
            raise TunnelFrameError(f"{kind.name} before HELLO")
        try:
            hello = TunnelHello.model_validate_json(payload)
        except ValidationError as exc:
            raise TunnelFrameError(f"an unreadable HELLO: {exc}") from exc
        if hello.keepalive <= 0 or hello.dead_after <= 0 or hello.initial_window <= 0:
            raise TunnelFrameError(f"unusable tunnel parameters in HELLO: {hello}")
        return hello

    async def _tend(self, session: _Session, forwarder: Forwarder) -> str:
        """Watch the tunnel until it drops; return why.

        Reading and writing run as tasks of their own; this only watches, so a coordinator
        that stopped reading (a send that never finishes) is still found dead in time.

        Raises:
            TunnelClosed: The tunnel ended.
            TunnelFrameError: The coordinator sent something that is not a frame.
            _TunnelDropped: The coordinator broke the protocol.
        """
        loop = asyncio.get_running_loop()
        reader = asyncio.create_task(self._read(session, forwarder), name="tunnel read")
        writer = asyncio.create_task(self._keep_up(session), name="tunnel keepalive")
        try:
            while True:
                silent_for = loop.time() - session.last_received
                if silent_for >= session.hello.dead_after:
                    return f"nothing received for {silent_for:.1f} s"
                done, _ = await asyncio.wait(
                    {reader, writer},
                    timeout=session.hello.dead_after - silent_for,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                for task in done:
                    task.result()  # raises why it ended
                    return "the worker's identity changed"  # only _keep_up ends quietly
        finally:
            reader.cancel()
            writer.cancel()
            await asyncio.gather(reader, writer, return_exceptions=True)

    async def _send(self, session: _Session, frame: bytes) -> None:
        session.last_sent = asyncio.get_running_loop().time()
        await session.transport.send(frame)

    async def _keep_up(self, session: _Session) -> None:
        """Send ``STATE`` on every change and ``PING`` when idle; end when the identity changes."""
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        keepalive = session.hello.keepalive
        while True:
            self._wake.clear()
            if self._identity() != session.identity:
                return
            with self._lock:
                state = (self._services, self._paused)
            if state != session.state_sent:
                services, paused = state
                message = TunnelState(services=_offerable(services), paused=paused)
                payload = message.model_dump_json().encode()
                await self._send(session, encode_frame(FrameType.STATE, TUNNEL_STREAM, payload))
                session.state_sent = state
                log.debug("Told the pool: services %s, paused %s.", list(services), paused)
            idle = loop.time() - session.last_sent
            if idle >= keepalive:
                await self._send(session, encode_frame(FrameType.PING, TUNNEL_STREAM))
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), keepalive - idle)

    async def _read(self, session: _Session, forwarder: Forwarder) -> None:
        """Receive frames and hand each to its stream, until the tunnel ends."""
        loop = asyncio.get_running_loop()
        while True:
            frame = await session.transport.receive()
            session.last_received = loop.time()
            kind, stream_id, payload = decode_frame(frame)
            if kind == FrameType.REQUEST:
                await self._open_stream(session, forwarder, stream_id, payload)
                continue
            stream = session.streams.get(stream_id) if stream_id != TUNNEL_STREAM else None
            if kind == FrameType.WINDOW:
                credit = decode_window(payload)
                if stream is not None:
                    stream.on_window(credit)
            elif stream is None:
                # PING, a late frame of a stream that ended, or one not meant for a worker.
                continue
            elif kind == FrameType.REQUEST_BODY:
                stream.on_body(payload)
            elif kind == FrameType.REQUEST_END:
                stream.on_body_end()
            elif kind == FrameType.CANCEL:
                # Forgotten at once: the coordinator may reuse the id.
                del session.streams[stream_id]
                if stream.task is not None:
                    stream.task.cancel()

    async def _open_stream(
        self, session: _Session, forwarder: Forwarder, stream_id: int, payload: bytes
    ) -> None:
        if stream_id == TUNNEL_STREAM or stream_id in session.streams:
            raise _TunnelDropped(f"REQUEST on stream {stream_id}, which is taken")
        try:
            head = RelayRequestHead.model_validate_json(payload)
        except ValidationError as exc:
            raise _TunnelDropped(f"an unreadable REQUEST: {exc}") from exc

        async def send(frame: bytes) -> None:
            await self._send(session, frame)

        stream = RelayStream(stream_id, head, session.hello.initial_window, send)
        with self._lock:
            paused = self._paused
        if paused:
            await stream.fail("paused", "The volunteer paused this worker.", forwarded=False)
            log.debug("%s %s: refused, paused.", head.service, head.method)
            return
        session.streams[stream_id] = stream
        task = asyncio.create_task(self._answer(session, forwarder, stream))
        stream.task = task
        session.tasks.add(task)
        task.add_done_callback(session.tasks.discard)

    async def _answer(self, session: _Session, forwarder: Forwarder, stream: RelayStream) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        outcome = "cancelled"
        try:
            outcome = await forwarder.forward(stream)
        except TunnelClosed:
            outcome = "tunnel closed"
        except Exception:
            log.exception("Answering a relayed request for %s failed", stream.head.service)
            outcome = "error"
            with contextlib.suppress(TunnelClosed):
                await stream.fail("failed", "The worker failed.", forwarded=True)
        finally:
            if session.streams.get(stream.id) is stream:
                del session.streams[stream.id]
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "%s %s %s: %s in %.3f s.",
                    stream.head.service,
                    stream.head.method,
                    stream.head.target.partition("?")[0],  # the query may hold personal data
                    outcome,
                    loop.time() - started,
                )


def _offerable(services: tuple[str, ...]) -> list[str]:
    """The services one ``STATE`` can name (:class:`TunnelState` bounds names and count)."""
    offered = [name for name in services if len(name) <= MAX_SERVICE_NAME]
    if len(offered) != len(services) or len(offered) > MAX_STATE_SERVICES:
        log.warning("Some services cannot be offered on the relay tunnel: %s", services)
    return offered[:MAX_STATE_SERVICES]


async def _end_streams(session: _Session) -> None:
    """Stop answering every stream of a tunnel that dropped: none can be answered any more."""
    session.streams.clear()
    tasks = list(session.tasks)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
