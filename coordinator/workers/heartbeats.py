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

The answer to a heartbeat carries the worker's assigned services. They are read from the
database with the batch's first query (the workers, outer-joined with their assignments),
in the same transaction, so a batch costs no extra round trip and every coordinator replica
sharing a PostgreSQL registry answers from the same truth the moment a placement run
commits. An in-memory map the planner fills would save that join, but would answer from a
replica's own last run, which with several replicas lags the others' runs.

A heartbeat's container reports and Docker status are written with the rest of it; a
heartbeat without them (the seed agents') leaves the stored ones as they are. They arrive
already serialised by pydantic and are bound as JSON text, skipping the dict round trip and
``json.dumps`` that a JSON-typed parameter costs per row.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import Enum
from typing import Any

from sqlalchemy import JSON, Connection, Engine, Text, Update, bindparam, cast, select, update
from sqlalchemy.sql.elements import ColumnElement

from coordinator.db.schema import ASSIGNMENTS, WORKERS
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
    containers_json: str | None = None
    """The container reports (a list of ``shared.ContainerReport``) as JSON text; None when
    the heartbeat had none."""
    docker_json: str | None = None
    """The Docker status (``shared.DockerInfo``) as JSON text; None when it had none."""


@dataclass(frozen=True)
class HeartbeatAccepted:
    """The heartbeat was recorded."""

    tier: int
    schedulability: Schedulability
    services: tuple[str, ...] = ()
    """The names of the services assigned to the worker."""


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
_assignments = ASSIGNMENTS


def _json_text(name: str, dialect: str) -> ColumnElement[Any]:
    """A parameter of JSON text for a JSON column.

    PostgreSQL needs the text cast to its ``json`` type; SQLite stores JSON as text, and
    there ``CAST(... AS JSON)`` would mean numeric affinity, so it gets the text as it is.
    """
    parameter = bindparam(name, type_=Text())
    return cast(parameter, JSON) if dialect == "postgresql" else parameter


def _record_statement(*, containers: bool, docker: bool, dialect: str) -> Update:
    """The UPDATE for heartbeats with (or without) container reports and Docker status."""
    values: dict[str, Any] = {
        "last_heartbeat": bindparam("b_received_at"),
        "current_load": bindparam("b_load"),
        "reported_status": bindparam("b_reported_status"),
        "owner_paused": bindparam("b_paused"),
        "status": "online",
    }
    if containers:
        values["containers"] = _json_text("b_containers", dialect)
    if docker:
        values["docker"] = _json_text("b_docker", dialect)
    return update(_workers).where(_workers.c.id == bindparam("b_id")).values(**values)


def _record_statements(dialect: str) -> dict[tuple[bool, bool], Update]:
    """One UPDATE per combination of the optional fields.

    Each batch is then one executemany per combination present (almost always one).
    """
    return {
        (containers, docker): _record_statement(
            containers=containers, docker=docker, dialect=dialect
        )
        for containers in (False, True)
        for docker in (False, True)
    }


_read_batch = select(
    _workers.c.id,
    _workers.c.token_hash,
    _workers.c.status,
    _workers.c.tier,
    _workers.c.drained,
    _workers.c.name,
    _assignments.c.service,
).select_from(_workers.outerjoin(_assignments, _assignments.c.worker_id == _workers.c.id))


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
        self._record_heartbeat = _record_statements(engine.dialect.name)
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
                _read_batch.where(_workers.c.id.in_({record.worker_id for record in batch}))
            ).all()
            known = {}
            services: dict[str, list[str]] = {}
            for found in rows:  # one row per assignment, or one with service NULL
                known[found.id] = found
                if found.service is not None:
                    services.setdefault(found.id, []).append(found.service)
            outcomes: list[HeartbeatOutcome] = []
            updates: dict[tuple[bool, bool], list[dict[str, Any]]] = {}
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
                    parameters: dict[str, Any] = {
                        "b_id": record.worker_id,
                        "b_received_at": record.received_at,
                        "b_load": record.load,
                        "b_reported_status": record.reported_status,
                        "b_paused": record.paused,
                    }
                    if record.containers_json is not None:
                        parameters["b_containers"] = record.containers_json
                    if record.docker_json is not None:
                        parameters["b_docker"] = record.docker_json
                    kind = (record.containers_json is not None, record.docker_json is not None)
                    updates.setdefault(kind, []).append(parameters)
                    assigned = services.get(row.id)
                    outcomes.append(
                        HeartbeatAccepted(
                            tier=row.tier,
                            schedulability=schedulability(
                                drained=row.drained, owner_paused=record.paused
                            ),
                            services=tuple(sorted(assigned)) if assigned else (),
                        )
                    )
            for kind, parameters_list in updates.items():
                connection.execute(self._record_heartbeat[kind], parameters_list)
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
