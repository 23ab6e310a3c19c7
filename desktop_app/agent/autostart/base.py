"""The start-at-login interface, its error, and the backend that stands in where none applies."""

from __future__ import annotations

import abc
import logging
from pathlib import Path

from desktop_app.agent.errors import AgentError
from desktop_app.agent.files import atomic_write_text

logger = logging.getLogger(__name__)


class AutostartError(AgentError):
    """Start at login could not be read or changed.

    ``str(exc)`` is the plain sentence for the volunteer (the title is left out of it, so it
    can be shown as it is); :attr:`title` and :attr:`message` are there as for every
    :class:`~desktop_app.agent.errors.AgentError`.
    """

    def __init__(self, message: str, title: str = "Start at login not changed") -> None:
        """Create the error.

        Args:
            message: A plain sentence saying what went wrong and what to do.
            title: A short heading for people.
        """
        super().__init__(title, message)

    def __str__(self) -> str:
        return self.message


class Autostart(abc.ABC):
    """Whether the tray app starts when the volunteer logs in, for one operating system.

    Backends only read and write a small local file or registry value, so every method
    returns at once; none of them starts or stops the app now, only at the next login.
    """

    description: str
    """Where the entry lives, in plain words: ``"an autostart entry in /home/x/.config/…"``."""
    available: bool = True
    """False where start at login cannot be offered (then :meth:`enable` raises)."""

    @abc.abstractmethod
    def is_enabled(self) -> bool:
        """Whether the app will start at the next login.

        Raises:
            AutostartError: The entry exists but could not be read.
        """

    @abc.abstractmethod
    def enable(self) -> None:
        """Start the app at login, writing the entry afresh with the current command.

        Idempotent: enabling again replaces the entry, so an entry left by an older install
        (another path, another interpreter) is brought up to date.

        Raises:
            AutostartError: The entry could not be written.
        """

    @abc.abstractmethod
    def disable(self) -> None:
        """Stop starting the app at login; nothing happens when it already does not.

        Raises:
            AutostartError: The entry could not be removed.
        """


class NullAutostart(Autostart):
    """Stands in where no backend applies; says so plainly."""

    available = False

    def __init__(self, reason: str) -> None:
        """Create the backend.

        Args:
            reason: The sentence to show, e.g. ``"Starting at login is not available on
                sunos5."``; it is also the :attr:`description`, as there is no entry.
        """
        self.reason = reason
        self.description = reason

    def is_enabled(self) -> bool:
        """Always False: nothing starts at login here."""
        return False

    def enable(self) -> None:
        """Always fails, with the reason.

        Raises:
            AutostartError: Always; its message is the reason.
        """
        raise AutostartError(self.reason, title="Start at login unavailable")

    def disable(self) -> None:
        """Nothing to do: nothing starts at login here."""


def write_entry(path: Path, text: str, *, starts: bool = True) -> None:
    """Write a login entry file atomically, readable by all (launchd refuses others' writes).

    Args:
        path: The entry's file.
        text: Its content.
        starts: Whether the entry starts the app (False: it hides a system-wide one).

    Raises:
        AutostartError: It could not be written; the sentence says which file.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text, mode=0o644)
    except OSError as exc:
        raise _failed(path, exc, starting=starts, verb="written") from exc
    logger.info("Start at login %s: %s", "enabled" if starts else "disabled", path)


def remove_entry(path: Path) -> None:
    """Remove a login entry file; nothing happens when there is none.

    Raises:
        AutostartError: It could not be removed; the sentence says which file.
    """
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        raise _failed(path, exc, starting=False, verb="removed") from exc
    logger.info("Start at login disabled: %s", path)


def _failed(path: Path, exc: OSError, *, starting: bool, verb: str) -> AutostartError:
    goal = "set to start at login" if starting else "kept from starting at login"
    return AutostartError(
        f"RMA Compute Pool could not be {goal}: {path} could not be {verb} ({exc.strerror or exc})."
    )
