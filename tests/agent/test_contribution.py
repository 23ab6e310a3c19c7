"""The tray app's engine against a real coordinator: join, pause, snooze, settings, quit.

Docker is absent here on purpose (a socket that does not exist), which the engine must
report as a situation needing attention, not fail on; the tray's tests with a real engine
are in tests/ui/test_desktop_process.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from desktop_app.agent.agent import AgentConfig
from desktop_app.agent.containers import DockerGateway
from desktop_app.agent.contribution import Contribution, Snapshot
from desktop_app.agent.credentials import FileCredentialStore
from desktop_app.agent.governor import GovernorConfig
from desktop_app.agent.hardware import ProbeReport
from desktop_app.agent.paths import AppPaths
from desktop_app.agent.policy_loop import LoopTiming
from desktop_app.agent.settings import SettingsStore, VolunteerSettings
from shared import DockerInfo, GpuInfo, WorkerCapabilities
from tests.fixtures.coordinator import LiveCoordinator, wait_until
from tests.fixtures.machine_signals import MachineSignals

GIB = 1024**3
NO_DOCKER = {"DOCKER_HOST": "unix:///nonexistent/rma-test/docker.sock"}


class CountingProbe:
    """The hardware probe at its boundary: fixed hardware with a GPU, counting its runs."""

    def __init__(self) -> None:
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self, disk_path: Path) -> ProbeReport:
        with self.lock:
            self.calls += 1
        return ProbeReport(
            capabilities=WorkerCapabilities(
                cpu_cores=4,
                ram=16 * GIB,
                storage=100 * GIB,
                gpus=[GpuInfo(vendor="nvidia", name="RTX 4090", memory=24 * GIB)],
                docker=DockerInfo(status="not_running", message="Start Docker."),
            )
        )


def fast(config: AgentConfig) -> AgentConfig:
    return replace(config, max_retry_delay=0.5, unregister_timeout=2.0, reconcile_interval=0.2)


FAST_GOVERNOR = GovernorConfig(start_after=0.2, stop_after=1.0, restart_after=1.0)
FAST_LOOP = LoopTiming(input_check=0.1, check_interval=0.2, readout_interval=0.2)


def make(
    tmp_path: Path,
    coordinator: LiveCoordinator,
    settings: VolunteerSettings,
    notice: str | None = None,
    signals: MachineSignals | None = None,
    **options: Any,
) -> Contribution:
    paths = AppPaths.under(tmp_path / "app").ensure()
    signals = signals or MachineSignals()
    return Contribution(
        paths=paths,
        store=SettingsStore(paths.config_dir),
        settings=settings,
        credentials=FileCredentialStore(paths.state_dir / "credentials.json"),
        probe=CountingProbe(),
        gateway_factory=lambda: DockerGateway(environ=NO_DOCKER, timeout_s=2),
        environ={"RMA_COORDINATOR_URL": coordinator.url},
        agent_config=fast,
        notice=notice,
        idle_factory=signals.idle_detector,
        battery=signals.read_battery,
        load_meter=signals.load_meter,
        governor=FAST_GOVERNOR,
        loop_timing=FAST_LOOP,
        **options,
    )


@pytest.fixture
def engine(tmp_path: Path, live_coordinator: LiveCoordinator) -> Iterator[Contribution]:
    contribution = make(tmp_path, live_coordinator, VolunteerSettings())
    yield contribution
    done = threading.Event()
    contribution.shutdown(done.set)
    assert done.wait(20), "the engine did not stop"


def schedulability(coordinator: LiveCoordinator) -> str | None:
    workers = coordinator.workers()
    return workers[0]["schedulability"] if workers else None


def test_nothing_joins_before_the_volunteer_agrees(
    engine: Contribution, live_coordinator: LiveCoordinator
) -> None:
    engine.start()
    assert not engine.running
    assert live_coordinator.workers() == []
    assert engine.snapshot().situation.action == "join"


def test_join_pause_resume_and_quit(
    engine: Contribution, live_coordinator: LiveCoordinator, tmp_path: Path
) -> None:
    seen: list[Snapshot] = []
    engine.subscribe(seen.append)
    engine.join(VolunteerSettings(cpu_limit_kind="cores", cpu_limit_value=1))
    wait_until(lambda: schedulability(live_coordinator) == "active", 10, "registration")
    store = SettingsStore(engine.settings_path.parent)
    wait_until(lambda: store.load().settings.joined, 5, "the agreement saved")
    assert store.load().settings.cpu_limit_value == 1
    # Docker is missing: the volunteer is told, with the fix.
    wait_until(lambda: engine.snapshot().situation.kind == "attention", 10, "attention")
    assert engine.snapshot().situation.action == "docker_help"

    engine.set_contributing(False)
    assert engine.snapshot().situation.kind == "paused"
    wait_until(lambda: schedulability(live_coordinator) == "paused", 5, "paused at the pool")
    engine.set_contributing(True)
    wait_until(lambda: schedulability(live_coordinator) == "active", 5, "active again")
    assert any(snapshot.situation.kind == "paused" for snapshot in seen)

    done = threading.Event()
    engine.shutdown(done.set)
    assert done.wait(20)
    assert not engine.running
    wait_until(lambda: live_coordinator.workers() == [], 5, "unregistered")


def test_a_snooze_ends_by_itself(engine: Contribution, live_coordinator: LiveCoordinator) -> None:
    engine.join(VolunteerSettings())
    wait_until(lambda: schedulability(live_coordinator) == "active", 10, "registration")
    until = datetime.now(UTC) + timedelta(seconds=1.5)
    engine.snooze(until)
    snapshot = engine.snapshot()
    assert snapshot.paused and snapshot.paused_until == until
    wait_until(lambda: schedulability(live_coordinator) == "paused", 5, "snoozed at the pool")
    wait_until(lambda: not engine.snapshot().paused, 10, "the snooze to end")
    # The snooze is forgotten by the timer that ends it, a moment after it is over.
    wait_until(lambda: engine.settings.snoozed_until is None, 5, "the snooze to be cleared")
    wait_until(lambda: schedulability(live_coordinator) == "active", 5, "active after the snooze")
    with pytest.raises(ValueError, match="aware"):
        engine.snooze(datetime.now())


def test_switching_the_gpu_off_reconnects_without_it_under_the_same_identity(
    engine: Contribution, live_coordinator: LiveCoordinator
) -> None:
    engine.join(VolunteerSettings())
    wait_until(lambda: live_coordinator.workers(), 10, "registration")
    first = live_coordinator.workers()[0]
    assert first["tier"] == 1
    engine.update_settings(engine.settings.model_copy(update={"gpu_enabled": False}))
    wait_until(
        lambda: live_coordinator.workers() and live_coordinator.workers()[0]["tier"] == 2,
        15,
        "re-registration without the GPU",
    )
    assert live_coordinator.workers()[0]["worker_id"] == first["worker_id"]


def test_a_save_that_fails_is_reported_and_the_choice_still_applies(
    tmp_path: Path, live_coordinator: LiveCoordinator
) -> None:
    contribution = make(tmp_path, live_coordinator, VolunteerSettings(joined=True))
    contribution.settings_path.parent.rmdir()
    contribution.settings_path.parent.write_text("a file where the folder should be")
    try:
        contribution.set_contributing(False)
        wait_until(lambda: contribution.snapshot().notice, 5, "a notice")
        assert "could not be saved" in str(contribution.snapshot().notice)
        assert contribution.snapshot().paused
        contribution.dismiss_notice()
        assert contribution.snapshot().notice is None
    finally:
        contribution.shutdown(lambda: None)


def test_probe_results_are_shared_between_the_check_and_joining(
    engine: Contribution, live_coordinator: LiveCoordinator
) -> None:
    report = engine.probe_hardware()
    assert engine.snapshot().hardware == report.capabilities
    engine.join(VolunteerSettings())
    wait_until(lambda: live_coordinator.workers(), 10, "registration")
    probe = engine._probe
    assert isinstance(probe, CountingProbe) and probe.calls == 1
    engine.probe_hardware(fresh=True)
    assert probe.calls == 2
    assert "private file" not in engine.credentials_note or "only you can read" in (
        engine.credentials_note
    )


def test_a_refusal_keeps_its_reason_and_a_settings_change_tries_again(tmp_path: Path) -> None:
    coordinator = LiveCoordinator(
        tmp_path / "strict", settings_overrides={"enrollment_token": "volunteers-2026-secret"}
    )
    coordinator.start()
    contribution = make(tmp_path, coordinator, VolunteerSettings())
    try:
        contribution.join(VolunteerSettings())
        wait_until(lambda: contribution.snapshot().situation.kind == "attention", 10, "refusal")
        wait_until(lambda: not contribution.running, 10, "the refused agent to stop")
        situation = contribution.snapshot().situation
        assert situation.action == "open_settings" and "enrollment" in situation.reason.lower()
        assert coordinator.workers() == []
        contribution.update_settings(
            contribution.settings.model_copy(update={"enrollment_token": "volunteers-2026-secret"})
        )
        wait_until(lambda: coordinator.workers(), 10, "registration with the code")
    finally:
        done = threading.Event()
        contribution.shutdown(done.set)
        assert done.wait(20)
        coordinator.stop()
