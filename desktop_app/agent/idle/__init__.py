"""How long the person at this computer has not touched the keyboard or mouse.

:func:`create_idle_detector` picks the backend that works here (X11, GNOME's idle
monitor, the freedesktop screen saver service, systemd-logind, Windows or macOS) and
returns an :class:`IdleDetector`; where none works it returns a
:class:`NullIdleDetector` that says plainly why.
"""

from .base import IdleDetector, IdleUnavailable, NullIdleDetector
from .factory import create_idle_detector, idle_detector_candidates, is_wayland_session
from .linux_logind import IdleHint, LogindIdleDetector, idle_seconds_from_hint
from .linux_mutter import MutterIdleDetector
from .linux_screensaver import ScreenSaverIdleDetector
from .linux_x11 import X11IdleDetector
from .macos import MacosIdleDetector, parse_hid_idle_time
from .windows import WindowsIdleDetector

__all__ = [
    "IdleDetector",
    "IdleHint",
    "IdleUnavailable",
    "LogindIdleDetector",
    "MacosIdleDetector",
    "MutterIdleDetector",
    "NullIdleDetector",
    "ScreenSaverIdleDetector",
    "WindowsIdleDetector",
    "X11IdleDetector",
    "create_idle_detector",
    "idle_detector_candidates",
    "idle_seconds_from_hint",
    "is_wayland_session",
    "parse_hid_idle_time",
]
