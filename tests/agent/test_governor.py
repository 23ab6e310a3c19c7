"""The governor's timing: starts wait, sudden stops do not, load stops hold, no thrashing.

Times are multiples of a quarter second so that float sums are exact and the properties can
compare instants with ``<=`` without rounding slack.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from desktop_app.agent.governor import Applied, Governor, GovernorConfig
from desktop_app.agent.policy import ContributionPolicy, Decision, Rule, Signals
from desktop_app.agent.schedule import ContributionRules


def decision(rule: Rule, *, gpu: bool = True, sudden: bool = True) -> Decision:
    active = rule == "contributing"
    return Decision(active, gpu and active, rule, rule, rule, sudden=sudden)


ACTIVE = decision("contributing")
ACTIVE_NO_GPU = decision("contributing", gpu=False)
IN_USE = decision("in_use")
BATTERY = decision("battery")
SCHEDULE = decision("schedule")
BUSY = decision("busy", sudden=False)
PAUSED = decision("paused")
SNOOZED = decision("snoozed")

CONFIG = GovernorConfig(start_after=2.0, stop_after=15.0, restart_after=30.0)


def started(config: GovernorConfig = CONFIG) -> Governor:
    """A governor whose containers and graphics card both run from t=0."""
    governor = Governor(config)
    governor.step(-2 * config.start_after - 1, ACTIVE)
    governor.step(-config.start_after - 1, ACTIVE)
    applied = governor.step(0.0, ACTIVE)
    assert (applied.active, applied.gpu) == (True, True)
    return governor


# -- worked examples -------------------------------------------------------------------------


def test_start_waits_start_after() -> None:
    g = Governor(CONFIG)
    first = g.step(0.0, ACTIVE)
    assert (first.active, first.gpu, first.starting_in) == (False, False, 2.0)
    assert first.decision is ACTIVE
    assert g.step(1.5, ACTIVE).starting_in == 0.5
    on = g.step(2.0, ACTIVE)
    assert on.active
    assert on.starting_in is None
    # The graphics card follows the containers, with its own start_after.
    assert g.step(4.0, ACTIVE).gpu


def test_default_config() -> None:
    assert GovernorConfig() == GovernorConfig(start_after=2.0, stop_after=15.0, restart_after=30.0)
    assert not Governor().step(0.0, ACTIVE).active


def test_a_flicker_restarts_the_wait() -> None:
    g = Governor(CONFIG)
    g.step(0.0, ACTIVE)
    assert g.step(1.0, IN_USE).starting_in is None
    assert g.step(1.5, ACTIVE).starting_in == 2.0
    assert not g.step(3.0, ACTIVE).active
    assert g.step(3.5, ACTIVE).active


def test_sudden_stop_is_immediate() -> None:
    for stop in (IN_USE, BATTERY, SCHEDULE, PAUSED, SNOOZED):
        g = started()
        applied = g.step(0.25, stop)
        assert (applied.active, applied.gpu) == (False, False), stop.rule
        assert applied.decision is stop


def test_busy_stop_holds_stop_after() -> None:
    g = started()
    assert g.step(10.0, BUSY).active
    still = g.step(24.75, BUSY)
    assert (still.active, still.gpu) == (True, True)
    stopped = g.step(25.0, BUSY)
    assert (stopped.active, stopped.gpu) == (False, False)


def test_busy_stop_cancelled_when_the_decision_flips_back() -> None:
    g = started()
    assert g.step(10.0, BUSY).active
    assert g.step(20.0, ACTIVE).active  # cancelled
    assert g.step(26.0, BUSY).active  # a new wait starts here
    assert g.step(40.75, BUSY).active
    assert not g.step(41.0, BUSY).active


def test_sudden_stop_during_a_busy_wait_is_immediate() -> None:
    g = started()
    assert g.step(5.0, BUSY).active
    assert not g.step(6.0, IN_USE).active


def test_restart_waits_restart_after_a_rule_stop() -> None:
    g = started()
    assert not g.step(10.0, IN_USE).active
    applied = g.step(11.0, ACTIVE)
    assert not applied.active
    assert applied.starting_in == 29.0
    assert not g.step(39.75, ACTIVE).active
    assert g.step(40.0, ACTIVE).active


def test_restart_after_a_busy_stop_counts_from_the_stop() -> None:
    g = started()
    g.step(1.0, BUSY)
    assert not g.step(16.0, BUSY).active
    assert g.step(17.0, ACTIVE).starting_in == 29.0
    assert g.step(46.0, ACTIVE).active


def test_resume_after_pause_or_snooze_is_immediate() -> None:
    for own in (PAUSED, SNOOZED):
        g = started()
        assert not g.step(10.0, own).active
        assert not g.step(11.0, own).active
        resumed = g.step(12.0, ACTIVE)
        assert resumed.active, own.rule
        assert resumed.gpu
        assert resumed.starting_in is None


def test_pause_while_held_by_a_rule_then_resume_is_immediate() -> None:
    g = started()
    assert not g.step(10.0, IN_USE).active
    assert not g.step(11.0, PAUSED).active
    assert g.step(12.0, ACTIVE).active


def test_a_rule_after_the_pause_brings_the_timing_back() -> None:
    g = started()
    assert not g.step(10.0, PAUSED).active
    assert not g.step(11.0, IN_USE).active  # resumed, but the volunteer is at the keyboard
    applied = g.step(12.0, ACTIVE)
    assert not applied.active
    assert applied.starting_in == 28.0  # 30 s after the stop at 10
    assert g.step(40.0, ACTIVE).active


def test_gpu_stops_at_once_while_containers_run() -> None:
    g = started()
    applied = g.step(5.0, ACTIVE_NO_GPU)
    assert (applied.active, applied.gpu) == (True, False)
    # Back to idle: the card waits restart_after from its own stop.
    assert (g.step(6.0, ACTIVE).active, g.step(6.0, ACTIVE).gpu) == (True, False)
    assert not g.step(34.75, ACTIVE).gpu
    applied = g.step(35.0, ACTIVE)
    assert (applied.active, applied.gpu) == (True, True)


def test_gpu_never_runs_without_the_containers() -> None:
    g = Governor(CONFIG)
    for t in range(0, 10):
        applied = g.step(float(t), ACTIVE)
        assert applied.active or not applied.gpu
    g = started()
    applied = g.step(20.0, BUSY)
    assert applied.active and applied.gpu
    applied = g.step(35.0, BUSY)
    assert (applied.active, applied.gpu) == (False, False)


def test_with_the_policy_someone_coming_back_stops_everything_at_once() -> None:
    # "Only when idle" and busy programs at once: the volunteer came back, which is what
    # they are told, and the stop is sudden.
    policy = ContributionPolicy(ContributionRules(idle_only=True, busy_percent=50))
    now = datetime(2026, 3, 4, 12, tzinfo=UTC)
    g = Governor(CONFIG)
    for t in (0.0, 1.0, 2.0):
        applied = g.step(t, policy.decide(now, Signals(idle_seconds=600.0 + t)))
    assert applied.active
    back = policy.decide(
        now + timedelta(seconds=3), Signals(idle_seconds=0.5, other_cpu_percent=90.0)
    )
    assert back.rule == "in_use"
    assert not g.step(3.0, back).active


def test_the_gpu_kept_for_when_away_stops_at_once_while_a_load_stop_holds() -> None:
    policy = ContributionPolicy(ContributionRules(gpu_only_when_idle=True, busy_percent=50))
    now = datetime(2026, 3, 4, 12, tzinfo=UTC)
    g = Governor(CONFIG)
    for t in (0.0, 1.0, 2.0):
        applied = g.step(t, policy.decide(now, Signals(idle_seconds=600.0 + t)))
    assert applied.active and applied.gpu
    back = policy.decide(now, Signals(idle_seconds=0.5, other_cpu_percent=90.0))
    applied = g.step(3.0, back)
    assert applied.active and not applied.gpu  # CPU work waits for the load to last


# -- properties ------------------------------------------------------------------------------

quarters = st.integers(0, 80).map(lambda n: n / 4)  # 0 … 20 s
configs = st.builds(
    GovernorConfig,
    start_after=st.sampled_from([0.0, 0.5, 2.0, 5.0]),
    stop_after=st.sampled_from([0.0, 1.0, 5.0, 15.0]),
    restart_after=st.sampled_from([0.25, 1.0, 10.0, 30.0]),
)
RULE_DECISIONS = [ACTIVE, ACTIVE_NO_GPU, IN_USE, BATTERY, SCHEDULE, BUSY]
rule_decisions = st.sampled_from(RULE_DECISIONS)
# Weighted towards flapping between contributing and stopping.
flapping = st.one_of(st.sampled_from([ACTIVE, BUSY, IN_USE]), rule_decisions)


@dataclass(frozen=True)
class Run:
    times: list[float]
    decisions: list[Decision]
    applied: list[Applied]


def run(config: GovernorConfig, steps: list[tuple[float, Decision]]) -> Run:
    governor = Governor(config)
    now = 0.0
    times, decisions, applied = [], [], []
    for gap, d in steps:
        now += gap
        times.append(now)
        decisions.append(d)
        applied.append(governor.step(now, d))
    return Run(times, decisions, applied)


def held(r: Run, i: int, seconds: float, ok: bool) -> bool:
    """Whether every decision in the last ``seconds`` before step i had ``active == ok``."""
    for j in range(i, -1, -1):
        if r.decisions[j].active != ok:
            return False
        if r.times[j] <= r.times[i] - seconds:
            return True
    return False


@settings(max_examples=300, deadline=None)
@given(config=configs, steps=st.lists(st.tuples(quarters, flapping), min_size=1, max_size=80))
def test_flapping_input(config: GovernorConfig, steps: list[tuple[float, Decision]]) -> None:
    r = run(config, steps)
    starts = []
    last_stop: float | None = None
    was_on = was_gpu = False
    for i, (now, d, a) in enumerate(zip(r.times, r.decisions, r.applied, strict=True)):
        assert a.decision is d
        assert not a.gpu or a.active
        if a.gpu and not d.gpu:
            assert not d.active and not d.sudden  # only a load stop holds the card a while
        if not d.active and d.sudden:
            assert not a.active
        if a.active and not was_on:
            assert d.active
            assert held(r, i, config.start_after, ok=True), i
            if last_stop is not None:
                assert now - last_stop >= config.restart_after
            starts.append(now)
        if was_on and not a.active:
            assert not d.active
            if not d.sudden:
                assert held(r, i, config.stop_after, ok=False), i
            last_stop = now
        if was_on and d.active:
            assert a.active  # an active decision never stops the containers
        if a.gpu and not was_gpu:
            assert held(r, i, config.start_after, ok=True)
        if a.starting_in is not None:
            assert not a.active and d.active
            assert a.starting_in > 0
        was_on, was_gpu = a.active, a.gpu
    duration = r.times[-1] - r.times[0]
    assert len(starts) <= 1 + duration / config.restart_after
    for earlier, later in pairwise(starts):
        assert later - earlier >= config.restart_after


@settings(max_examples=200, deadline=None)
@given(
    config=configs,
    steps=st.lists(
        st.tuples(quarters, st.sampled_from([*RULE_DECISIONS, PAUSED, SNOOZED])),
        min_size=1,
        max_size=60,
    ),
)
def test_with_the_volunteers_own_pauses(
    config: GovernorConfig, steps: list[tuple[float, Decision]]
) -> None:
    r = run(config, steps)
    for i, (d, a) in enumerate(zip(r.decisions, r.applied, strict=True)):
        assert not a.gpu or a.active
        if not d.active and d.sudden:
            assert not a.active
        if d.rule in ("paused", "snoozed"):
            assert (a.active, a.gpu) == (False, False)
        previous = r.decisions[i - 1] if i else None
        if d.active and previous is not None and previous.rule in ("paused", "snoozed"):
            assert a.active  # resuming is immediate
            assert a.gpu == d.gpu


@settings(max_examples=150, deadline=None)
@given(
    config=configs,
    idle_only=st.booleans(),
    gpu_only_when_idle=st.booleans(),
    readings=st.lists(
        st.tuples(
            quarters,
            st.none() | st.floats(min_value=0, max_value=900),
            st.none() | st.floats(min_value=0, max_value=100),
        ),
        min_size=1,
        max_size=60,
    ),
)
def test_flapping_signals_through_the_policy(
    config: GovernorConfig,
    idle_only: bool,
    gpu_only_when_idle: bool,
    readings: list[tuple[float, float | None, float | None]],
) -> None:
    rules = ContributionRules(
        idle_only=idle_only, idle_minutes=1.0, gpu_only_when_idle=gpu_only_when_idle
    )
    policy = ContributionPolicy(rules, zone=UTC)
    start = datetime(2026, 3, 4, 12, tzinfo=UTC)
    steps = []
    elapsed = 0.0
    for gap, idle, cpu in readings:
        elapsed += gap
        signals = Signals(idle_seconds=idle, other_cpu_percent=cpu)
        steps.append((gap, policy.decide(start + timedelta(seconds=elapsed), signals)))
    r = run(config, steps)
    starts = [
        now
        for i, (now, a) in enumerate(zip(r.times, r.applied, strict=True))
        if a.active and (i == 0 or not r.applied[i - 1].active)
    ]
    assert len(starts) <= 1 + (r.times[-1] - r.times[0]) / config.restart_after
    for (gap, idle, cpu), d, a in zip(readings, r.decisions, r.applied, strict=True):
        del gap, cpu
        assert not a.gpu or a.active
        away = idle is not None and idle >= 60
        if idle_only and not away:
            assert not a.active  # someone at the keyboard gets the computer back at once
        if gpu_only_when_idle and not away:
            assert not d.gpu
