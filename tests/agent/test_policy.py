"""The pure contribution decision: each rule's words, and properties over generated inputs.

The rule order is pause > snooze > schedule > battery > busy > idle only; an independent
reference of that order is checked against :meth:`ContributionPolicy.decide` for every
combination of modes hypothesis draws.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from desktop_app.agent.policy import ContributionPolicy, Decision, Signals
from desktop_app.agent.schedule import ContributionRules, WeeklyWindow, next_change, wall_time

LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
UTC_ZONE = ZoneInfo("UTC")

AFTER_HOURS = WeeklyWindow(days=(0, 1, 2, 3, 4), start=time(18), end=time(8))
# 2026-03-04 is a Wednesday.
WED_NOON = datetime(2026, 3, 4, 12, tzinfo=UTC)
PLUGGED_IN_IDLE = Signals(idle_seconds=3600.0)


def decide(
    rules: ContributionRules,
    signals: Signals = PLUGGED_IN_IDLE,
    now: datetime = WED_NOON,
    zone: tzinfo | None = UTC_ZONE,
    *,
    paused: bool = False,
    snoozed_until: datetime | None = None,
    gpu_enabled: bool = True,
) -> Decision:
    return ContributionPolicy(rules, zone=zone).decide(
        now, signals, paused=paused, snoozed_until=snoozed_until, gpu_enabled=gpu_enabled
    )


# -- each rule, worked examples --------------------------------------------------------------


def test_contributing_by_default() -> None:
    d = decide(ContributionRules())
    assert (d.active, d.gpu, d.rule) == (True, True, "contributing")
    assert d.headline == "Contributing"
    assert d.reason == "This computer is helping the pool."
    assert d.until is None
    assert d.fix is None


def test_paused() -> None:
    d = decide(ContributionRules(), paused=True, snoozed_until=WED_NOON + timedelta(hours=1))
    assert (d.active, d.gpu, d.rule) == (False, False, "paused")
    assert d.headline == "Paused by you"
    assert "You paused contribution" in d.reason
    assert d.until is None
    assert d.fix is not None and d.fix.action == "resume"
    assert d.sudden


def test_snoozed() -> None:
    end = WED_NOON + timedelta(minutes=30)
    d = decide(ContributionRules(), snoozed_until=end)
    assert (d.active, d.gpu, d.rule) == (False, False, "snoozed")
    assert d.headline == "Snoozed until 12:30"
    assert d.reason == "You snoozed contribution; it starts again by itself at 12:30."
    assert d.until == end
    assert d.fix is not None and (d.fix.action, d.fix.label) == ("resume", "Resume now")


def test_snooze_words_in_the_zone_given() -> None:
    end = WED_NOON + timedelta(minutes=30)  # 07:30 in New York (EST)
    assert decide(ContributionRules(), zone=NEW_YORK, snoozed_until=end).headline == (
        "Snoozed until 07:30"
    )
    tomorrow = WED_NOON + timedelta(hours=20)  # Thu 08:00 UTC
    assert decide(ContributionRules(), snoozed_until=tomorrow).headline == (
        "Snoozed until tomorrow 08:00"
    )
    friday = WED_NOON + timedelta(days=2, hours=-3)  # Fri 09:00
    assert decide(ContributionRules(), snoozed_until=friday).headline == "Snoozed until Fri 09:00"


def test_snooze_beyond_a_week_names_the_date() -> None:
    # Beyond a week the date is named; the day loses its leading zero, the time keeps it.
    end = datetime(2026, 3, 14, 8, 5, tzinfo=UTC)
    assert decide(ContributionRules(), snoozed_until=end).headline == (
        "Snoozed until Sat 14 Mar 08:05"
    )
    end = datetime(2026, 4, 7, 9, 0, tzinfo=UTC)
    assert decide(ContributionRules(), snoozed_until=end).headline == (
        "Snoozed until Tue 7 Apr 09:00"
    )


@pytest.mark.parametrize("ago", [timedelta(0), timedelta(seconds=1), timedelta(days=3)])
def test_expired_snooze_is_ignored(ago: timedelta) -> None:
    d = decide(ContributionRules(), snoozed_until=WED_NOON - ago)
    assert d.active
    assert d.rule == "contributing"


def test_schedule_outside_window() -> None:
    rules = ContributionRules(schedule_only=True, windows=(AFTER_HOURS,))
    d = decide(rules)
    assert (d.active, d.gpu, d.rule) == (False, False, "schedule")
    assert d.headline == "Paused until 18:00 by your schedule"
    assert d.reason == (
        "Your schedule keeps this computer to itself now; contribution starts by itself at 18:00."
    )
    assert d.until == WED_NOON.replace(hour=18)
    assert d.fix is not None and d.fix.action == "open_schedule"


def test_schedule_words_and_until_in_the_zone_given() -> None:
    rules = ContributionRules(schedule_only=True, windows=(AFTER_HOURS,))
    now = datetime(2026, 6, 3, 16, tzinfo=UTC)  # Wed 12:00 EDT
    d = decide(rules, now=now, zone=NEW_YORK)
    assert d.headline == "Paused until 18:00 by your schedule"
    assert d.until == datetime(2026, 6, 3, 22, tzinfo=UTC)
    d = decide(rules, now=now, zone=LONDON)  # 17:00 BST
    assert d.headline == "Paused until 18:00 by your schedule"
    assert d.until == datetime(2026, 6, 3, 17, tzinfo=UTC)
    # Friday 09:00 local: the next window is Friday evening.
    friday = datetime(2026, 6, 5, 13, tzinfo=UTC)
    assert decide(rules, now=friday, zone=NEW_YORK).headline == (
        "Paused until 18:00 by your schedule"
    )
    # Saturday noon: no window starts before Monday 18:00.
    saturday = datetime(2026, 6, 6, 16, tzinfo=UTC)
    d = decide(rules, now=saturday, zone=NEW_YORK)
    assert d.headline == "Paused until Mon 18:00 by your schedule"
    assert d.until == datetime(2026, 6, 8, 22, tzinfo=UTC)


def test_contributing_inside_schedule_until_window_end() -> None:
    rules = ContributionRules(schedule_only=True, windows=(AFTER_HOURS,))
    now = WED_NOON.replace(hour=20)
    d = decide(rules, now=now)
    assert (d.active, d.rule) == (True, "contributing")
    assert d.until == datetime(2026, 3, 5, 8, tzinfo=UTC)
    assert d.reason == "Your schedule allows it until tomorrow 08:00."


def test_schedule_kept_but_off_is_ignored() -> None:
    rules = ContributionRules(schedule_only=False, windows=(AFTER_HOURS,))
    d = decide(rules)
    assert d.active
    assert d.until is None


def test_schedule_always_open_has_no_end() -> None:
    always = WeeklyWindow(days=tuple(range(7)), start=time(0), end=time(0))
    d = decide(ContributionRules(schedule_only=True, windows=(always,)))
    assert d.active
    assert d.until is None
    assert d.reason == "This computer is helping the pool."


def test_battery_never() -> None:
    d = decide(ContributionRules(battery="never"), Signals(idle_seconds=900, on_battery=True))
    assert (d.active, d.gpu, d.rule) == (False, False, "battery")
    assert d.headline == "Paused: on battery"
    assert "running on battery" in d.reason
    assert d.until is None
    assert d.fix is not None and d.fix.action == "allow_battery"
    assert d.sudden


def test_battery_above_threshold() -> None:
    rules = ContributionRules(battery="above", battery_min_percent=40)
    low = decide(rules, Signals(on_battery=True, battery_percent=31.6))
    assert (low.active, low.rule) == (False, "battery")
    assert low.headline == "Paused: battery low"
    assert low.reason == (
        "The battery is at 32%, below the 40% you chose, so the pool waits until it is "
        "plugged in or charged."
    )
    assert low.fix is not None and low.fix.action == "allow_battery"
    assert decide(rules, Signals(on_battery=True, battery_percent=40)).active
    assert decide(rules, Signals(on_battery=True, battery_percent=85)).active
    unknown = decide(rules, Signals(on_battery=True, battery_percent=None))
    assert (unknown.active, unknown.rule) == (False, "battery")
    assert "at an unknown charge" in unknown.reason


def test_battery_allow() -> None:
    d = decide(ContributionRules(battery="allow"), Signals(on_battery=True, battery_percent=3))
    assert d.active


def test_plugged_in_ignores_battery_rules() -> None:
    d = decide(ContributionRules(battery="never"), Signals(on_battery=False, battery_percent=2))
    assert d.active


def test_busy() -> None:
    rules = ContributionRules(busy_percent=60)
    d = decide(rules, Signals(other_cpu_percent=87.4))
    assert (d.active, d.gpu, d.rule) == (False, False, "busy")
    assert d.headline == "Waiting: your programs are busy"
    assert d.reason == (
        "Your own programs are using 87% of the processor (more than 60%), so the pool "
        "waits until they are done."
    )
    assert d.fix is not None and d.fix.action == "stop_busy_pause"
    assert d.sudden is False
    assert decide(rules, Signals(other_cpu_percent=60)).active
    assert decide(rules, Signals(other_cpu_percent=None)).active
    assert decide(replace_rules(rules, busy_pause=False), Signals(other_cpu_percent=99)).active


def test_someone_at_the_keyboard_is_told_that_before_the_load() -> None:
    # Both rules hold; the person is told the one whose fix would let them contribute
    # while they are here, and the stop is sudden (they get their computer back at once).
    rules = ContributionRules(idle_only=True, idle_minutes=5)
    back = decide(rules, Signals(idle_seconds=2.0, other_cpu_percent=95.0))
    assert (back.active, back.rule, back.sudden) == (False, "in_use", True)
    unknown = decide(rules, Signals(idle_seconds=None, other_cpu_percent=95.0))
    assert (unknown.rule, unknown.sudden) == ("idle_unknown", True)
    away = decide(rules, Signals(idle_seconds=600.0, other_cpu_percent=95.0))
    assert (away.rule, away.sudden, away.gpu_sudden) == ("busy", False, False)


def test_busy_with_the_gpu_kept_for_when_away_stops_the_gpu_at_once() -> None:
    rules = ContributionRules(gpu_only_when_idle=True, idle_minutes=5)
    back = decide(rules, Signals(idle_seconds=2.0, other_cpu_percent=95.0))
    assert (back.rule, back.sudden, back.gpu_sudden) == ("busy", False, True)
    away = decide(rules, Signals(idle_seconds=600.0, other_cpu_percent=95.0))
    assert (away.rule, away.sudden, away.gpu_sudden) == ("busy", False, False)


def replace_rules(rules: ContributionRules, **changes: object) -> ContributionRules:
    return ContributionRules.model_validate(rules.model_dump() | changes)


def test_in_use() -> None:
    rules = ContributionRules(idle_only=True, idle_minutes=5)
    d = decide(rules, Signals(idle_seconds=60))
    assert (d.active, d.gpu, d.rule) == (False, False, "in_use")
    assert d.headline == "Waiting: you are using the computer"
    assert d.reason == ("Contribution starts after 5 minutes without keyboard or mouse input.")
    assert d.fix is not None and d.fix.action == "stop_idle_only"
    assert d.until is None
    assert d.sudden
    assert decide(rules, Signals(idle_seconds=300)).active


def test_idle_unknown() -> None:
    rules = ContributionRules(idle_only=True)
    problem = "this desktop does not report keyboard and mouse activity"
    d = decide(rules, Signals(idle_seconds=None, idle_problem=problem))
    assert (d.active, d.gpu, d.rule) == (False, False, "idle_unknown")
    assert d.headline == "Waiting: cannot tell when you are away"
    assert problem in d.reason
    assert d.fix is not None and d.fix.action == "stop_idle_only"
    generic = decide(rules, Signals(idle_seconds=None))
    assert "this computer cannot say when it was last used" in generic.reason
    # Without "only when idle", an unknown idle time does not matter.
    assert decide(ContributionRules(), Signals(idle_seconds=None)).active


def test_idle_only_contributing_words() -> None:
    d = decide(ContributionRules(idle_only=True), Signals(idle_seconds=1000))
    assert d.reason == "Nobody is using this computer, so it is helping the pool."


def test_gpu_only_when_idle() -> None:
    rules = ContributionRules(gpu_only_when_idle=True, idle_minutes=5)
    in_use = decide(rules, Signals(idle_seconds=10))
    assert (in_use.active, in_use.gpu) == (True, False)
    assert "graphics card is left alone" in in_use.reason
    unknown = decide(rules, Signals(idle_seconds=None))
    assert (unknown.active, unknown.gpu) == (True, False)
    away = decide(rules, Signals(idle_seconds=600))
    assert (away.active, away.gpu) == (True, True)
    assert "graphics card" not in away.reason


def test_gpu_disabled() -> None:
    for rules in (ContributionRules(), ContributionRules(gpu_only_when_idle=True)):
        d = decide(rules, Signals(idle_seconds=10_000), gpu_enabled=False)
        assert (d.active, d.gpu) == (True, False)
        assert "graphics card" not in d.reason


def test_naive_now_raises() -> None:
    with pytest.raises(ValueError, match="aware"):
        decide(ContributionRules(), now=datetime(2026, 3, 4, 12))


def test_system_zone() -> None:
    rules = ContributionRules(schedule_only=True, windows=(AFTER_HOURS,))
    d = ContributionPolicy(rules).decide(datetime.now(UTC), Signals(idle_seconds=0.0))
    assert d.rule in ("schedule", "contributing")
    assert d.until is not None


def test_all_modes_combined_first_failure_reported() -> None:
    rules = ContributionRules(
        schedule_only=True,
        windows=(AFTER_HOURS,),
        idle_only=True,
        battery="above",
        battery_min_percent=50,
        busy_percent=50,
    )
    everything_wrong = Signals(
        idle_seconds=1.0, on_battery=True, battery_percent=10, other_cpu_percent=90
    )
    evening = WED_NOON.replace(hour=19)
    assert decide(rules, everything_wrong).rule == "schedule"
    assert decide(rules, everything_wrong, now=evening).rule == "battery"
    charged = replace(everything_wrong, battery_percent=80)
    assert decide(rules, charged, now=evening).rule == "in_use"
    busy_away = replace(charged, idle_seconds=3600)
    assert decide(rules, busy_away, now=evening).rule == "busy"
    away = replace(busy_away, other_cpu_percent=10, idle_seconds=301)
    d = decide(rules, away, now=evening)
    assert (d.active, d.rule) == (True, "contributing")
    assert d.until == datetime(2026, 3, 5, 8, tzinfo=UTC)


# -- properties ------------------------------------------------------------------------------

times_of_day = st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45]))
windows_st = st.builds(
    WeeklyWindow,
    days=st.sets(st.integers(0, 6), min_size=1).map(lambda s: tuple(sorted(s))),
    start=times_of_day,
    end=times_of_day,
)
rules_st = st.builds(
    ContributionRules,
    idle_only=st.booleans(),
    idle_minutes=st.floats(min_value=0.01, max_value=24 * 60),
    schedule_only=st.booleans(),
    windows=st.lists(windows_st, min_size=1, max_size=3).map(tuple),
    battery=st.sampled_from(["never", "above", "allow"]),
    battery_min_percent=st.integers(5, 100),
    busy_pause=st.booleans(),
    busy_percent=st.integers(10, 100),
    gpu_only_when_idle=st.booleans(),
)
percent = st.floats(min_value=0, max_value=100)
signals_st = st.builds(
    Signals,
    idle_seconds=st.none() | st.floats(min_value=0, max_value=200_000),
    idle_problem=st.none() | st.text(max_size=40),
    on_battery=st.booleans(),
    battery_percent=st.none() | percent,
    other_cpu_percent=st.none() | percent,
)
zones = st.sampled_from([UTC_ZONE, LONDON, NEW_YORK, LORD_HOWE])
nows = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2026, 12, 31), timezones=zones
)
snooze_offsets = st.none() | st.builds(
    timedelta, seconds=st.integers(-3 * 86_400, 10 * 86_400).filter(bool)
)


def snooze_end(now: datetime, offset: timedelta | None) -> datetime | None:
    return None if offset is None else now + offset


def expected_rule(
    rules: ContributionRules,
    signals: Signals,
    now: datetime,
    zone: tzinfo,
    paused: bool,
    snoozed_until: datetime | None,
) -> str:
    """The rule order, written out independently of the policy."""
    if paused:
        return "paused"
    if snoozed_until is not None and snoozed_until > now:
        return "snoozed"
    if rules.schedule_only and not rules.in_window(wall_time(now, zone)):
        return "schedule"
    if signals.on_battery:
        if rules.battery == "never":
            return "battery"
        if rules.battery == "above" and (
            signals.battery_percent is None or signals.battery_percent < rules.battery_min_percent
        ):
            return "battery"
    if rules.idle_only:
        if signals.idle_seconds is None:
            return "idle_unknown"
        if signals.idle_seconds < rules.idle_minutes * 60:
            return "in_use"
    if (
        rules.busy_pause
        and signals.other_cpu_percent is not None
        and signals.other_cpu_percent > rules.busy_percent
    ):
        return "busy"
    return "contributing"


@settings(max_examples=250, deadline=None)
@given(
    rules=rules_st,
    signals=signals_st,
    now=nows,
    zone=zones,
    paused=st.booleans(),
    offset=snooze_offsets,
    gpu_enabled=st.booleans(),
)
def test_decision_follows_the_rule_order(
    rules: ContributionRules,
    signals: Signals,
    now: datetime,
    zone: tzinfo,
    paused: bool,
    offset: timedelta | None,
    gpu_enabled: bool,
) -> None:
    snoozed_until = snooze_end(now, offset)
    d = ContributionPolicy(rules, zone=zone).decide(
        now, signals, paused=paused, snoozed_until=snoozed_until, gpu_enabled=gpu_enabled
    )
    assert d.rule == expected_rule(rules, signals, now, zone, paused, snoozed_until)
    assert d.active == (d.rule == "contributing")
    assert not d.gpu or d.active
    assert not d.gpu or gpu_enabled
    assert d.headline and d.reason
    if d.active:
        assert d.fix is None
        assert d.sudden
    else:
        assert d.fix is not None
        idle_enough = (
            signals.idle_seconds is not None and signals.idle_seconds >= rules.idle_minutes * 60
        )
        if d.rule == "busy":
            # Load alone must hold; someone at the keyboard under "only when idle" need not.
            assert d.sudden == (rules.idle_only and not idle_enough)
        else:
            assert d.sudden
    if d.until is not None:
        assert d.until > now
    if paused:
        assert d.until is None
    elif d.rule == "snoozed":
        assert d.until == snoozed_until
    elif d.rule == "schedule" or (d.active and rules.schedule_only):
        change = next_change(rules, now, zone)
        assert d.until == change
        if d.rule == "schedule" and change is not None:
            assert rules.in_window(wall_time(change, zone))
    else:
        assert d.until is None


@settings(max_examples=100, deadline=None)
@given(
    rules=rules_st,
    signals=signals_st,
    now=nows,
    zone=zones,
    offset=snooze_offsets,
)
def test_paused_wins_and_snooze_wins_but_for_pause(
    rules: ContributionRules,
    signals: Signals,
    now: datetime,
    zone: tzinfo,
    offset: timedelta | None,
) -> None:
    policy = ContributionPolicy(rules, zone=zone)
    snoozed_until = snooze_end(now, offset)
    d = policy.decide(now, signals, paused=True, snoozed_until=snoozed_until)
    assert (d.rule, d.active, d.gpu) == ("paused", False, False)
    d = policy.decide(now, signals, snoozed_until=now + timedelta(seconds=1))
    assert (d.rule, d.active, d.gpu) == ("snoozed", False, False)
    assert d.until == now + timedelta(seconds=1)


@settings(max_examples=200, deadline=None)
@given(
    rules=rules_st,
    signals=signals_st,
    now=nows,
    zone=zones,
    gpu_enabled=st.booleans(),
)
def test_active_means_every_enabled_rule_holds(
    rules: ContributionRules,
    signals: Signals,
    now: datetime,
    zone: tzinfo,
    gpu_enabled: bool,
) -> None:
    d = ContributionPolicy(rules, zone=zone).decide(now, signals, gpu_enabled=gpu_enabled)
    if not d.active:
        assert not d.gpu
        return
    if rules.schedule_only:
        assert rules.in_window(wall_time(now, zone))
    if signals.on_battery:
        assert rules.battery != "never"
        if rules.battery == "above":
            assert signals.battery_percent is not None
            assert signals.battery_percent >= rules.battery_min_percent
    if rules.busy_pause and signals.other_cpu_percent is not None:
        assert signals.other_cpu_percent <= rules.busy_percent
    idle_enough = (
        signals.idle_seconds is not None and signals.idle_seconds >= rules.idle_minutes * 60
    )
    if rules.idle_only:
        assert idle_enough
    assert d.gpu == (gpu_enabled and (idle_enough or not rules.gpu_only_when_idle))


@settings(max_examples=150, deadline=None)
@given(
    rules=rules_st,
    signals=signals_st,
    now=nows,
    zone=zones,
    idle=st.floats(min_value=0, max_value=100_000),
    more=st.floats(min_value=0, max_value=100_000),
    gpu_enabled=st.booleans(),
)
def test_more_idle_time_never_stops_contribution(
    rules: ContributionRules,
    signals: Signals,
    now: datetime,
    zone: tzinfo,
    idle: float,
    more: float,
    gpu_enabled: bool,
) -> None:
    policy = ContributionPolicy(rules, zone=zone)
    first = policy.decide(now, replace(signals, idle_seconds=idle), gpu_enabled=gpu_enabled)
    later = policy.decide(now, replace(signals, idle_seconds=idle + more), gpu_enabled=gpu_enabled)
    if first.active:
        assert later.active
    if first.gpu:
        assert later.gpu


@settings(max_examples=30, deadline=None)
@given(rules=rules_st, signals=signals_st, wall=st.datetimes())
def test_naive_now_always_raises(
    rules: ContributionRules, signals: Signals, wall: datetime
) -> None:
    with pytest.raises(ValueError):
        ContributionPolicy(rules, zone=LONDON).decide(wall, signals)
