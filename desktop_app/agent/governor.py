"""Timing on top of the policy: act at once when someone comes back, never thrash.

The policy answers for one instant; acting on every answer would start and stop containers
on every flicker of a reading. The :class:`Governor` turns the stream of decisions into the
state to apply:

- A decision to stop that is *sudden* (the volunteer came back, paused, unplugged) applies at
  once: the person must get their computer back within seconds.
- A decision to stop that is not sudden (other programs' load) must hold for
  ``stop_after`` seconds: a compile or a page load does not stop the pool.
- A decision to start must hold for ``start_after`` seconds, so a reading that flickers
  across a threshold starts nothing; after a stop, starting again also waits
  ``restart_after`` seconds from that stop, so the containers cycle at most once per
  ``restart_after``. The volunteer's own choices are exempt: after their pause or snooze
  ends, contribution starts at once.

The graphics card follows the same rules as a second channel. The governor is pure: the
caller passes the (monotonic) time.
"""

from __future__ import annotations

from dataclasses import dataclass

from desktop_app.agent.policy import Decision


@dataclass(frozen=True)
class GovernorConfig:
    """How long decisions must hold before they apply."""

    start_after: float = 2.0
    """Seconds a decision to contribute must hold before the containers start."""
    stop_after: float = 15.0
    """Seconds a decision to stop that is not sudden must hold."""
    restart_after: float = 30.0
    """Seconds after a stop before the containers may start again."""


@dataclass(frozen=True)
class Applied:
    """The state to apply now."""

    active: bool
    gpu: bool
    decision: Decision
    """The policy's latest decision (what the volunteer is told)."""
    starting_in: float | None = None
    """Seconds until a pending start applies, while one is pending."""


class _Channel:
    """One on/off output (containers, or the graphics card) with the timing rules."""

    def __init__(self, config: GovernorConfig) -> None:
        self._config = config
        self.on = False
        self._want_since: float | None = None
        self._stop_pending_since: float | None = None
        self._stopped_at: float | None = None
        self._volunteer_stopped = False

    def step(self, now: float, want: bool, sudden: bool, by_volunteer: bool) -> float | None:
        """Apply one decision; return the seconds until a pending start, if one is pending.

        Args:
            now: Monotonic seconds.
            want: The decision says on.
            sudden: A decision to stop applies at once.
            by_volunteer: The decision is the volunteer's own pause or snooze.
        """
        config = self._config
        if want:
            self._stop_pending_since = None
            if self.on:
                return None
            if self._volunteer_stopped:
                ready_at = now  # they chose to resume: no waiting
            else:
                if self._want_since is None:
                    self._want_since = now
                ready_at = self._want_since + config.start_after
                if self._stopped_at is not None:
                    ready_at = max(ready_at, self._stopped_at + config.restart_after)
            if now >= ready_at:
                self.on = True
                self._want_since = None
                self._volunteer_stopped = False
                return None
            return ready_at - now
        self._want_since = None
        if by_volunteer:
            self._volunteer_stopped = True
        elif not self.on:
            # A rule holds it off after the volunteer's own pause ended: timing applies again.
            self._volunteer_stopped = False
        if not self.on:
            return None
        if not sudden:
            if self._stop_pending_since is None:
                self._stop_pending_since = now
            if now - self._stop_pending_since < config.stop_after:
                return None
        self.on = False
        self._stop_pending_since = None
        self._stopped_at = now
        return None


class Governor:
    """Turns each policy decision into the state to apply. Not thread-safe."""

    def __init__(self, config: GovernorConfig | None = None) -> None:
        """Start with nothing running."""
        self._config = config or GovernorConfig()
        self._containers = _Channel(self._config)
        self._gpu = _Channel(self._config)

    def step(self, now: float, decision: Decision) -> Applied:
        """Take the decision made at the monotonic time ``now``; return what to apply."""
        by_volunteer = decision.rule in ("paused", "snoozed")
        was_on = self._containers.on
        starting_in = self._containers.step(now, decision.active, decision.sudden, by_volunteer)
        if not self._containers.on:
            self._gpu.step(now, False, True, by_volunteer)  # never without the containers
        elif not was_on:
            # Starting: the graphics card starts with the containers (its decision held as
            # long as theirs), rather than a moment later with a second reconnection.
            self._gpu.on = decision.gpu
            if not decision.gpu:
                self._gpu.step(now, False, True, by_volunteer)
        else:
            # Its own timing, so that "GPU only when idle" stops GPU work at once while CPU
            # work goes on.
            gpu_sudden = decision.sudden if decision.gpu_sudden is None else decision.gpu_sudden
            self._gpu.step(now, decision.gpu, gpu_sudden, by_volunteer)
        return Applied(self._containers.on, self._gpu.on, decision, starting_in)
