"""Start at login on macOS: a per-user launch agent.

launchd reads every property list in ``~/Library/LaunchAgents`` when the volunteer logs in
and starts the jobs marked ``RunAtLoad``. System Settings lists such agents under Login
Items (macOS 13+), where the volunteer can also switch them off.
"""

from __future__ import annotations

import logging
import plistlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from xml.parsers.expat import ExpatError

from .base import Autostart, AutostartError, remove_entry, write_entry

logger = logging.getLogger(__name__)

LAUNCHD_LABEL = "rma-desktop"
"""The job's label, unique among launchd jobs; also the file's name without ``.plist``."""


class LaunchdAutostart(Autostart):
    """A launch agent property list in the volunteer's ``~/Library/LaunchAgents``.

    Only the file is written or removed. launchd is not told now (no ``launchctl
    bootstrap``/``load``): loading a ``RunAtLoad`` job starts it at once, a second copy of
    the app beside the one the volunteer is using, and the file alone is what the next
    login reads. For the same reason :meth:`disable` does not unload a job that is loaded
    now: it has no ``KeepAlive``, so launchd will not start it again in this session.
    """

    def __init__(self, command: Sequence[str], home: Path, *, label: str = LAUNCHD_LABEL) -> None:
        """Create the backend. Nothing is read or written until a method is called.

        Args:
            command: What the job starts (see :func:`.launch_command`).
            home: The volunteer's home folder.
            label: The job's label.
        """
        self._command = list(command)
        self._label = label
        self._agents_dir = home / "Library" / "LaunchAgents"
        self.path = self._agents_dir / f"{label}.plist"
        """The property list :meth:`enable` writes."""
        self.description = f"a launch agent in {self._agents_dir}"

    def job(self) -> dict[str, Any]:
        """The launch agent's properties, as :meth:`enable` writes them."""
        return {
            "Label": self._label,
            "ProgramArguments": list(self._command),
            "RunAtLoad": True,
            # Interactive: the app the volunteer sees; launchd must not throttle it as a
            # background job.
            "ProcessType": "Interactive",
            # Aqua: only in a graphical login, not over ssh, where a tray app has no menu bar.
            "LimitLoadToSessionType": "Aqua",
        }

    def is_enabled(self) -> bool:
        """Whether the property list is there and not marked ``Disabled``.

        A file that cannot be parsed counts as not enabled (launchd skips it too);
        :meth:`enable` replaces it.

        Raises:
            AutostartError: The file exists but could not be read.
        """
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise AutostartError(
                f"Whether RMA Compute Pool starts at login cannot be told: {self.path} could "
                f"not be read ({exc.strerror or exc}).",
                title="Start at login unknown",
            ) from exc
        try:
            job = plistlib.loads(data)
        except (ValueError, ExpatError) as exc:  # InvalidFileException is a ValueError
            logger.warning("%s is not a property list (%s); treating it as off", self.path, exc)
            return False
        return isinstance(job, dict) and job.get("Disabled") is not True

    def enable(self) -> None:
        """Write the property list with the current command, replacing any earlier one.

        Raises:
            AutostartError: The file could not be written.
        """
        text = plistlib.dumps(self.job(), fmt=plistlib.FMT_XML).decode("utf-8")
        write_entry(self.path, text)

    def disable(self) -> None:
        """Remove the property list; nothing happens when there is none.

        Raises:
            AutostartError: The file could not be removed.
        """
        remove_entry(self.path)
