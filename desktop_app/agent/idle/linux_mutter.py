"""Idle time from GNOME's compositor (Mutter's idle monitor), over the session bus.

The right answer on GNOME, on Wayland as well as on X11: the compositor sees all input.
"""

from __future__ import annotations

from .base import IdleDetector, IdleUnavailable
from .linux_dbus import CALL_TIMEOUT_S, BusConnection

BUS_NAME = "org.gnome.Mutter.IdleMonitor"
OBJECT_PATH = "/org/gnome/Mutter/IdleMonitor/Core"
"""The monitor of all devices together ("Core"); per-device monitors exist beside it."""
INTERFACE = "org.gnome.Mutter.IdleMonitor"


class MutterIdleDetector(IdleDetector):
    """Calls ``org.gnome.Mutter.IdleMonitor.GetIdletime`` (milliseconds, ``t``)."""

    source = "GNOME's idle monitor"

    def __init__(self, bus_address: str | None, *, timeout_s: float = CALL_TIMEOUT_S) -> None:
        """Create the detector. The bus is connected on the first read.

        Args:
            bus_address: The session bus address; None when there is none.
            timeout_s: Time limit for connecting and for each call.
        """
        self._bus = BusConnection(bus_address, "the session bus", timeout_s)

    def idle_seconds(self) -> float:
        """Seconds since the last input anywhere on this GNOME session.

        Raises:
            IdleUnavailable: No session bus, GNOME's idle monitor is not running, or it
                did not answer in time.
        """
        reply = self._bus.call(
            service_words=self.source,
            bus_name=BUS_NAME,
            object_path=OBJECT_PATH,
            interface=INTERFACE,
            method="GetIdletime",
        )
        milliseconds = reply[0] if reply else None
        if not isinstance(milliseconds, int):
            raise IdleUnavailable(f"{self.source} sent an answer that is not a number")
        return max(0, milliseconds) / 1000.0

    def close(self) -> None:
        """Close the bus connection. Safe to call more than once."""
        self._bus.close()
