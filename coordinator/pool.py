"""The pool at a glance: now (for the dashboard and ``/metrics``) and over the last hour.

:func:`read_registry` reads what the database knows (workers, their containers, the
assignments) in one short transaction, in a worker thread. :class:`PoolWatch` adds what only
this process knows (open tunnels, relayed requests), keeps a sample every
``history_interval`` seconds for the dashboard's charts, and shows the workers, their
heartbeats and the placements on ``/metrics``.

The history lives in memory and starts empty at each start-up: Prometheus keeps the long
view; the dashboard only needs the last hour to show a trend.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import Counter as Tally
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import Engine, func, select

from coordinator import __version__
from coordinator.clock import Clock, to_datetime
from coordinator.db.schema import ASSIGNMENTS, WORKERS
from coordinator.metrics import Gauge, LabelValues, MetricsRegistry
from coordinator.relay.hub import TunnelHub
from coordinator.relay.metrics import RelayMetrics
from coordinator.workers.views import schedulability
from shared import (
    HistoryPoint,
    PoolOverview,
    PoolStats,
    RelaySummary,
    ServiceCatalog,
    ServiceStatus,
    TierCounts,
)

log = logging.getLogger(__name__)

HISTORY_SPAN = 3600.0
"""Seconds of history the dashboard's charts show."""

LAG_QUANTILES = (0.5, 0.9, 0.99, 1.0)
"""The quantiles of heartbeat lag on ``/metrics`` (1.0 is the worst)."""

WorkerGroup = tuple[int, str, bool, bool]
"""Workers alike for the counts: tier, liveness, drained, paused by their owner."""


def pool_stats(rows: Iterable[tuple[int, str, bool, bool, int]]) -> PoolStats:
    """Worker counts by liveness, schedulability and tier from counts per group.

    Args:
        rows: (tier, liveness, drained, paused by its owner, how many workers).
    """
    tiers = {str(tier): {"total": 0, "online": 0} for tier in (1, 2, 3)}
    total = online = active = 0
    for tier, status, drained, paused, count in rows:
        counts = tiers.setdefault(str(tier), {"total": 0, "online": 0})
        counts["total"] += count
        total += count
        if status == "online":
            counts["online"] += count
            online += count
            if not drained and not paused:
                active += count
    return PoolStats(
        total_workers=total,
        online_workers=online,
        offline_workers=total - online,
        active_workers=active,
        by_tier={tier: counts["total"] for tier, counts in tiers.items()},
        tiers={tier: TierCounts(**counts) for tier, counts in tiers.items()},
    )


@dataclass(frozen=True)
class RegistrySnapshot:
    """What the registry database says about the pool at one moment."""

    taken_at: float
    groups: dict[WorkerGroup, int] = field(default_factory=dict)
    """How many workers each group has."""
    heartbeat_ages: list[float] = field(default_factory=list)
    """Seconds since each online worker's last heartbeat reached the registry, sorted."""
    placed: dict[str, int] = field(default_factory=dict)
    """Workers each service is assigned to."""
    running: dict[str, int] = field(default_factory=dict)
    """Online workers that report each service's container running."""

    @property
    def stats(self) -> PoolStats:
        """The counts as the admin API shows them."""
        return pool_stats((*group, count) for group, count in self.groups.items())


def read_registry(engine: Engine, clock: Clock) -> RegistrySnapshot:
    """Read the workers and assignments in one transaction (blocking: call it in a thread)."""
    workers = WORKERS.c
    groups: Tally[WorkerGroup] = Tally()
    ages: list[float] = []
    running: Tally[str] = Tally()
    with engine.connect() as connection:
        now = clock()
        rows = connection.execute(
            select(
                workers.tier,
                workers.status,
                workers.drained,
                workers.owner_paused,
                workers.last_heartbeat,
                workers.containers,
            )
        )
        for tier, status, drained, paused, last_heartbeat, containers in rows:
            groups[(tier, status, bool(drained), bool(paused))] += 1
            if status != "online":
                continue
            ages.append(max(0.0, now - last_heartbeat))
            for report in containers or ():
                if report.get("state") == "running":
                    running[report.get("service", "")] += 1
        placed: dict[str, int] = {
            service: count
            for service, count in connection.execute(
                select(ASSIGNMENTS.c.service, func.count()).group_by(ASSIGNMENTS.c.service)
            )
        }
    return RegistrySnapshot(
        taken_at=now,
        groups=dict(groups),
        heartbeat_ages=sorted(ages),
        placed=placed,
        running=dict(running),
    )


def quantile(values: list[float], q: float) -> float:
    """The ``q`` quantile of sorted ``values`` (nearest rank); 0 for none."""
    if not values:
        return 0.0
    return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))]


@dataclass(frozen=True)
class RelayTotals:
    """The relay's counters at one moment, to take differences between samples."""

    requests: int
    errors: int
    duration_count: int
    duration_sum: float


class PoolWatch:
    """The pool now and over the last hour, for the dashboard and ``/metrics``.

    Args:
        engine: The registry database.
        clock: Where the time comes from.
        catalog: The services the pool places.
        hub: The workers' tunnels.
        relay_metrics: The relay's counters.
        heartbeat_interval: Seconds between a worker's heartbeats (shown beside the lag).
        history_interval: Seconds between the samples the charts show.
    """

    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        catalog: ServiceCatalog,
        hub: TunnelHub,
        relay_metrics: RelayMetrics,
        *,
        heartbeat_interval: float,
        history_interval: float,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._catalog = catalog
        self._sensitive = frozenset(spec.name for spec in catalog.services if spec.sensitive)
        self._hub = hub
        self._relay = relay_metrics
        self._heartbeat_interval = heartbeat_interval
        self.history_interval = history_interval
        self.history: deque[HistoryPoint] = deque(
            maxlen=max(1, math.ceil(HISTORY_SPAN / history_interval))
        )
        self.latest = RegistrySnapshot(taken_at=0.0)
        self._last_totals: RelayTotals | None = None
        self._sampler: asyncio.Task[None] | None = None

    # -- reading -------------------------------------------------------------------------------

    async def refresh(self) -> RegistrySnapshot:
        """Read the registry now (in a thread) and keep it as :attr:`latest`."""
        snapshot = await asyncio.to_thread(read_registry, self._engine, self._clock)
        self.latest = snapshot
        return snapshot

    def relay_totals(self) -> RelayTotals:
        """The relay's counters now."""
        requests = errors = 0
        for labels, value in self._relay.requests.series().items():
            status = labels[1]  # (service, status, outcome)
            requests += int(value)
            if status.startswith("5"):
                errors += int(value)
        count, total = self._relay.duration.totals()
        return RelayTotals(requests, errors, count, total)

    def services(self, snapshot: RegistrySnapshot) -> list[ServiceStatus]:
        """Each catalogue service: replicas wanted, placed, running and ready."""
        ready = self._hub.ready_counts(self._sensitive)
        return [
            ServiceStatus(
                name=spec.name,
                description=spec.description,
                tiers=spec.tiers,
                sensitive=spec.sensitive,
                gpu=spec.gpu,
                desired=spec.replicas,
                placed=snapshot.placed.get(spec.name, 0),
                running=snapshot.running.get(spec.name, 0),
                ready=ready.get(spec.name, 0),
            )
            for spec in self._catalog.services
        ]

    async def overview(self, *, enrollment_required: bool) -> PoolOverview:
        """What the dashboard's overview shows, read now."""
        snapshot = await self.refresh()
        totals = self.relay_totals()
        return PoolOverview(
            stats=snapshot.stats,
            services=self.services(snapshot),
            relay=RelaySummary(
                requests_total=totals.requests,
                errors_total=totals.errors,
                in_flight=sum(tunnel.outstanding for tunnel in self._hub.tunnels()),
                tunnels_open=len(self._hub.tunnels()),
                workers_banned=len(self._hub.banned()),
            ),
            history=list(self.history),
            history_interval_seconds=self.history_interval,
            enrollment_required=enrollment_required,
            version=__version__,
        )

    # -- the history ---------------------------------------------------------------------------

    async def sample(self) -> HistoryPoint:
        """Add one point to the history: the pool now and the requests since the last."""
        snapshot = await self.refresh()
        totals = self.relay_totals()
        previous = self._last_totals or totals
        self._last_totals = totals
        count = totals.duration_count - previous.duration_count
        stats = snapshot.stats
        point = HistoryPoint(
            at=to_datetime(snapshot.taken_at),
            online=stats.online_workers,
            active=stats.active_workers,
            offline=stats.offline_workers,
            requests=totals.requests - previous.requests,
            errors=totals.errors - previous.errors,
            mean_latency_ms=(
                round((totals.duration_sum - previous.duration_sum) / count * 1000, 3)
                if count > 0
                else None
            ),
        )
        self.history.append(point)
        return point

    def start(self) -> None:
        """Start sampling every ``history_interval`` seconds, beginning now."""
        self._sampler = asyncio.create_task(self._sample_forever(), name="pool-history")

    async def stop(self) -> None:
        """Stop sampling."""
        if self._sampler is not None:
            self._sampler.cancel()
            await asyncio.gather(self._sampler, return_exceptions=True)
            self._sampler = None

    async def _sample_forever(self) -> None:
        while True:
            try:
                await self.sample()
            except Exception:  # a missed sample is a gap in a chart; never kill the loop
                log.exception("Sampling the pool for the dashboard failed")
            await asyncio.sleep(self.history_interval)

    # -- /metrics ------------------------------------------------------------------------------

    def add_metrics(self, registry: MetricsRegistry) -> None:
        """Show the workers, heartbeats and placements of :attr:`latest` on ``/metrics``.

        The route calls :meth:`refresh` before it renders, so the figures are read then.
        """
        registry.add(
            Gauge(
                "rma_workers",
                "Registered workers by tier, liveness (online/offline) and schedulability.",
                self._workers_gauge,
                ("tier", "liveness", "schedulability"),
            )
        )
        registry.add(
            Gauge(
                "rma_worker_heartbeat_lag_seconds",
                "Seconds since online workers' last heartbeat reached the registry, by "
                "quantile over the workers (1 is the longest).",
                self._lag_gauge,
                ("quantile",),
            )
        )
        registry.add(
            Gauge(
                "rma_heartbeat_interval_seconds",
                "Seconds between a worker's heartbeats, as the coordinator asks.",
                lambda: {(): self._heartbeat_interval},
            )
        )
        registry.add(
            Gauge(
                "rma_service_replicas",
                "Replicas of each catalogue service: desired, placed (assigned to workers), "
                "running (reported by online workers) and ready (routable tunnels).",
                self._replicas_gauge,
                ("service", "state"),
            )
        )

    def _workers_gauge(self) -> dict[LabelValues, float]:
        # Every combination, zeros included, so a series drops to 0 instead of vanishing.
        counts: dict[LabelValues, float] = {
            (str(tier), liveness, state): 0.0
            for tier in (1, 2, 3)
            for liveness in ("online", "offline")
            for state in ("active", "paused", "drained")
        }
        for (tier, status, drained, paused), count in self.latest.groups.items():
            state = schedulability(drained=drained, owner_paused=paused)
            labels = (str(tier), status, state)
            counts[labels] = counts.get(labels, 0.0) + count
        return counts

    def _lag_gauge(self) -> dict[LabelValues, float]:
        # No online worker, no lag to speak of: no series (a 0 would look healthy).
        ages = self.latest.heartbeat_ages
        return {(f"{q:g}",): round(quantile(ages, q), 3) for q in LAG_QUANTILES if ages}

    def _replicas_gauge(self) -> dict[LabelValues, float]:
        values: dict[LabelValues, float] = {}
        for status in self.services(self.latest):
            for state in ("desired", "placed", "running", "ready"):
                values[(status.name, state)] = float(getattr(status, state))
        return values
