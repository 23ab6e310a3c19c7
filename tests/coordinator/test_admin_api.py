"""The admin API: its token, listing, stats, health, and the OpenAPI schema."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from coordinator.security import ADMIN_TOKEN_FILE
from coordinator.settings import CoordinatorSettings

from .conftest import (
    ADMIN,
    HEARTBEAT_INTERVAL,
    SEED_CAPABILITIES,
    TIER2_CAPABILITIES,
    TIER3_CAPABILITIES,
    FakeClock,
    StartCoordinator,
    Worker,
    bearer,
    heartbeat,
    register,
    runtime_of,
)

ADMIN_PATHS = [
    "/api/admin/workers",
    "/api/admin/stats",
    "/api/admin/health",
    "/api/admin/enrollment-tokens",
]


@pytest.mark.parametrize("path", ADMIN_PATHS)
def test_admin_endpoints_need_the_admin_token(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["code"] == "missing_token"
    assert "admin" in response.json()["detail"].lower()

    for headers in (
        bearer("not-the-admin-token-0123456789"),
        {"Authorization": "Basic " + ADMIN["Authorization"].split()[1]},
        {"Authorization": "Bearer"},
    ):
        response = client.get(path, headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["WWW-Authenticate"] == "Bearer"

    assert client.get(path, headers=ADMIN).status_code == 200


def test_admin_actions_need_the_admin_token(client: TestClient) -> None:
    worker = register(client)
    for path in (f"/api/admin/workers/{worker.worker_id}/drain", "/api/admin/workers/x/drain"):
        assert client.post(path).status_code == 401
    assert client.get(f"/api/admin/workers/{worker.worker_id}").status_code == 401


def test_worker_token_is_not_an_admin_token(client: TestClient) -> None:
    worker = register(client)
    for path in ADMIN_PATHS:
        response = client.get(path, headers=worker.headers)
        assert response.status_code == 401
        assert response.json()["code"] == "bad_token"


def test_generated_admin_token(start: StartCoordinator, data_dir: Path) -> None:
    with start(admin_token=None) as client:
        token_file = data_dir / ADMIN_TOKEN_FILE
        assert token_file.exists()
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = token_file.read_text().strip()
        assert len(token) >= 32
        assert client.get("/api/admin/stats", headers=bearer(token)).status_code == 200
        assert client.get("/api/admin/stats", headers=ADMIN).status_code == 401
        # Only the hash is kept in memory.
        assert runtime_of(client).admin_token_hash != token

    with start(admin_token=None) as client:
        assert token_file.read_text().strip() == token
        assert client.get("/api/admin/stats", headers=bearer(token)).status_code == 200


def test_configured_admin_token_wins_over_the_file(start: StartCoordinator, data_dir: Path) -> None:
    with start(admin_token=None):
        generated = (data_dir / ADMIN_TOKEN_FILE).read_text().strip()
    with start() as client:
        assert client.get("/api/admin/stats", headers=ADMIN).status_code == 200
        assert client.get("/api/admin/stats", headers=bearer(generated)).status_code == 401


def test_empty_admin_token_file_is_replaced(start: StartCoordinator, data_dir: Path) -> None:
    data_dir.mkdir(parents=True)
    (data_dir / ADMIN_TOKEN_FILE).write_text("\n")
    with start(admin_token=None) as client:
        token = (data_dir / ADMIN_TOKEN_FILE).read_text().strip()
        assert token
        assert client.get("/api/admin/stats", headers=bearer(token)).status_code == 200


@pytest.mark.parametrize(
    "weak", ["changeme", "CHANGEME", "short", "admin", "password", "abcdefghijklmno", ""]
)
def test_weak_admin_token_is_refused(tmp_path: Path, weak: str) -> None:
    with pytest.raises(ValidationError) as info:
        CoordinatorSettings(data_dir=tmp_path, admin_token=weak)
    assert "too weak" in str(info.value)


def test_weak_tokens_from_environment_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RMA_ADMIN_TOKEN", "changeme")
    with pytest.raises(ValidationError):
        CoordinatorSettings(data_dir=tmp_path)
    monkeypatch.setenv("RMA_ADMIN_TOKEN", "a-long-enough-random-admin-token")
    monkeypatch.setenv("RMA_ENROLLMENT_TOKEN", "secret")
    with pytest.raises(ValidationError):
        CoordinatorSettings(data_dir=tmp_path)
    monkeypatch.setenv("RMA_ENROLLMENT_TOKEN", "a-long-enough-enrollment-token")
    settings = CoordinatorSettings(data_dir=tmp_path)
    assert settings.admin_token is not None
    assert settings.admin_token.get_secret_value() == "a-long-enough-random-admin-token"
    assert "a-long-enough" not in repr(settings)


# --- listing and stats --------------------------------------------------------------------


def populate(client: TestClient, clock: FakeClock) -> dict[str, list[Worker]]:
    """Two tier 1, one tier 2 and two tier 3 workers; one tier 1 and one tier 3 offline."""
    gone1 = register(client, SEED_CAPABILITIES, name="gone-gpu")
    gone3 = register(client, TIER3_CAPABILITIES, name="gone-data")
    clock.advance(1)
    live1 = register(client, SEED_CAPABILITIES, name="gpu")
    live2 = register(client, TIER2_CAPABILITIES, name="service")
    live3 = register(client, TIER3_CAPABILITIES, name="data")
    clock.advance(3 * HEARTBEAT_INTERVAL - 0.5)
    for worker in (live1, live2, live3):
        heartbeat(client, worker)
    clock.advance(1)
    swept = runtime_of(client).liveness.sweep()
    assert sorted(swept.went_offline) == sorted([gone1.worker_id, gone3.worker_id])
    return {
        "online": [live1, live2, live3],
        "offline": [gone1, gone3],
        "tier1": [gone1, live1],
        "tier3": [gone3, live3],
    }


def ids_of(workers: list[Worker]) -> list[str]:
    return sorted(worker.worker_id for worker in workers)


def ids(client: TestClient, query: str = "") -> tuple[list[str], int]:
    response = client.get(f"/api/admin/workers{query}", headers=ADMIN)
    assert response.status_code == 200, response.text
    data = response.json()
    assert set(data) == {"workers", "total"}
    return [worker["worker_id"] for worker in data["workers"]], data["total"]


def test_list_workers_shape(client: TestClient) -> None:
    assert ids(client) == ([], 0)
    worker = register(client, name="host-1", agent_version="rma-worker 0.1")
    data = client.get("/api/admin/workers", headers=ADMIN).json()
    assert data["total"] == 1
    (view,) = data["workers"]
    assert view["worker_id"] == worker.worker_id
    assert view["name"] == "host-1"
    assert view["agent_version"] == "rma-worker 0.1"
    assert view["status"] == "online"
    assert view["schedulability"] == "active"
    assert "worker_token" not in view
    assert worker.token not in str(data)
    assert "token_hash" not in view


def test_list_filters(client: TestClient, clock: FakeClock) -> None:
    groups = populate(client, clock)
    listed, total = ids(client)
    assert total == 5 and len(listed) == 5
    listed, total = ids(client, "?status=online")
    assert sorted(listed) == ids_of(groups["online"]) and total == 3
    listed, total = ids(client, "?status=offline")
    assert sorted(listed) == ids_of(groups["offline"]) and total == 2
    listed, total = ids(client, "?tier=1")
    assert sorted(listed) == ids_of(groups["tier1"]) and total == 2
    listed, total = ids(client, "?tier=3&status=offline")
    assert listed == [groups["offline"][1].worker_id] and total == 1
    listed, total = ids(client, "?tier=2&status=offline")
    assert listed == [] and total == 0


def test_list_limit_and_offset(client: TestClient, clock: FakeClock) -> None:
    registered = []
    for _ in range(7):
        registered.append(register(client, TIER3_CAPABILITIES).worker_id)
        clock.advance(1)
    everyone, total = ids(client)
    assert total == 7
    assert everyone == list(reversed(registered))  # newest registration first
    pages = [ids(client, f"?limit=3&offset={offset}") for offset in (0, 3, 6, 9)]
    assert [page for page, _ in pages] == [everyone[0:3], everyone[3:6], everyone[6:], []]
    assert all(total == 7 for _, total in pages)
    listed, total = ids(client, "?tier=3&limit=2&offset=1")
    assert listed == everyone[1:3] and total == 7


def test_stats(client: TestClient, clock: FakeClock) -> None:
    empty = client.get("/api/admin/stats", headers=ADMIN).json()
    assert empty["total_workers"] == 0
    assert empty["by_tier"] == {"1": 0, "2": 0, "3": 0}

    groups = populate(client, clock)
    heartbeat(client, groups["online"][1], paused=True)  # the tier 2 worker
    stats = client.get("/api/admin/stats", headers=ADMIN).json()
    assert stats["total_workers"] == 5
    assert stats["online_workers"] == 3
    assert stats["offline_workers"] == 2
    assert stats["by_tier"] == {"1": 2, "2": 1, "3": 2}
    assert stats["tiers"]["1"] == {"total": 2, "online": 1}
    assert stats["tiers"]["2"] == {"total": 1, "online": 1}
    assert stats["tiers"]["3"] == {"total": 2, "online": 1}
    assert stats["active_workers"] == 2  # the paused one is online but not active


def test_stats_active_excludes_paused_and_drained(client: TestClient) -> None:
    workers = [register(client, TIER2_CAPABILITIES) for _ in range(4)]
    heartbeat(client, workers[0], paused=True)
    drained = client.post(f"/api/admin/workers/{workers[1].worker_id}/drain", headers=ADMIN)
    assert drained.status_code == 200
    stats = client.get("/api/admin/stats", headers=ADMIN).json()
    assert stats["online_workers"] == 4
    assert stats["active_workers"] == 2
    assert stats["tiers"]["2"] == {"total": 4, "online": 4}


def test_admin_get_and_drain_unknown_worker_is_404(client: TestClient) -> None:
    unknown = "00000000-0000-4000-8000-000000000000"
    for method, path in (
        ("GET", f"/api/admin/workers/{unknown}"),
        ("POST", f"/api/admin/workers/{unknown}/drain"),
        ("POST", f"/api/admin/workers/{unknown}/undrain"),
        ("DELETE", f"/api/admin/workers/{unknown}"),
    ):
        response = client.request(method, path, headers=ADMIN)
        assert response.status_code == 404
        assert response.json()["code"] == "unknown_worker"


def test_admin_health(client: TestClient, clock: FakeClock) -> None:
    register(client)
    clock.advance(12.5)
    health = client.get("/api/admin/health", headers=ADMIN).json()
    assert health["status"] == "healthy"
    assert health["database"] == "ok"
    assert health["online_workers"] == 1
    assert health["heartbeat_interval"] == HEARTBEAT_INTERVAL
    assert health["uptime_seconds"] == pytest.approx(12.5)
    assert health["last_liveness_sweep"] is None
    runtime_of(client).liveness.sweep()
    health = client.get("/api/admin/health", headers=ADMIN).json()
    assert health["last_liveness_sweep"] is not None


def test_public_health_needs_no_token(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "healthy"


def test_openapi_lists_the_seed_paths(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    assert "post" in paths["/api/worker/register"]
    assert "post" in paths["/api/worker/heartbeat"]
    assert "delete" in paths["/api/worker/unregister/{worker_id}"]
    for path in ("/api/admin/workers", "/api/admin/stats", "/api/admin/health", "/health"):
        assert "get" in paths[path], path
    assert "delete" in paths["/api/admin/workers/{worker_id}"]
    assert {"get", "post"} <= set(paths["/api/admin/enrollment-tokens"])
    assert "delete" in paths["/api/admin/enrollment-tokens/{token_id}"]
    components = schema["components"]["schemas"]
    for model in ("RegisterRequest", "RegisterResponse", "HeartbeatRequest", "ErrorResponse"):
        assert model in components


def test_openapi_references_all_resolve(client: TestClient) -> None:
    """The heartbeat route is documented by hand; every reference must point somewhere."""
    schema = client.get("/openapi.json").json()
    components = schema["components"]["schemas"]

    def refs(node: object) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
            return found + [ref for value in node.values() for ref in refs(value)]
        if isinstance(node, list):
            return [ref for value in node for ref in refs(value)]
        return []

    all_refs = refs(schema)
    assert all_refs
    for ref in all_refs:
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.removeprefix("#/components/schemas/") in components, ref
    heartbeat = schema["paths"]["/api/worker/heartbeat"]["post"]
    body = heartbeat["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/HeartbeatRequest"}
    ok = heartbeat["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/HeartbeatResponse"}
    assert "current_load" in components["HeartbeatRequest"]["properties"]
