"""What the volunteer is told, for every state the agent can be in."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from desktop_app.agent.agent import AgentStatus
from desktop_app.agent.governor import Applied
from desktop_app.agent.policy import ContributionPolicy, Decision, Signals
from desktop_app.agent.presentation import (
    NotificationGate,
    Situation,
    clock_time,
    describe_hardware,
    describe_situation,
    describe_tier,
    docker_fix,
    why_not_contributing,
)
from desktop_app.agent.schedule import ContributionRules
from desktop_app.agent.settings import VolunteerSettings
from shared import ContainerReport, DockerInfo, GpuInfo, WorkerCapabilities

GIB = 1024**3
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
JOINED = VolunteerSettings(joined=True)
DOCKER_OK = DockerInfo(usable=True, status="running", version="26.1")


def contributing(*containers: ContainerReport, **fields: object) -> AgentStatus:
    values: dict[str, object] = {"tier": 2, "docker": DOCKER_OK, **fields}
    return AgentStatus("contributing", "Connected.", containers=containers, **values)  # type: ignore[arg-type]


def report(service: str, state: str, **fields: object) -> ContainerReport:
    return ContainerReport.model_validate(
        {"service": service, "image": f"{service}:1", "state": state, **fields}
    )


def test_nothing_runs_before_joining() -> None:
    situation = describe_situation(contributing(), VolunteerSettings(), NOW)
    assert situation.kind == "waiting" and situation.action == "join"


def test_pause_wins_over_everything_and_says_until_when() -> None:
    broken = AgentStatus("refused", "The pool said: no.")
    paused = describe_situation(broken, JOINED.model_copy(update={"contributing": False}), NOW)
    assert (paused.kind, paused.headline, paused.action) == ("paused", "Paused", "resume")
    until = NOW + timedelta(hours=1)
    snoozed = describe_situation(broken, JOINED.model_copy(update={"snoozed_until": until}), NOW)
    assert snoozed.kind == "paused"
    assert clock_time(until, NOW) in snoozed.headline
    assert "by itself" in snoozed.reason


@pytest.mark.parametrize(
    ("status", "kind", "action"),
    [
        (None, "waiting", "none"),
        (AgentStatus("connecting", "Joining."), "waiting", "none"),
        (AgentStatus("retrying", "Cannot reach the pool."), "waiting", "open_settings"),
        (
            AgentStatus("refused", "The pool said: enrollment required."),
            "attention",
            "open_settings",
        ),
        (
            contributing(docker=DockerInfo(status="not_running", message="Start Docker Desktop.")),
            "attention",
            "docker_help",
        ),
        (
            contributing(report("ocr", "error", message="Not enough disk.")),
            "attention",
            "open_containers",
        ),
        (contributing(schedulability="drained"), "waiting", "none"),
        (contributing(report("ocr", "pulling", progress=0.45)), "contributing", "open_containers"),
        (contributing(report("ocr", "running"), report("ner", "starting")), "contributing", "none"),
        (contributing(), "contributing", "none"),
    ],
    ids=[
        "not-started",
        "connecting",
        "retrying",
        "refused",
        "docker-down",
        "service-error",
        "drained",
        "downloading",
        "running",
        "ready",
    ],
)
def test_each_state_has_a_kind_a_sentence_and_its_fix(
    status: AgentStatus | None, kind: str, action: str
) -> None:
    situation = describe_situation(status, JOINED, NOW)
    assert (situation.kind, situation.action) == (kind, action)
    assert situation.headline and situation.reason.endswith((".", ")"))
    assert (situation.action == "none") == (situation.action_label == "")


def test_sentences_name_what_matters() -> None:
    assert (
        "45%"
        in describe_situation(
            contributing(report("ocr", "pulling", progress=0.45)), JOINED, NOW
        ).headline
    )
    assert (
        "Not enough disk."
        in describe_situation(
            contributing(report("ocr", "error", message="Not enough disk.")), JOINED, NOW
        ).reason
    )
    running = describe_situation(
        contributing(report("ocr", "running"), report("ner", "running")), JOINED, NOW
    )
    assert running.headline == "Contributing: 2 services" and "ocr, ner" in running.reason
    assert describe_situation(None, JOINED, NOW, stopping=True).headline == "Stopping"


def test_notifications_only_for_changes_that_matter() -> None:
    gate = NotificationGate(quiet_period=timedelta(minutes=10))
    work = Situation("contributing", "Contributing: 1 service", "Running ocr.")
    paused = Situation("paused", "Paused", "You paused.")
    waiting = Situation("waiting", "Connecting", "Joining.")
    broken = Situation("attention", "Docker is not running", "Start Docker.")
    assert gate.consider(waiting, NOW) is None  # never announced
    assert gate.consider(work, NOW) is None  # the app just started: not news
    assert gate.consider(waiting, NOW) is None  # a reconnection is not a change of kind
    assert gate.consider(work, NOW) is None
    assert gate.consider(Situation("contributing", "Contributing: 2 services", "x."), NOW) is None
    # Paused by a schedule or a snooze's end: announced; by the volunteer's click: not.
    notice = gate.consider(paused, NOW + timedelta(seconds=1))
    assert notice is not None and notice.kind == "paused"
    assert gate.consider(work, NOW + timedelta(seconds=2), by_volunteer=True) is None
    attention = gate.consider(broken, NOW + timedelta(seconds=3), by_volunteer=True)
    assert attention is not None and "Docker" in attention.title  # problems always
    started = gate.consider(work, NOW + timedelta(seconds=4))
    assert started is not None and started.kind == "contributing"
    # Flapping does not repeat the same notice within the quiet period ...
    assert gate.consider(broken, NOW + timedelta(seconds=5)) is None
    assert gate.consider(work, NOW + timedelta(seconds=6)) is None
    # ... but does after it.
    assert gate.consider(broken, NOW + timedelta(minutes=11)) is not None


def test_a_problem_at_start_up_is_announced() -> None:
    gate = NotificationGate()
    broken = Situation("attention", "Docker is not running", "Start Docker.")
    assert gate.consider(Situation("waiting", "Starting", "x."), NOW) is None
    assert gate.consider(broken, NOW) is not None


def test_hardware_in_words() -> None:
    capabilities = WorkerCapabilities(
        cpu_cores=16,
        cpu_physical_cores=8,
        cpu_model="AMD Ryzen 7 5800X",
        ram=32 * GIB,
        storage=200 * GIB,
        gpus=[GpuInfo(vendor="nvidia", name="NVIDIA GeForce RTX 3060", memory=12 * GIB)],
        docker=DOCKER_OK,
    )
    lines = {line.label: line.text for line in describe_hardware(capabilities)}
    assert lines["Processor"] == "AMD Ryzen 7 5800X — 16 threads on 8 cores"
    assert lines["Memory"] == "32.0 GiB"
    assert lines["Graphics"] == "NVIDIA GeForce RTX 3060 — 12.0 GiB of graphics memory"
    assert lines["Free disk"] == "200.0 GiB free"
    assert lines["Docker"] == "running (version 26.1)"
    assert describe_tier(capabilities).startswith("Qualifies for tier 1")
    assert describe_tier(capabilities, tier=2).startswith("Tier 2")
    assert describe_tier(WorkerCapabilities(ram=GIB)).startswith("Below the smallest tier")
    bare = {line.label: line.text for line in describe_hardware(WorkerCapabilities())}
    assert bare["Graphics"] == "no graphics card the pool can use"
    assert bare["Docker"] == "not checked yet"


def test_docker_fix_prefers_the_probes_own_sentence() -> None:
    assert docker_fix(DockerInfo(status="not_running", message="Start Docker Desktop.")) == (
        "Start Docker Desktop."
    )
    assert "Start menu" in docker_fix(DockerInfo(status="not_running"), system="Windows")
    assert "Applications" in docker_fix(None, system="Darwin")
    assert "systemctl" in docker_fix(None, system="Linux")
    assert "ready" in docker_fix(DOCKER_OK)


def test_clock_times_are_local_and_say_the_day() -> None:
    local_now = NOW.astimezone()
    today = local_now.replace(hour=18, minute=30)
    assert clock_time(today, NOW) == "18:30"
    tomorrow = (local_now + timedelta(days=1)).replace(hour=8, minute=0)
    assert clock_time(tomorrow, NOW) == "tomorrow 08:00"


def held(rule_words: Decision) -> Applied:
    return Applied(active=False, gpu=False, decision=rule_words)


IN_USE = ContributionPolicy(ContributionRules(idle_only=True, idle_minutes=5)).decide(
    NOW, Signals(idle_seconds=10)
)


def test_a_rule_that_holds_contribution_is_what_the_tray_says() -> None:
    situation = describe_situation(contributing(), JOINED, NOW, applied=held(IN_USE))
    assert (situation.kind, situation.headline) == (
        "waiting",
        "Waiting: you are using the computer",
    )
    assert (situation.action, situation.action_label) == (
        "stop_idle_only",
        "Contribute while I use it",
    )
    starting = Applied(
        active=False, gpu=False, decision=replace(IN_USE, active=True), starting_in=1.6
    )
    assert describe_situation(contributing(), JOINED, NOW, applied=starting).headline == (
        "Starting soon"
    )


def test_what_needs_help_comes_before_a_rule_that_holds_contribution() -> None:
    # Under "only when idle" whoever looks at the tray is using the computer.
    no_docker = contributing(docker=DockerInfo(status="not_running", message="Start Docker."))
    situation = describe_situation(no_docker, JOINED, NOW, applied=held(IN_USE))
    assert (situation.kind, situation.action) == ("attention", "docker_help")
    refused = AgentStatus("refused", "The pool said: enrollment required.")
    situation = describe_situation(refused, JOINED, NOW, applied=held(IN_USE))
    assert situation.kind == "attention"
    # The volunteer's own pause still comes first of all.
    paused = JOINED.model_copy(update={"contributing": False})
    assert describe_situation(no_docker, paused, NOW, applied=held(IN_USE)).kind == "paused"


def test_why_line_names_each_rule_in_a_sentence() -> None:
    rules = ContributionRules(idle_only=True, idle_minutes=5)
    assert why_not_contributing(IN_USE, rules) == (
        "Why isn't it contributing? Because of your rule “Only when I have not used the "
        "computer for 5 minutes”."
    )
    paused = replace(IN_USE, rule="paused")
    assert (
        why_not_contributing(paused, rules) == "Why isn't it contributing? Because you paused it."
    )
    battery = replace(IN_USE, rule="battery")
    assert why_not_contributing(battery, rules).endswith("“Never on battery”.")
