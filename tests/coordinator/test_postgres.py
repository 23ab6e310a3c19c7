"""The registry on a real PostgreSQL server: migrations, the worker and admin APIs, liveness,
restarts and concurrent heartbeats, through the same app operators run.

The server is the private cluster from ``tests/fixtures/postgres.py``; each test gets its own
empty database (``fresh_postgres_url``).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi.testclient import TestClient
from sqlalchemy import Engine, inspect, text

from coordinator.db import make_engine, migrate
from coordinator.db.schema import Base
from coordinator.placement.planner import PlacementPlan
from coordinator.placement.service import PlacementService
from coordinator.placement.store import load_assignments
from coordinator.workers.heartbeats import HeartbeatAccepted, HeartbeatRefused, HeartbeatWriter
from shared import ServiceCatalog
from shared.units import MAX_BYTES
from tests.fixtures.coordinator import LiveCoordinator
from tests.fixtures.postgres import PostgresServer

from .conftest import (
    ADMIN,
    HEARTBEAT_INTERVAL,
    SEED_CAPABILITIES,
    TIER2_CAPABILITIES,
    TIER3_CAPABILITIES,
    FakeClock,
    admin_view,
    bearer,
    heartbeat,
    new_worker_id,
    populate_one_worker_per_tier,
    register,
    running_coordinator,
    runtime_of,
    total_workers,
)
from .test_bad_input import (
    assert_clean_refusal,
    fuzz_worker,
    test_random_heartbeats_never_500,
    test_random_registrations_never_500,
)
from .test_persistence import add_worker, assert_upgrade_keeps_workers, record, row
from .test_placement_api import (
    CATALOG,
    GRACE,
    test_a_silent_worker_keeps_its_services_through_short_absences,
    test_after_a_drain_the_services_move_once_the_grace_is_over,
    test_container_reports_and_docker_status_in_the_admin_view,
    test_register_and_heartbeat_answers_carry_the_assignments,
    test_unregistering_moves_the_services_at_once,
)

pytestmark = pytest.mark.postgres

REGISTER = "/api/worker/register"
HEARTBEAT = "/api/worker/heartbeat"
JSON = {"content-type": "application/json"}


@pytest.fixture
def engine(fresh_postgres_url: str) -> Iterator[Engine]:
    engine = make_engine(fresh_postgres_url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_client(tmp_path: Path, clock: FakeClock, fresh_postgres_url: str) -> Iterator[TestClient]:
    """A running coordinator whose registry is the test's PostgreSQL database."""
    with running_coordinator(tmp_path / "data", clock, database_url=fresh_postgres_url) as client:
        yield client


# --- migrations ---------------------------------------------------------------------------


def test_migrations_run_on_postgres_and_match_the_models(engine: Engine) -> None:
    assert engine.dialect.name == "postgresql"
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        diff = compare_metadata(context, Base.metadata)
    assert diff == []
    migrate(engine)  # a second start on the same database changes nothing
    inspector = inspect(engine)
    assert {"workers", "assignments", "alembic_version"} <= set(inspector.get_table_names())
    types = {column["name"]: str(column["type"]) for column in inspector.get_columns("workers")}
    assert types["owner_paused"] == "BOOLEAN"
    assert types["capabilities"] == "JSON"
    assert types["last_heartbeat"] in {"DOUBLE PRECISION", "DOUBLE_PRECISION"}
    with engine.connect() as connection:
        version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    assert version == "0004"
    (foreign_key,) = inspector.get_foreign_keys("assignments")
    assert foreign_key["referred_table"] == "workers"
    assert foreign_key["options"]["ondelete"] == "CASCADE"


# --- the worker and admin APIs ------------------------------------------------------------


def test_register_heartbeat_and_refusals(pg_client: TestClient) -> None:
    gpu = register(pg_client, SEED_CAPABILITIES, name="Müllers Rechner 🖥")
    assert gpu.tier == 1
    cpu = register(pg_client, TIER2_CAPABILITIES, name="cpu-box")
    assert cpu.tier == 2

    answer = heartbeat(pg_client, gpu, current_load=0.5, status="busy")
    assert answer["tier"] == 1
    assert answer["schedulability"] == "active"
    view = admin_view(pg_client, gpu.worker_id)
    assert view["name"] == "Müllers Rechner 🖥"
    assert (view["status"], view["current_load"]) == ("online", 0.5)
    assert view["capabilities"]["gpus"][0]["memory"] == 24564 * 1024**2

    body = {"worker_id": gpu.worker_id}
    wrong = pg_client.post(HEARTBEAT, json=body, headers=bearer("not-a-token-of-anyone"))
    assert assert_clean_refusal(wrong, 401)["code"] == "bad_token"
    other = pg_client.post(HEARTBEAT, json=body, headers=cpu.headers)
    assert assert_clean_refusal(other, 403)["code"] == "not_this_worker"
    unknown = pg_client.post(HEARTBEAT, json={"worker_id": new_worker_id()}, headers=gpu.headers)
    assert assert_clean_refusal(unknown, 404)["code"] == "unknown_worker"
    gone = pg_client.delete(f"/api/worker/unregister/{gpu.worker_id}", headers=cpu.headers)
    assert_clean_refusal(gone, 403)

    listed = pg_client.get("/api/admin/workers", headers=ADMIN).json()
    assert listed["total"] == 2
    assert {w["worker_id"] for w in listed["workers"]} == {gpu.worker_id, cpu.worker_id}
    tier1 = pg_client.get("/api/admin/workers?tier=1&status=online", headers=ADMIN).json()
    assert [w["worker_id"] for w in tier1["workers"]] == [gpu.worker_id]
    assert pg_client.get("/api/admin/workers", headers=bearer("nope" * 8)).status_code == 401

    drained = pg_client.post(f"/api/admin/workers/{cpu.worker_id}/drain", headers=ADMIN)
    assert drained.json()["schedulability"] == "drained"
    assert heartbeat(pg_client, cpu, paused=True)["schedulability"] == "drained"
    stats = pg_client.get("/api/admin/stats", headers=ADMIN).json()
    assert (stats["total_workers"], stats["online_workers"], stats["active_workers"]) == (2, 2, 1)
    assert stats["by_tier"] == {"1": 1, "2": 1, "3": 0}
    health = pg_client.get("/api/admin/health", headers=ADMIN).json()
    assert (health["database"], health["online_workers"]) == ("ok", 2)

    left = pg_client.delete(f"/api/worker/unregister/{cpu.worker_id}", headers=cpu.headers)
    assert left.status_code == 200, left.text
    assert total_workers(pg_client) == 1


def test_liveness_sweep_marks_offline_then_removes(pg_client: TestClient, clock: FakeClock) -> None:
    runtime = runtime_of(pg_client)
    silent = register(pg_client, TIER3_CAPABILITIES, name="silent")
    alive = register(pg_client, TIER2_CAPABILITIES, name="alive")

    clock.advance(HEARTBEAT_INTERVAL)
    heartbeat(pg_client, alive)
    clock.advance(runtime.settings.offline_after - HEARTBEAT_INTERVAL + 1)
    result = runtime.liveness.sweep()  # UPDATE ... RETURNING
    assert (result.went_offline, result.removed) == ([silent.worker_id], [])
    assert admin_view(pg_client, silent.worker_id)["status"] == "offline"
    assert admin_view(pg_client, alive.worker_id)["status"] == "online"
    assert runtime.liveness.sweep().went_offline == []  # already offline: reported once

    clock.advance(runtime.settings.retention_seconds)
    heartbeat(pg_client, alive)
    result = runtime.liveness.sweep()  # DELETE ... RETURNING
    assert result.removed == [silent.worker_id]
    assert total_workers(pg_client) == 1
    refused = pg_client.post(
        HEARTBEAT, json={"worker_id": silent.worker_id}, headers=silent.headers
    )
    assert_clean_refusal(refused, 404)
    # The removed worker comes back under its old id.
    back = register(pg_client, TIER3_CAPABILITIES, worker_id=silent.worker_id)
    assert back.worker_id == silent.worker_id
    assert total_workers(pg_client) == 2


def test_restart_on_the_same_database_keeps_workers_and_tokens(
    tmp_path: Path, clock: FakeClock, fresh_postgres_url: str
) -> None:
    with running_coordinator(tmp_path / "first", clock, database_url=fresh_postgres_url) as client:
        workers, before = populate_one_worker_per_tier(client)

    clock.advance(60)
    # Another data dir: the registry lives in PostgreSQL, not next to the coordinator.
    with running_coordinator(tmp_path / "second", clock, database_url=fresh_postgres_url) as client:
        assert client.get("/api/admin/workers", headers=ADMIN).json()["total"] == 3
        for worker in workers:
            assert admin_view(client, worker.worker_id) == before[worker.worker_id]
        for worker in workers:
            heartbeat(client, worker)
        other = client.post(
            HEARTBEAT, json={"worker_id": workers[0].worker_id}, headers=workers[1].headers
        )
        assert_clean_refusal(other, 403)
        again = register(client, worker_id=workers[0].worker_id, headers=workers[0].headers)
        assert again.token == workers[0].token
    assert not list(tmp_path.glob("*/registry.db"))


# --- concurrency --------------------------------------------------------------------------

CONCURRENT = 40


def test_concurrent_heartbeats_over_a_real_server(
    tmp_path: Path, fresh_postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Registrations and heartbeats sent all at once over HTTP; every one is recorded."""
    batch_sizes: list[int] = []
    write = HeartbeatWriter._write

    def counting_write(self: HeartbeatWriter, batch: list[Any]) -> Any:
        batch_sizes.append(len(batch))
        return write(self, batch)

    monkeypatch.setattr(HeartbeatWriter, "_write", counting_write)
    live = LiveCoordinator(
        tmp_path / "data",
        settings_overrides={"database_url": fresh_postgres_url, "heartbeat_interval": 30.0},
    )
    live.start()
    try:

        async def run() -> tuple[list[httpx.Response], list[httpx.Response]]:
            limits = httpx.Limits(max_connections=CONCURRENT)
            async with httpx.AsyncClient(base_url=live.url, timeout=30, limits=limits) as http:
                registrations = await asyncio.gather(
                    *(
                        http.post(
                            REGISTER, json={"capabilities": TIER2_CAPABILITIES, "name": f"w{n}"}
                        )
                        for n in range(CONCURRENT)
                    )
                )
                beats = await asyncio.gather(
                    *(
                        http.post(
                            HEARTBEAT,
                            json={"worker_id": r.json()["worker_id"], "current_load": n / 100},
                            headers=bearer(r.json()["worker_token"]),
                        )
                        for n, r in enumerate(registrations)
                    )
                )
            return registrations, beats

        registrations, beats = asyncio.run(run())
        assert [r.status_code for r in registrations] == [200] * CONCURRENT
        assert [b.status_code for b in beats] == [200] * CONCURRENT, [b.text for b in beats]
        assert sum(batch_sizes) == CONCURRENT
        workers = {w["worker_id"]: w for w in live.workers()}
        assert len(workers) == CONCURRENT
        for n, registration in enumerate(registrations):
            stored = workers[registration.json()["worker_id"]]
            assert (stored["status"], stored["current_load"]) == ("online", n / 100)
    finally:
        live.stop()


def test_mixed_batch_through_the_writer_thread(engine: Engine) -> None:
    """The group-commit writer on PostgreSQL: one batch, each heartbeat its own outcome."""
    tokens = {add_worker(engine, f"token-{n}"): f"token-{n}" for n in range(CONCURRENT)}
    drained = add_worker(engine, "drained-token", drained=True)
    first = next(iter(tokens))
    writer = HeartbeatWriter(engine, max_batch=16)

    async def send_all() -> list[object]:
        await writer.start()
        calls = [writer.record(record(wid, token)) for wid, token in tokens.items()]
        calls.append(writer.record(record(drained, "drained-token", paused=True)))
        calls.append(writer.record(record(new_worker_id(), "token-0")))
        calls.append(writer.record(record(first, "not-anyones-token")))
        calls.append(writer.record(record(first, "token-1")))
        try:
            return await asyncio.gather(*calls)
        finally:
            await writer.stop()

    outcomes = asyncio.run(send_all())
    active = HeartbeatAccepted(tier=2, schedulability="active")
    assert outcomes[:CONCURRENT] == [active] * CONCURRENT
    assert outcomes[CONCURRENT:] == [
        HeartbeatAccepted(tier=2, schedulability="drained"),
        HeartbeatRefused.UNKNOWN_WORKER,
        HeartbeatRefused.BAD_TOKEN,
        HeartbeatRefused.NOT_THIS_WORKER,
    ]
    assert all(row(engine, wid).status == "online" for wid in tokens)
    assert row(engine, drained).owner_paused is True


# --- bad input ----------------------------------------------------------------------------


def test_nul_characters_are_refused_not_500(pg_client: TestClient) -> None:
    worker = register(pg_client, name="ok")
    for body in (
        {"capabilities": SEED_CAPABILITIES, "name": "a\x00b"},
        {"capabilities": SEED_CAPABILITIES, "agent_version": "1.0\x00"},
        {"capabilities": {**SEED_CAPABILITIES, "cpu_model": "\x00"}},
        {"capabilities": {**SEED_CAPABILITIES, "os": "Linux\x00"}},
    ):
        assert_clean_refusal(pg_client.post(REGISTER, json=body), 422)
    beat = {"worker_id": worker.worker_id, "status": "busy\x00"}
    assert_clean_refusal(pg_client.post(HEARTBEAT, json=beat, headers=worker.headers), 422)
    assert total_workers(pg_client) == 1
    assert admin_view(pg_client, worker.worker_id)["reported_status"] is None


def test_nul_in_free_text_inside_capabilities_never_500(pg_client: TestClient) -> None:
    """Text stored inside the JSON capabilities column (not only the plain text columns)."""
    body = {
        "capabilities": {
            "ram": "8GB",
            "docker": {"usable": False, "status": "error", "message": "bad\x00thing"},
            "gpus": [{"vendor": "nvidia", "name": "RTX\x00", "memory": "8GB"}],
        }
    }
    response = pg_client.post(REGISTER, json=body)
    assert 400 <= response.status_code < 500, response.text
    body["capabilities"]["gpus"] = []
    response = pg_client.post(REGISTER, json=body)
    assert response.status_code < 500, response.text
    if response.status_code == 200:
        view = admin_view(pg_client, response.json()["worker_id"])
        assert view["capabilities"]["docker"]["message"] == "bad\x00thing"
    else:
        assert_clean_refusal(response, 422)


def test_huge_numbers_are_4xx_or_stored_exactly(pg_client: TestClient) -> None:
    huge = str(10**40)
    for raw in (
        '{"capabilities": {"cpu_cores": ' + huge + ', "ram": ' + huge + "}}",
        '{"capabilities": {"ram": "64GB"}, "protocol_version": ' + huge + "}",
        '{"capabilities": {"ram": "64GB"}, "protocol_version": 2147483648}',
    ):
        response = pg_client.post(REGISTER, content=raw, headers=JSON)
        assert_clean_refusal(response)

    biggest = {"ram": MAX_BYTES, "storage": MAX_BYTES, "cpu_cores": 2**31, "gpus": []}
    response = pg_client.post(REGISTER, json={"capabilities": biggest})
    assert response.status_code == 200, response.text
    worker_id = response.json()["worker_id"]
    stored = admin_view(pg_client, worker_id)["capabilities"]
    assert (stored["ram"], stored["storage"]) == (MAX_BYTES, MAX_BYTES)

    token = response.json()["worker_token"]
    for load in (1e308, 2**64, 10**15):
        beat = {"worker_id": worker_id, "current_load": load}
        answer = pg_client.post(HEARTBEAT, json=beat, headers=bearer(token))
        assert answer.status_code == 200, answer.text
        assert admin_view(pg_client, worker_id)["current_load"] == float(load)
    for load in ("1e999", str(10**400)):
        content = f'{{"worker_id": "{worker_id}", "current_load": {load}}}'
        answer = pg_client.post(HEARTBEAT, content=content, headers={**bearer(token), **JSON})
        assert_clean_refusal(answer, 422)

    for query in (f"offset={10**30}", f"offset={2**63}", f"tier={2**31}"):
        response = pg_client.get(f"/api/admin/workers?{query}", headers=ADMIN)
        assert_clean_refusal(response, 422)
    largest = pg_client.get(f"/api/admin/workers?offset={2**63 - 1}", headers=ADMIN)
    assert largest.status_code == 200, largest.text


# The random-input properties of test_bad_input.py, run again with the registry on PostgreSQL
# (its strings, numbers and JSON go through psycopg and PostgreSQL's types, not SQLite's).
__all__ = [
    "fuzz_worker",
    "test_random_heartbeats_never_500",
    "test_random_registrations_never_500",
]


@pytest.fixture(scope="module")
def shared_client(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: PostgresServer
) -> Iterator[TestClient]:
    """One coordinator on one PostgreSQL database for all examples of a property."""
    name = f"fuzz_{uuid.uuid4().hex}"
    url = postgres_server.create_database(name)
    try:
        with running_coordinator(
            tmp_path_factory.mktemp("pgfuzz"), FakeClock(), database_url=url
        ) as client:
            yield client
    finally:
        postgres_server.drop_database(name)


# --- placement ----------------------------------------------------------------------------

# The placement API tests of test_placement_api.py, run again with the registry on PostgreSQL
# (their `pool` is the fixture below): assignments in answers, grace after a drain and after
# silence, unregistration, container reports.
__all__ += [
    "test_a_silent_worker_keeps_its_services_through_short_absences",
    "test_after_a_drain_the_services_move_once_the_grace_is_over",
    "test_container_reports_and_docker_status_in_the_admin_view",
    "test_register_and_heartbeat_answers_carry_the_assignments",
    "test_unregistering_moves_the_services_at_once",
]


@pytest.fixture
def pool(tmp_path: Path, clock: FakeClock, fresh_postgres_url: str) -> Iterator[TestClient]:
    """The placement API tests' coordinator, on the test's PostgreSQL database."""
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(CATALOG, encoding="utf-8")
    with running_coordinator(
        tmp_path / "data",
        clock,
        database_url=fresh_postgres_url,
        catalog=catalog,
        placement_grace=GRACE,
    ) as client:
        yield client


def test_upgrade_from_the_first_schema_on_postgres(fresh_postgres_url: str) -> None:
    engine = make_engine(fresh_postgres_url)
    try:
        assert_upgrade_keeps_workers(engine)
    finally:
        engine.dispose()


REPLICAS = 6


def test_coordinator_replicas_never_place_a_service_twice(engine: Engine) -> None:
    """Several coordinators planning at once on one database: the advisory lock serialises
    them, so each replica is placed exactly once and no plan fails."""
    catalog = ServiceCatalog.model_validate(
        {
            "services": [
                {"name": f"s{n}", "image": "example.org/s:1", "port": 8000, "tiers": [2]}
                for n in range(4)
            ]
            + [
                {
                    "name": "wide",
                    "image": "example.org/w:1",
                    "port": 8000,
                    "tiers": [2],
                    "replicas": 5,
                }
            ]
        }
    )
    for n in range(8):
        worker_id = add_worker(engine, f"token-{n}")
        with engine.begin() as connection:
            connection.execute(
                text("UPDATE workers SET status = 'online', capabilities = :caps WHERE id = :id"),
                {"caps": '{"docker": {"usable": true}}', "id": worker_id},
            )
    clock = FakeClock()
    replicas = [PlacementService(engine, catalog, clock, grace=300) for _ in range(REPLICAS)]

    async def plan_everywhere() -> list[PlacementPlan]:
        return await asyncio.gather(*(asyncio.to_thread(replica.run) for replica in replicas))

    plans = asyncio.run(plan_everywhere())
    placed = [change for plan in plans for change in plan.changes if change.kind == "placed"]
    assert len(placed) == 4 + 5
    assert sum(1 for plan in plans if plan.changes) == 1  # the others found nothing to do
    with engine.connect() as connection:
        stored = load_assignments(connection)
    assert len(stored) == 9
    assert len({a.worker_id for a in stored if a.service == "wide"}) == 5
