"""Heartbeats, written with group commit.

Heartbeats are the coordinator's hottest path: every worker, every interval. Each one must
be durable (the registry survives restarts) before it is acknowledged, but a commit per
heartbeat would make the database's commit cost the limit. So request handlers add their
heartbeat to a list on the event loop and await the outcome; one flusher task takes the
whole list, checks it with one query, writes it in one transaction and answers every waiting
request. Heartbeats that arrive meanwhile form the next batch. Under load a batch holds many
heartbeats; when idle, a batch is one heartbeat and costs no extra latency.

Where the batch is written depends on the database:

- SQLite (the default) is written on the event loop itself. It is a local file in WAL mode
  whose commit takes tens of microseconds, while handing each batch to a thread cost about
  70 us of CPU per heartbeat in GIL contention and wake-ups on a 2-core machine
  (bench/heartbeats.py): more than the write.
- Network databases (PostgreSQL) are written from one dedicated thread, so a slow round
  trip never stalls the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from concurrent.futures import ThreadPoolExecutor
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

_Pending = tuple[HeartbeatRecord, "asyncio.Future[HeartbeatOutcome]"]

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
    """Gathers heartbeats on the event loop and writes them in batches."""

    def __init__(
        self, engine: Engine, *, max_batch: int = MAX_BATCH, inline: bool | None = None
    ) -> None:
        """Prepare a writer; nothing runs until :meth:`start`.

        Args:
            engine: The registry database.
            max_batch: The most heartbeats written in one transaction.
            inline: Write on the event loop (True) or on a dedicated thread (False); by
                default inline for SQLite only (see the module's docstring).
        """
        self._engine = engine
        self._max_batch = max_batch
        self._inline = engine.dialect.name == "sqlite" if inline is None else inline
        self._pending: list[_Pending] = []
        self._wakeup: asyncio.Event | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        """Start the flusher task on the running loop (and the database thread, if used)."""
        if not self._inline:
            self._executor = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="heartbeat-writer"
            )
        self._wakeup = asyncio.Event()
        self._flusher = asyncio.create_task(self._flush_forever(), name="heartbeat-flusher")

    async def stop(self) -> None:
        """Write what is pending, then stop."""
        if self._flusher is None:
            return
        self._flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._flusher
        await self._flush_pending()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self._flusher = None
        self._executor = None

    async def record(self, heartbeat: HeartbeatRecord) -> HeartbeatOutcome:
        """Add a heartbeat to the next batch and wait until it is committed (or refused)."""
        if self._wakeup is None or self._flusher is None:
            raise RuntimeError("the heartbeat writer is not running")
        future: asyncio.Future[HeartbeatOutcome] = asyncio.get_running_loop().create_future()
        self._pending.append((heartbeat, future))
        self._wakeup.set()
        return await future

    async def _flush_forever(self) -> None:
        assert self._wakeup is not None
        while True:
            await self._wakeup.wait()
            # One more loop iteration lets the heartbeats already read from other
            # connections join this batch: a batch's cost is mostly fixed, so bigger
            # batches are cheaper per heartbeat.
            await asyncio.sleep(0)
            self._wakeup.clear()
            await self._flush_pending()

    async def _flush_pending(self) -> None:
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            records = [record for record, _future in batch]
            try:
                if self._executor is None:
                    outcomes = self._write(records)
                else:
                    outcomes = await asyncio.get_running_loop().run_in_executor(
                        self._executor, self._write, records
                    )
            except Exception as exc:  # the requests get the error; the flusher keeps running
                log.exception("Writing %d heartbeats failed", len(batch))
                for _record, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_record, future), outcome in zip(batch, outcomes, strict=True):
                if not future.done():
                    future.set_result(outcome)

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
