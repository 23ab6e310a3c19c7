"""When the volunteer lets the pool use the computer: the rules, and weekly windows in wall time.

A weekly window is read the way people read a timetable: "weekdays 18:00–08:00" means from
18:00 on each weekday until 08:00 the next morning, in the computer's local wall-clock time.
Membership is decided on the wall clock, so a window keeps its hours across daylight-saving
changes; :func:`next_change` finds the exact instant the answer next changes, including on
the days a clock jumps forward or back.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
"""Short names of the weekdays, Monday first (``date.weekday()`` order)."""

Weekday = Annotated[int, Field(ge=0, le=6)]
"""0 is Monday, 6 is Sunday."""

BatteryRule = Literal["never", "above", "allow"]
"""On battery: never contribute, only above a charge, or regardless."""

WEEKDAYS = (0, 1, 2, 3, 4)
WEEKEND = (5, 6)


class WeeklyWindow(BaseModel):
    """Hours on some days of the week, in local wall-clock time.

    ``end`` before ``start`` crosses midnight (it ends on the next day); ``end`` equal to
    ``start`` is the whole 24 hours.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    days: tuple[Weekday, ...]
    """The days on which the window starts, Monday = 0."""
    start: time
    """When it starts (minutes; seconds are dropped)."""
    end: time
    """When it ends; at or before ``start`` means on the next day."""

    @field_validator("days")
    @classmethod
    def _days(cls, days: tuple[int, ...]) -> tuple[int, ...]:
        if not days:
            raise ValueError("a window needs at least one day")
        return tuple(sorted(set(days)))

    @field_validator("start", "end")
    @classmethod
    def _minutes(cls, value: time) -> time:
        if value.tzinfo is not None:
            raise ValueError("window times are local wall-clock times, without a time zone")
        return value.replace(second=0, microsecond=0)

    @property
    def crosses_midnight(self) -> bool:
        """Whether it ends on the day after it starts (including the 24-hour window)."""
        return self.end <= self.start

    def spans(self, first: date, last: date) -> Iterator[tuple[datetime, datetime]]:
        """The window's spans (naive wall times) that start on days ``first`` … ``last``."""
        day = first
        while day <= last:
            if day.weekday() in self.days:
                begin = datetime.combine(day, self.start)
                finish = datetime.combine(day, self.end)
                if self.crosses_midnight:
                    finish += timedelta(days=1)
                yield begin, finish
            day += timedelta(days=1)

    def contains(self, wall: datetime) -> bool:
        """Whether the naive wall-clock time ``wall`` is inside the window."""
        day = wall.date()
        return any(
            begin <= wall < finish for begin, finish in self.spans(day - timedelta(days=1), day)
        )

    def describe(self) -> str:
        """``"Mon–Fri 18:00–08:00"``, ``"Sat, Sun all day"``."""
        days = describe_days(self.days)
        if self.start == self.end:
            if self.start == time(0):
                return f"{days} all day"
            return f"{days} from {self.start:%H:%M}, for 24 hours"
        suffix = " (next day)" if self.crosses_midnight and self.end != time(0) else ""
        return f"{days} {self.start:%H:%M}–{self.end:%H:%M}{suffix}"


def describe_days(days: Sequence[int]) -> str:
    """``"Mon–Fri"``, ``"Sat, Sun"``, ``"every day"``, ``"Mon, Wed–Fri"``."""
    chosen = sorted(set(days))
    if chosen == list(range(7)):
        return "every day"
    runs: list[list[int]] = []
    for day in chosen:
        if runs and runs[-1][-1] == day - 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    parts = []
    for run in runs:
        if len(run) >= 3:
            parts.append(f"{DAY_NAMES[run[0]]}–{DAY_NAMES[run[-1]]}")
        else:
            parts.extend(DAY_NAMES[day] for day in run)
    return ", ".join(parts)


DEFAULT_WINDOWS = (
    WeeklyWindow(days=WEEKDAYS, start=time(18), end=time(8)),
    WeeklyWindow(days=WEEKEND, start=time(0), end=time(0)),
)
"""After hours: weekday evenings and nights, and all weekend."""


class ContributionRules(BaseModel):
    """The volunteer's rules for when the pool may use this computer. Combine freely."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    idle_only: bool = False
    """Only while nobody has used the keyboard or mouse for ``idle_minutes``."""
    idle_minutes: Annotated[float, Field(gt=0, le=24 * 60)] = 5.0
    """How long the computer must be left alone first (fractions are for tests)."""
    schedule_only: bool = False
    """Only inside the weekly ``windows``."""
    windows: tuple[WeeklyWindow, ...] = DEFAULT_WINDOWS
    """The weekly windows (their union counts), kept even while ``schedule_only`` is off."""
    battery: BatteryRule = "never"
    """What to do on battery power."""
    battery_min_percent: Annotated[int, Field(ge=5, le=100)] = 50
    """For ``battery == "above"``: the charge below which contribution stops."""
    busy_pause: bool = True
    """Wait while the volunteer's own programs keep the processor busy."""
    busy_percent: Annotated[int, Field(ge=10, le=100)] = 50
    """Other programs' share of all cores above which contribution waits."""
    gpu_only_when_idle: bool = False
    """Use the graphics card only while the computer is left alone (games, video calls)."""

    @model_validator(mode="after")
    def _windows_when_scheduled(self) -> ContributionRules:
        if self.schedule_only and not self.windows:
            raise ValueError("an after-hours schedule needs at least one time window")
        return self

    @property
    def idle_seconds(self) -> float:
        """``idle_minutes`` in seconds."""
        return self.idle_minutes * 60.0

    def in_window(self, wall: datetime) -> bool:
        """Whether the naive local wall time ``wall`` is inside one of the windows."""
        return any(window.contains(wall) for window in self.windows)


# -- wall time and instants ------------------------------------------------------------------


def wall_time(moment: datetime, zone: tzinfo | None) -> datetime:
    """The naive local wall-clock time of the aware ``moment`` (``zone`` None: the system's)."""
    local = moment.astimezone(zone) if zone is not None else moment.astimezone()
    return local.replace(tzinfo=None, fold=0)


def clock_time(moment: datetime, now: datetime, zone: tzinfo | None = None) -> str:
    """When ``moment`` is, in words, in ``zone`` (None: the computer's own).

    ``"18:00"`` today, ``"tomorrow 08:00"``, ``"Sat 08:00"`` within a week, else
    ``"Sat 7 Mar 08:00"``.
    """
    local = moment.astimezone(zone) if zone is not None else moment.astimezone()
    today = wall_time(now, zone).date()
    if local.date() == today:
        return local.strftime("%H:%M")
    if local.date() == today + timedelta(days=1):
        return "tomorrow " + local.strftime("%H:%M")
    if local.date() < today + timedelta(days=7):
        return local.strftime("%a %H:%M")
    return f"{local:%a} {local.day} {local:%b %H:%M}"


def _instants(wall: datetime, zone: tzinfo | None) -> set[datetime]:
    """Both readings of a naive wall time as instants (they differ in a fold or a gap).

    Returned in UTC: two aware datetimes sharing one tzinfo compare (and hash) by their wall
    fields alone, ignoring ``fold``, so in the zone's own tzinfo the set would keep only one
    reading of a repeated hour, and sorting would not follow the instants in a gap.
    """
    if zone is None:
        # The system zone: mktime resolves the wall time, honouring fold.
        return {wall.replace(fold=fold).astimezone().astimezone(UTC) for fold in (0, 1)}
    return {wall.replace(tzinfo=zone, fold=fold).astimezone(UTC) for fold in (0, 1)}


def _offset(moment: datetime, zone: tzinfo | None) -> timedelta | None:
    local = moment.astimezone(zone) if zone is not None else moment.astimezone()
    return local.utcoffset()


def offset_changes(start: datetime, end: datetime, zone: tzinfo | None) -> list[datetime]:
    """The instants in (``start``, ``end``] where the zone's UTC offset changes, to the second.

    There is no portable way to list a zone's transitions, so this samples every hour (no
    zone changes twice within an hour) and bisects each change to the whole second (zones
    change offset on whole seconds).
    """
    changes: list[datetime] = []
    low_bound = math.floor(start.timestamp())
    end_ts = math.ceil(end.timestamp())
    before, before_offset = low_bound, _offset(_utc(low_bound), zone)
    while before < end_ts:
        after = min(before + 3600, end_ts)
        after_offset = _offset(_utc(after), zone)
        if after_offset != before_offset:
            low, high = before, after
            while high - low > 1:
                middle = (low + high) // 2
                if _offset(_utc(middle), zone) == before_offset:
                    low = middle
                else:
                    high = middle
            changes.append(_utc(high))
        before, before_offset = after, after_offset
    return [change for change in changes if start < change <= end]


def _utc(timestamp: int) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def boundaries(windows: Iterable[WeeklyWindow], first: date, last: date) -> set[datetime]:
    """The naive wall times where any window starts or ends, for spans starting in the range."""
    found: set[datetime] = set()
    for window in windows:
        for begin, finish in window.spans(first, last):
            found.add(begin)
            found.add(finish)
    return found


def next_change(
    rules: ContributionRules, now: datetime, zone: tzinfo | None, horizon_days: int = 8
) -> datetime | None:
    """The first instant after ``now`` at which :meth:`ContributionRules.in_window` changes.

    Between two consecutive candidates (a window boundary read either way across a fold or
    gap, or an offset change, where the wall clock jumps) the wall clock moves forward
    continuously, so the answer cannot change there; the first candidate whose answer
    differs from now's is the change. None when it never changes (no windows, or always in).

    Args:
        rules: The rules whose windows count.
        now: The current instant (aware).
        zone: The local time zone; None for the system's.
        horizon_days: How far to look.
    """
    if not rules.windows:
        return None
    inside = rules.in_window(wall_time(now, zone))
    today = wall_time(now, zone).date()
    end = now + timedelta(days=horizon_days)
    candidates: set[datetime] = set()
    for wall in boundaries(
        rules.windows, today - timedelta(days=1), today + timedelta(days=horizon_days)
    ):
        candidates.update(_instants(wall, zone))
    candidates.update(offset_changes(now, end, zone))
    for candidate in sorted(c for c in candidates if now < c <= end):
        if rules.in_window(wall_time(candidate, zone)) != inside:
            return candidate
    return None
