"""Fixtures for the coordinator: an app on a temporary data dir, a fake clock, and helpers.

The app is always used through ``TestClient`` as a context manager so its lifespan runs
(database migrated, heartbeat writer started). The background liveness sweeper is slowed to
once an hour so tests decide when a sweep happens: they call
``client.app.state.runtime.liveness.sweep()`` after moving the fake clock.
"""

from __future__ import annotations

import contextlib
import copy
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import coordinator.app
from coordinator.runtime import CoordinatorRuntime
from coordinator.settings import CoordinatorSettings

ADMIN_TOKEN = "admin-token-for-tests-0123456789abcdef"
ENROLLMENT_TOKEN = "enrollment-token-for-tests-0123456789"
HEARTBEAT_INTERVAL = 30.0
START_TIME = 1_750_000_000.0

GIB = 1024**3
MIB = 1024**2

SEED_CAPABILITIES: dict[str, Any] = {
    "cpu_cores": 16,
    "ram": "64.0GB",
    "storage": "1024.5GB",
    "gpu_memory": "24564MB",
    "gpu_type": "NVIDIA GeForce RTX 4090",
    "gpu_driver": "nvidia",
}
"""What the seed's worker agent sends: a tier 1 machine."""

TIER2_CAPABILITIES: dict[str, Any] = {"cpu_cores": 4, "ram": "8GB", "storage": "100GB"}
TIER3_CAPABILITIES: dict[str, Any] = {"cpu_cores": 1, "ram": "3GB"}


class FakeClock:
    """A clock that moves only when told to; callable like ``time.time``."""

    def __init__(self, start: float = START_TIME) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds`` and return the new time."""
        self.now += seconds
        return self.now


def bearer(token: str) -> dict[str, str]:
    """The ``Authorization`` header for ``token``."""
    return {"Authorization": f"Bearer {token}"}


ADMIN = bearer(ADMIN_TOKEN)


@dataclass
class Worker:
    """A worker registered through the API."""

    worker_id: str
    token: str
    tier: int
    response: dict[str, Any]

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)


def register(
    client: TestClient,
    capabilities: dict[str, Any] | None = None,
    *,
    headers: dict[str, str] | None = None,
    **fields: Any,
) -> Worker:
    """Register a worker (seed capabilities by default) and assert it was accepted."""
    body = {"capabilities": copy.deepcopy(capabilities or SEED_CAPABILITIES), **fields}
    response = client.post("/api/worker/register", json=body, headers=headers or {})
    assert response.status_code == 200, response.text
    data = response.json()
    return Worker(data["worker_id"], data["worker_token"], data["tier"], data)


def heartbeat(client: TestClient, worker: Worker, **fields: Any) -> dict[str, Any]:
    """Send a heartbeat for ``worker`` and assert it was accepted."""
    body = {"worker_id": worker.worker_id, **fields}
    response = client.post("/api/worker/heartbeat", json=body, headers=worker.headers)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def admin_view(client: TestClient, worker_id: str) -> dict[str, Any]:
    """The admin view of one worker."""
    response = client.get(f"/api/admin/workers/{worker_id}", headers=ADMIN)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def total_workers(client: TestClient) -> int:
    """How many workers the registry holds, from ``/api/admin/stats``."""
    response = client.get("/api/admin/stats", headers=ADMIN)
    assert response.status_code == 200, response.text
    total: int = response.json()["total_workers"]
    return total


def runtime_of(client: TestClient) -> CoordinatorRuntime:
    """The running coordinator's runtime (needs the lifespan to have run)."""
    runtime: CoordinatorRuntime = client.app.state.runtime  # type: ignore[attr-defined]
    return runtime


def new_worker_id() -> str:
    return str(uuid.uuid4())


def make_settings(data_dir: Path, **overrides: Any) -> CoordinatorSettings:
    """Settings for a test coordinator on ``data_dir``."""
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "admin_token": ADMIN_TOKEN,
        "heartbeat_interval": HEARTBEAT_INTERVAL,
        **overrides,
    }
    if values["admin_token"] is None:
        del values["admin_token"]
    return CoordinatorSettings(**values)


@contextlib.contextmanager
def running_coordinator(data_dir: Path, clock: FakeClock, **overrides: Any) -> Iterator[TestClient]:
    """A started coordinator on ``data_dir``; stopped (lifespan shutdown) on exit."""
    app = coordinator.app.create_app(make_settings(data_dir, **overrides), clock=clock)
    with TestClient(app) as client:
        yield client


StartCoordinator = Callable[..., contextlib.AbstractContextManager[TestClient]]


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No RMA_* variable from the outside changes the coordinator under test."""
    for name in list(os.environ):
        if name.upper().startswith("RMA_"):
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def _manual_sweeps(monkeypatch: pytest.MonkeyPatch) -> None:
    """The background sweeper runs once an hour (real time): tests sweep by hand."""
    monkeypatch.setattr(coordinator.app, "sweep_period", lambda _settings: 3600.0)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def start(data_dir: Path, clock: FakeClock) -> StartCoordinator:
    """Start a coordinator on the test's data dir and clock, with settings overrides."""

    def _start(**overrides: Any) -> contextlib.AbstractContextManager[TestClient]:
        return running_coordinator(data_dir, clock, **overrides)

    return _start


@pytest.fixture
def client(start: StartCoordinator) -> Iterator[TestClient]:
    """A running coordinator with the default test settings."""
    with start() as test_client:
        yield test_client


def populate_one_worker_per_tier(client: TestClient) -> tuple[list[Worker], dict[str, Any]]:
    """Register a tier 1, 2 and 3 worker and change each: a load, a pause, a drain.

    Returns:
        The workers and each one's admin view, to compare after a restart.
    """
    workers = [
        register(client, SEED_CAPABILITIES, name="gpu-box"),
        register(client, TIER2_CAPABILITIES, name="cpu-box"),
        register(client, TIER3_CAPABILITIES, name="nas"),
    ]
    heartbeat(client, workers[0], current_load=0.75, status="busy")
    heartbeat(client, workers[1], paused=True)
    client.post(f"/api/admin/workers/{workers[2].worker_id}/drain", headers=ADMIN)
    return workers, {worker.worker_id: admin_view(client, worker.worker_id) for worker in workers}
