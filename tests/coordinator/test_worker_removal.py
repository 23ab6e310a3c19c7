"""An admin removes a worker: out of the registry, its services placed elsewhere, its tunnel
closed; a machine still running joins again only if it may enroll."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select, update
from starlette.testclient import WebSocketDenialResponse

from coordinator.db.schema import ASSIGNMENTS
from coordinator.db.schema import WORKERS as WORKERS_TABLE
from coordinator.relay.transports import _confirm_after_open, find_worker
from coordinator.security import hash_token
from shared.tunnel import TUNNEL_PATH, FrameType, decode_frame

from .conftest import (
    ADMIN,
    SEED_CAPABILITIES,
    StartCoordinator,
    heartbeat,
    new_worker_id,
    register,
    runtime_of,
    total_workers,
)
from .test_api_keys import assert_admin_only
from .test_bad_input import assert_clean_refusal
from .test_placement_api import CATALOG, SERVICE_WORKER, services

WORKERS = "/api/admin/workers"


@pytest.fixture
def pool(start: StartCoordinator, tmp_path: Path) -> Iterator[TestClient]:
    """A coordinator with services to place (the placement tests' catalogue)."""
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(CATALOG, encoding="utf-8")
    with start(catalog=catalog) as client:
        yield client


def remove(client: TestClient, worker_id: str) -> Any:
    return client.delete(f"{WORKERS}/{worker_id}", headers=ADMIN)


def assignments_of(client: TestClient, worker_id: str) -> list[str]:
    query = select(ASSIGNMENTS.c.service).where(ASSIGNMENTS.c.worker_id == worker_id)
    with runtime_of(client).engine.connect() as connection:
        return list(connection.scalars(query))


def test_a_removed_worker_is_gone_and_says_what_happens_next(client: TestClient) -> None:
    kept = register(client, name="kept")
    gone = register(client, name="alice-pc")

    response = remove(client, gone.worker_id)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["worker_id"], answer["name"]) == (gone.worker_id, "alice-pc")
    assert "join again" in answer["message"] and "revoke" in answer["message"]

    listed = client.get(WORKERS, headers=ADMIN).json()
    assert [w["worker_id"] for w in listed["workers"]] == [kept.worker_id]
    assert total_workers(client) == 1
    assert assert_clean_refusal(client.get(f"{WORKERS}/{gone.worker_id}", headers=ADMIN), 404)
    # Removing it again: it is not there any more.
    assert assert_clean_refusal(remove(client, gone.worker_id), 404)["code"] == "unknown_worker"


def test_its_services_move_to_another_worker_at_once(pool: TestClient) -> None:
    alice = register(pool, SERVICE_WORKER)
    bob = register(pool, SERVICE_WORKER)
    assert sorted(assignments_of(pool, alice.worker_id)) == ["ocr", "rag"]

    assert remove(pool, alice.worker_id).status_code == 200
    assert assignments_of(pool, alice.worker_id) == []
    assert services(heartbeat(pool, bob)) == ["rag", "ocr"]


def test_its_heartbeats_are_refused_as_an_unknown_workers_are(client: TestClient) -> None:
    gone = register(client)
    heartbeat(client, gone)
    remove(client, gone.worker_id)

    def refusal(worker_id: str) -> dict[str, Any]:
        body = {"worker_id": worker_id}
        response = client.post("/api/worker/heartbeat", json=body, headers=gone.headers)
        return assert_clean_refusal(response, 404)

    unknown = new_worker_id()
    removed, never_known = refusal(gone.worker_id), refusal(unknown)
    assert removed["code"] == never_known["code"] == "unknown_worker"
    assert removed["detail"] == never_known["detail"].replace(unknown, gone.worker_id)
    assert "register again" in removed["detail"]


def test_a_machine_still_running_joins_again_while_it_may_enroll(client: TestClient) -> None:
    created = client.post(
        "/api/admin/enrollment-tokens", json={"name": "volunteers"}, headers=ADMIN
    ).json()
    token = created["token"]
    first = register(client, enrollment_token=token)
    remove(client, first.worker_id)

    # Its agent registers again under its id, as a new machine: a new worker token.
    back = register(
        client, worker_id=first.worker_id, headers=first.headers, enrollment_token=token
    )
    assert back.worker_id == first.worker_id and back.token != first.token

    remove(client, back.worker_id)
    client.delete(f"/api/admin/enrollment-tokens/{created['id']}", headers=ADMIN)
    response = client.post(
        "/api/worker/register",
        json={
            "capabilities": SEED_CAPABILITIES,
            "worker_id": back.worker_id,
            "enrollment_token": token,
        },
        headers=back.headers,
    )
    assert assert_clean_refusal(response, 401)["code"] == "bad_enrollment"
    assert total_workers(client) == 0


def test_removal_closes_the_workers_tunnel(client: TestClient) -> None:
    worker = register(client)
    hub = runtime_of(client).relay.hub
    with client.websocket_connect(TUNNEL_PATH, headers=worker.headers) as socket:
        kind, _, _ = decode_frame(socket.receive_bytes())
        assert kind is FrameType.HELLO
        tunnel = hub.tunnel(worker.worker_id)
        assert tunnel is not None

        assert remove(client, worker.worker_id).status_code == 200
        assert hub.tunnel(worker.worker_id) is None
        assert (tunnel.closed, tunnel.close_reason) == (True, "an admin removed the worker")
        assert socket.receive()["type"] == "websocket.close"

    # Its token opens no new tunnel.
    with (
        pytest.raises(WebSocketDenialResponse),
        client.websocket_connect(TUNNEL_PATH, headers=worker.headers),
    ):
        pass


def test_removal_is_logged(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    worker = register(client, name="alice-pc")
    with caplog.at_level(logging.INFO, logger="coordinator.admin"):
        remove(client, worker.worker_id)
    assert f"Worker {worker.worker_id} (alice-pc) removed by an admin" in caplog.text


def test_removal_needs_the_admin_token(client: TestClient) -> None:
    worker = register(client)
    other = register(client)
    calls = [("DELETE", f"{WORKERS}/{worker.worker_id}", None)]
    assert_admin_only(client, calls, worker.token, other.token)
    assert total_workers(client) == 2


@pytest.mark.parametrize("worker_id", ["x", "%00", "'; DROP TABLE workers; --", "0" * 100])
def test_unknown_or_malformed_ids_are_refused_cleanly(client: TestClient, worker_id: str) -> None:
    register(client)
    assert_clean_refusal(remove(client, worker_id))
    assert total_workers(client) == 1


def test_an_unknown_worker_is_a_404(client: TestClient) -> None:
    unknown = new_worker_id()
    body = assert_clean_refusal(remove(client, unknown), 404)
    assert body["code"] == "unknown_worker" and unknown in body["detail"]


def test_openapi_documents_the_route(client: TestClient) -> None:
    route = client.get("/openapi.json").json()["paths"][WORKERS + "/{worker_id}"]["delete"]
    assert "enroll" in route["description"]
    assert route["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/WorkerRemoved"
    }


def test_a_removal_while_the_tunnel_opens_still_closes_it(client: TestClient) -> None:
    """The tunnel authenticated before the removal and reached the hub after it."""
    worker = register(client)
    runtime = runtime_of(client)
    hub = runtime.relay.hub
    stale = find_worker(runtime.engine, hash_token(worker.token))
    assert stale is not None
    with client.websocket_connect(TUNNEL_PATH, headers=worker.headers) as socket:
        decode_frame(socket.receive_bytes())
        tunnel = hub.tunnel(worker.worker_id)
        assert tunnel is not None
        with runtime.engine.begin() as connection:  # removed behind the hub's back
            connection.execute(delete(WORKERS_TABLE).where(WORKERS_TABLE.c.id == worker.worker_id))

        client.portal.call(_confirm_after_open, runtime.engine, hub, stale)  # type: ignore[union-attr]

        assert tunnel.closed
        assert tunnel.close_reason == "the worker is no longer registered"
        assert socket.receive()["type"] == "websocket.close"


def test_a_drain_while_the_tunnel_opens_still_applies(client: TestClient) -> None:
    worker = register(client)
    runtime = runtime_of(client)
    stale = find_worker(runtime.engine, hash_token(worker.token))
    assert stale is not None
    with client.websocket_connect(TUNNEL_PATH, headers=worker.headers) as socket:
        decode_frame(socket.receive_bytes())
        with runtime.engine.begin() as connection:  # drained behind the hub's back
            connection.execute(
                update(WORKERS_TABLE)
                .where(WORKERS_TABLE.c.id == worker.worker_id)
                .values(drained=True)
            )

        client.portal.call(_confirm_after_open, runtime.engine, runtime.relay.hub, stale)  # type: ignore[union-attr]

        assert runtime.relay.hub.ready_counts() == {}
        assert runtime.relay.hub._flags[worker.worker_id].drained
