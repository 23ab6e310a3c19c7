"""Whether to contribute right now, and why: one pure decision over the time and the signals.

:meth:`ContributionPolicy.decide` takes the volunteer's settings, the current time and what
the computer reports (seconds since the last input, battery, other programs' CPU use) and
returns a :class:`Decision`: contribute or not, whether the graphics card may be used, the
rule that decided, a sentence for the volunteer, until when it holds, and the one change
that would let the computer contribute. It does no I/O and keeps no state, so it is tested
with generated inputs; :class:`desktop_app.agent.governor.Governor` adds the timing
(hysteresis) on top.

The rules are checked in a fixed order and the first that says no is the one shown: the
volunteer's pause, a snooze, the weekly schedule, the battery, "only when idle", then other
programs' load. Someone at the keyboard is told that, rather than about the load: the fix
for the load would not let the computer contribute while they are there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Literal

from desktop_app.agent.schedule import ContributionRules, clock_time, next_change, wall_time

Rule = Literal[
    "contributing",
    "paused",
    "snoozed",
    "schedule",
    "battery",
    "busy",
    "in_use",
    "idle_unknown",
]
"""Which rule decided."""

FixAction = Literal[
    "resume",
    "open_schedule",
    "allow_battery",
    "stop_busy_pause",
    "stop_idle_only",
]
"""What the volunteer's one fix does (the UI maps each to a button)."""


@dataclass(frozen=True)
class Fix:
    """The one change that would let the computer contribute now."""

    action: FixAction
    label: str
    """Button text: ``"Resume now"``, ``"Contribute on battery too"``."""


@dataclass(frozen=True)
class Signals:
    """What the computer reports at one moment; None where it cannot tell."""

    idle_seconds: float | None = None
    """Seconds since the last keyboard or mouse input; None when it cannot be read."""
    idle_problem: str | None = None
    """Why the idle time cannot be read (a sentence), when it cannot."""
    on_battery: bool = False
    """Running on battery power (False for a desktop, or when unknown)."""
    battery_percent: float | None = None
    """The battery's charge, 0–100, when there is a battery."""
    other_cpu_percent: float | None = None
    """Other programs' share of all cores (the pool's containers excluded), 0–100."""


@dataclass(frozen=True)
class Decision:
    """Whether to contribute now, and why, in words a volunteer understands."""

    active: bool
    """Run the pool's containers now."""
    gpu: bool
    """The graphics card may be used (only ever True when ``active``)."""
    rule: Rule
    """The rule that decided (``"contributing"`` when none says no)."""
    headline: str
    """Short: ``"Waiting: you are using the computer"``."""
    reason: str
    """A sentence that explains it."""
    until: datetime | None = None
    """When the decision changes by time alone (a snooze or schedule ends); None when it
    depends on what happens (input, battery, load) or lasts until the volunteer acts."""
    fix: Fix | None = None
    """The one change that would let the computer contribute now."""
    sudden: bool = True
    """Act on it at once when it stops contribution. False for readings that flutter
    (other programs' load), which must hold for a while first."""
    gpu_sudden: bool | None = None
    """Like ``sudden``, for the graphics card alone; None: the same as ``sudden``."""


def _minutes(seconds: float) -> str:
    if seconds < 90:
        whole = max(1, round(seconds))
        return f"{whole} second" if whole == 1 else f"{whole} seconds"
    minutes = round(seconds / 60)
    return f"{minutes} minute" if minutes == 1 else f"{minutes} minutes"


class ContributionPolicy:
    """The volunteer's rules; :meth:`decide` applies them. Immutable and pure."""

    def __init__(self, rules: ContributionRules, *, zone: tzinfo | None = None) -> None:
        """Apply ``rules``; weekly windows are read in ``zone`` (None: the computer's own)."""
        self._rules = rules
        self._zone = zone

    @property
    def rules(self) -> ContributionRules:
        """The rules applied."""
        return self._rules

    def decide(
        self,
        now: datetime,
        signals: Signals,
        *,
        paused: bool = False,
        snoozed_until: datetime | None = None,
        gpu_enabled: bool = True,
    ) -> Decision:
        """Decide whether to contribute at ``now``.

        Args:
            now: The current instant (aware).
            signals: What the computer reports.
            paused: The volunteer switched contribution off (until switched on).
            snoozed_until: The end of a snooze, if one was set (it may be over).
            gpu_enabled: The volunteer lets the pool use the graphics card at all.
        """
        if now.tzinfo is None:
            raise ValueError("decide needs an aware time")
        rules = self._rules
        if paused:
            return Decision(
                False,
                False,
                "paused",
                "Paused by you",
                "You paused contribution. Nothing runs for the pool until you resume.",
                fix=Fix("resume", "Resume"),
            )
        if snoozed_until is not None and snoozed_until > now:
            at = clock_time(snoozed_until, now, self._zone)
            return Decision(
                False,
                False,
                "snoozed",
                f"Snoozed until {at}",
                f"You snoozed contribution; it starts again by itself at {at}.",
                until=snoozed_until,
                fix=Fix("resume", "Resume now"),
            )
        schedule_ends: datetime | None = None
        if rules.schedule_only:
            change = next_change(rules, now, self._zone)
            if not rules.in_window(wall_time(now, self._zone)):
                words = (
                    f"until {clock_time(change, now, self._zone)}"
                    if change is not None
                    else "(no time window is ever open)"
                )
                return Decision(
                    False,
                    False,
                    "schedule",
                    f"Paused {words} by your schedule",
                    "Your schedule keeps this computer to itself now; "
                    + (
                        f"contribution starts by itself at {clock_time(change, now, self._zone)}."
                        if change is not None
                        else "add a time window in Schedule."
                    ),
                    until=change,
                    fix=Fix("open_schedule", "Change the schedule"),
                )
            schedule_ends = change
        battery = self._battery(signals)
        if battery is not None:
            return battery
        idle = signals.idle_seconds
        threshold = rules.idle_seconds
        idle_enough = idle is not None and idle >= threshold
        if rules.idle_only and not idle_enough:
            if idle is None:
                return Decision(
                    False,
                    False,
                    "idle_unknown",
                    "Waiting: cannot tell when you are away",
                    "You chose to contribute only while the computer is left alone, but "
                    + (signals.idle_problem or "this computer cannot say when it was last used")
                    + ". Choose a schedule instead, or contribute while you use it.",
                    fix=Fix("stop_idle_only", "Contribute while I use it"),
                )
            return Decision(
                False,
                False,
                "in_use",
                "Waiting: you are using the computer",
                f"Contribution starts after {_minutes(threshold)} without keyboard or mouse input.",
                fix=Fix("stop_idle_only", "Contribute while I use it"),
            )
        busy = signals.other_cpu_percent
        if rules.busy_pause and busy is not None and busy > rules.busy_percent:
            # Load flutters, so a stop for it must hold; but graphics work kept only for
            # while nobody is here stops at once when someone is.
            return Decision(
                False,
                False,
                "busy",
                "Waiting: your programs are busy",
                f"Your own programs are using {busy:.0f}% of the processor (more than "
                f"{rules.busy_percent}%), so the pool waits until they are done.",
                fix=Fix("stop_busy_pause", "Contribute even when busy"),
                sudden=False,
                gpu_sudden=rules.gpu_only_when_idle and gpu_enabled and not idle_enough,
            )
        gpu = gpu_enabled and (not rules.gpu_only_when_idle or idle_enough)
        if schedule_ends is not None:
            reason = f"Your schedule allows it until {clock_time(schedule_ends, now, self._zone)}."
        elif rules.idle_only:
            reason = "Nobody is using this computer, so it is helping the pool."
        else:
            reason = "This computer is helping the pool."
        if gpu_enabled and not gpu:
            reason += " The graphics card is left alone while you use the computer."
        return Decision(True, gpu, "contributing", "Contributing", reason, until=schedule_ends)

    def _battery(self, signals: Signals) -> Decision | None:
        rules = self._rules
        if not signals.on_battery or rules.battery == "allow":
            return None
        if rules.battery == "never":
            return Decision(
                False,
                False,
                "battery",
                "Paused: on battery",
                "This computer is running on battery, so the pool waits until it is plugged in.",
                fix=Fix("allow_battery", "Contribute on battery too"),
            )
        percent = signals.battery_percent
        if percent is None or percent < rules.battery_min_percent:
            charge = f"at {percent:.0f}%" if percent is not None else "at an unknown charge"
            return Decision(
                False,
                False,
                "battery",
                "Paused: battery low",
                f"The battery is {charge}, below the {rules.battery_min_percent}% you chose, "
                "so the pool waits until it is plugged in or charged.",
                fix=Fix("allow_battery", "Contribute on battery too"),
            )
        return None
