"""The pool at a glance: ``/api/admin/overview``, its history, and the pool's ``/metrics``."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from coordinator.pool import HISTORY_SPAN, quantile
from tests.coordinator.conftest import (
    ADMIN,
    TIER2_CAPABILITIES,
    FakeClock,
    StartCoordinator,
    heartbeat,
    register,
    runtime_of,
)
from tests.coordinator.protocol_worker import ProtocolWorker, routable
from tests.fixtures.coordinator import LiveCoordinator, wait_until

SERVICE = {"image": "example/web:1", "port": 8080, "tiers": [1, 2, 3]}
DOCKER = {"usable": True, "status": "running", "version": "26.1.5", "gpu_runtime": False}
SERVICE_WORKER = {**TIER2_CAPABILITIES, "docker": DOCKER}
CATALOG = {
    "services": [
        {"name": "web", **SERVICE, "replicas": 2, "description": "The web front"},
        {"name": "vault", **SERVICE, "sensitive": True},
    ]
}


@pytest.fixture
def catalog_file(tmp_path: Path) -> Path:
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(CATALOG))
    return path


def overview(client: TestClient) -> dict[str, Any]:
    response = client.get("/api/admin/overview", headers=ADMIN)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def by_name(services: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {service["name"]: service for service in services}


def test_overview_counts_workers_and_replicas(
    start: StartCoordinator, catalog_file: Path, clock: FakeClock
) -> None:
    with start(catalog=catalog_file, placement_grace=0) as client:
        workers = [register(client, SERVICE_WORKER, name=f"w{i}") for i in range(3)]
        placed_on = [w for w in workers if w.response["assigned_containers"]]
        running = {"service": "web", "image": "example/web:1", "state": "running"}
        heartbeat(client, placed_on[0], containers=[running])
        client.post(f"/api/admin/workers/{workers[2].worker_id}/drain", headers=ADMIN)

        data = overview(client)

    stats = data["stats"]
    assert (stats["total_workers"], stats["online_workers"], stats["active_workers"]) == (3, 3, 2)
    web = by_name(data["services"])["web"]
    assert (web["desired"], web["placed"], web["running"], web["ready"]) == (2, 2, 1, 0)
    assert web["description"] == "The web front"
    assert by_name(data["services"])["vault"]["sensitive"] is True
    assert data["relay"]["tunnels_open"] == 0
    assert data["enrollment_required"] is False
    assert data["history_interval_seconds"] == 10.0


def test_offline_workers_count_as_not_running(
    start: StartCoordinator, catalog_file: Path, clock: FakeClock
) -> None:
    with start(catalog=catalog_file) as client:
        worker = register(client, SERVICE_WORKER)
        running = {"service": "web", "image": "example/web:1", "state": "running"}
        heartbeat(client, worker, containers=[running])
        assert by_name(overview(client)["services"])["web"]["running"] == 1
        clock.advance(1000)
        runtime_of(client).liveness.sweep()

        data = overview(client)

    assert by_name(data["services"])["web"]["running"] == 0
    assert data["stats"]["offline_workers"] == 1


def test_the_history_keeps_an_hour_of_samples(start: StartCoordinator, clock: FakeClock) -> None:
    with start(history_interval=60) as client:
        runtime = runtime_of(client)
        register(client)
        assert runtime.pool.history.maxlen == HISTORY_SPAN / 60
        for _ in range(70):
            clock.advance(60)
            client.portal.call(runtime.pool.sample)  # type: ignore[union-attr]

        history = overview(client)["history"]

    assert len(history) == 60
    assert history[-1]["online"] == 1
    assert history[0]["at"] < history[-1]["at"]
    assert history[-1]["requests"] == 0
    assert history[-1]["mean_latency_ms"] is None


def test_overview_needs_admin(client: TestClient) -> None:
    response = client.get("/api/admin/overview")

    assert response.status_code == 401


@pytest.fixture
def live(tmp_path: Path, catalog_file: Path) -> Iterator[LiveCoordinator]:
    coordinator = LiveCoordinator(
        tmp_path / "data",
        settings_overrides={
            "catalog": catalog_file,
            "heartbeat_interval": 30,
            "history_interval": 0.2,
            "placement_grace": 0,
        },
    )
    coordinator.start()
    workers: list[ProtocolWorker] = []
    coordinator.protocol_workers = workers  # type: ignore[attr-defined]
    try:
        yield coordinator
    finally:
        for worker in workers:
            worker.close()
        coordinator.stop()


def test_relay_traffic_shows_in_the_overview_history_and_metrics(live: LiveCoordinator) -> None:
    admin = {"Authorization": f"Bearer {live.admin_token}"}
    key = httpx.post(
        live.url + "/api/admin/api-keys", json={"name": "tests"}, headers=admin
    ).json()["key"]
    workers = [
        ProtocolWorker(live, name, ["web"]).register(SERVICE_WORKER).connect()
        for name in ("ada", "bea")
    ]
    live.protocol_workers.extend(workers)  # type: ignore[attr-defined]
    for worker in workers:
        routable(live, key, "web", worker)
    client = httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {key}"})
    before = live.admin("GET", "/api/admin/overview")["relay"]["requests_total"]

    answers = [client.get("/api/service/web/hello").status_code for _ in range(4)]
    refused = [client.get("/api/service/vault/x").status_code for _ in range(2)]

    assert answers == [200] * 4
    assert refused == [503] * 2
    data = live.admin("GET", "/api/admin/overview")
    assert data["relay"]["requests_total"] - before == 6
    assert data["relay"]["errors_total"] == 2
    assert data["relay"]["tunnels_open"] == 2
    assert by_name(data["services"])["web"]["ready"] == 2

    def sampled() -> bool:
        history = live.admin("GET", "/api/admin/overview")["history"]
        return sum(point["errors"] for point in history) == 2

    wait_until(sampled, 5, "the history to count the requests")
    history = live.admin("GET", "/api/admin/overview")["history"]
    assert sum(point["requests"] for point in history) == before + 6
    assert any(point["mean_latency_ms"] for point in history)

    live.admin("POST", f"/api/admin/workers/{workers[0].worker_id}/drain")
    assert by_name(live.admin("GET", "/api/admin/overview")["services"])["web"]["ready"] == 1

    # A sensitive service is ready only where the worker is trusted, as the relay routes.
    vault = ProtocolWorker(live, "cyd", ["vault"]).register(SERVICE_WORKER).connect()
    live.protocol_workers.append(vault)  # type: ignore[attr-defined]
    assert by_name(live.admin("GET", "/api/admin/overview")["services"])["vault"]["ready"] == 0
    live.admin("POST", f"/api/admin/workers/{vault.worker_id}/trust")
    routable(live, key, "vault", vault)
    assert by_name(live.admin("GET", "/api/admin/overview")["services"])["vault"]["ready"] == 1
    live.admin("POST", f"/api/admin/workers/{vault.worker_id}/untrust")
    assert by_name(live.admin("GET", "/api/admin/overview")["services"])["vault"]["ready"] == 0

    metrics = httpx.get(live.url + "/metrics", headers=admin).text
    assert sample(metrics, 'rma_workers{tier="2",liveness="online",schedulability="active"}') == 2
    assert sample(metrics, 'rma_workers{tier="2",liveness="online",schedulability="drained"}') == 1
    assert sample(metrics, 'rma_service_replicas{service="web",state="desired"}') == 2
    # No grace here: the drained worker's replica moved at once, to cyd when it joined.
    assert sample(metrics, 'rma_service_replicas{service="web",state="placed"}') == 2
    assert sample(metrics, 'rma_service_replicas{service="web",state="ready"}') == 1
    assert sample(metrics, 'rma_service_replicas{service="vault",state="ready"}') == 0
    assert sample(metrics, 'rma_workers{tier="1",liveness="offline",schedulability="paused"}') == 0
    assert 0 <= sample(metrics, 'rma_worker_heartbeat_lag_seconds{quantile="1"}') < 30
    assert sample(metrics, "rma_heartbeat_interval_seconds") == 30
    assert "# TYPE rma_workers gauge" in metrics


def sample(metrics: str, series: str) -> float:
    match = re.search("^" + re.escape(series) + r" (\S+)$", metrics, re.MULTILINE)
    assert match is not None, f"{series} is not on /metrics"
    return float(match.group(1))


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [([], 0.5, 0.0), ([1.0], 0.99, 1.0), ([1.0, 2.0, 3.0, 4.0], 0.5, 2.0), ([1, 2, 3, 4], 1, 4)],
)
def test_quantile(values: list[float], q: float, expected: float) -> None:
    assert quantile(values, q) == expected


def test_admin_answers_are_gzipped_and_worker_calls_are_not(client: TestClient) -> None:
    for index in range(10):
        register(client, name=f"machine-{index}")

    admin = client.get("/api/admin/workers", headers={**ADMIN, "Accept-Encoding": "gzip"})
    plain = client.get("/api/admin/workers", headers={**ADMIN, "Accept-Encoding": "identity"})
    schema = client.get("/openapi.json", headers={"Accept-Encoding": "gzip"})  # large, not admin

    assert admin.headers["content-encoding"] == "gzip"
    assert admin.json() == plain.json()
    assert "content-encoding" not in plain.headers
    assert len(schema.content) > 1024
    assert "content-encoding" not in schema.headers


def test_no_heartbeat_lag_is_reported_without_online_workers(client: TestClient) -> None:
    metrics = client.get("/metrics", headers=ADMIN).text

    assert "# TYPE rma_worker_heartbeat_lag_seconds gauge" in metrics
    assert "rma_worker_heartbeat_lag_seconds{" not in metrics
    register(client)
    assert (
        'rma_worker_heartbeat_lag_seconds{quantile="1"}'
        in client.get("/metrics", headers=ADMIN).text
    )
