"""Idle time from the freedesktop screen saver service (KDE Plasma and others), over D-Bus.

``GetSessionIdleTime`` was never pinned down by a written spec. KDE's implementation,
the common one, returns **milliseconds** as ``u``; that is the unit assumed here.
"""

from __future__ import annotations

from .base import IdleDetector, IdleUnavailable
from .linux_dbus import CALL_TIMEOUT_S, BusConnection, DBusMethodMissing

BUS_NAME = "org.freedesktop.ScreenSaver"
INTERFACE = "org.freedesktop.ScreenSaver"
OBJECT_PATHS = ("/org/freedesktop/ScreenSaver", "/ScreenSaver")
"""Where implementations export it: KDE at both, some others only at the short path."""


class ScreenSaverIdleDetector(IdleDetector):
    """Calls ``org.freedesktop.ScreenSaver.GetSessionIdleTime`` (milliseconds, ``u``)."""

    source = "the freedesktop screen saver service"

    def __init__(self, bus_address: str | None, *, timeout_s: float = CALL_TIMEOUT_S) -> None:
        """Create the detector. The bus is connected on the first read.

        Args:
            bus_address: The session bus address; None when there is none.
            timeout_s: Time limit for connecting and for each call.
        """
        self._bus = BusConnection(bus_address, "the session bus", timeout_s)
        self._path: str | None = None  # the object path that answered, once one has

    def idle_seconds(self) -> float:
        """Seconds since the last input, as the desktop's screen saver service counts it.

        Raises:
            IdleUnavailable: No session bus, no screen saver service, or one without
                ``GetSessionIdleTime``, or it did not answer in time.
        """
        paths = (self._path,) if self._path is not None else OBJECT_PATHS
        for path in paths:
            try:
                reply = self._bus.call(
                    service_words=self.source,
                    bus_name=BUS_NAME,
                    object_path=path,
                    interface=INTERFACE,
                    method="GetSessionIdleTime",
                )
            except DBusMethodMissing:
                continue
            self._path = path
            milliseconds = reply[0] if reply else None
            if not isinstance(milliseconds, int):
                raise IdleUnavailable(f"{self.source} sent an answer that is not a number")
            return max(0, milliseconds) / 1000.0
        self._path = None  # the service may have been replaced: look again next time
        raise IdleUnavailable(
            f"{self.source} runs but does not offer GetSessionIdleTime "
            f"(tried {' and '.join(paths)})"
        )

    def close(self) -> None:
        """Close the bus connection. Safe to call more than once."""
        self._bus.close()
