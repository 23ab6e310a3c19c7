"""How a stored worker row reads in the protocol's terms."""

from __future__ import annotations

from collections.abc import Sequence

from coordinator.clock import to_datetime
from coordinator.db.schema import WorkerRow
from shared import ContainerReport, DockerInfo, Schedulability, WorkerCapabilities, WorkerView


def schedulability(*, drained: bool, owner_paused: bool) -> Schedulability:
    """Whether a worker may take work; an admin's drain outranks its owner's pause."""
    if drained:
        return "drained"
    if owner_paused:
        return "paused"
    return "active"


def worker_view(row: WorkerRow, assigned_services: Sequence[str] = ()) -> WorkerView:
    """The admin view of one worker.

    ``capabilities.docker`` shows the latest Docker status: the last heartbeat's when it
    reported one, else the registration's.
    """
    capabilities = WorkerCapabilities.model_validate(row.capabilities)
    if row.docker is not None:
        capabilities = capabilities.model_copy(
            update={"docker": DockerInfo.model_validate(row.docker)}
        )
    return WorkerView(
        worker_id=row.id,
        name=row.name,
        tier=row.tier,
        status="online" if row.status == "online" else "offline",
        schedulability=schedulability(drained=row.drained, owner_paused=row.owner_paused),
        trusted=row.trusted,
        capabilities=capabilities,
        current_load=row.current_load,
        reported_status=row.reported_status,
        last_heartbeat=to_datetime(row.last_heartbeat),
        registered_at=to_datetime(row.registered_at),
        protocol_version=row.protocol_version,
        agent_version=row.agent_version,
        containers=[ContainerReport.model_validate(report) for report in row.containers or []],
        assigned_services=list(assigned_services),
    )
