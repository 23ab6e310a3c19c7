"""The loop that applies the contribution policy: read the signals, decide, govern, act.

It runs on its own thread and sleeps as long as nothing can change: while contributing
"only when idle" it looks every ``input_check`` seconds (someone who comes back gets the
computer within two seconds); while waiting for the idle threshold it sleeps until the
threshold could be reached; otherwise it looks every ``check_interval`` seconds (battery,
load, the schedule's next change). :meth:`PolicyLoop.poke` wakes it at once when the
volunteer changes something.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from desktop_app.agent.governor import Applied, Governor, GovernorConfig
from desktop_app.agent.policy import ContributionPolicy, Signals
from desktop_app.agent.signals import IdleReading, SignalSource

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PolicyInputs:
    """What the volunteer chose, as the loop needs it (read on each pass)."""

    policy: ContributionPolicy
    paused: bool
    snoozed_until: datetime | None
    gpu_enabled: bool


@dataclass(frozen=True)
class LoopTiming:
    """How often the loop looks."""

    input_check: float = 0.5
    """Seconds between idle checks while contributing only when idle."""
    check_interval: float = 2.0
    """Seconds between checks otherwise (battery, load, schedule)."""
    readout_interval: float = 1.0
    """Seconds between idle readings while someone watches the live readout."""
    longest_sleep: float = 60.0
    """The longest sleep (a suspended laptop wakes to the right state within this)."""


class PolicyLoop:
    """Applies the policy on its own thread until :meth:`stop`."""

    def __init__(
        self,
        *,
        inputs: Callable[[], PolicyInputs],
        signals: SignalSource,
        on_change: Callable[[Applied], None],
        clock: Callable[[], datetime],
        governor: GovernorConfig | None = None,
        timing: LoopTiming | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """Nothing runs until :meth:`start`.

        Args:
            inputs: The volunteer's current choices.
            signals: Reads the computer's signals (used only on the loop's thread).
            on_change: Called on the loop's thread with the state to apply, whenever it or
                the decision's words change (and once at the start).
            clock: The current time, aware.
            governor: The timing rules.
            timing: How often to look.
            monotonic: Monotonic seconds (tests inject one).
        """
        self._inputs = inputs
        self._signals = signals
        self._on_change = on_change
        self._clock = clock
        self._governor = Governor(governor)
        self._timing = timing or LoopTiming()
        self._monotonic = monotonic
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._watchers = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._applied: Applied | None = None
        self._published_at = 0.0

    @property
    def applied(self) -> Applied | None:
        """The state last applied (None before the first pass)."""
        return self._applied

    @property
    def idle_reading(self) -> IdleReading | None:
        """The latest idle reading, for the Settings readout."""
        return self._signals.idle_reading

    def start(self) -> None:
        """Start the loop's thread."""
        with self._lock:
            if self._thread is not None:
                return
            thread = threading.Thread(target=self._run, name="policy", daemon=True)
            self._thread = thread
        thread.start()

    def stop(self, *, wait: bool = False) -> None:
        """Stop the loop (after the pass under way); ``wait`` for its thread to end."""
        self._stopped.set()
        self._wake.set()
        thread = self._thread
        if wait and thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)

    def poke(self) -> None:
        """Decide again now (the volunteer changed something)."""
        self._wake.set()

    def watch_idle(self, watching: bool) -> None:
        """Someone watches the live idle readout: keep reading idle time every second."""
        with self._lock:
            self._watchers = max(0, self._watchers + (1 if watching else -1))
        self._wake.set()

    def _run(self) -> None:
        try:
            while not self._stopped.is_set():
                self._wake.clear()
                try:
                    delay = self._pass()
                except Exception:  # keep deciding; a bug must not leave the pool running
                    log.exception("Deciding whether to contribute failed")
                    delay = self._timing.check_interval
                self._wake.wait(delay)
        finally:
            self._signals.close()

    def _pass(self) -> float:
        """Decide once, act on a change; return how long to sleep."""
        inputs = self._inputs()
        rules = inputs.policy.rules
        watching = self._watchers > 0
        signals = self._signals.read(rules, want_idle=watching)
        decision = inputs.policy.decide(
            self._clock(),
            signals,
            paused=inputs.paused,
            snoozed_until=inputs.snoozed_until,
            gpu_enabled=inputs.gpu_enabled,
        )
        applied = self._governor.step(self._monotonic(), decision)
        previous = self._applied
        self._applied = applied
        now = self._monotonic()
        if previous is None or _differs(previous, applied, now - self._published_at):
            if previous is None or previous.decision.headline != decision.headline:
                log.info("%s. %s", decision.headline, decision.reason)
            self._published_at = now
            self._on_change(applied)
        return self._delay(applied, signals, inputs, watching)

    def _delay(
        self, applied: Applied, signals: Signals, inputs: PolicyInputs, watching: bool
    ) -> float:
        timing = self._timing
        rules = inputs.policy.rules
        decision = applied.decision
        delay = timing.longest_sleep
        needs_regular = (rules.battery != "allow") or rules.busy_pause or rules.schedule_only
        if needs_regular:
            delay = timing.check_interval
        if applied.starting_in is not None:
            delay = min(delay, applied.starting_in)
        if decision.until is not None:
            remaining = (decision.until - self._clock()).total_seconds()
            delay = min(delay, max(0.0, remaining))
        uses_idle = rules.idle_only or (rules.gpu_only_when_idle and inputs.gpu_enabled)
        if uses_idle and not inputs.paused:
            if applied.active or signals.idle_seconds is None:
                # Someone may come back at any moment: they get their computer at once.
                delay = min(delay, timing.input_check)
            else:
                # Idle time grows by one second per second at most: nothing can change
                # before the threshold could be reached.
                to_go = rules.idle_seconds - signals.idle_seconds
                delay = min(delay, max(timing.input_check, to_go))
        if watching:
            delay = min(delay, timing.readout_interval)
        return max(0.05, delay)


REWORDING_INTERVAL = 10.0
"""Seconds between updates that only change a figure in the words ("using 73%")."""


def _differs(before: Applied, after: Applied, since_last: float) -> bool:
    """Whether the change is worth telling the UI: any change of state, not every figure."""
    old, new = before.decision, after.decision
    return (
        before.active != after.active
        or before.gpu != after.gpu
        or (before.starting_in is None) != (after.starting_in is None)
        or (old.rule, old.headline, old.fix) != (new.rule, new.headline, new.fix)
        or (old.reason != new.reason and since_last >= REWORDING_INTERVAL)
    )
