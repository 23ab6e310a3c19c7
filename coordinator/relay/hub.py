"""The open tunnels, which worker may answer which service, and who gets the next request.

Routing reads only memory: the tunnels (what each worker says it runs and whether its owner
paused it), the admins' flags (trusted, drained) and the bans of workers that just failed.
A worker is a candidate for a service when its tunnel is open, its container for the
service runs and answers its health check, its owner has it active, no admin drained it,
it is trusted when the service is sensitive, and it is not banned. Among candidates the one
with the fewest outstanding requests wins; ties go to the one picked longest ago, so an
idle pool spreads requests evenly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

from coordinator.relay.tunnels import FrameSender, Transport, Tunnel, TunnelGone
from shared.tunnel import TUNNEL_STREAM, FrameType, TunnelHello, encode_frame

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TunnelTiming:
    """The tunnel's keepalive and flow-control parameters (sent to workers in ``HELLO``)."""

    keepalive: float = 0.5
    """Send ``PING`` after this long without sending."""
    dead_after: float = 1.5
    """A tunnel silent this long is closed: its worker is unroutable within this time."""
    window: int = 1024 * 1024
    """Each stream's initial credit per direction, in bytes."""
    sweep_period: float = 0.25
    """How often silent tunnels are looked for."""


@dataclass(frozen=True)
class WorkerFlags:
    """What admins decided about a worker."""

    trusted: bool = False
    drained: bool = False


@dataclass
class Ban:
    """A worker that failed requests: left out until ``until`` (monotonic seconds)."""

    until: float
    strikes: int


@dataclass(frozen=True)
class BanPolicy:
    """How long a failing worker is left out: doubling per failure in a row, bounded."""

    first: float = 1.0
    longest: float = 60.0

    def duration(self, strikes: int) -> float:
        """The ban after ``strikes`` failures in a row."""
        return float(min(self.longest, self.first * 2 ** min(strikes - 1, 30)))


class TunnelHub:
    """Every open tunnel of this coordinator, and the routing decisions over them."""

    def __init__(
        self,
        timing: TunnelTiming = TunnelTiming(),
        bans: BanPolicy = BanPolicy(),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timing = timing
        self._ban_policy = bans
        self._clock = clock
        self._tunnels: dict[str, Tunnel] = {}
        self._by_service: dict[str, set[Tunnel]] = {}
        self._flags: dict[str, WorkerFlags] = {}
        self._bans: dict[str, Ban] = {}
        self._picks = 0
        self._sweeper: asyncio.Task[None] | None = None

    # -- tunnels -----------------------------------------------------------------------------

    async def open(
        self,
        worker_id: str,
        transport: Transport,
        sender: FrameSender,
        flags: WorkerFlags,
        session: str | None = None,
    ) -> Tunnel:
        """A worker opened a tunnel: say hello and take it (replacing an older one)."""
        tunnel = Tunnel(
            worker_id,
            transport,
            sender,
            window=self.timing.window,
            on_state=self._index,
            on_close=self._forget,
            clock=self._clock,
        )
        hello = TunnelHello(
            worker_id=worker_id,
            keepalive=self.timing.keepalive,
            dead_after=self.timing.dead_after,
            initial_window=self.timing.window,
            session=session,
        )
        old = self._tunnels.get(worker_id)
        if old is not None:
            old.close("the worker opened a new tunnel")
        self._tunnels[worker_id] = tunnel
        self._flags[worker_id] = flags
        await tunnel.send(
            encode_frame(FrameType.HELLO, TUNNEL_STREAM, hello.model_dump_json().encode())
        )
        log.info("Worker %s opened its tunnel (%s)", worker_id, transport)
        return tunnel

    def tunnel(self, worker_id: str) -> Tunnel | None:
        """The worker's open tunnel, if it has one."""
        return self._tunnels.get(worker_id)

    def tunnels(self) -> list[Tunnel]:
        """Every open tunnel."""
        return list(self._tunnels.values())

    def close(self, worker_id: str, reason: str) -> None:
        """Close a worker's tunnel (it left the pool or was removed)."""
        tunnel = self._tunnels.get(worker_id)
        if tunnel is not None:
            tunnel.close(reason)

    def _index(self, tunnel: Tunnel) -> None:
        if self._tunnels.get(tunnel.worker_id) is not tunnel:
            return
        for service, tunnels in list(self._by_service.items()):
            if service not in tunnel.services:
                tunnels.discard(tunnel)
                if not tunnels:
                    del self._by_service[service]
        for service in tunnel.services:
            self._by_service.setdefault(service, set()).add(tunnel)
        log.debug(
            "Worker %s answers %s%s",
            tunnel.worker_id,
            ", ".join(sorted(tunnel.services)) or "nothing",
            " (paused)" if tunnel.paused else "",
        )

    def _forget(self, tunnel: Tunnel) -> None:
        if self._tunnels.get(tunnel.worker_id) is tunnel:
            del self._tunnels[tunnel.worker_id]
            self._flags.pop(tunnel.worker_id, None)
        for service in tunnel.services:
            tunnels = self._by_service.get(service)
            if tunnels is not None:
                tunnels.discard(tunnel)
                if not tunnels:
                    del self._by_service[service]
        log.info("Worker %s's tunnel closed: %s", tunnel.worker_id, tunnel.close_reason)

    # -- what admins and heartbeats say ----------------------------------------------------

    def set_flags(self, worker_id: str, flags: WorkerFlags) -> None:
        """An admin changed a worker's flags: routing follows from the next request on."""
        self._flags[worker_id] = flags

    # -- routing -----------------------------------------------------------------------------

    def pick(self, service: str, *, sensitive: bool, exclude: set[str]) -> Tunnel | None:
        """The worker to send the next request for ``service`` to, or None."""
        candidates = self._by_service.get(service)
        if not candidates:
            return None
        now = self._clock()
        best: Tunnel | None = None
        for tunnel in candidates:
            if tunnel.worker_id in exclude or not self._eligible(tunnel, now, sensitive):
                continue
            if best is None or (tunnel.outstanding, tunnel.picked) < (
                best.outstanding,
                best.picked,
            ):
                best = tunnel
        if best is not None:
            self._picks += 1
            best.picked = self._picks
        return best

    def retry_after(self, service: str) -> int:
        """Seconds until trying ``service`` again may help: when the first ban ends, or 5."""
        now = self._clock()
        waits = [
            self._bans[tunnel.worker_id].until - now
            for tunnel in self._by_service.get(service, ())
            if tunnel.worker_id in self._bans and self._bans[tunnel.worker_id].until > now
        ]
        return max(1, math.ceil(min(waits))) if waits else 5

    def failed(self, worker_id: str) -> float:
        """A worker failed a request: ban it, longer for each failure in a row."""
        previous = self._bans.get(worker_id)
        strikes = previous.strikes + 1 if previous is not None else 1
        duration = self._ban_policy.duration(strikes)
        self._bans[worker_id] = Ban(until=self._clock() + duration, strikes=strikes)
        return duration

    def succeeded(self, worker_id: str) -> None:
        """A worker answered: its failures in a row are over."""
        if worker_id in self._bans:
            del self._bans[worker_id]

    def ready_counts(self, sensitive: Collection[str] = ()) -> dict[str, int]:
        """Per service, the workers the relay could send a request to now.

        Args:
            sensitive: The services that go only to trusted workers.
        """
        now = self._clock()
        return {
            service: sum(
                1 for tunnel in tunnels if self._eligible(tunnel, now, service in sensitive)
            )
            for service, tunnels in self._by_service.items()
        }

    def _eligible(self, tunnel: Tunnel, now: float, sensitive: bool) -> bool:
        """Whether a request may go to this tunnel's worker now."""
        if not tunnel.routable():
            return False
        flags = self._flags.get(tunnel.worker_id)
        if flags is None or flags.drained or (sensitive and not flags.trusted):
            return False
        ban = self._bans.get(tunnel.worker_id)
        return ban is None or ban.until <= now

    def banned(self) -> dict[str, float]:
        """Workers banned now, with the seconds left."""
        now = self._clock()
        return {worker: ban.until - now for worker, ban in self._bans.items() if ban.until > now}

    # -- upkeep --------------------------------------------------------------------------------

    def start(self) -> None:
        """Start looking for silent tunnels and keeping quiet ones alive."""
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="tunnel-sweep")

    async def stop(self) -> None:
        """Stop the sweeper and close every tunnel."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        for tunnel in list(self._tunnels.values()):
            tunnel.close("the coordinator is stopping")

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.timing.sweep_period)
            try:
                await self.sweep()
            except Exception:  # never let the sweeper die: silent tunnels must go
                log.exception("Sweeping the tunnels failed")

    async def sweep(self) -> None:
        """Close tunnels silent for ``dead_after``; ping WebSocket ones quiet for ``keepalive``.

        Long-poll tunnels need no ping from here: an open poll is answered after
        ``keepalive`` whether or not there is anything to send.
        """
        now = self._clock()
        ping = encode_frame(FrameType.PING, TUNNEL_STREAM)
        for tunnel in list(self._tunnels.values()):
            if now - tunnel.last_received > self.timing.dead_after:
                tunnel.close(f"nothing heard for {now - tunnel.last_received:.1f} s")
            elif tunnel.transport == "websocket" and now - tunnel.last_sent >= (
                self.timing.keepalive
            ):
                with contextlib.suppress(TunnelGone):
                    await tunnel.send(ping)
        # Bans of workers long gone need not be kept.
        for worker_id, ban in list(self._bans.items()):
            if ban.until < now - self._ban_policy.longest:
                del self._bans[worker_id]
