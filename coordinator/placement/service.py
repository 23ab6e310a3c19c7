"""Running placement against the registry: when, under which lock, and what is logged.

Placement runs at start-up, after every liveness sweep (so every ``sweep_period``), and
right after a worker registers or unregisters and after an admin drains or undrains one, so
a new worker learns its services in its registration answer.

The database holds the assignments and is the truth: heartbeats read them from there (see
``coordinator.workers.heartbeats``), so with PostgreSQL every coordinator replica answers
the same. One planning run is one transaction: read the workers and the assignments, plan,
write only what changed. Runs are serialised within a process by a lock and across
PostgreSQL replicas by an advisory lock held for the transaction, so two replicas never
plan from the same state and place a replica twice.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from coordinator.clock import Clock
from coordinator.placement.assignments import AssignmentBuilder
from coordinator.placement.planner import PlacementPlan, plan_placement
from coordinator.placement.store import (
    load_assignments,
    load_workers,
    lock_out_other_planners,
    save_assignments,
    services_by_worker,
)
from shared import ServiceAssignment, ServiceCatalog

log = logging.getLogger(__name__)


class PlacementService:
    """Keeps the assignments table in line with the catalogue and the workers."""

    def __init__(
        self, engine: Engine, catalog: ServiceCatalog, clock: Clock, *, grace: float
    ) -> None:
        """Prepare placement; nothing runs until :meth:`run`.

        Args:
            engine: The registry database.
            catalog: The services to place.
            clock: The coordinator's clock.
            grace: Seconds a worker that went away keeps its services before they move.
        """
        self._engine = engine
        self._catalog = catalog
        self._clock = clock
        self._grace = grace
        self._lock = threading.Lock()
        self._requests = threading.Condition()
        self._requested = 0
        self._completed = 0
        self._running = False
        self._builder = AssignmentBuilder(catalog)
        self._reported_shortfalls: dict[str, tuple[int, int]] = {}
        """Each short service's (placed, wanted) as last logged: logged again on change."""
        self._reported_no_workers = False

    @property
    def catalog(self) -> ServiceCatalog:
        """The services this coordinator places."""
        return self._catalog

    def run(self) -> PlacementPlan:
        """Plan and store the assignments now; log what changed.

        A worker removed (unregistered, or past retention) between reading the workers and
        writing the plan makes the write break a foreign key; the plan is then made again
        from the new state, once.
        """
        try:
            return self._run_once()
        except IntegrityError:
            log.info("A worker left while placement was planning; planning again")
            return self._run_once()

    def _run_once(self) -> PlacementPlan:
        with self._lock:
            with self._engine.begin() as connection:
                lock_out_other_planners(connection)
                before = load_assignments(connection)
                plan = plan_placement(
                    self._catalog,
                    load_workers(connection),
                    before,
                    self._clock(),
                    grace=self._grace,
                )
                save_assignments(connection, before, plan.assignments)
            self._log(plan)
        return plan

    def run_after(self, event: str) -> None:
        """Make sure placement runs after ``event`` (e.g. "a registration"), and wait for it.

        Requests that arrive while a run is under way share the next run: a burst of
        registrations (a whole pool re-registering after its registry was lost) costs a few
        runs, not one each. Failures are only logged: the event has happened and must still
        be answered, and the next periodic run retries.
        """
        with self._requests:
            self._requested += 1
            wanted = self._requested
            while self._completed < wanted:
                if self._running:
                    self._requests.wait()
                    continue
                self._running = True
                covers = self._requested
                self._requests.release()
                try:
                    self.run()
                except Exception:
                    log.exception("Placing services after %s failed; the next sweep retries", event)
                finally:
                    self._requests.acquire()
                    self._running = False
                    self._completed = covers
                    self._requests.notify_all()

    def assignments_of(self, worker_id: str, tier: int) -> list[ServiceAssignment]:
        """What one worker should run, from the database."""
        with self._engine.connect() as connection:
            services = services_by_worker(connection, [worker_id])[worker_id]
        return self._builder.for_worker(tier, services)

    def assignments_for(self, tier: int, services: tuple[str, ...]) -> list[ServiceAssignment]:
        """What a worker of ``tier`` that was given ``services`` runs (no database)."""
        if not services:
            return []
        return self._builder.for_worker(tier, services)

    def _log(self, plan: PlacementPlan) -> None:
        for change in plan.changes:
            log.info("%s", change.message)
        if plan.workers == 0:
            if not self._reported_no_workers:
                log.info("No workers have registered yet: the services wait for the first ones")
            self._reported_no_workers = True
            self._reported_shortfalls = {}
            return
        self._reported_no_workers = False
        shortfalls = {}
        for shortfall in plan.shortfalls:
            shortfalls[shortfall.service] = (shortfall.placed, shortfall.wanted)
            if self._reported_shortfalls.get(shortfall.service) != shortfalls[shortfall.service]:
                log.warning("%s", shortfall.message)
        for service in sorted(self._reported_shortfalls.keys() - shortfalls.keys()):
            if self._catalog.get(service) is not None:
                log.info("All replicas of %s are placed", service)
        self._reported_shortfalls = shortfalls
