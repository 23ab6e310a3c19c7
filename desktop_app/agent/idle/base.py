"""The idle-detector interface, its error, and the Null backend.

"Idle" means the seconds since the person last touched the keyboard or the mouse. Each
operating system (and, on Linux, each kind of desktop) answers that differently, so every
way of asking is a backend in its own module, and
:func:`desktop_app.agent.idle.create_idle_detector` picks the one that works here.
"""

from __future__ import annotations

import abc


class IdleUnavailable(Exception):
    """Idle time cannot be read here; ``str(exc)`` is a plain sentence for a volunteer.

    Backends word it as a clause without a final full stop (e.g. ``"the X11 screen saver
    library (libXss) is not installed"``), so the factory can list several in one sentence.
    """


class IdleDetector(abc.ABC):
    """Reads how long the person at this computer has not used the keyboard or mouse.

    Threading: all calls on one detector must come from one thread (the backends keep one
    connection each and do not lock it). Use one detector per thread if you need more.

    Cost: :meth:`idle_seconds` is meant to be called about twice a second, so backends open
    their connection once, on the first read, and reuse it. Constructors do no I/O.
    """

    source: str
    """Where the number comes from, in plain words, e.g. ``"GNOME's idle monitor"``."""

    @abc.abstractmethod
    def idle_seconds(self) -> float:
        """Seconds since the last keyboard or mouse input.

        Returns:
            A number of seconds, never negative.

        Raises:
            IdleUnavailable: The idle time cannot be read (the message says why).
        """

    def close(self) -> None:  # noqa: B027 - a no-op default: most backends hold nothing
        """Release connections and handles. Safe to call more than once."""


class NullIdleDetector(IdleDetector):
    """Stands in where no backend works; every read says plainly why."""

    source = "none"

    def __init__(self, reason: str) -> None:
        """Create the detector.

        Args:
            reason: The sentence every read raises, e.g. ``"No way to read idle time was
                found on this desktop (tried: ...)."``.
        """
        self.reason = reason

    def idle_seconds(self) -> float:
        """Never returns.

        Raises:
            IdleUnavailable: Always, with the reason given at construction.
        """
        raise IdleUnavailable(self.reason)
