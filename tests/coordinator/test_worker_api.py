"""The worker API: register, heartbeat, unregister, each worker acting only as itself."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import shared.version
from shared import PROTOCOL_VERSION

from .conftest import (
    ADMIN,
    ENROLLMENT_TOKEN,
    HEARTBEAT_INTERVAL,
    SEED_CAPABILITIES,
    TIER2_CAPABILITIES,
    TIER3_CAPABILITIES,
    StartCoordinator,
    admin_view,
    bearer,
    heartbeat,
    new_worker_id,
    register,
    total_workers,
)

REGISTER = "/api/worker/register"
HEARTBEAT = "/api/worker/heartbeat"


def unregister_path(worker_id: str) -> str:
    return f"/api/worker/unregister/{worker_id}"


def assert_refused(response_status: int, body: dict[str, object], status: int, code: str) -> None:
    assert response_status == status, body
    assert body["code"] == code, body
    assert isinstance(body["detail"], str) and body["detail"]


# --- registration -------------------------------------------------------------------------


def test_seed_registration_is_tier1_with_every_field(client: TestClient) -> None:
    response = client.post(REGISTER, json={"capabilities": SEED_CAPABILITIES})
    assert response.status_code == 200, response.text
    data = response.json()
    assert uuid.UUID(data["worker_id"])
    assert isinstance(data["worker_token"], str) and len(data["worker_token"]) >= 32
    assert data["tier"] == 1
    assert data["assigned_containers"] == []
    assert data["heartbeat_interval"] == HEARTBEAT_INTERVAL
    assert 0.9 * HEARTBEAT_INTERVAL <= data["next_heartbeat_in"] <= 1.1 * HEARTBEAT_INTERVAL
    assert data["status"] == "registered"
    assert data["schedulability"] == "active"
    assert data["protocol_version"] == PROTOCOL_VERSION
    assert "GPU" in data["tier_reason"]

    view = admin_view(client, data["worker_id"])
    assert view["status"] == "online"
    assert view["tier"] == 1
    assert view["protocol_version"] == 1  # the seed sends no version: it speaks version 1
    assert view["capabilities"]["ram"] == 64 * 1024**3
    assert view["capabilities"]["cpu_cores"] == 16
    assert view["capabilities"]["gpus"][0]["vendor"] == "nvidia"
    assert view["capabilities"]["gpus"][0]["memory"] == 24564 * 1024**2


def test_tiers_through_the_api(client: TestClient) -> None:
    assert register(client, TIER2_CAPABILITIES).tier == 2
    assert register(client, TIER3_CAPABILITIES).tier == 3


def test_each_worker_gets_its_own_identity_and_token(client: TestClient) -> None:
    first, second = register(client), register(client)
    assert first.worker_id != second.worker_id
    assert first.token != second.token


def test_token_is_stored_only_as_a_hash(client: TestClient, data_dir: Path) -> None:
    worker = register(client)
    heartbeat(client, worker)
    stored = b"".join(path.read_bytes() for path in data_dir.glob("registry.db*"))
    assert worker.token.encode() not in stored
    assert hashlib.sha256(worker.token.encode()).hexdigest().encode() in stored


def test_reregister_with_id_and_token_keeps_both(client: TestClient) -> None:
    worker = register(client, name="box")
    again = register(client, TIER2_CAPABILITIES, worker_id=worker.worker_id, headers=worker.headers)
    assert again.worker_id == worker.worker_id
    assert again.token == worker.token
    assert again.tier == 2  # the new capabilities count
    assert total_workers(client) == 1
    heartbeat(client, again)


def test_reregister_accepts_upper_case_id(client: TestClient) -> None:
    worker = register(client)
    again = register(client, worker_id=worker.worker_id.upper(), headers=worker.headers)
    assert again.worker_id == worker.worker_id


def test_reregister_known_id_without_token_is_409(client: TestClient) -> None:
    worker = register(client)
    body = {"capabilities": SEED_CAPABILITIES, "worker_id": worker.worker_id}
    response = client.post(REGISTER, json=body)
    assert_refused(response.status_code, response.json(), 409, "worker_id_taken")
    assert worker.worker_id in response.json()["detail"]
    heartbeat(client, worker)  # the real owner is unaffected


def test_reregister_known_id_with_wrong_token_is_409(client: TestClient) -> None:
    worker, other = register(client), register(client)
    body = {"capabilities": SEED_CAPABILITIES, "worker_id": worker.worker_id}
    for headers in (bearer("not-a-real-token"), other.headers):
        response = client.post(REGISTER, json=body, headers=headers)
        assert_refused(response.status_code, response.json(), 409, "worker_id_taken")
    assert total_workers(client) == 2
    heartbeat(client, worker)


def test_reregister_unknown_id_keeps_it_with_a_new_token(client: TestClient) -> None:
    lost_id = new_worker_id()
    old_token = "token-the-lost-registry-had-given-0123456789"
    worker = register(client, worker_id=lost_id, headers=bearer(old_token))
    assert worker.worker_id == lost_id
    assert worker.token != old_token
    heartbeat(client, worker)
    response = client.post(HEARTBEAT, json={"worker_id": lost_id}, headers=bearer(old_token))
    assert response.status_code == 401


# --- heartbeats ---------------------------------------------------------------------------


def test_heartbeat_ok(client: TestClient) -> None:
    worker = register(client)
    data = heartbeat(client, worker, current_load=0.25)
    assert data["status"] == "ok"
    assert data["worker_id"] == worker.worker_id
    assert data["tier"] == 1
    assert data["assigned_containers"] == []
    assert data["heartbeat_interval"] == HEARTBEAT_INTERVAL
    assert data["schedulability"] == "active"
    assert data["protocol_version"] == PROTOCOL_VERSION
    assert data["server_time"]
    assert admin_view(client, worker.worker_id)["current_load"] == 0.25


def test_next_heartbeat_has_jitter(client: TestClient) -> None:
    worker = register(client)
    delays = {heartbeat(client, worker)["next_heartbeat_in"] for _ in range(20)}
    assert len(delays) > 1
    assert all(0.9 * HEARTBEAT_INTERVAL <= delay <= 1.1 * HEARTBEAT_INTERVAL for delay in delays)


def test_heartbeat_load_alias_and_seed_status(client: TestClient) -> None:
    worker = register(client)
    heartbeat(client, worker, load=0.5, status="online")
    view = admin_view(client, worker.worker_id)
    assert view["current_load"] == 0.5
    assert view["reported_status"] == "online"


def test_heartbeat_without_token_is_401(client: TestClient) -> None:
    worker = register(client)
    response = client.post(HEARTBEAT, json={"worker_id": worker.worker_id})
    assert_refused(response.status_code, response.json(), 401, "missing_token")
    assert response.headers["WWW-Authenticate"] == "Bearer"
    response = client.post(
        HEARTBEAT,
        json={"worker_id": worker.worker_id},
        headers={"Authorization": f"Basic {worker.token}"},
    )
    assert response.status_code == 401


def test_heartbeat_with_wrong_token_is_401(client: TestClient) -> None:
    worker = register(client)
    response = client.post(
        HEARTBEAT, json={"worker_id": worker.worker_id}, headers=bearer("wrong-token")
    )
    assert_refused(response.status_code, response.json(), 401, "bad_token")
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_heartbeat_with_another_workers_token_is_403(client: TestClient) -> None:
    victim, intruder = register(client), register(client)
    response = client.post(
        HEARTBEAT,
        json={"worker_id": victim.worker_id, "current_load": 0.9},
        headers=intruder.headers,
    )
    assert_refused(response.status_code, response.json(), 403, "not_this_worker")
    assert admin_view(client, victim.worker_id)["current_load"] == 0.0


def test_heartbeat_for_unknown_worker_is_404(client: TestClient) -> None:
    worker = register(client)
    response = client.post(HEARTBEAT, json={"worker_id": new_worker_id()}, headers=worker.headers)
    assert_refused(response.status_code, response.json(), 404, "unknown_worker")
    assert "register again" in response.json()["detail"]


def test_admin_token_is_not_a_worker_token(client: TestClient) -> None:
    worker = register(client)
    response = client.post(HEARTBEAT, json={"worker_id": worker.worker_id}, headers=ADMIN)
    assert response.status_code == 401


# --- unregistration -----------------------------------------------------------------------


def test_unregister_self(client: TestClient) -> None:
    worker = register(client)
    response = client.delete(unregister_path(worker.worker_id), headers=worker.headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "unregistered", "worker_id": worker.worker_id}
    assert total_workers(client) == 0
    again = client.post(HEARTBEAT, json={"worker_id": worker.worker_id}, headers=worker.headers)
    assert again.status_code == 404


def test_unregister_other_worker_is_403(client: TestClient) -> None:
    victim, intruder = register(client), register(client)
    response = client.delete(unregister_path(victim.worker_id), headers=intruder.headers)
    assert_refused(response.status_code, response.json(), 403, "not_this_worker")
    assert total_workers(client) == 2


def test_unregister_with_bad_or_no_token_is_401(client: TestClient) -> None:
    worker = register(client)
    response = client.delete(unregister_path(worker.worker_id))
    assert_refused(response.status_code, response.json(), 401, "missing_token")
    response = client.delete(unregister_path(worker.worker_id), headers=bearer("nope"))
    assert_refused(response.status_code, response.json(), 401, "bad_token")
    assert total_workers(client) == 1


def test_unregister_unknown_is_404(client: TestClient) -> None:
    worker = register(client)
    response = client.delete(unregister_path(new_worker_id()), headers=worker.headers)
    assert_refused(response.status_code, response.json(), 404, "unknown_worker")


# --- enrollment ---------------------------------------------------------------------------


def test_enrollment_token_required_when_set(start: StartCoordinator) -> None:
    with start(enrollment_token=ENROLLMENT_TOKEN) as client:
        body = {"capabilities": SEED_CAPABILITIES}
        response = client.post(REGISTER, json=body)
        assert_refused(response.status_code, response.json(), 401, "enrollment_required")
        assert "enrollment" in response.json()["detail"].lower()
        wrong = {**body, "enrollment_token": "not-the-pool-enrollment-token"}
        response = client.post(REGISTER, json=wrong)
        assert_refused(response.status_code, response.json(), 401, "bad_enrollment")
        assert total_workers(client) == 0

        worker = register(client, enrollment_token=ENROLLMENT_TOKEN)
        assert worker.tier == 1
        # Re-registering as itself needs only its own token.
        again = register(client, worker_id=worker.worker_id, headers=worker.headers)
        assert again.worker_id == worker.worker_id
        # An id the registry does not know is a new enrollment.
        response = client.post(REGISTER, json={**body, "worker_id": new_worker_id()})
        assert response.status_code == 401
        assert total_workers(client) == 1


# --- protocol versions --------------------------------------------------------------------


def test_agent_protocol_version_zero_is_too_old(client: TestClient) -> None:
    response = client.post(
        REGISTER, json={"capabilities": SEED_CAPABILITIES, "protocol_version": 0}
    )
    assert_refused(response.status_code, response.json(), 426, "agent_too_old")
    assert "update" in response.json()["detail"].lower()
    assert total_workers(client) == 0


def test_agent_too_old_after_the_minimum_rises(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # check_agent_version and AgentTooOldError read the module global at call time.
    monkeypatch.setattr(shared.version, "MIN_SUPPORTED_AGENT_VERSION", PROTOCOL_VERSION + 1)
    for version in (None, 1, PROTOCOL_VERSION):
        body = {"capabilities": SEED_CAPABILITIES, "protocol_version": version}
        response = client.post(REGISTER, json=body)
        assert_refused(response.status_code, response.json(), 426, "agent_too_old")
        detail = response.json()["detail"]
        assert "update" in detail.lower()
        assert str(PROTOCOL_VERSION + 1) in detail
    assert total_workers(client) == 0
    body = {"capabilities": SEED_CAPABILITIES, "protocol_version": PROTOCOL_VERSION + 1}
    assert client.post(REGISTER, json=body).status_code == 200


def test_newer_agent_is_accepted(client: TestClient) -> None:
    worker = register(client, protocol_version=PROTOCOL_VERSION + 5)
    assert worker.response["protocol_version"] == PROTOCOL_VERSION
    assert admin_view(client, worker.worker_id)["protocol_version"] == PROTOCOL_VERSION + 5


# --- schedulability -----------------------------------------------------------------------


def test_paused_heartbeat_makes_worker_paused(client: TestClient) -> None:
    worker = register(client)
    assert heartbeat(client, worker, paused=True)["schedulability"] == "paused"
    view = admin_view(client, worker.worker_id)
    assert view["schedulability"] == "paused"
    assert view["status"] == "online"
    assert heartbeat(client, worker, paused=False)["schedulability"] == "active"


def test_admin_drain_reaches_the_worker(client: TestClient) -> None:
    worker = register(client)
    response = client.post(f"/api/admin/workers/{worker.worker_id}/drain", headers=ADMIN)
    assert response.status_code == 200, response.text
    assert response.json()["schedulability"] == "drained"

    assert heartbeat(client, worker)["schedulability"] == "drained"
    # A drain outranks the owner's pause and survives the owner's resume.
    assert heartbeat(client, worker, paused=True)["schedulability"] == "drained"
    assert heartbeat(client, worker, paused=False)["schedulability"] == "drained"
    view = admin_view(client, worker.worker_id)
    assert view["schedulability"] == "drained"
    assert view["status"] == "online"
    # Re-registering does not escape a drain.
    again = register(client, worker_id=worker.worker_id, headers=worker.headers)
    assert again.response["schedulability"] == "drained"

    response = client.post(f"/api/admin/workers/{worker.worker_id}/undrain", headers=ADMIN)
    assert response.status_code == 200
    assert heartbeat(client, worker)["schedulability"] == "active"


def test_drain_needs_admin_token(client: TestClient) -> None:
    worker = register(client)
    response = client.post(f"/api/admin/workers/{worker.worker_id}/drain", headers=worker.headers)
    assert response.status_code == 401
    assert heartbeat(client, worker)["schedulability"] == "active"
