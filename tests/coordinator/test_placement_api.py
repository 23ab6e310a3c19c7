"""Placement through the API: assignments in register and heartbeat answers, grace periods
after drains, pauses and silence, container reports in the admin view."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from .conftest import (
    ADMIN,
    SEED_CAPABILITIES,
    TIER2_CAPABILITIES,
    TIER3_CAPABILITIES,
    FakeClock,
    StartCoordinator,
    admin_view,
    heartbeat,
    register,
    runtime_of,
)

GIB = 1024**3
GRACE = 300.0
DOCKER = {"usable": True, "status": "running", "version": "26.1.5", "gpu_runtime": False}
DOCKER_DOWN = {
    "usable": False,
    "status": "not_running",
    "message": "Docker Desktop is not running — Start Docker",
}
SERVICE_WORKER = {**TIER2_CAPABILITIES, "docker": DOCKER}
DATA_WORKER = {**TIER3_CAPABILITIES, "storage": "50GiB", "docker": DOCKER}

CATALOG = """
[[services]]
name = "rag"
description = "Finds answers in the advice library."
image = "registry.test/rag:1"
port = 8000
tiers = [2]
min_ram = "1GiB"
health_path = "/health"
env = { MODE = "pool" }

[[services]]
name = "ocr"
image = "registry.test/ocr:1"
port = 8001
tiers = [2]
command = ["serve", "--port", "8001"]

[[services]]
name = "db"
image = "postgres:16"
port = 5432
tiers = [3]
volumes = ["/var/lib/postgresql/data"]
cap_add = ["CHOWN", "SETUID"]
min_disk = "1GiB"
"""

RAG = {
    "service": "rag",
    "image": "registry.test/rag:1",
    "port": 8000,
    "env": {"MODE": "pool"},
    "command": None,
    "gpu": False,
    "health_path": "/health",
    "volumes": [],
    "cap_add": [],
    "min_ram": GIB,
    "min_disk": None,
    "reason": "Tier 2 service worker: runs rag (finds answers in the advice library)",
}


@pytest.fixture
def catalog_file(tmp_path: Path) -> Path:
    path = tmp_path / "catalog.toml"
    path.write_text(CATALOG, encoding="utf-8")
    return path


@pytest.fixture
def pool(start: StartCoordinator, catalog_file: Path) -> Any:
    """A coordinator with the test catalogue and a 300 s placement grace."""
    with start(catalog=catalog_file, placement_grace=GRACE) as client:
        yield client


def services(answer: dict[str, Any]) -> list[str]:
    return [assignment["service"] for assignment in answer["assigned_containers"]]


def place(client: TestClient) -> None:
    """What the background loop does every sweep period: liveness, then placement."""
    runtime = runtime_of(client)
    runtime.liveness.sweep()
    runtime.placement.run()


def test_register_and_heartbeat_answers_carry_the_assignments(pool: TestClient) -> None:
    first = register(pool, SERVICE_WORKER, name="alice-pc")
    assert first.response["assigned_containers"][0] == RAG
    assert services(first.response) == ["rag", "ocr"]
    ocr = first.response["assigned_containers"][1]
    assert (ocr["command"], ocr["port"]) == (["serve", "--port", "8001"], 8001)
    assert services(heartbeat(pool, first)) == ["rag", "ocr"]

    # Nothing moves when a second worker joins: replicas are 1 and both fit on the first.
    second = register(pool, SERVICE_WORKER, name="bob-pc")
    assert services(second.response) == []
    assert services(heartbeat(pool, first)) == ["rag", "ocr"]

    data = register(pool, DATA_WORKER, name="nas")
    (db,) = data.response["assigned_containers"]
    assert (db["service"], db["volumes"], db["cap_add"]) == (
        "db",
        ["/var/lib/postgresql/data"],
        ["CHOWN", "SETUID"],
    )
    assert db["reason"] == "Tier 3 data worker: runs db"
    assert admin_view(pool, first.worker_id)["assigned_services"] == ["ocr", "rag"]
    assert admin_view(pool, second.worker_id)["assigned_services"] == []


def test_workers_without_docker_get_nothing(
    pool: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="coordinator.placement"):
        dockerless = register(pool, TIER2_CAPABILITIES)
        seed = register(pool, SEED_CAPABILITIES)
    assert services(seed.response) == services(dockerless.response) == []
    assert services(heartbeat(pool, dockerless)) == []
    assert (
        "Could not place rag: 0 of 1 replica placed; of 1 worker: 1 not able to run containers"
        in caplog.text
    )
    # Logged when it changes, not on every run.
    assert caplog.text.count("Could not place rag") == 1


def test_after_a_drain_the_services_move_once_the_grace_is_over(
    pool: TestClient, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    alice = register(pool, SERVICE_WORKER, name="alice-pc")
    bob = register(pool, SERVICE_WORKER, name="bob-pc")
    with caplog.at_level(logging.INFO, logger="coordinator"):
        drained = pool.post(f"/api/admin/workers/{alice.worker_id}/drain", headers=ADMIN)
        assert drained.status_code == 200
        assert drained.json()["assigned_services"] == ["ocr", "rag"]  # held, not moved yet
        answer = heartbeat(pool, alice)
        assert (answer["schedulability"], services(answer)) == ("drained", ["rag", "ocr"])
        assert services(heartbeat(pool, bob)) == []

        clock.advance(GRACE - 1)
        heartbeat(pool, alice)
        heartbeat(pool, bob)
        place(pool)
        assert services(heartbeat(pool, alice)) == ["rag", "ocr"]

        clock.advance(1)
        place(pool)
    assert services(heartbeat(pool, alice)) == []
    assert services(heartbeat(pool, bob)) == ["rag", "ocr"]
    assert "Worker alice-pc [" in caplog.text and "is drained by an admin: keeping" in caplog.text
    assert "]: drained by an admin for 5 min" in caplog.text
    assert f"Placed rag on worker bob-pc [{bob.worker_id}] (tier 2)" in caplog.text

    # Undrained, alice takes what is new, and nothing moves back.
    pool.post(f"/api/admin/workers/{alice.worker_id}/undrain", headers=ADMIN)
    assert services(heartbeat(pool, alice)) == []


def test_a_silent_worker_keeps_its_services_through_short_absences(
    pool: TestClient, clock: FakeClock
) -> None:
    alice = register(pool, SERVICE_WORKER)
    bob = register(pool, SERVICE_WORKER)
    offline_after = runtime_of(pool).settings.offline_after
    for _ in range(3):  # away long enough to be marked offline, back within the grace
        clock.advance(offline_after + 1)
        heartbeat(pool, bob)
        place(pool)
        assert admin_view(pool, alice.worker_id)["status"] == "offline"
        assert services(heartbeat(pool, bob)) == []
        clock.advance(GRACE - offline_after - 10)
        assert services(heartbeat(pool, alice)) == ["rag", "ocr"]
        heartbeat(pool, bob)
        place(pool)

    clock.advance(offline_after + 1)
    heartbeat(pool, bob)
    place(pool)  # offline now: the grace starts
    clock.advance(GRACE)
    heartbeat(pool, bob)
    place(pool)
    assert services(heartbeat(pool, bob)) == ["rag", "ocr"]
    assert services(heartbeat(pool, alice)) == []


@pytest.mark.parametrize("how", ["paused", "docker stopped"])
def test_a_paused_or_dockerless_worker_is_held_then_moved(
    pool: TestClient, clock: FakeClock, how: str
) -> None:
    alice = register(pool, SERVICE_WORKER)
    bob = register(pool, SERVICE_WORKER)
    change = {"paused": True} if how == "paused" else {"docker": DOCKER_DOWN}
    assert services(heartbeat(pool, alice, **change)) == ["rag", "ocr"]
    place(pool)
    clock.advance(GRACE)
    heartbeat(pool, bob)
    assert services(heartbeat(pool, alice, **change)) == ["rag", "ocr"]
    place(pool)
    assert services(heartbeat(pool, alice, **change)) == []
    assert services(heartbeat(pool, bob)) == ["rag", "ocr"]


def test_unregistering_moves_the_services_at_once(pool: TestClient) -> None:
    alice = register(pool, SERVICE_WORKER)
    bob = register(pool, SERVICE_WORKER)
    left = pool.delete(f"/api/worker/unregister/{alice.worker_id}", headers=alice.headers)
    assert left.status_code == 200
    assert services(heartbeat(pool, bob)) == ["rag", "ocr"]


def test_container_reports_and_docker_status_in_the_admin_view(pool: TestClient) -> None:
    alice = register(pool, SERVICE_WORKER)
    reports = [
        {
            "service": "rag",
            "image": "registry.test/rag:1",
            "state": "pulling",
            "progress": 0.25,
            "bytes_done": 25,
            "bytes_total": 100,
            "message": "Downloading the image",
        },
        {
            "service": "ocr",
            "image": "registry.test/ocr:1",
            "state": "exited",
            "message": "The container exited with code 1",
            "restarts": 3,
        },
    ]
    heartbeat(pool, alice, containers=reports, docker=DOCKER)
    view = admin_view(pool, alice.worker_id)
    assert [(c["service"], c["state"]) for c in view["containers"]] == [
        ("rag", "pulling"),
        ("ocr", "exited"),
    ]
    assert view["containers"][0]["progress"] == 0.25
    assert view["containers"][1]["message"] == "The container exited with code 1"
    assert view["containers"][1]["restarts"] == 3

    # A heartbeat without reports (a seed agent's) keeps the last ones.
    heartbeat(pool, alice, current_load=0.5)
    assert len(admin_view(pool, alice.worker_id)["containers"]) == 2

    heartbeat(pool, alice, containers=[{**reports[0], "state": "running"}], docker=DOCKER_DOWN)
    view = admin_view(pool, alice.worker_id)
    assert [(c["service"], c["state"]) for c in view["containers"]] == [("rag", "running")]
    assert view["capabilities"]["docker"]["status"] == "not_running"
    listed = pool.get("/api/admin/workers", headers=ADMIN).json()["workers"]
    assert listed[0]["containers"] == view["containers"]
    assert listed[0]["assigned_services"] == ["ocr", "rag"]

    # Registering again (the agent restarted) drops the stale reports.
    register(pool, SERVICE_WORKER, worker_id=alice.worker_id, headers=alice.headers)
    view = admin_view(pool, alice.worker_id)
    assert view["containers"] == []
    assert view["capabilities"]["docker"]["status"] == "running"


def test_a_bad_container_report_is_refused(pool: TestClient) -> None:
    alice = register(pool, SERVICE_WORKER)
    body = {
        "worker_id": alice.worker_id,
        "containers": [{"service": "rag", "image": "x", "state": "exploded"}],
    }
    response = pool.post("/api/worker/heartbeat", json=body, headers=alice.headers)
    assert response.status_code == 422
    assert "containers.0.state" in response.json()["detail"]


def test_assignments_survive_a_restart_and_follow_catalogue_changes(
    start: StartCoordinator, catalog_file: Path, tmp_path: Path, clock: FakeClock
) -> None:
    with start(catalog=catalog_file) as client:
        alice = register(client, SERVICE_WORKER)
        assert services(alice.response) == ["rag", "ocr"]

    clock.advance(60)
    with start(catalog=catalog_file) as client:
        assert services(heartbeat(client, alice)) == ["rag", "ocr"]

    smaller = tmp_path / "smaller.json"
    smaller.write_text(
        '{"services": [{"name": "rag", "image": "registry.test/rag:2", "port": 8000,'
        ' "tiers": [2]}]}',
        encoding="utf-8",
    )
    with start(catalog=smaller) as client:
        answer = heartbeat(client, alice)
        assert services(answer) == ["rag"]  # ocr left the catalogue: gone at start-up
        assert answer["assigned_containers"][0]["image"] == "registry.test/rag:2"


def test_the_default_catalogue_places_the_seed_services(client: TestClient) -> None:
    gpu_box = {
        "cpu_cores": 16,
        "ram": "64GiB",
        "storage": "2TiB",
        "gpus": [{"vendor": "nvidia", "name": "RTX 4090", "memory": "24GiB"}],
        "docker": {**DOCKER, "gpu_runtime": True},
    }
    data_box = {**DATA_WORKER, "ram": "8GiB", "storage": "100GiB"}
    gpu = register(client, gpu_box)
    data = register(client, data_box)
    # Services with personal data wait for an admin to trust a machine.
    assert set(services(gpu.response)) == {"vllm", "ollama-vision"}
    assert set(services(data.response)) == {"redis", "chromadb", "neo4j"}
    for worker in (gpu, data):
        trusted = client.post(f"/api/admin/workers/{worker.worker_id}/trust", headers=ADMIN)
        assert trusted.status_code == 200 and trusted.json()["trusted"] is True
    gpu = register(client, gpu_box, worker_id=gpu.worker_id, headers=gpu.headers)
    data = register(client, data_box, worker_id=data.worker_id, headers=data.headers)
    assert set(services(gpu.response)) == {"vllm", "ollama-vision", "rag", "notes", "ner", "ocr"}
    assert set(services(data.response)) == {"postgres", "redis", "chromadb", "neo4j"}
    vllm = gpu.response["assigned_containers"][0]
    assert (vllm["service"], vllm["gpu"]) == ("vllm", True)
    assert vllm["reason"].startswith("Tier 1 GPU worker: runs vllm (")


def test_trust_decides_where_sensitive_services_run(
    start: StartCoordinator, tmp_path: Path
) -> None:
    sensitive = tmp_path / "sensitive.toml"
    sensitive.write_text(CATALOG.replace('name = "rag"', 'name = "rag"\nsensitive = true'))
    with start(catalog=sensitive, placement_grace=GRACE) as client:
        worker = register(client, SERVICE_WORKER)
        assert "rag" not in services(worker.response), "not before an admin trusts it"
        url = f"/api/admin/workers/{worker.worker_id}/trust"
        assert client.post(url).status_code == 401, "trust is an admin action"
        assert client.post(url, headers=ADMIN).json()["trusted"] is True
        assert "rag" in services(heartbeat(client, worker, containers=[], docker=DOCKER))
        untrust = f"/api/admin/workers/{worker.worker_id}/untrust"
        assert client.post(untrust, headers=ADMIN).json()["trusted"] is False
        # Taken away at once, with no grace period.
        assert "rag" not in services(heartbeat(client, worker, containers=[], docker=DOCKER))
        unknown = "/api/admin/workers/00000000-0000-4000-8000-000000000000/trust"
        assert client.post(unknown, headers=ADMIN).status_code == 404
