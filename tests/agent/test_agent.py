"""The Agent facade against a real coordinator on loopback: join, recover, leave."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from desktop_app.agent.agent import EXIT_OK, EXIT_REFUSED, Agent, AgentConfig, AgentStatus
from desktop_app.agent.credentials import CredentialStoreError, FileCredentialStore
from desktop_app.agent.identity import IdentityStore
from shared import DockerInfo, WorkerCapabilities
from tests.fixtures.coordinator import LiveCoordinator, free_port, wait_until

GIB = 1024**3


@dataclass
class StaticProbe:
    """A probe at the adapter boundary: fixed hardware, counting how often it ran."""

    capabilities: WorkerCapabilities
    notes: list[str] = field(default_factory=list)
    calls: int = 0

    def __call__(self) -> StaticProbe:
        self.calls += 1
        return self


def service_worker() -> WorkerCapabilities:
    return WorkerCapabilities(
        cpu_cores=4,
        ram=8 * GIB,
        docker=DockerInfo(usable=False, status="not_running", message="Start Docker."),
    )


class AgentThread:
    """Runs an agent the way the tray app will: its own event loop on a background thread."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.statuses: queue.Queue[AgentStatus] = queue.Queue()
        agent.subscribe(self.statuses.put)
        self.exit_code: int | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.exit_code = asyncio.run(self.agent.run())

    def start(self) -> AgentThread:
        self._thread.start()
        return self

    def wait_for_phase(self, phase: str, timeout: float = 10) -> AgentStatus:
        deadline_status = None
        try:
            while True:
                status = self.statuses.get(timeout=timeout)
                deadline_status = status
                if status.phase == phase:
                    return status
        except queue.Empty:
            raise AssertionError(
                f"agent never reached {phase!r}; last status {deadline_status}"
            ) from None

    def stop(self, timeout: float = 10) -> int | None:
        self.agent.stop()
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "agent did not stop"
        return self.exit_code


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "worker-state"


def make_agent(
    url: str,
    state_dir: Path,
    probe: StaticProbe | None = None,
    **config: object,
) -> Agent:
    credentials = FileCredentialStore(state_dir / "credentials.json")
    return Agent(
        AgentConfig(coordinator_url=url, name="test-worker", max_retry_delay=0.5, **config),  # type: ignore[arg-type]
        identities=IdentityStore(state_dir, credentials),
        probe=probe or StaticProbe(service_worker()),
        load_sampler=lambda: 0.25,
    )


@pytest.fixture
def running(live_coordinator: LiveCoordinator, state_dir: Path) -> Iterator[AgentThread]:
    runner = AgentThread(make_agent(live_coordinator.url, state_dir)).start()
    try:
        yield runner
    finally:
        runner.stop()


def test_joins_heartbeats_and_leaves_on_stop(
    live_coordinator: LiveCoordinator, running: AgentThread
) -> None:
    status = running.wait_for_phase("contributing")
    assert status.tier == 2
    assert "tier 2" in status.message
    [worker] = live_coordinator.workers()
    assert worker["worker_id"] == status.worker_id
    assert worker["name"] == "test-worker"
    wait_until(
        lambda: live_coordinator.workers()[0]["current_load"] == 0.25, 5, "a heartbeat with load"
    )

    assert running.stop() == EXIT_OK
    assert live_coordinator.workers() == [], "a stopped agent unregisters"
    assert running.agent.status.phase == "stopped"


def test_keeps_identity_across_restarts(live_coordinator: LiveCoordinator, state_dir: Path) -> None:
    first = AgentThread(make_agent(live_coordinator.url, state_dir)).start()
    worker_id = first.wait_for_phase("contributing").worker_id
    first.stop()

    second = AgentThread(make_agent(live_coordinator.url, state_dir)).start()
    try:
        assert second.wait_for_phase("contributing").worker_id == worker_id
    finally:
        second.stop()


def test_reregisters_under_same_id_when_coordinator_forgets_it(
    live_coordinator: LiveCoordinator, running: AgentThread
) -> None:
    worker_id = running.wait_for_phase("contributing").worker_id
    # Lose the whole registry, as the seed's coordinator did on every scale-to-zero.
    live_coordinator.stop()
    (live_coordinator.data_dir / "registry.db").unlink()
    live_coordinator.start()

    wait_until(
        lambda: [w["worker_id"] for w in live_coordinator.workers()] == [worker_id],
        10,
        "the worker to register again under its id",
    )


def test_retries_until_coordinator_comes_up(tmp_path: Path, state_dir: Path) -> None:
    coordinator = LiveCoordinator(tmp_path / "late-coordinator", port=free_port())
    probe = StaticProbe(service_worker())
    runner = AgentThread(make_agent(coordinator.url, state_dir, probe)).start()
    try:
        runner.wait_for_phase("retrying")
        runner.wait_for_phase("retrying")  # still trying, with backoff
        coordinator.start()
        runner.wait_for_phase("contributing")
        assert probe.calls == 1, "retries must not re-run the hardware probe"
    finally:
        runner.stop()
        coordinator.stop()


def test_starts_afresh_when_its_id_belongs_to_another_machine(
    live_coordinator: LiveCoordinator, running: AgentThread, state_dir: Path
) -> None:
    worker_id = running.wait_for_phase("contributing").worker_id
    running.stop()
    # Someone else's token replaces ours (e.g. a copied state folder on another machine).
    FileCredentialStore(state_dir / "credentials.json").set(str(worker_id), "not-the-token")
    # The stop unregistered the worker; register it again so the id is known and owned.
    other = AgentThread(make_agent(live_coordinator.url, state_dir.parent / "other")).start()
    other.wait_for_phase("contributing")

    runner = AgentThread(make_agent(live_coordinator.url, state_dir)).start()
    try:
        status = runner.wait_for_phase("contributing")
        assert status.worker_id is not None
    finally:
        runner.stop()
        other.stop()


def test_id_conflict_gives_a_new_identity(
    live_coordinator: LiveCoordinator, tmp_path: Path
) -> None:
    first_dir, second_dir = tmp_path / "a", tmp_path / "b"
    first = AgentThread(make_agent(live_coordinator.url, first_dir)).start()
    worker_id = first.wait_for_phase("contributing").worker_id
    # Copy the identity but not the token to a second machine.
    second_dir.mkdir()
    (second_dir / "identity.json").write_text((first_dir / "identity.json").read_text())
    FileCredentialStore(second_dir / "credentials.json").set(str(worker_id), "guessed-token")

    second = AgentThread(make_agent(live_coordinator.url, second_dir)).start()
    try:
        status = second.wait_for_phase("contributing")
        assert status.worker_id != worker_id, "it cannot take over another worker's id"
        assert len(live_coordinator.workers()) == 2
    finally:
        second.stop()
        first.stop()


def test_machine_below_every_tier_is_refused_with_reason(
    live_coordinator: LiveCoordinator, state_dir: Path
) -> None:
    tiny = StaticProbe(WorkerCapabilities(cpu_cores=1, ram=1 * GIB))
    runner = AgentThread(make_agent(live_coordinator.url, state_dir, tiny)).start()
    status = runner.wait_for_phase("refused")
    assert "2.0 GiB" in status.message
    assert runner.stop() == EXIT_REFUSED
    assert live_coordinator.workers() == []


def test_pause_reaches_the_coordinator(
    live_coordinator: LiveCoordinator, running: AgentThread
) -> None:
    running.wait_for_phase("contributing")
    running.agent.set_paused(True)
    wait_until(
        lambda: live_coordinator.workers()[0]["schedulability"] == "paused", 5, "paused worker"
    )
    [worker] = live_coordinator.workers()
    assert worker["status"] == "online", "a paused worker is still alive"
    running.agent.set_paused(False)
    wait_until(
        lambda: live_coordinator.workers()[0]["schedulability"] == "active", 5, "resumed worker"
    )


def test_enrollment_token_is_sent(tmp_path: Path, state_dir: Path) -> None:
    secret = "enroll-" + "x" * 20
    coordinator = LiveCoordinator(
        tmp_path / "closed-pool", settings_overrides={"enrollment_token": secret}
    )
    coordinator.start()
    try:
        refused = AgentThread(make_agent(coordinator.url, state_dir)).start()
        assert "enrollment token" in refused.wait_for_phase("refused").message
        assert refused.stop() == EXIT_REFUSED

        admitted = AgentThread(
            make_agent(coordinator.url, state_dir, enrollment_token=secret)
        ).start()
        admitted.wait_for_phase("contributing")
        admitted.stop()
    finally:
        coordinator.stop()


class LockedKeyring:
    """A credential store that refuses every operation, like a locked system keyring."""

    description = "a locked keyring"

    def get(self, key: str) -> str | None:
        raise CredentialStoreError("Keyring locked", "Unlock the keyring.")

    def set(self, key: str, secret: str) -> None:
        raise CredentialStoreError("Keyring locked", "Unlock the keyring.")

    def delete(self, key: str) -> None:
        raise CredentialStoreError("Keyring locked", "Unlock the keyring.")


def test_a_locked_keyring_does_not_stop_contribution(
    live_coordinator: LiveCoordinator, state_dir: Path
) -> None:
    agent = Agent(
        AgentConfig(coordinator_url=live_coordinator.url, name="locked", max_retry_delay=0.5),
        identities=IdentityStore(state_dir, LockedKeyring()),
        probe=StaticProbe(service_worker()),
        load_sampler=lambda: 0.1,
    )
    runner = AgentThread(agent).start()
    try:
        status = runner.wait_for_phase("contributing")
        wait_until(lambda: live_coordinator.workers()[0]["current_load"] == 0.1, 5, "heartbeats")
        assert status.worker_id == live_coordinator.workers()[0]["worker_id"]
    finally:
        assert runner.stop() == EXIT_OK


def test_container_checks_slow_down_once_everything_runs() -> None:
    from desktop_app.agent.agent import next_reconcile_delay
    from shared import ContainerReport

    def report(state: str) -> ContainerReport:
        return ContainerReport.model_validate({"service": state, "image": "x:1", "state": state})

    assert next_reconcile_delay([report("starting"), report("running")], 2.0, 10.0) == 0.25
    assert next_reconcile_delay([report("pulling")], 2.0, 10.0) == 1.0
    assert next_reconcile_delay([report("running"), report("running")], 2.0, 10.0) == 10.0
    assert next_reconcile_delay([report("running"), report("exited")], 2.0, 10.0) == 2.0
    assert next_reconcile_delay([report("running")], 2.0) == 2.0
