"""The engine applies the volunteer's rules against a real coordinator: idle only, battery,
busy programs, schedule, the graphics card only when away, and start at login.

The computer's signals are set by the test at their boundary (tests/fixtures/
machine_signals.py); the real idle, battery and load readers have their own tests, and
tests/e2e/test_idle_contribution.py runs the whole thing on a real X server.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from datetime import time as clock
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from desktop_app.agent.autostart import XdgDesktopAutostart
from desktop_app.agent.contribution import Contribution
from desktop_app.agent.policy import Decision
from desktop_app.agent.power import BatteryState
from desktop_app.agent.schedule import ContributionRules, WeeklyWindow
from desktop_app.agent.settings import VolunteerSettings
from tests.agent.test_contribution import make, schedulability
from tests.fixtures.coordinator import LiveCoordinator, wait_until
from tests.fixtures.machine_signals import MachineSignals

IDLE_RULES = ContributionRules(idle_only=True, idle_minutes=1.0 / 60, busy_pause=False)
"""Contribute after one second without input."""


@pytest.fixture
def signals() -> MachineSignals:
    return MachineSignals()


@pytest.fixture
def engines() -> Iterator[list[Contribution]]:
    made: list[Contribution] = []
    yield made
    for engine in made:
        done = threading.Event()
        engine.shutdown(done.set)
        assert done.wait(20), "the engine did not stop"


def joined(
    engines: list[Contribution],
    tmp_path: Path,
    coordinator: LiveCoordinator,
    signals: MachineSignals,
    rules: ContributionRules,
    **options: object,
) -> Contribution:
    engine = make(tmp_path, coordinator, VolunteerSettings(), signals=signals, **options)
    engines.append(engine)
    engine.join(VolunteerSettings(rules=rules))
    wait_until(lambda: coordinator.workers(), 10, "registration")
    return engine


def decision(engine: Contribution) -> Decision:
    found = engine.snapshot().decision
    assert found is not None
    return found


def said(engine: Contribution) -> tuple[str, str | None]:
    """The decision's headline and its fix. (The window shows Docker's absence first:
    Docker is missing here on purpose, see test_contribution.py.)"""
    found = decision(engine)
    return found.headline, found.fix.action if found.fix else None


def rule(engine: Contribution) -> str | None:
    decision = engine.snapshot().decision
    return decision.rule if decision else None


def test_only_when_idle_waits_for_the_threshold_and_stops_at_once_on_input(
    engines: list[Contribution],
    tmp_path: Path,
    live_coordinator: LiveCoordinator,
    signals: MachineSignals,
) -> None:
    signals.touch()
    engine = joined(engines, tmp_path, live_coordinator, signals, IDLE_RULES)
    wait_until(lambda: rule(engine) == "in_use", 5, "the in-use decision")
    snapshot = engine.snapshot()
    assert said(engine) == ("Waiting: you are using the computer", "stop_idle_only")
    assert not snapshot.active
    wait_until(lambda: schedulability(live_coordinator) == "paused", 5, "paused at the pool")

    # Keep using it: nothing starts.
    for _ in range(10):
        signals.touch()
        time.sleep(0.1)
    assert schedulability(live_coordinator) == "paused"

    # Left alone: contributing after the threshold.
    wait_until(lambda: engine.snapshot().active, 5, "contribution after the threshold")
    wait_until(lambda: schedulability(live_coordinator) == "active", 5, "active at the pool")
    assert rule(engine) == "contributing"

    # Back: paused at once.
    signals.touch()
    touched = time.monotonic()
    wait_until(lambda: schedulability(live_coordinator) == "paused", 5, "paused on input")
    assert time.monotonic() - touched < 2.0


def test_idle_detection_that_does_not_work_keeps_idle_only_from_starting(
    engines: list[Contribution],
    tmp_path: Path,
    live_coordinator: LiveCoordinator,
    signals: MachineSignals,
) -> None:
    signals.idle_works = False
    engine = joined(engines, tmp_path, live_coordinator, signals, IDLE_RULES)
    wait_until(lambda: rule(engine) == "idle_unknown", 5, "the decision")
    assert "the test switched idle detection off" in decision(engine).reason
    reading = engine.idle_reading()
    assert reading is not None and not reading.working
    # The one fix: contribute while in use.
    engine.update_rules(engine.settings.rules.model_copy(update={"idle_only": False}))
    wait_until(lambda: engine.snapshot().active, 5, "contributing after the fix")


def test_on_battery_it_pauses_and_the_fix_allows_it(
    engines: list[Contribution],
    tmp_path: Path,
    live_coordinator: LiveCoordinator,
    signals: MachineSignals,
) -> None:
    engine = joined(
        engines, tmp_path, live_coordinator, signals, ContributionRules(busy_pause=False)
    )
    wait_until(lambda: schedulability(live_coordinator) == "active", 10, "contributing")
    signals.battery = BatteryState(on_battery=True, percent=80.0)
    wait_until(lambda: schedulability(live_coordinator) == "paused", 5, "paused on battery")
    assert said(engine) == ("Paused: on battery", "allow_battery")

    # "Only above 50 %": 80 % is enough, 30 % is not.
    engine.update_rules(engine.settings.rules.model_copy(update={"battery": "above"}))
    wait_until(lambda: schedulability(live_coordinator) == "active", 5, "on battery above 50%")
    signals.battery = BatteryState(on_battery=True, percent=30.0)
    wait_until(lambda: rule(engine) == "battery", 5, "low battery")
    assert "30%" in decision(engine).reason
    signals.battery = BatteryState(on_battery=False, percent=31.0)
    wait_until(lambda: schedulability(live_coordinator) == "active", 5, "plugged in")


def test_busy_programs_pause_it_only_when_the_load_lasts(
    engines: list[Contribution],
    tmp_path: Path,
    live_coordinator: LiveCoordinator,
    signals: MachineSignals,
) -> None:
    engine = joined(
        engines, tmp_path, live_coordinator, signals, ContributionRules(busy_percent=50)
    )
    wait_until(lambda: engine.snapshot().active, 10, "contributing")
    # A short spike (shorter than the 1 s the test's timing asks) stops nothing.
    signals.other_cpu_percent = 95.0
    time.sleep(0.4)
    signals.other_cpu_percent = 5.0
    time.sleep(0.4)
    assert engine.snapshot().active
    # A lasting load does.
    signals.other_cpu_percent = 95.0
    wait_until(lambda: not engine.snapshot().active, 5, "waiting for busy programs")
    assert rule(engine) == "busy"
    assert "95%" in decision(engine).reason
    wait_until(lambda: schedulability(live_coordinator) == "paused", 5, "paused at the pool")


def test_outside_its_schedule_it_says_until_when(
    engines: list[Contribution],
    tmp_path: Path,
    live_coordinator: LiveCoordinator,
    signals: MachineSignals,
) -> None:
    zone = ZoneInfo("Europe/London")
    now = datetime.now(zone)
    # A window that opens in two hours, every day.
    opens = (now + timedelta(hours=2)).time().replace(second=0, microsecond=0)
    closes = (now + timedelta(hours=3)).time().replace(second=0, microsecond=0)
    window = WeeklyWindow(days=tuple(range(7)), start=opens, end=closes)
    rules = ContributionRules(schedule_only=True, windows=(window,), busy_pause=False)
    engine = joined(engines, tmp_path, live_coordinator, signals, rules, zone=zone)
    wait_until(lambda: rule(engine) == "schedule", 5, "the schedule decision")
    assert said(engine) == (f"Paused until {opens:%H:%M} by your schedule", "open_schedule")
    decision = engine.snapshot().decision
    assert decision is not None and decision.until is not None
    assert abs((decision.until - now).total_seconds() - 7200) < 120
    wait_until(lambda: schedulability(live_coordinator) == "paused", 5, "paused at the pool")

    # Every hour of every day: contributing.
    always = WeeklyWindow(days=tuple(range(7)), start=clock(0), end=clock(0))
    engine.update_rules(rules.model_copy(update={"windows": (always,)}))
    wait_until(lambda: schedulability(live_coordinator) == "active", 5, "inside the window")


def test_the_graphics_card_only_when_away(
    engines: list[Contribution],
    tmp_path: Path,
    live_coordinator: LiveCoordinator,
    signals: MachineSignals,
) -> None:
    signals.touch()
    rules = ContributionRules(gpu_only_when_idle=True, idle_minutes=1.0 / 60, busy_pause=False)
    engine = joined(engines, tmp_path, live_coordinator, signals, rules)

    def tier() -> int | None:
        workers = live_coordinator.workers()
        return workers[0]["tier"] if workers else None

    # In use: the CPU contributes, the graphics card is left alone (tier 2).
    for _ in range(15):
        signals.touch()
        time.sleep(0.1)
    assert tier() == 2
    assert engine.snapshot().active
    # Away: reconnected with the graphics card (tier 1), under the same identity.
    first = live_coordinator.workers()[0]["worker_id"]
    wait_until(lambda: tier() == 1, 15, "the GPU offered when away")
    assert live_coordinator.workers()[0]["worker_id"] == first
    # Back: without it again.
    signals.touch()
    wait_until(lambda: tier() == 2, 15, "the GPU taken back on input")


def test_start_at_login_follows_joining_and_the_setting(
    engines: list[Contribution],
    tmp_path: Path,
    live_coordinator: LiveCoordinator,
    signals: MachineSignals,
) -> None:
    autostart = XdgDesktopAutostart(["/opt/rma/rma-desktop", "--autostart"], tmp_path / "xdg")
    engine = make(
        tmp_path, live_coordinator, VolunteerSettings(), signals=signals, autostart=autostart
    )
    engines.append(engine)
    assert engine.autostart_description is not None
    assert not autostart.is_enabled()
    engine.join(VolunteerSettings())  # start_at_login is on by default once joined
    wait_until(autostart.is_enabled, 5, "the login entry")
    assert "--autostart" in autostart.path.read_text()
    engine.update_settings(engine.settings.model_copy(update={"start_at_login": False}))
    wait_until(lambda: not autostart.is_enabled(), 5, "the entry removed")
    assert not autostart.path.exists()


def test_start_at_login_switched_off_outside_the_app_stays_off(
    engines: list[Contribution],
    tmp_path: Path,
    live_coordinator: LiveCoordinator,
    signals: MachineSignals,
) -> None:
    autostart = XdgDesktopAutostart(["/opt/rma/rma-desktop", "--autostart"], tmp_path / "xdg")
    autostart.enable()
    # The volunteer unticked it in their desktop's "Startup Applications".
    autostart.path.write_text(
        autostart.path.read_text().replace(
            "X-GNOME-Autostart-enabled=true", "X-GNOME-Autostart-enabled=false"
        )
    )
    assert not autostart.is_enabled()
    engine = make(
        tmp_path,
        live_coordinator,
        VolunteerSettings(joined=True),
        signals=signals,
        autostart=autostart,
    )
    engines.append(engine)
    engine.start()
    wait_until(lambda: not engine.settings.start_at_login, 5, "the setting to follow the OS")
    assert not autostart.is_enabled()
