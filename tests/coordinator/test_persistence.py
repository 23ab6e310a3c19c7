"""The registry survives restarts; the migration matches the models; batched heartbeats."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import (
    Column,
    Engine,
    MetaData,
    String,
    column,
    delete,
    insert,
    inspect,
    select,
    table,
)
from sqlalchemy.orm import Session

from coordinator.db import MIGRATIONS_DIR, make_engine, migrate
from coordinator.db.schema import ASSIGNMENTS, WORKERS, Base, WorkerRow
from coordinator.security import hash_token
from coordinator.workers.heartbeats import (
    HeartbeatAccepted,
    HeartbeatRecord,
    HeartbeatRefused,
    HeartbeatWriter,
)

from .conftest import (
    ADMIN,
    FakeClock,
    StartCoordinator,
    admin_view,
    heartbeat,
    new_worker_id,
    populate_one_worker_per_tier,
    register,
)


def test_registry_survives_restart(start: StartCoordinator, clock: FakeClock) -> None:
    with start() as client:
        workers, before = populate_one_worker_per_tier(client)

    clock.advance(60)
    with start() as client:
        listed = client.get("/api/admin/workers", headers=ADMIN).json()
        assert listed["total"] == 3
        for worker in workers:
            view = admin_view(client, worker.worker_id)
            assert view == before[worker.worker_id]
        assert [admin_view(client, w.worker_id)["tier"] for w in workers] == [1, 2, 3]
        assert before[workers[0].worker_id]["current_load"] == 0.75
        assert before[workers[1].worker_id]["schedulability"] == "paused"
        assert before[workers[2].worker_id]["schedulability"] == "drained"
        # The tokens issued before the restart still work, and still only for their worker.
        for worker in workers:
            heartbeat(client, worker)
        response = client.post(
            "/api/worker/heartbeat",
            json={"worker_id": workers[0].worker_id},
            headers=workers[1].headers,
        )
        assert response.status_code == 403
        again = register(client, worker_id=workers[0].worker_id, headers=workers[0].headers)
        assert again.token == workers[0].token


def test_restart_keeps_unregistrations(start: StartCoordinator) -> None:
    with start() as client:
        gone, kept = register(client), register(client)
        response = client.delete(f"/api/worker/unregister/{gone.worker_id}", headers=gone.headers)
        assert response.status_code == 200
    with start() as client:
        assert client.get("/api/admin/stats", headers=ADMIN).json()["total_workers"] == 1
        heartbeat(client, kept)


# --- migrations ---------------------------------------------------------------------------


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'registry.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


def test_migration_matches_models(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_migration_is_idempotent(engine: Engine) -> None:
    migrate(engine)  # a second start on the same database changes nothing
    tables = set(inspect(engine).get_table_names())
    assert {"workers", "alembic_version"} <= tables


def test_sqlite_runs_in_wal_mode(engine: Engine) -> None:
    with engine.connect() as connection:
        mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
    assert mode == "wal"


# --- batched heartbeats -------------------------------------------------------------------


def add_worker(engine: Engine, token: str, *, drained: bool = False) -> str:
    worker_id = new_worker_id()
    with Session(engine) as session, session.begin():
        session.add(
            WorkerRow(
                id=worker_id,
                token_hash=hash_token(token),
                name=f"worker-{token}",
                tier=2,
                capabilities={},
                protocol_version=2,
                agent_version=None,
                status="offline",
                owner_paused=False,
                drained=drained,
                current_load=0.0,
                reported_status=None,
                registered_at=1000.0,
                last_heartbeat=1000.0,
            )
        )
    return worker_id


def record(
    worker_id: str, token: str, *, load: float = 0.5, paused: bool = False
) -> HeartbeatRecord:
    return HeartbeatRecord(
        worker_id=worker_id,
        token_hash=hash_token(token),
        load=load,
        reported_status="running",
        paused=paused,
        received_at=2000.0,
    )


def row(engine: Engine, worker_id: str) -> WorkerRow:
    with Session(engine) as session:
        found = session.scalar(select(WorkerRow).where(WorkerRow.id == worker_id))
        assert found is not None
        session.expunge(found)
        return found


def test_mixed_batch_gives_each_heartbeat_its_own_outcome(engine: Engine) -> None:
    alice = add_worker(engine, "alice-token")
    bob = add_worker(engine, "bob-token", drained=True)
    carol = add_worker(engine, "carol-token")
    batch = [
        record(alice, "alice-token", load=0.25),
        record(new_worker_id(), "alice-token"),  # unknown worker
        record(carol, "not-anyones-token"),  # bad token
        record(carol, "bob-token", load=0.99),  # another worker's token
        record(bob, "bob-token", load=0.75, paused=True),
    ]
    writer = HeartbeatWriter(engine)
    outcomes = writer._write(batch)
    assert outcomes == [
        HeartbeatAccepted(tier=2, schedulability="active"),
        HeartbeatRefused.UNKNOWN_WORKER,
        HeartbeatRefused.BAD_TOKEN,
        HeartbeatRefused.NOT_THIS_WORKER,
        HeartbeatAccepted(tier=2, schedulability="drained"),
    ]
    accepted_alice = row(engine, alice)
    assert (accepted_alice.status, accepted_alice.current_load) == ("online", 0.25)
    assert accepted_alice.last_heartbeat == 2000.0
    assert accepted_alice.reported_status == "running"
    accepted_bob = row(engine, bob)
    assert (accepted_bob.status, accepted_bob.current_load) == ("online", 0.75)
    assert accepted_bob.owner_paused is True
    untouched = row(engine, carol)
    assert (untouched.status, untouched.current_load, untouched.last_heartbeat) == (
        "offline",
        0.0,
        1000.0,
    )


def test_batch_through_the_writer_thread(engine: Engine) -> None:
    """Concurrent heartbeats through the real queue and thread, answered one by one."""
    workers = {add_worker(engine, f"token-{n}"): f"token-{n}" for n in range(20)}
    writer = HeartbeatWriter(engine, max_batch=8)

    async def send_all() -> list[object]:
        await writer.start()
        calls = [writer.record(record(wid, token)) for wid, token in workers.items()]
        calls.append(writer.record(record(new_worker_id(), "token-0")))
        calls.append(writer.record(record(next(iter(workers)), "token-1")))
        try:
            return await asyncio.gather(*calls)
        finally:
            await writer.stop()

    outcomes = asyncio.run(send_all())
    assert outcomes[:20] == [HeartbeatAccepted(tier=2, schedulability="active")] * 20
    assert outcomes[20] is HeartbeatRefused.UNKNOWN_WORKER
    assert outcomes[21] is HeartbeatRefused.NOT_THIS_WORKER
    assert all(row(engine, wid).status == "online" for wid in workers)


def test_writer_refuses_when_not_running(engine: Engine) -> None:
    writer = HeartbeatWriter(engine)
    with pytest.raises(RuntimeError):
        asyncio.run(writer.record(record(new_worker_id(), "x")))
    asyncio.run(writer.stop())  # stopping a writer that never started is harmless


def test_migration_check_sees_drift(engine: Engine) -> None:
    """The comparison above is not vacuous: a column the migration lacks shows up."""
    drifted = MetaData()
    for existing in Base.metadata.tables.values():
        existing.to_metadata(drifted)
    drifted.tables["workers"].append_column(Column("extra", String(8)))
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), drifted)
    assert [change[0] for change in diff] == ["add_column"]


# --- upgrading an existing registry -------------------------------------------------------


WORKERS_0001_COLUMNS = (
    "id",
    "token_hash",
    "name",
    "tier",
    "capabilities",
    "protocol_version",
    "status",
    "owner_paused",
    "drained",
    "current_load",
    "registered_at",
    "last_heartbeat",
)


def assert_upgrade_keeps_workers(engine: Engine) -> None:
    """A registry made by migration 0001, with a worker in it, upgrades to the newest."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))

    def to(revision: str, *, down: bool = False) -> None:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            (command.downgrade if down else command.upgrade)(config, revision)

    to("0001")
    worker_id = new_worker_id()
    # The table as migration 0001 made it, so columns added later (with their defaults)
    # are not part of this insert.
    workers_0001 = table(
        "workers", *(column(name, WORKERS.c[name].type) for name in WORKERS_0001_COLUMNS)
    )
    with engine.begin() as connection:
        connection.execute(
            insert(workers_0001).values(
                id=worker_id,
                token_hash=hash_token("old-token"),
                name="old",
                tier=2,
                capabilities={"ram": 8 * 1024**3},
                protocol_version=1,
                status="online",
                owner_paused=False,
                drained=True,
                current_load=0.5,
                registered_at=1000.0,
                last_heartbeat=1000.0,
            )
        )
    migrate(engine)
    upgraded = row(engine, worker_id)
    assert (upgraded.name, upgraded.drained, upgraded.current_load) == ("old", True, 0.5)
    assert (upgraded.containers, upgraded.docker, upgraded.trusted) == (None, None, False)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
    to("0001", down=True)
    assert "assignments" not in inspect(engine).get_table_names()
    migrate(engine)
    assert row(engine, worker_id).name == "old"


def test_upgrade_from_the_first_schema_keeps_workers(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        assert_upgrade_keeps_workers(engine)
    finally:
        engine.dispose()


def test_deleting_a_worker_deletes_its_assignments(engine: Engine) -> None:
    worker_id = add_worker(engine, "token")
    with engine.begin() as connection:
        connection.execute(
            insert(ASSIGNMENTS).values(worker_id=worker_id, service="rag", assigned_at=1.0)
        )
    with engine.begin() as connection:
        connection.execute(delete(WORKERS).where(WORKERS.c.id == worker_id))
    with engine.connect() as connection:
        assert connection.execute(select(ASSIGNMENTS)).all() == []
