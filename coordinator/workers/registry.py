"""Registration and unregistration of workers: who may join, as whom, and in which tier."""

from __future__ import annotations

import logging
import random
import uuid
from dataclasses import dataclass

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from coordinator.clock import Clock
from coordinator.db.schema import WorkerRow
from coordinator.errors import ApiError, unauthorized
from coordinator.placement.service import PlacementService
from coordinator.security import hash_token, new_token, tokens_match
from coordinator.settings import CoordinatorSettings
from coordinator.workers.enrollment import EnrollmentTokenStore
from coordinator.workers.tiers import TierDecision, TierRequirementsNotMet, assign_tier
from coordinator.workers.views import schedulability
from shared import (
    PROTOCOL_VERSION,
    AgentTooOldError,
    RegisterRequest,
    RegisterResponse,
    UnregisterResponse,
    check_agent_version,
)

log = logging.getLogger(__name__)

HEARTBEAT_JITTER = 0.1
"""Each worker's next heartbeat is the interval ±10 %, so restarts don't synchronise them."""


def next_heartbeat_in(interval: float) -> float:
    """Seconds until a worker should call again: the interval with jitter."""
    return round(interval * random.uniform(1 - HEARTBEAT_JITTER, 1 + HEARTBEAT_JITTER), 3)


@dataclass
class WorkerRegistry:
    """Adds workers to the registry and takes them out, and has placement follow."""

    engine: Engine
    settings: CoordinatorSettings
    clock: Clock
    placement: PlacementService
    enrollment: EnrollmentTokenStore

    def register(self, request: RegisterRequest, presented_token: str | None) -> RegisterResponse:
        """Admit a worker, or re-admit it under the identity it already has.

        A worker that sends a ``worker_id`` the registry knows must prove it with that
        worker's token; one the registry does not know (removed, or lost with a database)
        gets it back, with a new token, if it may enroll. Placement runs before the answer,
        so it carries the services the worker should run.

        Raises:
            ApiError: 426 too old, 422 below the smallest tier, 401 enrollment refused,
                409 the id belongs to another machine.
        """
        try:
            version = check_agent_version(request.protocol_version)
        except AgentTooOldError as exc:
            raise ApiError(426, "agent_too_old", str(exc)) from exc
        try:
            decision = assign_tier(request.capabilities, self.settings.tiers)
        except TierRequirementsNotMet as exc:
            raise ApiError(422, "tier_requirements", str(exc)) from exc

        try:
            admitted = self._admit(request, presented_token, version, decision)
        except IntegrityError as exc:
            # Two registrations raced for the same new worker id; the other one won.
            raise ApiError(
                409, "worker_id_taken", "This worker id was just registered by another request."
            ) from exc
        self.placement.run_after("a registration")
        assigned = self.placement.assignments_of(admitted.worker_id, admitted.tier)
        return admitted.model_copy(update={"assigned_containers": assigned})

    def _admit(
        self,
        request: RegisterRequest,
        presented_token: str | None,
        version: int,
        decision: TierDecision,
    ) -> RegisterResponse:
        now = self.clock()
        capabilities = request.capabilities.model_dump(mode="json")
        with Session(self.engine) as session, session.begin():
            row = session.get(WorkerRow, request.worker_id) if request.worker_id else None
            if row is not None:
                if presented_token is None or not tokens_match(presented_token, row.token_hash):
                    raise ApiError(
                        409,
                        "worker_id_taken",
                        f"Worker id {row.id} is registered to another machine. Register "
                        "without a worker_id to get a new identity.",
                    )
                token = presented_token
                log.info("Worker %s (%s) registered again as tier %d", row.id, row.name, row.tier)
            else:
                enrolled_by = self.enrollment.enroll(session, request.enrollment_token)
                token = new_token()
                row = WorkerRow(
                    id=request.worker_id or str(uuid.uuid4()),
                    token_hash=hash_token(token),
                    registered_at=now,
                    owner_paused=False,
                    drained=False,
                    current_load=0.0,
                )
                session.add(row)
                log.info(
                    "Worker %s (%s) joined as tier %d: %s (enrolled by %s)",
                    row.id,
                    request.name,
                    decision.tier,
                    decision.reason,
                    enrolled_by,
                )
            row.name = request.name
            row.tier = decision.tier
            row.capabilities = capabilities
            row.protocol_version = version
            row.agent_version = request.agent_version
            row.status = "online"
            row.last_heartbeat = now
            # Reports from before this (re)start are stale; the registration's Docker status
            # is the latest until a heartbeat says otherwise.
            row.containers = None
            row.docker = None
            worker_id = row.id
            state = schedulability(drained=row.drained, owner_paused=row.owner_paused)

        interval = self.settings.heartbeat_interval
        return RegisterResponse(
            worker_id=worker_id,
            worker_token=token,
            tier=decision.tier,
            tier_reason=decision.reason,
            assigned_containers=[],
            heartbeat_interval=interval,
            next_heartbeat_in=next_heartbeat_in(interval),
            schedulability=state,
            protocol_version=PROTOCOL_VERSION,
        )

    def unregister(self, worker_id: str, presented_token: str) -> UnregisterResponse:
        """Take a worker out of the registry at its own request.

        Raises:
            ApiError: 404 unknown worker, 403 the token belongs to another worker.
        """
        with Session(self.engine) as session, session.begin():
            row = session.get(WorkerRow, worker_id)
            if row is None:
                raise ApiError(404, "unknown_worker", f"No worker {worker_id} is registered.")
            if not tokens_match(presented_token, row.token_hash):
                raise self._wrong_token(session, presented_token, worker_id)
            session.delete(row)  # its assignments go with it (ON DELETE CASCADE)
        log.info("Worker %s (%s) unregistered", worker_id, row.name)
        self.placement.run_after("an unregistration")
        return UnregisterResponse(worker_id=worker_id)

    @staticmethod
    def _wrong_token(session: Session, presented_token: str, worker_id: str) -> ApiError:
        owner = session.scalar(
            select(WorkerRow.id).where(WorkerRow.token_hash == hash_token(presented_token))
        )
        if owner is not None:
            return ApiError(
                403, "not_this_worker", f"This token belongs to another worker, not {worker_id}."
            )
        return unauthorized(f"The token is not valid for worker {worker_id}.", "bad_token")
