"""Start the tray app when the volunteer logs in, on each operating system.

:func:`create_autostart` picks the backend: an XDG autostart entry on Linux and the BSDs
(:mod:`.linux_xdg`), a launch agent on macOS (:mod:`.macos_launchd`), a Run key value on
Windows (:mod:`.windows_registry`), and :class:`NullAutostart` elsewhere. All of them start
:func:`launch_command`, which ends with ``--autostart`` so the app starts quietly in the tray.
"""

from __future__ import annotations

from .base import Autostart, AutostartError, NullAutostart
from .command import (
    AUTOSTART_FLAG,
    SCRIPT_NAME,
    desktop_exec_value,
    escape_desktop_string,
    launch_command,
    parse_desktop_exec_value,
)
from .factory import create_autostart
from .linux_xdg import APP_ID, XdgDesktopAutostart
from .macos_launchd import LAUNCHD_LABEL, LaunchdAutostart
from .windows_registry import (
    RUN_KEY_PATH,
    RUN_VALUE_NAME,
    RunKey,
    StartupApproval,
    WindowsRunKeyAutostart,
    WinregRunKey,
    WinregStartupApproval,
)

__all__ = [
    "APP_ID",
    "AUTOSTART_FLAG",
    "LAUNCHD_LABEL",
    "RUN_KEY_PATH",
    "RUN_VALUE_NAME",
    "SCRIPT_NAME",
    "Autostart",
    "AutostartError",
    "LaunchdAutostart",
    "NullAutostart",
    "RunKey",
    "StartupApproval",
    "WindowsRunKeyAutostart",
    "WinregRunKey",
    "WinregStartupApproval",
    "XdgDesktopAutostart",
    "create_autostart",
    "desktop_exec_value",
    "escape_desktop_string",
    "launch_command",
    "parse_desktop_exec_value",
]
