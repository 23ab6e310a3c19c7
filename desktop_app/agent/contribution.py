"""The tray app's engine: the volunteer's settings, the agent on its own thread, and snoozes.

:class:`Contribution` is the one object the tray app drives. It never imports Qt and none of
its public methods blocks on Docker, NVML or HTTP (those run on the agent's thread), except
the ones documented as blocking (:meth:`Contribution.probe_hardware`,
:meth:`Contribution.container_details`, :meth:`Contribution.container_logs`), which the UI
calls from a worker thread. Observers get a :class:`Snapshot` whenever anything they show
changes, on whichever thread made the change.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, tzinfo
from pathlib import Path

from desktop_app.agent import event_loop
from desktop_app.agent.agent import EXIT_REFUSED, Agent, AgentConfig, AgentStatus
from desktop_app.agent.autostart import Autostart, AutostartError
from desktop_app.agent.containers import (
    ContainerDetails,
    ContainerRuntime,
    DockerGateway,
    RuntimeConfig,
)
from desktop_app.agent.credentials import CredentialStore, FileCredentialStore
from desktop_app.agent.governor import Applied, GovernorConfig
from desktop_app.agent.hardware import ProbeReport
from desktop_app.agent.hardware.host import cpu_load
from desktop_app.agent.host_load import OtherProgramsCpu, create_pool_cpu_meter
from desktop_app.agent.identity import IdentityStore, load_or_create_installation_id
from desktop_app.agent.idle import IdleDetector, create_idle_detector
from desktop_app.agent.listeners import Listeners
from desktop_app.agent.paths import AppPaths
from desktop_app.agent.policy import ContributionPolicy, Decision
from desktop_app.agent.policy_loop import LoopTiming, PolicyInputs, PolicyLoop
from desktop_app.agent.power import BatteryState, read_battery
from desktop_app.agent.presentation import Situation, describe_situation
from desktop_app.agent.schedule import ContributionRules
from desktop_app.agent.settings import SettingsStore, VolunteerSettings
from desktop_app.agent.signals import IdleReading, LoadMeter, SignalSource
from shared import WorkerCapabilities

log = logging.getLogger(__name__)

HARDWARE_MAX_AGE = 60.0
"""Seconds a hardware probe is reused (the first-run check and joining share one)."""
SNOOZE_RECHECK = 60.0
"""Longest sleep of the snooze timer: a suspended laptop wakes up to the right state."""
CRASH_RESTART_DELAY = 10.0
"""Wait before starting the agent again after it stopped by itself (a bug, logged)."""


def utc_now() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


def measure_other_programs(container_ids: Callable[[], list[str]]) -> OtherProgramsCpu:
    """Other programs' CPU use here, without the pool's containers (``container_ids``)."""
    return OtherProgramsCpu(create_pool_cpu_meter(container_ids))


@dataclass(frozen=True)
class Snapshot:
    """Everything the tray and the window show, at one moment."""

    settings: VolunteerSettings
    status: AgentStatus | None
    """The agent's latest status; None before it first ran."""
    situation: Situation
    hardware: WorkerCapabilities | None
    """The last hardware probe (also done before joining)."""
    notice: str | None
    """Something the window should say until dismissed (corrupt settings, save failure)."""
    paused: bool = False
    """The volunteer paused or snoozed contribution."""
    paused_until: datetime | None = None
    """The end of a snooze (None for a pause until resumed)."""
    stopping: bool = False
    """The app is quitting: the containers are being stopped."""
    sequence: int = 0
    """Increases with every snapshot: they are made on several threads and may arrive out
    of order, and the UI's bridge drops one older than what it delivered."""
    decision: Decision | None = None
    """The contribution policy's latest decision (None before its first, or before joining)."""
    active: bool = False
    """The pool's containers may run now (the decision, after its timing rules)."""
    starting_in: float | None = None
    """Seconds until contribution starts, while a start waits for its timing rules."""


SnapshotListener = Callable[[Snapshot], None]
ProbeFunction = Callable[[Path], ProbeReport]
"""Probes the hardware; the argument is the folder whose disk's free space counts."""


def _summary(capabilities: WorkerCapabilities) -> str:
    docker = capabilities.docker
    docker_words = "Docker running" if docker and docker.usable else "Docker not usable"
    gpus = ", ".join(gpu.name for gpu in capabilities.gpus) or "no GPU"
    return f"{capabilities.cpu_cores} cores, {gpus}, {docker_words}"


class Contribution:
    """Settings, agent and snooze for one volunteer. Thread-safe."""

    def __init__(
        self,
        *,
        paths: AppPaths,
        store: SettingsStore,
        settings: VolunteerSettings,
        credentials: CredentialStore,
        probe: ProbeFunction,
        gateway_factory: Callable[[], DockerGateway] = DockerGateway,
        notice: str | None = None,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], datetime] = utc_now,
        agent_config: Callable[[AgentConfig], AgentConfig] | None = None,
        autostart: Autostart | None = None,
        built_in_coordinator: str | None = None,
        idle_factory: Callable[[], IdleDetector] = create_idle_detector,
        battery: Callable[[], BatteryState | None] = read_battery,
        load_meter: Callable[[Callable[[], list[str]]], LoadMeter | None] = (
            measure_other_programs
        ),
        zone: tzinfo | None = None,
        governor: GovernorConfig | None = None,
        loop_timing: LoopTiming | None = None,
    ) -> None:
        """Create it; nothing starts until :meth:`start` (or :meth:`join`).

        Args:
            paths: Where the agent keeps its files.
            store: Where the settings are saved.
            settings: The settings loaded from ``store``.
            credentials: Where the worker token is kept.
            probe: The hardware probe.
            gateway_factory: Builds the Docker adapter for each agent run.
            notice: A sentence from loading the settings, shown until dismissed.
            environ: The environment for presets (``RMA_COORDINATOR_URL``); os.environ by default.
            clock: The current time (tests inject one).
            agent_config: Adjusts the agent's configuration (tests shorten its timings).
            autostart: Starts the app at login (None: not offered here).
            built_in_coordinator: The pool address the installed app was built with.
            idle_factory: Finds the desktop's idle detector (called on the policy's thread).
            battery: Reads the battery.
            load_meter: Measures other programs' CPU use, given the pool's container ids
                (None where it cannot).
            zone: The time zone weekly windows are read in; None for the computer's own.
            governor: The policy's timing rules (tests shorten them).
            loop_timing: How often the policy looks (tests shorten it).
        """
        self._paths = paths
        self._store = store
        self._settings = settings
        self._credentials = credentials
        self._probe = probe
        self._gateway_factory = gateway_factory
        self._notice = notice
        self._environ = environ if environ is not None else os.environ
        self._clock = clock
        self._adjust_config = agent_config
        self._lock = threading.RLock()
        self._listeners: Listeners[Snapshot] = Listeners("snapshot")
        self._agent: Agent | None = None
        self._runtime: ContainerRuntime | None = None
        self._thread: threading.Thread | None = None
        self._status: AgentStatus | None = None
        self._hardware: tuple[float, ProbeReport] | None = None
        self._probe_lock = threading.Lock()
        self._snooze_timer: threading.Timer | None = None
        self._restart_after_stop = False
        self._stopping = False
        self._shut_down = False
        self._sequence = 0
        self._on_stopped: list[Callable[[], None]] = []
        self._saver = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="settings")
        self._autostart = autostart
        self._built_in_coordinator = built_in_coordinator
        self._joined_at_launch = settings.joined
        self._idle_factory = idle_factory
        self._battery = battery
        self._load_meter = load_meter
        self._zone = zone
        self._governor = governor
        self._loop_timing = loop_timing
        self._policy_loop: PolicyLoop | None = None
        self._idle_watchers = 0
        self._applied: Applied | None = None
        self._gpu_claim: bool | None = None
        """Whether the running agent offered the graphics card to the pool."""

    # -- observing -------------------------------------------------------------------------

    @property
    def settings(self) -> VolunteerSettings:
        """The settings in effect."""
        return self._settings

    @property
    def settings_path(self) -> Path:
        """Where the settings are saved."""
        return self._store.path

    @property
    def log_dir(self) -> Path:
        """Where the app's logs are."""
        return self._paths.log_dir

    @property
    def credentials_note(self) -> str:
        """Where the worker's secret is kept, and a warning when it is only a private file."""
        if isinstance(self._credentials, FileCredentialStore):
            return (
                "No system keyring was found, so this computer's pool key is kept in a file "
                f"only you can read: {self._credentials.path}"
            )
        return f"This computer's pool key is kept in {self._credentials.description}."

    @property
    def running(self) -> bool:
        """Whether an agent is running (joined and not quit)."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def coordinator_url(self) -> str:
        """The pool address in effect."""
        return self._coordinator_of(self._settings)

    def preset_coordinator_url(self) -> str:
        """The pool address used when the volunteer gives none (preset, else default)."""
        return self._coordinator_of(VolunteerSettings())

    def _coordinator_of(self, settings: VolunteerSettings) -> str:
        return settings.coordinator(self._environ, self._built_in_coordinator)

    def snapshot(self) -> Snapshot:
        """The current snapshot."""
        with self._lock:
            hardware = self._hardware[1].capabilities if self._hardware else None
            status = self._status
            if hardware is None and status is not None:
                hardware = status.capabilities
            now = self._clock()
            paused, until = self._settings.paused_until(now)
            quitting = self._shut_down and self.running
            applied = self._applied if self._settings.joined else None
            self._sequence += 1
            return Snapshot(
                settings=self._settings,
                status=status,
                situation=describe_situation(
                    status, self._settings, now, stopping=quitting, applied=applied
                ),
                hardware=hardware,
                notice=self._notice,
                paused=paused,
                paused_until=until,
                stopping=quitting,
                sequence=self._sequence,
                decision=applied.decision if applied is not None else None,
                active=applied.active if applied is not None else False,
                starting_in=applied.starting_in if applied is not None else None,
            )

    def subscribe(self, listener: SnapshotListener) -> Callable[[], None]:
        """Call ``listener`` with each new snapshot (on any thread); returns unsubscribe."""
        return self._listeners.subscribe(listener)

    def _publish(self) -> None:
        self._listeners.notify(self.snapshot())

    def dismiss_notice(self) -> None:
        """The volunteer read the notice."""
        with self._lock:
            self._notice = None
        self._publish()

    # -- the volunteer's choices -----------------------------------------------------------

    def start(self) -> None:
        """Start contributing as the settings say (only once the volunteer has joined)."""
        with self._lock:
            if not self._settings.joined or self._shut_down:
                return
            self._arm_snooze_timer()
            if self._policy_loop is None and self._joined_at_launch:
                self._refresh_autostart()
            self._start_policy_loop()
            if self.running:
                if self._stopping:
                    self._restart_after_stop = True
                return
            self._start_agent()
        self._publish()

    def join(self, settings: VolunteerSettings) -> None:
        """The volunteer agreed in the first-run check: save and start contributing."""
        self._change(lambda _: settings.model_copy(update={"joined": True}))
        self.start()
        self._apply_autostart()

    def set_contributing(self, on: bool) -> None:
        """The big switch: on resumes (and ends a snooze), off pauses until switched on."""
        self._change(lambda old: old.model_copy(update={"contributing": on, "snoozed_until": None}))

    def snooze(self, until: datetime) -> None:
        """Pause until ``until`` (aware), then contribute again by itself."""
        if until.tzinfo is None:
            raise ValueError("a snooze needs an aware time")
        self._change(
            lambda old: old.model_copy(update={"contributing": True, "snoozed_until": until})
        )

    def resume(self) -> None:
        """End a pause or a snooze now."""
        self.set_contributing(True)

    def update_settings(self, settings: VolunteerSettings) -> None:
        """Use new settings from the Settings tab; restarts the agent only when it must.

        The pause and snooze in effect are kept: the tray may have changed them while the
        volunteer was editing.
        """
        kept = ("joined", "contributing", "snoozed_until", "rules")
        before = self._settings.start_at_login
        self._change(
            lambda old: settings.model_copy(update={name: getattr(old, name) for name in kept})
        )
        if self._settings.start_at_login != before:
            self._apply_autostart()

    def update_rules(self, rules: ContributionRules) -> None:
        """Use new rules for when to contribute (from the Schedule tab or a quick fix)."""
        self._change(lambda old: old.model_copy(update={"rules": rules}))

    def _change(self, update: Callable[[VolunteerSettings], VolunteerSettings]) -> None:
        """Apply ``update`` to the settings in effect, under the lock (no lost choices)."""
        start = False
        with self._lock:
            old = self._settings
            new = update(old)
            self._settings = new
            self._save(new)
            self._arm_snooze_timer()
            agent, runtime = self._agent, self._runtime
            if agent is not None and self.running and not self._stopping:
                if self._needs_restart(old, new):
                    log.info("Settings changed; reconnecting to the pool with the new settings.")
                    self._restart_after_stop = True
                    self._stopping_agent(agent)
                else:
                    limits = new.resource_limits(os.cpu_count())
                    if runtime is not None and limits != old.resource_limits(os.cpu_count()):
                        runtime.set_limits(limits)
                    if new.paused_until(self._clock())[0]:
                        # The volunteer's own pause applies now, not after the policy's
                        # next pass (which may be reading a slow idle source).
                        agent.set_paused(True)
            if self._policy_loop is not None:
                self._policy_loop.poke()  # pause, snooze and rules apply within moments
            # An agent the pool refused has stopped; a change may be the fix, so try again.
            start = new.joined and not self.running and not self._shut_down and old != new
        if start:
            self.start()
        self._publish()

    def _needs_restart(self, old: VolunteerSettings, new: VolunteerSettings) -> bool:
        return (
            self._coordinator_of(old) != self._coordinator_of(new)
            or old.gpu_enabled != new.gpu_enabled
            or old.enrollment_token != new.enrollment_token
        )

    def _save(self, settings: VolunteerSettings) -> None:
        def write() -> None:
            try:
                self._store.save(settings)
            except OSError as exc:
                log.warning("Could not save the settings: %s", exc)
                with self._lock:
                    self._notice = (
                        f"Your settings could not be saved ({exc}); they apply until the app "
                        "closes."
                    )
                self._publish()

        # One writer thread, in order: a later choice is never overwritten by an earlier one.
        self._saver.submit(write)

    # -- when to contribute: the policy ------------------------------------------------------

    def idle_reading(self) -> IdleReading | None:
        """How idle detection is doing (for the Settings readout); None before the first."""
        loop = self._policy_loop
        return loop.idle_reading if loop is not None else None

    def watch_idle(self, watching: bool) -> None:
        """The live idle readout is (or is no longer) on screen: read idle time every second."""
        with self._lock:
            self._idle_watchers = max(0, self._idle_watchers + (1 if watching else -1))
            loop = self._policy_loop
        if loop is not None:
            loop.watch_idle(watching)

    def _start_policy_loop(self) -> None:
        if self._policy_loop is not None:
            return
        source = SignalSource(
            idle_factory=self._idle_factory,
            battery=self._battery,
            other_cpu=self._load_meter(self._pool_container_ids),
        )
        loop = PolicyLoop(
            inputs=self._policy_inputs,
            signals=source,
            on_change=self._take_policy,
            clock=self._clock,
            governor=self._governor,
            timing=self._loop_timing,
        )
        self._policy_loop = loop
        for _ in range(self._idle_watchers):  # the readout was opened before contribution began
            loop.watch_idle(True)
        loop.start()

    def _pool_container_ids(self) -> list[str]:
        runtime = self._runtime
        return runtime.running_container_ids() if runtime is not None else []

    def _policy_inputs(self) -> PolicyInputs:
        settings = self._settings
        return PolicyInputs(
            policy=ContributionPolicy(settings.rules, zone=self._zone),
            paused=not settings.contributing,
            snoozed_until=settings.snoozed_until,
            gpu_enabled=settings.gpu_enabled,
        )

    def _take_policy(self, applied: Applied) -> None:
        """The policy's timing says what to run now (called on the policy's thread)."""
        with self._lock:
            self._applied = applied
            agent = self._agent
            if agent is not None and self.running and not self._stopping:
                # Paused, the pool routes no new work here first; then the containers stop.
                agent.set_paused(not applied.active)
                claim = self._wanted_gpu_claim()
                if claim != self._gpu_claim:
                    log.info(
                        "Offering the pool %s the graphics card.", "again" if claim else "no more"
                    )
                    self._gpu_claim = claim
                    agent.register_again()  # the CPU containers keep running meanwhile
        self._publish()

    def _wanted_gpu_claim(self) -> bool:
        """Whether the agent should offer the graphics card to the pool now.

        While contribution is off the claim stays as it was: reconnecting then would gain
        nothing and cost a round of stops and starts.
        """
        settings = self._settings
        hardware = self._hardware[1].capabilities if self._hardware else None
        if not settings.gpu_enabled or (hardware is not None and not hardware.gpus):
            return False  # nothing to offer: never a reason to register again
        applied = self._applied
        if applied is not None and applied.active:
            return applied.gpu
        if self._gpu_claim is not None:
            return self._gpu_claim
        return not settings.rules.gpu_only_when_idle

    # -- start at login --------------------------------------------------------------------------

    @property
    def autostart_description(self) -> str | None:
        """Where the start-at-login entry lives, in words; None where it is not offered."""
        autostart = self._autostart
        if autostart is None or not autostart.available:
            return None
        return autostart.description

    def _refresh_autostart(self) -> None:
        """Once per run: follow a change made outside the app, or point the entry here.

        A volunteer who switched the entry off in their desktop's own settings (or Task
        Manager) keeps it off, and the Settings tab says so; an entry that is on is
        written again, so it starts this copy of the app even after a move or reinstall.
        """
        autostart = self._autostart
        if autostart is None or not autostart.available:
            return

        def refresh() -> None:
            try:
                if autostart.is_enabled():
                    autostart.enable()
                    return
            except (AutostartError, OSError) as exc:
                log.warning("Could not check starting at login: %s", exc)
                return
            if self._settings.start_at_login:
                log.info("Starting at login was switched off outside the app; keeping it off.")
                self._change(lambda old: old.model_copy(update={"start_at_login": False}))

        self._saver.submit(refresh)

    def _apply_autostart(self) -> None:
        """Make the login entry match the setting (on the settings writer's thread)."""
        autostart = self._autostart
        if autostart is None or not autostart.available:
            return
        wanted = self._settings.start_at_login and self._settings.joined

        def apply() -> None:
            try:
                if wanted:
                    autostart.enable()
                    log.info("The app starts at login (%s).", autostart.description)
                else:
                    autostart.disable()
                    log.info("The app no longer starts at login.")
            except (AutostartError, OSError) as exc:
                log.warning("Could not change starting at login: %s", exc)
                with self._lock:
                    self._notice = f"Starting at login could not be changed: {exc}"
                self._publish()

        self._saver.submit(apply)

    # -- snoozes ---------------------------------------------------------------------------

    def _arm_snooze_timer(self) -> None:
        with self._lock:
            if self._snooze_timer is not None:
                self._snooze_timer.cancel()
                self._snooze_timer = None
            until = self._settings.snoozed_until
            if until is None or self._shut_down:
                return
            remaining = (until - self._clock()).total_seconds()
            timer = threading.Timer(max(0.0, min(remaining, SNOOZE_RECHECK)), self._check_snooze)
            timer.daemon = True
            timer.name = "snooze"
            self._snooze_timer = timer
            timer.start()

    def _check_snooze(self) -> None:
        with self._lock:
            until = self._settings.snoozed_until
            if until is None:
                return
            still_snoozed = until > self._clock()
            if still_snoozed:
                self._arm_snooze_timer()
        if still_snoozed:
            self._publish()  # "until tomorrow 08:00" becomes "until 08:00" at midnight
            return
        log.info("The snooze is over; contributing again.")
        self._change(lambda old: old.model_copy(update={"snoozed_until": None}))

    # -- the agent's thread ------------------------------------------------------------------

    def _start_agent(self) -> None:
        settings = self._settings
        runtime = ContainerRuntime(
            self._gateway_factory(),
            RuntimeConfig(
                worker=load_or_create_installation_id(self._paths.state_dir),
                limits=settings.resource_limits(os.cpu_count()),
            ),
        )
        config = AgentConfig(
            coordinator_url=self._coordinator_of(settings),
            enrollment_token=settings.enrollment_token
            or self._environ.get("RMA_ENROLLMENT_TOKEN")
            or None,
        )
        if self._adjust_config is not None:
            config = self._adjust_config(config)
        self._gpu_claim = self._wanted_gpu_claim()
        agent = Agent(
            config,
            identities=IdentityStore(self._paths.state_dir, self._credentials),
            probe=lambda: self._probe_for_agent(bool(self._gpu_claim)),
            load_sampler=cpu_load,
            containers=runtime,
        )
        # Nothing runs until the policy has said so (no surprise CPU use at start-up).
        applied = self._applied
        agent.set_paused(applied is None or not applied.active)
        agent.subscribe(lambda status: self._take_status(agent, status))
        self._agent, self._runtime = agent, runtime
        self._status = None
        thread = threading.Thread(target=self._run_agent, args=(agent,), name="agent", daemon=True)
        self._thread = thread
        thread.start()

    def _run_agent(self, agent: Agent) -> None:
        try:
            exit_code = event_loop.run(agent.run())
        except Exception:
            log.exception("The agent stopped unexpectedly")
            exit_code = -1
        with self._lock:
            stopped_on_purpose = self._stopping
            self._stopping = False
            self._agent = None
            self._runtime = None
            if self._thread is threading.current_thread():
                self._thread = None  # so start() below begins a new one
            callbacks, self._on_stopped = self._on_stopped, []
            restart = self._restart_after_stop and not self._shut_down
            self._restart_after_stop = False
        if not stopped_on_purpose and exit_code not in (0, EXIT_REFUSED) and not self._shut_down:
            log.warning("Starting the agent again in %.0f s.", CRASH_RESTART_DELAY)
            timer = threading.Timer(CRASH_RESTART_DELAY, self.start)
            timer.daemon = True
            timer.start()
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("A stop callback failed")
        if restart:
            self.start()
        else:
            self._publish()

    def _take_status(self, agent: Agent, status: AgentStatus) -> None:
        with self._lock:
            if agent is not self._agent:
                return
            self._status = status
        self._publish()

    def _stopping_agent(self, agent: Agent) -> None:
        self._stopping = True
        agent.stop()

    def _probe_for_agent(self, gpu_claim: bool) -> ProbeReport:
        report = self.probe_hardware()
        if gpu_claim or not report.capabilities.gpus:
            return report
        # The volunteer switched the GPU off (or it is theirs while they use the computer):
        # the pool must not plan GPU work here.
        capabilities = report.capabilities.model_copy(update={"gpus": []})
        return replace(report, capabilities=capabilities)

    # -- blocking helpers for the UI's worker threads ----------------------------------------

    def probe_hardware(self, *, fresh: bool = False) -> ProbeReport:
        """Probe the hardware (or reuse a probe under a minute old). Blocking."""
        with self._probe_lock:
            cached = self._hardware
            if not fresh and cached is not None and time.monotonic() - cached[0] < HARDWARE_MAX_AGE:
                return cached[1]
            self._paths.ensure()
            report = self._probe(self._paths.state_dir)
            log.info("Checked this computer: %s", _summary(report.capabilities))
            with self._lock:
                self._hardware = (time.monotonic(), report)
        self._publish()
        return report

    def container_details(self) -> list[ContainerDetails]:
        """CPU, memory and uptime of the pool's containers here. Blocking (Docker)."""
        runtime = self._runtime
        return runtime.details() if runtime is not None else []

    def container_logs(self, service: str, tail: int = 200) -> str:
        """The last lines of a service's log. Blocking (Docker)."""
        runtime = self._runtime
        if runtime is None:
            return "Nothing runs for the pool on this computer right now."
        return runtime.logs(service, tail=tail)

    # -- quitting ------------------------------------------------------------------------------

    def shutdown(self, on_done: Callable[[], None]) -> None:
        """Stop the containers and leave the pool, then call ``on_done`` (on any thread).

        Returns at once; the containers stop on the agent's thread.
        """
        with self._lock:
            self._shut_down = True
            if self._snooze_timer is not None:
                self._snooze_timer.cancel()
            loop, self._policy_loop = self._policy_loop, None
        if loop is not None:
            loop.stop()
        with self._lock:
            agent = self._agent
            if agent is None or not self.running:
                on_done_now = True
            else:
                self._on_stopped.append(on_done)
                self._restart_after_stop = False
                self._stopping_agent(agent)
                on_done_now = False
        self._publish()
        if on_done_now:
            on_done()
