"""Picks the start-at-login backend for an operating system."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from .base import Autostart, NullAutostart
from .command import launch_command
from .linux_xdg import XdgDesktopAutostart
from .macos_launchd import LaunchdAutostart
from .windows_registry import WindowsRunKeyAutostart

_XDG_PLATFORMS = ("linux", "freebsd", "openbsd", "netbsd", "dragonfly")
"""``sys.platform`` prefixes of systems whose desktops follow the XDG autostart spec."""


def create_autostart(
    *,
    platform: str = sys.platform,
    environ: Mapping[str, str] = os.environ,
    home: Path | None = None,
    command: list[str] | None = None,
) -> Autostart:
    """The backend for ``platform``; nothing is read or written yet.

    Args:
        platform: ``sys.platform``.
        environ: The environment, for ``XDG_CONFIG_HOME`` and ``XDG_CONFIG_DIRS``.
        home: The volunteer's home folder; None uses ``Path.home()``.
        command: What to start at login; None uses :func:`.launch_command` for ``platform``.

    Returns:
        An XDG autostart entry on Linux and the BSDs, a launch agent on macOS, a Run key
        value on Windows, and a :class:`NullAutostart` that says why anywhere else.

    Raises:
        AutostartError: The command to start could not be worked out (see
            :func:`.launch_command`).
    """
    is_xdg = platform.startswith(_XDG_PLATFORMS)
    if not (is_xdg or platform in ("darwin", "win32")):
        return NullAutostart(f"Starting RMA Compute Pool at login is not available on {platform}.")
    if command is None:
        command = launch_command(platform=platform)
    if platform == "win32":
        return WindowsRunKeyAutostart(command)
    if home is None:
        home = Path.home()
    if platform == "darwin":
        return LaunchdAutostart(command, home)
    return XdgDesktopAutostart(
        command, _xdg_config_home(environ, home), config_dirs=_xdg_config_dirs(environ)
    )


def _xdg_config_home(environ: Mapping[str, str], home: Path) -> Path:
    # The XDG Base Directory spec: a relative path in the variable is invalid and ignored.
    value = environ.get("XDG_CONFIG_HOME", "")
    return Path(value) if os.path.isabs(value) else home / ".config"


def _xdg_config_dirs(environ: Mapping[str, str]) -> list[Path]:
    value = environ.get("XDG_CONFIG_DIRS", "") or "/etc/xdg"
    return [Path(part) for part in value.split(os.pathsep) if os.path.isabs(part)]
