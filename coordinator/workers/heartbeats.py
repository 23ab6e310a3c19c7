"""Heartbeats, written with group commit.

Heartbeats are the coordinator's hottest path: every worker, every interval. Each one must
be durable (the registry survives restarts) but a commit per heartbeat would make SQLite's
commit cost the limit. So request handlers hand their heartbeat to one writer thread and
await the outcome; the writer takes everything that queued up meanwhile, checks all of it
with one query, writes all of it in one transaction, and answers every waiting request.
Under load a batch holds many heartbeats; when idle, a batch is one heartbeat and costs no
extra latency.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import queue
import threading
from dataclasses import dataclass
from enum import Enum

from sqlalchemy import Connection, Engine, bindparam, select, update

from coordinator.db.schema import WORKERS
from coordinator.workers.views import schedulability
from shared import Schedulability

log = logging.getLogger(__name__)

MAX_BATCH = 512


@dataclass(frozen=True)
class HeartbeatRecord:
    """One heartbeat as received, with the hash of the token that came with it."""

    worker_id: str
    token_hash: str
    load: float
    reported_status: str | None
    paused: bool
    received_at: float


@dataclass(frozen=True)
class HeartbeatAccepted:
    """The heartbeat was recorded."""

    tier: int
    schedulability: Schedulability


class HeartbeatRefused(Enum):
    """Why a heartbeat was not recorded."""

    UNKNOWN_WORKER = "unknown_worker"
    """No such worker: it was removed, or the registry was lost. It should register again."""
    BAD_TOKEN = "bad_token"
    """The token is no worker's."""
    NOT_THIS_WORKER = "not_this_worker"
    """The token is another worker's."""


HeartbeatOutcome = HeartbeatAccepted | HeartbeatRefused

_Pending = tuple[HeartbeatRecord, asyncio.AbstractEventLoop, "asyncio.Future[HeartbeatOutcome]"]

_workers = WORKERS
_record_heartbeat = (
    update(_workers)
    .where(_workers.c.id == bindparam("b_id"))
    .values(
        last_heartbeat=bindparam("b_received_at"),
        current_load=bindparam("b_load"),
        reported_status=bindparam("b_reported_status"),
        owner_paused=bindparam("b_paused"),
        status="online",
    )
)


class HeartbeatWriter:
    """The one thread that writes heartbeats, in batches."""

    def __init__(self, engine: Engine, *, max_batch: int = MAX_BATCH) -> None:
        self._engine = engine
        self._max_batch = max_batch
        # None is the signal to stop.
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the writer thread."""
        self._thread = threading.Thread(target=self._run, name="heartbeat-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Write what is queued, then stop the thread."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join()
        self._thread = None

    async def record(self, heartbeat: HeartbeatRecord) -> HeartbeatOutcome:
        """Queue a heartbeat and wait until it is committed (or refused)."""
        if self._thread is None:
            raise RuntimeError("the heartbeat writer is not running")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[HeartbeatOutcome] = loop.create_future()
        self._queue.put((heartbeat, loop, future))
        return await future

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch: list[_Pending] = [first]
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            self._write_and_answer(batch)

    def _write_and_answer(self, batch: list[_Pending]) -> None:
        try:
            outcomes: list[HeartbeatOutcome] | None = self._write([item[0] for item in batch])
            error: BaseException | None = None
        except Exception as exc:  # the requests get the error; the writer keeps running
            log.exception("Writing %d heartbeats failed", len(batch))
            outcomes, error = None, exc
        for index, (_record, loop, future) in enumerate(batch):
            result = outcomes[index] if outcomes is not None else None
            loop.call_soon_threadsafe(_resolve, future, result, error)

    def _write(self, batch: list[HeartbeatRecord]) -> list[HeartbeatOutcome]:
        with self._engine.begin() as connection:
            rows = connection.execute(
                select(
                    _workers.c.id,
                    _workers.c.token_hash,
                    _workers.c.status,
                    _workers.c.tier,
                    _workers.c.drained,
                    _workers.c.name,
                ).where(_workers.c.id.in_({record.worker_id for record in batch}))
            ).all()
            known = {row.id: row for row in rows}
            outcomes: list[HeartbeatOutcome] = []
            updates = []
            refused_tokens = []
            for record in batch:
                row = known.get(record.worker_id)
                if row is None:
                    outcomes.append(HeartbeatRefused.UNKNOWN_WORKER)
                elif not hmac.compare_digest(row.token_hash, record.token_hash):
                    outcomes.append(HeartbeatRefused.BAD_TOKEN)
                    refused_tokens.append(record.token_hash)
                else:
                    if row.status != "online":
                        log.info("Worker %s (%s) is back online", row.id, row.name)
                    updates.append(
                        {
                            "b_id": record.worker_id,
                            "b_received_at": record.received_at,
                            "b_load": record.load,
                            "b_reported_status": record.reported_status,
                            "b_paused": record.paused,
                        }
                    )
                    outcomes.append(
                        HeartbeatAccepted(
                            tier=row.tier,
                            schedulability=schedulability(
                                drained=row.drained, owner_paused=record.paused
                            ),
                        )
                    )
            if updates:
                connection.execute(_record_heartbeat, updates)
            if refused_tokens:
                outcomes = self._tell_apart_other_workers(connection, batch, outcomes)
        return outcomes

    @staticmethod
    def _tell_apart_other_workers(
        connection: Connection, batch: list[HeartbeatRecord], outcomes: list[HeartbeatOutcome]
    ) -> list[HeartbeatOutcome]:
        """Refusals for a token that is another worker's are 403, not 401."""
        hashes = {
            record.token_hash
            for record, outcome in zip(batch, outcomes, strict=True)
            if outcome is HeartbeatRefused.BAD_TOKEN
        }
        owned = set(
            connection.execute(
                select(_workers.c.token_hash).where(_workers.c.token_hash.in_(hashes))
            ).scalars()
        )
        return [
            HeartbeatRefused.NOT_THIS_WORKER
            if outcome is HeartbeatRefused.BAD_TOKEN and record.token_hash in owned
            else outcome
            for record, outcome in zip(batch, outcomes, strict=True)
        ]


def _resolve(
    future: asyncio.Future[HeartbeatOutcome],
    outcome: HeartbeatOutcome | None,
    error: BaseException | None,
) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    elif outcome is not None:
        future.set_result(outcome)
