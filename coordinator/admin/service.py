"""What admins can see and change in the registry."""

from __future__ import annotations

import logging
from typing import Literal

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from coordinator.db.schema import WorkerRow
from coordinator.errors import ApiError
from coordinator.placement.service import PlacementService
from coordinator.placement.store import services_by_worker
from coordinator.pool import pool_stats
from coordinator.workers.views import worker_view
from shared import Liveness, PoolStats, WorkerList, WorkerRemoved, WorkerView

log = logging.getLogger(__name__)


class AdminService:
    """Queries and admin actions over the worker registry."""

    def __init__(self, engine: Engine, placement: PlacementService) -> None:
        self._engine = engine
        self._placement = placement

    def list_workers(
        self, *, status: Liveness | None, tier: int | None, limit: int, offset: int
    ) -> WorkerList:
        """Workers matching the filters, newest registration first."""
        query = select(WorkerRow)
        if status is not None:
            query = query.where(WorkerRow.status == status)
        if tier is not None:
            query = query.where(WorkerRow.tier == tier)
        with Session(self._engine) as session:
            total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
            rows = session.scalars(
                query.order_by(WorkerRow.registered_at.desc(), WorkerRow.id)
                .limit(limit)
                .offset(offset)
            ).all()
            services = services_by_worker(session.connection(), [row.id for row in rows])
            return WorkerList(
                workers=[worker_view(row, services[row.id]) for row in rows], total=total
            )

    def get_worker(self, worker_id: str) -> WorkerView:
        """One worker, or 404."""
        with Session(self._engine) as session:
            row = self._row(session, worker_id)
            return worker_view(row, services_by_worker(session.connection(), [row.id])[row.id])

    def set_drained(self, worker_id: str, *, drained: bool) -> WorkerView:
        """Stop (or resume) giving a worker new work, whatever its owner says.

        Placement follows at once: a drained worker's services are held for the grace
        period and then move; an undrained one can take services again.
        """
        return self._set_flag(
            worker_id,
            "drained",
            drained,
            done="drained" if drained else "undrained",
            event="a drain" if drained else "an undrain",
        )

    def set_trusted(self, worker_id: str, *, trusted: bool) -> WorkerView:
        """Trust (or stop trusting) a worker with services that handle personal data.

        Placement follows at once: a newly trusted worker can take sensitive services; an
        untrusted one loses them without a grace period.
        """
        return self._set_flag(
            worker_id,
            "trusted",
            trusted,
            done="marked trusted" if trusted else "no longer trusted",
            event="a trust change",
        )

    def _set_flag(
        self,
        worker_id: str,
        flag: Literal["drained", "trusted"],
        value: bool,
        *,
        done: str,
        event: str,
    ) -> WorkerView:
        """Set an admin's flag on a worker, log a change, and let placement follow."""
        with Session(self._engine) as session, session.begin():
            row = self._row(session, worker_id)
            changed = getattr(row, flag) != value
            setattr(row, flag, value)
            name = row.name
        if changed:
            log.info("Worker %s (%s) %s by an admin", worker_id, name, done)
        self._placement.run_after(event)
        return self.get_worker(worker_id)

    def remove_worker(self, worker_id: str) -> WorkerRemoved:
        """Take a worker out of the registry, with its assignments; placement follows.

        The caller closes its relay tunnel. A machine that is still running joins again
        unless it can no longer enroll.

        Raises:
            ApiError: 404 ``unknown_worker`` when no worker has this id.
        """
        with Session(self._engine) as session, session.begin():
            row = self._row(session, worker_id)
            name = row.name
            session.delete(row)  # its assignments go with it (ON DELETE CASCADE)
        log.info("Worker %s (%s) removed by an admin", worker_id, name)
        self._placement.run_after("a removal")
        return WorkerRemoved(
            worker_id=worker_id,
            name=name,
            message=(
                f"{name or 'Worker ' + worker_id} is out of the pool and its services are "
                "placed elsewhere. "
                "If the machine is still running, it will join again on its own unless it can "
                "no longer enroll: to keep it out, revoke the enrollment token it joined with "
                "(or change RMA_ENROLLMENT_TOKEN, if it used that one)."
            ),
        )

    def stats(self) -> PoolStats:
        """Counts of workers by liveness, schedulability and tier."""
        with Session(self._engine) as session:
            rows = session.execute(
                select(
                    WorkerRow.tier,
                    WorkerRow.status,
                    WorkerRow.drained,
                    WorkerRow.owner_paused,
                    func.count(),
                ).group_by(
                    WorkerRow.tier, WorkerRow.status, WorkerRow.drained, WorkerRow.owner_paused
                )
            ).all()
        return pool_stats(rows)

    def count_online(self) -> int:
        """How many workers are online."""
        with Session(self._engine) as session:
            query = select(func.count()).where(WorkerRow.status == "online")
            return session.scalar(query) or 0

    @staticmethod
    def _row(session: Session, worker_id: str) -> WorkerRow:
        row = session.get(WorkerRow, worker_id)
        if row is None:
            raise ApiError(404, "unknown_worker", f"No worker {worker_id} is registered.")
        return row
