"""Idle time from systemd-logind's idle hint for this session, over the system bus.

Coarse, and the last resort on Linux: logind does not watch input itself. The desktop
sets ``IdleHint`` only once its own idle delay has passed (GNOME: the "blank screen"
delay), so until then this reads 0; after that it is exact, counted from
``IdleSinceHint``. Where no desktop sets the hint at all it always reads 0.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import NamedTuple

from .base import IdleDetector, IdleUnavailable
from .linux_dbus import CALL_TIMEOUT_S, BusConnection, DBusErrorReply, DBusServiceAbsent

BUS_NAME = "org.freedesktop.login1"
MANAGER_PATH = "/org/freedesktop/login1"
MANAGER_INTERFACE = "org.freedesktop.login1.Manager"
SESSION_INTERFACE = "org.freedesktop.login1.Session"
AUTO_SESSION_PATH = "/org/freedesktop/login1/session/auto"
"""logind's alias for the caller's session, or the user's graphical one if it has none."""
PROPERTIES_INTERFACE = "org.freedesktop.DBus.Properties"

SERVICE_WORDS = "systemd-logind"


class IdleHint(NamedTuple):
    """The two session properties this backend reads."""

    idle: bool
    """``IdleHint``: whether the desktop says the session is idle."""
    since_us: int
    """``IdleSinceHint``: when that last changed, in microseconds since the Unix epoch."""


def idle_seconds_from_hint(hint: IdleHint, now_s: float) -> float:
    """Seconds idle according to logind's hint.

    Args:
        hint: The session's ``IdleHint`` and ``IdleSinceHint``.
        now_s: The current wall-clock time (``time.time()``): ``IdleSinceHint`` is on the
            realtime clock.

    Returns:
        0 while the session is not idle, else the seconds since it became idle. 0 as well
        when logind says idle without saying since when, and never negative (the wall
        clock can step back): reading too little idle time is the safe side.
    """
    if not hint.idle or hint.since_us <= 0:
        return 0.0
    return max(0.0, now_s - hint.since_us / 1_000_000)


class LogindIdleDetector(IdleDetector):
    """Reads ``IdleHint`` and ``IdleSinceHint`` of this process's logind session."""

    source = "systemd-logind's idle hint (coarse: set only after the desktop's own idle delay)"

    def __init__(
        self,
        bus_address: str | None,
        *,
        timeout_s: float = CALL_TIMEOUT_S,
        read_hint: Callable[[], IdleHint] | None = None,
        now: Callable[[], float] = time.time,
        pid: int | None = None,
    ) -> None:
        """Create the detector. The bus is connected on the first read.

        Args:
            bus_address: The system bus address.
            timeout_s: Time limit for connecting and for each call.
            read_hint: Reads the session's hint; default: over D-Bus from logind.
            now: The wall clock, in seconds since the epoch.
            pid: The process whose session to ask about; default this one.
        """
        self._bus = BusConnection(bus_address, "the system bus", timeout_s)
        self._read_hint = read_hint if read_hint is not None else self._read_hint_from_logind
        self._now = now
        self._pid = pid
        self._session_path: str | None = None

    def idle_seconds(self) -> float:
        """Seconds idle according to logind (0 until the desktop declares the session idle).

        Raises:
            IdleUnavailable: No system bus, logind is not running, or this process has
                no session.
        """
        return idle_seconds_from_hint(self._read_hint(), self._now())

    def close(self) -> None:
        """Close the bus connection. Safe to call more than once."""
        self._bus.close()

    def _read_hint_from_logind(self) -> IdleHint:
        path = self._session_path or self._find_session()
        idle = self._property(path, "IdleHint")
        since = self._property(path, "IdleSinceHint")
        if not isinstance(idle, bool) or not isinstance(since, int):
            raise IdleUnavailable(f"{SERVICE_WORDS} sent an idle hint of an unexpected type")
        self._session_path = path
        return IdleHint(idle=idle, since_us=since)

    def _find_session(self) -> str:
        pid = os.getpid() if self._pid is None else self._pid
        try:
            reply = self._bus.call(
                service_words=SERVICE_WORDS,
                bus_name=BUS_NAME,
                object_path=MANAGER_PATH,
                interface=MANAGER_INTERFACE,
                method="GetSessionByPID",
                signature="u",
                body=(pid,),
            )
        except DBusServiceAbsent:
            raise
        except DBusErrorReply:
            # No session of our own (e.g. started by a systemd user service): "auto" still
            # finds the user's graphical session.
            return AUTO_SESSION_PATH
        path = reply[0] if reply else None
        return path if isinstance(path, str) and path else AUTO_SESSION_PATH

    def _property(self, path: str, name: str) -> object:
        reply = self._bus.call(
            service_words=SERVICE_WORDS,
            bus_name=BUS_NAME,
            object_path=path,
            interface=PROPERTIES_INTERFACE,
            method="Get",
            signature="ss",
            body=(SESSION_INTERFACE, name),
        )
        # A variant arrives as (signature, value).
        variant = reply[0] if reply else None
        if not isinstance(variant, tuple) or len(variant) != 2:
            raise IdleUnavailable(f"{SERVICE_WORDS} sent {name} in an unexpected form")
        value: object = variant[1]
        return value
