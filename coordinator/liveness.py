"""Liveness: marking workers offline when heartbeats stop, and removing long-gone ones.

Liveness is not schedulability: this module only ever touches ``status``
(online/offline), never whether a worker may take work.

The coordinator's own downtime is not held against workers: for going offline, a worker's
silence is counted from its last heartbeat or from the coordinator's start, whichever is
later. So after a restart (or a scale-to-zero wake-up) every worker has the full grace
period to call again.

Removal counts from the last heartbeat only, and only takes workers that are already
offline: a coordinator that restarts every few days must still forget machines that left
weeks ago. A worker that was online when the coordinator stopped is offline only after the
grace period, so it is never removed before it had its chance to call; and a removed worker
that comes back registers again under its old id.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import Engine, delete, update

from coordinator.clock import Clock
from coordinator.db.schema import WORKERS

log = logging.getLogger(__name__)

_workers = WORKERS


@dataclass(frozen=True)
class SweepResult:
    """What one sweep changed."""

    went_offline: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


class LivenessMonitor:
    """Finds workers whose heartbeats stopped."""

    def __init__(
        self,
        engine: Engine,
        *,
        offline_after: float,
        retention: float,
        started_at: float,
        clock: Clock,
    ) -> None:
        self._engine = engine
        self._offline_after = offline_after
        self._retention = retention
        self._started_at = started_at
        self._clock = clock
        self.last_sweep: float | None = None

    def sweep(self) -> SweepResult:
        """Mark silent workers offline and remove those past retention."""
        now = self._clock()
        went_offline: list[str] = []
        removed: list[str] = []
        with self._engine.begin() as connection:
            offline_cutoff = now - self._offline_after
            if self._started_at < offline_cutoff:
                rows = connection.execute(
                    update(_workers)
                    .where(_workers.c.status == "online")
                    .where(_workers.c.last_heartbeat < offline_cutoff)
                    .values(status="offline")
                    .returning(_workers.c.id, _workers.c.name, _workers.c.last_heartbeat)
                ).all()
                for row in rows:
                    silent = now - max(row.last_heartbeat, self._started_at)
                    log.warning(
                        "Worker %s (%s) is offline: no heartbeat for %.0f s",
                        row.id,
                        row.name,
                        silent,
                    )
                    went_offline.append(row.id)
            rows = connection.execute(
                delete(_workers)
                .where(_workers.c.status == "offline")
                .where(_workers.c.last_heartbeat < now - self._retention)
                .returning(_workers.c.id, _workers.c.name)
            ).all()
            for row in rows:
                log.info("Worker %s (%s) removed: offline past retention", row.id, row.name)
                removed.append(row.id)
        self.last_sweep = now
        return SweepResult(went_offline=went_offline, removed=removed)
