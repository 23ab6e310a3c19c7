"""Picks the idle backend that works on this computer.

The factory tries each backend that can apply here, in order of preference, with one
real read, and keeps the first that answers. That read is I/O (a D-Bus call, opening the
X display, loading a library): call the factory off the UI thread.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, Sequence

from .base import IdleDetector, IdleUnavailable, NullIdleDetector
from .linux_dbus import session_bus_address, system_bus_address
from .linux_logind import LogindIdleDetector
from .linux_mutter import MutterIdleDetector
from .linux_screensaver import ScreenSaverIdleDetector
from .linux_x11 import X11IdleDetector
from .macos import MacosIdleDetector
from .windows import WindowsIdleDetector

logger = logging.getLogger(__name__)


def is_wayland_session(environ: Mapping[str, str]) -> bool:
    """Whether the environment is a Wayland session (``WAYLAND_DISPLAY`` or the session type)."""
    return bool(environ.get("WAYLAND_DISPLAY")) or environ.get("XDG_SESSION_TYPE") == "wayland"


def idle_detector_candidates(
    *, platform: str = sys.platform, environ: Mapping[str, str] = os.environ
) -> list[IdleDetector]:
    """The backends that can apply here, best first. Builds them only: no I/O.

    Args:
        platform: ``sys.platform``.
        environ: The environment to read ``DISPLAY``, the bus addresses and the session
            type from.

    Returns:
        The candidates in order of preference; empty where no backend applies.
    """
    if platform == "win32":
        return [WindowsIdleDetector()]
    if platform == "darwin":
        return [MacosIdleDetector()]
    if not platform.startswith("linux"):
        return []
    session_bus = session_bus_address(environ)
    desktop_services: list[IdleDetector] = [
        MutterIdleDetector(session_bus),
        ScreenSaverIdleDetector(session_bus),
        LogindIdleDetector(system_bus_address(environ)),
    ]
    if is_wayland_session(environ):
        # DISPLAY is often set on Wayland too, but it names XWayland, which only sees
        # input that goes to X clients: the X11 backend would report a person typing in
        # a native Wayland window as idle. So only the compositor's services are asked.
        return desktop_services
    return [X11IdleDetector(environ.get("DISPLAY")), *desktop_services]


def _failure_words(source: str, reason: str) -> str:
    """One entry of the "tried: ..." list, without saying the source's name twice."""
    reason = reason.rstrip(".")
    # Most D-Bus reasons already start with the source ("GNOME's idle monitor is not
    # running"); "GNOME's idle monitor — GNOME's idle monitor is not running" reads badly.
    name = source.split(" (", 1)[0]
    if reason.lower().startswith(name.lower()):
        return reason
    return f"{source} — {reason}"


def create_idle_detector(
    *,
    platform: str = sys.platform,
    environ: Mapping[str, str] = os.environ,
    candidates: Sequence[IdleDetector] | None = None,
) -> IdleDetector:
    """The first backend that reads idle time here, or a Null one that says why none did.

    Each candidate is tried with one :meth:`~.base.IdleDetector.idle_seconds` read, so this
    does I/O (up to about a second per D-Bus service that does not answer): call it off the
    UI thread. The candidates not chosen are closed.

    Args:
        platform: ``sys.platform``.
        environ: The environment (``DISPLAY``, ``WAYLAND_DISPLAY``, ``XDG_SESSION_TYPE``,
            ``DBUS_SESSION_BUS_ADDRESS``, ``DBUS_SYSTEM_BUS_ADDRESS``).
        candidates: The backends to try, in order; default :func:`idle_detector_candidates`
            for ``platform`` and ``environ``.

    Returns:
        A working detector (the caller closes it), or a :class:`~.base.NullIdleDetector`
        whose reason names each source tried and why it failed.
    """
    if candidates is None:
        candidates = idle_detector_candidates(platform=platform, environ=environ)
    if not candidates:
        return NullIdleDetector(f"Idle time cannot be read on this system ({platform}).")
    failures: list[str] = []
    chosen: IdleDetector | None = None
    for candidate in candidates:
        try:
            candidate.idle_seconds()
        except IdleUnavailable as exc:
            failures.append(_failure_words(candidate.source, str(exc)))
            logger.debug("idle source %r unavailable: %s", candidate.source, exc)
            continue
        except Exception as exc:  # a broken backend must not stop the others being tried
            logger.exception("idle source %r failed unexpectedly", candidate.source)
            failures.append(f"{candidate.source} — failed unexpectedly ({exc})")
            continue
        chosen = candidate
        break
    for candidate in candidates:
        if candidate is not chosen:
            candidate.close()
    if chosen is not None:
        logger.info("reading idle time from %s", chosen.source)
        return chosen
    return NullIdleDetector(
        "No way to read idle time was found on this desktop (tried: " + "; ".join(failures) + ")."
    )
