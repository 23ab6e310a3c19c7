"""Placement's storage: workers as placement sees them, and the assignments table."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select, text, update

from coordinator.db.schema import ASSIGNMENTS, WORKERS
from coordinator.placement.planner import GPU_RUNTIME_VENDORS, Assignment, WorkerState
from coordinator.workers.views import schedulability

_workers = WORKERS
_assignments = ASSIGNMENTS

PLACEMENT_LOCK_KEY = 0x524D41_504C4143
"""The PostgreSQL advisory lock that lets one coordinator replica plan at a time."""

_insert = insert(_assignments).values(
    worker_id=bindparam("b_worker_id"),
    service=bindparam("b_service"),
    assigned_at=bindparam("b_assigned_at"),
    unplaceable_since=bindparam("b_unplaceable_since"),
)
_delete = (
    delete(_assignments)
    .where(_assignments.c.worker_id == bindparam("b_worker_id"))
    .where(_assignments.c.service == bindparam("b_service"))
)
_update = (
    update(_assignments)
    .where(_assignments.c.worker_id == bindparam("b_worker_id"))
    .where(_assignments.c.service == bindparam("b_service"))
    .values(unplaceable_since=bindparam("b_unplaceable_since"))
)


def lock_out_other_planners(connection: Connection) -> None:
    """Make other coordinator replicas wait until this transaction ends (PostgreSQL).

    SQLite serves one coordinator process, which serialises its own planning runs.
    """
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PLACEMENT_LOCK_KEY})


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def worker_state(
    *,
    worker_id: str,
    name: str | None,
    tier: int,
    status: str,
    drained: bool,
    owner_paused: bool,
    trusted: bool = False,
    capabilities: Mapping[str, Any] | None,
    docker: Mapping[str, Any] | None,
) -> WorkerState:
    """A stored worker as placement sees it.

    ``capabilities`` is the stored form of :class:`shared.WorkerCapabilities` (already
    validated and normalised at registration), read field by field rather than validated
    again: planning reads every worker each run. ``docker`` is the latest heartbeat's Docker
    report, which outranks the one from registration.
    """
    capabilities = capabilities or {}
    if docker is None:
        docker = capabilities.get("docker") or {}
    gpus = [
        gpu
        for gpu in capabilities.get("gpus") or []
        if isinstance(gpu, dict)
        and gpu.get("vendor") in GPU_RUNTIME_VENDORS
        and not gpu.get("unified_memory")
    ]
    memories = [memory for gpu in gpus if (memory := _count(gpu.get("memory"))) is not None]
    return WorkerState(
        worker_id=worker_id,
        name=name,
        tier=tier,
        online=status == "online",
        schedulability=schedulability(drained=drained, owner_paused=owner_paused),
        docker_usable=docker.get("usable") is True,
        gpu_runtime=docker.get("gpu_runtime") is True,
        cpu_cores=_count(capabilities.get("cpu_cores")),
        ram=_count(capabilities.get("ram")),
        disk=_count(capabilities.get("storage")),
        has_gpu=bool(gpus),
        gpu_memory=max(memories, default=None),
        trusted=trusted,
    )


def load_workers(connection: Connection) -> list[WorkerState]:
    """Every registered worker."""
    rows = connection.execute(
        select(
            _workers.c.id,
            _workers.c.name,
            _workers.c.tier,
            _workers.c.status,
            _workers.c.drained,
            _workers.c.owner_paused,
            _workers.c.trusted,
            _workers.c.capabilities,
            _workers.c.docker,
        )
    )
    return [
        worker_state(
            worker_id=row.id,
            name=row.name,
            tier=row.tier,
            status=row.status,
            drained=row.drained,
            owner_paused=row.owner_paused,
            trusted=row.trusted,
            capabilities=row.capabilities,
            docker=row.docker,
        )
        for row in rows
    ]


def load_assignments(connection: Connection) -> list[Assignment]:
    """Every assignment."""
    rows = connection.execute(
        select(
            _assignments.c.worker_id,
            _assignments.c.service,
            _assignments.c.assigned_at,
            _assignments.c.unplaceable_since,
        )
    )
    return [
        Assignment(row.worker_id, row.service, row.assigned_at, row.unplaceable_since)
        for row in rows
    ]


def services_by_worker(connection: Connection, worker_ids: Iterable[str]) -> dict[str, list[str]]:
    """The services assigned to each of ``worker_ids``, by service name."""
    ids = list(worker_ids)
    found: dict[str, list[str]] = {worker_id: [] for worker_id in ids}
    if not ids:
        return found
    rows = connection.execute(
        select(_assignments.c.worker_id, _assignments.c.service)
        .where(_assignments.c.worker_id.in_(ids))
        .order_by(_assignments.c.service)
    )
    for row in rows:
        found[row.worker_id].append(row.service)
    return found


def save_assignments(
    connection: Connection, before: Sequence[Assignment], after: Sequence[Assignment]
) -> int:
    """Write what changed from ``before`` to ``after``; returns the number of rows touched.

    Nothing is written when nothing changed, so a steady pool costs the database only the
    reads (and SQLite's single write lock is not taken).
    """
    old = {(a.worker_id, a.service): a for a in before}
    new = {(a.worker_id, a.service): a for a in after}
    gone = [{"b_worker_id": w, "b_service": s} for (w, s) in old.keys() - new.keys()]
    added = [
        {
            "b_worker_id": a.worker_id,
            "b_service": a.service,
            "b_assigned_at": a.assigned_at,
            "b_unplaceable_since": a.unplaceable_since,
        }
        for key, a in new.items()
        if key not in old
    ]
    held = [
        {
            "b_worker_id": a.worker_id,
            "b_service": a.service,
            "b_unplaceable_since": a.unplaceable_since,
        }
        for key, a in new.items()
        if key in old and old[key].unplaceable_since != a.unplaceable_since
    ]
    for statement, parameters in ((_delete, gone), (_insert, added), (_update, held)):
        if parameters:
            connection.execute(statement, parameters)
    return len(gone) + len(added) + len(held)
