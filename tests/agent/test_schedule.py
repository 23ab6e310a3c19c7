"""Weekly windows in wall time, and the exact instant the schedule's answer next changes.

``contains`` is checked against an independent minute-of-week reference; ``next_change`` is
checked by sampling the wall clock between ``now`` and the instant it returns, in zones with
one-hour and half-hour daylight-saving shifts, and on the very days the clocks change.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from desktop_app.agent.schedule import (
    DEFAULT_WINDOWS,
    ContributionRules,
    WeeklyWindow,
    describe_days,
    next_change,
    offset_changes,
    wall_time,
)

LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
UTC_ZONE = ZoneInfo("UTC")
ZONES = [LONDON, NEW_YORK, LORD_HOWE, UTC_ZONE]

WEEK_SECONDS = 7 * 86_400

# 2026's offset changes (UTC), used only to aim generated instants near them.
TRANSITIONS = {
    "Europe/London": [datetime(2026, 3, 29, 1, tzinfo=UTC), datetime(2026, 10, 25, 1, tzinfo=UTC)],
    "America/New_York": [
        datetime(2026, 3, 8, 7, tzinfo=UTC),
        datetime(2026, 11, 1, 6, tzinfo=UTC),
    ],
    "Australia/Lord_Howe": [
        datetime(2026, 4, 4, 15, tzinfo=UTC),
        datetime(2026, 10, 3, 15, 30, tzinfo=UTC),
    ],
    "UTC": [datetime(2026, 6, 1, tzinfo=UTC)],
}


def window(days: tuple[int, ...] | range, start: str, end: str) -> WeeklyWindow:
    return WeeklyWindow(
        days=tuple(days), start=time.fromisoformat(start), end=time.fromisoformat(end)
    )


def scheduled(*windows: WeeklyWindow) -> ContributionRules:
    return ContributionRules(schedule_only=True, windows=windows)


# -- strategies ------------------------------------------------------------------------------

# Times of day, with the hours around the clock changes (01:00–03:00) drawn often.
times_of_day = st.one_of(
    st.builds(
        time,
        st.integers(0, 23),
        st.sampled_from([0, 15, 30, 45]),
        st.integers(0, 59),
    ),
    st.builds(time, st.integers(0, 3), st.integers(0, 59)),
    st.sampled_from([time(0), time(1), time(1, 30), time(2), time(2, 30), time(3)]),
)
day_sets = st.sets(st.integers(0, 6), min_size=1, max_size=7).map(lambda s: tuple(sorted(s)))
windows_st = st.builds(WeeklyWindow, days=day_sets, start=times_of_day, end=times_of_day)
rules_st = st.builds(
    ContributionRules,
    schedule_only=st.just(True),
    windows=st.lists(windows_st, min_size=1, max_size=3).map(tuple),
)


# -- validation and words --------------------------------------------------------------------


def test_window_needs_a_day() -> None:
    with pytest.raises(ValidationError, match="at least one day"):
        WeeklyWindow(days=(), start=time(9), end=time(17))


@pytest.mark.parametrize("field", ["start", "end"])
def test_window_refuses_aware_times(field: str) -> None:
    times = {"start": time(9), "end": time(17)}
    times[field] = times[field].replace(tzinfo=UTC)
    with pytest.raises(ValidationError, match="without a time zone"):
        WeeklyWindow(days=(0,), **times)


def test_window_refuses_days_out_of_range() -> None:
    with pytest.raises(ValidationError):
        WeeklyWindow(days=(7,), start=time(9), end=time(17))
    with pytest.raises(ValidationError):
        WeeklyWindow(days=(-1,), start=time(9), end=time(17))


def test_window_drops_seconds_and_sorts_days() -> None:
    w = WeeklyWindow(days=(4, 0, 4, 2, 0), start=time(9, 15, 42, 7), end=time(17, 0, 59))
    assert w.days == (0, 2, 4)
    assert w.start == time(9, 15)
    assert w.end == time(17)


def test_rules_schedule_needs_a_window() -> None:
    with pytest.raises(ValidationError, match="at least one time window"):
        ContributionRules(schedule_only=True, windows=())
    # Without the schedule, an empty list is kept.
    assert ContributionRules(windows=()).windows == ()


@pytest.mark.parametrize(
    ("w", "words"),
    [
        (window(range(5), "18:00", "08:00"), "Mon–Fri 18:00–08:00 (next day)"),
        (window((5, 6), "00:00", "00:00"), "Sat, Sun all day"),
        (window(range(7), "09:00", "17:30"), "every day 09:00–17:30"),
        (window((0, 2, 3, 4), "22:00", "00:00"), "Mon, Wed–Fri 22:00–00:00"),
        (window((1,), "07:30", "07:30"), "Tue from 07:30, for 24 hours"),
    ],
)
def test_describe(w: WeeklyWindow, words: str) -> None:
    assert w.describe() == words


@pytest.mark.parametrize(
    ("days", "words"),
    [
        ((0, 1, 2, 3, 4), "Mon–Fri"),
        ((5, 6), "Sat, Sun"),
        (tuple(range(7)), "every day"),
        ((0, 2, 3, 4), "Mon, Wed–Fri"),
        ((4, 2, 3, 0, 2), "Mon, Wed–Fri"),
        ((6,), "Sun"),
        ((0, 1, 3, 4, 5), "Mon, Tue, Thu–Sat"),
    ],
)
def test_describe_days(days: tuple[int, ...], words: str) -> None:
    assert describe_days(days) == words


def test_default_windows_read_as_after_hours() -> None:
    assert [w.describe() for w in DEFAULT_WINDOWS] == [
        "Mon–Fri 18:00–08:00 (next day)",
        "Sat, Sun all day",
    ]


# -- membership ------------------------------------------------------------------------------

# 2026-03-06 is a Friday.
FRI = datetime(2026, 3, 6)


def test_weekday_evenings_worked_example() -> None:
    w = window(range(5), "18:00", "08:00")
    assert FRI.weekday() == 4
    assert w.contains(FRI.replace(hour=23))
    assert w.contains(FRI + timedelta(days=1, hours=7, minutes=59))  # Sat 07:59
    assert not w.contains(FRI + timedelta(days=1, hours=8))  # Sat 08:00
    # Mon 07:00: Sunday started no window.
    assert not w.contains(FRI + timedelta(days=3, hours=7))
    assert w.contains(FRI + timedelta(days=3, hours=18))  # Mon 18:00
    assert not w.contains(FRI + timedelta(days=3, hours=17, minutes=59))


def test_midnight_crossing() -> None:
    w = window((2,), "22:30", "01:15")  # Wednesday night
    wed = datetime(2026, 3, 4)
    assert wed.weekday() == 2
    assert not w.contains(wed.replace(hour=22, minute=29, second=59))
    assert w.contains(wed.replace(hour=22, minute=30))
    assert w.contains(wed.replace(hour=23, minute=59, second=59))
    assert w.contains(wed + timedelta(days=1))  # Thu 00:00
    assert w.contains(wed + timedelta(days=1, hours=1, minutes=14, seconds=59))
    assert not w.contains(wed + timedelta(days=1, hours=1, minutes=15))
    assert not w.contains(wed.replace(hour=0, minute=30))  # Tuesday started none


def test_ending_at_midnight() -> None:
    w = window((2,), "20:00", "00:00")
    wed = datetime(2026, 3, 4)
    assert w.contains(wed.replace(hour=23, minute=59))
    assert not w.contains(wed + timedelta(days=1))


def test_24_hour_window() -> None:
    w = window((6,), "12:00", "12:00")  # Sunday noon to Monday noon
    sun = datetime(2026, 3, 8)
    assert sun.weekday() == 6
    assert not w.contains(sun.replace(hour=11, minute=59))
    assert w.contains(sun.replace(hour=12))
    assert w.contains(sun + timedelta(hours=23, minutes=59))
    assert w.contains(sun + timedelta(days=1, hours=11, minutes=59, seconds=59))
    assert not w.contains(sun + timedelta(days=1, hours=12))
    whole = window((6,), "00:00", "00:00")
    assert whole.contains(sun)
    assert whole.contains(sun.replace(hour=23, minute=59, second=59))
    assert not whole.contains(sun + timedelta(days=1))
    assert not whole.contains(sun - timedelta(microseconds=1))


def reference_contains(w: WeeklyWindow, wall: datetime) -> bool:
    """Seconds of the week, Monday 00:00 = 0; each day's span is an interval on a circle."""
    position = (
        wall.weekday() * 86_400
        + wall.hour * 3600
        + wall.minute * 60
        + wall.second
        + wall.microsecond / 1e6
    )
    start_minute = w.start.hour * 60 + w.start.minute
    end_minute = w.end.hour * 60 + w.end.minute
    length = (end_minute - start_minute) % 1440 or 1440
    for day in w.days:
        begin = day * 86_400 + start_minute * 60
        if (position - begin) % WEEK_SECONDS < length * 60:
            return True
    return False


walls = st.datetimes(min_value=datetime(2000, 1, 3), max_value=datetime(2100, 1, 1))


@settings(max_examples=300)
@given(w=windows_st, wall=walls)
def test_contains_matches_reference(w: WeeklyWindow, wall: datetime) -> None:
    assert w.contains(wall) == reference_contains(w, wall)


@settings(max_examples=200)
@given(w=windows_st, day=st.dates(min_value=date(2001, 1, 1)), data=st.data())
def test_contains_at_the_edges_matches_reference(
    w: WeeklyWindow, day: date, data: st.DataObject
) -> None:
    # Exactly at, and just around, the start and the end.
    edge = data.draw(st.sampled_from([w.start, w.end]))
    base = datetime.combine(day, edge)
    for wall in (base - timedelta(microseconds=1), base, base + timedelta(microseconds=1)):
        assert w.contains(wall) == reference_contains(w, wall)


@settings(max_examples=200)
@given(rules=rules_st, wall=walls)
def test_in_window_is_the_union(rules: ContributionRules, wall: datetime) -> None:
    assert rules.in_window(wall) == any(reference_contains(w, wall) for w in rules.windows)


# -- offset changes --------------------------------------------------------------------------


def test_offset_changes_london_2026() -> None:
    changes = offset_changes(
        datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC), LONDON
    )
    assert changes == [
        datetime(2026, 3, 29, 1, tzinfo=UTC),
        datetime(2026, 10, 25, 1, tzinfo=UTC),
    ]


def test_offset_changes_lord_howe_half_hour() -> None:
    changes = offset_changes(
        datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC), LORD_HOWE
    )
    assert changes == [
        datetime(2026, 4, 4, 15, tzinfo=UTC),
        datetime(2026, 10, 3, 15, 30, tzinfo=UTC),
    ]
    for change in changes:
        before = (change - timedelta(seconds=1)).astimezone(LORD_HOWE).utcoffset()
        after = change.astimezone(LORD_HOWE).utcoffset()
        assert before is not None and after is not None
        assert abs(after - before) == timedelta(minutes=30)


def test_offset_changes_interval_is_open_closed() -> None:
    change = datetime(2026, 3, 29, 1, tzinfo=UTC)
    assert offset_changes(change, change + timedelta(hours=5), LONDON) == []
    assert offset_changes(change - timedelta(seconds=1), change, LONDON) == [change]


def test_offset_changes_none_in_utc() -> None:
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)
    assert offset_changes(start, end, UTC_ZONE) == []
    assert offset_changes(start, end, UTC) == []


# -- next_change: worked examples on the days the clocks change -------------------------------


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def assert_change(
    rules: ContributionRules, now: datetime, zone: ZoneInfo, expected: datetime
) -> None:
    change = next_change(rules, now, zone)
    assert change is not None
    assert change == expected, (change.astimezone(UTC), expected)
    before = rules.in_window(wall_time(now, zone))
    assert rules.in_window(wall_time(change - timedelta(seconds=1), zone)) == before
    assert rules.in_window(wall_time(change, zone)) != before


def test_london_spring_forward_start_in_skipped_hour() -> None:
    # 2026-03-29 (Sunday): 01:00 GMT becomes 02:00 BST at 01:00 UTC; 01:30 never happens.
    rules = scheduled(window((6,), "01:30", "06:00"))
    now = utc(2026, 3, 29, 0, 30)  # 00:30 GMT, before the window
    assert not rules.in_window(wall_time(now, LONDON))
    assert_change(rules, now, LONDON, utc(2026, 3, 29, 1))  # the wall clock jumps in
    # Then it ends at 06:00 BST.
    assert_change(rules, utc(2026, 3, 29, 1), LONDON, utc(2026, 3, 29, 5))


def test_london_spring_forward_end_in_skipped_hour() -> None:
    rules = scheduled(window((5,), "22:00", "01:30"))  # Saturday night
    now = utc(2026, 3, 29, 0, 30)
    assert rules.in_window(wall_time(now, LONDON))
    assert_change(rules, now, LONDON, utc(2026, 3, 29, 1))


def test_london_fall_back_end_in_repeated_hour() -> None:
    # 2026-10-25 (Sunday): 02:00 BST becomes 01:00 GMT at 01:00 UTC; 01:00–02:00 twice.
    rules = scheduled(window((5,), "20:00", "01:30"))  # Saturday night
    assert_change(rules, utc(2026, 10, 25, 0), LONDON, utc(2026, 10, 25, 0, 30))  # 01:30 BST
    # 01:45 BST is outside; the clock goes back to 01:00 GMT, inside again.
    assert_change(rules, utc(2026, 10, 25, 0, 45), LONDON, utc(2026, 10, 25, 1))
    # 01:10 GMT, inside: the second 01:30 ends it again.
    assert_change(rules, utc(2026, 10, 25, 1, 10), LONDON, utc(2026, 10, 25, 1, 30))


def test_london_fall_back_start_in_repeated_hour() -> None:
    rules = scheduled(window((6,), "01:30", "05:00"))  # Sunday
    assert_change(rules, utc(2026, 10, 24, 23), LONDON, utc(2026, 10, 25, 0, 30))
    # Inside from 01:30 BST; at 01:00 UTC the clock reads 01:00 GMT, before the window.
    assert_change(rules, utc(2026, 10, 25, 0, 40), LONDON, utc(2026, 10, 25, 1))
    # And the second 01:30 opens it again.
    assert_change(rules, utc(2026, 10, 25, 1, 5), LONDON, utc(2026, 10, 25, 1, 30))
    assert_change(rules, utc(2026, 10, 25, 1, 30), LONDON, utc(2026, 10, 25, 5))


def test_new_york_spring_forward_start_in_skipped_hour() -> None:
    # 2026-03-08 (Sunday): 02:00 EST becomes 03:00 EDT at 07:00 UTC.
    rules = scheduled(window((6,), "02:30", "09:00"))
    now = utc(2026, 3, 8, 6, 45)  # 01:45 EST
    assert_change(rules, now, NEW_YORK, utc(2026, 3, 8, 7))
    assert_change(rules, utc(2026, 3, 8, 7), NEW_YORK, utc(2026, 3, 8, 13))  # 09:00 EDT


def test_new_york_spring_forward_end_in_skipped_hour() -> None:
    rules = scheduled(window((5,), "23:00", "02:15"))  # Saturday night
    assert_change(rules, utc(2026, 3, 8, 5), NEW_YORK, utc(2026, 3, 8, 7))


def test_new_york_fall_back_end_in_repeated_hour() -> None:
    # 2026-11-01 (Sunday): 02:00 EDT becomes 01:00 EST at 06:00 UTC.
    rules = scheduled(window(range(7), "18:00", "01:30"))
    assert_change(rules, utc(2026, 11, 1, 5), NEW_YORK, utc(2026, 11, 1, 5, 30))
    assert_change(rules, utc(2026, 11, 1, 5, 45), NEW_YORK, utc(2026, 11, 1, 6))
    assert_change(rules, utc(2026, 11, 1, 6, 15), NEW_YORK, utc(2026, 11, 1, 6, 30))


def test_new_york_fall_back_start_in_repeated_hour() -> None:
    rules = scheduled(window((6,), "01:20", "04:00"))
    assert_change(rules, utc(2026, 11, 1, 5), NEW_YORK, utc(2026, 11, 1, 5, 20))
    assert_change(rules, utc(2026, 11, 1, 5, 30), NEW_YORK, utc(2026, 11, 1, 6))
    assert_change(rules, utc(2026, 11, 1, 6), NEW_YORK, utc(2026, 11, 1, 6, 20))


def test_lord_howe_half_hour_gap() -> None:
    # 2026-10-04 (Sunday) 02:00 LHST becomes 02:30 LHDT at 15:30 UTC on the 3rd.
    rules = scheduled(window((6,), "02:10", "05:00"))
    assert_change(rules, utc(2026, 10, 3, 15), LORD_HOWE, utc(2026, 10, 3, 15, 30))


def test_no_change_when_always_or_never_inside() -> None:
    always = scheduled(window(range(7), "00:00", "00:00"))
    assert next_change(always, utc(2026, 10, 24, 12), LONDON) is None
    assert next_change(ContributionRules(windows=()), utc(2026, 10, 24, 12), LONDON) is None


def test_change_beyond_the_horizon_is_none() -> None:
    # Mondays 09:00–10:00 only: from Monday 10:30 the next change is 6 days 22.5 hours away.
    rules = scheduled(window((0,), "09:00", "10:00"))
    monday = utc(2026, 6, 1, 10, 30)
    assert monday.weekday() == 0
    assert next_change(rules, monday, UTC_ZONE) == utc(2026, 6, 8, 9)
    assert next_change(rules, monday, UTC_ZONE, horizon_days=6) is None


# -- next_change: properties -----------------------------------------------------------------


@st.composite
def zone_and_now(draw: st.DrawFn) -> tuple[ZoneInfo, datetime]:
    zone = draw(st.sampled_from(ZONES))
    near = draw(st.booleans())
    if near:
        transition = draw(st.sampled_from(TRANSITIONS[zone.key]))
        seconds = draw(st.integers(-3 * 86_400, 86_400))
        now = transition + timedelta(seconds=seconds)
    else:
        start = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())
        end = int(datetime(2027, 1, 1, tzinfo=UTC).timestamp())
        now = datetime.fromtimestamp(draw(st.integers(start, end - 1)), UTC)
    return zone, now


@settings(max_examples=400, deadline=None)
@given(rules=rules_st, zone_now=zone_and_now())
def test_next_change_is_the_first_change(
    rules: ContributionRules, zone_now: tuple[ZoneInfo, datetime]
) -> None:
    zone, now = zone_now
    inside = rules.in_window(wall_time(now, zone))
    change = next_change(rules, now, zone)
    if change is None:
        step = timedelta(minutes=10)
        moment = now
        while moment <= now + timedelta(days=8):
            assert rules.in_window(wall_time(moment, zone)) == inside, moment
            moment += step
        return
    assert change.tzinfo is not None
    assert now < change <= now + timedelta(days=8)
    assert rules.in_window(wall_time(change, zone)) != inside
    span = change - now
    samples = [now + span * i / 50 for i in range(50)]
    samples.append(change - timedelta(seconds=1))
    for moment in samples:
        if now <= moment < change:
            assert rules.in_window(wall_time(moment, zone)) == inside, (
                moment,
                change.astimezone(UTC),
            )


@settings(max_examples=100, deadline=None)
@given(rules=rules_st, zone_now=zone_and_now())
def test_next_change_chain_stays_in_step(
    rules: ContributionRules, zone_now: tuple[ZoneInfo, datetime]
) -> None:
    # Following the changes one after the other, each flips the answer.
    zone, now = zone_now
    inside = rules.in_window(wall_time(now, zone))
    for _ in range(6):
        change = next_change(rules, now, zone)
        if change is None:
            return
        assert change > now
        flipped = rules.in_window(wall_time(change, zone))
        assert flipped != inside
        now, inside = change, flipped


def test_system_zone() -> None:
    rules = ContributionRules(schedule_only=True)
    now = datetime.now(UTC)
    wall = wall_time(now, None)
    assert wall.tzinfo is None
    assert wall == now.astimezone().replace(tzinfo=None)
    inside = rules.in_window(wall)
    change = next_change(rules, now, None)
    assert change is not None  # the default windows open and close every week
    assert change > now
    assert rules.in_window(wall_time(change, None)) != inside
    assert rules.in_window(wall_time(change - timedelta(seconds=1), None)) == inside
    changes = offset_changes(now, now + timedelta(days=366), None)
    assert all(now < c <= now + timedelta(days=366) for c in changes)
    assert changes == sorted(changes)
