"""The signal source: reads only what the rules need, and looks again for idle detection."""

from __future__ import annotations

from desktop_app.agent.idle import IdleDetector, NullIdleDetector
from desktop_app.agent.power import BatteryState
from desktop_app.agent.schedule import ContributionRules
from desktop_app.agent.signals import RETRY_IDLE_SOURCES, SignalSource


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Working(IdleDetector):
    source = "a working source"

    def idle_seconds(self) -> float:
        return 12.0


def test_idle_detection_found_later_is_used() -> None:
    # At login the desktop's idle service may come up after the app.
    found: list[IdleDetector] = [NullIdleDetector("nothing yet"), Working()]
    calls: list[int] = []

    def factory() -> IdleDetector:
        calls.append(1)
        return found[min(len(calls) - 1, 1)]

    clock = Clock()
    source = SignalSource(
        idle_factory=factory, battery=lambda: None, other_cpu=None, monotonic=clock
    )
    first = source.read_idle()
    assert not first.working and first.problem == "nothing yet"
    clock.now += RETRY_IDLE_SOURCES / 2
    assert not source.read_idle().working
    assert len(calls) == 1  # not looked for again yet
    clock.now += RETRY_IDLE_SOURCES
    again = source.read_idle()
    assert again.working and again.idle_seconds == 12.0 and again.source == "a working source"
    assert len(calls) == 2


def test_only_what_the_rules_need_is_read() -> None:
    reads: list[str] = []

    class Meter:
        def sample(self) -> float | None:
            reads.append("load")
            return 10.0

    def battery() -> BatteryState | None:
        reads.append("battery")
        return BatteryState(on_battery=True, percent=40.0)

    def factory() -> IdleDetector:
        reads.append("idle")
        return Working()

    source = SignalSource(idle_factory=factory, battery=battery, other_cpu=Meter())
    always = ContributionRules(battery="allow", busy_pause=False)
    assert source.read(always).idle_seconds is None
    assert reads == []
    signals = source.read(ContributionRules(idle_only=True))
    assert reads == ["idle", "battery", "load"]
    assert (signals.idle_seconds, signals.on_battery, signals.other_cpu_percent) == (
        12.0,
        True,
        10.0,
    )
