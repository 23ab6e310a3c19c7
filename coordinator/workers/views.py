"""How a stored worker row reads in the protocol's terms."""

from __future__ import annotations

from coordinator.clock import to_datetime
from coordinator.db.schema import WorkerRow
from shared import Schedulability, WorkerCapabilities, WorkerView


def schedulability(*, drained: bool, owner_paused: bool) -> Schedulability:
    """Whether a worker may take work; an admin's drain outranks its owner's pause."""
    if drained:
        return "drained"
    if owner_paused:
        return "paused"
    return "active"


def worker_view(row: WorkerRow) -> WorkerView:
    """The admin view of one worker."""
    return WorkerView(
        worker_id=row.id,
        name=row.name,
        tier=row.tier,
        status="online" if row.status == "online" else "offline",
        schedulability=schedulability(drained=row.drained, owner_paused=row.owner_paused),
        capabilities=WorkerCapabilities.model_validate(row.capabilities),
        current_load=row.current_load,
        reported_status=row.reported_status,
        last_heartbeat=to_datetime(row.last_heartbeat),
        registered_at=to_datetime(row.registered_at),
        protocol_version=row.protocol_version,
        agent_version=row.agent_version,
    )
