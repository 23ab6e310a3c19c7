"""What the volunteer is told: the state at a glance, its reason, and the one fix.

Pure functions of the agent's status, the volunteer's settings and the time, so every
sentence the tray and the window show is unit-tested without Qt.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from desktop_app.agent.agent import AgentStatus
from desktop_app.agent.governor import Applied
from desktop_app.agent.policy import Decision
from desktop_app.agent.schedule import ContributionRules, clock_time
from desktop_app.agent.settings import VolunteerSettings
from shared import TIER_NAMES, ContainerReport, DockerInfo, WorkerCapabilities
from shared.tiers import TierRequirementsNotMet, TierRules, assign_tier
from shared.units import format_bytes

Kind = Literal["contributing", "paused", "waiting", "attention"]
"""The four looks of the tray icon."""

Action = Literal[
    "join",
    "resume",
    "open_settings",
    "docker_help",
    "open_containers",
    "open_schedule",
    "allow_battery",
    "stop_busy_pause",
    "stop_idle_only",
    "none",
]
"""The one thing that fixes or changes a situation; the UI turns it into a button."""


@dataclass(frozen=True)
class Situation:
    """Where contribution stands, for people."""

    kind: Kind
    headline: str
    """A few words for the tray menu's status line and the window's title line."""
    reason: str
    """One plain sentence: why, and what happens next."""
    action: Action = "none"
    action_label: str = ""


def _docker_problem(status: AgentStatus) -> DockerInfo | None:
    docker = status.docker
    if docker is None and status.capabilities is not None:
        docker = status.capabilities.docker
    if docker is not None and not docker.usable:
        return docker
    return None


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def describe_situation(
    status: AgentStatus | None,
    settings: VolunteerSettings,
    now: datetime,
    *,
    stopping: bool = False,
    applied: Applied | None = None,
) -> Situation:
    """The situation to show for the agent's latest status (None: the agent is not running).

    Args:
        status: The agent's latest status, or None when no agent runs.
        settings: The volunteer's settings (joined? paused? snoozed?).
        now: The current time (aware).
        stopping: The app is quitting and stopping the containers.
        applied: What the contribution policy says now, after its timing rules (None
            before its first decision).
    """
    if stopping:
        return Situation(
            "waiting",
            "Stopping",
            "Stopping the pool's containers on this computer before closing.",
        )
    if not settings.joined:
        return Situation(
            "waiting",
            "Not contributing yet",
            "Nothing runs until you have checked this computer and chosen to join the pool.",
            "join",
            "Check and join…",
        )
    paused, until = settings.paused_until(now)
    if paused:
        if until is None:
            return Situation(
                "paused",
                "Paused",
                "You paused contribution. Nothing runs for the pool until you resume.",
                "resume",
                "Resume",
            )
        return Situation(
            "paused",
            f"Paused until {clock_time(until, now)}",
            f"You snoozed contribution; it starts again by itself at {clock_time(until, now)}.",
            "resume",
            "Resume now",
        )
    # What needs the volunteer's help comes before a rule that holds contribution: under
    # "only when idle", whoever looks at the tray is using the computer, and must still
    # hear that the pool refused it or that Docker is not running.
    if status is not None and status.phase == "refused":
        return Situation(
            "attention", "Needs attention", status.message, "open_settings", "Open settings"
        )
    docker = _docker_problem(status) if status is not None else None
    if docker is not None:
        return Situation(
            "attention",
            "Docker is not running" if docker.status == "not_running" else "Docker needs help",
            docker.message or "Docker cannot run the pool's containers on this computer.",
            "docker_help",
            "How to fix it",
        )
    if applied is not None and not applied.active:
        held = _held_by_policy(applied)
        if held is not None:
            return held
    if status is None or status.phase in ("starting", "stopped"):
        return Situation("waiting", "Starting", "Getting ready to contribute.")
    if status.phase == "connecting":
        return Situation("waiting", "Connecting", status.message)
    if status.phase == "retrying":
        return Situation(
            "waiting",
            "Cannot reach the pool",
            status.message + " Nothing runs meanwhile; check the pool address if this lasts.",
            "open_settings",
            "Check the address",
        )
    failing = [report for report in status.containers if report.state == "error"]
    if failing:
        first = failing[0]
        return Situation(
            "attention",
            f"{first.service} cannot run",
            first.message or f"The {first.service} service cannot run on this computer.",
            "open_containers",
            "See the containers",
        )
    if status.schedulability == "drained":
        return Situation(
            "waiting",
            "Held by the pool",
            "The pool's operator is not sending work to this computer for now; "
            "nothing for you to do.",
        )
    return _contributing(status.containers)


def _held_by_policy(applied: Applied) -> Situation | None:
    """A rule of the volunteer's keeps the computer to itself, or a start is about to happen."""
    decision = applied.decision
    if decision.active:
        seconds = max(1, round(applied.starting_in or 0))
        return Situation(
            "waiting",
            "Starting soon",
            f"{decision.reason} The pool's containers start in {seconds} s.",
        )
    if decision.rule in ("paused", "snoozed"):
        return None  # the volunteer's own pause is described from the settings above
    kind: Kind = "paused" if decision.rule in ("schedule", "battery") else "waiting"
    fix = decision.fix
    if fix is None:
        return Situation(kind, decision.headline, decision.reason)
    return Situation(kind, decision.headline, decision.reason, fix.action, fix.label)


def why_not_contributing(decision: Decision, rules: ContributionRules) -> str:
    """Names the rule that keeps the computer to itself, in the words of the Schedule tab."""
    minutes = f"{rules.idle_minutes:g} minute" + ("" if rules.idle_minutes == 1 else "s")
    away = f"of your rule “Only when I have not used the computer for {minutes}”"
    battery = (
        "“Never on battery”"
        if rules.battery == "never"
        else f"“On battery only above {rules.battery_min_percent}% charge”"
    )
    because = {
        "paused": "you paused it",
        "snoozed": "you snoozed it",
        "schedule": "of your schedule “Only at these times” ("
        + "; ".join(window.describe() for window in rules.windows)
        + ")",
        "battery": f"of your rule {battery}",
        "busy": f"of your rule “Wait while my own programs use more than {rules.busy_percent}% "
        "of the processor”",
        "in_use": away,
        "idle_unknown": away + ", and this computer cannot tell when you are away",
    }
    return f"Why isn't it contributing? Because {because.get(decision.rule, decision.rule)}."


def _contributing(containers: tuple[ContainerReport, ...]) -> Situation:
    pulling = [report for report in containers if report.state == "pulling"]
    if pulling:
        first = pulling[0]
        share = f" ({first.progress:.0%})" if first.progress is not None else ""
        return Situation(
            "contributing",
            f"Downloading {first.service}{share}",
            f"Downloading what the {first.service} service needs before it can start.",
            "open_containers",
            "See the containers",
        )
    running = [report for report in containers if report.state in ("running", "starting")]
    if running:
        names = ", ".join(report.service for report in running[:3])
        more = f" and {len(running) - 3} more" if len(running) > 3 else ""
        return Situation(
            "contributing",
            f"Contributing: {_count(len(running), 'service')}",
            f"Running {names}{more} for the pool.",
        )
    return Situation(
        "contributing",
        "Contributing: ready for work",
        "Connected to the pool. It has no work for this computer right now; "
        "services start here when it does.",
    )


# -- notifications ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Notice:
    """A desktop notification."""

    title: str
    message: str
    kind: Kind


class NotificationGate:
    """Decides which situation changes deserve a desktop notification.

    Only changes of kind that matter: contribution started, paused, or needing attention.
    Waiting is never announced, the first situation after start-up is not (the volunteer just
    started the app), and the same notice is not repeated within ``quiet_period``.
    """

    def __init__(self, quiet_period: timedelta = timedelta(minutes=10)) -> None:
        """Create the gate; ``quiet_period`` is the shortest gap between equal notices."""
        self._quiet = quiet_period
        self._last_kind: Kind | None = None
        self._sent: dict[tuple[Kind, str], datetime] = {}

    def consider(
        self, situation: Situation, now: datetime, *, by_volunteer: bool = False
    ) -> Notice | None:
        """Return the notice for ``situation``, if it deserves one.

        Args:
            situation: The new situation.
            now: The time.
            by_volunteer: The volunteer just caused this change (Pause, Resume, Snooze):
                they know, so only a problem is announced.
        """
        if situation.kind == "waiting":
            return None  # connecting or starting: not news, and not a change of kind
        previous, self._last_kind = self._last_kind, situation.kind
        if situation.kind == previous:
            return None
        if situation.kind != "attention" and (previous is None or by_volunteer):
            return None
        if situation.kind == "contributing":
            notice = Notice("Contributing to the pool", situation.reason, "contributing")
        elif situation.kind == "paused":
            notice = Notice(situation.headline, situation.reason, "paused")
        else:
            notice = Notice(f"RMA Compute: {situation.headline}", situation.reason, "attention")
        key = (notice.kind, notice.title)
        last = self._sent.get(key)
        if last is not None and now - last < self._quiet:
            return None
        self._sent[key] = now
        return notice


# -- hardware in words ---------------------------------------------------------------------


@dataclass(frozen=True)
class HardwareLine:
    """One line of the hardware list: a label and what was found."""

    label: str
    text: str


def describe_hardware(capabilities: WorkerCapabilities) -> list[HardwareLine]:
    """The detected hardware in words, in the order the Overview shows it."""
    lines: list[HardwareLine] = []
    cores = capabilities.cpu_cores
    physical = capabilities.cpu_physical_cores
    model = capabilities.cpu_model or "Processor"
    if cores:
        detail = _count(cores, "core")
        if physical and physical != cores:
            detail = f"{_count(cores, 'thread')} on {_count(physical, 'core')}"
        lines.append(HardwareLine("Processor", f"{model} — {detail}"))
    else:
        lines.append(HardwareLine("Processor", f"{model} — core count unknown"))
    lines.append(
        HardwareLine(
            "Memory", format_bytes(capabilities.ram) if capabilities.ram else "not detected"
        )
    )
    if capabilities.gpus:
        for index, gpu in enumerate(capabilities.gpus):
            label = "Graphics" if len(capabilities.gpus) == 1 else f"Graphics {index + 1}"
            if gpu.memory is None:
                memory = "memory unknown"
            elif gpu.unified_memory:
                memory = f"shares the computer's {format_bytes(gpu.memory)}"
            else:
                memory = f"{format_bytes(gpu.memory)} of graphics memory"
            lines.append(HardwareLine(label, f"{gpu.name} — {memory}"))
    else:
        lines.append(HardwareLine("Graphics", "no graphics card the pool can use"))
    lines.append(
        HardwareLine(
            "Free disk",
            f"{format_bytes(capabilities.storage)} free"
            if capabilities.storage
            else "not detected",
        )
    )
    lines.append(HardwareLine("Docker", describe_docker(capabilities.docker)))
    return lines


def describe_docker(docker: DockerInfo | None) -> str:
    """Docker's state in a few words."""
    if docker is None:
        return "not checked yet"
    if docker.usable:
        version = f" (version {docker.version})" if docker.version else ""
        gpu = ", with GPU support" if docker.gpu_runtime else ""
        return f"running{version}{gpu}"
    return docker.message or "not usable"


def describe_tier(
    capabilities: WorkerCapabilities, tier: int | None = None, rules: TierRules | None = None
) -> str:
    """The tier this computer has (from the pool) or qualifies for (by the default rules)."""
    if tier is not None:
        return f"Tier {tier} — {TIER_NAMES.get(tier, 'worker')}, as the pool assigned it."
    try:
        decision = assign_tier(capabilities, rules or TierRules())
    except TierRequirementsNotMet as exc:
        return f"Below the smallest tier: {exc}"
    return f"Qualifies for tier {decision.tier} — {decision.reason}."


def docker_fix(docker: DockerInfo | None, system: str | None = None) -> str:
    """What to do about Docker on this operating system, as one or two sentences.

    The probe's own message already names the fix for the cause it found; this adds the
    operating system's way to start Docker only when the probe could not say.
    """
    if docker is not None and docker.usable:
        return "Docker is ready; nothing to do."
    if docker is not None and docker.message:
        return docker.message
    system = system or platform.system()
    if system == "Windows":
        return "Start Docker Desktop from the Start menu and wait until it says it is running."
    if system == "Darwin":
        return "Open Docker Desktop from Applications and wait until its whale icon is steady."
    return (
        "Start the Docker service (for example: sudo systemctl start docker) and make sure "
        "your user may use it (sudo usermod -aG docker $USER, then log out and in)."
    )
