"""Liveness: offline after three missed intervals, removed after retention, fair restarts."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

import coordinator.app

from .conftest import (
    ADMIN,
    HEARTBEAT_INTERVAL,
    FakeClock,
    StartCoordinator,
    admin_view,
    heartbeat,
    register,
    runtime_of,
    total_workers,
)

OFFLINE_AFTER = 3 * HEARTBEAT_INTERVAL
DAY = 86400.0


def status_of(client: TestClient, worker_id: str) -> str:
    status: str = admin_view(client, worker_id)["status"]
    return status


def sweep(client: TestClient) -> tuple[list[str], list[str]]:
    result = runtime_of(client).liveness.sweep()
    return result.went_offline, result.removed


def test_offline_after_three_missed_intervals_not_before(
    client: TestClient, clock: FakeClock
) -> None:
    worker = register(client)
    clock.advance(OFFLINE_AFTER - 1)
    assert sweep(client) == ([], [])
    assert status_of(client, worker.worker_id) == "online"
    clock.advance(1)  # exactly three intervals: not yet
    assert sweep(client) == ([], [])
    assert status_of(client, worker.worker_id) == "online"
    clock.advance(0.5)
    assert sweep(client) == ([worker.worker_id], [])
    assert status_of(client, worker.worker_id) == "offline"
    assert sweep(client) == ([], [])  # reported once


def test_heartbeats_keep_a_worker_online(client: TestClient, clock: FakeClock) -> None:
    worker = register(client)
    for _ in range(10):
        clock.advance(HEARTBEAT_INTERVAL * 2.5)
        heartbeat(client, worker)
        assert sweep(client) == ([], [])
    assert status_of(client, worker.worker_id) == "online"


def test_only_silent_workers_go_offline(client: TestClient, clock: FakeClock) -> None:
    silent, chatty = register(client), register(client)
    clock.advance(OFFLINE_AFTER - 5)
    heartbeat(client, chatty)
    clock.advance(10)
    assert sweep(client) == ([silent.worker_id], [])
    assert status_of(client, chatty.worker_id) == "online"


def test_heartbeat_brings_worker_back_online(client: TestClient, clock: FakeClock) -> None:
    worker = register(client)
    clock.advance(OFFLINE_AFTER + 1)
    sweep(client)
    assert status_of(client, worker.worker_id) == "offline"
    stats = client.get("/api/admin/stats", headers=ADMIN).json()
    assert stats["online_workers"] == 0 and stats["offline_workers"] == 1

    data = heartbeat(client, worker)
    assert data["schedulability"] == "active"
    assert status_of(client, worker.worker_id) == "online"
    assert sweep(client) == ([], [])


def test_reregistration_brings_worker_back_online(client: TestClient, clock: FakeClock) -> None:
    worker = register(client)
    clock.advance(OFFLINE_AFTER + 1)
    sweep(client)
    register(client, worker_id=worker.worker_id, headers=worker.headers)
    assert status_of(client, worker.worker_id) == "online"


def test_removed_after_retention(client: TestClient, clock: FakeClock) -> None:
    worker, keeper = register(client), register(client)
    clock.advance(OFFLINE_AFTER + 1)
    assert sorted(sweep(client)[0]) == sorted([worker.worker_id, keeper.worker_id])
    heartbeat(client, keeper)  # its retention counts from this later heartbeat
    retention = 14 * DAY
    clock.advance(retention - OFFLINE_AFTER - 2)
    assert sweep(client) == ([keeper.worker_id], [])
    assert status_of(client, worker.worker_id) == "offline"
    clock.advance(2)
    assert sweep(client) == ([], [worker.worker_id])
    assert total_workers(client) == 1
    response = client.get(f"/api/admin/workers/{worker.worker_id}", headers=ADMIN)
    assert response.status_code == 404
    # The removed worker learns it must register again, and may keep its id.
    response = client.post(
        "/api/worker/heartbeat", json={"worker_id": worker.worker_id}, headers=worker.headers
    )
    assert response.status_code == 404
    again = register(client, worker_id=worker.worker_id, headers=worker.headers)
    assert again.worker_id == worker.worker_id
    assert status_of(client, keeper.worker_id) == "offline"


def test_retention_is_configurable(start: StartCoordinator, clock: FakeClock) -> None:
    with start(retention_days=1) as client:
        worker = register(client)
        clock.advance(DAY - 1)
        assert sweep(client) == ([worker.worker_id], [])
        clock.advance(2)
        assert sweep(client) == ([], [worker.worker_id])


def test_missed_heartbeats_is_configurable(start: StartCoordinator, clock: FakeClock) -> None:
    with start(heartbeat_interval=10, missed_heartbeats_offline=5) as client:
        worker = register(client)
        assert worker.response["heartbeat_interval"] == 10
        clock.advance(49)
        assert sweep(client) == ([], [])
        clock.advance(2)
        assert sweep(client) == ([worker.worker_id], [])


def test_restart_does_not_count_downtime(start: StartCoordinator, clock: FakeClock) -> None:
    with start() as client:
        worker = register(client)
        clock.advance(HEARTBEAT_INTERVAL)
        heartbeat(client, worker)

    clock.advance(5 * 3600)  # the coordinator was down (or scaled to zero) for five hours

    with start() as client:
        assert sweep(client) == ([], [])
        assert status_of(client, worker.worker_id) == "online"
        clock.advance(OFFLINE_AFTER - 1)
        assert sweep(client) == ([], [])
        assert status_of(client, worker.worker_id) == "online"
        clock.advance(2)
        assert sweep(client) == ([worker.worker_id], [])
        assert status_of(client, worker.worker_id) == "offline"


def test_worker_that_calls_after_restart_stays_online(
    start: StartCoordinator, clock: FakeClock
) -> None:
    with start() as client:
        quiet, back = register(client), register(client)
    clock.advance(3600)
    with start() as client:
        clock.advance(HEARTBEAT_INTERVAL)
        heartbeat(client, back)
        clock.advance(OFFLINE_AFTER)
        assert sweep(client) == ([quiet.worker_id], [])
        assert status_of(client, back.worker_id) == "online"


def test_liveness_does_not_change_schedulability(client: TestClient, clock: FakeClock) -> None:
    paused, drained, active = register(client), register(client), register(client)
    heartbeat(client, paused, paused=True)
    assert (
        client.post(f"/api/admin/workers/{drained.worker_id}/drain", headers=ADMIN).status_code
        == 200
    )
    clock.advance(OFFLINE_AFTER + 1)
    assert len(sweep(client)[0]) == 3
    for worker, state in ((paused, "paused"), (drained, "drained"), (active, "active")):
        view = admin_view(client, worker.worker_id)
        assert view["status"] == "offline"
        assert view["schedulability"] == state
    # Coming back online changes liveness only.
    assert heartbeat(client, drained)["schedulability"] == "drained"
    assert admin_view(client, drained.worker_id)["status"] == "online"


def test_background_sweeper_runs(
    start: StartCoordinator, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sweeper the lifespan starts (not a hand-called sweep) marks workers offline."""
    monkeypatch.setattr(coordinator.app, "sweep_period", lambda _settings: 0.01)
    with start() as client:
        worker = register(client)
        clock.advance(OFFLINE_AFTER + 1)
        deadline = time.monotonic() + 10
        # Real time must pass for the background task to run; nothing to fake here.
        while status_of(client, worker.worker_id) == "online" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert status_of(client, worker.worker_id) == "offline"
        assert runtime_of(client).liveness.last_sweep == clock.now


def test_frequent_restarts_still_remove_long_gone_workers(
    start: StartCoordinator, clock: FakeClock
) -> None:
    with start() as client:
        gone = register(client)
        clock.advance(OFFLINE_AFTER + 1)
        assert sweep(client) == ([gone.worker_id], [])
    # The coordinator is redeployed every few days; the worker never comes back.
    for _ in range(5):
        clock.advance(3 * DAY)
        with start() as client:
            removed = sweep(client)[1]
            if removed:
                break
    assert removed == [gone.worker_id], "retention counts from the last heartbeat"
    with start() as client:
        assert total_workers(client) == 0


def test_a_worker_online_at_shutdown_gets_its_grace_before_removal(
    start: StartCoordinator, clock: FakeClock
) -> None:
    with start() as client:
        worker = register(client)
    clock.advance(30 * DAY)  # the coordinator was down for a month
    with start() as client:
        assert sweep(client) == ([], []), "not offline, not removed right after the restart"
        assert status_of(client, worker.worker_id) == "online"
        clock.advance(OFFLINE_AFTER + 1)
        # Once its grace is over it is offline, and gone at once: silent past retention.
        assert sweep(client) == ([worker.worker_id], [worker.worker_id])
