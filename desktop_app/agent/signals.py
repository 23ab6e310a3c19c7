"""Reads what the contribution policy needs from the computer: idle time, battery, load.

:class:`SignalSource` owns the idle detector (made on first use, on the caller's thread,
since finding one does I/O) and reads only what the rules in force need, so a volunteer who
contributes "always" pays for no idle or load readings. All calls come from one thread, the
policy loop's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from desktop_app.agent.idle import IdleDetector, IdleUnavailable, NullIdleDetector
from desktop_app.agent.policy import Signals
from desktop_app.agent.power import BatteryState
from desktop_app.agent.schedule import ContributionRules

log = logging.getLogger(__name__)

RETRY_IDLE_SOURCES = 60.0
"""Seconds between new looks for a way to read idle time while none works."""


class LoadMeter(Protocol):
    """Other programs' CPU use (:class:`desktop_app.agent.host_load.OtherProgramsCpu`)."""

    def sample(self) -> float | None:
        """Percent of all cores used by other programs since the last call; None if unknown."""
        ...


@dataclass(frozen=True)
class IdleReading:
    """How idle detection is doing, for the Settings readout."""

    source: str
    """Where idle time comes from, in plain words; ``"none"`` when nowhere."""
    working: bool
    idle_seconds: float | None = None
    problem: str | None = None
    """Why it does not work, when it does not."""


class SignalSource:
    """The computer's signals for the policy. Used from one thread only."""

    def __init__(
        self,
        *,
        idle_factory: Callable[[], IdleDetector],
        battery: Callable[[], BatteryState | None],
        other_cpu: LoadMeter | None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """Read idle time from the detector ``idle_factory`` makes, battery and load.

        Args:
            idle_factory: Finds this desktop's idle detector (does I/O; called on first use).
            battery: Reads the battery (None: no battery).
            other_cpu: Measures other programs' CPU use; None where it cannot.
            monotonic: Monotonic seconds (tests inject one).
        """
        self._idle_factory = idle_factory
        self._idle: IdleDetector | None = None
        self._battery = battery
        self._other_cpu = other_cpu
        self._last_idle: IdleReading | None = None
        self._monotonic = monotonic
        self._idle_found_at = 0.0

    @property
    def idle_reading(self) -> IdleReading | None:
        """The latest idle reading (None before the first)."""
        return self._last_idle

    def read(self, rules: ContributionRules, *, want_idle: bool = False) -> Signals:
        """Read the signals ``rules`` need (idle time also when ``want_idle``)."""
        idle_seconds: float | None = None
        idle_problem: str | None = None
        if want_idle or rules.idle_only or rules.gpu_only_when_idle:
            reading = self.read_idle()
            idle_seconds, idle_problem = reading.idle_seconds, reading.problem
        on_battery, percent = False, None
        if rules.battery != "allow":
            try:
                state = self._battery()
            except Exception:  # a sensor bug must not stop the policy
                log.exception("Reading the battery failed")
                state = None
            if state is not None:
                on_battery, percent = state.on_battery, state.percent
        busy: float | None = None
        if rules.busy_pause and self._other_cpu is not None:
            try:
                busy = self._other_cpu.sample()
            except Exception:
                log.exception("Measuring other programs' CPU use failed")
        return Signals(
            idle_seconds=idle_seconds,
            idle_problem=idle_problem,
            on_battery=on_battery,
            battery_percent=percent,
            other_cpu_percent=busy,
        )

    def read_idle(self) -> IdleReading:
        """Read the idle time now (finds the detector first, and again while none works)."""
        if (
            isinstance(self._idle, NullIdleDetector)
            and self._monotonic() - self._idle_found_at >= RETRY_IDLE_SOURCES
        ):
            # At login the session bus or the desktop's service may come up after the app.
            self._idle.close()
            self._idle = None
        if self._idle is None:
            self._idle_found_at = self._monotonic()
            try:
                self._idle = self._idle_factory()
            except Exception as exc:
                log.exception("Looking for a way to read idle time failed")
                reading = IdleReading("none", False, problem=f"idle detection failed ({exc})")
                self._last_idle = reading
                return reading
            log.info("Idle detection: %s", self._idle.source)
        detector = self._idle
        try:
            seconds = detector.idle_seconds()
        except IdleUnavailable as exc:
            reading = IdleReading(detector.source, False, problem=str(exc))
        except Exception as exc:  # a backend bug reads as "not working", never a crash
            log.exception("Reading idle time failed")
            reading = IdleReading(detector.source, False, problem=f"reading it failed ({exc})")
        else:
            reading = IdleReading(detector.source, True, idle_seconds=max(0.0, seconds))
        previous = self._last_idle
        if previous is None or previous.working != reading.working:
            if reading.working:
                log.info("Idle detection works (%s).", reading.source)
            else:
                log.warning("Idle detection does not work: %s", reading.problem)
        self._last_idle = reading
        return reading

    def close(self) -> None:
        """Release the idle detector's connections."""
        if self._idle is not None:
            self._idle.close()
            self._idle = None
