r"""Start at login on Windows: a value in the volunteer's Run key.

Explorer starts every command in ``HKEY_CURRENT_USER\Software\Microsoft\Windows\
CurrentVersion\Run`` when the volunteer logs in. Task Manager's Startup tab and Settings >
Apps > Startup switch such an entry off without touching it: they mark it disabled in the
``StartupApproved\Run`` key beside, which :meth:`WindowsRunKeyAutostart.is_enabled` reads
and :meth:`WindowsRunKeyAutostart.enable` clears.

The registry is reached through two small protocols, :class:`RunKey` and
:class:`StartupApproval`, so the logic is tested anywhere with in-memory fakes; the real
implementations import ``winreg`` only when called, as it exists only on Windows.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Sequence
from typing import Protocol

from .base import Autostart, AutostartError

logger = logging.getLogger(__name__)

RUN_KEY_PATH = r"Software\Microsoft\Windows\CurrentVersion\Run"
"""The per-user Run key, under ``HKEY_CURRENT_USER``."""

STARTUP_APPROVED_KEY_PATH = (
    r"Software\Microsoft\Windows\CurrentVersion\Explorer\StartupApproved\Run"
)
"""Where Task Manager records Run entries the volunteer switched off."""

RUN_VALUE_NAME = "RMA Compute Pool"
"""Our value's name in both keys; Task Manager shows it."""

_NOT_WINDOWS = "The Windows registry can only be used on Windows."


class RunKey(Protocol):
    """String values in the Run key, by name."""

    def get(self, name: str) -> str | None:
        """The value called ``name``, or None when there is none (or it is not text)."""
        ...

    def set(self, name: str, value: str) -> None:
        """Store ``value`` (as ``REG_SZ``) under ``name``, replacing any earlier one."""
        ...

    def delete(self, name: str) -> None:
        """Remove the value called ``name``; nothing happens when there is none."""
        ...


class StartupApproval(Protocol):
    """Task Manager's record of the Run entries the volunteer switched off."""

    def is_disabled(self, name: str) -> bool:
        """Whether the Run entry called ``name`` is switched off."""
        ...

    def clear(self, name: str) -> None:
        """Forget any record for ``name``, so the Run entry is on again."""
        ...


class WindowsRunKeyAutostart(Autostart):
    """A command line in the volunteer's Run key."""

    def __init__(
        self,
        command: Sequence[str],
        run_key: RunKey | None = None,
        approval: StartupApproval | None = None,
        *,
        value_name: str = RUN_VALUE_NAME,
    ) -> None:
        """Create the backend. The registry is not touched until a method is called.

        Args:
            command: What the entry starts (see :func:`.launch_command`).
            run_key: The Run key; default :class:`WinregRunKey`.
            approval: Task Manager's switches; default :class:`WinregStartupApproval`.
            value_name: The value's name.
        """
        self._command = list(command)
        self._run_key: RunKey = run_key if run_key is not None else WinregRunKey()
        self._approval: StartupApproval = (
            approval if approval is not None else WinregStartupApproval()
        )
        self._value_name = value_name
        self.description = (
            f"the Run list of your Windows account (HKEY_CURRENT_USER\\{RUN_KEY_PATH})"
        )

    def command_line(self) -> str:
        """The value :meth:`enable` writes: the command, quoted as Windows programs split it."""
        return subprocess.list2cmdline(self._command)

    def is_enabled(self) -> bool:
        """Whether our value is in the Run key and not switched off in Task Manager.

        Raises:
            AutostartError: The registry could not be read.
        """
        if self._run_key.get(self._value_name) is None:
            return False
        return not self._approval.is_disabled(self._value_name)

    def enable(self) -> None:
        """Write our value with the current command, and undo a Task Manager switch-off.

        Raises:
            AutostartError: The registry could not be changed.
        """
        self._run_key.set(self._value_name, self.command_line())
        # Turning it on in our settings is the volunteer's latest word; without this, an
        # old "Disabled" in Task Manager would silently keep the entry from running.
        self._approval.clear(self._value_name)
        logger.info("Start at login enabled: %s in HKCU\\%s", self._value_name, RUN_KEY_PATH)

    def disable(self) -> None:
        """Remove our value; nothing happens when there is none.

        Raises:
            AutostartError: The registry could not be changed.
        """
        self._run_key.delete(self._value_name)
        self._approval.clear(self._value_name)
        logger.info("Start at login disabled: %s in HKCU\\%s", self._value_name, RUN_KEY_PATH)


class WinregRunKey:
    """The real Run key of the current user, through ``winreg``."""

    def __init__(self, key_path: str = RUN_KEY_PATH) -> None:
        """Create the adapter. The registry is not opened until a method is called.

        Args:
            key_path: The key under ``HKEY_CURRENT_USER``.
        """
        self._key_path = key_path

    def get(self, name: str) -> str | None:
        """The value called ``name``, or None when there is none (or it is not text).

        Raises:
            AutostartError: The key could not be read.
        """
        value = _query_value(self._key_path, name)
        return value if isinstance(value, str) else None

    def set(self, name: str, value: str) -> None:
        """Store ``value`` as ``REG_SZ`` under ``name``.

        Raises:
            AutostartError: The key could not be written.
        """
        if sys.platform != "win32":
            raise AutostartError(_NOT_WINDOWS)
        import winreg

        try:
            with winreg.CreateKeyEx(
                winreg.HKEY_CURRENT_USER, self._key_path, 0, winreg.KEY_SET_VALUE
            ) as key:
                winreg.SetValueEx(key, name, 0, winreg.REG_SZ, value)
        except OSError as exc:
            raise AutostartError(
                "RMA Compute Pool could not be set to start at login: the registry key "
                f"HKEY_CURRENT_USER\\{self._key_path} could not be written "
                f"({exc.strerror or exc})."
            ) from exc

    def delete(self, name: str) -> None:
        """Remove the value called ``name``; nothing happens when there is none.

        Raises:
            AutostartError: The key could not be changed.
        """
        _delete_value(self._key_path, name)


class WinregStartupApproval:
    r"""Task Manager's ``StartupApproved\Run`` key of the current user, through ``winreg``.

    Each value there is 12 bytes: a flags byte whose lowest bit means "switched off", then
    when that happened. No value means the entry is on.
    """

    def __init__(self, key_path: str = STARTUP_APPROVED_KEY_PATH) -> None:
        """Create the adapter. The registry is not opened until a method is called.

        Args:
            key_path: The key under ``HKEY_CURRENT_USER``.
        """
        self._key_path = key_path

    def is_disabled(self, name: str) -> bool:
        """Whether Task Manager switched the entry called ``name`` off.

        Raises:
            AutostartError: The key could not be read.
        """
        value = _query_value(self._key_path, name)
        return isinstance(value, bytes) and len(value) > 0 and bool(value[0] & 1)

    def clear(self, name: str) -> None:
        """Forget the record for ``name``.

        Raises:
            AutostartError: The key could not be changed.
        """
        _delete_value(self._key_path, name)


def _query_value(key_path: str, name: str) -> object:
    """The data of one value under ``HKEY_CURRENT_USER``, or None when it or its key is missing."""
    if sys.platform != "win32":
        raise AutostartError(_NOT_WINDOWS, title="Start at login unknown")
    import winreg

    try:
        with winreg.OpenKey(winreg.HKEY_CURRENT_USER, key_path) as key:
            data, _kind = winreg.QueryValueEx(key, name)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise AutostartError(
            "Whether RMA Compute Pool starts at login cannot be told: the registry key "
            f"HKEY_CURRENT_USER\\{key_path} could not be read ({exc.strerror or exc}).",
            title="Start at login unknown",
        ) from exc
    return data


def _delete_value(key_path: str, name: str) -> None:
    if sys.platform != "win32":
        raise AutostartError(_NOT_WINDOWS)
    import winreg

    try:
        with winreg.OpenKey(winreg.HKEY_CURRENT_USER, key_path, 0, winreg.KEY_SET_VALUE) as key:
            winreg.DeleteValue(key, name)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise AutostartError(
            "Start at login could not be changed: the registry key "
            f"HKEY_CURRENT_USER\\{key_path} could not be changed ({exc.strerror or exc})."
        ) from exc
