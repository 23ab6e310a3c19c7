"""How the Agent drives its container runtime: adopt after registering, stop on pause
without deleting data, survive a failing engine, and never leave containers on quit."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from desktop_app.agent.agent import EXIT_OK, Agent, AgentConfig
from desktop_app.agent.credentials import FileCredentialStore
from desktop_app.agent.identity import IdentityStore
from shared import ContainerReport, DockerInfo, ServiceAssignment, WorkerCapabilities
from tests.agent.test_agent import GIB, AgentThread, StaticProbe
from tests.fixtures.coordinator import LiveCoordinator, wait_until

DOCKER = DockerInfo(usable=True, status="running", version="26.1")


class RecordingRuntime:
    """The container runtime at its boundary: records what the agent asks of it."""

    def __init__(self, *, fail_reconcile: bool = False) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        self.fail_reconcile = fail_reconcile
        self.docker = DOCKER
        self._lock = threading.Lock()

    def _record(self, name: str, desired: list[ServiceAssignment] | None = None) -> None:
        with self._lock:
            self.calls.append((name, [a.service for a in desired or []]))

    def adopt_or_clean(self, desired: list[ServiceAssignment]) -> list[ContainerReport]:
        self._record("adopt", desired)
        return []

    def reconcile(self, desired: list[ServiceAssignment]) -> list[ContainerReport]:
        self._record("reconcile", desired)
        if self.fail_reconcile:
            raise RuntimeError("the engine answered nonsense")
        return [ContainerReport(service=a.service, image=a.image, state="running") for a in desired]

    def stop_all(self) -> None:
        self._record("stop_all")

    def wait_for_work(self, timeout_s: float) -> bool:
        time.sleep(min(timeout_s, 0.05))
        return False

    def wake(self) -> None:
        pass  # wait_for_work returns within 50 ms anyway

    def local_url(self, service: str) -> str | None:
        return None  # nothing answers: the relay tunnel offers no service

    def seen(self, name: str) -> list[list[str]]:
        with self._lock:
            return [desired for call, desired in self.calls if call == name]


@pytest.fixture
def placing_coordinator(tmp_path: Path) -> Any:
    catalog = tmp_path / "catalog.json"
    catalog.write_text(
        json.dumps(
            {
                "services": [
                    {"name": "web", "image": "registry.test/web:1", "port": 80, "tiers": [2]}
                ]
            }
        )
    )
    coordinator = LiveCoordinator(
        tmp_path / "coordinator", settings_overrides={"catalog": catalog, "placement_grace": 300}
    )
    coordinator.start()
    yield coordinator
    coordinator.stop()


def run_agent(
    coordinator: LiveCoordinator,
    state_dir: Path,
    runtime: RecordingRuntime,
    in_flight: Callable[[], int] | None = None,
    paused: bool = False,
    **config: Any,
) -> Any:
    agent = Agent(
        AgentConfig(
            coordinator_url=coordinator.url, name="docker-box", max_retry_delay=0.5, **config
        ),
        identities=IdentityStore(state_dir, FileCredentialStore(state_dir / "credentials.json")),
        probe=StaticProbe(WorkerCapabilities(cpu_cores=4, ram=8 * GIB, docker=DOCKER)),
        load_sampler=lambda: 0.1,
        containers=runtime,  # type: ignore[arg-type]
        in_flight=in_flight,
    )
    agent.set_paused(paused)
    return AgentThread(agent).start()


def test_adopts_with_the_assignments_and_reports_the_containers(
    placing_coordinator: LiveCoordinator, tmp_path: Path
) -> None:
    runtime = RecordingRuntime()
    runner = run_agent(placing_coordinator, tmp_path / "state", runtime)
    try:
        wait_until(lambda: runtime.seen("reconcile"), 10, "a reconcile pass")
        # Adoption waits for the first registration, so a restart keeps running containers.
        assert runtime.seen("adopt") == [["web"]]
        wait_until(
            lambda: (
                [c["state"] for c in placing_coordinator.workers()[0]["containers"]] == ["running"]
            ),
            10,
            "the container report to reach the coordinator",
        )
    finally:
        assert runner.stop() == EXIT_OK
    assert runtime.calls[-1] == ("stop_all", [])


def test_pause_stops_the_containers_but_never_retires_them(
    placing_coordinator: LiveCoordinator, tmp_path: Path
) -> None:
    runtime = RecordingRuntime()
    runner = run_agent(placing_coordinator, tmp_path / "state", runtime)
    try:
        wait_until(lambda: runtime.seen("reconcile"), 10, "a reconcile pass")
        runner.agent.set_paused(True)
        wait_until(lambda: runtime.seen("stop_all"), 5, "the containers to stop on pause")
        # reconcile([]) would remove the services' data volumes; a pause must not.
        assert [] not in runtime.seen("reconcile")
        runner.agent.set_paused(False)
        calls_before = len(runtime.seen("reconcile"))
        # Within the grace period the assignment stayed, so resuming brings it straight back.
        wait_until(
            lambda: ["web"] in runtime.seen("reconcile")[calls_before:], 5, "web back on resume"
        )
    finally:
        runner.stop()


def test_an_agent_that_starts_paused_starts_no_container(
    placing_coordinator: LiveCoordinator, tmp_path: Path
) -> None:
    runtime = RecordingRuntime()
    runner = run_agent(placing_coordinator, tmp_path / "state", runtime, paused=True)
    try:
        wait_until(lambda: runtime.seen("stop_all"), 10, "the paused pass")
        assert placing_coordinator.workers()[0]["schedulability"] == "paused"
        # Adopting would have started the assigned service for a moment.
        assert runtime.seen("adopt") == [] and runtime.seen("reconcile") == []
        runner.agent.set_paused(False)
        wait_until(lambda: ["web"] in runtime.seen("reconcile"), 5, "web on resume")
    finally:
        runner.stop()


class PoolWatchingRuntime(RecordingRuntime):
    """Records what the pool said about this worker at the moment the containers stop."""

    def __init__(self, coordinator: LiveCoordinator) -> None:
        super().__init__()
        self.coordinator = coordinator
        self.pool_said_at_stop: list[str] = []

    def stop_all(self) -> None:
        self.pool_said_at_stop.append(self.coordinator.workers()[0]["schedulability"])
        super().stop_all()


def test_a_pause_tells_the_pool_first_then_lets_work_finish_then_stops(
    placing_coordinator: LiveCoordinator, tmp_path: Path
) -> None:
    runtime = PoolWatchingRuntime(placing_coordinator)
    requests = [2]
    answered_at: list[float] = []

    def in_flight() -> int:
        # Two requests under way; they finish 0.3 s into the pause.
        if answered_at and time.monotonic() - answered_at[0] > 0.3:
            requests[0] = 0
        return requests[0]

    runner = run_agent(
        placing_coordinator, tmp_path / "state", runtime, in_flight, drain_timeout=5.0
    )
    try:
        wait_until(lambda: runtime.seen("reconcile"), 10, "a reconcile pass")
        paused_at = time.monotonic()
        answered_at.append(paused_at)
        runner.agent.set_paused(True)
        wait_until(lambda: runtime.seen("stop_all"), 5, "the containers to stop on pause")
        took = time.monotonic() - paused_at
        # No new work is routed here by the time the containers stop...
        assert runtime.pool_said_at_stop == ["paused"]
        # ...and the two requests under way were let finish, not cut off.
        assert requests == [0]
        assert 0.3 <= took < 2.0
    finally:
        runner.stop()


def test_work_that_does_not_finish_is_stopped_after_the_drain_limit(
    placing_coordinator: LiveCoordinator, tmp_path: Path
) -> None:
    runtime = RecordingRuntime()
    runner = run_agent(
        placing_coordinator, tmp_path / "state", runtime, lambda: 1, drain_timeout=0.5
    )
    try:
        wait_until(lambda: runtime.seen("reconcile"), 10, "a reconcile pass")
        paused_at = time.monotonic()
        runner.agent.set_paused(True)
        wait_until(lambda: runtime.seen("stop_all"), 5, "the containers to stop on pause")
        assert 0.5 <= time.monotonic() - paused_at < 2.0
    finally:
        runner.stop()


def test_a_failing_engine_neither_stops_the_agent_nor_leaves_containers(
    placing_coordinator: LiveCoordinator, tmp_path: Path
) -> None:
    runtime = RecordingRuntime(fail_reconcile=True)
    runner = run_agent(placing_coordinator, tmp_path / "state", runtime)
    wait_until(lambda: len(runtime.seen("reconcile")) >= 3, 15, "the loop to keep trying")
    assert runner.agent.status.phase == "contributing"
    assert runner.stop() == EXIT_OK
    assert runtime.calls[-1] == ("stop_all", [])
